//! `docauth-check`, run as an operator would: decision + reason on stdout, exit 0/1/2.

use std::path::PathBuf;
use std::process::Command;

fn write_config(dir: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("docauth-check-{dir}-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("roles")).unwrap();
    std::fs::write(
        dir.join("roles/access.yaml"),
        "kind: role\nversion: v7\nmetadata:\n  name: access\nspec:\n  allow:\n    db_labels: {'*': '*'}\n    db_users: ['{{internal.db_users}}']\n    db_names: ['{{internal.db_names}}']\n---\nkind: role\nversion: v7\nmetadata:\n  name: no-admin\nspec:\n  deny:\n    db_names: [admin]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("no-drop.rego"),
        "package docauth.operator\nimport rego.v1\ndeny contains \"dropDatabase is not allowed\" if input.request.command == \"dropDatabase\"\n",
    )
    .unwrap();
    let config = dir.join("policy.yaml");
    std::fs::write(
        &config,
        "roles: [roles/access.yaml]\nmodules: [no-drop.rego]\ndatabases:\n  - {name: my-docdb, labels: {env: dev}}\nidentities:\n  - {user: alice, roles: [access, no-admin], traits: {db_users: ['*'], db_names: ['*']}}\n",
    )
    .unwrap();
    config
}

fn check(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_docauth-check"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn allow_deny_and_errors() {
    let config = write_config("a");
    let c = config.to_str().unwrap();
    let base = [
        "--config",
        c,
        "--user",
        "alice",
        "--db",
        "my-docdb",
        "--db-user",
        "teleport-docdb-user",
    ];

    let (code, out, _) = check(&[&base[..], &["--db-name", "test"]].concat());
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("ALLOW: allowed by role(s) [access]"),
        "{out}"
    );

    let (code, out, _) = check(&[&base[..], &["--db-name", "admin"]].concat());
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("DENY") && out.contains("no-admin") && out.contains("deny.db_names"),
        "{out}"
    );

    let (code, out, _) = check(
        &[
            &base[..],
            &["--db-name", "test", "--command", "dropDatabase"],
        ]
        .concat(),
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("operator policy: dropDatabase is not allowed"),
        "{out}"
    );

    // Explicit roles and traits: without the traits nothing is allowed.
    let (code, out, _) = check(&[
        "--config",
        c,
        "--user",
        "bob",
        "--roles",
        "access",
        "--db",
        "my-docdb",
        "--db-user",
        "u",
        "--db-name",
        "test",
    ]);
    assert_eq!(code, 1, "{out}");
    let (code, out, _) = check(&[
        "--config",
        c,
        "--user",
        "bob",
        "--roles",
        "access",
        "--traits",
        r#"{"db_users":["u"],"db_names":["test"]}"#,
        "--db",
        "my-docdb",
        "--db-user",
        "u",
        "--db-name",
        "test",
        "--explain",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"rbac\""), "{out}");

    // Errors: exit 2 with a message.
    let (code, _, err) = check(&[
        "--config",
        "/nonexistent/policy.yaml",
        "--user",
        "a",
        "--db",
        "d",
        "--db-user",
        "u",
        "--db-name",
        "test",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/policy.yaml"), "{err}");
    // No --db-name: an error, not a check of the database name "".
    let (code, out, err) = check(&[
        "--config",
        c,
        "--user",
        "alice",
        "--db",
        "my-docdb",
        "--db-user",
        "u",
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("--db-name is required"), "{err}");
    let (code, _, err) = check(&["--user", "alice"]);
    assert_eq!(code, 2);
    assert!(err.contains("--config is required"), "{err}");
}

#[test]
fn help_and_version_exit_zero_on_stdout() {
    for flag in ["--help", "-h"] {
        let (code, out, err) = check(&[flag]);
        assert_eq!(code, 0, "{flag}: {err}");
        assert!(
            out.starts_with("usage: docauth-check --config FILE"),
            "{out}"
        );
        assert!(err.is_empty(), "{err}");
    }
    let (code, out, _) = check(&["--version"]);
    assert_eq!(code, 0);
    assert_eq!(
        out.trim(),
        format!("docauth-check {}", env!("CARGO_PKG_VERSION"))
    );
}

/// A fresh directory with `policy.yaml` (the given text) and `roles/*.yaml` files.
fn lint_dir(name: &str, config: &str, roles: &[(&str, &str)]) -> (PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("docauth-lint-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("roles")).unwrap();
    for (file, text) in roles {
        std::fs::write(dir.join("roles").join(file), text).unwrap();
    }
    let path = dir.join("policy.yaml");
    std::fs::write(&path, config).unwrap();
    let shown = path.to_str().unwrap().to_string();
    (dir, shown)
}

const LINT_ROLE: &str = "kind: role\nversion: v7\nmetadata:\n  name: access\nspec:\n  allow:\n    db_labels: {env: dev}\n    db_users: ['*']\n    db_names: ['*']\n    logins: [root]\n";
const LINT_CONFIG: &str = "roles:\n  - roles/access.yaml\ndatabases:\n  - {name: my-docdb, labels: {env: dev}}\nidentities:\n  - {user: alice, roles: [access]}\n";

#[test]
fn lint_clean_config_is_silent() {
    let (_dir, config) = lint_dir("clean", LINT_CONFIG, &[("access.yaml", LINT_ROLE)]);
    let (code, out, err) = check(&["lint", "--config", &config]);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));
    // The check tests' configuration (role file with two roles, a Rego module) is clean too.
    let (code, out, _) = check(&["lint", "--config", write_config("lint").to_str().unwrap()]);
    assert_eq!((code, out.as_str()), (0, ""));
}

#[test]
fn lint_unknown_role_field_with_did_you_mean() {
    let role = LINT_ROLE.replace("db_users:", "db_user:");
    let (dir, config) = lint_dir("field", LINT_CONFIG, &[("access.yaml", &role)]);
    let (code, out, _) = check(&["lint", "--config", &config]);
    assert_eq!(code, 1, "{out}");
    let file = dir.join("roles/access.yaml");
    assert_eq!(
        out,
        format!(
            "{}:8: warning: unknown field `db_user` in role \"access\" spec.allow (ignored); did you mean `db_users`?\n",
            file.display()
        )
    );
}

#[test]
fn lint_role_matching_no_database() {
    let role = LINT_ROLE.replace("env: dev", "env: prod");
    let (dir, config) = lint_dir("labels", LINT_CONFIG, &[("access.yaml", &role)]);
    let (code, out, _) = check(&["lint", "--config", &config]);
    assert_eq!(code, 1, "{out}");
    let prefix = format!(
        "{}:4: warning: role \"access\": allow.db_labels match no configured database",
        dir.join("roles/access.yaml").display()
    );
    assert!(
        out.starts_with(&prefix) && out.lines().count() == 1,
        "{out}"
    );

    // Allowing users and names without any db_labels (v4+) matches nothing either.
    let role = LINT_ROLE.replace("    db_labels: {env: dev}\n", "");
    let (_dir, config) = lint_dir("nolabels", LINT_CONFIG, &[("access.yaml", &role)]);
    let (code, out, _) = check(&["lint", "--config", &config]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            ":4: warning: role \"access\" allows db_users/db_names but has no allow.db_labels"
        ),
        "{out}"
    );
}

