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
