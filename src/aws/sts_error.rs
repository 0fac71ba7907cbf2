//! STS failures turned into errors that tell the operator what to fix.

use std::time::Duration;

use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use zeroize::Zeroizing;

use crate::{Error, ResultCode};

/// What the failed call was, for the message.
pub(crate) struct Context {
    pub operation: &'static str,
    pub endpoint: String,
    pub connect_timeout: Duration,
    pub operation_timeout: Duration,
    /// Who called: an ARN, or a description of the credentials source.
    pub caller: String,
    /// The role being assumed (AssumeRole only).
    pub role: Option<String>,
    /// Whether an external id was sent.
    pub external_id: bool,
    /// Strings that must never appear in the message (the caller's secret key and token).
    pub secrets: Vec<Zeroizing<String>>,
}

/// Error codes STS uses for credentials it does not accept.
const TOKEN_CODES: &[&str] = &[
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "InvalidAccessKeyId",
    "AuthFailure",
    "InvalidToken",
];

/// The text of the first `<tag>…</tag>` in an XML error body.
fn xml_field(body: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{tag}>"))? + start;
    Some(body[start..end].trim().to_owned())
}

/// Code and message of an STS error. The SDK reads `<ErrorResponse><Error>`; some
/// STS-compatible endpoints (moto's authentication errors among them) wrap the error in
/// `<Errors>`, which the SDK leaves unparsed, so fall back to reading the body.
fn code_and_message<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> (String, String) {
    if let Some(code) = err.code() {
        return (
            code.to_owned(),
            err.message().unwrap_or("no message").to_owned(),
        );
    }
    let body = err
        .raw_response()
        .and_then(|r| r.body().bytes())
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    match xml_field(&body, "Code") {
        Some(code) => (
            code,
            xml_field(&body, "Message").unwrap_or_else(|| "no message".to_owned()),
        ),
        None => (
            "Unknown".to_owned(),
            err.raw_response()
                .map(|r| format!("HTTP status {}", r.status().as_u16()))
                .unwrap_or_else(|| "no message".to_owned()),
        ),
    }
}

/// Error codes STS (and the SDKs' retry classifiers) use to say "slow down".
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "SlowDown",
    "PriorRequestNotComplete",
];

/// Whether STS refused the call because of its rate limit (a throttling error code, or HTTP
/// 429 without one).
pub(crate) fn is_throttling<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    if !matches!(err, SdkError::ServiceError(_)) {
        return false;
    }
    let (code, _) = code_and_message(err);
    THROTTLING_CODES.contains(&code.as_str())
        || err
            .raw_response()
            .is_some_and(|r| r.status().as_u16() == 429)
}

pub(crate) fn map<E>(err: &SdkError<E, HttpResponse>, cx: &Context) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let target = cx
        .role
        .as_deref()
        .map(|r| format!(" of {r}"))
        .unwrap_or_default();
    let error = match err {
        SdkError::TimeoutError(_) => Error::new(
            ResultCode::AwsStsUnreachable,
            format!(
                "STS {}{target} at {} did not answer within {} ms (operation_timeout_ms); check that the endpoint is reachable from this host (VPC endpoint, proxy, security groups) or raise the timeout",
                cx.operation,
                cx.endpoint,
                cx.operation_timeout.as_millis()
            ),
        ),
        SdkError::DispatchFailure(failure) => {
            let detail = chain_text(err);
            let what = if failure.is_timeout() {
                format!(
                    "timed out (connect_timeout_ms {} / operation_timeout_ms {})",
                    cx.connect_timeout.as_millis(),
                    cx.operation_timeout.as_millis()
                )
            } else {
                format!(
                    "could not be reached (connect_timeout_ms {})",
                    cx.connect_timeout.as_millis()
                )
            };
            Error::new(
                ResultCode::AwsStsUnreachable,
                format!(
                    "STS {}{target} at {} {what}: {detail}. Check the endpoint (sts_endpoint / AWS_ENDPOINT_URL_STS / the region) and the network path to it",
                    cx.operation, cx.endpoint
                ),
            )
        }
        SdkError::ServiceError(_) => {
            let (code, said) = code_and_message(err);
            let (code, said) = (code.as_str(), said.as_str());
            if code == "AccessDenied" || code == "AccessDeniedException" {
                match &cx.role {
                    Some(role) => {
                        let mut m = format!(
                            "AccessDenied: {} may not assume {role} (STS said: {said}). Fix: the trust policy of {role} must name {} (or its account) as Principal with Action sts:AssumeRole",
                            cx.caller, cx.caller
                        );
                        if cx.external_id {
                            m.push_str(
                                ", with a Condition StringEquals sts:ExternalId equal to the configured `external_id`",
                            );
                        }
                        m.push_str(&format!(
                            "; and the caller's permissions (and permissions boundary) must allow sts:AssumeRole on {role}. Test with: aws sts assume-role --role-arn {role} --role-session-name test-trust-relationship"
                        ));
                        Error::new(ResultCode::AwsAssumeRoleDenied, m)
                    }
                    None => Error::new(
                        ResultCode::AwsStsError,
                        format!("STS {} refused {}: {code}: {said}", cx.operation, cx.caller),
                    ),
                }
            } else if TOKEN_CODES.contains(&code) {
                let what = if code.starts_with("ExpiredToken") {
                    "the session token has expired"
                } else if code == "SignatureDoesNotMatch" || code == "IncompleteSignature" {
                    "the signature did not verify: the secret access key does not belong to the access key id"
                } else {
                    "the access key id or session token is not valid (unknown, revoked, or from another partition)"
                };
                Error::new(
                    ResultCode::AwsInvalidToken,
                    format!(
                        "STS {}{target} at {} rejected the credentials of {}: {what} ({code}: {said}). Refresh or replace those credentials",
                        cx.operation, cx.endpoint, cx.caller
                    ),
                )
            } else {
                Error::new(
                    ResultCode::AwsStsError,
                    format!(
                        "STS {}{target} at {} failed for {}: {code}: {said}",
                        cx.operation, cx.endpoint, cx.caller
                    ),
                )
            }
        }
        other => Error::new(
            ResultCode::AwsStsError,
            format!(
                "STS {}{target} at {} failed: {}",
                cx.operation,
                cx.endpoint,
                chain_text(other)
            ),
        ),
    };
    redact(error, &cx.secrets)
}

