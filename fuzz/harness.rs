//! The fuzz harness: one function per cargo-fuzz target, each taking the raw input.
//!
//! Included by every target in `fuzz/fuzz_targets/` and by `tests/fuzz_replay.rs` (with
//! `#[path]`), so the committed corpora replay on stable Rust through exactly the code the
//! fuzzer ran. Each function drives one parser of untrusted or operator input and asserts
//! what must hold for every input (a panic is a finding): beyond "no panic", the properties
//! written next to each function.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, UNIX_EPOCH};

use bson::spec::BinarySubtype;
use bson::{RawArrayBuf, RawBsonRef, RawDocument, RawDocumentBuf};
use bytes::{Bytes, BytesMut};
use docauth::aws::{ClientConversation, Credentials, CredentialsProvider, ProviderSettings};
use docauth::policy::{Config, Identity, PolicyEngine, Request};
use docauth::session::{
    CommandAccess, DatabaseUri, EngineJudge, Judge, SessionIdentity, SessionParams,
};
use docauth::wire::{
    self, analyse, compress_message, encode_op_msg, frame_status, op, strip_handshake, try_frame,
    CommandClass, Compressor, Frame, FrameStatus, Message, EXTERNAL_DATABASE,
    FORBIDDEN_DATABASE_CHARS, HEADER_LEN, MAX_DATABASE_NAME_LEN, MAX_NAMESPACES, MAX_NAMESPACE_LEN,
    STRIPPED_HANDSHAKE_KEYS,
};
use docauth::ResultCode;

/// A target: its name (the directory of its corpus) and its function.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: &[Target] = &[
    ("wire_frame", wire_frame),
    ("wire_message", wire_message),
    ("wire_decompress", wire_decompress),
    ("wire_analyse", wire_analyse),
    ("wire_handshake", wire_handshake),
    ("wire_differential", wire_differential),
    ("aws_server_first", aws_server_first),
    ("aws_sts_response", aws_sts_response),
    ("policy_config", policy_config),
    ("policy_request", policy_request),
    ("session_params", session_params),
    ("provider_config", provider_config),
];

/// A small message limit, so that the "too large" paths are reached quickly.
const LIMIT: usize = 1 << 20;

/// The one database the judged session may reach.
const ALLOWED_DB: &str = "test";

const ALL_COMPRESSORS: [Compressor; 4] = [
    Compressor::Noop,
    Compressor::Snappy,
    Compressor::Zlib,
    Compressor::Zstd,
];

// ---------------------------------------------------------------------------------------
// Building messages around the input.

fn header(out: &mut Vec<u8>, len: usize, op_code: i32) {
    out.extend_from_slice(&(len as i32).to_le_bytes());
    out.extend_from_slice(&7i32.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&op_code.to_le_bytes());
}

/// OP_MSG, flagBits 0, a kind-0 section whose bytes are `sections` (a body document that may
/// run on into kind-1 sections).
fn op_msg_around(sections: &[u8]) -> Vec<u8> {
    let len = HEADER_LEN + 5 + sections.len();
    let mut m = Vec::with_capacity(len);
    header(&mut m, len, op::OP_MSG);
    m.extend_from_slice(&0u32.to_le_bytes());
    m.push(0);
    m.extend_from_slice(sections);
    m
}

/// OP_QUERY on `<db>.$cmd` with `query` (and whatever follows it) as the query.
fn op_query_around(db: &str, query: &[u8]) -> Vec<u8> {
    let ns = format!("{db}.$cmd\0");
    let len = HEADER_LEN + 4 + ns.len() + 8 + query.len();
    let mut m = Vec::with_capacity(len);
    header(&mut m, len, op::OP_QUERY);
    m.extend_from_slice(&0i32.to_le_bytes());
    m.extend_from_slice(ns.as_bytes());
    m.extend_from_slice(&0i32.to_le_bytes());
    m.extend_from_slice(&(-1i32).to_le_bytes());
    m.extend_from_slice(query);
    m
}

fn parse(bytes: Vec<u8>) -> Option<Message> {
    let frame = Frame::from_bytes(Bytes::from(bytes), LIMIT).ok()?;
    Message::parse_request(frame, LIMIT).ok()
}

