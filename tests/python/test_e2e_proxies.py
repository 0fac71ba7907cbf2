"""Issue 5's end-to-end acceptance: real clients (pymongo and the Go driver) → an example proxy
(C, Go or Python: build/examples/docauth-proxy, build/examples/docauth-proxy-go,
examples/python/docauth_proxy.py) → libdocauth session (engine + credentials provider, TLS,
MONGODB-AWS signed with credentials resolved at moto's STS) → the DocumentDB stand-in
(tests/peers/docdb, signature checked by moto with signature checking ON) → SecantusDB or
FerretDB.

Per backend (module-scoped, started once): one stand-in set-up and one C proxy shared by the
full workloads; the Go and Python proxies and the failure cases start their own proxy.
Run under tests/peers/with_moto.py (`make test-python`), or alone (the `peers` fixture then
starts moto itself). Helpers: tests/python/e2e_proxy.py; Go client: tests/e2e/goclient.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pymongo
import pytest
from pymongo.errors import PyMongoError

from e2e_proxy import (
    check_audit,
    check_steps,
    credentials_config,
    goclient,
    missing,
    moto_secrets,
    policy_config,
    run_goclient,
    run_pymongo,
    session_params,
    start_proxy,
)
from peers.docdb.backends import ferretdb_binary
from peers.docdb.harness import start_docdb
from peers.docdb.standin import principal_for_arn

# What every denial of the full workload is recorded as, by command name.
DENIED_COMMANDS = ("listDatabases", "insert", "find", "aggregate", "renameCollection", "saslStart")


@pytest.fixture(scope="module", params=["secantusdb", "ferretdb"])
def docdb(request, peers):
    if request.param == "ferretdb" and not ferretdb_binary().exists():
        missing(f"{ferretdb_binary()} missing: run `make ferretdb`")
    # The $external user is the db user's role (the provider's assumed-role ARN maps to it).
    role_arn = principal_for_arn(peers.assumed_role_arn)
    d = start_docdb(request.param, sts_endpoint=peers.sts_endpoint, sts_host=peers.sts_host, user_arns=[role_arn])
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, docdb) -> Path:
    return tmp_path_factory.mktemp(f"e2e-{docdb.backend.name}")


@pytest.fixture(scope="module")
def c_proxy(docdb, peers, workdir):
    proxy = start_proxy(
        "c",
        workdir / "c-proxy",
        policy=policy_config(docdb.port),
        credentials=credentials_config(peers),
        session=session_params(docdb),
    )
    try:
        yield proxy
    finally:
        assert proxy.stop() == 0, proxy.stderr_lines[-20:]


def run_client(driver: str, uri: str, workload: str, coll: str, marker: str) -> dict[str, dict]:
    if driver == "go":
        return run_goclient(uri, workload, coll, marker)
    return run_pymongo(uri, workload, coll, marker)


def forbidden_values(peers, marker: str) -> list[str]:
    """Document values written (the marker prefixes every one) and every secret around."""
    return [
        marker,
        peers.secret_access_key,
        peers.temp_secret_access_key,
        peers.temp_session_token,
        *moto_secrets(peers.sts_endpoint),
    ]


@pytest.mark.parametrize("driver", ["pymongo", "go"])
def test_full_workload_through_the_c_proxy(driver, docdb, peers, c_proxy):
    if driver == "go":
        goclient()  # build (once) before the clock of any session starts
    marker = f"E2EMARK{secrets.token_hex(6)}"
    mark = c_proxy.mark()
    steps = run_client(driver, c_proxy.uri, "full", f"e2e_{driver}", marker)
    check_steps(steps, "full", marker)
    events = c_proxy.sessions_ended(mark)
    # The resolved db-user credentials are among moto's AssumeRole results now.
    forbidden = forbidden_values(peers, marker)
    assert len(forbidden) > 5, "moto reported no AssumeRole secrets: the proxy resolved none?"
    check_audit(c_proxy, events, forbidden=forbidden, denied_commands=DENIED_COMMANDS)
    # The writes really reached the backend, and nothing reached `other`.
    backend = pymongo.MongoClient(docdb.backend.host, docdb.backend.port, directConnection=True)
    try:
        assert "other" not in backend.list_database_names()
    finally:
        backend.close()


@pytest.mark.parametrize("kind", ["go", "python"])
def test_go_and_python_example_proxies(kind, docdb, peers, workdir):
    goclient()
    proxy = start_proxy(
        kind,
        workdir / f"{kind}-proxy",
        policy=policy_config(docdb.port),
        credentials=credentials_config(peers),
        session=session_params(docdb),
    )
    try:
        marker = f"E2EMARK{secrets.token_hex(6)}"
        mark = proxy.mark()
        for driver in ("pymongo", "go"):
            check_steps(run_client(driver, proxy.uri, "short", f"e2e_{kind}_{driver}", marker), "short", marker)
        events = proxy.sessions_ended(mark)
        check_audit(proxy, events, forbidden=forbidden_values(peers, marker), denied_commands=("listDatabases", "insert"))
    finally:
        assert proxy.stop() == 0, proxy.stderr_lines[-20:]


# ---------------------------------------------------------------------------------------
# Failures through the C proxy: the explanation reaches the client and the audit stream.


def failed_start(docdb, peers, workdir, name: str, **session) -> tuple[str, dict, float]:
    """Starts a C proxy with these session params, connects pymongo, returns the client's
    error text, the db.session.start failure event and the seconds from the client's
    connection to that event."""
    proxy = start_proxy(
        "c",
        workdir / name,
        policy=policy_config(docdb.port),
        credentials=credentials_config(peers),
        session=session_params(docdb, **session),
    )
    try:
        started = time.monotonic()
        client = pymongo.MongoClient(proxy.uri.replace("serverSelectionTimeoutMS=30000", "serverSelectionTimeoutMS=5000"))
        try:
            with pytest.raises(PyMongoError) as failed:
                client.test.command("ping")
        finally:
            client.close()
        events = proxy.wait_for(lambda ev: any(e.get("event") == "db.session.start" for e in ev))
        index = next(i for i, e in enumerate(events) if e.get("event") == "db.session.start")
        start = events[index]
        elapsed = proxy.event_times[index] - started
    finally:
        assert proxy.stop() == 0, proxy.stderr_lines[-20:]
    assert start["success"] is False, start
    raw = "\n".join(proxy.stdout_lines + proxy.stderr_lines)
    for secret in (peers.secret_access_key, *moto_secrets(peers.sts_endpoint)):
        assert secret not in raw and secret not in str(failed.value)
    return str(failed.value), start, elapsed


def test_role_without_external_user_fails_with_the_mongodb_aws_explanation(docdb, peers, workdir):
    # teleport-docdb-external is a real role the service credentials may assume at moto, so
    # MONGODB-AWS is signed and verified by STS, but the cluster has no $external user for
    # it: DocumentDB answers AuthenticationFailed, and the proxy explains the createUser fix.
    client_error, start, _ = failed_start(docdb, peers, workdir, "untrusted-role", db_user="teleport-docdb-external")
    assert start["error_code"] == "DOCAUTH_RESULT_UPSTREAM_AUTH_FAILED", start
    for text in (start["error"], client_error):
        assert "MONGODB-AWS" in text and "$external" in text, text


def test_role_that_does_not_trust_the_service_fails_with_the_assume_role_explanation(docdb, peers, workdir):
    # teleport-docdb-chained trusts only the teleport-docdb-user role, not the service's own
    # user: the service credentials are not trusted by the db user's role, STS refuses the
    # AssumeRole and nothing is signed for DocumentDB; the explanation names both ARNs and
    # the trust policy.
    account = peers.user_arn.split(":")[4]
    role_arn = f"arn:aws:iam::{account}:role/teleport-docdb-chained"
    client_error, start, _ = failed_start(docdb, peers, workdir, "role-not-trusting", db_user="teleport-docdb-chained")
    assert start["error_code"] == "DOCAUTH_RESULT_AWS_ASSUME_ROLE_DENIED", start
    for text in (start["error"], client_error):
        assert "trust policy" in text and role_arn in text and peers.user_arn in text, text


def test_certificate_without_san_fails_with_the_legacy_cn_explanation(docdb, peers, workdir):
    client_error, start, _ = failed_start(docdb, peers, workdir, "legacy-cn", port=docdb.legacy.port)
    assert start["error_code"] == "DOCAUTH_RESULT_TLS_LEGACY_COMMON_NAME", start
    for text in (start["error"], client_error):
        assert "legacy Common Name" in text and "rotate" in text, text


@pytest.mark.parametrize("fault", ["black_hole", "silent"])
def test_black_holed_port_fails_with_the_timeout_explanation(docdb, peers, workdir, fault):
    # black_hole: SYNs are dropped (a full accept queue), the TCP connect times out;
    # silent: TCP completes but nothing ever answers, the TLS handshake times out.
    port = getattr(docdb.faults, f"{fault}_port")
    client_error, start, elapsed = failed_start(
        docdb, peers, workdir, fault, port=port, connect_timeout_ms=2000, handshake_timeout_ms=2000
    )
    assert start["error_code"] == "DOCAUTH_RESULT_CONNECT_TIMEOUT", start
    # Which step timed out, and what to check: the security group for a dropped SYN, the port
    # and TLS for a server that never answers.
    advice = {"black_hole": "security group", "silent": "did not finish the TLS/MongoDB handshake"}[fault]
    for text in (start["error"], client_error):
        assert f"127.0.0.1:{port}" in text or f"localhost:{port}" in text, text
        assert "2000 ms" in text, text
        assert advice in text, text
    # After the configured timeout (plus the client's own round trip), not a default one.
    assert 1.9 <= elapsed < 2.0 + 8.0, f"the timeout explanation came after {elapsed:.1f} s"
