//! The default chain's sources against moto: environment, profile files, web identity
//! token, and nothing at all. These change the process environment, so they run as ONE
//! test in their own process (this file), one after the other, on one thread.

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{assert_no_secret, caller_arn, Moto, Setup};
use docauth::aws::CredentialsProvider;
use docauth::ResultCode;

const AWS_VARS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_EC2_METADATA_DISABLED",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_STS",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
];

/// A clean environment: no AWS variables, profile files that do not exist.
fn clean_env(dir: &PathBuf) {
    for v in AWS_VARS {
        std::env::remove_var(v);
    }
    std::env::set_var("HOME", dir);
    std::env::set_var("AWS_CONFIG_FILE", dir.join("no-such-config"));
    std::env::set_var(
        "AWS_SHARED_CREDENTIALS_FILE",
        dir.join("no-such-credentials"),
    );
}

/// The web-identity environment a pod gets (token file `name` in `dir`, the role, session
/// name `web-session`, which the db user's role trusts: moto compares the session ARN exactly).
fn set_web_identity_env(dir: &std::path::Path, name: &str, jwt: &str, role_arn: &str) {
    let token = dir.join(name);
    std::fs::write(&token, jwt).unwrap();
    std::env::set_var("AWS_WEB_IDENTITY_TOKEN_FILE", &token);
    std::env::set_var("AWS_ROLE_ARN", role_arn);
    std::env::set_var("AWS_ROLE_SESSION_NAME", "web-session");
}

fn closed_port_url() -> String {
    format!("http://127.0.0.1:{}", common::free_port())
}

async fn provider(json: serde_json::Value) -> CredentialsProvider {
    CredentialsProvider::new(serde_json::from_value(json).unwrap())
        .await
        .unwrap()
}

fn assumed_arn(setup: &Setup, session: &str) -> String {
    format!(
        "arn:aws:sts::{}:assumed-role/teleport-docdb-user/{session}",
        setup.account
    )
}

