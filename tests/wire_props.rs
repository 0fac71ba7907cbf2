//! Property tests of the wire parser: arbitrary bytes, truncations, mutations and absurd
//! lengths are errors (or "need more bytes"), never panics; valid messages round-trip.

use bson::{doc, Bson, Document, RawDocumentBuf};
use bytes::{Bytes, BytesMut};
use docauth::wire::{
    analyse, compress_message, encode_op_msg, encode_op_query, error_reply, frame_status,
    strip_handshake, try_frame, Compressor, Frame, FrameStatus, Message, DEFAULT_MAX_MESSAGE_SIZE,
};
use docauth::ResultCode;
use proptest::prelude::*;

const LIMIT: usize = DEFAULT_MAX_MESSAGE_SIZE;

fn raw(d: &Document) -> RawDocumentBuf {
    RawDocumentBuf::from_document(d).unwrap()
}

/// Everything the session would do with a buffer; must never panic.
fn exercise(bytes: &[u8]) {
    let mut buf = BytesMut::from(bytes);
    let _ = frame_status(bytes, LIMIT);
    while let Ok(Some(frame)) = try_frame(&mut buf, LIMIT) {
        let info = frame.request_info();
        let _ = error_reply(&info, 1, 13, "Unauthorized", "denied");
        if let Ok(message) = Message::parse(frame, LIMIT) {
            let _ = analyse(&message);
            let _ = strip_handshake(&message);
            let _ = message.max_message_size_bytes();
            if let Some(m) = message.op_msg() {
                for s in m.sequences() {
                    for d in s.documents() {
                        let _ = d;
                    }
                }
            }
            if let Some(r) = message.op_reply() {
                for d in r.documents() {
                    let _ = d;
                }
            }
        }
    }
}

