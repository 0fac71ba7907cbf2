"""docauth.Runtime / Session end to end with real peers: pymongo -> an accept loop in this
test that hands each socket to `Runtime.start_session` -> the library (TLS, MONGODB-AWS with
credentials the CredentialsProvider gets from moto's STS, signature checking ON) -> the
DocumentDB stand-in (tests/peers/docdb) -> SecantusDB.

Peers: moto from tests/peers/with_moto.py (DOCAUTH_TEST_* variables, `make test-python`) or,
when run alone, a moto started here; the stand-in is started by this module.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading

import pymongo
import pytest
from pymongo.errors import OperationFailure, PyMongoError

import binding_paths
import docauth

sys.path.insert(0, str(binding_paths.REPO / "tests"))  # -> `peers`

from peers.docdb.harness import DocDb, start_docdb  # noqa: E402
from peers.docdb.standin import principal_for_arn  # noqa: E402

# Shared with the Go binding's session tests.
ENGINE = (binding_paths.REPO / "tests" / "fixtures" / "session-engine.yaml").read_text()


@pytest.fixture(scope="module")
def aws():
    """(sts_endpoint, access key id, secret, role ARN as the stand-in's $external user)."""
    e = os.environ
    if "DOCAUTH_TEST_STS_ENDPOINT" in e:
        yield (
            e["DOCAUTH_TEST_STS_ENDPOINT"],
            e["DOCAUTH_TEST_AWS_ACCESS_KEY_ID"],
            e["DOCAUTH_TEST_AWS_SECRET_ACCESS_KEY"],
            e["DOCAUTH_TEST_ROLE_ARN"],
        )
        return
    from peers.moto_sts import start_moto_sts

    moto = start_moto_sts()
    try:
        yield moto.endpoint, moto.access_key_id, moto.secret_access_key, principal_for_arn(moto.assumed_role_arn)
    finally:
        moto.stop()


@pytest.fixture(scope="module")
def docdb(aws):
    sts_endpoint, _, _, role_arn = aws
    d = start_docdb("secantusdb", sts_endpoint=sts_endpoint, user_arns=[role_arn])
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture()
def engine(docdb):
    with docauth.PolicyEngine(ENGINE.replace("PORT", str(docdb.port))) as e:
        yield e


@pytest.fixture()
def provider(aws):
    sts_endpoint, akid, secret, _ = aws
    config = {
        "source": {"type": "static", "access_key_id": akid, "secret_access_key": secret},
        "region": "us-east-1",
        "sts_endpoint": sts_endpoint,
    }
    with docauth.CredentialsProvider(config) as p:
        yield p


def params(d: DocDb, identity: str = "alice", **extra) -> dict:
    p = {
        "identity": identity,
        "database": "docdb",
        "db_user": "teleport-docdb-user",
        "db_name": "test",
        "database_uri": f"mongodb://localhost:{d.port}/?tls=true",
        "ca_file": str(d.pki.bundle),
    }
    p.update(extra)
    return p


class Proxy:
    """An accept loop on loopback: each connection -> Runtime.start_session."""

    def __init__(self, runtime, params, engine, provider, on_audit=None) -> None:
        self.runtime, self.params, self.engine, self.provider = runtime, params, engine, provider
        self.events: list[dict] = []
        self.sessions: list[docauth.Session] = []
        self.lock = threading.Lock()
        self.on_audit = on_audit or self.record
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def record(self, event: dict) -> None:
        with self.lock:
            self.events.append(event)

    def _accept(self) -> None:
        while True:
            try:
                conn, addr = self.listener.accept()
            except OSError:
                return
            p = dict(self.params, client_addr=f"{addr[0]}:{addr[1]}")
            try:
                s = self.runtime.start_session(conn, p, self.engine, self.provider, on_audit=self.on_audit)
            except docauth.UseAfterCloseError:
                return  # a failing test closed the runtime first
            with self.lock:
                self.sessions.append(s)

    def client(self, **kw) -> pymongo.MongoClient:
        kw.setdefault("serverSelectionTimeoutMS", 15_000)
        return pymongo.MongoClient("127.0.0.1", self.port, directConnection=True, retryWrites=False, **kw)

    def stop_accepting(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        self.thread.join(10)
        assert not self.thread.is_alive()

    def wait_all(self) -> list:
        """Every session's outcome: SessionStats, or the exception wait() raised."""
        self.stop_accepting()
        out = []
        for s in self.sessions:
            try:
                out.append(s.wait(timeout=60))
            except docauth.DocauthError as e:
                out.append(e)
        return out


def test_allowed_denied_audit_and_stats(docdb, engine, provider, aws):
    with docauth.Runtime(threads=2) as runtime:
        proxy = Proxy(runtime, params(docdb), engine, provider)
        c = proxy.client()
        coll = c.test.people
        coll.drop()
        coll.insert_many([{"_id": i, "ssn": f"SECRET-{i}"} for i in range(100)])
        assert coll.count_documents({}) == 100
        assert coll.find_one({"_id": 7})["ssn"] == "SECRET-7"
        with pytest.raises(OperationFailure) as denied:
            c.admin.command("listDatabases")
        assert denied.value.code == 13
        with pytest.raises(OperationFailure) as denied:
            c.other.stuff.insert_one({"a": 1})
        assert denied.value.code == 13
        assert "other" in str(denied.value)
        assert coll.find_one({"_id": 8})["ssn"] == "SECRET-8"  # the session went on
        c.close()
        outcomes = proxy.wait_all()
        assert outcomes and all(isinstance(o, docauth.SessionStats) for o in outcomes), outcomes
        assert sum(o.messages_denied for o in outcomes) == 2
        assert all(o.bytes_from_client > 0 and o.messages_to_client > 0 for o in outcomes)
        for s in proxy.sessions:
            assert s.is_finished
            assert s.audit_dropped == 0
            assert s.audit_callback_errors == 0
            s.close()
        assert runtime.audit_dropped == 0
    # Closing the runtime delivered every queued event.
    events = proxy.events
    kinds = [e["event"] for e in events]
    assert kinds.count("db.session.start") == len(proxy.sessions)
    assert kinds.count("db.session.end") == len(proxy.sessions)
    assert all(e["success"] for e in events if e["event"] == "db.session.start")
    failed = [e for e in events if e["event"] == "db.session.query.failed"]
    assert sorted(e["database"] for e in failed) == ["admin", "other"]
    assert all(e["allowed"] is False and e["reason"] for e in failed)
    allowed = [e for e in events if e["event"] == "db.session.query" and e.get("database") == "test"]
    assert {e["command"] for e in allowed} >= {"insert", "find", "drop"}
    raw = json.dumps(events)
    assert "SECRET-" not in raw
    assert aws[2] not in raw  # the service's secret key


def test_connection_level_denial(docdb, engine, provider):
    # mallory may not use db user teleport-docdb-user: refused before reaching the database.
    with docauth.Runtime(threads=1) as runtime:
        proxy = Proxy(runtime, params(docdb, identity="mallory"), engine, provider)
        # The client's first message (pymongo's handshake hello) is answered with code 13,
        # so pymongo reports the server unusable with that error.
        c = proxy.client(serverSelectionTimeoutMS=2_000)
        with pytest.raises(PyMongoError) as denied:
            c.test.people.find_one({})
        assert "'code': 13" in str(denied.value) and "Unauthorized" in str(denied.value)
        assert 'user "mallory" may not reach database "docdb"' in str(denied.value)
        c.close()
        outcomes = proxy.wait_all()
        assert outcomes
        for o in outcomes:
            assert isinstance(o, docauth.SessionAccessDeniedError), o
            assert o.code == 453
    starts = [e for e in proxy.events if e["event"] == "db.session.start"]
    assert starts and all(e["success"] is False for e in starts)
    assert all(e["error_code"] == "DOCAUTH_RESULT_SESSION_ACCESS_DENIED" for e in starts)


def test_shutdown_from_another_thread_ends_wait(docdb, engine, provider):
    with docauth.Runtime() as runtime:
        proxy = Proxy(runtime, params(docdb), engine, provider)
        c = proxy.client()
        assert c.test.command("ping")["ok"] == 1
        proxy.stop_accepting()
        sessions = list(proxy.sessions)
        assert sessions and not any(s.is_finished for s in sessions)
        results: list = []

        def waiter(s: docauth.Session) -> None:
            results.append(s.wait())

        threads = [threading.Thread(target=waiter, args=(s,)) for s in sessions]
        for t in threads:
            t.start()
        for s in sessions:
            s.shutdown()
            s.shutdown()  # idempotent
        for t in threads:
            t.join(60)
            assert not t.is_alive()
        assert len(results) == len(sessions)
        assert all(isinstance(r, docauth.SessionStats) for r in results)
        assert all(s.is_finished for s in sessions)
        assert sessions[0].wait() == results[0] or sessions[0].wait() in results  # same outcome again
        c.close()
        for s in sessions:
            s.close()
            s.close()
            with pytest.raises(docauth.UseAfterCloseError):
                s.shutdown()


def test_a_raising_audit_callback_is_contained(docdb, engine, provider):
    calls = []

    def bad(event: dict) -> None:
        calls.append(event["event"])
        raise RuntimeError("consumer bug")

    with docauth.Runtime(threads=1) as runtime:
        proxy = Proxy(runtime, params(docdb), engine, provider, on_audit=bad)
        c = proxy.client()
        c.test.people.insert_one({"x": 1})
        with pytest.raises(OperationFailure) as denied:
            c.admin.command("listDatabases")
        assert denied.value.code == 13
        c.close()
        outcomes = proxy.wait_all()
        assert all(isinstance(o, docauth.SessionStats) for o in outcomes), outcomes
    sessions = proxy.sessions
    assert "db.session.end" in calls and "db.session.query.failed" in calls
    assert sum(s.audit_callback_errors for s in sessions) == len(calls)
    assert all(isinstance(s.audit_callback_error, RuntimeError) for s in sessions)


def test_wait_from_the_audit_callback_is_refused(docdb, engine, provider):
    seen: list = []
    holder: list[docauth.Session] = []
    ended = threading.Event()

    def on_audit(event: dict) -> None:
        if holder:
            try:
                holder[0].wait()
                seen.append(None)
            except Exception as e:  # noqa: BLE001 - recorded and asserted on below
                seen.append(e)
        if event["event"] == "db.session.end":
            ended.set()

    with docauth.Runtime(threads=1) as runtime:
        proxy = Proxy(runtime, params(docdb), engine, provider, on_audit=on_audit)
        raw = socket.create_connection(("127.0.0.1", proxy.port))
        sessions = []
        while not sessions:
            proxy.thread.join(0.01)
            with proxy.lock:
                sessions = list(proxy.sessions)
        holder.append(sessions[0])
        raw.close()  # the session ends; its end event is delivered after holder is set
        assert ended.wait(60)  # nobody waited for the session before its callback tried
        assert all(isinstance(o, docauth.SessionStats) for o in proxy.wait_all())
    assert seen and all(isinstance(e, docauth.CalledFromAuditCallbackError) for e in seen), seen


def test_bad_arguments(engine, provider, docdb):
    from docauth import session as session_module

    before = set(session_module._audit_targets)  # other tests' sessions may hold theirs
    with docauth.Runtime(threads=1) as runtime:
        # Unknown parameter: refused; the socket was handed over and is closed.
        a, b = socket.socketpair()
        with pytest.raises(docauth.InvalidConfigError, match="allow_db_names"):
            runtime.start_session(a, params(docdb, allow_db_names=["*"]), engine, provider, on_audit=print)
        assert a.fileno() == -1
        assert b.recv(1) == b""  # the library closed its end
        b.close()
        # A descriptor that is not a socket.
        r, w = os.pipe()
        with pytest.raises(docauth.InvalidArgumentError):
            runtime.start_session(r, params(docdb), engine, provider)
        with pytest.raises(OSError):
            os.fstat(r)  # closed by the library
        os.close(w)
        # Type errors leave the socket alone.
        s = socket.socket()
        with pytest.raises(TypeError):
            runtime.start_session(s, params(docdb), "engine", provider)
        assert s.fileno() != -1
        s.close()
        assert set(session_module._audit_targets) <= before  # the refused starts released theirs
    with pytest.raises(docauth.UseAfterCloseError):
        runtime.start_session(0, params(docdb), engine, provider)


def test_session_cap_refuses_the_session_past_it(engine, provider, docdb):
    with docauth.Runtime(threads=1) as runtime:
        with pytest.raises(docauth.InvalidArgumentError, match="at least 1"):
            runtime.set_max_sessions(0)
        with pytest.raises(TypeError):
            runtime.set_max_sessions(True)
        runtime.set_max_sessions(1)
        events = []
        ended = threading.Event()

        def on_audit(event):
            events.append(event)
            if event["event"] == "db.session.end":
                ended.set()

        first_client, first_end = socket.socketpair()
        first = runtime.start_session(first_end, params(docdb), engine, provider)
        second_client, second_end = socket.socketpair()
        second = runtime.start_session(second_end, params(docdb), engine, provider, on_audit=on_audit)
        with pytest.raises(docauth.SessionLimitError, match="already runs 1 sessions"):
            second.wait(timeout=30)
        assert ended.wait(30)
        assert [e["error_code"] for e in events if e["event"] == "db.session.start"] == [
            "DOCAUTH_RESULT_SESSION_LIMIT"
        ]
        first.shutdown()
        first.wait(timeout=30)
        for s in (first_client, second_client):
            s.close()
