"""Metrics through the C example proxy (examples/c/docauth-proxy.c with `metrics = ...`):
real sessions to the DocumentDB stand-in (TLS, MONGODB-AWS checked by moto's STS), and the
exposition at /metrics read by the Prometheus project's own parser
(prometheus_client.parser), counting exactly what the sessions did.

The client is a raw socket speaking OP_MSG (one connection = one session, every byte
known), not a driver, whose monitoring connections would make the counts depend on timing.

    make build/examples/docauth-proxy
    .venv/bin/python tests/peers/with_moto.py -- .venv/bin/pytest tests/python/test_metrics_c_proxy.py
"""

from __future__ import annotations

import re
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ -> `peers`

from e2e_proxy import (  # noqa: E402
    ProxyProcess,
    credentials_config,
    op_msg,
    policy_config,
    read_op_msg,
    session_params,
    write_config,
)

METRICS_ON = re.compile(r"^docauth-proxy: metrics on (\S+):(\d+)$")


def start(tmp_path: Path, docdb: Any, peers: Any, kind: str = "c", **session: Any) -> tuple[ProxyProcess, str]:
    conf = write_config(
        tmp_path,
        policy=policy_config(docdb.port, ("test",)),
        credentials=credentials_config(peers),
        session=session_params(docdb, **session),
    )
    conf.write_text(conf.read_text() + "metrics = 127.0.0.1:0\n")
    proxy = ProxyProcess(kind, conf)
    found = [m for m in map(METRICS_ON.match, proxy.stderr_lines) if m]
    assert found, proxy.stderr_lines
    return proxy, f"http://{found[0].group(1)}:{found[0].group(2)}"


def get(url: str, accept: str = "") -> tuple[str, str]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=30) as r:
        return r.headers["Content-Type"], r.read().decode("utf-8")


