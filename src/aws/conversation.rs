//! The client side of the MONGODB-AWS SASL conversation (mongodb/specifications,
//! `source/auth/auth.md`, section MONGODB-AWS):
//!
//! 1. client-first `{r: BinData(0, 32 random bytes), p: 110}`;
//! 2. the server answers server-first `{s: BinData(0, 64 bytes), h: "<sts host>"}`;
//! 3. client-final `{a: Authorization, d: X-Amz-Date, t: session token (only if any)}`,
//!    the SigV4 signature of an STS `GetCallerIdentity` request that the server forwards to
//!    STS to learn who we are.
//!
//! Where the nonce is checked: [`ClientConversation::client_final`] →
//! `check_server_nonce`; the host: [`StsHost::parse`]; the BSON shape:
//! `parse_server_first`.

use std::time::SystemTime;

use bson::raw::{RawBsonRef, RawDocument, RawDocumentBuf};
use bson::spec::BinarySubtype;

use crate::aws::signer;
use crate::aws::{Credentials, StsHost};
use crate::{Error, ResultCode};

/// Length of the client nonce `r`.
/// cbindgen:ignore
pub const CLIENT_NONCE_LEN: usize = 32;
/// Length of the server nonce `s` (client nonce + 32 server bytes).
/// cbindgen:ignore
pub const SERVER_NONCE_LEN: usize = 64;
/// `p`: the gs2-cb-flag, ASCII `n` (no channel binding).
/// cbindgen:ignore
pub const GS2_CB_FLAG: i32 = 110;
/// No valid server-first is longer than this (a 64-byte nonce, a 255-byte host and BSON
/// framing take 340 bytes); larger input is refused before it is parsed.
/// cbindgen:ignore
pub const MAX_SERVER_FIRST_LEN: usize = 1024;

/// A client-final signer: [`signer::client_final_fast`] or [`signer::client_final_reference`].
type SignFn = fn(&Credentials, &StsHost<'_>, &[u8], SystemTime) -> Result<Vec<u8>, Error>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    New,
    SentClientFirst,
    Finished,
}

/// One MONGODB-AWS conversation: [`client_first`](Self::client_first) once, then
/// [`client_final`](Self::client_final) once. Any other order, or a second call, is
/// `INVALID_STATE`. A `client_final` that fails also ends the conversation: start a new one.
///
/// Holds a clone of the credentials (cheap; shares their signing-key cache).
/// `Send + Sync`; the steps take `&mut self`, so one thread drives it at a time.
pub struct ClientConversation {
    credentials: Credentials,
    nonce: [u8; CLIENT_NONCE_LEN],
    /// `None`: sign at the system clock's time when `client_final` runs.
    time: Option<SystemTime>,
    step: Step,
}

impl std::fmt::Debug for ClientConversation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConversation")
            .field("credentials", &self.credentials)
            .field("step", &self.step)
            .field("fixed_time", &self.time)
            .finish_non_exhaustive()
    }
}

fn malformed(detail: impl std::fmt::Display) -> Error {
    Error::new(
        ResultCode::SaslMalformedServerFirst,
        format!("the server-first MONGODB-AWS message is not the BSON document {{s: BinData, h: string}}: {detail}"),
    )
}

/// A field name from the server, quoted and shortened for an error message.
fn shown_key(key: &str) -> String {
    let mut shown: String = key.chars().take(32).collect();
    if shown.len() < key.len() {
        shown.push('…');
    }
    format!("{shown:?}")
}

