"""End to end: pymongo -> a tiny proxy that hands each accepted socket's fd to
docauth_session_start (C ABI through ctypes) with a policy engine and a credentials provider
-> TLS + MONGODB-AWS (the provider AssumeRoles into the db user's role through moto's STS;
the stand-in maps the assumed-role ARN to its `$external` user) -> the DocumentDB stand-in
(signature verified by moto's STS) -> SecantusDB/FerretDB.

The proxy here is deliberately minimal (accept loop + raw ctypes); the bindings' own session
API is the Python worker's. Run under tests/peers/with_moto.py (make test-python).
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import sys
import threading
from pathlib import Path

import pymongo
import pytest
from pymongo.errors import OperationFailure

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ -> `peers`

from peers.docdb.backends import ferretdb_binary  # noqa: E402
from peers.docdb.harness import start_docdb  # noqa: E402
from peers.docdb.standin import principal_for_arn  # noqa: E402

LIB = os.environ.get("DOCAUTH_LIBRARY", str(Path(__file__).resolve().parents[2] / "target/release/libdocauth.so"))

AUDIT_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t)
FREE_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p)

DOCAUTH_RESULT_SESSION_ACCESS_DENIED = 453


class Abi:
    def __init__(self) -> None:
        lib = ctypes.CDLL(LIB)
        p = ctypes.c_void_p
        lib.docauth_runtime_new.argtypes = [ctypes.c_uint32, ctypes.POINTER(p), ctypes.POINTER(p)]
        lib.docauth_runtime_free.argtypes = [p]
        lib.docauth_engine_new.argtypes = [ctypes.c_char_p, ctypes.POINTER(p), ctypes.POINTER(p)]
        lib.docauth_engine_free.argtypes = [p]
        lib.docauth_credentials_provider_new.argtypes = [ctypes.c_char_p, ctypes.POINTER(p), ctypes.POINTER(p)]
        lib.docauth_credentials_provider_free.argtypes = [p]
        lib.docauth_session_start.argtypes = [p, ctypes.c_int, ctypes.c_char_p, p, p, AUDIT_FN, p, FREE_FN, ctypes.POINTER(p), ctypes.POINTER(p)]
        lib.docauth_session_wait.argtypes = [p, p, ctypes.POINTER(p)]
        lib.docauth_session_shutdown.argtypes = [p]
        lib.docauth_session_free.argtypes = [p]
        lib.docauth_error_message.argtypes = [p]
        lib.docauth_error_message.restype = ctypes.c_char_p
        lib.docauth_error_free.argtypes = [p]
        self.lib = lib

    def check(self, result: int, err: ctypes.c_void_p) -> None:
        if result != 0:
            msg = self.lib.docauth_error_message(err).decode()
            self.lib.docauth_error_free(err)
            raise RuntimeError(f"docauth result {result}: {msg}")


def engine_config(d, db_names: list[str], peers) -> str:
    """The engine configuration: role `access` (every db user, `db_names`) and the database
    `my-docdb` whose `uri` is the stand-in's host:port (the session's default URI) and whose
    `aws.account_id` (where sessions take it from) is moto's account."""
    return json.dumps(
        {
            "roles": [
                {
                    "kind": "role",
                    "version": "v7",
                    "metadata": {"name": "access"},
                    "spec": {"allow": {"db_labels": {"*": "*"}, "db_users": ["*"], "db_names": db_names}},
                }
            ],
            "databases": [
                {
                    "name": "my-docdb",
                    "uri": f"localhost:{d.port}",
                    "labels": {"env": "test"},
                    "aws": {"account_id": peers.user_arn.split(":")[4]},
                }
            ],
            "identities": [{"user": "alice", "roles": ["access"]}],
        }
    )


def provider_config(peers) -> str:
    """The service's own credentials are the IAM user's long-term key (DOCAUTH_TEST_*):
    the provider AssumeRoles into the db user's role through moto's STS."""
    return json.dumps(
        {
            "source": {"type": "static", "access_key_id": peers.access_key_id, "secret_access_key": peers.secret_access_key},
            "region": "us-east-1",
            "sts_endpoint": peers.sts_endpoint,
        }
    )