/// Reads every part of a parsed message through its views.
fn touch(m: &Message) {
    let _ = m.request_info();
    let _ = m.max_message_size_bytes();
    let _ = m.command_document().map(|d| d.iter().count());
    if let Some(msg) = m.op_msg() {
        let _ = (
            msg.more_to_come(),
            msg.exhaust_allowed(),
            msg.checksum_present(),
        );
        let mut n = 0;
        for s in msg.sequences() {
            n += 1;
            let _ = msg.sequence(s.identifier);
            for d in s.documents() {
                let _ = d.map(|d| d.iter().count());
            }
        }
        assert_eq!(n, msg.sequence_count(), "sequence count");
    }
    if let Some(r) = m.op_reply() {
        for d in r.documents() {
            let _ = d.map(|d| d.iter().count());
        }
    }
    if let Some(q) = m.op_query() {
        let _ = q.command().iter().count();
    }
}

// ---------------------------------------------------------------------------------------
// The judged session: role `only-test` may reach database `test` and nothing else.

const ONLY_TEST_POLICY: &str = "roles:\n  - {kind: role, version: v7, metadata: {name: only-test}, spec: {allow: {db_labels: {'*': '*'}, db_users: ['*'], db_names: [test]}}}\ndatabases:\n  - {name: docdb, labels: {env: dev}}\nidentities:\n  - {user: bob, roles: [only-test], traits: {db_names: [test, reports]}}\n";

fn only_test_engine() -> &'static Arc<PolicyEngine> {
    static ENGINE: OnceLock<Arc<PolicyEngine>> = OnceLock::new();
    ENGINE.get_or_init(|| {
        Arc::new(
            PolicyEngine::new(Config::parse_text("only-test.yaml", ONLY_TEST_POLICY).unwrap())
                .unwrap(),
        )
    })
}

fn only_test_judge() -> &'static EngineJudge {
    static JUDGE: OnceLock<EngineJudge> = OnceLock::new();
    JUDGE.get_or_init(|| {
        let alice = Identity::new("alice", vec!["only-test".to_owned()], BTreeMap::new());
        EngineJudge::new(
            Arc::clone(only_test_engine()),
            SessionIdentity::Spec(Arc::new(alice)),
            "docdb",
            "docdb-user",
            ALLOWED_DB,
        )
        .unwrap()
    })
}

/// Whether the session would forward the message (the relay's rule: not refused by the
/// analysis, not client authentication, and allowed by the judge).
fn forwarded(access: &CommandAccess) -> bool {
    access.refused.is_none()
        && access.class != CommandClass::Auth
        && only_test_judge().judge(access).allowed
}

fn valid_database(name: &str) -> bool {
    name == EXTERNAL_DATABASE
        || (!name.is_empty()
            && name.len() <= MAX_DATABASE_NAME_LEN
            && !name
                .chars()
                .any(|c| c == '\0' || FORBIDDEN_DATABASE_CHARS.contains(&c)))
}

