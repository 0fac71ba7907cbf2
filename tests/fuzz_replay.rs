//! Replays every committed fuzz corpus (`fuzz/corpus/<target>/`) through the same harness
//! functions the cargo-fuzz targets run (`fuzz/harness.rs`), on stable Rust, as part of
//! `make test`: every input that once crashed stays fixed, and the seeds keep passing the
//! harness's checks.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::Path;

use docauth::ResultCode;

fn corpus_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus"))
}

fn replay(target: &str) {
    let (_, run) = harness::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no harness function for {target}"));
    let dir = corpus_dir().join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no input", dir.display());
    for file in &files {
        let data = std::fs::read(file).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{target}: {} fails", file.display());
    }
}

#[test]
fn every_target_has_a_corpus_and_every_corpus_a_target() {
    for (name, _) in harness::TARGETS {
        assert!(
            corpus_dir().join(name).is_dir(),
            "fuzz/corpus/{name} is missing"
        );
    }
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            harness::TARGETS.iter().any(|(t, _)| *t == name),
            "fuzz/corpus/{name} has no harness function"
        );
    }
}

macro_rules! replay_tests {
    ($($target:ident),* $(,)?) => {$(
        #[test]
        fn $target() {
            replay(stringify!($target));
        }
    )*};
}

replay_tests!(
    wire_frame,
    wire_message,
    wire_decompress,
    wire_analyse,
    wire_handshake,
    wire_differential,
    aws_server_first,
    aws_sts_response,
    policy_config,
    policy_request,
    session_params,
    provider_config,
);

/// The `fuzz_targets/` files and `fuzz/Cargo.toml` name exactly the harness's targets.
#[test]
fn every_target_is_built_by_cargo_fuzz() {
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/Cargo.toml")).unwrap();
    for (name, _) in harness::TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no [[bin]] {name}"
        );
        let target = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/fuzz_targets"))
            .join(format!("{name}.rs"));
        let text = std::fs::read_to_string(&target).unwrap();
        assert!(
            text.contains(&format!("harness::{name}(data)")),
            "{} does not call harness::{name}",
            target.display()
        );
    }
}

/// The STS target reaches the SDK's response parser and this crate's error mapping, not
/// only a transport error: a real AssumeRole answer gives credentials, STS errors their codes.
#[test]
fn the_sts_harness_reaches_the_response_parser_and_the_error_mapping() {
    let assume = "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult><AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/fuzz/alice</Arn><AssumedRoleId>AROA:alice</AssumedRoleId></AssumedRoleUser><Credentials><AccessKeyId>ASIAJEXAMPLEXEG2JICEA</AccessKeyId><SecretAccessKey>9drTJvcXLB89EXAMPLE</SecretAccessKey><SessionToken>AQoXdzELDDYEXAMPLE</SessionToken><Expiration>2099-10-24T23:00:23Z</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>";
    let c = harness::sts_resolve(format!("\x00{assume}").as_bytes())
        .unwrap()
        .unwrap();
    assert_eq!(c.access_key_id(), "ASIAJEXAMPLEXEG2JICEA");
    let error = |code: &str| {
        format!("<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>m</Message></Error></ErrorResponse>")
    };
    for (input, code) in [
        (
            format!("\x03{}", error("AccessDenied")),
            ResultCode::AwsAssumeRoleDenied,
        ),
        (
            format!("\x02{}", error("ExpiredToken")),
            ResultCode::AwsInvalidToken,
        ),
        (
            format!("\x04{}", error("InternalFailure")),
            ResultCode::AwsStsError,
        ),
        ("\x07".to_owned(), ResultCode::AwsStsUnreachable),
    ] {
        let e = harness::sts_resolve(input.as_bytes()).unwrap().unwrap_err();
        assert_eq!(e.code(), code, "{input}: {}", e.message());
    }
}
