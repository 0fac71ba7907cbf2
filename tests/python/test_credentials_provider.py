"""docauth.CredentialsProvider through the Python binding, against its own moto server
(subprocess, signature checking ON) set up as the DocumentDB guide sets up AWS
(tests/moto/credentials_setup.py). Resolved credentials sign a MONGODB-AWS conversation
that the verifier forwards to moto, which answers with the db user's assumed role."""

from __future__ import annotations

import datetime
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from peers.verifier import MongoDbAwsVerifier

import docauth

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto():
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/moto-api/data.json", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        out = subprocess.run(
            [sys.executable, str(REPO / "tests/moto/credentials_setup.py"), url],
            check=True,
            capture_output=True,
        )
        setup = json.loads(out.stdout)
        req = urllib.request.Request(
            url + "/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
        )
        urllib.request.urlopen(req, timeout=10).read()
        yield url, setup
    finally:
        proc.kill()
        proc.wait()


def _assumed(url: str, role_arn: str) -> int:
    data = json.load(urllib.request.urlopen(url + "/moto-api/data.json", timeout=10))
    return sum(1 for r in data.get("sts", {}).get("AssumedRole", []) if r["role_arn"] == role_arn)


def _assumed_keys(url: str, role_arn: str) -> set[str]:
    """Access key ids moto's STS issued for `role_arn`."""
    data = json.load(urllib.request.urlopen(url + "/moto-api/data.json", timeout=10))
    return {r["access_key_id"] for r in data.get("sts", {}).get("AssumedRole", []) if r["role_arn"] == role_arn}


def _config(url: str, setup: dict, **database: str) -> dict:
    return {
        "source": {
            "type": "static",
            "access_key_id": setup["access_key_id"],
            "secret_access_key": setup["secret_access_key"],
        },
        "region": "us-east-1",
        "sts_endpoint": url,
        "database": database,
    }


def test_resolved_credentials_sign_as_the_db_user_role(moto):
    url, setup = moto
    config = _config(url, setup, assume_role_arn=setup["assume_role_arn"], external_id=setup["external_id"])
    with docauth.CredentialsProvider(config) as provider:
        for db_user in ("teleport-docdb-user", setup["db_user_role_arn"]):
            with provider.resolve(db_user, "alice") as creds, docauth.AwsConversation(creds) as conv:
                # The temporary key moto issued for the db user's role, read back from the library.
                assert creds.access_key_id.startswith("ASIA"), creds.access_key_id
                assert creds.access_key_id != setup["access_key_id"]
                assert creds.access_key_id in _assumed_keys(url, setup["db_user_role_arn"])
                assert creds.access_key_id in repr(creds)
                left = (creds.expiry - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
                assert 3000 < left <= 3600 + 120, creds.expiry
                verifier = MongoDbAwsVerifier(url, "sts.amazonaws.com").start(conv.client_first())
                answer = verifier.finish(conv.client_final(verifier.server_first))
                assert answer.ok, answer.describe()
                assert answer.arn == f"arn:aws:sts::{setup['account']}:assumed-role/teleport-docdb-user/alice"
        assert _assumed(url, setup["db_user_role_arn"]) == 1  # name and ARN share one entry
        provider.invalidate("teleport-docdb-user")
        provider.resolve("teleport-docdb-user", "alice").close()
        assert _assumed(url, setup["db_user_role_arn"]) == 2


def test_access_denied_names_both_arns_and_the_trust_policy(moto):
    url, setup = moto
    with docauth.CredentialsProvider(_config(url, setup, account_id=setup["account"])) as provider:
        with pytest.raises(docauth.AwsAssumeRoleDeniedError) as e:
            provider.resolve("untrusted-role", "alice")
    message = str(e.value)
    assert setup["user_arn"] in message
    assert setup["untrusted_role_arn"] in message
    assert "trust policy" in message
    assert setup["secret_access_key"] not in message


def test_bad_input_raises_the_class_of_its_code(moto):
    url, setup = moto
    with pytest.raises(docauth.InvalidConfigError, match="sts_endpont"):
        docauth.CredentialsProvider('{"sts_endpont": "http://127.0.0.1:1"}')
    provider = docauth.CredentialsProvider(_config(url, setup, account_id=setup["account"]))
    with pytest.raises(docauth.AwsInvalidRoleArnError, match="not a `role`"):
        provider.resolve("arn:aws:iam::123456789012:user/alice")
    provider.close()
    provider.close()
    with pytest.raises(docauth.UseAfterCloseError):
        provider.resolve("teleport-docdb-user")
