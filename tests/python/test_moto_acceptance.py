"""A real verifier accepts us: moto's STS, with request-signature checking ON, answers the
GetCallerIdentity that the DocumentDB-like verifier rebuilds from its own s, h and our
{a, d, t} — exactly as DocumentDB forwards it — with the caller's ARN; and refuses what was
not signed by the right key for the right nonce, host, date and token.

What moto 5.2.5 verifies (moto/iam/access_control.py): the SigV4 signature over the signed
headers (recomputed with botocore), that the access key exists, and for temporary (ASIA)
keys that X-Amz-Security-Token equals the token it issued. It does not check clock skew or
expiry.
"""

from __future__ import annotations

import base64
import os

import bson
import pytest
from reference_signer import ReferenceContext

import docauth
import pymongo_auth_aws
from peers.verifier import VerifierProtocolError, simplified_arn


def _sign(creds: docauth.Credentials, verifier, sts_host=None):
    """client-first -> verifier -> client-final; returns (verifier conversation, client_final)."""
    with docauth.AwsConversation(creds) as conv:
        vconv = verifier.start(conv.client_first(), sts_host)
        return vconv, conv.client_final(vconv.server_first)


# --- accepted ---------------------------------------------------------------------------


def test_long_term_credentials_give_the_iam_user_arn_over_http(peers):
    client = peers.client()
    with docauth.Credentials(peers.access_key_id, peers.secret_access_key) as creds, docauth.AwsConversation(creds) as conv:
        cid, server_first = client.start(conv.client_first())
        doc = bson.decode(server_first)
        assert doc["h"] == peers.sts_host and len(doc["s"]) == 64
        final = conv.client_final(server_first)
        assert "t" not in bson.decode(final)
        status, answer = client.finish(cid, final)
    assert (status, answer) == (200, {"arn": peers.user_arn, "user": peers.user_arn})


def test_assume_role_temporary_credentials_give_the_assumed_role_arn_over_http(peers):
    client = peers.client()
    with docauth.Credentials(
        peers.temp_access_key_id, peers.temp_secret_access_key, peers.temp_session_token
    ) as creds, docauth.AwsConversation(creds) as conv:
        cid, server_first = client.start(conv.client_first())
        final = conv.client_final(server_first)
        assert bson.decode(final)["t"] == peers.temp_session_token
        status, answer = client.finish(cid, final)
    assert status == 200 and answer["arn"] == peers.assumed_role_arn
    assert answer["arn"].endswith(":assumed-role/teleport-docdb-user/docauth-test-session")
    assert answer["user"] == peers.assumed_role_arn.rsplit("/", 1)[0] + "/*"


@pytest.mark.parametrize(
    "sts_host", ["sts.amazonaws.com", "sts.us-west-2.amazonaws.com", "sts.eu-central-1.amazonaws.com", "sts"]
)
@pytest.mark.parametrize("temporary", [False, True], ids=["long-term", "assume-role"])
def test_accepted_for_regional_and_single_label_hosts(peers, sts_host, temporary):
    key = (peers.temp_access_key_id, peers.temp_secret_access_key, peers.temp_session_token) if temporary else (
        peers.access_key_id,
        peers.secret_access_key,
    )
    with docauth.Credentials(*key) as creds:
        vconv, final = _sign(creds, peers.verifier(), sts_host)
    region = bson.decode(final)["a"].split("Credential=")[1].split("/")[2]
    assert region == ("us-east-1" if sts_host in ("sts.amazonaws.com", "sts") else sts_host.split(".")[1])
    answer = vconv.finish(final)
    assert answer.ok, answer.describe()
    assert answer.arn == (peers.assumed_role_arn if temporary else peers.user_arn)


