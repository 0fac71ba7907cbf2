//! The session judged by the policy engine and fed by the credentials provider: messages
//! denied by a role's rule (code 13 naming the database and the rule; the session goes on),
//! the connection-level deny (no database connection at all), commands that can reach
//! databases nobody can list, an engine reload applied to a running session, and the db
//! user's cached credentials dropped after the database rejected them (moto's STS counts the
//! AssumeRole calls).

mod common;

use std::sync::Arc;

use bson::doc;
use common::*;
use docauth::policy::{Config, PolicyEngine};
use docauth::session::{ProviderCredentials, Runtime, Session};
use docauth::ResultCode;

const NO_REPORTS: &str = "  - {kind: role, version: v7, metadata: {name: no-reports}, spec: {deny: {db_names: [reports]}}}\n";

fn engine_with(allow: &[&str], extra_roles: &str) -> Arc<PolicyEngine> {
    Arc::new(
        PolicyEngine::from_config_str(
            "session-test.yaml",
            &engine_config(allow, extra_roles),
            None,
        )
        .unwrap(),
    )
}

fn uri(server: &TestServer) -> String {
    format!("mongodb://127.0.0.1:{}/?tls=false", server.addr.port())
}

fn with_roles(
    mut p: docauth::session::SessionParams,
    roles: &[&str],
) -> docauth::session::SessionParams {
    let roles = roles.iter().map(|r| r.to_string()).collect();
    p.identity = docauth::session::SessionIdentity::Spec(std::sync::Arc::new(
        docauth::policy::Identity::new("alice", roles, Default::default()),
    ));
    p
}

fn assert_denied(reply: &Reply, id: i32, needles: &[&str]) -> String {
    assert_eq!(reply.response_to, id);
    assert_eq!(reply.doc.get_f64("ok").unwrap(), 0.0, "{:?}", reply.doc);
    assert_eq!(reply.doc.get_i32("code").unwrap(), 13, "{:?}", reply.doc);
    assert_eq!(reply.doc.get_str("codeName").unwrap(), "Unauthorized");
    let errmsg = reply.doc.get_str("errmsg").unwrap().to_string();
    for n in needles {
        assert!(errmsg.contains(n), "{n:?} not in {errmsg}");
    }
    errmsg
}

#[test]
fn a_message_a_role_denies_gets_code_13_naming_the_database_and_rule_and_the_session_goes_on() {
    let server = TestServer::start(ServerOptions::default());
    let runtime = Runtime::new(1).unwrap();
    let audit = Arc::new(Collected::default());
    let p = with_roles(params(&uri(&server), None), &["docdb-access", "no-reports"]);
    let (mut client, session) =
        start_session_with(&runtime, p, engine_with(&["*"], NO_REPORTS), audit.clone());
    let (_, reply) = client.command(doc! {"find": "c", "$db": "test"});
    assert_eq!(reply.doc.get_f64("ok").unwrap(), 1.0, "{:?}", reply.doc);
    let before = server.seen.commands.lock().unwrap().len();
    let (id, reply) = client.command(doc! {"find": "sales", "$db": "reports"});
    assert_denied(&reply, id, &["\"reports\"", "no-reports", "deny.db_names"]);
    // Reaching `reports` from `test` is denied by the same rule.
    let (id, reply) = client.command(doc! {"aggregate": "c", "pipeline": [{"$lookup": {"from": {"db": "reports", "coll": "x"}, "as": "j", "localField": "a", "foreignField": "b"}}], "cursor": {}, "$db": "test"});
    assert_denied(&reply, id, &["\"reports\"", "no-reports"]);
    assert_eq!(server.seen.commands.lock().unwrap().len(), before);
    // The session goes on.
    let (_, reply) = client.command(doc! {"find": "c", "$db": "test"});
    assert_eq!(reply.doc.get_f64("ok").unwrap(), 1.0, "{:?}", reply.doc);
    drop(client);
    let stats = session.wait().unwrap();
    assert_eq!(stats.denied, 2);
    // The dispatcher thread delivers the events after the session has ended; in order, so
    // once the end event is here every query event is too.
    audit.wait_for("db.session.end");
    let failed = audit.of_kind("db.session.query.failed");
    assert_eq!(failed.len(), 2);
    let reason = failed[0]["reason"].as_str().unwrap_or_default().to_string();
    let text = failed[0].to_string();
    assert!(
        text.contains("no-reports") && text.contains("reports"),
        "{reason} / {text}"
    );
}

