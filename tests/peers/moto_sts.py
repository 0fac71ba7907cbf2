"""moto's server as the STS that verifies our SigV4 signatures.

`start_moto_sts()` starts moto's real server (werkzeug, threaded) on a free loopback port,
creates — while moto still accepts unsigned requests — an IAM user with an access key, a
role the user may assume (`teleport-docdb-user`, as in the Teleport DocumentDB guide) and a
second role that also requires an external id; then switches request-signature checking ON
(`POST /moto-api/reset-auth`, body `0`) and proves it is on: an unsigned request and a request
signed with a wrong secret must both be refused, and the user's correctly signed
GetCallerIdentity must return the user's ARN. Only then does it assume the role (a signed
AssumeRole that moto checks against the role's trust policy) to get temporary credentials.

Anything unexpected raises `MotoSetupError`: a test harness that silently ran with signature
checking OFF would make every acceptance test meaningless.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

import boto3
import botocore.config
import botocore.exceptions
from moto.server import ThreadedMotoServer

USER_NAME = "docauth-test-user"
ROLE_NAME = "teleport-docdb-user"
EXTERNAL_ID_ROLE_NAME = "teleport-docdb-external"
EXTERNAL_ID = "docauth-test-external-id"
CHAINED_ROLE_NAME = "teleport-docdb-chained"
ROLE_SESSION_NAME = "docauth-test-session"
REGION = "us-east-1"

_STS_NS = {"sts": "https://sts.amazonaws.com/doc/2011-06-15/"}


class _MuteUnsignedRequestTraceback(logging.Filter):
    """moto answers an unsigned request (with signature checking ON) by failing on the missing
    Authorization header; werkzeug then logs the traceback after sending HTTP 500. That refusal
    is expected (we provoke it on purpose), so drop exactly that record and nothing else."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - never break logging
            return True
        return "KeyError: 'HTTP_AUTHORIZATION'" not in text


logging.getLogger("werkzeug").addFilter(_MuteUnsignedRequestTraceback())


class MotoSetupError(RuntimeError):
    """moto could not be set up as a signature-checking STS."""


@dataclasses.dataclass(frozen=True)
class MotoSts:
    """A running moto server and the identities created in it."""

    server: ThreadedMotoServer
    endpoint: str  # http://127.0.0.1:PORT
    port: int
    account_id: str
    access_key_id: str
    secret_access_key: str
    user_arn: str
    role_arn: str
    external_id_role_arn: str
    external_id: str
    chained_role_arn: str
    role_session_name: str
    temp_access_key_id: str
    temp_secret_access_key: str
    temp_session_token: str
    assumed_role_arn: str

    def stop(self) -> None:
        self.server.stop()

    def env(self) -> dict[str, str]:
        """The DOCAUTH_TEST_* variables describing this moto (see README.md)."""
        return {
            "DOCAUTH_TEST_STS_ENDPOINT": self.endpoint,
            "DOCAUTH_TEST_STS_PORT": str(self.port),
            "DOCAUTH_TEST_AWS_REGION": REGION,
            "DOCAUTH_TEST_AWS_ACCOUNT_ID": self.account_id,
            "DOCAUTH_TEST_AWS_ACCESS_KEY_ID": self.access_key_id,
            "DOCAUTH_TEST_AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "DOCAUTH_TEST_USER_NAME": USER_NAME,
            "DOCAUTH_TEST_USER_ARN": self.user_arn,
            "DOCAUTH_TEST_ROLE_NAME": ROLE_NAME,
            "DOCAUTH_TEST_ROLE_ARN": self.role_arn,
            "DOCAUTH_TEST_EXTERNAL_ID_ROLE_ARN": self.external_id_role_arn,
            "DOCAUTH_TEST_EXTERNAL_ID": self.external_id,
            "DOCAUTH_TEST_CHAINED_ROLE_ARN": self.chained_role_arn,
            "DOCAUTH_TEST_ROLE_SESSION_NAME": self.role_session_name,
            "DOCAUTH_TEST_TEMP_ACCESS_KEY_ID": self.temp_access_key_id,
            "DOCAUTH_TEST_TEMP_SECRET_ACCESS_KEY": self.temp_secret_access_key,
            "DOCAUTH_TEST_TEMP_SESSION_TOKEN": self.temp_session_token,
            "DOCAUTH_TEST_ASSUMED_ROLE_ARN": self.assumed_role_arn,
        }


