//! Property tests of the MONGODB-AWS signer:
//!
//! - the fast path (cached signing key, pre-hashed canonical request) produces exactly the
//!   bytes of the reference path (aws-sigv4's full `http_request::sign` + `bson::Document`)
//!   on generated keys, tokens, nonces, hosts across partitions and times across date
//!   boundaries;
//! - malformed server-first messages (random bytes, truncations, corruptions, wrong types,
//!   missing/extra/duplicated fields, huge junk) give an error, never a panic.
//!
//! Byte-identity with pymongo-auth-aws and acceptance by moto are tested from Python
//! (tests/python/).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bson::raw::RawDocumentBuf;
use bson::spec::BinarySubtype;
use bson::{doc, Binary, Bson};
use docauth::aws::{ClientConversation, Credentials};
use docauth::ResultCode;
use proptest::prelude::*;

const MAX_TIME: u64 = 253_402_300_799;

fn host_strategy() -> impl Strategy<Value = String> {
    let regions = prop::sample::select(vec![
        "us-east-1",
        "us-east-2",
        "us-west-2",
        "eu-west-1",
        "eu-central-1",
        "ap-southeast-2",
        "sa-east-1",
        "me-south-1",
        "cn-north-1",
        "cn-northwest-1",
        "us-gov-west-1",
        "us-iso-east-1",
        "us-isob-east-1",
    ]);
    let suffixes = prop::sample::select(vec![
        "amazonaws.com",
        "amazonaws.com.cn",
        "c2s.ic.gov",
        "sc2s.sgov.gov",
        "amazonaws.com.ch",
    ]);
    prop_oneof![
        Just("sts.amazonaws.com".to_string()),
        Just("localhost".to_string()),
        (regions, suffixes).prop_map(|(r, s)| format!("sts.{r}.{s}")),
        // Arbitrary LDH host names of 1 to 6 labels.
        "[a-z0-9-]{1,20}(\\.[A-Za-z0-9-]{1,20}){0,5}",
        // Any visible ASCII without empty labels, up to the 255-byte limit.
        "[!-\\-/-~]{1,60}(\\.[!-\\-/-~]{1,60}){0,3}",
        // Loopback endpoints with ports, as tests use.
        (1u16..).prop_map(|p| format!("127.0.0.1:{p}")),
    ]
}

fn time_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..=MAX_TIME,
        // Around midnight UTC of any day: the date part of X-Amz-Date and the cached
        // signing key change there.
        (0..=(MAX_TIME / 86_400), 0u64..3)
            .prop_map(|(day, d)| (day * 86_400 + d).saturating_sub(1).min(MAX_TIME)),
        Just(0),
        Just(MAX_TIME),
        1_500_000_000u64..1_900_000_000,
    ]
}

fn token_strategy() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        // Base64-like, as STS issues (often with '/', '+', '='), up to real-token lengths.
        "[A-Za-z0-9+/=]{1,1200}".prop_map(Some),
        // Any visible ASCII.
        "[!-~]{1,200}".prop_map(Some),
    ]
}

fn server_first(nonce: &[u8], tail: &[u8], host: &str) -> Vec<u8> {
    let mut s = nonce.to_vec();
    s.extend_from_slice(tail);
    bson::to_vec(&doc! {
        "s": Binary { subtype: BinarySubtype::Generic, bytes: s },
        "h": host,
    })
    .unwrap()
}

