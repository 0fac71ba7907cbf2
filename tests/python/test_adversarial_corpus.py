"""The adversarial corpus (tests/adversarial/) through the C example proxy
(examples/c/docauth-proxy.c; DOCAUTH_C_PROXY chooses another tree's binary), with a session
allowed only database `test`, in front of the DocumentDB stand-in and its MessageRecorder
(the ground truth of what the proxy forwarded).

- must-deny: hand-built messages (tests/adversarial/corpus.py). Each must not reach the
  server, must get a MongoDB error reply of the request's kind (none for moreToCome), and the
  session must go on (a ping right after it is answered).
- must-allow: ordinary traffic of real drivers (the Go driver's `-workload traffic` and
  pymongo's twin, tests/adversarial/traffic.py) captured by a recording relay in front of
  the proxy: every step succeeds, every message the drivers sent reached the server, and no
  reply is a proxy denial.

tests/adversarial/known_forwarded.txt lists the must-deny cases the tree still gets wrong; a
listed case that is now refused fails the test too (remove it from the list), so the list
only shrinks. Counts per family go to build/adversarial/results.txt.

    make lib venv build/examples/docauth-proxy e2e-programs
    .venv/bin/python tests/peers/with_moto.py -- .venv/bin/pytest -q tests/python/test_adversarial_corpus.py
"""

from __future__ import annotations

import collections
import os
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ -> `peers`, `adversarial`

from adversarial import corpus, traffic  # noqa: E402
from adversarial import framing as f  # noqa: E402
from adversarial.capture import CaptureRelay, Request  # noqa: E402
from e2e_proxy import ALLOWED_DB, credentials_config, policy_config, run_goclient, session_params, start_proxy  # noqa: E402
from peers.docdb.standin import MessageRecorder  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
KNOWN_FORWARDED = ROOT / "tests" / "adversarial" / "known_forwarded.txt"
KNOWN_FALSE_DENIES = ROOT / "tests" / "adversarial" / "known_false_denies.txt"
RESULTS = ROOT / "build" / "adversarial" / "results.txt"
FIRST_CASE_ID = 0x3000_0000  # request ids of the corpus (held back by the stand-in if forwarded)
# Seconds to wait for the ping behind a case. The proxy answers in order, so once the ping's
# reply is in, any reply to the case has come before it: the wait is only long when broken.
REPLY_WAIT = 20.0
DENIAL_CODES = {13}  # Unauthorized: the proxy's denial (DESIGN.md, "Wire enforcement")

_results: dict[str, list[str]] = {}


@pytest.fixture(scope="module")
def setup(docdb, peers, tmp_path_factory):
    recorder = MessageRecorder()
    docdb.standin.recorder = recorder
    proxy = start_proxy(
        "c",
        tmp_path_factory.mktemp("adversarial"),
        policy=policy_config(docdb.port, (ALLOWED_DB,)),
        credentials=credentials_config(peers),
        session=session_params(docdb),
    )
    try:
        yield proxy, recorder
    finally:
        code = proxy.stop()
        docdb.standin.recorder = None
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"# tests/python/test_adversarial_corpus.py against {os.environ.get('DOCAUTH_C_PROXY', 'build/examples/docauth-proxy')}"]
        for section in ("must-deny", "near-misses", "must-allow"):
            lines += _results.get(section, [f"{section}: not run"])
        RESULTS.write_text("\n".join(lines) + "\n")
        assert code == 0, f"the C proxy exited {code} on SIGTERM: {proxy.stderr_lines[-10:]}"


# ---------------------------------------------------------------------------------------
# must-deny


class Closed(Exception):
    pass


class RawConnection:
    """One client connection to the proxy (one proxy session), speaking raw wire messages."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=30)
        self.buf = bytearray()
        hello_id = 0x2F00_0000 + (id(self) & 0xFFFF)
        self.send(f.op_msg(hello_id, {"hello": 1, "helloOk": True, "$db": "admin"}))
        deadline = time.monotonic() + 60
        while True:
            got = self.read(max(0.1, deadline - time.monotonic()))
            if got is None:
                raise AssertionError("the proxy did not answer the connection's hello within 60 s")
            if got[1] == hello_id:
                doc = f.decode_reply(got[0], got[2]) or {}
                assert doc.get("ok") == 1, f"hello through the proxy failed: {doc}"
                return

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise Closed(str(e)) from None

    def read(self, timeout: float) -> tuple[int, int, bytes] | None:
        """(opCode, responseTo, payload) of the next message, None on timeout; Closed on EOF."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 16:
                length = struct.unpack_from("<i", self.buf)[0]
                if len(self.buf) >= length:
                    _, _, response_to, op = f.HEADER.unpack_from(self.buf)
                    payload = bytes(self.buf[16:length])
                    del self.buf[:length]
                    return op, response_to, payload
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                return None
            except OSError as e:
                raise Closed(str(e)) from None
            if not chunk:
                raise Closed("EOF")
            self.buf += chunk

    def close(self) -> None:
        self.sock.close()