#[tokio::test]
async fn default_chain_sources_against_moto() {
    let dir = std::env::temp_dir().join(format!("docauth-creds-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    environment_credentials_are_used_and_read_fresh(&dir).await;
    profile_credentials_are_used(&dir).await;
    web_identity_credentials_are_used(&dir).await;
    web_identity_uses_the_configured_sts_endpoint(&dir).await;
    nothing_configured_lists_the_sources_tried(&dir).await;
    a_silent_imds_gets_the_hop_limit_hint(&dir).await;

    let _ = std::fs::remove_dir_all(&dir);
}

async fn environment_credentials_are_used_and_read_fresh(dir: &PathBuf) {
    let (moto, setup) = Moto::start(0);
    clean_env(dir);
    std::env::set_var("AWS_ACCESS_KEY_ID", &setup.access_key_id);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", &setup.secret_access_key);
    let p = provider(serde_json::json!({
        "region": "us-east-1", "sts_endpoint": moto.url,
        "imds_endpoint": closed_port_url(),
        "database": {"account_id": setup.account},
    }))
    .await;
    let creds = p
        .resolve("teleport-docdb-user", Some("env-user"))
        .await
        .unwrap();
    assert_eq!(
        caller_arn(&moto.url, &creds).await,
        assumed_arn(&setup, "env-user")
    );
    assert_eq!(moto.assumed(&setup.db_user_role_arn).len(), 1);

    // The environment is read on every call: other keys there are another source.
    std::env::set_var("AWS_ACCESS_KEY_ID", "AKIAROTATEDAWAY00000");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "rotatedSECRETrotatedSECRET");
    let e = p
        .resolve("teleport-docdb-user", Some("env-user"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ResultCode::AwsInvalidToken, "{e:?}");
    assert_no_secret(&format!("{e:?}"), &["rotatedSECRETrotatedSECRET"]);
    // Back to the service's keys: their entry is still cached, no new STS call.
    std::env::set_var("AWS_ACCESS_KEY_ID", &setup.access_key_id);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", &setup.secret_access_key);
    let again = p
        .resolve("teleport-docdb-user", Some("env-user"))
        .await
        .unwrap();
    assert_eq!(again.access_key_id(), creds.access_key_id());
    assert_eq!(moto.assumed(&setup.db_user_role_arn).len(), 1);
}

async fn profile_credentials_are_used(dir: &PathBuf) {
    let (moto, setup) = Moto::start(0);
    clean_env(dir);
    let credentials = dir.join("credentials");
    let config = dir.join("config");
    std::fs::write(
        &credentials,
        format!(
            "[docdb-service]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            setup.access_key_id, setup.secret_access_key
        ),
    )
    .unwrap();
    std::fs::write(&config, "[profile docdb-service]\nregion = us-east-1\n").unwrap();
    std::env::set_var("AWS_CONFIG_FILE", &config);
    std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", &credentials);

    // The profile named in the configuration.
    let p = provider(serde_json::json!({
        "source": {"type": "profile", "name": "docdb-service"},
        "region": "us-east-1", "sts_endpoint": moto.url,
    }))
    .await;
    let creds = p
        .resolve("teleport-docdb-user", Some("profile-user"))
        .await
        .unwrap();
    assert_eq!(
        caller_arn(&moto.url, &creds).await,
        assumed_arn(&setup, "profile-user")
    );

    // The default chain with AWS_PROFILE.
    std::env::set_var("AWS_PROFILE", "docdb-service");
    let p = provider(serde_json::json!({
        "region": "us-east-1", "sts_endpoint": moto.url, "imds_endpoint": closed_port_url(),
    }))
    .await;
    let creds = p
        .resolve("teleport-docdb-user", Some("chain-profile"))
        .await
        .unwrap();
    assert_eq!(
        caller_arn(&moto.url, &creds).await,
        assumed_arn(&setup, "chain-profile")
    );
    assert_eq!(moto.assumed(&setup.db_user_role_arn).len(), 2);

    // A profile that is not there.
    let p = provider(serde_json::json!({
        "source": {"type": "profile", "name": "missing"},
        "region": "us-east-1", "sts_endpoint": moto.url,
        "database": {"account_id": setup.account},
    }))
    .await;
    let e = p.resolve("teleport-docdb-user", None).await.unwrap_err();
    assert!(e.message().contains("profile `missing`"), "{e:?}");
    assert_no_secret(&format!("{e:?}"), &[&setup.secret_access_key]);
}

async fn web_identity_credentials_are_used(dir: &PathBuf) {
    // AWS serves AssumeRoleWithWebIdentity unsigned: moto lets exactly that one request
    // through unsigned, everything after it is signature-checked.
    let (moto, setup) = Moto::start(1);
    clean_env(dir);
    set_web_identity_env(
        dir,
        "web-identity-token",
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJkb2NkYiJ9.c2lnbmF0dXJl",
        &setup.web_identity_role_arn,
    );
    // No sts_endpoint in the configuration: AWS_ENDPOINT_URL_STS is honoured.
    std::env::set_var("AWS_ENDPOINT_URL_STS", &moto.url);
    let p = provider(serde_json::json!({
        "region": "us-east-1", "imds_endpoint": closed_port_url(),
        "database": {"account_id": setup.account},
    }))
    .await;
    let creds = p
        .resolve("teleport-docdb-user", Some("web-user"))
        .await
        .unwrap();
    assert_eq!(
        caller_arn(&moto.url, &creds).await,
        assumed_arn(&setup, "web-user")
    );
    assert_eq!(moto.assumed(&setup.web_identity_role_arn).len(), 1);
    assert_eq!(moto.assumed(&setup.db_user_role_arn).len(), 1);
}

async fn web_identity_uses_the_configured_sts_endpoint(dir: &PathBuf) {
    // As above, but moto is named only by `sts_endpoint` in the configuration: without it
    // AssumeRoleWithWebIdentity would go to sts.us-east-1.amazonaws.com (unreachable here).
    let (moto, setup) = Moto::start(1);
    clean_env(dir);
    set_web_identity_env(
        dir,
        "web-identity-token-2",
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJkb2NkYi0yIn0.c2lnbmF0dXJl\n",
        &setup.web_identity_role_arn,
    );
    assert!(std::env::var_os("AWS_ENDPOINT_URL_STS").is_none());
    assert!(std::env::var_os("AWS_ENDPOINT_URL").is_none());
    let p = provider(serde_json::json!({
        "region": "us-east-1", "sts_endpoint": moto.url,
        "imds_endpoint": closed_port_url(), "connect_timeout_ms": 1000,
        "database": {"account_id": setup.account},
    }))
    .await;
    let creds = p
        .resolve("teleport-docdb-user", Some("web-config-user"))
        .await
        .unwrap();
    assert_eq!(
        caller_arn(&moto.url, &creds).await,
        assumed_arn(&setup, "web-config-user")
    );
    assert_eq!(moto.assumed(&setup.web_identity_role_arn).len(), 1);
    assert_eq!(moto.assumed(&setup.db_user_role_arn).len(), 1);

    // The configured endpoint refuses: the failure names the call, the role and the endpoint.
    let closed = closed_port_url();
    let p = provider(serde_json::json!({
        "region": "us-east-1", "sts_endpoint": closed,
        "imds_endpoint": closed_port_url(), "connect_timeout_ms": 500,
        "database": {"account_id": setup.account},
    }))
    .await;
    let e = p.resolve("teleport-docdb-user", None).await.unwrap_err();
    assert_eq!(e.code(), ResultCode::AwsCredentialsSourceFailed, "{e:?}");
    eprintln!("web identity, STS closed:\n{}", e.message());
    let m = e.message();
    assert!(m.contains("AssumeRoleWithWebIdentity"), "{m}");
    assert!(m.contains(&setup.web_identity_role_arn), "{m}");
    assert!(m.contains(&closed), "{m}");
}

async fn nothing_configured_lists_the_sources_tried(dir: &PathBuf) {
    clean_env(dir);
    let imds = closed_port_url();
    let p = provider(serde_json::json!({
        "region": "us-east-1", "sts_endpoint": closed_port_url(),
        "imds_endpoint": imds, "imds_timeout_ms": 500,
        "database": {"account_id": "123456789012"},
    }))
    .await;
    let started = Instant::now();
    let e = p.resolve("teleport-docdb-user", None).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(e.code(), ResultCode::AwsNoCredentials, "{e:?}");
    let m = e.message();
    eprintln!("no credentials ({took:?}):\n{m}");
    assert!(m.contains("NoCredentialProviders"), "{m}");
    let order = [
        "1. Environment",
        "2. Profile",
        "3. WebIdentityToken",
        "4. EcsContainer",
        "5. Ec2InstanceMetadata",
    ];
    let mut at = 0;
    for step in order {
        let found = m[at..]
            .find(step)
            .unwrap_or_else(|| panic!("{step} missing in order: {m}"));
        at += found;
    }
    assert!(m.contains(&imds), "{m}");
    // Bounded by the configured IMDS timeout (2 attempts of 500 ms each at most, per
    // request), not the SDK's defaults.
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

async fn a_silent_imds_gets_the_hop_limit_hint(dir: &PathBuf) {
    clean_env(dir);
    // Accepts TCP connections (kernel backlog) and never answers, like an IMDSv2 PUT
    // whose response is dropped by a hop limit of 1.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = provider(serde_json::json!({
        "region": "us-east-1", "sts_endpoint": closed_port_url(),
        "imds_endpoint": format!("http://{}", silent.local_addr().unwrap()),
        "imds_timeout_ms": 300,
        "database": {"account_id": "123456789012"},
    }))
    .await;
    let started = Instant::now();
    let e = p.resolve("teleport-docdb-user", None).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(e.code(), ResultCode::AwsNoCredentials, "{e:?}");
    eprintln!("silent IMDS ({took:?}):\n{}", e.message());
    assert!(e.message().contains("HttpPutResponseHopLimit"), "{e:?}");
    assert!(e.message().contains("Ec2InstanceMetadata"), "{e:?}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    drop(silent);
}