/// What must hold of every analysis: names checked before anything is judged, no duplicate
/// namespace, the namespace cap, and a session allowed only `test` forwards no data command
/// that reaches another database.
fn check_access(access: &CommandAccess) {
    assert!(valid_database(&access.database), "{access:?}");
    assert!(access.namespaces.len() <= MAX_NAMESPACES, "{access:?}");
    for (i, ns) in access.namespaces.iter().enumerate() {
        assert!(valid_database(&ns.database), "{access:?}");
        if let Some(c) = &ns.collection {
            assert!(
                !c.is_empty() && !c.starts_with('.') && !c.contains(['\0', '$']),
                "{access:?}"
            );
            assert!(
                ns.database.len() + 1 + c.len() <= MAX_NAMESPACE_LEN,
                "{access:?}"
            );
        }
        assert!(
            !access.namespaces[..i].contains(ns),
            "duplicate: {access:?}"
        );
    }
    if let Some(c) = &access.collection {
        assert!(c.len() <= MAX_NAMESPACE_LEN, "{access:?}");
    }
    if forwarded(access) && access.class == CommandClass::Data {
        assert!(
            access.databases().iter().all(|d| *d == ALLOWED_DB),
            "a session allowed only `test` forwards {access:?}"
        );
        assert!(access.unanalysable.is_none(), "{access:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Wire targets.

/// A byte stream through the framing reader, whole and in chunks of the size the first byte
/// chooses (as a socket delivers it): the same frames, then the same error (or the same
/// leftover bytes), either way; a frame is exactly its claimed length; `NeedMore` never asks past
/// the limit. Each frame then goes through the parser and an error reply is built for it.
pub fn wire_frame(data: &[u8]) {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk) + 1;
    let whole = frames_of(stream, stream.len().max(1));
    let chunked = frames_of(stream, chunk);
    assert_eq!(whole, chunked, "framing depends on how the stream arrives");
    let mut buf = BytesMut::from(stream);
    while let Ok(Some(frame)) = try_frame(&mut buf, LIMIT) {
        let info = frame.request_info();
        let _ = wire::error_reply(&info, 1, 13, "Unauthorized", "denied");
        if let Ok(m) = Message::parse(frame, LIMIT) {
            touch(&m);
        }
    }
}

type Framed = (Vec<Bytes>, Option<ResultCode>, usize);

fn frames_of(stream: &[u8], chunk: usize) -> Framed {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match frame_status(&buf, LIMIT) {
                Ok(FrameStatus::NeedMore(n)) => assert!(buf.len() + n <= LIMIT.max(HEADER_LEN)),
                Ok(FrameStatus::Complete(n)) => assert!(n <= buf.len()),
                Err(_) => {}
            }
            match try_frame(&mut buf, LIMIT) {
                Ok(Some(frame)) => {
                    assert_eq!(frame.header().length as usize, frame.bytes().len());
                    frames.push(frame.into_bytes());
                }
                Ok(None) => break,
                // What is left after an error depends on when it was seen: not compared.
                Err(e) => return (frames, Some(e.code()), 0),
            }
        }
    }
    (frames, None, buf.len())
}

/// A whole message (any opcode) through the parser: every view can be read; a plain OP_MSG
/// or OP_REPLY the full parse accepts is accepted by the framing-only check of replies too.
pub fn wire_message(data: &[u8]) {
    let Ok(frame) = Frame::from_bytes(Bytes::copy_from_slice(data), LIMIT) else {
        return;
    };
    let _ = Message::request_info_of(&frame, LIMIT);
    let reply = Message::parse_reply_framing(frame.clone());
    if let Ok(m) = &reply {
        touch(m);
    }
    if let Ok(m) = Message::parse(frame.clone(), LIMIT) {
        touch(&m);
        if m.compressor().is_none() && (m.op_code() == op::OP_MSG || m.op_code() == op::OP_REPLY) {
            assert!(
                reply.is_ok(),
                "the full parse accepts what the reply framing check refuses: {reply:?}"
            );
        }
    }
    if let Ok(m) = Message::parse_request(frame, LIMIT) {
        assert_ne!(m.op_code(), op::OP_REPLY);
    }
}