class Proxy:
    """Accepts on loopback; each connection becomes a docauth session."""

    def __init__(self, abi: Abi, params: dict, engine_json: str, provider_json: str) -> None:
        self.abi, self.params = abi, params
        self.events: list[dict] = []
        self.lock = threading.Lock()
        self.sessions: list[ctypes.c_void_p] = []
        rt, err = ctypes.c_void_p(), ctypes.c_void_p()
        abi.check(abi.lib.docauth_runtime_new(2, ctypes.byref(rt), ctypes.byref(err)), err)
        self.runtime = rt
        engine, provider = ctypes.c_void_p(), ctypes.c_void_p()
        abi.check(abi.lib.docauth_engine_new(engine_json.encode(), ctypes.byref(engine), ctypes.byref(err)), err)
        abi.check(abi.lib.docauth_credentials_provider_new(provider_json.encode(), ctypes.byref(provider), ctypes.byref(err)), err)
        self.engine, self.provider = engine, provider

        def on_event(_user_data, event_json, _len):
            with self.lock:
                self.events.append(json.loads(event_json.decode()))

        self.audit = AUDIT_FN(on_event)  # kept alive as long as the runtime
        self.free = FREE_FN(lambda _u: None)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, addr = self.listener.accept()
            except OSError:
                return
            params = dict(self.params, client_addr=f"{addr[0]}:{addr[1]}")
            session, err = ctypes.c_void_p(), ctypes.c_void_p()
            r = self.abi.lib.docauth_session_start(
                self.runtime, conn.detach(), json.dumps(params).encode(), self.engine, self.provider,
                self.audit, None, self.free, ctypes.byref(session), ctypes.byref(err),
            )
            self.abi.check(r, err)
            with self.lock:
                self.sessions.append(session)

    def wait_all(self) -> list[int]:
        """The result of every session (after the client closed)."""
        results = []
        for s in self.sessions:
            err = ctypes.c_void_p()
            r = self.abi.lib.docauth_session_wait(s, None, ctypes.byref(err))
            if r != 0:
                self.abi.lib.docauth_error_free(err)
            results.append(r)
        return results

    def close(self) -> None:
        # Stop accepting before the runtime goes: no session may start on a freed runtime.
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # unblocks accept() on Linux
        except OSError:
            pass
        self.listener.close()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()
        for s in self.sessions:
            self.abi.lib.docauth_session_free(s)
        self.abi.lib.docauth_runtime_free(self.runtime)
        self.abi.lib.docauth_engine_free(self.engine)
        self.abi.lib.docauth_credentials_provider_free(self.provider)


@pytest.fixture(scope="module", params=["secantusdb", "ferretdb"])
def docdb(request, peers):
    if request.param == "ferretdb" and not os.access(ferretdb_binary(), os.X_OK):
        pytest.skip(f"{ferretdb_binary()} missing: run `make ferretdb`")
    role_arn = principal_for_arn(peers.assumed_role_arn)
    d = start_docdb(request.param, sts_endpoint=peers.sts_endpoint, sts_host=peers.sts_host, user_arns=[role_arn])
    try:
        yield d
    finally:
        d.stop()


def params_for(d, **extra) -> dict:
    p = {
        "identity": {"user": "alice", "roles": ["access"]},
        "database": "my-docdb",
        "ca_file": str(d.pki.bundle),
        "db_user": "teleport-docdb-user",
        "db_name": "test",
    }
    p.update(extra)
    return p


