//! The credentials provider against moto's STS on loopback, signature checking on, set up
//! as the DocumentDB guide sets up AWS (tests/moto/credentials_setup.py).
//!
//! These tests use a static source (the service's IAM user keys) so they never read the
//! process environment; the environment, profile, web identity and no-credentials cases
//! live in tests/credentials_moto_env.rs (one process, sequential).

mod common;

use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_smithy_async::time::{SharedTimeSource, TimeSource};
use common::{assert_no_secret, caller_arn, Moto, Setup};
use docauth::aws::{CredentialsProvider, ProviderSettings};
use docauth::ResultCode;

fn settings(moto: &Moto, setup: &Setup, extra: serde_json::Value) -> ProviderSettings {
    let mut json = serde_json::json!({
        "source": {
            "type": "static",
            "access_key_id": setup.access_key_id,
            "secret_access_key": setup.secret_access_key,
        },
        "region": "us-east-1",
        "sts_endpoint": moto.url,
        "connect_timeout_ms": 2000,
        "operation_timeout_ms": 10000,
    });
    if let (Some(base), Some(extra)) = (json.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(json).unwrap()
}

/// A provider built from `settings`, and the error its resolution of `db_user` ends with.
async fn failed_resolution(
    settings: ProviderSettings,
    db_user: &str,
    session_user: Option<&str>,
) -> (CredentialsProvider, docauth::Error) {
    let provider = CredentialsProvider::new(settings).await.unwrap();
    let e = provider.resolve(db_user, session_user).await.unwrap_err();
    (provider, e)
}

fn assumed_arn(setup: &Setup, role: &str, session: &str) -> String {
    format!(
        "arn:aws:sts::{}:assumed-role/{role}/{session}",
        setup.account
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolves_a_role_name_and_its_arn_to_the_same_assumed_role() {
    let (moto, setup) = Moto::start(0);
    // No account_id: the account comes from GetCallerIdentity with the service's keys.
    let provider = CredentialsProvider::new(settings(&moto, &setup, serde_json::json!({})))
        .await
        .unwrap();

    let by_name = provider
        .resolve("teleport-docdb-user", Some("alice@example.com"))
        .await
        .unwrap();
    assert!(by_name.session_token().is_some());
    assert!(by_name.expiry().is_some());
    assert_eq!(
        caller_arn(&moto.url, &by_name).await,
        assumed_arn(&setup, "teleport-docdb-user", "alice@example.com")
    );

    let by_arn = provider
        .resolve(&setup.db_user_role_arn, Some("alice@example.com"))
        .await
        .unwrap();
    assert_eq!(
        by_arn.access_key_id(),
        by_name.access_key_id(),
        "same cache entry"
    );
    assert_eq!(moto.assumed(&setup.db_user_role_arn).len(), 1);

    // Another identity gets its own session (and its own name in CloudTrail).
    let bob = provider
        .resolve("teleport-docdb-user", Some("bob smith/ops"))
        .await
        .unwrap();
    assert_eq!(
        caller_arn(&moto.url, &bob).await,
        assumed_arn(&setup, "teleport-docdb-user", "bob-smith-ops")
    );
    assert_eq!(moto.assumed(&setup.db_user_role_arn).len(), 2);

    // A full ARN in another account than the one configured is refused before any call.
    let with_account = CredentialsProvider::new(settings(
        &moto,
        &setup,
        serde_json::json!({"database": {"account_id": setup.account}}),
    ))
    .await
    .unwrap();
    let e = with_account
        .resolve("arn:aws:iam::210987654321:role/teleport-docdb-user", None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), ResultCode::AwsInvalidRoleArn);
    assert!(e.message().contains("account 210987654321"), "{e:?}");
    let shown = format!("{provider:?} {by_name:?} {e:?}");
    assert_no_secret(
        &shown,
        &[&setup.secret_access_key, by_name.session_token().unwrap()],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_chaining_sends_the_external_id_on_the_first_hop_only() {
    let (moto, setup) = Moto::start(0);
    let provider = CredentialsProvider::new(settings(
        &moto,
        &setup,
        serde_json::json!({"database": {
            "assume_role_arn": setup.assume_role_arn,
            "external_id": setup.external_id,
        }}),
    ))
    .await
    .unwrap();
    let creds = provider
        .resolve("teleport-docdb-user", Some("alice"))
        .await
        .unwrap();
    assert_eq!(
        caller_arn(&moto.url, &creds).await,
        assumed_arn(&setup, "teleport-docdb-user", "alice")
    );
    assert_eq!(
        moto.assumed(&setup.assume_role_arn),
        vec![Some(setup.external_id.clone())]
    );
    assert_eq!(moto.assumed(&setup.db_user_role_arn), vec![None]);

    // A second identity reuses nothing of alice's chain but follows the same path.
    let bob = provider
        .resolve("teleport-docdb-user", Some("bob"))
        .await
        .unwrap();
    assert_eq!(
        caller_arn(&moto.url, &bob).await,
        assumed_arn(&setup, "teleport-docdb-user", "bob")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_external_id_is_access_denied_with_the_fix() {
    let (moto, setup) = Moto::start(0);
    let wrong_id = settings(
        &moto,
        &setup,
        serde_json::json!({"database": {
            "assume_role_arn": setup.assume_role_arn,
            "external_id": "not-the-external-id",
        }}),
    );
    let (_, e) = failed_resolution(wrong_id, "teleport-docdb-user", Some("alice")).await;
    assert_eq!(e.code(), ResultCode::AwsAssumeRoleDenied, "{e:?}");
    let m = e.message();
    eprintln!("wrong external id:\n{m}");
    assert!(m.contains(&setup.user_arn), "caller ARN missing: {m}");
    assert!(m.contains(&setup.assume_role_arn), "role ARN missing: {m}");
    assert!(m.contains("trust policy"), "{m}");
    assert!(m.contains("sts:ExternalId"), "{m}");
    assert!(moto.assumed(&setup.assume_role_arn).is_empty());
    assert_no_secret(&format!("{e:?}"), &[&setup.secret_access_key]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trust_policy_without_the_caller_is_access_denied_with_both_arns() {
    let (moto, setup) = Moto::start(0);
    let direct = settings(
        &moto,
        &setup,
        serde_json::json!({"database": {"account_id": setup.account}}),
    );
    let (_, e) = failed_resolution(direct, "untrusted-role", Some("alice")).await;
    assert_eq!(e.code(), ResultCode::AwsAssumeRoleDenied, "{e:?}");
    let m = e.message();
    assert!(m.contains(&setup.user_arn), "{m}");
    assert!(m.contains(&setup.untrusted_role_arn), "{m}");
    assert!(m.contains("trust policy"), "{m}");
    assert!(
        !m.contains("sts:ExternalId"),
        "no external id configured: {m}"
    );

    // Chained: the second hop's caller is the first hop's session, named as such.
    let chained = settings(
        &moto,
        &setup,
        serde_json::json!({"database": {
            "assume_role_arn": setup.assume_role_arn,
            "external_id": setup.external_id,
        }}),
    );
    let (_, e) = failed_resolution(chained, "untrusted-role", Some("alice")).await;
    assert_eq!(e.code(), ResultCode::AwsAssumeRoleDenied, "{e:?}");
    assert!(
        e.message()
            .contains(&assumed_arn(&setup, "docdb-access", "alice")),
        "{e:?}"
    );
    assert!(e.message().contains(&setup.untrusted_role_arn), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_resolutions_make_one_assume_role_call() {
    let (moto, setup) = Moto::start(0);
    let provider = CredentialsProvider::new(settings(
        &moto,
        &setup,
        serde_json::json!({"database": {"account_id": setup.account}}),
    ))
    .await
    .unwrap();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let p = provider.clone();
            let user = if i % 2 == 0 {
                "teleport-docdb-user".to_owned()
            } else {
                format!("arn:aws:iam::{}:role/teleport-docdb-user", "123456789012")
            };
            tokio::spawn(async move { p.resolve(&user, Some("alice")).await })
        })
        .collect();
    let mut keys = std::collections::HashSet::new();
    for t in tasks {
        keys.insert(t.await.unwrap().unwrap().access_key_id().to_owned());
    }
    assert_eq!(keys.len(), 1);
    assert_eq!(moto.assumed(&setup.db_user_role_arn).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_all_get_the_access_denied_explanation() {
    let (moto, setup) = Moto::start(0);
    let provider = CredentialsProvider::new(settings(
        &moto,
        &setup,
        serde_json::json!({"database": {
            "assume_role_arn": setup.assume_role_arn,
            "external_id": "not-the-external-id",
        }}),
    ))
    .await
    .unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let p = provider.clone();
            tokio::spawn(async move { p.resolve("teleport-docdb-user", Some("alice")).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(
            t.await.unwrap().unwrap_err().code(),
            ResultCode::AwsAssumeRoleDenied
        );
    }
    // A later call tries again rather than replaying an old failure.
    let e = provider
        .resolve("teleport-docdb-user", Some("alice"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ResultCode::AwsAssumeRoleDenied);
}

/// A clock the test moves forward.
#[derive(Debug, Clone)]
struct TestClock {
    offset_secs: Arc<AtomicU64>,
}

impl TimeSource for TestClock {
    fn now(&self) -> SystemTime {
        SystemTime::now() + Duration::from_secs(self.offset_secs.load(Ordering::SeqCst))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_renewed_five_minutes_before_expiry_and_on_invalidate() {
    let (moto, setup) = Moto::start(0);
    let clock = TestClock {
        offset_secs: Arc::new(AtomicU64::new(0)),
    };
    let provider = CredentialsProvider::with_time_source(
        settings(
            &moto,
            &setup,
            serde_json::json!({"session_duration_seconds": 3600,
                               "database": {"account_id": setup.account}}),
        ),
        SharedTimeSource::new(clock.clone()),
    )
    .await
    .unwrap();
    let first = provider
        .resolve("teleport-docdb-user", Some("alice"))
        .await
        .unwrap();
    let left = first
        .expiry()
        .unwrap()
        .duration_since(SystemTime::now())
        .unwrap()
        .as_secs();
    assert!(left > 3000 && left <= 3600, "{left}");

    // Six minutes before expiry: still cached.
    clock
        .offset_secs
        .store(left.saturating_sub(6 * 60), Ordering::SeqCst);
    let again = provider
        .resolve("teleport-docdb-user", Some("alice"))
        .await
        .unwrap();
    assert_eq!(again.access_key_id(), first.access_key_id());
    assert_eq!(moto.assumed(&setup.db_user_role_arn).len(), 1);

    // Four minutes before expiry: inside the refresh window, a new AssumeRole.
    clock
        .offset_secs
        .store(left.saturating_sub(4 * 60), Ordering::SeqCst);
    let renewed = provider
        .resolve("teleport-docdb-user", Some("alice"))
        .await
        .unwrap();
    assert_ne!(renewed.access_key_id(), first.access_key_id());
    assert_eq!(moto.assumed(&setup.db_user_role_arn).len(), 2);

    // DocumentDB rejected the credentials: drop them, the next call assumes again.
    assert_eq!(provider.invalidate("teleport-docdb-user"), 1);
    let after = provider
        .resolve(&setup.db_user_role_arn, Some("alice"))
        .await
        .unwrap();
    assert_ne!(after.access_key_id(), renewed.access_key_id());
    assert_eq!(moto.assumed(&setup.db_user_role_arn).len(), 3);
    assert_eq!(provider.invalidate(&setup.db_user_role_arn), 1);
    assert_eq!(provider.invalidate("nobody"), 0);
}

/// A loopback TCP forwarder in front of moto that the test switches off and on. While off
/// it accepts connections and closes them at once (an STS endpoint that does not serve),
/// and cuts the connections it was forwarding (the SDK's pooled keep-alive ones).
struct StsSwitch {
    url: String,
    up: Arc<AtomicBool>,
    connections: Arc<AtomicU64>,
    forwarded: Arc<Mutex<Vec<TcpStream>>>,
}

impl StsSwitch {
    fn start(moto_port: u16) -> StsSwitch {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let switch = StsSwitch {
            url,
            up: Arc::new(AtomicBool::new(true)),
            connections: Arc::new(AtomicU64::new(0)),
            forwarded: Arc::new(Mutex::new(Vec::new())),
        };
        let (up, connections, forwarded) = (
            switch.up.clone(),
            switch.connections.clone(),
            switch.forwarded.clone(),
        );
        // Lives as long as the test process; it only ever talks to loopback.
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                connections.fetch_add(1, Ordering::SeqCst);
                if !up.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", moto_port)) else {
                    continue;
                };
                let mut open = forwarded.lock().unwrap();
                open.push(client.try_clone().unwrap());
                open.push(server.try_clone().unwrap());
                drop(open);
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Write);
                    });
                }
            }
        });
        switch
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            for s in self.forwarded.lock().unwrap().drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }

    fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sts_down_in_the_refresh_window_serves_the_still_valid_credentials_until_expiry() {
    let (moto, setup) = Moto::start(0);
    let sts = StsSwitch::start(moto.port);
    let clock = TestClock {
        offset_secs: Arc::new(AtomicU64::new(0)),
    };
    let mut s = settings(
        &moto,
        &setup,
        serde_json::json!({"connect_timeout_ms": 500, "operation_timeout_ms": 3000,
                           "database": {"account_id": setup.account}}),
    );
    s.sts_endpoint = Some(sts.url.clone());
    let provider = CredentialsProvider::with_time_source(s, SharedTimeSource::new(clock.clone()))
        .await
        .unwrap();
    let resolve = || provider.resolve("teleport-docdb-user", Some("alice"));
    let first = resolve().await.unwrap();
    assert_eq!(moto.assumed(&setup.db_user_role_arn).len(), 1);
    let left = first
        .expiry()
        .unwrap()
        .duration_since(SystemTime::now())
        .unwrap()
        .as_secs();
    assert!(left > 3000, "{left}");

    // STS goes down; four minutes before expiry the renewal fails, and the cached
    // credentials (still valid for four minutes) are served instead of the error.
    sts.set_up(false);
    clock.offset_secs.store(left - 4 * 60, Ordering::SeqCst);
    let served = resolve().await.unwrap();
    assert_eq!(served.access_key_id(), first.access_key_id());
    assert_eq!(served.session_token(), first.session_token());
    let tried = sts.connections();

    // Right after a failed renewal: served without another STS call.
    let again = resolve().await.unwrap();
    assert_eq!(again.access_key_id(), first.access_key_id());
    assert_eq!(
        sts.connections(),
        tried,
        "no STS call within 30 s of the failure"
    );

    // 31 seconds later STS is tried again; still down, still served.
    clock
        .offset_secs
        .store(left - 4 * 60 + 31, Ordering::SeqCst);
    let later = resolve().await.unwrap();
    assert_eq!(later.access_key_id(), first.access_key_id());
    assert!(sts.connections() > tried, "STS tried again after 30 s");
    // They are the real, working credentials of the role.
    assert_eq!(
        caller_arn(&moto.url, &later).await,
        assumed_arn(&setup, "teleport-docdb-user", "alice")
    );

    // Less than a minute of validity left: the STS error, naming the endpoint.
    clock.offset_secs.store(left - 30, Ordering::SeqCst);
    let e = resolve().await.unwrap_err();
    assert_eq!(e.code(), ResultCode::AwsStsUnreachable, "{e:?}");
    assert!(e.message().contains(&sts.url), "{e:?}");
    // Expired: the STS error as well.
    clock.offset_secs.store(left + 10, Ordering::SeqCst);
    let e = resolve().await.unwrap_err();
    assert_eq!(e.code(), ResultCode::AwsStsUnreachable, "{e:?}");
    assert_no_secret(
        &format!("{e:?}"),
        &[&setup.secret_access_key, first.session_token().unwrap()],
    );
    assert_eq!(moto.assumed(&setup.db_user_role_arn).len(), 1);

    // STS is back: new credentials.
    sts.set_up(true);
    let renewed = resolve().await.unwrap();
    assert_ne!(renewed.access_key_id(), first.access_key_id());
    assert_eq!(moto.assumed(&setup.db_user_role_arn).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_keys_say_so_without_showing_them() {
    let (moto, setup) = Moto::start(0);
    let wrong_secret = "wrongSECRETwrongSECRETwrongSECRET";
    let mut s = settings(
        &moto,
        &setup,
        serde_json::json!({"database": {"account_id": setup.account}}),
    );
    s.source = serde_json::from_value(serde_json::json!({
        "type": "static", "access_key_id": setup.access_key_id, "secret_access_key": wrong_secret
    }))
    .unwrap();
    let (provider, e) = failed_resolution(s, "teleport-docdb-user", None).await;
    assert_eq!(e.code(), ResultCode::AwsInvalidToken, "{e:?}");
    assert!(e.message().contains("SignatureDoesNotMatch"), "{e:?}");
    assert!(e.message().contains(&moto.url), "{e:?}");
    assert_no_secret(&format!("{e:?} {provider:?}"), &[wrong_secret]);

    let token = "FwoGZXIvYXdzUNKNOWNTOKENxxxxxxxx";
    let mut s = settings(&moto, &setup, serde_json::json!({}));
    s.source = serde_json::from_value(serde_json::json!({
        "type": "static", "access_key_id": "ASIAUNKNOWNKEY000000",
        "secret_access_key": "unknownSECRETunknownSECRET", "session_token": token
    }))
    .unwrap();
    let (provider, e) = failed_resolution(s, "teleport-docdb-user", None).await;
    assert_eq!(e.code(), ResultCode::AwsInvalidToken, "{e:?}");
    assert!(e.message().contains("InvalidClientTokenId"), "{e:?}");
    assert_no_secret(
        &format!("{e:?} {provider:?}"),
        &[token, "unknownSECRETunknownSECRET"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_and_silent_sts_endpoints_name_the_endpoint_and_timeout() {
    let (moto, setup) = Moto::start(0);
    // A closed port: connection refused.
    let closed = format!("http://127.0.0.1:{}", common::free_port());
    let refused = settings(
        &moto,
        &setup,
        serde_json::json!({"sts_endpoint": closed, "connect_timeout_ms": 500,
                           "database": {"account_id": setup.account}}),
    );
    let (_, e) = failed_resolution(refused, "teleport-docdb-user", None).await;
    assert_eq!(e.code(), ResultCode::AwsStsUnreachable, "{e:?}");
    assert!(e.message().contains(&closed), "{e:?}");
    assert!(e.message().contains("connect_timeout_ms 500"), "{e:?}");

    // A listener that accepts and never answers: the operation timeout.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let unanswered = settings(
        &moto,
        &setup,
        serde_json::json!({"sts_endpoint": url, "operation_timeout_ms": 700,
                           "database": {"account_id": setup.account}}),
    );
    let (_, e) = failed_resolution(unanswered, "teleport-docdb-user", None).await;
    assert_eq!(e.code(), ResultCode::AwsStsUnreachable, "{e:?}");
    eprintln!("silent STS:\n{}", e.message());
    assert!(e.message().contains(&url), "{e:?}");
    assert!(e.message().contains("700"), "{e:?}");
    assert_no_secret(&format!("{e:?}"), &[&setup.secret_access_key]);
    drop(silent);
}

#[test]
fn the_blocking_and_c_apis_resolve_against_moto() {
    use docauth::ffi::*;
    use std::ffi::{CStr, CString};
    use std::ptr;

    /// Calls the C ABI as a C caller does.
    macro_rules! c_call {
        ($call:expr) => {{
            // SAFETY: the test passes NULL, or pointers to live values it owns, as the called
            // function's contract asks.
            unsafe { $call }
        }};
    }

    let (moto, setup) = Moto::start(0);
    let config = serde_json::json!({
        "source": {"type": "static", "access_key_id": setup.access_key_id,
                   "secret_access_key": setup.secret_access_key},
        "region": "us-east-1", "sts_endpoint": moto.url,
        "database": {"assume_role_arn": setup.assume_role_arn, "external_id": setup.external_id},
    })
    .to_string();

    let blocking = CredentialsProvider::from_json_blocking(&config).unwrap();
    let creds = blocking
        .resolve_blocking("teleport-docdb-user", Some("alice"))
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(
        rt.block_on(caller_arn(&moto.url, &creds)),
        assumed_arn(&setup, "teleport-docdb-user", "alice")
    );
    // From inside a runtime the blocking call refuses instead of deadlocking.
    let e = rt
        .block_on(async { blocking.resolve_blocking("teleport-docdb-user", Some("alice")) })
        .unwrap_err();
    assert_eq!(e.code(), ResultCode::InvalidState);

    let config = CString::new(config).unwrap();
    let mut provider: *mut docauth_credentials_provider = ptr::null_mut();
    assert_eq!(
        c_call!(docauth_credentials_provider_new(
            config.as_ptr(),
            &mut provider,
            ptr::null_mut()
        )),
        ResultCode::Ok
    );
    let mut out: *mut docauth_credentials = ptr::null_mut();
    assert_eq!(
        c_call!(docauth_credentials_provider_resolve(
            provider,
            c"teleport-docdb-user".as_ptr(),
            c"bob".as_ptr(),
            &mut out,
            ptr::null_mut()
        )),
        ResultCode::Ok
    );
    assert!(!out.is_null());
    c_call!(docauth_credentials_free(out));
    assert_eq!(
        moto.assumed(&setup.db_user_role_arn).len(),
        2,
        "alice and bob"
    );

    let mut err: *mut docauth_error = ptr::null_mut();
    let mut out: *mut docauth_credentials = ptr::null_mut();
    assert_eq!(
        c_call!(docauth_credentials_provider_resolve(
            provider,
            c"untrusted-role".as_ptr(),
            ptr::null(),
            &mut out,
            &mut err
        )),
        ResultCode::AwsAssumeRoleDenied
    );
    assert!(out.is_null());
    // SAFETY: `err` is a live error from the library.
    let message = unsafe { CStr::from_ptr(docauth_error_message(err)) }
        .to_string_lossy()
        .into_owned();
    assert!(message.contains(&setup.untrusted_role_arn), "{message}");
    assert_no_secret(&message, &[&setup.secret_access_key]);
    c_call!(docauth_error_free(err));

    assert_eq!(
        c_call!(docauth_credentials_provider_invalidate(
            provider,
            c"teleport-docdb-user".as_ptr(),
            ptr::null_mut()
        )),
        ResultCode::Ok
    );
    c_call!(docauth_credentials_provider_free(provider));
}
