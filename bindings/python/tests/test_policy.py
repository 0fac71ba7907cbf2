"""The policy engine through the Python binding: allow, deny with reason, reload, bad config."""

from __future__ import annotations

import threading

import pytest

import docauth
from binding_paths import REPO

# The engine configuration shared with the Rust and Go tests.
CONFIG = (REPO / "tests" / "fixtures" / "engine.yaml").read_text()


def request(db_name: str, **kw):
    return {"identity": "alice", "database": "my-docdb", "db_user": "teleport-docdb-user", "db_name": db_name, **kw}


def test_allow_and_deny_with_reason():
    with docauth.PolicyEngine(CONFIG) as engine:
        d = engine.decide(request("test", command="find", namespaces=["test.orders"]))
        assert d.allowed and d
        assert d.matched_roles == ["access"]
        assert "allowed by role(s) [access]" in d.reason
        d = engine.decide(request("admin"))
        assert not d.allowed
        assert d.matched_roles == ["no-admin"]
        assert 'role "no-admin": deny.db_names' in d.reason
        # An inline identity without the traits gets nothing.
        d = engine.decide({"identity": {"user": "bob", "roles": ["access"]}, "database": "my-docdb", "db_user": "u", "db_name": "test"})
        assert not d.allowed


def test_reload_swaps_rules_and_a_bad_reload_keeps_them():
    engine = docauth.PolicyEngine(CONFIG)
    assert engine.decide(request("test")).allowed
    engine.reload(CONFIG.replace("db_names: [admin]", "db_names: [test]"))
    assert not engine.decide(request("test")).allowed
    with pytest.raises(docauth.PolicyConfigSyntaxError, match="line"):
        engine.reload("roles: [\n  - kind: role\n  version")
    assert not engine.decide(request("test")).allowed
    engine.close()
    engine.close()
    with pytest.raises(docauth.UseAfterCloseError):
        engine.decide(request("test"))


def test_reload_while_deciding_from_threads():
    engine = docauth.PolicyEngine(CONFIG)
    other = CONFIG.replace("db_names: [admin]", "db_names: [test]")
    failures = []

    def worker():
        for _ in range(200):
            if not engine.decide(request("reports")).allowed:  # allowed under both rule sets
                failures.append("reports denied")

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(100):
        engine.reload(other if i % 2 == 0 else CONFIG)
    for t in threads:
        t.join()
    assert failures == []
    engine.close()


def test_bad_config_raises_the_code_class():
    with pytest.raises(docauth.PolicyRoleInvalidError, match="regular expression"):
        docauth.PolicyEngine("roles:\n  - {kind: role, version: v7, metadata: {name: r}, spec: {allow: {db_labels: {env: '^(dev$'}}}}\n")
    with pytest.raises(docauth.PolicyRegoInvalidError, match="ops.rego"):
        docauth.PolicyEngine('{"modules": [{"name": "ops.rego", "rego": "package docauth.operator\\nimport rego.v1\\ndeny contains x if {"}]}')
    with pytest.raises(docauth.PolicyConfigUnreadableError):
        docauth.PolicyEngine.from_file("/nonexistent/policy.yaml")
    engine = docauth.PolicyEngine(CONFIG)
    with pytest.raises(docauth.PolicyRequestInvalidError):
        engine.decide({"identity": "nobody", "database": "my-docdb", "db_user": "u"})
    with pytest.raises(docauth.InvalidArgumentError):
        engine.decide("{\"a\": \"\0\"}")


def test_from_file(tmp_path):
    (tmp_path / "roles.yaml").write_text("kind: role\nversion: v7\nmetadata: {name: dev}\nspec: {allow: {db_labels: {env: dev}, db_users: ['*'], db_names: ['*']}}\n")
    (tmp_path / "policy.yaml").write_text("roles: [roles.yaml]\ndatabases: [{name: my-docdb, labels: {env: dev}}]\n")
    engine = docauth.PolicyEngine.from_file(tmp_path / "policy.yaml")
    assert engine.decide({"identity": {"user": "a", "roles": ["dev"]}, "database": "my-docdb", "db_user": "u", "db_name": "x"}).allowed
    engine.reload_from_file(tmp_path / "policy.yaml")
    engine.close()