/// An error and its sources, by their `Display`, joined with ": " (no `Debug` dumps).
pub(crate) fn chain_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// Removes any secret that might have been echoed back into a message.
pub(crate) fn redact(error: Error, secrets: &[Zeroizing<String>]) -> Error {
    let mut message = error.message().to_owned();
    let mut changed = false;
    for s in secrets {
        if s.len() >= 4 && message.contains(s.as_str()) {
            message = message.replace(s.as_str(), "** redacted **");
            changed = true;
        }
    }
    if changed {
        Error::new(error.code(), message)
    } else {
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sts::operation::assume_role::AssumeRoleError;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    fn context(external_id: bool, secrets: &[&str]) -> Context {
        Context {
            operation: "AssumeRole",
            endpoint: "https://sts.us-east-1.amazonaws.com".into(),
            connect_timeout: Duration::from_millis(3000),
            operation_timeout: Duration::from_millis(10000),
            caller: "arn:aws:sts::111111111111:assumed-role/teleport-db-service-role/i-1".into(),
            role: Some("arn:aws:iam::111111111111:role/db-user-role".into()),
            external_id,
            secrets: secrets
                .iter()
                .map(|s| Zeroizing::new(s.to_string()))
                .collect(),
        }
    }

    fn service_error(
        code: Option<&str>,
        message: &str,
        status: u16,
        body: &str,
    ) -> SdkError<AssumeRoleError, HttpResponse> {
        let mut meta = ErrorMetadata::builder().message(message);
        if let Some(code) = code {
            meta = meta.code(code);
        }
        let response = HttpResponse::new(
            status.try_into().unwrap(),
            SdkBody::from(body.as_bytes().to_vec()),
        );
        SdkError::service_error(AssumeRoleError::generic(meta.build()), response)
    }

    // Real STS answers an expired session token with ExpiredToken; moto never expires its
    // tokens, so this mapping is checked on the error value the SDK builds.
    #[test]
    fn throttling_is_told_by_its_code_or_429() {
        let throttled = service_error(Some("Throttling"), "Rate exceeded", 400, "");
        assert!(is_throttling(&throttled));
        let body = "<ErrorResponse><Errors><Error><Code>RequestLimitExceeded</Code></Error></Errors></ErrorResponse>";
        assert!(is_throttling(&service_error(None, "", 400, body)));
        assert!(is_throttling(&service_error(None, "", 429, "not xml")));
        let denied = service_error(Some("AccessDenied"), "no", 403, "");
        assert!(!is_throttling(&denied));
    }

    #[test]
    fn an_expired_token_is_called_expired() {
        let e = map(
            &service_error(
                Some("ExpiredToken"),
                "The security token included in the request is expired",
                403,
                "",
            ),
            &context(false, &[]),
        );
        assert_eq!(e.code(), ResultCode::AwsInvalidToken);
        assert!(e.message().contains("session token has expired"), "{e:?}");
        assert!(e.message().contains("ExpiredToken"), "{e:?}");
    }

    #[test]
    fn access_denied_names_both_arns_and_the_external_id_condition() {
        let said = "User: arn:aws:sts::111111111111:assumed-role/teleport-db-service-role/i-1 is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::111111111111:role/db-user-role";
        let e = map(
            &service_error(Some("AccessDenied"), said, 403, ""),
            &context(true, &[]),
        );
        assert_eq!(e.code(), ResultCode::AwsAssumeRoleDenied);
        let m = e.message();
        assert!(m.contains("trust policy of arn:aws:iam::111111111111:role/db-user-role must name arn:aws:sts::111111111111:assumed-role/teleport-db-service-role/i-1"), "{m}");
        assert!(m.contains("sts:ExternalId"), "{m}");
        assert!(
            m.contains(
                "aws sts assume-role --role-arn arn:aws:iam::111111111111:role/db-user-role"
            ),
            "{m}"
        );
    }

    #[test]
    fn errors_wrapped_in_errors_are_read_from_the_body_and_secrets_are_removed() {
        let body = "<ErrorResponse><Errors><Error><Code>SignatureDoesNotMatch</Code><Message>bad signature for TOKENxTOKENxTOKEN</Message></Error></Errors></ErrorResponse>";
        let e = map(
            &service_error(None, "", 403, body),
            &context(false, &["SECRETxSECRET", "TOKENxTOKENxTOKEN"]),
        );
        assert_eq!(e.code(), ResultCode::AwsInvalidToken);
        assert!(e.message().contains("SignatureDoesNotMatch"), "{e:?}");
        assert!(!e.message().contains("TOKENxTOKENxTOKEN"), "{e:?}");
        assert!(e.message().contains("** redacted **"), "{e:?}");

        let e = map(
            &service_error(None, "", 500, "not xml"),
            &context(false, &[]),
        );
        assert_eq!(e.code(), ResultCode::AwsStsError);
        assert!(e.message().contains("HTTP status 500"), "{e:?}");
    }
}