def is_error(doc: dict[str, Any] | None) -> bool:
    return doc is not None and (doc.get("ok") in (0, 0.0) or "$err" in doc)


def run_case(conn: RawConnection, recorder: MessageRecorder, case: corpus.Case, rid: int) -> tuple[str, str]:
    """Sends one case and a ping right behind it; (outcome, detail). Outcome "denied" passes."""
    ping_id = rid + 1
    mark = len(recorder)
    reply: tuple[int, dict | None] | None = None
    closed = ""
    pong: dict | None = None
    try:
        conn.send(case.build(rid))
        conn.send(f.op_msg(ping_id, {"ping": 1, "$db": ALLOWED_DB}))
        deadline = time.monotonic() + REPLY_WAIT
        while pong is None or (case.reply_op and reply is None):
            got = conn.read(max(0.0, deadline - time.monotonic()))
            if got is None:
                break
            op, response_to, payload = got
            if response_to == rid:
                reply = (op, f.decode_reply(op, payload))
            elif response_to == ping_id:
                pong = f.decode_reply(op, payload)
                deadline = min(deadline, time.monotonic() + 0.2)  # a late reply to the case
    except Closed as e:
        closed = str(e)
        time.sleep(0.2)  # let the stand-in record what may have reached it before the close
    seen = [r for r in recorder.received(mark) if r.request_id != ping_id]
    if seen:
        return "forwarded", f"the server received {len(seen)} message(s) (opcodes {sorted({r.op_code for r in seen})})"
    if closed:
        return ("denied", "closed (acceptable here)") if case.closing_ok else ("closed", f"connection closed: {closed}")
    if case.reply_op == 0:
        if reply is not None:
            return "replied_to_more_to_come", f"a reply to a moreToCome message: {reply[1]}"
    else:
        if reply is None:
            return "no_reply", "no reply to the message"
        op, doc = reply
        if not is_error(doc):
            return "not_an_error", f"reply is not an error: {doc}"
        if op != case.reply_op:
            return "wrong_reply_kind", f"reply opcode {op}, expected {case.reply_op}"
    if pong is None or pong.get("ok") != 1:
        return "session_broken", f"ping after the case: {pong}"
    return "denied", (str(reply[1].get("code")) if reply and reply[1] else "")


def load_known(path: Path = KNOWN_FORWARDED) -> dict[str, str]:
    """`id reason...` lines (# comments): case ids, or for must-allow `step:<driver>/<step>`
    and `command:<command>@<db>`."""
    known: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        case_id, _, reason = line.partition(" ")
        known[case_id] = reason.strip()
    return known


def test_must_deny_corpus_is_never_forwarded(setup):
    proxy, recorder = setup
    cases = corpus.must_deny()
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    rids = {c.id: FIRST_CASE_ID + 2 * i for i, c in enumerate(cases)}
    recorder.hold_back = set(rids.values())
    known = load_known()
    outcomes: dict[str, tuple[str, str]] = {}
    conn: RawConnection | None = None
    reconnects = 0
    try:
        for case in cases:
            if conn is None:
                conn = RawConnection(proxy.host, proxy.port)
            outcome = run_case(conn, recorder, case, rids[case.id])
            outcomes[case.id] = outcome
            if outcome[0] in ("closed", "session_broken", "no_reply") or outcome[1].startswith("closed"):
                conn.close()
                conn = None
                reconnects += 1
    finally:
        if conn is not None:
            conn.close()

    per_family: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for case in cases:
        outcome = outcomes[case.id][0]
        per_family[case.family]["total"] += 1
        per_family[case.family][outcome] += 1
    total = collections.Counter()
    lines = ["must-deny (family: total, denied, and each other outcome):"]
    for family, counts in per_family.items():
        total.update(counts)
        rest = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if k not in ("total", "denied"))
        lines.append(f"  {family}: {counts['total']} total, {counts['denied']} denied" + (f", {rest}" if rest else ""))
    failing = [i for i in ids if outcomes[i][0] != "denied"]
    lines.append(
        f"must-deny total: {total['total']}, denied {total['denied']}, forwarded {total['forwarded']}, "
        f"other failures {len(failing) - total['forwarded']}, reconnects {reconnects}, known list {len(known)}"
    )
    lines += [f"  FAIL {i}: {outcomes[i][0]}: {outcomes[i][1][:200]}" for i in failing]
    _results["must-deny"] = lines

    problems = []
    for case_id in ids:
        outcome, detail = outcomes[case_id]
        if outcome != "denied" and case_id not in known:
            problems.append(f"{case_id}: {outcome}: {detail[:300]}")
        if outcome == "denied" and case_id in known:
            problems.append(f"{case_id}: now refused as it must be: remove it from tests/adversarial/known_forwarded.txt")
    problems += [f"{k}: listed in known_forwarded.txt but not a corpus case" for k in known if k not in outcomes]
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)


