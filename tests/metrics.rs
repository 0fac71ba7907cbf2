//! The metrics of a runtime and an engine after real sessions against the in-process OP_MSG
//! server: every counter exactly what the sessions did, the relayed bytes equal to the
//! sessions' own stats, a refused authentication counted as one, both formats.

mod common;

use std::sync::Arc;

use bson::doc;
use common::*;
use docauth::metrics::{render, Format};
use docauth::session::Runtime;

/// The value of the sample `name{labels}` (labels in the rendered order), or panics.
fn value(text: &str, sample: &str) -> f64 {
    let prefix = format!("{sample} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no sample {sample} in:\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn a_session_is_counted_exactly() {
    let server = TestServer::start(ServerOptions::default());
    let runtime = Runtime::new(1).unwrap();
    let engine = engine(&["test"]);
    let audit = Arc::new(Collected::default());
    let uri = format!("mongodb://127.0.0.1:{}/?tls=false", server.addr.port());
    let (mut client, session) =
        start_session_with(&runtime, params(&uri, None), Arc::clone(&engine), audit);
    let ok = |(_, r): (i32, Reply)| r.doc.get_f64("ok").unwrap();
    assert_eq!(ok(client.command(doc! {"hello": 1, "$db": "admin"})), 1.0);
    assert_eq!(ok(client.command(doc! {"find": "c", "$db": "test"})), 1.0);
    assert_eq!(ok(client.command(doc! {"find": "c", "$db": "test"})), 1.0);
    assert_eq!(
        ok(client.command(doc! {"insert": "c", "documents": [{"a": 1}], "$db": "other"})),
        0.0
    );
    assert_eq!(
        ok(client.command(doc! {"saslStart": 1, "mechanism": "PLAIN", "payload": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![1] }, "$db": "admin"})),
        0.0
    );
    assert_eq!(
        ok(client.command(doc! {"noSuchCommand": 1, "$db": "test"})),
        0.0
    );
    drop(client);
    let stats = session.wait().unwrap();
    assert_eq!(stats.end_reason, "client closed the connection");

    let text = render(
        Format::Prometheus,
        vec![Box::new(runtime.metrics()), Box::new(engine.metrics())],
    );
    assert_eq!(value(&text, "docauth_sessions_started_total"), 1.0);
    assert_eq!(value(&text, "docauth_sessions_active"), 0.0);
    assert_eq!(
        value(
            &text,
            "docauth_sessions_ended_total{reason=\"client_closed\"}"
        ),
        1.0
    );
    let judged = |verdict: &str, class: &str| {
        value(
            &text,
            &format!("docauth_messages_judged_total{{verdict=\"{verdict}\",class=\"{class}\"}}"),
        )
    };
    assert_eq!(judged("allowed", "connection"), 1.0);
    assert_eq!(judged("allowed", "this_db"), 2.0);
    assert_eq!(judged("denied", "this_db"), 1.0);
    assert_eq!(judged("denied", "authentication"), 1.0);
    assert_eq!(judged("denied", "unparsed"), 1.0);
    assert_eq!(judged("allowed", "all_dbs"), 0.0);
    let denied = |kind: &str| {
        value(
            &text,
            &format!("docauth_messages_denied_total{{kind=\"{kind}\"}}"),
        )
    };
    assert_eq!(denied("policy"), 1.0);
    assert_eq!(denied("refused"), 2.0);
    assert_eq!(denied("malformed"), 0.0);
    assert_eq!(denied("policy") + denied("refused"), stats.denied as f64);
    // The bytes are the session's own counts.
    assert_eq!(
        value(
            &text,
            "docauth_relayed_bytes_total{direction=\"from_client\"}"
        ),
        stats.bytes_from_client as f64
    );
    assert_eq!(
        value(
            &text,
            "docauth_relayed_bytes_total{direction=\"to_client\"}"
        ),
        stats.bytes_to_client as f64
    );
    // Plain TCP: connected and authenticated, no TLS handshake.
    let phase = |p: &str| {
        value(
            &text,
            &format!("docauth_upstream_phase_duration_seconds_count{{phase=\"{p}\"}}"),
        )
    };
    assert_eq!(
        (phase("connect"), phase("tls"), phase("auth")),
        (1.0, 0.0, 1.0)
    );
    // Admission + hello + find (then cached) + insert on `other`; the refused ones are never
    // judged by the engine.
    assert_eq!(
        value(&text, "docauth_policy_decisions_total{outcome=\"allowed\"}"),
        4.0
    );
    assert_eq!(
        value(&text, "docauth_policy_decisions_total{outcome=\"denied\"}"),
        1.0
    );
    assert_eq!(value(&text, "docauth_policy_cache_hits_total"), 1.0);
    assert_eq!(value(&text, "docauth_policy_cache_misses_total"), 4.0);
    assert_eq!(
        value(&text, "docauth_policy_decision_duration_seconds_count"),
        4.0
    );
    // Never a client's string as a label value.
    for name in ["\"c\"", "\"other\"", "noSuchCommand", "alice", "saslStart"] {
        assert!(!text.contains(name), "{name} in:\n{text}");
    }
}

#[test]
fn a_refused_authentication_is_counted_as_one_upstream_failure() {
    let server = TestServer::start(ServerOptions {
        refuse_auth: true,
        ..Default::default()
    });
    let runtime = Runtime::new(1).unwrap();
    let uri = format!("mongodb://127.0.0.1:{}/?tls=false", server.addr.port());
    let (client, session) = start_session(
        &runtime,
        &uri,
        None,
        &["test"],
        Arc::new(Collected::default()),
    );
    drop(client);
    let error = session.wait().unwrap_err();
    assert_eq!(error.code(), docauth::ResultCode::UpstreamAuthFailed);
    let text = render(Format::OpenMetrics, vec![Box::new(runtime.metrics())]);
    assert!(
        text.contains("\ndocauth_upstream_failures_total{kind=\"auth_rejected\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("\ndocauth_sessions_ended_total{reason=\"upstream_failed\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("\ndocauth_upstream_phase_duration_seconds_count{phase=\"auth\"} 0\n"),
        "{text}"
    );
    assert!(
        text.contains("# UNIT docauth_relayed_bytes bytes\n"),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
}