def test_control_pymongo_auth_aws_is_accepted_by_the_same_verifier(peers):
    """The verifier + moto accept the independent implementation too (so a refusal of ours
    elsewhere would be about us, not about the harness)."""
    ctx = ReferenceContext(pymongo_auth_aws.AwsCredential(peers.access_key_id, peers.secret_access_key, None))
    vconv = peers.verifier().start(bytes(ctx.step(None)))
    answer = vconv.finish(bytes(ctx.step(vconv.server_first)))
    assert answer.ok and answer.arn == peers.user_arn, answer.describe()


# --- refused ----------------------------------------------------------------------------


def _refused(answer, code):
    assert not answer.ok, f"STS accepted what it must refuse: {answer.arn}"
    assert answer.status == 403 and answer.error_code == code, answer.describe()


def test_wrong_secret_is_refused(peers):
    wrong = peers.secret_access_key[:-1] + ("A" if peers.secret_access_key[-1] != "A" else "B")
    with docauth.Credentials(peers.access_key_id, wrong) as creds:
        vconv, final = _sign(creds, peers.verifier())
    _refused(vconv.finish(final), "SignatureDoesNotMatch")


def test_wrong_secret_is_refused_over_http(peers):
    client = peers.client()
    with docauth.Credentials(peers.access_key_id, "x" + peers.secret_access_key[1:]) as creds, docauth.AwsConversation(creds) as conv:
        cid, server_first = client.start(conv.client_first())
        status, answer = client.finish(cid, conv.client_final(server_first))
    assert status == 401 and answer["code"] == "SignatureDoesNotMatch", answer


def test_unknown_access_key_is_refused(peers):
    with docauth.Credentials("AKIA" + "Z" * 16, peers.secret_access_key) as creds:
        vconv, final = _sign(creds, peers.verifier())
    _refused(vconv.finish(final), "InvalidClientTokenId")


def test_wrong_session_token_is_refused(peers):
    """Signed with a token moto never issued: moto compares the token with the one it issued."""
    wrong = peers.temp_session_token[:-4] + "AAAA"
    assert wrong != peers.temp_session_token
    with docauth.Credentials(peers.temp_access_key_id, peers.temp_secret_access_key, wrong) as creds:
        vconv, final = _sign(creds, peers.verifier())
    _refused(vconv.finish(final), "InvalidClientTokenId")


def test_token_swapped_after_signing_is_refused_by_the_signature(peers):
    """Signed with a wrong token, then the right token put into `t`: moto's token check passes,
    so only the signature (which covers X-Amz-Security-Token) can refuse it — and does."""
    wrong = "W" + peers.temp_session_token[1:]
    with docauth.Credentials(peers.temp_access_key_id, peers.temp_secret_access_key, wrong) as creds:
        vconv, final = _sign(creds, peers.verifier())
    doc = bson.decode(final)
    assert doc["t"] == wrong
    doc["t"] = peers.temp_session_token
    _refused(vconv.finish(bson.encode(doc)), "SignatureDoesNotMatch")


def test_temporary_key_without_its_token_is_refused(peers):
    with docauth.Credentials(peers.temp_access_key_id, peers.temp_secret_access_key) as creds:
        vconv, final = _sign(creds, peers.verifier())
    answer = vconv.finish(final)
    assert not answer.ok and answer.status == 403, answer.describe()


def test_nonce_changed_after_signing_is_refused(peers):
    with docauth.Credentials(peers.access_key_id, peers.secret_access_key) as creds:
        vconv, final = _sign(creds, peers.verifier())
    other = vconv.client_nonce + os.urandom(32)
    assert other != vconv.server_nonce
    _refused(vconv.finish(final, server_nonce=other), "SignatureDoesNotMatch")


def test_host_changed_after_signing_is_refused(peers):
    with docauth.Credentials(peers.access_key_id, peers.secret_access_key) as creds:
        vconv, final = _sign(creds, peers.verifier(), "sts.us-west-2.amazonaws.com")
    _refused(vconv.finish(final, sts_host="sts.us-west-1.amazonaws.com"), "SignatureDoesNotMatch")


