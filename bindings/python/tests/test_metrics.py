"""Metrics through the Python binding: decisions counted exactly, both formats, the text read
by prometheus_client's own parser, and the typed values agreeing with it."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

import docauth

CONFIG = """
roles:
  - kind: role
    version: v7
    metadata: {name: access}
    spec:
      allow:
        db_labels: {'*': '*'}
        db_users: ['*']
        db_names: [test]
databases:
  - {name: my-docdb, labels: {env: dev}}
identities:
  - {user: alice, roles: [access]}
"""


def request(db_name: str) -> dict[str, str]:
    return {"identity": "alice", "database": "my-docdb", "db_user": "u", "db_name": db_name}


def test_decisions_are_counted_by_outcome_and_cache():
    with docauth.PolicyEngine(CONFIG) as engine:
        for _ in range(3):
            assert engine.decide(request("test")).allowed
        assert not engine.decide(request("admin")).allowed
        families = docauth.metrics(engine=engine)
        decisions = families["docauth_policy_decisions"]
        assert decisions.type == "counter"
        assert decisions.value(outcome="allowed") == 3
        assert decisions.value(outcome="denied") == 1
        assert families["docauth_policy_cache_hits"].value() == 2
        assert families["docauth_policy_cache_misses"].value() == 2
        latency = families["docauth_policy_decision_duration_seconds"]
        assert latency.type == "histogram"
        assert latency.value("_count") == 2
        assert latency.value("_bucket", le="+Inf") == 2


def test_prometheus_client_reads_the_text_and_agrees_with_the_typed_values():
    with docauth.PolicyEngine(CONFIG) as engine, docauth.Runtime(threads=1) as runtime:
        engine.decide(request("test"))
        text = docauth.metrics_text(runtime, engine)
        theirs = {f.name: f for f in text_string_to_metric_families(text)}
        ours = docauth.parse_metrics(text)
        assert set(theirs) == set(ours)
        for name, family in theirs.items():
            assert ours[name].type == family.type, name
            assert [(s.name, s.labels, s.value) for s in family.samples] == [
                (s.name, s.labels, s.value) for s in ours[name].samples
            ], name
        assert ours["docauth_sessions_started"].value() == 0
        assert ours["docauth_sessions_active"].type == "gauge"
        assert ours["docauth_messages_judged"].value(verdict="allowed", class_="this_db") == 0


def test_openmetrics_ends_with_eof_and_has_units():
    with docauth.PolicyEngine(CONFIG) as engine:
        text = docauth.metrics_text(engine=engine, openmetrics=True)
        assert text.endswith("# EOF\n")
        assert "# UNIT docauth_policy_decision_duration_seconds seconds\n" in text
        assert docauth.metrics_content_type(openmetrics=True).startswith("application/openmetrics-text")
        assert docauth.metrics_content_type().startswith("text/plain; version=0.0.4")


def test_nothing_given_is_an_empty_exposition_and_a_closed_object_is_refused():
    assert docauth.metrics_text() == ""
    engine = docauth.PolicyEngine(CONFIG)
    engine.close()
    with pytest.raises(docauth.UseAfterCloseError):
        docauth.metrics_text(engine=engine)
