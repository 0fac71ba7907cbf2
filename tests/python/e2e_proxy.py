"""Shared helpers of the end-to-end tests: the three example proxies (C, Go, Python) as child
processes, their config files, their `listening on` line and their audit JSON lines; the Go
driver client (tests/e2e/goclient) and the same workload run with pymongo.

Every proxy has the same command line, config file and output (the contract in
examples/*/README or docs): `<proxy> CONFIG_FILE`; `docauth-proxy: listening on HOST:PORT` on
stderr once ready; one audit event per line on stdout; SIGTERM → exit 0.

A missing proxy binary or Go client is a skip for a plain `pytest`, and a failure when
`DOCAUTH_TEST_REQUIRE_PEERS=1` (set by `make test-python`): CI must not pass by skipping.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterable

import bson
import pymongo
import pytest
from pymongo.errors import PyMongoError

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "build"
GOCLIENT_SRC = REPO / "tests" / "e2e" / "goclient"
GOCLIENT = BUILD / "e2e" / "goclient"
LISTENING = re.compile(r"^docauth-proxy: listening on (\S+):(\d+)$")
ALLOWED_DB = "test"
ROLE_NAME = "teleport-docdb-user"
ACCOUNT_ID = "123456789012"


def peers_required() -> bool:
    return os.environ.get("DOCAUTH_TEST_REQUIRE_PEERS") == "1"


def missing(what: str) -> None:
    """Skip (plain pytest) or fail (`make test`) because a peer or a program is missing."""
    if peers_required():
        pytest.fail(f"{what} (DOCAUTH_TEST_REQUIRE_PEERS=1: nothing may be skipped)")
    pytest.skip(what)


def proxy_command(kind: str) -> list[str]:
    """The command line of one example proxy, less its config file argument."""
    if kind == "c":
        path = Path(os.environ.get("DOCAUTH_C_PROXY", BUILD / "examples" / "docauth-proxy"))
        cmd = [str(path)]
    elif kind == "go":
        path = BUILD / "examples" / "docauth-proxy-go"
        cmd = [str(path)]
    elif kind == "python":
        path = REPO / "examples" / "python" / "docauth_proxy.py"
        cmd = [sys.executable, str(path)]
    else:
        raise ValueError(kind)
    if not path.exists():
        missing(f"{path} missing: run `make test-python` (it builds the example proxies)")
    return cmd


# ---------------------------------------------------------------------------------------
# A raw client: one OP_MSG at a time, every byte known (no driver's monitoring connections)


def op_msg(request_id: int, doc: dict[str, Any]) -> bytes:
    body = struct.pack("<I", 0) + b"\x00" + bson.encode(doc)
    return struct.pack("<iiii", 16 + len(body), request_id, 0, 2013) + body


def read_op_msg(sock: socket.socket) -> tuple[int, dict[str, Any], int]:
    """One OP_MSG reply: (its responseTo, its body document, its length in bytes)."""

    def exactly(n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            assert chunk, "connection closed"
            buf += chunk
        return buf

    length, _req, response_to, opcode = struct.unpack("<iiii", exactly(16))
    rest = exactly(length - 16)
    assert opcode == 2013 and rest[4] == 0
    return response_to, bson.decode(rest[5:]), length


# ---------------------------------------------------------------------------------------
# Config files


def policy_config(db_port: int, db_names: Iterable[str] = (ALLOWED_DB,)) -> dict[str, Any]:
    """Engine config: identity `alice` holds role `access`, which allows every db user and
    only `db_names` on database `docdb` (the stand-in)."""
    return {
        "roles": [
            {
                "kind": "role",
                "version": "v7",
                "metadata": {"name": "access"},
                "spec": {"allow": {"db_labels": {"*": "*"}, "db_users": ["*"], "db_names": list(db_names)}},
            }
        ],
        "databases": [
            {
                "name": "docdb",
                "protocol": "mongodb",
                "uri": f"localhost:{db_port}",
                "labels": {"env": "e2e"},
                "aws": {"account_id": ACCOUNT_ID, "region": "us-east-1"},
            }
        ],
        "identities": [{"user": "alice", "roles": ["access"], "traits": {}}],
    }


def credentials_config(peers: Any) -> dict[str, Any]:
    """Provider settings: the IAM user's long-term keys (the proxy's service credentials)
    assume the db user's role at moto's STS."""
    return {
        "source": {
            "type": "static",
            "access_key_id": peers.access_key_id,
            "secret_access_key": peers.secret_access_key,
        },
        "region": "us-east-1",
        "sts_endpoint": peers.sts_endpoint,
    }


def session_params(docdb: Any, *, port: int | None = None, db_user: str = ROLE_NAME, **extra: Any) -> dict[str, Any]:
    p: dict[str, Any] = {
        "identity": "alice",
        "database": "docdb",
        "db_user": db_user,
        "db_name": ALLOWED_DB,
        "database_uri": f"mongodb://localhost:{port if port is not None else docdb.port}/?tls=true",
        "ca_file": str(docdb.pki.bundle),
        "connect_timeout_ms": 10_000,
        "handshake_timeout_ms": 15_000,
    }
    p.update(extra)
    return p


def write_config(directory: Path, *, policy: dict, credentials: dict, session: dict, threads: int = 2) -> Path:
    """Writes policy.json, credentials.json and proxy.conf (relative paths, as the contract
    resolves them against the config file's directory) and returns proxy.conf."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "policy.json").write_text(json.dumps(policy, indent=2) + "\n")
    (directory / "credentials.json").write_text(json.dumps(credentials) + "\n")
    os.chmod(directory / "credentials.json", 0o600)
    conf = directory / "proxy.conf"
    conf.write_text(
        "# written by tests/python/e2e_proxy.py\n"
        "listen = 127.0.0.1:0\n"
        "policy = policy.json\n"
        "credentials = credentials.json\n"
        f"threads = {threads}\n"
        "\n"
        f"session = {json.dumps(session)}\n"
    )
    return conf


# ---------------------------------------------------------------------------------------
# A running proxy


class ProxyProcess:
    """One example proxy as a child process; reads its stderr (`listening on`) and stdout
    (audit JSON lines) on two threads so that it never blocks on a full pipe."""

    def __init__(self, kind: str, config: Path, *, ready_timeout: float = 60.0) -> None:
        self.kind = kind
        self.config = config
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[str] = []
        self.events: list[dict[str, Any]] = []
        self.event_times: list[float] = []  # time.monotonic() when each event was read
        self.bad_lines: list[str] = []
        self._cond = threading.Condition()
        env = dict(os.environ)
        env.setdefault("DOCAUTH_LIBRARY", str(REPO / "target" / "release" / "libdocauth.so"))
        self.process = subprocess.Popen(
            proxy_command(kind) + [str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        self._threads = [
            threading.Thread(target=self._read, args=(self.process.stdout, True), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, False), daemon=True),
        ]
        for t in self._threads:
            t.start()
        self.host, self.port = self._wait_listening(ready_timeout)

    def _read(self, stream: Any, is_stdout: bool) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._cond:
                if is_stdout:
                    self.stdout_lines.append(line)
                    try:
                        event = json.loads(line)
                        if not isinstance(event, dict):
                            raise ValueError("not an object")
                        self.events.append(event)
                        self.event_times.append(time.monotonic())
                    except ValueError:
                        self.bad_lines.append(line)
                else:
                    self.stderr_lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _wait_listening(self, timeout: float) -> tuple[str, int]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.stderr_lines:
                    m = LISTENING.match(line)
                    if m:
                        return m.group(1), int(m.group(2))
                if self.process.poll() is not None or time.monotonic() > deadline:
                    break
                self._cond.wait(0.2)
        self.process.kill()
        self.process.wait(10)
        raise AssertionError(
            f"{self.kind} proxy did not say `listening on` (exit {self.process.returncode}): "
            + "\n".join(self.stderr_lines[-30:])
        )

    @property
    def uri(self) -> str:
        return f"mongodb://{self.host}:{self.port}/?directConnection=true&retryWrites=false&serverSelectionTimeoutMS=30000"

    def forget_events(self) -> None:
        """Drops the audit lines read so far (a long run keeps only what it still checks)."""
        with self._cond:
            self.events.clear()
            self.event_times.clear()
            self.stdout_lines.clear()

    def mark(self) -> int:
        """Index of the next audit event: pass it to `events_since` after a client ran."""
        with self._cond:
            return len(self.events)

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 60.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.events):
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise AssertionError(
                        f"{self.kind} proxy: audit condition not met; last events: {self.events[-5:]}; "
                        f"stderr: {self.stderr_lines[-10:]}"
                    )
                self._cond.wait(0.2)
            return list(self.events)

    def sessions_ended(self, since: int, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Waits until every session that started after `since` has its db.session.end, and
        returns the events from `since` on."""

        def done(events: list[dict[str, Any]]) -> bool:
            new = events[since:]
            started = {e.get("sid") for e in new if e.get("event") == "db.session.start"}
            ended = {e.get("sid") for e in new if e.get("event") == "db.session.end"}
            return bool(started) and started <= ended

        return self.wait_for(done, timeout)[since:]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
                raise AssertionError(f"{self.kind} proxy ignored SIGTERM for 30 s")
        for t in self._threads:
            t.join(10)
        return self.process.returncode


def start_proxy(kind: str, directory: Path, *, policy: dict, credentials: dict, session: dict) -> ProxyProcess:
    return ProxyProcess(kind, write_config(directory, policy=policy, credentials=credentials, session=session))


# ---------------------------------------------------------------------------------------
# Clients: the Go driver (tests/e2e/goclient) and pymongo, the same steps


_goclient_lock = threading.Lock()
_goclient_built = False


def goclient() -> Path:
    """Builds tests/e2e/goclient into build/e2e/goclient once per test run (go's build cache
    makes an up-to-date build instant)."""
    global _goclient_built
    with _goclient_lock:
        if not _goclient_built:
            try:
                subprocess.run(
                    ["go", "build", "-o", str(GOCLIENT), "."],
                    cwd=GOCLIENT_SRC,
                    check=True,
                    capture_output=True,
                    timeout=900,
                )
            except (OSError, subprocess.CalledProcessError) as e:
                if not GOCLIENT.exists():
                    missing(f"cannot build {GOCLIENT_SRC}: {getattr(e, 'stderr', e)!r}")
            _goclient_built = True
    return GOCLIENT


def run_goclient(uri: str, workload: str, coll: str, marker: str, timeout: float = 600) -> dict[str, dict]:
    out = subprocess.run(
        [str(goclient()), "-uri", uri, "-workload", workload, "-coll", coll, "-marker", marker],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert out.returncode == 0, f"goclient exit {out.returncode}: {out.stderr[-3000:]}"
    report = json.loads(out.stdout)
    return {s["name"]: s for s in report["steps"]}


class _Steps:
    def __init__(self) -> None:
        self.steps: dict[str, dict] = {}

    def run(self, name: str, fn: Callable[[], Any]) -> None:
        step: dict[str, Any] = {"name": name}
        try:
            step["value"] = fn()
            step["ok"] = True
        except PyMongoError as e:
            step["ok"] = False
            step["code"] = getattr(e, "code", None) or 0
            step["error"] = str(e)[:2000]
        except AssertionError as e:
            step["ok"] = False
            step["code"] = 0
            step["error"] = f"AssertionError: {e}"[:2000]
        self.steps[name] = step


def run_pymongo(uri: str, workload: str, coll_name: str, marker: str, docs: int = 10_000, big_mib: int = 15) -> dict[str, dict]:
    """The goclient's steps with pymongo, same names, same values."""
    assert workload in ("full", "short")
    s = _Steps()
    client = pymongo.MongoClient(uri)
    try:
        db = client[ALLOWED_DB]
        c = db[coll_name]
        big = db[coll_name + "_big"]
        s.run("ping", lambda: client.admin.command("ping") and None)
        s.run("drop", lambda: c.drop())
        n = docs if workload == "full" else 10
        s.run("insert_many", lambda: len(c.insert_many([{"_id": i, "ssn": f"{marker}-{i}", "n": i} for i in range(n)]).inserted_ids))
        s.run("find_one", lambda: c.find_one({"ssn": f"{marker}-3"})["ssn"])
        if workload == "full":
            s.run("count", lambda: c.count_documents({}))

            def find_getmore() -> int:
                seen = 0
                for doc in c.find({}, batch_size=1000, sort=[("_id", 1)]):
                    assert doc["_id"] == seen and doc["ssn"] == f"{marker}-{seen}", doc
                    seen += 1
                return seen

            s.run("find_getmore", find_getmore)
            s.run("update", lambda: c.update_one({"_id": 1}, {"$set": {"x": 1}}).modified_count)
            s.run("delete", lambda: c.delete_one({"_id": 2}).deleted_count)
            s.run("count_after", lambda: c.count_documents({}))
            s.run("aggregate", lambda: list(c.aggregate([{"$match": {"_id": {"$lt": 5}}}, {"$count": "n"}]))[0]["n"])
            unit = f"{marker}-big-"
            size = big_mib << 20
            blob = (unit * (size // len(unit) + 1))[:size]

            def big_insert() -> int:
                big.drop()
                big.insert_one({"_id": "big", "blob": blob})
                return len(blob)

            def big_find() -> int:
                got = big.find_one({"_id": "big"})["blob"]
                assert got == blob, f"big document came back changed ({len(got)} bytes)"
                return len(got)

            s.run("big_insert", big_insert)
            s.run("big_find", big_find)

        other = client["other"]
        s.run("admin_list_databases", lambda: client.list_database_names())
        s.run("other_insert", lambda: other.stuff.insert_one({"ssn": f"{marker}-other"}) and None)
        if workload == "full":
            s.run("admin_find", lambda: client.admin["system.users"].find_one({}))
            s.run("other_find", lambda: other.stuff.find_one({}))
            s.run("out_other", lambda: list(c.aggregate([{"$out": {"db": "other", "coll": "copy"}}])) and None)
            s.run("merge_other", lambda: list(c.aggregate([{"$merge": {"into": {"db": "other", "coll": "copy"}}}])) and None)
            lookup = {"$lookup": {"from": {"db": "other", "coll": "secrets"}, "localField": "_id", "foreignField": "_id", "as": "joined"}}
            s.run("lookup_other", lambda: list(c.aggregate([lookup])) and None)
            s.run("rename_other", lambda: client.admin.command("renameCollection", f"{ALLOWED_DB}.{coll_name}", to="other.copy") and None)
            s.run(
                "sasl_start",
                lambda: client["$external"].command("saslStart", 1, mechanism="MONGODB-AWS", payload=b"\x05\x00\x00\x00\x00") and None,
            )
        s.run("after_denials", lambda: c.find_one({"_id": 3})["ssn"])

        def drop_end() -> None:
            big.drop()
            c.drop()

        s.run("drop_end", drop_end)
    finally:
        client.close()
    return s.steps


# ---------------------------------------------------------------------------------------
# Assertions shared by every proxy × driver × backend


ALLOWED_FULL = {
    "ping": None,
    "drop": None,
    "insert_many": 10_000,
    "find_one": "{marker}-3",
    "count": 10_000,
    "find_getmore": 10_000,
    "update": 1,
    "delete": 1,
    "count_after": 9_999,
    "aggregate": 4,
    "big_insert": 15 << 20,
    "big_find": 15 << 20,
    "after_denials": "{marker}-3",
    "drop_end": None,
}
ALLOWED_SHORT = {"ping": None, "drop": None, "insert_many": 10, "find_one": "{marker}-3", "after_denials": "{marker}-3", "drop_end": None}
# Denied step -> a database its errmsg must name.
DENIED_FULL = {
    "admin_list_databases": "admin",
    "other_insert": "other",
    "admin_find": "admin",
    "other_find": "other",
    "out_other": "other",
    "merge_other": "other",
    "lookup_other": "other",
    "rename_other": "other",
    "sasl_start": "saslStart",
}
DENIED_SHORT = {k: DENIED_FULL[k] for k in ("admin_list_databases", "other_insert")}


def check_steps(steps: dict[str, dict], workload: str, marker: str) -> None:
    allowed = ALLOWED_FULL if workload == "full" else ALLOWED_SHORT
    denied = DENIED_FULL if workload == "full" else DENIED_SHORT
    assert set(steps) == set(allowed) | set(denied), sorted(steps)
    problems = []
    for name, want in allowed.items():
        s = steps[name]
        if not s["ok"]:
            problems.append(f"{name} failed: code {s.get('code')}: {s.get('error')}")
        elif want is not None and s.get("value") != (want.format(marker=marker) if isinstance(want, str) else want):
            problems.append(f"{name} gave {s.get('value')!r}, expected {want!r}")
    for name, named in denied.items():
        s = steps[name]
        if s["ok"] or s.get("code") != 13:
            problems.append(f"{name} not denied with code 13: {s}")
        elif named not in s.get("error", ""):
            problems.append(f"{name}: the error does not name {named!r}: {s.get('error')}")
    assert not problems, "\n".join(problems)


def check_audit(proxy: ProxyProcess, events: list[dict[str, Any]], *, forbidden: Iterable[str], denied_commands: Iterable[str]) -> None:
    """One db.session.query(.failed) event per client message, every session started and
    ended, the denials recorded, no document value and no secret in the audit stream or in
    the proxy's stderr."""
    assert not proxy.bad_lines, f"non-JSON lines on the proxy's stdout: {proxy.bad_lines[:3]}"
    sids = {e["sid"] for e in events if e.get("event") == "db.session.start"}
    assert sids
    for sid in sids:
        mine = [e for e in events if e.get("sid") == sid]
        start = [e for e in mine if e["event"] == "db.session.start"]
        end = [e for e in mine if e["event"] == "db.session.end"]
        queries = [e for e in mine if e["event"] in ("db.session.query", "db.session.query.failed")]
        assert len(start) == 1 and start[0]["success"] is True, start
        assert len(end) == 1, end
        assert len(queries) == end[0]["messages_from_client"], (
            f"session {sid}: {len(queries)} query events for {end[0]['messages_from_client']} client messages"
        )
        for q in queries:
            assert q["allowed"] is (q["event"] == "db.session.query"), q
    failed = [e for e in events if e.get("event") == "db.session.query.failed"]
    failed_commands = {e.get("command") for e in failed}
    for cmd in denied_commands:
        assert cmd in failed_commands, f"no db.session.query.failed for {cmd}: {sorted(map(str, failed_commands))}"
    for e in failed:
        assert e["allowed"] is False and e.get("error"), e
    raw = "\n".join(proxy.stdout_lines + proxy.stderr_lines)
    for value in forbidden:
        assert value and value not in raw, f"a document value or a secret ({value[:6]}…) reached the proxy's output"


def moto_secrets(sts_endpoint: str) -> list[str]:
    """Every secret key and session token moto has issued by AssumeRole (the proxy's
    resolved db-user credentials among them), read from moto's state dump."""
    with urllib.request.urlopen(sts_endpoint + "/moto-api/data.json", timeout=30) as r:
        data = json.load(r)
    found = []
    for role in data.get("sts", {}).get("AssumedRole", []):
        for key in ("secret_access_key", "session_token"):
            if role.get(key):
                found.append(role[key])
    return found
