"""The C example proxy (examples/c/docauth-proxy.c, built as build/examples/docauth-proxy)
as a user runs it: a config file, pymongo through it to the DocumentDB stand-in (TLS,
MONGODB-AWS checked by moto's STS with signature checking ON, SecantusDB behind), audit
JSON lines on stdout, SIGTERM, configuration errors, and its audit log replayed by
`docauth-check replay` under other policies.

    make build/examples/docauth-proxy
    .venv/bin/python tests/peers/with_moto.py -- .venv/bin/pytest tests/python/test_c_proxy.py

The full matrix (both backends, Go driver, the Go and Python proxies) is test_e2e's.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pymongo
import pytest
from pymongo.errors import OperationFailure

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ -> `peers`

from e2e_proxy import credentials_config, op_msg, policy_config, read_op_msg, session_params  # noqa: E402
from e2e_proxy import write_config as write_proxy_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PROXY = Path(os.environ.get("DOCAUTH_C_PROXY", ROOT / "build/examples/docauth-proxy"))
CHECK = Path(os.environ.get("DOCAUTH_CHECK", ROOT / "target/release/docauth-check"))
LISTENING = "docauth-proxy: listening on "


def write_config(tmp_path: Path, docdb, peers, *, db_names=("test",)) -> Path:
    """proxy.conf (+ policy.json, credentials.json) the way the e2e tests write it."""
    return write_proxy_config(
        tmp_path,
        policy=policy_config(docdb.port, db_names),
        credentials=credentials_config(peers),
        session=session_params(docdb),
    )


def start_proxy(conf: Path) -> tuple[subprocess.Popen, str, int]:
    assert PROXY.exists(), f"{PROXY} missing: run `make build/examples/docauth-proxy`"
    proc = subprocess.Popen([str(PROXY), str(conf)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()  # blocks until the proxy is ready (or exits: "")
    if not line.startswith(LISTENING):
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"proxy did not start: {line}{err}")
    host, _, port = line[len(LISTENING) :].strip().rpartition(":")
    return proc, host, int(port)


def test_pymongo_through_the_c_proxy_allowed_refused_audited_and_sigterm(tmp_path, docdb, peers):
    proc, host, port = start_proxy(write_config(tmp_path, docdb, peers))
    try:
        assert host == "127.0.0.1" and port > 0
        # Two clients at once: each connection is its own session.
        a = pymongo.MongoClient(host, port, directConnection=True, retryWrites=False, serverSelectionTimeoutMS=20_000)
        b = pymongo.MongoClient(host, port, directConnection=True, retryWrites=False, serverSelectionTimeoutMS=20_000)
        a.test.cproxy.drop()
        a.test.cproxy.insert_many([{"_id": i, "ssn": f"SECRET-{i}"} for i in range(100)])
        assert b.test.cproxy.count_documents({}) == 100
        assert b.test.cproxy.find_one({"_id": 7})["ssn"] == "SECRET-7"
        with pytest.raises(OperationFailure) as denied:
            a.admin.command("listDatabases")
        assert denied.value.code == 13
        assert "admin" in str(denied.value)
        with pytest.raises(OperationFailure) as denied:
            b.other.stuff.insert_one({"x": 1})
        assert denied.value.code == 13
        assert a.test.cproxy.count_documents({"_id": {"$lt": 10}}) == 10  # the session went on
        # SIGTERM with both clients still connected: the proxy shuts their sessions down.
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        a.close()
        b.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    events = [json.loads(line) for line in out.splitlines()]  # every line is one JSON object
    kinds = [e["event"] for e in events]
    starts = [e for e in events if e["event"] == "db.session.start"]
    assert len(starts) >= 2 and all(e["success"] is True for e in starts), starts
    assert all(e.get("client_addr", "").startswith("127.0.0.1:") for e in starts), starts
    assert kinds.count("db.session.end") == len(starts)
    refused = [e for e in events if e["event"] == "db.session.query.failed"]
    assert all(e["allowed"] is False for e in refused), refused
    assert any("admin" in e["databases"] for e in refused), refused
    assert any("other" in e["databases"] for e in refused), refused
    assert any(e["event"] == "db.session.query" and e["allowed"] and e["command"] == "insert" for e in events)
    everything = out + err
    assert "SECRET-" not in everything
    assert peers.secret_access_key not in everything


def replay(config: Path, audit_log: Path) -> subprocess.CompletedProcess:
    assert CHECK.exists(), f"{CHECK} missing: run `make lib` (it builds docauth-check)"
    return subprocess.run([str(CHECK), "replay", "--config", str(config), str(audit_log)], capture_output=True, text=True, timeout=120)


def test_an_audit_log_of_the_c_proxy_replays_under_a_new_policy(tmp_path, docdb, peers):
    # Recorded under db_names [test, other]: writes to both allowed, listDatabases (every
    # database) denied.
    proc, host, port = start_proxy(write_config(tmp_path, docdb, peers, db_names=("test", "other")))
    try:
        client = pymongo.MongoClient(host, port, directConnection=True, retryWrites=False, serverSelectionTimeoutMS=20_000)
        client.test.replay.drop()
        client.test.replay.insert_one({"_id": 1, "ssn": "SECRET-1"})
        assert client.test.replay.find_one({"_id": 1})["ssn"] == "SECRET-1"
        client.other.replay.insert_one({"_id": 2, "ssn": "SECRET-2"})
        with pytest.raises(OperationFailure) as denied:
            client.admin.command("listDatabases")
        assert denied.value.code == 13
        client.close()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "SECRET-" not in out  # the log the operator keeps holds no document value
    audit_log = tmp_path / "audit.jsonl"
    audit_log.write_text(out)
    events = [json.loads(line) for line in out.splitlines()]
    decided = [e for e in events if e["event"].startswith("db.session.query") and e["decided_by"] == "policy"]
    assert all(e["user_roles"] == ["access"] and e["identity_source"] == "config" for e in decided), decided

    def line_of(command: str, database: str) -> int:
        (n,) = [i + 1 for i, e in enumerate(events) if e.get("command") == command and e.get("database") == database]
        return n

    n = len(decided)
    # Under the policy it was recorded with, nothing changes: replay decides as the relay did.
    policy = json.loads((tmp_path / "policy.json").read_text())
    r = replay(tmp_path / "policy.json", audit_log)
    assert (r.returncode, r.stdout, r.stderr) == (0, f"replayed {n} decisions: none would change\n", "")

    # Stricter (db_names [test]): only the write to `other` would now be denied.
    policy["roles"][0]["spec"]["allow"]["db_names"] = ["test"]
    (tmp_path / "strict.json").write_text(json.dumps(policy))
    r = replay(tmp_path / "strict.json", audit_log)
    assert r.returncode == 1 and r.stderr == "", r
    assert r.stdout.splitlines() == [
        f"{audit_log}:{line_of('insert', 'other')}: ALLOW -> DENY: alice on docdb as teleport-docdb-user: insert other.replay",
        '    now: denied: no single role allows db user "teleport-docdb-user" on database "docdb" with database name "other" (allow.db_names of roles ["access"])',
        '    was: allowed by role(s) [access]: allow.db_labels match database "docdb", allow.db_users match "teleport-docdb-user", allow.db_names match database name(s) [other]',
        f"replayed {n} decisions: 1 would change (1 ALLOW -> DENY, 0 DENY -> ALLOW)",
    ], r.stdout

    # Wider (db_names ["*"]): listDatabases, which reaches every database, would be allowed.
    policy["roles"][0]["spec"]["allow"]["db_names"] = ["*"]
    (tmp_path / "wide.json").write_text(json.dumps(policy))
    r = replay(tmp_path / "wide.json", audit_log)
    assert r.returncode == 1 and r.stderr == "", r
    assert r.stdout.splitlines() == [
        f"{audit_log}:{line_of('listDatabases', 'admin')}: DENY -> ALLOW: alice on docdb as teleport-docdb-user: listDatabases admin and unlisted databases (`listDatabases` reaches every database or the whole server)",
        '    now: allowed by role(s) [access]: allow.db_labels match database "docdb", allow.db_users match "teleport-docdb-user", allow.db_names match database name(s) [admin]',
        '    was: libdocauth cannot list the databases command "listDatabases" reaches (`listDatabases` reaches every database or the whole server); denied: the command needs access to every database (db_names "*") on database "docdb", which no single role allows db user "teleport-docdb-user" on database "docdb" with database name "*" (allow.db_names of roles ["access"])',
        f"replayed {n} decisions: 1 would change (0 ALLOW -> DENY, 1 DENY -> ALLOW)",
    ], r.stdout


def test_a_refused_connection_is_answered_with_code_13_and_audited(tmp_path, docdb, peers):
    # The policy allows db_names [other] only: the session's own db_name `test` is refused at start.
    proc, host, port = start_proxy(write_config(tmp_path, docdb, peers, db_names=("other",)))
    try:
        with socket.create_connection((host, port), timeout=60) as sock:
            sock.sendall(op_msg(7, {"hello": 1, "$db": "admin"}))
            response_to, reply, _ = read_op_msg(sock)
        assert response_to == 7
        assert reply["ok"] == 0 and reply["code"] == 13 and reply["codeName"] == "Unauthorized", reply
        assert "test" in reply["errmsg"], reply
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    starts = [json.loads(line) for line in out.splitlines() if '"db.session.start"' in line]
    assert len(starts) == 1 and starts[0]["success"] is False, out
    assert starts[0]["error_code"] == "DOCAUTH_RESULT_SESSION_ACCESS_DENIED", starts
    assert "DOCAUTH_RESULT_SESSION_ACCESS_DENIED" in err  # the proxy reports how the session ended


BAD_CONFIGS = [
    # (config text, line named in the message, text the message must contain)
    ("listen = 127.0.0.1:0\npolicy = p.yaml\nlisten_port = 5\n", 3, "listen_port"),
    ("# comment\n\nlisten = 127.0.0.1:99999\n", 3, "listen"),
    ("listen = localhost\n", 1, "listen"),
    ("threads = many\n", 1, "threads"),
    ("listen = 127.0.0.1:0\nlisten = 127.0.0.1:1\n", 2, "twice"),
    ("just some words\n", 1, "key = value"),
    ('session = {"identity": "alice", "database": "docdb",}\n', 1, "session"),
    ('session = {"identity": "alice", "database": "docdb", "db_user": "u", "allow_db_names": ["*"]}\n', 1, "allow_db_names"),
    ('session = {"identity": "alice", "database": "docdb", "db_user": "u", "client_addr": "1.2.3.4:5"}\n', 1, "client_addr"),
]


@pytest.mark.parametrize("text,line,needle", BAD_CONFIGS)
def test_bad_config_exits_2_naming_the_line(tmp_path, text, line, needle):
    conf = tmp_path / "bad.conf"
    conf.write_text(text)
    r = subprocess.run([str(PROXY), str(conf)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert f"{conf}:{line}:" in r.stderr and needle in r.stderr, r.stderr
    assert r.stdout == ""


def test_missing_key_and_unloadable_files_exit_2(tmp_path, docdb, peers):
    conf = write_config(tmp_path, docdb, peers)
    text = conf.read_text()
    conf.write_text("\n".join(l for l in text.splitlines() if not l.startswith("session")) + "\n")
    r = subprocess.run([str(PROXY), str(conf)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and 'missing key "session"' in r.stderr, r.stderr

    conf.write_text(text.replace("policy = policy.json", "policy = nowhere.yaml"))
    r = subprocess.run([str(PROXY), str(conf)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and f"{conf}:3: policy" in r.stderr and "nowhere.yaml" in r.stderr, r.stderr

    (tmp_path / "credentials.json").write_text('{"source": {"type": "static"}, "bogus": 1}')
    conf.write_text(text)
    r = subprocess.run([str(PROXY), str(conf)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and f"{conf}:4: credentials" in r.stderr, r.stderr
    assert peers.secret_access_key not in r.stderr


@pytest.mark.parametrize(
    "fault, code, explanation",
    [
        ("fault_close_mid_reply", "DOCAUTH_RESULT_UPSTREAM_CLOSED", "closed the connection in the middle of a reply"),
        ("fault_wrong_response_to", "DOCAUTH_RESULT_UPSTREAM_PROTOCOL", "which the client is not waiting for"),
        ("fault_malformed", "DOCAUTH_RESULT_UPSTREAM_PROTOCOL", "malformed reply"),
    ],
)
def test_a_misbehaving_database_gets_pymongo_a_clear_error_and_ends_only_its_session(
    tmp_path, docdb, peers, fault, code, explanation
):
    """The stand-in answers a `find` on a fault_* collection as a broken database would
    (tests/peers/docdb/standin.py, REPLY_FAULTS). The waiting pymongo gets code 6 naming what
    the database did, the session's end event says the same, and another client's session
    through the same proxy goes on untouched."""
    from e2e_proxy import start_proxy

    proxy = start_proxy(
        "c",
        tmp_path / "c-proxy",
        policy=policy_config(docdb.port),
        credentials=credentials_config(peers),
        session=session_params(docdb),
    )
    uri = proxy.uri + "&maxPoolSize=1&retryReads=false"
    try:
        with pymongo.MongoClient(uri) as good, pymongo.MongoClient(uri) as bad:
            assert good.test.command("ping")["ok"] == 1.0
            good.test.faults_good.insert_one({"n": 1})
            mark = proxy.mark()
            with pytest.raises(OperationFailure) as info:
                bad.test[fault].find_one({})
            assert info.value.code == 6, info.value.details
            assert info.value.details["errmsg"].startswith("libdocauth: ")
            assert explanation in info.value.details["errmsg"], info.value.details
            ended = proxy.wait_for(
                lambda events: any(
                    e.get("event") == "db.session.end" and e.get("error_code") == code for e in events[mark:]
                ),
                timeout=30,
            )
            end = next(e for e in ended[mark:] if e.get("event") == "db.session.end" and e.get("error_code") == code)
            assert explanation in end["error"], end
            # The other session never noticed.
            assert good.test.faults_good.find_one({"n": 1}, {"_id": 0}) == {"n": 1}
            good.test.faults_good.drop()
    finally:
        assert proxy.stop() == 0, proxy.stderr_lines[-20:]