/// Reads `{s: BinData(0), h: string}` and nothing else: no missing, duplicated or extra field,
/// no other type, no trailing byte. Work and memory are bounded by the input length, which is
/// itself capped at [`MAX_SERVER_FIRST_LEN`].
pub(crate) fn parse_server_first(bytes: &[u8]) -> Result<(&[u8], &str), Error> {
    if bytes.len() > MAX_SERVER_FIRST_LEN {
        return Err(malformed(format!(
            "it is {} bytes long, a valid one is at most {MAX_SERVER_FIRST_LEN}",
            bytes.len()
        )));
    }
    let doc = RawDocument::from_bytes(bytes).map_err(|e| malformed(format!("{e}")))?;
    let mut nonce = None;
    let mut host = None;
    for element in doc.iter() {
        let (key, value) = element.map_err(|e| malformed(format!("{e}")))?;
        match key {
            "s" => {
                if nonce.is_some() {
                    return Err(malformed("field \"s\" appears twice"));
                }
                match value {
                    RawBsonRef::Binary(b) if b.subtype == BinarySubtype::Generic => {
                        nonce = Some(b.bytes)
                    }
                    RawBsonRef::Binary(b) => {
                        return Err(malformed(format!(
                            "field \"s\" is binary subtype {}, expected 0 (generic)",
                            u8::from(b.subtype)
                        )))
                    }
                    other => {
                        return Err(malformed(format!(
                            "field \"s\" is a {:?}, expected binary data",
                            other.element_type()
                        )))
                    }
                }
            }
            "h" => {
                if host.is_some() {
                    return Err(malformed("field \"h\" appears twice"));
                }
                match value {
                    RawBsonRef::String(s) => host = Some(s),
                    other => {
                        return Err(malformed(format!(
                            "field \"h\" is a {:?}, expected a string",
                            other.element_type()
                        )))
                    }
                }
            }
            other => return Err(malformed(format!("unexpected field {}", shown_key(other)))),
        }
    }
    match (nonce, host) {
        (Some(nonce), Some(host)) => Ok((nonce, host)),
        (None, _) => Err(malformed("field \"s\" (the server nonce) is missing")),
        (_, None) => Err(malformed("field \"h\" (the STS host) is missing")),
    }
}

impl ClientConversation {
    /// A conversation with a fresh 32-byte nonce from the operating system's CSPRNG, signing
    /// at the system clock's time.
    pub fn new(credentials: Credentials) -> Result<Self, Error> {
        let mut nonce = [0u8; CLIENT_NONCE_LEN];
        getrandom::getrandom(&mut nonce).map_err(|e| {
            Error::new(
                ResultCode::SigningFailed,
                format!("the operating system's random number generator failed: {e}"),
            )
        })?;
        Ok(ClientConversation {
            credentials,
            nonce,
            time: None,
            step: Step::New,
        })
    }

    /// For tests only: a conversation with a chosen client nonce that signs at `time`
    /// (truncated to the second). Never use a fixed nonce for real authentication.
    pub fn with_nonce_and_time(
        credentials: Credentials,
        nonce: [u8; CLIENT_NONCE_LEN],
        time: SystemTime,
    ) -> Self {
        ClientConversation {
            credentials,
            nonce,
            time: Some(time),
            step: Step::New,
        }
    }

    /// The client nonce `r`.
    pub fn client_nonce(&self) -> &[u8; CLIENT_NONCE_LEN] {
        &self.nonce
    }

    /// The client-first payload `{r: BinData(0, nonce), p: 110}` (BSON).
    pub fn client_first(&mut self) -> Result<Vec<u8>, Error> {
        if self.step != Step::New {
            return Err(Error::new(
                ResultCode::InvalidState,
                "client_first was already called on this MONGODB-AWS conversation",
            ));
        }
        let mut buffer = Vec::with_capacity(52);
        buffer.extend_from_slice(&5i32.to_le_bytes());
        buffer.push(0);
        let mut doc = RawDocumentBuf::from_bytes(buffer).map_err(|e| {
            Error::new(
                ResultCode::SigningFailed,
                format!("could not encode client-first: {e}"),
            )
        })?;
        doc.append_ref(
            "r",
            RawBsonRef::Binary(bson::RawBinaryRef {
                subtype: BinarySubtype::Generic,
                bytes: &self.nonce,
            }),
        );
        doc.append_ref("p", RawBsonRef::Int32(GS2_CB_FLAG));
        self.step = Step::SentClientFirst;
        Ok(doc.into_bytes())
    }