def test_date_changed_after_signing_is_refused(peers):
    with docauth.Credentials(peers.access_key_id, peers.secret_access_key) as creds:
        vconv, final = _sign(creds, peers.verifier())
    doc = bson.decode(final)
    doc["d"] = ("19" if not doc["d"].startswith("19") else "20") + doc["d"][2:]
    _refused(vconv.finish(bson.encode(doc)), "SignatureDoesNotMatch")


def test_replayed_client_final_is_refused_in_a_new_conversation(peers):
    """A client-final captured from one conversation does not authenticate another (new s)."""
    verifier = peers.verifier()
    with docauth.Credentials(peers.access_key_id, peers.secret_access_key) as creds:
        vconv, final = _sign(creds, verifier)
        assert vconv.finish(final).ok
        with docauth.AwsConversation(creds) as conv:
            second = verifier.start(conv.client_first())
    assert second.server_nonce != vconv.server_nonce
    _refused(second.finish(final), "SignatureDoesNotMatch")


def test_our_signature_covers_exactly_the_mongodb_aws_headers(peers):
    for key in ((peers.access_key_id, peers.secret_access_key), (peers.temp_access_key_id, peers.temp_secret_access_key, peers.temp_session_token)):
        with docauth.Credentials(*key) as creds:
            vconv, final = _sign(creds, peers.verifier())
        signed = bson.decode(final)["a"].split("SignedHeaders=")[1].split(",")[0].split(";")
        expected = ["content-length", "content-type", "host", "x-amz-date"]
        expected += ["x-amz-security-token"] if len(key) == 3 else []
        expected += ["x-mongodb-gs2-cb-flag", "x-mongodb-server-nonce"]
        assert signed == expected
        assert vconv.finish(final).ok