/// OP_COMPRESSED two ways. (1) The input after two bytes is a compressed payload, with the
/// compressor id from the first byte and the declared size from the next four bytes: a
/// message that parses has exactly the declared size. (2) The input after two bytes is an
/// OP_MSG's sections: compressed with the compressor bits 1-2 of the second byte choose, it
/// parses exactly as the plain message does (same bytes, or the same error).
pub fn wire_decompress(data: &[u8]) {
    let Some((&id, rest)) = data.split_first() else {
        return;
    };
    let Some((&mode, rest)) = rest.split_first() else {
        return;
    };
    if rest.len() >= 4 {
        let declared = i32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let payload = &rest[4..];
        let original = if mode & 1 == 0 {
            op::OP_MSG
        } else {
            op::OP_QUERY
        };
        let len = HEADER_LEN + 9 + payload.len();
        let mut m = Vec::with_capacity(len);
        header(&mut m, len, op::OP_COMPRESSED);
        m.extend_from_slice(&original.to_le_bytes());
        m.extend_from_slice(&declared.to_le_bytes());
        m.push(id);
        m.extend_from_slice(payload);
        if let Ok(frame) = Frame::from_bytes(Bytes::from(m), LIMIT) {
            let _ = Message::request_info_of(&frame, LIMIT);
            if let Ok(message) = Message::parse(frame, LIMIT) {
                assert_eq!(
                    message.bytes().len() as i64,
                    HEADER_LEN as i64 + i64::from(declared),
                    "decompressed size differs from the declared size"
                );
                assert_eq!(message.compressor().map(|c| c.id()), Some(id));
                touch(&message);
            }
        }
    }
    let plain = op_msg_around(rest);
    let Ok(frame) = Frame::from_bytes(Bytes::from(plain.clone()), LIMIT) else {
        return;
    };
    let direct = Message::parse(frame, LIMIT).map(|m| m.bytes().clone());
    // One compressor per input (bits 1-2 of the mode byte), not all four: compressing dominates
    // the cost of an input, and the fuzzer reaches every compressor over many inputs.
    let c = ALL_COMPRESSORS[usize::from(mode >> 1) & 3];
    let Ok(compressed) = compress_message(&plain, c) else {
        return;
    };
    let Ok(frame) = Frame::from_bytes(Bytes::from(compressed), LIMIT) else {
        return;
    };
    let via = Message::parse(frame, LIMIT).map(|m| m.bytes().clone());
    match (&direct, &via) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "{c:?} round trip changed the message"),
        (Err(a), Err(b)) => assert_eq!(a.code(), b.code(), "{c:?}: {a:?} / {b:?}"),
        _ => panic!("{c:?}: plain {direct:?}, compressed {via:?}"),
    }
}

/// The input as an OP_MSG's sections and as an OP_QUERY `test.$cmd` query: parse, analyse
/// and judge ([`check_access`]); the analysis of a parsed message never panics.
pub fn wire_analyse(data: &[u8]) {
    for bytes in [op_msg_around(data), op_query_around(ALLOWED_DB, data)] {
        if let Some(m) = parse(bytes) {
            if let Ok(access) = analyse(&m) {
                check_access(&access);
            }
        }
    }
}

/// Handshake rewriting, on the input as OP_MSG sections and as an OP_QUERY `admin.$cmd`
/// query: the rewritten message parses, carries none of the stripped keys, is its own
/// rewrite, and names the same command and databases as the original.
pub fn wire_handshake(data: &[u8]) {
    for bytes in [op_msg_around(data), op_query_around("admin", data)] {
        let Some(m) = parse(bytes) else {
            continue;
        };
        let Ok(stripped) = strip_handshake(&m) else {
            continue;
        };
        let frame = Frame::from_bytes(stripped.bytes().clone(), LIMIT)
            .expect("the rewritten handshake frames");
        let again = Message::parse(frame, LIMIT).expect("the rewritten handshake parses");
        assert_eq!(again.bytes(), stripped.bytes());
        let name = command_name(&m);
        if matches!(name.as_deref(), Some("hello" | "isMaster" | "ismaster")) {
            let doc = again.command_document().expect("a command");
            for key in STRIPPED_HANDSHAKE_KEYS {
                assert!(
                    doc.get(key).ok().flatten().is_none(),
                    "{key} survived the rewrite"
                );
            }
        }
        let twice = strip_handshake(&again).expect("the rewrite rewrites");
        assert_eq!(
            twice.bytes(),
            again.bytes(),
            "the rewrite is not idempotent"
        );
        if let (Ok(a), Ok(b)) = (analyse(&m), analyse(&again)) {
            assert_eq!(a.command, b.command);
            assert_eq!(a.databases(), b.databases());
        }
    }
}

fn command_name(m: &Message) -> Option<String> {
    let doc = m.command_document()?;
    let (k, _) = doc.iter().next()?.ok()?;
    Some(k.to_owned())
}