def test_pymongo_through_a_session(docdb, peers):
    abi = Abi()
    proxy = Proxy(abi, params_for(docdb), engine_config(docdb, ["test"], peers), provider_config(peers))
    try:
        c = pymongo.MongoClient("127.0.0.1", proxy.port, directConnection=True, serverSelectionTimeoutMS=15_000, retryWrites=False)
        coll = c.test.people
        coll.drop()
        coll.insert_many([{"_id": i, "ssn": f"SECRET-{i}"} for i in range(10_000)])
        assert coll.count_documents({}) == 10_000
        assert len(list(coll.find({}, batch_size=1000))) == 10_000  # getMore
        coll.update_one({"_id": 1}, {"$set": {"x": 1}})
        coll.delete_one({"_id": 2})
        assert coll.count_documents({}) == 9_999
        assert list(coll.aggregate([{"$match": {"_id": {"$lt": 5}}}, {"$count": "n"}])) == [{"n": 4}]
        big = c.test.big
        big.drop()
        blob = "x" * (15 * 1024 * 1024)
        big.insert_one({"_id": "big", "blob": blob})
        assert len(big.find_one({"_id": "big"})["blob"]) == len(blob)
        with pytest.raises(OperationFailure) as denied:
            c.admin.command("listDatabases")
        assert denied.value.code == 13
        with pytest.raises(OperationFailure) as denied:
            c.other.stuff.insert_one({"a": 1})
        assert denied.value.code == 13
        assert "other" in str(denied.value)
        assert "db_names" in str(denied.value) and "access" in str(denied.value)
        with pytest.raises(OperationFailure) as denied:
            list(coll.aggregate([{"$out": {"db": "other", "coll": "copy"}}]))
        assert denied.value.code == 13
        # The session went on.
        assert coll.find_one({"_id": 3})["ssn"] == "SECRET-3"
        c.close()
    finally:
        proxy.close()
    kinds = [e["event"] for e in proxy.events]
    assert kinds[0] == "db.session.start" and proxy.events[0]["success"] is True
    assert "db.session.query.failed" in kinds
    assert proxy.events[0]["db_service"] == "my-docdb"
    assert proxy.events[0]["db_uri"] == f"localhost:{docdb.port}"  # from the engine's database uri
    raw = json.dumps(proxy.events)
    assert "SECRET-" not in raw
    assert peers.secret_access_key not in raw


def test_the_engine_denies_the_session_at_connection_level(docdb, peers):
    abi = Abi()
    proxy = Proxy(abi, params_for(docdb, identity="alice", db_name="admin"), engine_config(docdb, ["test"], peers), provider_config(peers))
    try:
        c = pymongo.MongoClient("127.0.0.1", proxy.port, directConnection=True, serverSelectionTimeoutMS=3_000)
        with pytest.raises(Exception) as failed:
            c.test.command("ping")
        assert "Unauthorized" in str(failed.value) or "access denied" in str(failed.value)
        c.close()
        results = proxy.wait_all()
    finally:
        proxy.close()
    assert results and all(r == DOCAUTH_RESULT_SESSION_ACCESS_DENIED for r in results), results
    start = [e for e in proxy.events if e["event"] == "db.session.start"]
    assert start and all(e["success"] is False for e in start)
    assert start[0]["error_code"] == "DOCAUTH_RESULT_SESSION_ACCESS_DENIED"
    assert '"admin"' in start[0]["error"] and "db_names" in start[0]["error"]


def test_untrusted_credentials_fail_with_the_mongodb_aws_explanation(docdb, peers):
    # A role the service may assume, but that is not a $external user of the cluster.
    account = peers.user_arn.split(":")[4]
    abi = Abi()
    p = params_for(docdb, db_user=f"arn:aws:iam::{account}:role/teleport-docdb-external")
    proxy = Proxy(abi, p, engine_config(docdb, ["test"], peers), provider_config(peers))
    try:
        c = pymongo.MongoClient("127.0.0.1", proxy.port, directConnection=True, serverSelectionTimeoutMS=5_000)
        with pytest.raises(Exception) as failed:
            c.test.command("ping")
        assert "$external" in str(failed.value) or "MONGODB-AWS" in str(failed.value)
        c.close()
    finally:
        proxy.close()
    start = [e for e in proxy.events if e["event"] == "db.session.start"]
    assert start and start[0]["success"] is False
    assert start[0]["error_code"] == "DOCAUTH_RESULT_UPSTREAM_AUTH_FAILED"
    assert "$external" in start[0]["error"]


def test_legacy_common_name_certificate_is_explained(docdb, peers):
    abi = Abi()
    p = params_for(docdb, database_uri=f"mongodb://localhost:{docdb.legacy.port}/?tls=true")
    proxy = Proxy(abi, p, engine_config(docdb, ["test"], peers), provider_config(peers))
    try:
        c = pymongo.MongoClient("127.0.0.1", proxy.port, directConnection=True, serverSelectionTimeoutMS=5_000)
        with pytest.raises(Exception):
            c.test.command("ping")
        c.close()
    finally:
        proxy.close()
    start = [e for e in proxy.events if e["event"] == "db.session.start"]
    assert start[0]["error_code"] == "DOCAUTH_RESULT_TLS_LEGACY_COMMON_NAME"
    assert "legacy Common Name" in start[0]["error"]