fn started(credentials: Credentials, nonce: [u8; 32], time: SystemTime) -> ClientConversation {
    let mut c = ClientConversation::with_nonce_and_time(credentials, nonce, time);
    c.client_first().unwrap();
    c
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn fast_path_equals_aws_sigv4_reference(
        access_key_id in prop_oneof!["[A-Z0-9]{16,24}", "[!-~]{1,40}"],
        secret in "\\PC{1,64}",
        token in token_strategy(),
        nonce in any::<[u8; 32]>(),
        tail in any::<[u8; 32]>(),
        host in host_strategy(),
        secs in time_strategy(),
        millis in 0u64..1000,
    ) {
        prop_assume!(host.len() <= 255);
        let credentials = Credentials::new(&access_key_id, &secret, token.as_deref()).unwrap();
        let time = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis);
        let sf = server_first(&nonce, &tail, &host);

        let mut fast = ClientConversation::with_nonce_and_time(credentials.clone(), nonce, time);
        let mut reference = ClientConversation::with_nonce_and_time(credentials.clone(), nonce, time);
        let first = fast.client_first().unwrap();
        prop_assert_eq!(&first, &reference.client_first().unwrap());
        prop_assert_eq!(
            &first,
            &bson::to_vec(&doc! {"r": Binary {subtype: BinarySubtype::Generic, bytes: nonce.to_vec()}, "p": 110_i32}).unwrap()
        );
        let fast_final = fast.client_final(&sf).unwrap();
        let reference_final = reference.client_final_reference(&sf).unwrap();
        prop_assert_eq!(&fast_final, &reference_final);

        // Twice more with the same credentials: now from the signing-key cache.
        let again = started(credentials.clone(), nonce, time).client_final(&sf).unwrap();
        prop_assert_eq!(&again, &reference_final);

        let d = bson::Document::from_reader(&mut &fast_final[..]).unwrap();
        let keys: Vec<&str> = d.keys().map(String::as_str).collect();
        let expected_keys: &[&str] = if token.is_some() { &["a", "d", "t"] } else { &["a", "d"] };
        prop_assert_eq!(keys, expected_keys);
        if let Some(token) = &token {
            prop_assert_eq!(d.get_str("t").unwrap(), token.as_str());
        }
    }

    #[test]
    fn cached_keys_stay_right_across_dates_and_regions(
        secret in "[!-~]{1,40}",
        steps in prop::collection::vec((0u64..40, prop::sample::select(vec![
            "sts.amazonaws.com", "sts.eu-west-1.amazonaws.com", "sts.cn-north-1.amazonaws.com.cn",
            "sts.us-gov-west-1.amazonaws.com", "localhost", "a.b",
        ])), 1..30),
    ) {
        // One credentials object signs for a shuffled sequence of days and regions, so
        // the cache fills, evicts and is hit; every payload must match the reference.
        let credentials = Credentials::new("AKIDEXAMPLE", &secret, Some("tok/en+=")).unwrap();
        let nonce = [3u8; 32];
        for (day, host) in steps {
            let time = UNIX_EPOCH + Duration::from_secs(1_700_000_000 + day * 86_400 - 1 + day % 3);
            let sf = server_first(&nonce, &[5u8; 32], host);
            let fast = started(credentials.clone(), nonce, time).client_final(&sf).unwrap();
            let reference = started(credentials.clone(), nonce, time).client_final_reference(&sf).unwrap();
            prop_assert_eq!(fast, reference);
        }
    }

    #[test]
    fn random_bytes_are_refused_without_panic(bytes in prop::collection::vec(any::<u8>(), 0..700)) {
        let credentials = Credentials::new("AKID", "secret", None).unwrap();
        let mut c = started(credentials, [1u8; 32], UNIX_EPOCH);
        prop_assert!(c.client_final(&bytes).is_err());
    }

    #[test]
    fn corrupted_server_first_never_panics(
        host in host_strategy(),
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
    ) {
        let nonce = [1u8; 32];
        let credentials = Credentials::new("AKID", "secret", Some("token")).unwrap();
        let good = server_first(&nonce, &[2u8; 32], &host);

        // Every strict prefix is an error.
        let truncated = &good[..cut.index(good.len())];
        let r = started(credentials.clone(), nonce, UNIX_EPOCH).client_final(truncated);
        prop_assert_eq!(r.unwrap_err().code(), ResultCode::SaslMalformedServerFirst);

        // Corruptions: an error or (if only the host/nonce bytes changed) any outcome, but
        // never a panic; a corrupted nonce prefix is always refused.
        let mut bad = good.clone();
        for (at, value) in &flips {
            let i = at.index(bad.len());
            bad[i] = *value;
        }
        let r = started(credentials.clone(), nonce, UNIX_EPOCH).client_final(&bad);
        if bad[12..44] != nonce[..] && bad[..12] == good[..12] {
            prop_assert!(r.is_err());
        }
    }

    #[test]
    fn wrong_types_missing_extra_and_duplicated_fields_are_refused(
        s_value in bson_value(),
        h_value in bson_value(),
        extra_key in "[a-zA-Z_$]{1,10}",
        layout in 0u8..6,
    ) {
        let nonce = [4u8; 32];
        let mut s = nonce.to_vec();
        s.extend([0u8; 32]);
        let good_s = Bson::Binary(Binary { subtype: BinarySubtype::Generic, bytes: s });
        let good_h = Bson::String("sts.amazonaws.com".into());
        let mut raw = RawDocumentBuf::new();
        let mut append = |k: &str, v: &Bson| {
            raw.append(k, bson::RawBson::try_from(v.clone()).unwrap());
        };
        match layout {
            0 => { append("s", &s_value); append("h", &good_h); }
            1 => { append("s", &good_s); append("h", &h_value); }
            2 => { append("h", &good_h); }
            3 => { append("s", &good_s); }
            4 => {
                prop_assume!(extra_key != "s" && extra_key != "h");
                append("s", &good_s); append(&extra_key, &h_value); append("h", &good_h);
            }
            _ => { append("s", &good_s); append("h", &good_h); append("s", &good_s); }
        }
        let ok_type_s = matches!(&s_value, Bson::Binary(b) if b.subtype == BinarySubtype::Generic);
        let ok_type_h = matches!(&h_value, Bson::String(_));
        let valid = (layout == 0 && ok_type_s) || (layout == 1 && ok_type_h);
        prop_assume!(!valid);
        let credentials = Credentials::new("AKID", "secret", None).unwrap();
        let e = started(credentials, nonce, UNIX_EPOCH).client_final(raw.as_bytes()).unwrap_err();
        prop_assert_eq!(e.code(), ResultCode::SaslMalformedServerFirst, "{:?}", e);
    }
}