/// What the differential target compares: the analysis's verdict on reach.
#[derive(Debug, PartialEq, Eq)]
enum Reach {
    Refused(ResultCode),
    Reaches {
        databases: BTreeSet<String>,
        every: bool,
        refused: bool,
        class: CommandClass,
        forwarded: bool,
    },
}

fn reach(bytes: Vec<u8>) -> Option<Reach> {
    let frame = Frame::from_bytes(Bytes::from(bytes), LIMIT).ok()?;
    let m = Message::parse_request(frame, LIMIT).ok()?;
    Some(match analyse(&m) {
        Err(e) => Reach::Refused(e.code()),
        Ok(a) => {
            check_access(&a);
            Reach::Reaches {
                databases: a.databases().into_iter().map(str::to_owned).collect(),
                every: a.unanalysable.is_some(),
                refused: a.refused.is_some(),
                class: a.class,
                forwarded: forwarded(&a),
            }
        }
    })
}

/// The same command in three forms must reach the same databases: as sent (the input as
/// OP_MSG sections), with every document sequence folded into the body as an array, with
/// the arrays the command takes as sequences moved out into sequences, and the as-sent
/// message inside OP_COMPRESSED with each compressor.
pub fn wire_differential(data: &[u8]) {
    let sent = op_msg_around(data);
    let Some(as_sent) = reach(sent.clone()) else {
        return;
    };
    for c in ALL_COMPRESSORS {
        if let Ok(compressed) = compress_message(&sent, c) {
            if let Some(r) = reach(compressed) {
                assert_eq!(as_sent, r, "{c:?} changes what the command reaches");
            }
        }
    }
    let Some(m) = parse(sent) else {
        return;
    };
    let Some(msg) = m.op_msg() else {
        return;
    };
    // Folded: the body with each sequence appended as an array (skipped when an identifier
    // repeats or is also a body key: those are refused as sent, and cannot be folded).
    let mut folded = RawDocumentBuf::new();
    let mut keys = BTreeSet::new();
    for item in msg.body().iter() {
        let Ok((k, v)) = item else {
            return;
        };
        keys.insert(k.to_owned());
        folded.append_ref(k, v);
    }
    let mut all_taken = true;
    let name = msg
        .body()
        .iter()
        .next()
        .and_then(|i| i.ok())
        .map(|(k, _)| k.to_owned())
        .unwrap_or_default();
    let takes: &[&str] = wire::command(&name).map_or(&[], |row| row.sequences);
    for s in msg.sequences() {
        if !keys.insert(s.identifier.to_owned()) || s.identifier.starts_with('$') {
            return;
        }
        all_taken &= takes.contains(&s.identifier);
        let mut array = RawArrayBuf::new();
        for d in s.documents() {
            let Ok(d) = d else {
                return;
            };
            array.push(d.to_raw_document_buf());
        }
        folded.append(s.identifier, array);
    }
    let folded_bytes = encode_op_msg(7, 0, msg.flag_bits(), &folded, &[]).ok();
    let Some(as_folded) = folded_bytes.and_then(reach) else {
        return;
    };
    if all_taken {
        assert_eq!(as_sent, as_folded, "folding the sequences into the body");
    }
    // Moved out: every array of documents the command takes as a sequence.
    let mut body = RawDocumentBuf::new();
    let mut moved: Vec<(String, Vec<RawDocumentBuf>)> = Vec::new();
    for item in folded.iter() {
        let Ok((k, v)) = item else {
            return;
        };
        if let (true, RawBsonRef::Array(a)) = (takes.contains(&k), v) {
            let docs: Option<Vec<RawDocumentBuf>> = a
                .into_iter()
                .map(|e| match e {
                    Ok(RawBsonRef::Document(d)) => Some(d.to_raw_document_buf()),
                    _ => None,
                })
                .collect();
            if let Some(docs) = docs {
                moved.push((k.to_owned(), docs));
                continue;
            }
        }
        body.append_ref(k, v);
    }
    if moved.is_empty() {
        return;
    }
    let refs: Vec<(String, Vec<&RawDocument>)> = moved
        .iter()
        .map(|(k, docs)| (k.clone(), docs.iter().map(|d| &**d).collect()))
        .collect();
    let seqs: Vec<(&str, &[&RawDocument])> = refs
        .iter()
        .map(|(k, docs)| (k.as_str(), docs.as_slice()))
        .collect();
    if let Some(as_moved) = encode_op_msg(7, 0, msg.flag_bits(), &body, &seqs)
        .ok()
        .and_then(reach)
    {
        assert_eq!(as_folded, as_moved, "moving arrays out into sequences");
    }
}