# ---------------------------------------------------------------------------------------
# must-allow


def test_must_allow_near_misses_are_forwarded(setup):
    """Hand-built legitimate messages that resemble must-deny ones: each must reach the server
    (held back there, not run); a refusal is a false deny."""
    proxy, recorder = setup
    cases = corpus.must_allow()
    rids = {c.id: FIRST_CASE_ID - 0x0100_0000 + 2 * i for i, c in enumerate(cases)}
    recorder.hold_back = set(rids.values())
    known = load_known(KNOWN_FALSE_DENIES)
    outcomes: dict[str, tuple[str, str]] = {}
    conn: RawConnection | None = None
    try:
        for case in cases:
            if conn is None:
                conn = RawConnection(proxy.host, proxy.port)
            outcomes[case.id] = run_case(conn, recorder, case, rids[case.id])
            if outcomes[case.id][0] in ("closed", "session_broken", "no_reply"):
                conn.close()
                conn = None
    finally:
        if conn is not None:
            conn.close()
    refused = [i for i, (outcome, _) in outcomes.items() if outcome != "forwarded"]
    _results["near-misses"] = [f"must-allow near misses: {len(cases)} total, forwarded {len(cases) - len(refused)}, false denies {len(refused)}"] + [
        f"  FALSE DENY case:{i}: {outcomes[i][0]}: {outcomes[i][1][:200]}" for i in refused
    ]
    problems = [f"{i}: not forwarded ({outcomes[i][0]}: {outcomes[i][1][:300]})" for i in refused if f"case:{i}" not in known]
    problems += [f"case:{i}: now forwarded: remove it from tests/adversarial/known_false_denies.txt" for i in outcomes if f"case:{i}" in known and i not in refused]
    assert not problems, f"{len(problems)} false denies:\n" + "\n".join(problems)


def test_must_allow_real_driver_traffic_is_never_denied(setup):
    proxy, recorder = setup
    mark = len(recorder)
    with CaptureRelay(proxy.host, proxy.port) as relay:
        go_steps = run_goclient(relay.uri, "traffic", "adv_go", "TRAFFIC", timeout=300)
        py_steps = traffic.run(relay.uri, ALLOWED_DB, "adv_py")
    # The drivers' last messages (endSessions at close) may still be on their way to the
    # stand-in: wait until all arrived, or nothing more arrived for a second.
    received: set[int] = set()
    quiet_since = time.monotonic()
    while len(received) < len(relay.requests) and time.monotonic() - quiet_since < 1.0:
        now = {r.request_id for r in recorder.received(mark)}
        if len(now) > len(received):
            quiet_since = time.monotonic()
        received = now
        if all(r.request_id in received for r in relay.requests):
            break
        time.sleep(0.05)
    failed_steps = [(f"step:go/{n}", f"{s.get('code')}: {s.get('error')}") for n, s in go_steps.items() if not s.get("ok")]
    failed_steps += [(f"step:pymongo/{n}", f"{s.get('code')}: {s.get('error')}") for n, s in py_steps.items() if not s["ok"]]
    by_id = {r.request_id: r for r in relay.requests}
    not_forwarded = [r for r in relay.requests if r.request_id not in received]
    denials = [
        r for r in relay.replies if r.doc is not None and is_error(r.doc) and (r.doc.get("code") in DENIAL_CODES or "libdocauth" in str(r.doc.get("errmsg", "")) + str(r.doc.get("$err", "")))
    ]
    commands = collections.Counter(r.command for r in relay.requests)
    assert not relay.errors, relay.errors
    failing: dict[str, str] = dict(failed_steps)  # key (as known_false_denies.txt spells it) -> why
    for r in not_forwarded + denials:
        request = r if isinstance(r, Request) else by_id.get(r.response_to)
        key = f"command:{request.command}@{request.db}" if request else f"reply:{r.response_to}"
        failing.setdefault(key, f"{'not forwarded' if r is request else 'denial reply'}: {r}")
    _results["must-allow"] = [
        f"must-allow: {len(relay.requests)} driver messages ({len(go_steps)} Go steps, {len(py_steps)} pymongo steps), "
        f"false denies {len(not_forwarded)}, denial replies {len(denials)}, failed steps {len(failed_steps)}",
        "  commands: " + ", ".join(f"{k or '?'} {v}" for k, v in sorted(commands.items())),
    ] + [f"  FALSE DENY {key}: {why[:200]}" for key, why in sorted(failing.items())]
    assert len(relay.requests) > 100, f"too little traffic captured: {len(relay.requests)}"
    known = load_known(KNOWN_FALSE_DENIES)
    problems = [f"{key}: {why}" for key, why in failing.items() if key not in known]
    failing_keys = set(failing)
    problems += [
        f"{k}: now passes: remove it from tests/adversarial/known_false_denies.txt" for k in known if k not in failing_keys and not k.startswith("case:")
    ]
    assert not problems, "false denies of real driver traffic:\n" + "\n".join(problems)