    /// The client-final payload `{a, d, t?}` (BSON) answering the server-first `server_first`.
    ///
    /// Errors, each with its own code: `INVALID_STATE` (not right after `client_first`),
    /// `SASL_MALFORMED_SERVER_FIRST`, `SASL_SERVER_NONCE_LENGTH`, `SASL_SERVER_NONCE_MISMATCH`,
    /// `SASL_HOST_LENGTH`, `SASL_HOST_EDGE_DOT`, `SASL_HOST_EMPTY_LABEL`,
    /// `AWS_INVALID_CREDENTIALS`, `SIGNING_FAILED`. After this call (success or not) the
    /// conversation is finished.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, Error> {
        self.finish(server_first, signer::client_final_fast)
    }

    /// As [`client_final`](Self::client_final), signing through aws-sigv4's full HTTP request
    /// path instead of the cached-key fast path: the reference for tests and the benchmark's
    /// baseline. Same validation, same bytes.
    #[doc(hidden)]
    pub fn client_final_reference(&mut self, server_first: &[u8]) -> Result<Vec<u8>, Error> {
        self.finish(server_first, signer::client_final_reference)
    }

    fn finish(&mut self, server_first: &[u8], sign: SignFn) -> Result<Vec<u8>, Error> {
        match self.step {
            Step::SentClientFirst => {}
            Step::New => {
                return Err(Error::new(
                    ResultCode::InvalidState,
                    "client_final was called before client_first on this MONGODB-AWS conversation",
                ))
            }
            Step::Finished => return Err(Error::new(
                ResultCode::InvalidState,
                "client_final was already called on this MONGODB-AWS conversation; start a new one",
            )),
        }
        self.step = Step::Finished;
        let (server_nonce, host) = parse_server_first(server_first)?;
        self.check_server_nonce(server_nonce)?;
        let host = StsHost::parse(host)?;
        let time = signer::whole_seconds(self.time.unwrap_or_else(SystemTime::now));
        sign(&self.credentials, &host, server_nonce, time)
    }

    fn check_server_nonce(&self, server_nonce: &[u8]) -> Result<(), Error> {
        if server_nonce.len() != SERVER_NONCE_LEN {
            return Err(Error::new(
                ResultCode::SaslServerNonceLength,
                format!(
                    "the server nonce is {} bytes long; MONGODB-AWS requires exactly {SERVER_NONCE_LEN}",
                    server_nonce.len()
                ),
            ));
        }
        if !server_nonce.starts_with(&self.nonce) {
            return Err(Error::new(
                ResultCode::SaslServerNonceMismatch,
                format!("the server nonce does not start with the {CLIENT_NONCE_LEN}-byte client nonce this conversation sent"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{doc, spec::BinarySubtype, Binary};
    use std::time::{Duration, UNIX_EPOCH};

    fn creds(token: Option<&str>) -> Credentials {
        Credentials::new(
            "AKIAICGVLKOKZVY3X3DA",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            token,
        )
        .unwrap()
    }

    fn nonce() -> [u8; 32] {
        let mut n = [0u8; 32];
        n.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8 * 7);
        n
    }

    fn started() -> ClientConversation {
        let mut c = ClientConversation::with_nonce_and_time(
            creds(None),
            nonce(),
            UNIX_EPOCH + Duration::from_secs(1_573_086_367),
        );
        c.client_first().unwrap();
        c
    }

    fn bin(bytes: Vec<u8>) -> Binary {
        Binary {
            subtype: BinarySubtype::Generic,
            bytes,
        }
    }

    fn server_nonce() -> Vec<u8> {
        let mut s = nonce().to_vec();
        s.extend(100u8..132);
        s
    }

    fn encode(d: &bson::Document) -> Vec<u8> {
        bson::to_vec(d).unwrap()
    }

    fn final_code(server_first: &[u8]) -> ResultCode {
        started().client_final(server_first).unwrap_err().code()
    }

    #[test]
    fn client_first_is_the_specified_document() {
        let mut c = started();
        let _ = &mut c;
        let mut c = ClientConversation::with_nonce_and_time(creds(None), nonce(), UNIX_EPOCH);
        let first = c.client_first().unwrap();
        assert_eq!(
            first,
            encode(&doc! {"r": bin(nonce().to_vec()), "p": 110_i32})
        );
        assert_eq!(first.len(), 52);
        assert_eq!(&first[..4], &52i32.to_le_bytes());
    }

    #[test]
    fn the_specification_example_client_first_bytes() {
        // "NAAAAAVyACAAAAAAWj0lSjp8M0BMKGU+QVAzRSpWfk0hJigqO1V+b0FaVz4QcABuAAAAAA==" from auth.md
        use base64::Engine as _;
        let expected = base64::engine::general_purpose::STANDARD
            .decode("NAAAAAVyACAAAAAAWj0lSjp8M0BMKGU+QVAzRSpWfk0hJigqO1V+b0FaVz4QcABuAAAAAA==")
            .unwrap();
        let nonce: [u8; 32] = expected[12..44].try_into().unwrap();
        let mut c = ClientConversation::with_nonce_and_time(creds(None), nonce, UNIX_EPOCH);
        assert_eq!(c.client_first().unwrap(), expected);
    }

    #[test]
    fn the_specification_example_server_first_is_accepted() {
        use base64::Engine as _;
        let server_first = base64::engine::general_purpose::STANDARD
            .decode("ZgAAAAVzAEAAAAAAWj0lSjp8M0BMKGU+QVAzRSpWfk0hJigqO1V+b0FaVz5Rj7x9UOBHJLvPgvgPS9sSzZUWgAPTy8HBbI1cG1WJ9gJoABIAAABzdHMuYW1hem9uYXdzLmNvbQAA")
            .unwrap();
        let (s, h) = parse_server_first(&server_first).unwrap();
        assert_eq!(h, "sts.amazonaws.com");
        let mut c = ClientConversation::with_nonce_and_time(
            creds(Some("token")),
            s[..32].try_into().unwrap(),
            UNIX_EPOCH + Duration::from_secs(1_573_592_482),
        );
        c.client_first().unwrap();
        let last = c.client_final(&server_first).unwrap();
        let d = bson::Document::from_reader(&mut &last[..]).unwrap();
        assert_eq!(d.get_str("d").unwrap(), "20191112T210122Z");
        assert_eq!(d.get_str("t").unwrap(), "token");
        assert!(d.get_str("a").unwrap().starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIAICGVLKOKZVY3X3DA/20191112/us-east-1/sts/aws4_request, SignedHeaders=content-length;content-type;host;x-amz-date;x-amz-security-token;x-mongodb-gs2-cb-flag;x-mongodb-server-nonce, Signature="
        ));
    }

    #[test]
    fn fast_and_reference_agree_through_the_conversation() {
        let sf = encode(&doc! {"s": bin(server_nonce()), "h": "sts.eu-central-1.amazonaws.com"});
        assert_eq!(
            started().client_final(&sf).unwrap(),
            started().client_final_reference(&sf).unwrap()
        );
    }

    #[test]
    fn steps_must_come_in_order_once_each() {
        let sf = encode(&doc! {"s": bin(server_nonce()), "h": "sts.amazonaws.com"});
        let mut c = ClientConversation::with_nonce_and_time(creds(None), nonce(), UNIX_EPOCH);
        assert_eq!(
            c.client_final(&sf).unwrap_err().code(),
            ResultCode::InvalidState
        );
        c.client_first().unwrap();
        assert_eq!(
            c.client_first().unwrap_err().code(),
            ResultCode::InvalidState
        );
        c.client_final(&sf).unwrap();
        let e = c.client_final(&sf).unwrap_err();
        assert_eq!(e.code(), ResultCode::InvalidState);
        assert!(e.message().contains("already called"));
        // A failed client_final ends the conversation too.
        let mut c = started();
        assert_eq!(
            c.client_final(b"junk").unwrap_err().code(),
            ResultCode::SaslMalformedServerFirst
        );
        assert_eq!(
            c.client_final(&sf).unwrap_err().code(),
            ResultCode::InvalidState
        );
    }

    #[test]
    fn every_validation_failure_has_its_own_code() {
        let ok_h = "sts.amazonaws.com";
        assert_eq!(
            final_code(&encode(
                &doc! {"s": bin(server_nonce()[..63].to_vec()), "h": ok_h}
            )),
            ResultCode::SaslServerNonceLength
        );
        let mut long = server_nonce();
        long.push(0);
        assert_eq!(
            final_code(&encode(&doc! {"s": bin(long), "h": ok_h})),
            ResultCode::SaslServerNonceLength
        );
        let mut wrong = server_nonce();
        wrong[31] ^= 1;
        assert_eq!(
            final_code(&encode(&doc! {"s": bin(wrong), "h": ok_h})),
            ResultCode::SaslServerNonceMismatch
        );
        let s = || bin(server_nonce());
        assert_eq!(
            final_code(&encode(&doc! {"s": s(), "h": ""})),
            ResultCode::SaslHostLength
        );
        assert_eq!(
            final_code(&encode(&doc! {"s": s(), "h": "a".repeat(256)})),
            ResultCode::SaslHostLength
        );
        assert_eq!(
            final_code(&encode(&doc! {"s": s(), "h": "sts..amazonaws.com"})),
            ResultCode::SaslHostEmptyLabel
        );
        assert_eq!(
            final_code(&encode(&doc! {"s": s(), "h": ".amazonaws.com"})),
            ResultCode::SaslHostEdgeDot
        );
        assert_eq!(
            final_code(&encode(&doc! {"s": s(), "h": "sts.amazonaws.com."})),
            ResultCode::SaslHostEdgeDot
        );
    }

    #[test]
    fn malformed_shapes_are_refused() {
        let s = || bin(server_nonce());
        let h = "sts.amazonaws.com";
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("junk", b"not bson at all".to_vec()),
            ("missing s", encode(&doc! {"h": h})),
            ("missing h", encode(&doc! {"s": s()})),
            ("empty doc", encode(&doc! {})),
            ("extra", encode(&doc! {"s": s(), "h": h, "x": 1})),
            ("s string", encode(&doc! {"s": "abc", "h": h})),
            ("h int", encode(&doc! {"s": s(), "h": 5})),
            (
                "h binary",
                encode(&doc! {"s": s(), "h": bin(b"sts".to_vec())}),
            ),
            (
                "s uuid subtype",
                encode(
                    &doc! {"s": Binary {subtype: BinarySubtype::Uuid, bytes: server_nonce()}, "h": h},
                ),
            ),
        ];
        for (name, bytes) in cases {
            let e = started().client_final(&bytes).unwrap_err();
            assert_eq!(
                e.code(),
                ResultCode::SaslMalformedServerFirst,
                "{name}: {e:?}"
            );
        }
        // Duplicated keys (bson::Document cannot hold them: build the bytes by hand).
        let mut dup = RawDocumentBuf::new();
        dup.append(
            "s",
            bson::RawBson::Binary(bson::Binary {
                subtype: BinarySubtype::Generic,
                bytes: server_nonce(),
            }),
        );
        dup.append("h", h);
        dup.append("h", h);
        let e = started().client_final(dup.as_bytes()).unwrap_err();
        assert_eq!(e.code(), ResultCode::SaslMalformedServerFirst);
        assert!(e.message().contains("\"h\" appears twice"), "{e:?}");
        // Trailing bytes after the document.
        let mut trailing = encode(&doc! {"s": s(), "h": h});
        trailing.push(0);
        assert_eq!(final_code(&trailing), ResultCode::SaslMalformedServerFirst);
        // 16 MB of junk: refused before parsing.
        let junk = vec![0xA5u8; 16 * 1024 * 1024];
        let e = started().client_final(&junk).unwrap_err();
        assert_eq!(e.code(), ResultCode::SaslMalformedServerFirst);
        assert!(e.message().contains("16777216 bytes"), "{e:?}");
        // A document whose length field claims 16 MB.
        let mut lying = encode(&doc! {"s": s(), "h": h});
        lying[..4].copy_from_slice(&(16 * 1024 * 1024i32).to_le_bytes());
        assert_eq!(final_code(&lying), ResultCode::SaslMalformedServerFirst);
    }

    #[test]
    fn errors_never_show_secrets() {
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        let token = "FwoGZXIvYXdzSECRETTOKEN";
        let mut c = ClientConversation::with_nonce_and_time(
            Credentials::new("AKID", secret, Some(token)).unwrap(),
            nonce(),
            UNIX_EPOCH,
        );
        let shown = format!("{c:?}");
        assert!(!shown.contains(secret) && !shown.contains(token), "{shown}");
        c.client_first().unwrap();
        let e = c.client_final(b"\x05\x00\x00\x00\x00").unwrap_err();
        assert!(!e.message().contains(secret) && !e.message().contains(token));
    }

    #[test]
    fn new_uses_fresh_random_nonces() {
        let a = ClientConversation::new(creds(None)).unwrap();
        let b = ClientConversation::new(creds(None)).unwrap();
        assert_ne!(a.client_nonce(), b.client_nonce());
        assert_ne!(a.client_nonce(), &[0u8; 32]);
    }
}
