//! Engine lifecycle and operator modules: reload under concurrent decisions, operator Rego
//! that denies (honoured) or tries to allow (no effect), and bad input.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use docauth::policy::{Config, Identity, PolicyEngine, Request};
use docauth::ResultCode;

const ROLES: &str = "roles:\n  - {kind: role, version: v7, metadata: {name: dev}, spec: {allow: {db_labels: {env: dev}, db_users: ['*'], db_names: [test, reports]}}}\n  - {kind: role, version: v7, metadata: {name: no-reports}, spec: {deny: {db_names: [reports]}}}\ndatabases:\n  - {name: my-docdb, labels: {env: dev}}\n";

fn alice(roles: &[&str]) -> Arc<Identity> {
    Arc::new(Identity::new(
        "alice",
        roles.iter().map(|s| s.to_string()).collect(),
        BTreeMap::new(),
    ))
}

fn with_module(rego: &str) -> String {
    format!(
        "{ROLES}modules:\n  - name: ops.rego\n    rego: |\n{}",
        rego.lines()
            .map(|l| format!("      {l}\n"))
            .collect::<String>()
    )
}

#[test]
fn operator_deny_is_honoured() {
    let e = PolicyEngine::from_config_str(
        "c.yaml",
        &with_module("package docauth.operator\nimport rego.v1\ndeny contains sprintf(\"%s is not allowed\", [input.request.command]) if input.request.command in {\"dropDatabase\", \"dropUser\"}"),
        None,
    )
    .unwrap();
    let base = Request::new(alice(&["dev"]), "my-docdb", "u", "test");
    assert!(e.decide(&base.clone().with_command("find")).allowed);
    let d = e.decide(&base.clone().with_command("dropDatabase"));
    assert!(!d.allowed);
    assert!(
        d.reason
            .contains("operator policy: dropDatabase is not allowed"),
        "{}",
        d.reason
    );
}

#[test]
fn operator_allow_does_not_widen() {
    // Tries every way to allow: its own allow, redefining the built-in package, a deny set to
    // false. None can widen what the roles deny.
    for rego in [
        "package docauth.operator\nimport rego.v1\nallow := true\ndeny := set()",
        "package docauth.operator\nimport rego.v1\ndeny contains x if { false; x := 1 }\n",
    ] {
        let e = PolicyEngine::from_config_str("c.yaml", &with_module(rego), None).unwrap();
        let d = e.decide(&Request::new(
            alice(&["dev", "no-reports"]),
            "my-docdb",
            "u",
            "reports",
        ));
        assert!(!d.allowed, "{rego}: {}", d.reason);
        let d = e.decide(&Request::new(alice(&["dev"]), "my-docdb", "u", "other"));
        assert!(!d.allowed, "{rego}: {}", d.reason);
    }
    // A module in the built-in's package is in a separate engine: it changes nothing.
    let config = format!(
        "{}  - name: evil.rego\n    rego: |\n      package docauth.builtin\n      import rego.v1\n      allow := true\n",
        with_module("package docauth.operator\nimport rego.v1\ndeny contains \"never\" if false")
    );
    let e = PolicyEngine::from_config_str("c.yaml", &config, None).unwrap();
    let d = e.decide(&Request::new(alice(&["dev"]), "my-docdb", "u", "other"));
    assert!(!d.allowed, "{}", d.reason);
}

#[test]
fn reload_under_concurrent_decisions() {
    // Old rules: dev allows `test`. New rules: dev allows only `reports`.
    let old = ROLES.to_string();
    let new = ROLES.replace("db_names: [test, reports]", "db_names: [reports]");
    let e = Arc::new(PolicyEngine::from_config_str("old.yaml", &old, None).unwrap());
    let old_cfg = Config::from_str("old.yaml", &old, None).unwrap();
    let new_cfg = Config::from_str("new.yaml", &new, None).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..3)
        .map(|t| {
            let e = Arc::clone(&e);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let test = Request::new(alice(&["dev"]), "my-docdb", "u", "test");
                let reports = Request::new(alice(&["dev"]), "my-docdb", "u", "reports");
                let other = Request::new(alice(&["dev"]), "my-docdb", "u", format!("x{t}"));
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // `test`: allowed by the old rules, denied by the new; both are valid.
                    let d = e.decide(&test);
                    assert!(d.allowed || d.reason.contains("no single role"), "{d:?}");
                    // `reports` and `x`: the same answer under both rule sets.
                    assert!(e.decide(&reports).allowed);
                    assert!(!e.is_allowed(&other));
                    assert!(!e.decide_uncached(&other).allowed);
                    n += 1;
                }
                n
            })
        })
        .collect();
    for i in 0..1000 {
        let cfg = if i % 2 == 0 {
            new_cfg.clone()
        } else {
            old_cfg.clone()
        };
        e.reload(cfg).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        assert!(w.join().unwrap() > 0);
    }
    // 1000 reloads, the last one installed the old rules: `test` is allowed again.
    assert!(
        e.decide(&Request::new(alice(&["dev"]), "my-docdb", "u", "test"))
            .allowed
    );
    // A decision after a reload sees the new rules (the cache went with the old generation).
    e.reload(new_cfg).unwrap();
    assert!(
        !e.decide(&Request::new(alice(&["dev"]), "my-docdb", "u", "test"))
            .allowed
    );
}

