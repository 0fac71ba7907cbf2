"""The `peers` fixture of the acceptance tests: moto (STS, signature checking ON) + verifier.

Under `make test` the peers come from tests/peers/with_moto.py (DOCAUTH_TEST_* variables);
when those are absent (plain `pytest tests/python`), the session starts its own moto and
verifier in-process, with the same set-up and the same proof that signature checking is ON.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ -> `peers`

from peers.verifier import MongoDbAwsVerifier, VerifierClient, VerifierHttpService  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Peers:
    sts_endpoint: str
    verifier_url: str
    sts_host: str
    access_key_id: str
    secret_access_key: str
    user_arn: str
    temp_access_key_id: str
    temp_secret_access_key: str
    temp_session_token: str
    assumed_role_arn: str

    def verifier(self, sts_host: str | None = None) -> MongoDbAwsVerifier:
        return MongoDbAwsVerifier(self.sts_endpoint, sts_host or self.sts_host)

    def client(self) -> VerifierClient:
        return VerifierClient(self.verifier_url)


def _from_env() -> Peers | None:
    e = os.environ
    if "DOCAUTH_TEST_VERIFIER_URL" not in e:
        return None
    return Peers(
        sts_endpoint=e["DOCAUTH_TEST_STS_ENDPOINT"],
        verifier_url=e["DOCAUTH_TEST_VERIFIER_URL"],
        sts_host=e["DOCAUTH_TEST_STS_HOST"],
        access_key_id=e["DOCAUTH_TEST_AWS_ACCESS_KEY_ID"],
        secret_access_key=e["DOCAUTH_TEST_AWS_SECRET_ACCESS_KEY"],
        user_arn=e["DOCAUTH_TEST_USER_ARN"],
        temp_access_key_id=e["DOCAUTH_TEST_TEMP_ACCESS_KEY_ID"],
        temp_secret_access_key=e["DOCAUTH_TEST_TEMP_SECRET_ACCESS_KEY"],
        temp_session_token=e["DOCAUTH_TEST_TEMP_SESSION_TOKEN"],
        assumed_role_arn=e["DOCAUTH_TEST_ASSUMED_ROLE_ARN"],
    )


@pytest.fixture(scope="session")
def peers():
    found = _from_env()
    if found is not None:
        yield found
        return
    from peers.moto_sts import start_moto_sts

    moto = start_moto_sts()
    service = VerifierHttpService(MongoDbAwsVerifier(moto.endpoint, "sts.amazonaws.com")).start()
    try:
        yield Peers(
            sts_endpoint=moto.endpoint,
            verifier_url=service.url,
            sts_host="sts.amazonaws.com",
            access_key_id=moto.access_key_id,
            secret_access_key=moto.secret_access_key,
            user_arn=moto.user_arn,
            temp_access_key_id=moto.temp_access_key_id,
            temp_secret_access_key=moto.temp_secret_access_key,
            temp_session_token=moto.temp_session_token,
            assumed_role_arn=moto.assumed_role_arn,
        )
    finally:
        service.stop()
        moto.stop()


@pytest.fixture(scope="module")
def docdb(peers):
    """The DocumentDB stand-in (TLS, MONGODB-AWS checked by moto's STS) in front of SecantusDB,
    knowing the db user's role as a `$external` user; one per test module. Modules that need
    another backend or other users define their own `docdb`."""
    from peers.docdb.harness import start_docdb
    from peers.docdb.standin import principal_for_arn

    role_arn = principal_for_arn(peers.assumed_role_arn)
    d = start_docdb("secantusdb", sts_endpoint=peers.sts_endpoint, sts_host=peers.sts_host, user_arns=[role_arn])
    try:
        yield d
    finally:
        d.stop()