class Exposition:
    """One scrape, parsed by prometheus_client: value(sample name, **labels)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples = {
            (s.name, frozenset(s.labels.items())): s.value for f in self.families.values() for s in f.samples
        }

    def value(self, name: str, **labels: str) -> float:
        key = (name, frozenset((k.rstrip("_"), v) for k, v in labels.items()))
        assert key in self.samples, f"no sample {name}{labels} in:\n{self.text}"
        return self.samples[key]

    def nonzero(self, prefix: str) -> dict[tuple[str, frozenset], float]:
        """Every sample under `prefix` that is not 0 (histograms' bucket/sum samples left out)."""
        return {
            k: v
            for k, v in self.samples.items()
            if k[0].startswith(prefix) and v != 0 and not k[0].endswith(("_bucket", "_sum"))
        }


def scrape_when(url: str, done: Any, timeout: float = 60.0) -> Exposition:
    """Scrapes until `done(exposition)` holds: the proxy's threads finish counting a moment
    after the client saw the effect (the session's end, the audit line)."""
    deadline = time.monotonic() + timeout
    while True:
        e = Exposition(get(url + "/metrics")[1])
        if done(e) or time.monotonic() > deadline:
            return e
        time.sleep(0.05)


def exchange(sock: socket.socket, request_id: int, doc: dict[str, Any]) -> tuple[int, int, dict[str, Any]]:
    """Sends one OP_MSG and reads its reply: (bytes sent, bytes received, reply document)."""
    message = op_msg(request_id, doc)
    sock.sendall(message)
    response_to, reply, length = read_op_msg(sock)
    assert response_to == request_id
    return len(message), length, reply


def test_a_session_s_messages_and_bytes_are_counted_exactly(tmp_path, docdb, peers):
    proxy, url = start(tmp_path, docdb, peers)
    try:
        assert get(url + "/healthz") == ("text/plain; charset=utf-8", "ok\n")
        before = Exposition(get(url + "/metrics")[1])
        assert before.value("docauth_sessions_started_total") == 0
        sent = received = 0
        with socket.create_connection((proxy.host, proxy.port), timeout=60) as sock:
            steps = [
                ({"hello": 1, "$db": "admin"}, 1),  # connection command: allowed
                ({"find": "metrics", "filter": {}, "$db": "test"}, 1),  # allowed (decided)
                ({"find": "metrics", "filter": {}, "$db": "test"}, 1),  # allowed (cached)
                ({"find": "metrics", "filter": {}, "$db": "other"}, 0),  # denied by the policy
                ({"saslStart": 1, "mechanism": "SCRAM-SHA-256", "payload": b"x", "$db": "admin"}, 0),  # refused
            ]
            for i, (doc, ok) in enumerate(steps, start=1):
                out, back, reply = exchange(sock, i, doc)
                assert reply["ok"] == ok, reply
                sent += out
                received += back
        events = proxy.wait_for(lambda ev: any(e.get("event") == "db.session.end" for e in ev))
        m = scrape_when(
            url,
            lambda e: e.value("docauth_sessions_active") == 0
            and e.value("docauth_audit_events_delivered_total") >= len(events),
        )
        # Sessions.
        assert m.value("docauth_sessions_started_total") == 1
        assert m.value("docauth_sessions_active") == 0
        assert m.value("docauth_sessions_ended_total", reason="client_closed") == 1
        assert sum(v for (n, _), v in m.nonzero("docauth_sessions_ended").items()) == 1
        # Messages: by verdict and reach class, and why the denied ones were.
        assert m.nonzero("docauth_messages_judged") == {
            ("docauth_messages_judged_total", frozenset({("verdict", "allowed"), ("class", "connection")})): 1,
            ("docauth_messages_judged_total", frozenset({("verdict", "allowed"), ("class", "this_db")})): 2,
            ("docauth_messages_judged_total", frozenset({("verdict", "denied"), ("class", "this_db")})): 1,
            ("docauth_messages_judged_total", frozenset({("verdict", "denied"), ("class", "authentication")})): 1,
        }
        assert m.value("docauth_messages_denied_total", kind="policy") == 1
        assert m.value("docauth_messages_denied_total", kind="refused") == 1
        assert m.value("docauth_messages_denied_total", kind="malformed") == 0
        # Bytes, exactly as the client sent and received them.
        assert m.value("docauth_relayed_bytes_total", direction="from_client") == sent
        assert m.value("docauth_relayed_bytes_total", direction="to_client") == received
        # The database connection: one of each phase, no failure.
        for phase in ("connect", "tls", "auth"):
            assert m.value("docauth_upstream_phase_duration_seconds_count", phase=phase) == 1
            assert m.value("docauth_upstream_phase_duration_seconds_bucket", phase=phase, le="+Inf") == 1
        assert m.nonzero("docauth_upstream_failures") == {}
        # Decisions: the session's admission + hello + find test (then from the cache) + find other.
        assert m.value("docauth_policy_decisions_total", outcome="allowed") == 4
        assert m.value("docauth_policy_decisions_total", outcome="denied") == 1
        assert m.value("docauth_policy_cache_hits_total") == 1
        assert m.value("docauth_policy_cache_misses_total") == 4
        assert m.value("docauth_policy_decision_duration_seconds_count") == 4
        # STS: the db user's role only. The account comes from the engine's database entry (the
        # one source of a database's AWS settings), so no GetCallerIdentity is made for it.
        assert m.nonzero("docauth_sts_calls") == {
            ("docauth_sts_calls_total", frozenset({("operation", "AssumeRole"), ("outcome", "ok")})): 1,
        }
        assert m.value("docauth_sts_call_duration_seconds_count", operation="AssumeRole") == 1
        assert m.value("docauth_credentials_served_stale_total") == 0
        # Audit: every line the proxy printed was delivered; none dropped.
        assert m.value("docauth_audit_events_delivered_total") == len(events)
        assert m.value("docauth_audit_events_dropped_total") == 0
        # Types as the parser read them.
        assert m.families["docauth_sessions_started"].type == "counter"
        assert m.families["docauth_sessions_active"].type == "gauge"
        assert m.families["docauth_upstream_phase_duration_seconds"].type == "histogram"
        # No user-chosen string ever becomes a label value (nor a secret any text).
        values = {v for (_, labels) in m.samples for _, v in labels}
        assert not values & {"metrics", "other", "find", "saslStart", "alice", "teleport-docdb-user", "test"}, values
        assert peers.secret_access_key not in m.text
        # OpenMetrics on request.
        content_type, text = get(url + "/metrics", accept="application/openmetrics-text; version=1.0.0")
        assert content_type.startswith("application/openmetrics-text; version=1.0.0")
        assert text.endswith("# EOF\n") and "# UNIT docauth_relayed_bytes bytes\n" in text
        assert get(url + "/metrics")[0] == "text/plain; version=0.0.4; charset=utf-8"
    finally:
        assert proxy.stop() == 0, proxy.stderr_lines[-20:]


def test_a_failed_upstream_authentication_is_counted(tmp_path, docdb, peers):
    # teleport-docdb-external is a role the service may assume at moto (STS signs and
    # verifies), but the cluster has no $external user for it: AuthenticationFailed.
    proxy, url = start(tmp_path, docdb, peers, db_user="teleport-docdb-external")
    try:
        with socket.create_connection((proxy.host, proxy.port), timeout=60) as sock:
            _, _, reply = exchange(sock, 1, {"hello": 1, "$db": "admin"})
        assert reply["ok"] == 0 and reply["codeName"] == "AuthenticationFailed", reply
        proxy.wait_for(lambda ev: any(e.get("event") == "db.session.end" for e in ev))
        m = scrape_when(url, lambda e: e.value("docauth_sessions_active") == 0)
        assert m.value("docauth_sessions_started_total") == 1
        assert m.nonzero("docauth_sessions_ended") == {
            ("docauth_sessions_ended_total", frozenset({("reason", "upstream_failed")})): 1
        }
        assert m.nonzero("docauth_upstream_failures") == {
            ("docauth_upstream_failures_total", frozenset({("kind", "auth_rejected")})): 1
        }
        # Connected and TLS-verified; the authentication never succeeded, so it has no time.
        assert m.value("docauth_upstream_phase_duration_seconds_count", phase="connect") == 1
        assert m.value("docauth_upstream_phase_duration_seconds_count", phase="tls") == 1
        assert m.value("docauth_upstream_phase_duration_seconds_count", phase="auth") == 0
        assert m.nonzero("docauth_messages_judged") == {}
        assert m.value("docauth_sts_calls_total", operation="AssumeRole", outcome="ok") == 1
    finally:
        assert proxy.stop() == 0, proxy.stderr_lines[-20:]


@pytest.mark.parametrize("kind", ["python", "go"])
def test_the_python_and_go_proxies_serve_the_same_metrics(tmp_path, docdb, peers, kind):
    proxy, url = start(tmp_path, docdb, peers, kind)
    try:
        assert get(url + "/healthz")[1] == "ok\n"
        with socket.create_connection((proxy.host, proxy.port), timeout=60) as sock:
            sent, received, reply = exchange(sock, 1, {"hello": 1, "$db": "admin"})
            assert reply["ok"] == 1, reply
        m = scrape_when(url, lambda e: e.value("docauth_sessions_ended_total", reason="client_closed") == 1)
        assert m.value("docauth_sessions_started_total") == 1
        assert m.value("docauth_messages_judged_total", verdict="allowed", class_="connection") == 1
        assert m.value("docauth_relayed_bytes_total", direction="from_client") == sent
        assert m.value("docauth_relayed_bytes_total", direction="to_client") == received
        assert m.value("docauth_sts_calls_total", operation="AssumeRole", outcome="ok") == 1
        content_type, text = get(url + "/metrics", accept="application/openmetrics-text")
        assert content_type.startswith("application/openmetrics-text") and text.endswith("# EOF\n")
    finally:
        assert proxy.stop() == 0, proxy.stderr_lines[-20:]


def test_other_paths_are_not_found(tmp_path, docdb, peers):
    proxy, url = start(tmp_path, docdb, peers)
    try:
        for path in ("/", "/metricsx", "/healthz/more"):
            with pytest.raises(urllib.error.HTTPError) as e:
                get(url + path)
            assert e.value.code == 404, path
    finally:
        assert proxy.stop() == 0