fn bson_value() -> impl Strategy<Value = Bson> {
    prop_oneof![
        any::<i32>().prop_map(Bson::Int32),
        any::<i64>().prop_map(Bson::Int64),
        any::<f64>().prop_map(Bson::Double),
        any::<bool>().prop_map(Bson::Boolean),
        Just(Bson::Null),
        "\\PC{0,20}".prop_map(Bson::String),
        (prop::collection::vec(any::<u8>(), 0..80), 0u8..10).prop_map(|(bytes, st)| {
            let subtype = match st {
                0 => BinarySubtype::Generic,
                1 => BinarySubtype::Function,
                3 => BinarySubtype::UuidOld,
                4 => BinarySubtype::Uuid,
                5 => BinarySubtype::Md5,
                _ => BinarySubtype::UserDefined(0x80 + st),
            };
            Bson::Binary(Binary { subtype, bytes })
        }),
        Just(Bson::Document(doc! {"s": 1})),
        Just(Bson::Array(vec![Bson::Int32(1)])),
    ]
}

#[test]
fn sixteen_megabytes_of_junk_is_an_error() {
    let credentials = Credentials::new("AKID", "secret", None).unwrap();
    for fill in [0u8, 0xff, b'A'] {
        let mut junk = vec![fill; 16 * 1024 * 1024];
        // Also a length prefix that agrees with the buffer.
        let e = started(credentials.clone(), [0u8; 32], UNIX_EPOCH)
            .client_final(&junk)
            .unwrap_err();
        assert_eq!(e.code(), ResultCode::SaslMalformedServerFirst);
        let len = junk.len() as i32;
        junk[..4].copy_from_slice(&len.to_le_bytes());
        let e = started(credentials.clone(), [0u8; 32], UNIX_EPOCH)
            .client_final(&junk)
            .unwrap_err();
        assert_eq!(e.code(), ResultCode::SaslMalformedServerFirst);
    }
}

#[test]
fn threads_sharing_credentials_and_their_key_cache_sign_correctly() {
    // Several threads fill and read one credentials' signing-key cache at once, across more
    // (date, region) pairs than it keeps; every payload must equal the reference.
    let credentials = Credentials::new("AKIDEXAMPLE", "secret/key+", Some("to/ken=")).unwrap();
    let hosts = [
        "sts.amazonaws.com",
        "sts.eu-west-1.amazonaws.com",
        "sts.cn-north-1.amazonaws.com.cn",
        "sts.ap-south-1.amazonaws.com",
    ];
    std::thread::scope(|scope| {
        for worker in 0..4u64 {
            let credentials = credentials.clone();
            scope.spawn(move || {
                for i in 0..300u64 {
                    let nonce = [(worker * 31 + i) as u8; 32];
                    let host = hosts[((worker + i) % 4) as usize];
                    let time = UNIX_EPOCH + Duration::from_secs(1_700_000_000 + (i % 5) * 86_400);
                    let sf = server_first(&nonce, &[7u8; 32], host);
                    let fast = started(credentials.clone(), nonce, time)
                        .client_final(&sf)
                        .unwrap();
                    let reference = started(credentials.clone(), nonce, time)
                        .client_final_reference(&sf)
                        .unwrap();
                    assert_eq!(fast, reference, "worker {worker} step {i}");
                }
            });
        }
    });
}