fn samples() -> Vec<Vec<u8>> {
    let bodies = [
        doc! {"find": "c", "filter": {"a": {"$gt": 1}}, "$db": "test"},
        doc! {"insert": "c", "ordered": true, "$db": "test"},
        doc! {"aggregate": "c", "pipeline": [
            {"$lookup": {"from": {"db": "other", "coll": "d"}, "as": "j", "pipeline": [{"$match": {}}]}},
            {"$facet": {"x": [{"$unionWith": {"coll": "u", "db": "third"}}]}},
            {"$merge": {"into": {"db": "fourth", "coll": "m"}}}
        ], "cursor": {}, "$db": "test"},
        doc! {"renameCollection": "test.a", "to": "other.b", "$db": "admin"},
        doc! {"applyOps": [{"op": "c", "ns": "a.$cmd", "o": {"applyOps": [{"op": "i", "ns": "b.c", "o": {}}]}}], "$db": "admin"},
        doc! {"hello": 1, "speculativeAuthenticate": {"saslStart": 1}, "compression": ["zstd"], "$db": "admin"},
    ];
    let mut out = Vec::new();
    for (i, b) in bodies.iter().enumerate() {
        let d = raw(b);
        let seq = raw(&doc! {"_id": i as i32, "v": "x".repeat(40)});
        // A document sequence only where the command takes one (insert's `documents`): the
        // analysis refuses a sequence for any other field (issue 10).
        let sequences: &[(&str, &[&bson::RawDocument])] = if b.contains_key("insert") {
            &[("documents", &[&seq, &seq])]
        } else {
            &[]
        };
        let plain = encode_op_msg(i as i32, 0, 0, &d, sequences).unwrap();
        for c in [Compressor::Snappy, Compressor::Zlib, Compressor::Zstd] {
            out.push(compress_message(&plain, c).unwrap());
        }
        out.push(plain);
        let ns = format!("{}.$cmd", b.get_str("$db").unwrap());
        out.push(encode_op_query(i as i32, 0, &ns, 0, -1, &d, None).unwrap());
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        exercise(&bytes);
    }

    #[test]
    fn arbitrary_bytes_behind_a_valid_header_never_panic(
        op in prop_oneof![Just(2013i32), Just(2004), Just(1), Just(2012), any::<i32>()],
        body in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut bytes = Vec::with_capacity(16 + body.len());
        bytes.extend_from_slice(&((16 + body.len()) as i32).to_le_bytes());
        bytes.extend_from_slice(&7i32.to_le_bytes());
        bytes.extend_from_slice(&0i32.to_le_bytes());
        bytes.extend_from_slice(&op.to_le_bytes());
        bytes.extend_from_slice(&body);
        exercise(&bytes);
    }

    #[test]
    fn truncated_valid_messages_need_more_or_fail(which in 0usize..25, cut in any::<prop::sample::Index>()) {
        let all = samples();
        let bytes = &all[which % all.len()];
        let cut = cut.index(bytes.len());
        let status = frame_status(&bytes[..cut], LIMIT).unwrap();
        prop_assert!(matches!(status, FrameStatus::NeedMore(n) if n > 0));
        // A truncated message passed off as complete is an error, never a panic.
        let mut lying = bytes[..cut].to_vec();
        if lying.len() >= 4 {
            let len = lying.len() as i32;
            lying[..4].copy_from_slice(&len.to_le_bytes());
            exercise(&lying);
            if let Ok(frame) = Frame::from_bytes(Bytes::from(lying), LIMIT) {
                // Only a cut at an OP_MSG section boundary (just before a kind-1 section)
                // leaves a well-formed message; every other cut is refused.
                if let Ok(m) = Message::parse(frame, LIMIT) {
                    prop_assert!(m.op_msg().is_some_and(|m| m.sequence_count() == 0));
                    prop_assert_eq!(bytes[cut], 1u8);
                }
            }
        }
    }

    #[test]
    fn mutated_valid_messages_never_panic(
        which in 0usize..25,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let all = samples();
        let mut bytes = all[which % all.len()].clone();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        exercise(&bytes);
    }

    #[test]
    fn absurd_length_claims_are_refused_at_once(claim in (DEFAULT_MAX_MESSAGE_SIZE as i64 + 1)..=(i32::MAX as i64)) {
        let e = frame_status(&(claim as i32).to_le_bytes(), LIMIT).unwrap_err();
        prop_assert_eq!(e.code(), ResultCode::WireTooLarge);
        let mut buf = BytesMut::from(&(claim as i32).to_le_bytes()[..]);
        prop_assert!(try_frame(&mut buf, LIMIT).is_err());
    }

    #[test]
    fn op_msg_round_trips(
        coll in "[a-z]{1,12}",
        db in "[a-z]{1,12}",
        values in proptest::collection::vec(("[a-z]{1,6}", any::<i64>(), ".{0,20}"), 0..10),
        docs in 0usize..5,
        flags in prop_oneof![Just(0u32), Just(1u32 << 1), Just(1u32 << 16)],
    ) {
        let mut body = doc! {"insert": coll.clone()};
        let mut extra = Document::new();
        for (k, n, s) in &values {
            extra.insert(k.clone(), Bson::Array(vec![Bson::Int64(*n), Bson::String(s.clone())]));
        }
        body.insert("extra", extra);
        body.insert("$db", db.clone());
        let body = raw(&body);
        let seq: Vec<RawDocumentBuf> = (0..docs).map(|i| raw(&doc! {"_id": i as i64})).collect();
        let seq_refs: Vec<&bson::RawDocument> = seq.iter().map(|d| &**d).collect();
        let sequences: Vec<(&str, &[&bson::RawDocument])> =
            if docs > 0 { vec![("documents", &seq_refs[..])] } else { vec![] };
        let bytes = encode_op_msg(3, 0, flags, &body, &sequences).unwrap();
        let m = Message::parse(Frame::from_bytes(Bytes::from(bytes.clone()), LIMIT).unwrap(), LIMIT).unwrap();
        let msg = m.op_msg().unwrap();
        prop_assert_eq!(msg.body(), &*body);
        prop_assert_eq!(msg.flag_bits(), flags);
        let parsed: Vec<RawDocumentBuf> = msg.sequences().flat_map(|s| s.documents()).map(|d| d.unwrap().to_owned()).collect();
        prop_assert_eq!(&parsed, &seq);
        let again = encode_op_msg(3, 0, msg.flag_bits(), msg.body(), &sequences).unwrap();
        prop_assert_eq!(again, bytes);
        let a = analyse(&m).unwrap();
        prop_assert_eq!(a.databases(), vec![db.as_str()]);
        prop_assert_eq!(a.collection.as_deref(), Some(coll.as_str()));
    }

    #[test]
    fn decompression_never_exceeds_the_claim(
        real in 64usize..200_000,
        claim_delta in -32i64..32,
        c in prop_oneof![Just(Compressor::Snappy), Just(Compressor::Zlib), Just(Compressor::Zstd)],
    ) {
        // An OP_MSG whose body is one long string: compresses extremely well.
        let pad = "a".repeat(real);
        let plain = encode_op_msg(1, 0, 0, &raw(&doc! {"insert": "c", "$db": "t", "p": pad}), &[]).unwrap();
        let mut bytes = compress_message(&plain, c).unwrap();
        let size = i32::from_le_bytes(bytes[20..24].try_into().unwrap()) as i64;
        let claim = (size + claim_delta).max(0);
        bytes[20..24].copy_from_slice(&(claim as i32).to_le_bytes());
        let result = Message::parse(Frame::from_bytes(Bytes::from(bytes), LIMIT).unwrap(), LIMIT);
        if claim_delta == 0 {
            let message = result.unwrap();
            prop_assert_eq!(message.bytes().as_ref(), &plain[..]);
        } else {
            prop_assert!(result.is_err());
        }
    }
}

#[test]
fn a_one_hundred_megabyte_claim_is_refused_from_the_header_alone() {
    let mut header = Vec::new();
    header.extend_from_slice(&100_000_000i32.to_le_bytes());
    header.extend_from_slice(&[0u8; 12]);
    let mut buf = BytesMut::from(&header[..]);
    let e = try_frame(&mut buf, LIMIT).unwrap_err();
    assert_eq!(e.code(), ResultCode::WireTooLarge);
    assert!(e.message().contains("100000000"));
}

#[test]
fn every_sample_parses_and_is_analysed() {
    for bytes in samples() {
        let m =
            Message::parse(Frame::from_bytes(Bytes::from(bytes), LIMIT).unwrap(), LIMIT).unwrap();
        let a = analyse(&m).unwrap();
        assert!(!a.command.is_empty());
    }
}