fn config_err(text: &str) -> docauth::Error {
    PolicyEngine::from_config_str("policy.yaml", text, None).unwrap_err()
}

#[test]
fn malformed_yaml_json_and_rego_name_file_line_and_problem() {
    let e = config_err("roles:\n  - kind: role\n    version: v7\n   metadata: x\n");
    assert_eq!(e.code(), ResultCode::PolicyConfigSyntax);
    assert!(
        e.message().starts_with("policy.yaml: line 4"),
        "{}",
        e.message()
    );

    let e = PolicyEngine::from_config_str(
        "policy.json",
        "{\"roles\": [\n  {\"kind\": \"role\",,}\n]}",
        None,
    )
    .unwrap_err();
    assert_eq!(e.code(), ResultCode::PolicyConfigSyntax);
    assert!(
        e.message().starts_with("policy.json: line 2 column"),
        "{}",
        e.message()
    );

    let e = config_err(&with_module(
        "package docauth.operator\nimport rego.v1\ndeny contains x if {\n  x := \n}",
    ));
    assert_eq!(e.code(), ResultCode::PolicyRegoInvalid);
    assert!(e.message().contains("ops.rego"), "{}", e.message());
    assert!(
        e.message().contains(":4:")
            || e.message().contains("line 4")
            || e.message().contains(":5:"),
        "{}",
        e.message()
    );

    let e = config_err(&with_module(
        "package somewhere.else\nimport rego.v1\ndeny contains 1 if true",
    ));
    assert_eq!(e.code(), ResultCode::PolicyRegoInvalid);
    assert!(
        e.message().contains("package docauth.operator"),
        "{}",
        e.message()
    );

    // Unknown top-level keys are refused (a typo must not silently drop roles) ...
    let e = config_err("role: []\n");
    assert_eq!(e.code(), ResultCode::PolicyConfigSyntax);
    assert!(
        e.message().contains("unknown field `role`"),
        "{}",
        e.message()
    );
    // ... while unknown role fields are ignored, as `tctl get roles` output has many.
    PolicyEngine::from_config_str("ok.yaml", "roles:\n  - {kind: role, version: v7, metadata: {name: r, labels: {a: b}, revision: x}, spec: {options: {max_session_ttl: 8h}, allow: {logins: [root], node_labels: {'*': '*'}}}}\n", None).unwrap();
}

