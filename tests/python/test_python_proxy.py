"""Smoke test of the Python example proxy (examples/python/docauth_proxy.py) as a user runs
it: a config file, pymongo through it to the DocumentDB stand-in (TLS, MONGODB-AWS checked
by moto's STS with signature checking ON, SecantusDB behind), audit JSON lines on stdout,
SIGTERM -> exit 0, a bad configuration -> exit 2 naming the line. The full matrix across
proxies and backends is test_e2e's.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pymongo
import pytest
from pymongo.errors import OperationFailure

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ -> `peers`

from e2e_proxy import credentials_config, policy_config, session_params  # noqa: E402
from e2e_proxy import write_config as write_proxy_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PROXY = [sys.executable, str(ROOT / "examples/python/docauth_proxy.py")]
LISTENING = "docauth-proxy: listening on "


def write_config(tmp_path: Path, docdb, peers) -> Path:
    """proxy.conf (+ policy.json, credentials.json) the way the e2e tests write it."""
    return write_proxy_config(
        tmp_path, policy=policy_config(docdb.port), credentials=credentials_config(peers), session=session_params(docdb)
    )


def test_pymongo_through_the_python_proxy(tmp_path, docdb, peers):
    proc = subprocess.Popen(
        [*PROXY, str(write_config(tmp_path, docdb, peers))], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = proc.stderr.readline()  # blocks until ready (or "" if it exited)
        assert line.startswith(LISTENING), line + proc.stderr.read()
        host, _, port = line[len(LISTENING) :].strip().rpartition(":")
        assert host == "127.0.0.1" and int(port) > 0
        c = pymongo.MongoClient(host, int(port), directConnection=True, retryWrites=False, serverSelectionTimeoutMS=20_000)
        c.test.pyproxy.drop()
        c.test.pyproxy.insert_many([{"_id": i, "ssn": f"SECRET-{i}"} for i in range(10)])
        assert c.test.pyproxy.find_one({"_id": 3})["ssn"] == "SECRET-3"
        with pytest.raises(OperationFailure) as denied:
            c.admin.command("listDatabases")
        assert denied.value.code == 13
        assert c.test.pyproxy.count_documents({}) == 10  # the session went on
        # SIGTERM with the client still connected: the proxy shuts its sessions down.
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        c.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    events = [json.loads(line) for line in out.splitlines()]  # every line is one JSON object
    starts = [e for e in events if e["event"] == "db.session.start"]
    assert starts and all(e["success"] is True for e in starts), starts
    assert all(e.get("client_addr", "").startswith("127.0.0.1:") for e in starts)
    assert sum(e["event"] == "db.session.end" for e in events) == len(starts)
    failed = [e for e in events if e["event"] == "db.session.query.failed"]
    assert [e["database"] for e in failed] == ["admin"]
    assert "SECRET-" not in out + err
    assert peers.secret_access_key not in out + err


@pytest.mark.parametrize(
    "text,line,needle",
    [
        ("listen = 127.0.0.1:0\npolicy = p.yaml\nlisten_port = 5\n", 3, "listen_port"),
        ("# comment\n\nlisten = 127.0.0.1:99999\n", 3, "listen"),
        ("listen = 127.0.0.1:0\nlisten = 127.0.0.1:1\n", 2, "twice"),
        ('session = {"identity": "alice", "database": "docdb", "db_user": "u", "client_addr": "1.2.3.4:5"}\n', 1, "client_addr"),
    ],
)
def test_bad_config_exits_2_naming_the_line(tmp_path, text, line, needle):
    conf = tmp_path / "bad.conf"
    conf.write_text(text)
    r = subprocess.run([*PROXY, str(conf)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert f"{conf}:{line}:" in r.stderr and needle in r.stderr, r.stderr
    assert r.stdout == ""
