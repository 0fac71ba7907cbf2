use super::settings::invalid_config;
use super::*;

fn settings(json: &str) -> Result<ProviderSettings> {
    serde_json::from_str(json).map_err(|e| invalid_config(e.to_string()))
}

#[test]
fn config_errors_say_what_is_wrong() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cases = [
        (r#"{"sts_endpont": "http://x"}"#, "unknown field"),
        (r#"{"sts_endpoint": "ftp://x"}"#, "http:// or https://"),
        (r#"{"region": "US East"}"#, "not an AWS region"),
        (r#"{"operation_timeout_ms": 0}"#, "greater than 0"),
        (r#"{"session_duration_seconds": 60}"#, "900 to 43200"),
        (r#"{"database": {"external_id": "abc"}}"#, "first hop"),
        (r#"{"database": {"account_id": "42"}}"#, "12-digit"),
        (
            r#"{"database": {"assume_role_arn": "arn:aws:iam::123456789012:user/x"}}"#,
            "not a `role`",
        ),
        (
            r#"{"region": "us-east-1", "database": {"assume_role_arn": "arn:aws-cn:iam::123456789012:role/x"}}"#,
            "partition",
        ),
        (
            r#"{"database": {"account_id": "111111111111", "assume_role_arn": "arn:aws:iam::123456789012:role/x"}}"#,
            "account 123456789012",
        ),
        (
            r#"{"source": {"type": "static", "access_key_id": "AKID", "secret_access_key": ""}}"#,
            "secret access key",
        ),
    ];
    for (json, why) in cases {
        let e = match settings(json) {
            Err(e) => e,
            Ok(s) => rt.block_on(CredentialsProvider::new(s)).unwrap_err(),
        };
        assert!(e.message().contains(why), "{json}: {}", e.message());
    }
}

#[test]
fn debug_never_shows_secrets() {
    let json = r#"{"source": {"type": "static", "access_key_id": "AKIDVISIBLE",
        "secret_access_key": "SECRETxSECRET", "session_token": "TOKENxTOKEN"}}"#;
    let s = settings(json).unwrap();
    let shown = format!("{s:?}");
    assert!(shown.contains("AKIDVISIBLE"), "{shown}");
    assert!(
        !shown.contains("SECRETxSECRET") && !shown.contains("TOKENxTOKEN"),
        "{shown}"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let p = rt.block_on(CredentialsProvider::new(s)).unwrap();
    let shown = format!("{p:?}");
    assert!(shown.contains("AKIDVISIBLE"), "{shown}");
    assert!(
        !shown.contains("SECRETxSECRET") && !shown.contains("TOKENxTOKEN"),
        "{shown}"
    );
}
