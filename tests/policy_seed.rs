//! The seed guide's scenarios ("Database Access with Amazon DocumentDB"), end to end through
//! the Rust API.

use std::sync::Arc;

use docauth::policy::{Identity, PolicyEngine, Request};

const CONFIG: &str = r#"
roles:
  # Teleport's preset `access` role (v7): every database, db users and names from traits.
  - kind: role
    version: v7
    metadata: {name: access}
    spec:
      allow:
        db_labels: {'*': '*'}
        db_users: ['{{internal.db_users}}']
        db_names: ['{{internal.db_names}}']
  - kind: role
    version: v7
    metadata: {name: no-admin}
    spec:
      deny:
        db_names: [admin]
databases:
  - name: my-docdb
    protocol: mongodb
    uri: my-docdb.cluster-abcdefghijklm.us-east-1.docdb.amazonaws.com:27017
    labels: {env: dev}
    aws: {account_id: "123456789012", region: us-east-1}
identities:
  - user: alice
    roles: [access]
    traits: {db_users: ["*"], db_names: ["*"]}
  - user: alice-no-admin
    roles: [access, no-admin]
    traits: {db_users: ["*"], db_names: ["*"]}
  - user: bob
    roles: [access]
"#;

fn engine() -> PolicyEngine {
    PolicyEngine::from_config_str("seed.yaml", CONFIG, None).unwrap()
}

fn req(e: &PolicyEngine, user: &str, db_user: &str, db_name: &str) -> Request {
    Request::new(e.identity(user).unwrap(), "my-docdb", db_user, db_name)
}

#[test]
fn alice_with_wildcard_traits_reaches_my_docdb_as_any_user_and_name() {
    let e = engine();
    for (u, n) in [
        ("teleport-docdb-user", "test"),
        ("arn:aws:iam::123456789012:role/teleport-docdb-user", "test"),
        ("anyone", "admin"),
        ("x", "y"),
    ] {
        let d = e.decide(&req(&e, "alice", u, n));
        assert!(d.allowed, "{u}/{n}: {}", d.reason);
        assert_eq!(d.matched_roles, vec!["access".to_string()]);
        assert!(d.reason.contains("access"), "{}", d.reason);
    }
}

#[test]
fn deny_role_on_db_names_admin_blocks_admin_only() {
    let e = engine();
    let d = e.decide(&req(&e, "alice-no-admin", "teleport-docdb-user", "admin"));
    assert!(!d.allowed);
    assert!(
        d.reason.contains("no-admin") && d.reason.contains("deny.db_names"),
        "{}",
        d.reason
    );
    assert_eq!(d.matched_roles, vec!["no-admin".to_string()]);
    let d = e.decide(&req(&e, "alice-no-admin", "teleport-docdb-user", "test"));
    assert!(d.allowed, "{}", d.reason);
    // Connection commands on admin still pass (drivers send hello to admin).
    let hello = req(&e, "alice-no-admin", "teleport-docdb-user", "admin").with_command("hello");
    assert!(e.decide(&hello).allowed);
    // A data command on admin does not.
    let find = req(&e, "alice-no-admin", "teleport-docdb-user", "admin").with_command("find");
    assert!(!e.decide(&find).allowed);
}

#[test]
fn user_without_the_traits_gets_nothing() {
    let e = engine();
    let d = e.decide(&req(&e, "bob", "teleport-docdb-user", "test"));
    assert!(!d.allowed);
    assert!(d.reason.contains("db user"), "{}", d.reason);
    let inline = Arc::new(Identity::new(
        "carol",
        vec!["access".into()],
        Default::default(),
    ));
    let d = e.decide(&Request::new(inline, "my-docdb", "u", "test"));
    assert!(!d.allowed, "{}", d.reason);
}