// ---------------------------------------------------------------------------------------
// MONGODB-AWS and STS.

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/fuzzSECRETkeyEXAMPLE";
const TOKEN: &str = "IQoJb3JpZ2luX2VjEfuzzTOKENexample";

fn conversation() -> ClientConversation {
    let credentials = Credentials::new("AKIDFUZZEXAMPLE", SECRET, Some(TOKEN)).unwrap();
    let time = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut c = ClientConversation::with_nonce_and_time(credentials, [7u8; 32], time);
    c.client_first().unwrap();
    c
}

/// A server-first message: the raw input (first byte even), or `{s: client nonce + 32
/// input bytes, h: the rest as the STS host}` (first byte odd), so that the host parser and
/// the signer are reached. The fast signer and the reference signer agree byte for byte, or
/// fail with the same code; no error shows the secret key or the session token unless the
/// server sent it.
pub fn aws_server_first(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let server_first = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        let split = rest.len().min(32);
        let mut nonce = vec![7u8; 32];
        nonce.extend_from_slice(&rest[..split]);
        let mut doc = RawDocumentBuf::new();
        doc.append(
            "s",
            bson::Binary {
                subtype: BinarySubtype::Generic,
                bytes: nonce,
            },
        );
        doc.append("h", String::from_utf8_lossy(&rest[split..]).into_owned());
        doc.into_bytes()
    };
    let fast = conversation().client_final(&server_first);
    let reference = conversation().client_final_reference(&server_first);
    match (&fast, &reference) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "fast and reference signers differ"),
        (Err(a), Err(b)) => assert_eq!(a.code(), b.code(), "{a:?} / {b:?}"),
        _ => panic!("fast {fast:?}, reference {reference:?}"),
    }
    // An error may quote what the server sent (a bad host, say): a secret in the message is
    // a leak when it stands there more often than the server itself sent it (the fuzzer
    // learned the secret's bytes from the comparisons and put them into the host).
    if let Err(e) = fast {
        let sent = String::from_utf8_lossy(&server_first);
        for secret in [SECRET, TOKEN] {
            assert!(
                e.message().matches(secret).count() <= sent.matches(secret).count(),
                "a server-first error shows a secret more often than the server sent it: {}",
                e.message()
            );
        }
    }
}

const FUZZ_ROLE: &str = "arn:aws:iam::123456789012:role/fuzz";

fn sts_answer() -> &'static Mutex<(u16, Vec<u8>)> {
    static ANSWER: OnceLock<Mutex<(u16, Vec<u8>)>> = OnceLock::new();
    ANSWER.get_or_init(|| Mutex::new((200, Vec::new())))
}

fn sts_provider() -> &'static CredentialsProvider {
    static PROVIDER: OnceLock<CredentialsProvider> = OnceLock::new();
    PROVIDER.get_or_init(|| {
        let settings: ProviderSettings = serde_json::from_value(serde_json::json!({
            "source": {"type": "static", "access_key_id": "AKIDFUZZEXAMPLE",
                       "secret_access_key": SECRET, "session_token": TOKEN},
            "region": "us-east-1",
            "sts_endpoint": "http://sts.fuzz.invalid",
            "database": {"account_id": "123456789012"}
        }))
        .unwrap();
        CredentialsProvider::with_http_responder_blocking(
            settings,
            Arc::new(|| {
                sts_answer()
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
            }),
        )
        .unwrap()
    })
}