#[test]
fn a_connection_level_deny_answers_the_client_and_never_contacts_the_database() {
    let server = TestServer::start(ServerOptions::default());
    let runtime = Runtime::new(1).unwrap();
    let audit = Arc::new(Collected::default());
    let mut p = params(&uri(&server), None);
    p.db_name = "admin".into();
    let (mut client, session) = start_session_with(&runtime, p, engine(&["test"]), audit.clone());
    let (id, reply) = client.command(doc! {"hello": 1, "$db": "admin"});
    let errmsg = assert_denied(&reply, id, &["\"admin\"", "db_names", "docdb-access"]);
    assert!(errmsg.starts_with("libdocauth: access denied"), "{errmsg}");
    let e = session.wait().unwrap_err();
    assert_eq!(e.code(), ResultCode::SessionAccessDenied);
    assert!(e.message().contains("\"alice\""), "{}", e.message());
    assert!(client.is_closed());
    assert!(server.seen.commands.lock().unwrap().is_empty());
    let start = audit.wait_for("db.session.start");
    assert_eq!(start["success"], false);
    assert_eq!(start["error_code"], "DOCAUTH_RESULT_SESSION_ACCESS_DENIED");
    assert!(start["error"].as_str().unwrap().contains("db_names"));
    audit.wait_for("db.session.end");

    // A db user no role allows is denied the same way, whatever the db name.
    let config = engine_config(&["*"], "").replace("db_users: ['*']", "db_users: [someone-else]");
    let engine = Arc::new(PolicyEngine::from_config_str("c.yaml", &config, None).unwrap());
    let (mut client, session) =
        start_session_with(&runtime, params(&uri(&server), None), engine, audit);
    let (id, reply) = client.command(doc! {"hello": 1, "$db": "admin"});
    assert_denied(&reply, id, &["teleport-docdb-user"]);
    assert_eq!(
        session.wait().unwrap_err().code(),
        ResultCode::SessionAccessDenied
    );
    assert!(server.seen.commands.lock().unwrap().is_empty());
}

#[test]
fn commands_reaching_unlisted_databases_need_every_database_and_no_deny_rule() {
    // Issue 10: an unknown stage is now refused outright (40324) whatever the session may
    // reach, so a known stage that reaches every database stands in for it here.
    let unlisted =
        doc! {"aggregate": 1, "pipeline": [{"$listCatalog": {}}], "cursor": {}, "$db": "test"};
    let server = TestServer::start(ServerOptions::default());
    let runtime = Runtime::new(1).unwrap();
    let audit = Arc::new(Collected::default());

    // db_names [test]: denied, saying why.
    let (mut client, session) =
        start_session(&runtime, &uri(&server), None, &["test"], audit.clone());
    let (id, reply) = client.command(unlisted.clone());
    assert_denied(
        &reply,
        id,
        &[
            "cannot list the databases",
            "$listCatalog",
            "\"*\"",
            "docdb-access",
        ],
    );
    drop(client);
    session.wait().unwrap();

    // db_names ['*'] and no deny rule: allowed (forwarded).
    let (mut client, session) = start_session(&runtime, &uri(&server), None, &["*"], audit.clone());
    let (_, reply) = client.command(unlisted.clone());
    assert_eq!(reply.doc.get_f64("ok").unwrap(), 1.0, "{:?}", reply.doc);
    assert_eq!(reply.doc.get_document("echo").unwrap(), &unlisted);
    drop(client);
    session.wait().unwrap();

    // db_names ['*'] but a role denies one database name: denied, naming that role.
    let p = with_roles(params(&uri(&server), None), &["docdb-access", "no-reports"]);
    let (mut client, session) =
        start_session_with(&runtime, p, engine_with(&["*"], NO_REPORTS), audit);
    let (id, reply) = client.command(unlisted);
    assert_denied(
        &reply,
        id,
        &["cannot list the databases", "no-reports", "deny.db_names"],
    );
    let (_, reply) = client.command(doc! {"find": "c", "$db": "test"});
    assert_eq!(reply.doc.get_f64("ok").unwrap(), 1.0);
    drop(client);
    session.wait().unwrap();
}