#[test]
fn role_file_errors_name_the_file() {
    let dir = std::env::temp_dir().join(format!("docauth-roles-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("good.yaml"), "kind: role\nversion: v7\nmetadata: {name: a}\n---\nkind: role\nversion: v7\nmetadata: {name: b}\n").unwrap();
    std::fs::write(dir.join("bad.yaml"), "kind: role\nversion: v7\nmetadata: {name: a}\n---\nkind: role\nversion: v9\nmetadata: {name: c}\n").unwrap();
    std::fs::write(dir.join("regex.json"), "[{\"kind\": \"role\", \"version\": \"v7\", \"metadata\": {\"name\": \"r\"}, \"spec\": {\"allow\": {\"db_labels\": {\"env\": \"^(dev$\"}}}}]").unwrap();
    let cfg = dir.join("policy.yaml");
    std::fs::write(&cfg, "roles: [good.yaml]\n").unwrap();
    PolicyEngine::from_file(&cfg).unwrap();
    std::fs::write(&cfg, "roles: [bad.yaml]\n").unwrap();
    let e = PolicyEngine::from_file(&cfg).unwrap_err();
    assert_eq!(e.code(), ResultCode::PolicyRoleInvalid);
    assert!(
        e.message().contains("bad.yaml: role document at line 5"),
        "{}",
        e.message()
    );
    assert!(
        e.message().contains("unrecognized role version \"v9\""),
        "{}",
        e.message()
    );
    std::fs::write(&cfg, "roles: [regex.json]\n").unwrap();
    let e = PolicyEngine::from_file(&cfg).unwrap_err();
    assert!(
        e.message().contains("regex.json") && e.message().contains("invalid regular expression"),
        "{}",
        e.message()
    );
    std::fs::write(&cfg, "roles: [good.yaml, {file: good.yaml}]\n").unwrap();
    let e = PolicyEngine::from_file(&cfg).unwrap_err();
    assert!(
        e.message().contains("defined more than once"),
        "{}",
        e.message()
    );
    std::fs::write(&cfg, "roles: [missing.yaml]\n").unwrap();
    let e = PolicyEngine::from_file(&cfg).unwrap_err();
    assert_eq!(e.code(), ResultCode::PolicyConfigUnreadable);
    assert!(e.message().contains("missing.yaml"), "{}", e.message());
}

#[test]
fn oversized_and_deeply_nested_configs_are_refused() {
    // Deep nesting: refused with an error, not a stack overflow.
    for text in [
        format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
        format!("roles: {}{}", "[".repeat(100_000), "]".repeat(100_000)),
        format!(
            "roles:\n  - {}1{}\n",
            "{a: ".repeat(5_000),
            "}".repeat(5_000)
        ),
        format!(
            "{{\"roles\": [{}1{}]}}",
            "{\"a\": ".repeat(70),
            "}".repeat(70)
        ),
    ] {
        let e = config_err(&text);
        assert_eq!(e.code(), ResultCode::PolicyConfigTooDeep, "{}", e.message());
    }
    // Block-style YAML nesting beyond the limit: the parser's own recursion limit.
    let mut deep = String::from("roles:\n");
    for i in 0..200 {
        deep.push_str(&format!("{}a:\n", "  ".repeat(i + 1)));
    }
    let e = config_err(&deep);
    assert!(
        matches!(
            e.code(),
            ResultCode::PolicyConfigTooDeep | ResultCode::PolicyConfigSyntax
        ),
        "{e:?}"
    );
    // Oversized.
    let big = format!("roles: []\n#{}\n", "x".repeat(17 * 1024 * 1024));
    let e = config_err(&big);
    assert_eq!(e.code(), ResultCode::PolicyConfigTooLarge);
}

#[test]
fn a_config_or_role_file_that_never_ends_is_refused_after_16_mib() {
    // /dev/zero reports a length of 0 and never ends: the read stops one byte past 16 MiB.
    let e = PolicyEngine::from_file("/dev/zero").unwrap_err();
    assert_eq!(
        e.code(),
        ResultCode::PolicyConfigTooLarge,
        "{}",
        e.message()
    );
    assert!(
        e.message().contains("config /dev/zero") && e.message().contains("16777216 bytes"),
        "{}",
        e.message()
    );
    let e = config_err("roles: [/dev/zero]\n");
    assert_eq!(
        e.code(),
        ResultCode::PolicyConfigTooLarge,
        "{}",
        e.message()
    );
    assert!(
        e.message().contains("role file /dev/zero"),
        "{}",
        e.message()
    );
}

#[test]
fn a_config_fifo_fed_without_end_is_refused_after_16_mib() {
    let dir = std::env::temp_dir().join(format!("docauth-fifo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("policy.yaml");
    let _ = std::fs::remove_file(&fifo);
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // The writer feeds a valid start and then comments for ever; it stops when the reader
    // closes its end (EPIPE: Rust programs ignore SIGPIPE).
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            use std::io::Write;
            let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
            let mut sent = w.write(b"roles: []\n#").unwrap_or(0);
            let chunk = vec![b'x'; 64 * 1024];
            while let Ok(n) = w.write(&chunk) {
                sent += n;
            }
            sent
        })
    };
    let e = PolicyEngine::from_file(&fifo).unwrap_err();
    let sent = writer.join().unwrap();
    assert_eq!(
        e.code(),
        ResultCode::PolicyConfigTooLarge,
        "{}",
        e.message()
    );
    assert!(e.message().contains("policy.yaml"), "{}", e.message());
    // It read (about) the limit, not what the writer would have sent.
    assert!(sent > 16 * 1024 * 1024, "{sent}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unknown_role_is_a_deny_with_reason_not_an_error() {
    let e = PolicyEngine::from_config_str("c.yaml", ROLES, None).unwrap();
    let d = e.decide(&Request::new(
        alice(&["dev", "ghost"]),
        "my-docdb",
        "u",
        "test",
    ));
    assert!(!d.allowed);
    assert!(
        d.reason
            .contains("holds role \"ghost\", which is not loaded"),
        "{}",
        d.reason
    );
}

#[test]
fn request_json_is_parsed_and_checked() {
    let e = PolicyEngine::from_config_str(
        "c.yaml",
        &format!("{ROLES}identities:\n  - {{user: alice, roles: [dev]}}\n"),
        None,
    )
    .unwrap();
    let r = e.request_from_json(r#"{"identity": "alice", "database": "my-docdb", "db_user": "u", "db_name": "test", "command": "find", "namespaces": ["test.a"]}"#).unwrap();
    assert!(e.decide(&r).allowed);
    let err = e
        .request_from_json(r#"{"identity": "nobody", "database": "my-docdb", "db_user": "u"}"#)
        .unwrap_err();
    assert_eq!(err.code(), ResultCode::PolicyRequestInvalid);
    let err = e
        .request_from_json(
            r#"{"identity": {"user": "a"}, "database": "my-docdb", "db_user": "u", "bogus": 1}"#,
        )
        .unwrap_err();
    assert_eq!(err.code(), ResultCode::PolicyRequestInvalid);
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(
        e.request_from_json(&deep).unwrap_err().code(),
        ResultCode::PolicyRequestInvalid
    );
}

#[test]
fn documented_operator_example_loads_and_evaluates() {
    // The example of docs/policy.md (time builtins included).
    let rego = "package docauth.operator\n\nimport rego.v1\n\ndeny contains sprintf(\"%s is not allowed through the proxy\", [input.request.command]) if {\n\tinput.request.command in {\"dropDatabase\", \"dropUser\"}\n}\n\ndeny contains \"admin is reachable 08:00-18:00 UTC only\" if {\n\t\"admin\" in input.request.databases\n\t[hour, _, _] := time.clock(time.now_ns())\n\tnot working_hour(hour)\n}\n\nworking_hour(h) if {\n\th >= 8\n\th < 18\n}\n";
    let config = with_module(rego).replace("db_names: [test, reports]", "db_names: ['*']");
    let e = PolicyEngine::from_config_str("c.yaml", &config, None).unwrap();
    let d = e.decide(&Request::new(alice(&["dev"]), "my-docdb", "u", "test").with_command("find"));
    assert!(d.allowed, "{}", d.reason);
    let d =
        e.decide(&Request::new(alice(&["dev"]), "my-docdb", "u", "test").with_command("dropUser"));
    assert!(
        !d.allowed && d.reason.contains("dropUser is not allowed"),
        "{}",
        d.reason
    );
    let d = e.decide(&Request::new(alice(&["dev"]), "my-docdb", "u", "admin").with_command("find"));
    assert!(
        d.allowed || d.reason.contains("admin is reachable"),
        "{}",
        d.reason
    );
    assert!(!d.reason.contains("failed to evaluate"), "{}", d.reason);
}

/// The decision cache is bounded in bytes, not only in entries: unique long names (allowed
/// and denied requests alike) never grow it past `MAX_CACHE_BYTES`, and it keeps caching.
#[test]
fn the_decision_cache_is_bounded_in_bytes() {
    let e = PolicyEngine::from_config_str("c.yaml", ROLES, None).unwrap();
    let long = "x".repeat(100_000);
    let mut peak = 0;
    // 1,000 requests × 100 KB of unique names = 100 MB of names, past the 64 MiB bound.
    for i in 0..1_000 {
        let db = if i % 2 == 0 { "test" } else { "reports" }; // half of them denied
        let request = Request::new(alice(&["dev", "no-reports"]), "my-docdb", "u", db)
            .with_command("find")
            .with_namespaces(vec![format!("{db}.{i}{long}")]);
        let decision = e.decide(&request);
        assert_eq!(decision.allowed, db == "test", "{}", decision.reason);
        peak = peak.max(e.cached_bytes());
    }
    assert!(
        peak <= docauth::policy::MAX_CACHE_BYTES,
        "the cache held {peak} bytes"
    );
    assert!(
        peak > docauth::policy::MAX_CACHE_BYTES / 4,
        "nothing was cached: {peak}"
    );
    assert!(e.cached_decisions() > 0);
}