def _client(service: str, endpoint: str, key: str, secret: str, token: str | None = None):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        aws_session_token=token,
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )


def _post_form(endpoint: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    req = urllib.request.Request(endpoint + "/", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 (loopback only)
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _error_code(xml_body: bytes) -> str:
    try:
        root = ET.fromstring(xml_body)
    except ET.ParseError:
        return "<not XML>"
    for el in root.iter():
        if el.tag.endswith("Code"):
            return el.text or ""
    return "<no Code>"


def _enable_signature_checking(endpoint: str) -> None:
    # text/plain: with urllib's default form content type Flask would eat the body.
    req = urllib.request.Request(
        endpoint + "/moto-api/reset-auth",
        data=b"0",
        headers={"Content-Type": "text/plain"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 (loopback only)
        answer = json.loads(resp.read())
    if answer.get("status") != "ok":
        raise MotoSetupError(f"moto refused reset-auth: {answer!r}")


def _prove_signature_checking(endpoint: str, key: str, secret: str, user_arn: str) -> None:
    body = b"Action=GetCallerIdentity&Version=2011-06-15"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    # 1. Unsigned (no Authorization header at all): must be refused. moto answers it with an
    #    error status (its access-control code finds no signature to look at and fails).
    status, answer = _post_form(endpoint, body, {**form, "Host": "sts.amazonaws.com"})
    if status < 400:
        raise MotoSetupError(
            f"moto accepted an UNSIGNED GetCallerIdentity (HTTP {status}): signature checking is OFF"
        )
    # 1b. A syntactically valid Authorization header with a made-up signature.
    forged = (
        f"AWS4-HMAC-SHA256 Credential={key}/20250101/{REGION}/sts/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date, Signature=" + "0" * 64
    )
    status, answer = _post_form(
        endpoint,
        body,
        {**form, "Host": "sts.amazonaws.com", "X-Amz-Date": "20250101T000000Z", "Authorization": forged},
    )
    if status != 403 or _error_code(answer) != "SignatureDoesNotMatch":
        raise MotoSetupError(
            f"forged signature answered HTTP {status} {_error_code(answer)!r}, "
            "expected 403 SignatureDoesNotMatch"
        )
    # 2. Signed with a wrong secret: must be SignatureDoesNotMatch.
    bad = _client("sts", endpoint, key, secret[:-1] + ("A" if secret[-1] != "A" else "B"))
    try:
        bad.get_caller_identity()
    except botocore.exceptions.ClientError as e:
        code = e.response.get("Error", {}).get("Code")
        if code != "SignatureDoesNotMatch":
            raise MotoSetupError(f"wrong secret refused with {code!r}, expected SignatureDoesNotMatch")
    else:
        raise MotoSetupError("moto accepted a request signed with a WRONG secret")
    # 3. Correctly signed: must be the user.
    arn = _client("sts", endpoint, key, secret).get_caller_identity()["Arn"]
    if arn != user_arn:
        raise MotoSetupError(f"GetCallerIdentity returned {arn!r}, expected {user_arn!r}")


def start_moto_sts(verbose: bool = False) -> MotoSts:
    """Start moto on 127.0.0.1:<free port>, set up identities, turn signature checking ON."""
    if not verbose:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=verbose)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        # Auth is still off: any key works for the set-up calls.
        iam = _client("iam", endpoint, "AKIAIOSFODNN7SETUP00", "setup-secret-not-checked")
        user = iam.create_user(UserName=USER_NAME)["User"]
        user_arn = user["Arn"]
        account_id = user_arn.split(":")[4]
        iam.put_user_policy(
            UserName=USER_NAME,
            PolicyName="docauth-test-sts-iam",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Action": ["sts:*", "iam:*"], "Resource": "*"}
                    ],
                }
            ),
        )
        key = iam.create_access_key(UserName=USER_NAME)["AccessKey"]
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": user_arn},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        role_arn = iam.create_role(
            RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust)
        )["Role"]["Arn"]
        trust_external = json.loads(json.dumps(trust))
        trust_external["Statement"][0]["Condition"] = {
            "StringEquals": {"sts:ExternalId": EXTERNAL_ID}
        }
        external_role_arn = iam.create_role(
            RoleName=EXTERNAL_ID_ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust_external)
        )["Role"]["Arn"]
        # Role chaining: AWS checks the trust policy against the role ARN of the caller's
        # session; moto 5.2.5 compares the principal exactly with the session's
        # assumed-role ARN. Name both, so the chain user -> ROLE_NAME (session
        # ROLE_SESSION_NAME) -> CHAINED_ROLE_NAME works in moto and would in AWS.
        assumed_arn_expected = (
            f"arn:aws:sts::{account_id}:assumed-role/{ROLE_NAME}/{ROLE_SESSION_NAME}"
        )
        trust_chained = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": [role_arn, assumed_arn_expected]},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        chained_role_arn = iam.create_role(
            RoleName=CHAINED_ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust_chained)
        )["Role"]["Arn"]
        for role in (ROLE_NAME, EXTERNAL_ID_ROLE_NAME, CHAINED_ROLE_NAME):
            iam.put_role_policy(
                RoleName=role,
                PolicyName="docauth-test-sts",
                PolicyDocument=json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [{"Effect": "Allow", "Action": "sts:*", "Resource": "*"}],
                    }
                ),
            )

        _enable_signature_checking(endpoint)
        _prove_signature_checking(
            endpoint, key["AccessKeyId"], key["SecretAccessKey"], user_arn
        )

        # Signed AssumeRole, checked by moto against the trust policy.
        sts = _client("sts", endpoint, key["AccessKeyId"], key["SecretAccessKey"])
        assumed = sts.assume_role(RoleArn=role_arn, RoleSessionName=ROLE_SESSION_NAME)
        temp = assumed["Credentials"]
        assumed_arn = assumed["AssumedRoleUser"]["Arn"]
        check = _client(
            "sts", endpoint, temp["AccessKeyId"], temp["SecretAccessKey"], temp["SessionToken"]
        ).get_caller_identity()["Arn"]
        if check != assumed_arn or assumed_arn != assumed_arn_expected:
            raise MotoSetupError(f"assumed role identity {check!r} != {assumed_arn!r}")
        # The chain works (signed with the temporary credentials, token checked by moto).
        chained = _client(
            "sts", endpoint, temp["AccessKeyId"], temp["SecretAccessKey"], temp["SessionToken"]
        ).assume_role(RoleArn=chained_role_arn, RoleSessionName="docauth-chain-check")
        if f"assumed-role/{CHAINED_ROLE_NAME}/" not in chained["AssumedRoleUser"]["Arn"]:
            raise MotoSetupError(f"role chaining gave {chained['AssumedRoleUser']['Arn']!r}")
        # A wrong external id must be refused (proves trust conditions are evaluated).
        try:
            sts.assume_role(
                RoleArn=external_role_arn, RoleSessionName="docauth-xid-check", ExternalId="wrong-" + EXTERNAL_ID
            )
        except botocore.exceptions.ClientError as e:
            if e.response.get("Error", {}).get("Code") != "AccessDenied":
                raise MotoSetupError(f"wrong external id refused with {e.response.get('Error')!r}") from None
        else:
            raise MotoSetupError("moto let the user assume the external-id role with a WRONG external id")

        return MotoSts(
            server=server,
            endpoint=endpoint,
            port=port,
            account_id=account_id,
            access_key_id=key["AccessKeyId"],
            secret_access_key=key["SecretAccessKey"],
            user_arn=user_arn,
            role_arn=role_arn,
            external_id_role_arn=external_role_arn,
            external_id=EXTERNAL_ID,
            chained_role_arn=chained_role_arn,
            role_session_name=ROLE_SESSION_NAME,
            temp_access_key_id=temp["AccessKeyId"],
            temp_secret_access_key=temp["SecretAccessKey"],
            temp_session_token=temp["SessionToken"],
            assumed_role_arn=assumed_arn,
        )
    except BaseException:
        server.stop()
        raise