#[test]
fn an_engine_reload_applies_to_a_running_session_from_its_next_message() {
    let server = TestServer::start(ServerOptions::default());
    let runtime = Runtime::new(1).unwrap();
    let audit = Arc::new(Collected::default());
    let engine = engine(&["test"]);
    let (mut client, session) = start_session_with(
        &runtime,
        params(&uri(&server), None),
        Arc::clone(&engine),
        audit,
    );
    let (_, reply) = client.command(doc! {"find": "c", "$db": "test"});
    assert_eq!(reply.doc.get_f64("ok").unwrap(), 1.0);
    let (id, reply) = client.command(doc! {"find": "c", "$db": "other"});
    assert_denied(&reply, id, &["\"other\""]);

    engine
        .reload(Config::from_str("new.yaml", &engine_config(&["other"], ""), None).unwrap())
        .unwrap();
    let (id, reply) = client.command(doc! {"find": "c", "$db": "test"});
    assert_denied(&reply, id, &["\"test\"", "db_names"]);
    let (_, reply) = client.command(doc! {"find": "c", "$db": "other"});
    assert_eq!(reply.doc.get_f64("ok").unwrap(), 1.0, "{:?}", reply.doc);

    // A reload that removes the role revokes even connection commands.
    engine
        .reload(
            Config::from_str(
                "none.yaml",
                &engine_config(&["*"], "").replace("name: docdb-access", "name: renamed"),
                None,
            )
            .unwrap(),
        )
        .unwrap();
    let (id, reply) = client.command(doc! {"ping": 1, "$db": "admin"});
    assert_denied(&reply, id, &["docdb-access"]);
    drop(client);
    assert_eq!(session.wait().unwrap().denied, 3);
}

