//! Set-ups the benchmarks share: the policy engine of 200 roles and the signing inputs
//! (`#[path = "shared/mod.rs"] mod shared;`); the relay's round trip is in `round_trip.rs`.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bson::spec::BinarySubtype;
use bson::{doc, Binary};
use docauth::policy::{Identity, PolicyEngine, Request};

/// 200 stored v7 roles (globs, regexes, label lists, trait templates, a deny rule each).
pub fn config() -> String {
    let mut roles = String::from("roles:\n");
    for i in 0..200 {
        let labels = match i % 4 {
            0 => format!("{{env: dev-{i}, team: 'team-*'}}"),
            1 => format!("{{env: '^(dev|staging)-{i}$'}}"),
            2 => format!("{{env: [prod-{i}, qa-{i}]}}"),
            _ => "{'*': '*'}".to_string(),
        };
        roles.push_str(&format!(
            "  - kind: role\n    version: v7\n    metadata: {{name: role-{i}}}\n    spec:\n      allow:\n        db_labels: {labels}\n        db_users: ['{{{{internal.db_users}}}}', 'svc-{i}']\n        db_names: ['{{{{internal.db_names}}}}', 'db-{i}']\n      deny:\n        db_names: ['forbidden-{i}']\n"
        ));
    }
    roles.push_str(
        "databases:\n  - name: my-docdb\n    labels: {env: dev-8, team: team-payments}\n    aws: {account_id: '123456789012', region: us-east-1}\n",
    );
    roles
}

/// The engine of [`config`] and a request of a user holding 5 of its roles, allowed by 2.
pub fn setup() -> (PolicyEngine, Request) {
    let engine = PolicyEngine::from_config_str("bench.yaml", &config(), None).unwrap();
    let mut traits = std::collections::BTreeMap::new();
    traits.insert(
        "db_users".to_string(),
        vec!["teleport-docdb-user".to_string()],
    );
    traits.insert(
        "db_names".to_string(),
        vec!["test".to_string(), "reports".to_string()],
    );
    let identity = Arc::new(Identity::new(
        "alice",
        ["role-1", "role-2", "role-5", "role-7", "role-8"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        traits,
    ));
    let request = Request::new(identity, "my-docdb", "teleport-docdb-user", "test")
        .with_command("find")
        .with_namespaces(vec!["test.orders".into()]);
    let d = engine.decide_uncached(&request);
    assert!(d.allowed, "{}", d.reason);
    assert_eq!(
        d.matched_roles,
        vec!["role-7".to_string(), "role-8".to_string()]
    );
    (engine, request)
}

/// A session token of the size and alphabet AssumeRole returns (~800 base64 characters).
pub fn session_token() -> String {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut token = String::from("IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ");
    let mut x: u32 = 12345;
    while token.len() < 800 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        token.push(alphabet[(x >> 16) as usize % alphabet.len()] as char);
    }
    token.push_str("==");
    token
}

/// The fixed inputs of one MONGODB-AWS conversation: client nonce, the server-first reply
/// to it (STS host in us-west-2), and the signing time.
pub fn signing_inputs() -> ([u8; 32], Vec<u8>, std::time::SystemTime) {
    let nonce = [0x5au8; 32];
    let mut s = nonce.to_vec();
    s.extend([0xa5u8; 32]);
    let server_first = bson::to_vec(&doc! {
        "s": Binary { subtype: BinarySubtype::Generic, bytes: s },
        "h": "sts.us-west-2.amazonaws.com",
    })
    .unwrap();
    (
        nonce,
        server_first,
        UNIX_EPOCH + Duration::from_secs(1_764_000_000),
    )
}