def test_a_signature_not_bound_to_the_nonce_is_refused_by_the_verifier_not_by_sts(peers):
    """A valid GetCallerIdentity signature that does not cover X-MongoDB-Server-Nonce (as
    any AWS SDK makes one): STS (moto) accepts it, because it verifies whatever was signed —
    which is why the verifier, like the MongoDB server, checks SignedHeaders first."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials as BotoCredentials

    with docauth.AwsConversation(docauth.Credentials(peers.access_key_id, peers.secret_access_key)) as conv:
        vconv = peers.verifier().start(conv.client_first())
    body = "Action=GetCallerIdentity&Version=2011-06-15"
    request = AWSRequest(
        method="POST",
        url="/",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Content-Length": "43", "Host": vconv.sts_host},
    )
    SigV4Auth(BotoCredentials(peers.access_key_id, peers.secret_access_key), "sts", "us-east-1").add_auth(request)
    unbound = bson.encode({"a": request.headers["Authorization"], "d": request.headers["X-Amz-Date"]})
    assert "x-mongodb-server-nonce" not in request.headers["Authorization"]

    with pytest.raises(VerifierProtocolError, match="x-mongodb-server-nonce"):
        vconv.finish(unbound)
    # The same bytes, sent to STS without the check: accepted — the check is what binds.
    with docauth.AwsConversation(docauth.Credentials(peers.access_key_id, peers.secret_access_key)) as conv:
        other = peers.verifier().start(conv.client_first())
    answer = other.finish(unbound, check_signed_headers=False)
    assert answer.ok and answer.arn == peers.user_arn, answer.describe()


def test_verifier_checks_the_authorization_header_shape():
    from peers.verifier import check_authorization

    good = (
        "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20240101/us-east-1/sts/aws4_request, "
        "SignedHeaders=content-length;content-type;host;x-amz-date;x-mongodb-gs2-cb-flag;x-mongodb-server-nonce, "
        "Signature=" + "ab" * 32
    )
    assert "x-mongodb-server-nonce" in check_authorization(good, has_token=False)
    bad = [
        (good.replace("x-mongodb-gs2-cb-flag;", ""), False),
        (good.replace(";x-mongodb-server-nonce", ""), False),
        (good.replace("host;", "host;x-fake-field;"), False),
        (good.replace("x-amz-date;", "x-amz-date;x-mongodb-channel-binding-data;"), False),
        (good, True),  # t present but X-Amz-Security-Token not signed
        (good.replace("x-amz-date;", "x-amz-date;x-amz-security-token;"), False),  # signed, no t
        (good.replace("/sts/", "/s3/"), False),
        (good.replace("Credential=AKIAEXAMPLE/20240101/us-east-1/sts/aws4_request", "Credential=AKIAEXAMPLE"), False),
        (good.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1"), False),
        (good.split(", Signature=")[0], False),
    ]
    for a, has_token in bad:
        with pytest.raises(VerifierProtocolError):
            check_authorization(a, has_token)


def test_simplified_arn_is_the_mongodb_user():
    assert simplified_arn("arn:aws:iam::123456789012:user/a.user") == "arn:aws:iam::123456789012:user/a.user"
    assert (
        simplified_arn("arn:aws:sts::123456789012:assumed-role/teleport-docdb-user/i-0abc")
        == "arn:aws:sts::123456789012:assumed-role/teleport-docdb-user/*"
    )
    assert simplified_arn("arn:aws-cn:sts::1:assumed-role/R/s") == "arn:aws-cn:sts::1:assumed-role/R/*"
    for bad in ("arn:aws:iam::1:role/r", "arn:aws:sts::1:assumed-role/R", "arn:aws:sts::1:assumed-role/R/s/x", "nope"):
        with pytest.raises(ValueError):
            simplified_arn(bad)


def test_verifier_finishes_a_conversation_once(peers):
    with docauth.Credentials(peers.access_key_id, peers.secret_access_key) as creds:
        vconv, final = _sign(creds, peers.verifier())
    assert vconv.finish(final).ok
    with pytest.raises(VerifierProtocolError):
        vconv.finish(final)


def test_verifier_rejects_a_malformed_client_first():
    from peers.verifier import parse_client_first

    good = {"r": bson.Binary(os.urandom(32), 0), "p": 110}
    assert len(parse_client_first(bson.encode(good))) == 32
    for bad in (
        {"r": bson.Binary(os.urandom(31), 0), "p": 110},
        {"r": bson.Binary(os.urandom(32), 0), "p": 109},
        {"r": bson.Binary(os.urandom(32), 4), "p": 110},
        {"r": base64.b64encode(os.urandom(32)).decode(), "p": 110},
        {"r": bson.Binary(os.urandom(32), 0)},
        {"r": bson.Binary(os.urandom(32), 0), "p": 110, "x": 1},
    ):
        with pytest.raises(VerifierProtocolError):
            parse_client_first(bson.encode(bad))


# --- the conformance times, verified by moto ----------------------------------------------

from test_conformance import TIMES  # noqa: E402  (midnight, year boundary, leap day, epoch, …)


@pytest.mark.parametrize("unix_time", TIMES)
@pytest.mark.parametrize("temporary", [False, True], ids=["long-term", "assume-role"])
def test_signatures_at_the_conformance_times_are_accepted(peers, unix_time, temporary):
    """moto does not check clock skew, so signatures made with a frozen clock at the
    conformance-test times (midnight, year boundary, leap day, the epoch) are verified too:
    the date in the credential scope and X-Amz-Date must agree with the signature."""
    key = (peers.temp_access_key_id, peers.temp_secret_access_key, peers.temp_session_token) if temporary else (
        peers.access_key_id,
        peers.secret_access_key,
    )
    nonce = os.urandom(32)
    verifier = peers.verifier("sts.us-west-2.amazonaws.com")
    with docauth.Credentials(*key) as creds, docauth.AwsConversation._for_testing(creds, nonce, unix_time) as conv:
        vconv = verifier.start(conv.client_first())
        assert vconv.client_nonce == nonce
        final = conv.client_final(vconv.server_first)
    answer = vconv.finish(final)
    assert answer.ok, answer.describe()
    assert answer.arn == (peers.assumed_role_arn if temporary else peers.user_arn)