#[test]
fn the_db_users_credentials_are_dropped_after_the_database_rejects_them() {
    let (moto, setup) = Moto::start(0);
    let provider = Arc::new(
        docauth::aws::CredentialsProvider::from_json_blocking(
            &serde_json::json!({
                "source": {"type": "static", "access_key_id": setup.access_key_id,
                           "secret_access_key": setup.secret_access_key},
                "region": "us-east-1", "sts_endpoint": moto.url,
            })
            .to_string(),
        )
        .unwrap(),
    );
    let refusing = TestServer::start(ServerOptions {
        refuse_auth: true,
        any_access_key: true,
        ..Default::default()
    });
    let accepting = TestServer::start(ServerOptions {
        any_access_key: true,
        ..Default::default()
    });
    let runtime = Runtime::new(1).unwrap();
    let run = |server: &TestServer| {
        let (client, proxy_side) = socket_pair();
        let mut p = params(&uri(server), None);
        p.db_user = setup.db_user_role_arn.clone();
        let session = Session::start(
            &runtime,
            tokio_stream(&runtime, proxy_side),
            p,
            engine(&["test"]),
            Arc::new(
                ProviderCredentials::new(Arc::clone(&provider), &engine(&["test"]), TEST_DATABASE)
                    .unwrap(),
            ),
            None,
        )
        .unwrap();
        let mut client = Client::new(client);
        let (_, reply) = client.command(doc! {"hello": 1, "$db": "admin"});
        drop(client);
        (reply, session.wait())
    };
    let assumed = || moto.assumed(&setup.db_user_role_arn).len();

    let (reply, outcome) = run(&refusing);
    assert_eq!(reply.doc.get_i32("code").unwrap(), 18);
    assert_eq!(outcome.unwrap_err().code(), ResultCode::UpstreamAuthFailed);
    assert_eq!(assumed(), 1);
    // The rejected credentials were dropped: the next session assumes the role again…
    let (reply, outcome) = run(&accepting);
    assert_eq!(reply.doc.get_f64("ok").unwrap(), 1.0, "{:?}", reply.doc);
    outcome.unwrap();
    assert_eq!(assumed(), 2);
    // …and accepted ones stay cached.
    let (_, outcome) = run(&accepting);
    outcome.unwrap();
    assert_eq!(assumed(), 2);
    let finals = accepting.seen.client_finals.lock().unwrap();
    assert_eq!(finals.len(), 2);
    // Both sessions signed with the same cached temporary key.
    let key = |i: usize| {
        finals[i]
            .get_str("a")
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(key(0), key(1));
    for f in finals.iter() {
        let a = f.get_str("a").unwrap();
        assert!(a.starts_with("AWS4-HMAC-SHA256 Credential=ASIA"), "{a}");
        assert!(!a.contains(&setup.access_key_id));
    }
}

/// The engine configuration of `engine_config(["test"])` with database `docdb`'s `aws`
/// replaced by `aws` (YAML flow mapping).
fn engine_with_aws(aws: &str) -> Arc<PolicyEngine> {
    let text = engine_config(&["test"], "").replace(
        "aws: {account_id: '123456789012', region: us-east-1}",
        &format!("aws: {aws}"),
    );
    assert!(text.contains(aws), "{text}");
    Arc::new(PolicyEngine::from_config_str("aws.yaml", &text, None).unwrap())
}

#[test]
fn a_session_takes_its_databases_aws_settings_from_the_engine_entry() {
    let (moto, setup) = Moto::start(0);
    // The provider knows only the service's own credentials and STS: no `database` block.
    let provider = Arc::new(
        docauth::aws::CredentialsProvider::from_json_blocking(
            &serde_json::json!({
                "source": {"type": "static", "access_key_id": setup.access_key_id,
                           "secret_access_key": setup.secret_access_key},
                "region": "us-east-1", "sts_endpoint": moto.url,
            })
            .to_string(),
        )
        .unwrap(),
    );
    // The database's account, role to assume first and its external id: written once,
    // in the engine configuration.
    let engine = engine_with_aws(&format!(
        "{{account_id: '{}', region: us-east-1, assume_role_arn: '{}', external_id: '{}'}}",
        setup.account, setup.assume_role_arn, setup.external_id
    ));
    let server = TestServer::start(ServerOptions {
        any_access_key: true,
        ..Default::default()
    });
    let runtime = Runtime::new(1).unwrap();
    let (client, proxy_side) = socket_pair();
    // The db user by role name: its account comes from the engine entry too.
    let session = Session::start(
        &runtime,
        tokio_stream(&runtime, proxy_side),
        params(&uri(&server), None),
        Arc::clone(&engine),
        Arc::new(ProviderCredentials::new(Arc::clone(&provider), &engine, TEST_DATABASE).unwrap()),
        None,
    )
    .unwrap();
    let mut client = Client::new(client);
    let (_, reply) = client.command(doc! {"hello": 1, "$db": "admin"});
    assert_eq!(reply.doc.get_f64("ok").unwrap(), 1.0, "{:?}", reply.doc);
    drop(client);
    session.wait().unwrap();
    // Through the engine entry's role, with its external id, then into the db user's role.
    assert_eq!(
        moto.assumed(&setup.assume_role_arn),
        vec![Some(setup.external_id.clone())]
    );
    assert_eq!(moto.assumed(&setup.db_user_role_arn), vec![None]);
    let finals = server.seen.client_finals.lock().unwrap();
    let a = finals[0].get_str("a").unwrap();
    assert!(a.starts_with("AWS4-HMAC-SHA256 Credential=ASIA"), "{a}");
}

#[test]
fn a_provider_database_block_contradicting_the_engine_entry_is_refused() {
    let runtime = Runtime::new(1).unwrap();
    let provider = |database: serde_json::Value| {
        let settings: docauth::aws::ProviderSettings = serde_json::from_value(serde_json::json!({
            "source": {"type": "static", "access_key_id": TEST_AKID, "secret_access_key": TEST_SECRET},
            "region": "us-east-1",
            "database": database,
        }))
        .unwrap();
        Arc::new(
            runtime
                .handle()
                .block_on(docauth::aws::CredentialsProvider::new(settings))
                .unwrap(),
        )
    };
    let engine = engine_with_aws(
        "{account_id: '123456789012', region: us-east-1, assume_role_arn: 'arn:aws:iam::123456789012:role/docdb-access', external_id: 'the-external-id'}",
    );
    let refused = |database: serde_json::Value| {
        ProviderCredentials::new(provider(database), &engine, TEST_DATABASE).unwrap_err()
    };

    let e = refused(serde_json::json!({"assume_role_arn": "arn:aws:iam::123456789012:role/other"}));
    assert_eq!(e.code(), ResultCode::InvalidConfig);
    assert_eq!(
        e.message(),
        "the credentials provider configuration's `database.assume_role_arn` is \"arn:aws:iam::123456789012:role/other\" but database \"my-docdb\" of the engine configuration has `aws.assume_role_arn` \"arn:aws:iam::123456789012:role/docdb-access\": a database's AWS settings are written once, in the engine configuration's `databases[].aws`; remove the provider's `database` block (see the README, \"One source of truth for a database\")"
    );
    let e = refused(serde_json::json!({"account_id": "111111111111"}));
    assert!(
        e.message().starts_with("the credentials provider configuration's `database.account_id` is \"111111111111\" but database \"my-docdb\" of the engine configuration has `aws.account_id` \"123456789012\""),
        "{}",
        e.message()
    );
    // The external id is a secret: named, never shown.
    let e = refused(serde_json::json!({
        "assume_role_arn": "arn:aws:iam::123456789012:role/docdb-access",
        "external_id": "a-wrong-id",
    }));
    assert!(
        e.message().starts_with("the credentials provider configuration's `database.external_id` is \"(hidden)\" but database \"my-docdb\" of the engine configuration has `aws.external_id` \"(hidden)\""),
        "{}",
        e.message()
    );
    assert!(!e.message().contains("a-wrong-id") && !e.message().contains("the-external-id"));
    // A field the engine entry does not set is a contradiction too (the session would not use it).
    let e = ProviderCredentials::new(
        provider(serde_json::json!({"region": "eu-west-1"})),
        &engine_with_aws("{account_id: '123456789012'}"),
        TEST_DATABASE,
    )
    .unwrap_err();
    assert!(
        e.message().starts_with("the credentials provider configuration's `database.region` is \"eu-west-1\" but database \"my-docdb\" of the engine configuration has no `aws.region`"),
        "{}",
        e.message()
    );

    // A block that repeats the engine's values is accepted (and redundant).
    ProviderCredentials::new(
        provider(serde_json::json!({"account_id": "123456789012", "region": "us-east-1"})),
        &engine,
        TEST_DATABASE,
    )
    .unwrap();
    // An unusable role in the engine entry is named with its database.
    let e = ProviderCredentials::new(
        provider(serde_json::json!({})),
        &engine_with_aws("{assume_role_arn: 'arn:aws:iam::123456789012:user/x'}"),
        TEST_DATABASE,
    )
    .unwrap_err();
    assert_eq!(e.code(), ResultCode::AwsInvalidRoleArn);
    assert!(
        e.message()
            .starts_with("database \"my-docdb\" of the engine configuration, its `aws` settings: "),
        "{}",
        e.message()
    );
}