#[test]
fn lint_identity_naming_unknown_role() {
    let cfg = LINT_CONFIG.replace("roles: [access]", "roles: [access, acess]");
    let (_dir, config) = lint_dir("ident", &cfg, &[("access.yaml", LINT_ROLE)]);
    let (code, out, _) = check(&["lint", "--config", &config]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        out,
        format!("{config}:6: warning: identity \"alice\" names role \"acess\", which is not loaded (it grants nothing)\n")
    );
}

#[test]
fn lint_missing_role_file_names_the_config_line() {
    let cfg = LINT_CONFIG.replace(
        "  - roles/access.yaml\n",
        "  - roles/access.yaml\n  - file: roles/gone.yaml\n",
    );
    let (_dir, config) = lint_dir("missing", &cfg, &[("access.yaml", LINT_ROLE)]);
    let (code, out, _) = check(&["lint", "--config", &config]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with(&format!("{config}:3: warning: roles[1]: role file "))
            && out.contains("gone.yaml")
            && out.lines().count() == 1,
        "{out}"
    );
}

#[test]
fn lint_usage_and_unreadable_config_exit_2() {
    let (code, out, err) = check(&["lint"]);
    assert_eq!(code, 2, "{out}");
    assert!(err.contains("--config is required"), "{err}");
    let (code, _, err) = check(&["lint", "--config", "/nonexistent/policy.yaml"]);
    assert_eq!(code, 2);
    assert!(err.contains("POLICY_CONFIG_UNREADABLE"), "{err}");
    let (code, _, err) = check(&["lint", "--config", "x", "--bogus"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown option --bogus"), "{err}");
}

/// One policy-decided query event as a session writes it (docs/audit.md): alice, named by the
/// session, on `my-docdb` as `teleport-docdb-user`.
fn query_event(command: &str, namespace: &str, allowed: bool, reason: &str) -> String {
    let db = namespace.split('.').next().unwrap();
    serde_json::json!({
        "event": if allowed { "db.session.query" } else { "db.session.query.failed" },
        "code": if allowed { "TDB02I" } else { "TDB02W" },
        "time": "2026-12-03T06:00:00Z", "uid": "u1", "sid": "s1",
        "user": "alice", "db_service": "my-docdb", "db_protocol": "mongodb",
        "db_uri": "localhost:27017", "db_user": "teleport-docdb-user", "db_name": "test",
        "client_addr": "127.0.0.1:5000", "allowed": allowed, "reason": reason,
        "decided_by": "policy", "command": command, "database": db, "databases": [db],
        "collection": namespace.split_once('.').map(|(_, c)| c), "namespaces": [namespace],
        "reaches_unlisted": null, "matched_roles": ["access"],
        "user_roles": ["access", "no-admin"], "user_traits": {"db_users": ["*"], "db_names": ["*"]},
        "identity_source": "config",
    })
    .to_string()
}

/// The audit log of a session under `write_config`'s policy: a find and an insert allowed, a
/// dropDatabase denied by the operator module; plus the session's start and end events.
fn write_audit_log(dir: &std::path::Path) -> PathBuf {
    let lines = [
        r#"{"event":"db.session.start","code":"TDB00I","sid":"s1","user":"alice","success":true}"#
            .to_string(),
        query_event("find", "test.orders", true, "allowed by role(s) [access]"),
        query_event("insert", "test.orders", true, "allowed by role(s) [access]"),
        query_event("insert", "test.orders", true, "allowed by role(s) [access]"),
        query_event(
            "dropDatabase",
            "test",
            false,
            "denied: operator policy: dropDatabase is not allowed",
        ),
        r#"{"event":"db.session.end","code":"TDB01I","sid":"s1","user":"alice"}"#.to_string(),
    ];
    let path = dir.join("audit.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

#[test]
fn replay_under_the_same_policy_changes_nothing() {
    let config = write_config("replay-same");
    let audit = write_audit_log(config.parent().unwrap());
    let (code, out, err) = check(&[
        "replay",
        "--config",
        config.to_str().unwrap(),
        audit.to_str().unwrap(),
    ]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    assert_eq!(out, "replayed 4 decisions: none would change\n");
}

#[test]
fn replay_under_a_stricter_policy_prints_each_change_and_exits_1() {
    let config = write_config("replay-strict");
    let dir = config.parent().unwrap();
    let audit = write_audit_log(dir);
    // The rollout: alice may now read only (db_names kept, a read-only operator module).
    std::fs::write(
        dir.join("read-only.rego"),
        "package docauth.operator\nimport rego.v1\ndeny contains \"writes are not allowed\" if input.request.command == \"insert\"\n",
    )
    .unwrap();
    let strict = dir.join("strict.yaml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("modules: [no-drop.rego]", "modules: [read-only.rego]");
    std::fs::write(&strict, text).unwrap();
    let audit_path = audit.to_str().unwrap();
    let (code, out, err) = check(&["replay", "--config", strict.to_str().unwrap(), audit_path]);
    assert_eq!((code, err.as_str()), (1, ""), "{out}");
    let want = format!(
        "{audit_path}:3: ALLOW -> DENY: alice on my-docdb as teleport-docdb-user: insert test.orders (2 events, lines 3, 4)
    now: denied: operator policy: writes are not allowed
    was: allowed by role(s) [access]
{audit_path}:5: DENY -> ALLOW: alice on my-docdb as teleport-docdb-user: dropDatabase test
    now: allowed by role(s) [access]: allow.db_labels match database \"my-docdb\", allow.db_users match \"teleport-docdb-user\", allow.db_names match database name(s) [test]
    was: denied: operator policy: dropDatabase is not allowed
replayed 4 decisions: 3 would change (2 ALLOW -> DENY, 1 DENY -> ALLOW)
"
    );
    assert_eq!(out, want);

    // The same log on stdin.
    let out = Command::new(env!("CARGO_BIN_EXE_docauth-check"))
        .args(["replay", "--config", strict.to_str().unwrap(), "-"])
        .stdin(std::fs::File::open(&audit).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        want.replace(audit_path, "-")
    );
}

#[test]
fn replay_of_an_unusable_log_or_config_exits_2() {
    let config = write_config("replay-bad");
    let c = config.to_str().unwrap();
    let dir = config.parent().unwrap();
    let audit = write_audit_log(dir);
    let mut text = std::fs::read_to_string(&audit).unwrap();
    text.push_str("docauth-proxy: listening on 127.0.0.1:1\n");
    let bad = dir.join("bad.jsonl");
    std::fs::write(&bad, text).unwrap();
    let (code, out, err) = check(&["replay", "--config", c, bad.to_str().unwrap()]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(
        err.starts_with(&format!(
            "docauth-check: audit log {}: line 7: not a JSON audit event: ",
            bad.display()
        )),
        "{err}"
    );

    let missing = dir.join("nowhere.jsonl");
    let (code, out, err) = check(&["replay", "--config", c, missing.to_str().unwrap()]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(
        err.starts_with(&format!("docauth-check: audit log {}: ", missing.display()))
            && err.contains("No such file"),
        "{err}"
    );

    let audit_path = audit.to_str().unwrap();
    let (code, _, err) = check(&["replay", "--config", "/nonexistent/p.yaml", audit_path]);
    assert_eq!(code, 2);
    assert!(err.contains("POLICY_CONFIG_UNREADABLE"), "{err}");
    let (code, _, err) = check(&["replay", audit_path]);
    assert_eq!(code, 2);
    assert!(err.contains("replay: --config is required"), "{err}");
    let (code, _, err) = check(&["replay", "--config", c]);
    assert_eq!(code, 2);
    assert!(err.contains("the audit log"), "{err}");
    let (code, _, err) = check(&["replay", "--config", c, audit_path, audit_path]);
    assert_eq!(code, 2);
    assert!(err.contains("one audit log at a time"), "{err}");
}