/// An STS answer (AssumeRole, and GetCallerIdentity when AssumeRole fails): the status from
/// the first byte (its low three bits: 200, 200, 400, 403, 500, 503, 302, or no answer at
/// all), the body the rest, with `{SECRET}` and `{TOKEN}` replaced by the caller's secret key
/// and token when the first byte's high bit is set (an endpoint that echoes them). Never a
/// panic; no error shows the secret key or the token; success means usable credentials.
pub fn aws_sts_response(data: &[u8]) {
    match sts_resolve(data) {
        None => {}
        Some(Ok(c)) => assert!(!c.access_key_id().is_empty()),
        Some(Err(e)) => assert!(
            !e.message().contains(SECRET) && !e.message().contains(TOKEN),
            "an STS error shows a secret: {}",
            e.message()
        ),
    }
}

/// What the provider makes of the STS answer `data` describes (see [`aws_sts_response`]).
pub fn sts_resolve(data: &[u8]) -> Option<docauth::Result<Credentials>> {
    let (&first, rest) = data.split_first()?;
    let status = [200, 200, 400, 403, 500, 503, 302, 0][usize::from(first & 7)];
    let mut body = rest.to_vec();
    if first & 0x80 != 0 {
        body = String::from_utf8_lossy(&body)
            .replace("{SECRET}", SECRET)
            .replace("{TOKEN}", TOKEN)
            .into_bytes();
    }
    // One STS answer at a time: the provider and its canned answer are shared.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    *sts_answer().lock().unwrap_or_else(|p| p.into_inner()) = (status, body);
    let provider = sts_provider();
    provider.invalidate(FUZZ_ROLE);
    Some(provider.resolve_blocking(FUZZ_ROLE, Some("alice")))
}

// ---------------------------------------------------------------------------------------
// Operator and host input.

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// The policy config, YAML or JSON, parsed without reading any file; a config that parses
/// builds an engine (roles and Rego modules compiled) or is refused with an error; an
/// engine's cached decision equals its uncached one.
pub fn policy_config(data: &[u8]) {
    let Some(text) = text(data) else {
        return;
    };
    let Ok(config) = Config::parse_text("fuzz.yaml", text) else {
        return;
    };
    let Ok(engine) = PolicyEngine::new(config) else {
        return;
    };
    let alice = Arc::new(Identity::new(
        "alice",
        vec!["dev".to_owned(), "only-test".to_owned()],
        BTreeMap::new(),
    ));
    for db in ["test", "admin"] {
        let r = Request::new(alice.clone(), "docdb", "u", db).with_command("find");
        let cached = engine.decide(&r);
        assert_eq!(cached.allowed, engine.decide_uncached(&r).allowed);
        let _ = engine.input_json(&r);
    }
}

/// A decision request (JSON) against the judged session's engine: parsed or refused; the
/// cached decision equals the uncached one, and "every database" is never allowed to an
/// identity whose roles name only `test`.
pub fn policy_request(data: &[u8]) {
    let Some(text) = text(data) else {
        return;
    };
    let engine = only_test_engine();
    let Ok(request) = engine.request_from_json(text) else {
        return;
    };
    let first = engine.decide(&request);
    assert_eq!(first.allowed, engine.decide(&request).allowed);
    assert_eq!(first.allowed, engine.decide_uncached(&request).allowed);
    assert_eq!(first.allowed, engine.is_allowed(&request));
    let _ = engine.input_json(&request);
    let roles = request.identity.roles();
    if !roles.is_empty() && roles.iter().all(|r| r == "only-test") {
        assert!(!engine.may_reach_every_database(&request).allowed);
    }
}

/// Session parameters (JSON) and, for the same text, a database URI: parsed or refused.
pub fn session_params(data: &[u8]) {
    let Some(text) = text(data) else {
        return;
    };
    if let Ok(params) = SessionParams::from_json(text) {
        assert!(!params.identity.user().is_empty());
        assert!(params.client_write_timeout_ms > 0);
    }
    if let Ok(uri) = DatabaseUri::parse(text) {
        let _ = uri.address();
    }
}

/// The credentials provider configuration (JSON): parsed and validated, or refused; never
/// a network call (no client is built).
pub fn provider_config(data: &[u8]) {
    let Some(text) = text(data) else {
        return;
    };
    let _ = CredentialsProvider::check_json_blocking(text);
}
