//! Unit tests: framing, every message kind, every namespace form the analysis knows.

use bson::{doc, Document, RawDocumentBuf};
use bytes::{BufMut, Bytes, BytesMut};

use super::*;
use crate::ResultCode;

const LIMIT: usize = DEFAULT_MAX_MESSAGE_SIZE;

fn raw(d: &Document) -> RawDocumentBuf {
    RawDocumentBuf::from_document(d).unwrap()
}

fn todoc(d: &bson::RawDocument) -> Document {
    Document::try_from(d).unwrap()
}

fn parse(bytes: Vec<u8>) -> crate::Result<Message> {
    let frame = Frame::from_bytes(Bytes::from(bytes), LIMIT)?;
    Message::parse_request(frame, LIMIT)
}

fn op_msg(body: Document) -> Message {
    parse(encode_op_msg(7, 0, 0, &raw(&body), &[]).unwrap()).unwrap()
}

fn access(body: Document) -> CommandAccess {
    analyse(&op_msg(body)).unwrap()
}

fn access_err(body: Document) -> ResultCode {
    analyse(&op_msg(body)).unwrap_err().code()
}

fn dbs(body: Document) -> Vec<String> {
    let a = access(body);
    assert!(a.unanalysable.is_none(), "unexpectedly unanalysable: {a:?}");
    a.databases().into_iter().map(str::to_owned).collect()
}

fn everything(body: Document) -> String {
    access(body).unanalysable.expect("should be unanalysable")
}

/// Builds an OP_MSG body by hand so keys can be duplicated (bson's Document cannot).
fn body_with_fields(fields: &[(&str, bson::Bson)]) -> RawDocumentBuf {
    let mut out = RawDocumentBuf::new();
    for (k, v) in fields {
        out.append(*k, bson::RawBson::try_from(v.clone()).unwrap());
    }
    out
}

// ---------------------------------------------------------------- framing

#[test]
fn frame_status_is_incremental() {
    let bytes = encode_op_msg(1, 0, 0, &raw(&doc! {"ping": 1, "$db": "admin"}), &[]).unwrap();
    for cut in 0..bytes.len() {
        match frame_status(&bytes[..cut], LIMIT).unwrap() {
            FrameStatus::NeedMore(n) => {
                if cut >= HEADER_LEN {
                    assert_eq!(n, bytes.len() - cut);
                }
                assert!(n > 0);
            }
            FrameStatus::Complete(_) => panic!("complete at {cut}"),
        }
        let mut buf = BytesMut::from(&bytes[..cut]);
        assert!(try_frame(&mut buf, LIMIT).unwrap().is_none());
        assert_eq!(buf.len(), cut, "an incomplete frame must not be consumed");
    }
    let mut buf = BytesMut::from(&bytes[..]);
    buf.put_slice(&bytes);
    let first = try_frame(&mut buf, LIMIT).unwrap().unwrap();
    assert_eq!(first.bytes().len(), bytes.len());
    assert_eq!(first.header().request_id, 1);
    assert_eq!(buf.len(), bytes.len());
    assert!(try_frame(&mut buf, LIMIT).unwrap().is_some());
    assert!(buf.is_empty());
}

#[test]
fn length_is_checked_before_the_body_arrives() {
    // 100 MB claim: refused with only 4 bytes read.
    let claim = 100_000_000i32.to_le_bytes();
    let e = frame_status(&claim, LIMIT).unwrap_err();
    assert_eq!(e.code(), ResultCode::WireTooLarge);
    // Negative and too-small lengths.
    assert_eq!(
        frame_status(&(-1i32).to_le_bytes(), LIMIT)
            .unwrap_err()
            .code(),
        ResultCode::WireBadLength
    );
    assert_eq!(
        frame_status(&15i32.to_le_bytes(), LIMIT)
            .unwrap_err()
            .code(),
        ResultCode::WireBadLength
    );
    // OP_MSG needs at least 26 bytes: 20 is refused once the opcode is known.
    let mut h = BytesMut::new();
    MessageHeader {
        length: 20,
        request_id: 1,
        response_to: 0,
        op_code: op::OP_MSG,
    }
    .write(&mut h);
    assert_eq!(
        frame_status(&h, LIMIT).unwrap_err().code(),
        ResultCode::WireBadLength
    );
    // A lower limit (the server's maxMessageSizeBytes) applies.
    let bytes = encode_op_msg(1, 0, 0, &raw(&doc! {"ping": 1, "$db": "a"}), &[]).unwrap();
    assert_eq!(
        frame_status(&bytes, bytes.len() - 1).unwrap_err().code(),
        ResultCode::WireTooLarge
    );
}

#[test]
fn legacy_and_unknown_opcodes_are_refused_with_reply_info() {
    for code in [
        op::OP_INSERT,
        op::OP_UPDATE,
        op::OP_DELETE,
        op::OP_GET_MORE,
        op::OP_KILL_CURSORS,
        op::OP_RESERVED,
        1000,
        4242,
    ] {
        let mut b = BytesMut::new();
        MessageHeader {
            length: 24,
            request_id: 99,
            response_to: 0,
            op_code: code,
        }
        .write(&mut b);
        b.put_slice(&[0u8; 8]);
        let frame = Frame::from_bytes(b.freeze(), LIMIT).unwrap();
        let info = frame.request_info();
        let e = Message::parse_request(frame, LIMIT).unwrap_err();
        assert_eq!(e.code(), ResultCode::WireRefusedOpcode, "{code}");
        assert!(e.message().contains(&code.to_string()));
        let reply = error_reply(&info, 5, 2, "BadValue", "refused");
        match code {
            op::OP_GET_MORE => {
                let r = parse_reply(reply.unwrap());
                let rep = r.op_reply().unwrap();
                assert_eq!(rep.response_flags & QUERY_FAILURE, QUERY_FAILURE);
                assert_eq!(r.header().response_to, 99);
            }
            op::OP_INSERT | op::OP_UPDATE | op::OP_DELETE | op::OP_KILL_CURSORS => {
                assert!(reply.is_none())
            }
            _ => assert_eq!(parse_reply(reply.unwrap()).header().response_to, 99),
        }
    }
}

fn parse_reply(bytes: Vec<u8>) -> Message {
    Message::parse(Frame::from_bytes(Bytes::from(bytes), LIMIT).unwrap(), LIMIT).unwrap()
}

// ---------------------------------------------------------------- OP_MSG

#[test]
fn op_msg_round_trip_with_sequences() {
    let body = raw(&doc! {"insert": "c", "$db": "test", "ordered": true});
    let d1 = raw(&doc! {"_id": 1, "x": "a"});
    let d2 = raw(&doc! {"_id": 2, "x": "b"});
    let bytes = encode_op_msg(
        42,
        0,
        flags::EXHAUST_ALLOWED,
        &body,
        &[("documents", &[&d1, &d2])],
    )
    .unwrap();
    let m = parse(bytes.clone()).unwrap();
    assert_eq!(m.bytes().as_ref(), &bytes[..]);
    assert_eq!(m.header().request_id, 42);
    let msg = m.op_msg().unwrap();
    assert!(msg.exhaust_allowed() && !msg.more_to_come() && !msg.checksum_present());
    assert_eq!(msg.body(), &*body);
    let seqs: Vec<_> = msg.sequences().collect();
    assert_eq!(seqs.len(), 1);
    assert_eq!(seqs[0].identifier, "documents");
    let docs: Vec<_> = seqs[0].documents().map(|d| d.unwrap().to_owned()).collect();
    assert_eq!(docs, vec![d1.clone(), d2.clone()]);
    // Re-encoding from the parsed parts gives the same bytes.
    let again = encode_op_msg(
        42,
        0,
        msg.flag_bits(),
        msg.body(),
        &[("documents", &[&*d1, &*d2])],
    )
    .unwrap();
    assert_eq!(again, bytes);
    let a = analyse(&m).unwrap();
    assert_eq!(a.command, "insert");
    assert_eq!(a.collection.as_deref(), Some("c"));
}

#[test]
fn op_msg_body_may_follow_a_sequence() {
    let mut b = BytesMut::new();
    MessageHeader {
        length: 0,
        request_id: 3,
        response_to: 0,
        op_code: op::OP_MSG,
    }
    .write(&mut b);
    b.put_u32_le(0);
    let d = raw(&doc! {"_id": 1});
    b.put_u8(1);
    b.put_i32_le((4 + 10 + d.as_bytes().len()) as i32);
    b.put_slice(b"documents\0");
    b.put_slice(d.as_bytes());
    b.put_u8(0);
    b.put_slice(raw(&doc! {"insert": "c", "$db": "test"}).as_bytes());
    let len = b.len() as i32;
    b[..4].copy_from_slice(&len.to_le_bytes());
    let m = parse(b.to_vec()).unwrap();
    assert_eq!(m.op_msg().unwrap().sequence_count(), 1);
    assert_eq!(analyse(&m).unwrap().databases(), vec!["test"]);
}

fn with_checksum(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes[16] |= 1;
    let len = (bytes.len() + 4) as i32;
    bytes[..4].copy_from_slice(&len.to_le_bytes());
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes
}

#[test]
fn op_msg_checksum_is_verified() {
    let plain = encode_op_msg(1, 0, 0, &raw(&doc! {"find": "c", "$db": "test"}), &[]).unwrap();
    let good = with_checksum(plain);
    let m = parse(good.clone()).unwrap();
    assert!(m.op_msg().unwrap().checksum_present());
    assert_eq!(analyse(&m).unwrap().command, "find");
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 1] ^= 0xff;
    assert_eq!(
        parse(bad).unwrap_err().code(),
        ResultCode::WireChecksumMismatch
    );
    let mut bad_body = good;
    bad_body[30] ^= 0x01;
    assert!(parse(bad_body).is_err());
}

#[test]
fn op_msg_flags_and_sections_are_strict() {
    let body = raw(&doc! {"ping": 1, "$db": "admin"});
    for bit in 2..16 {
        let bytes = encode_op_msg(1, 0, 1 << bit, &body, &[]).unwrap();
        assert_eq!(
            parse(bytes).unwrap_err().code(),
            ResultCode::WireUnknownRequiredFlag,
            "bit {bit}"
        );
    }
    // Optional bits 17–31 are ignored.
    let bytes = encode_op_msg(1, 0, 1 << 20, &body, &[]).unwrap();
    assert!(parse(bytes).is_ok());
    // moreToCome is reported and means "no reply".
    let m = parse(encode_op_msg(1, 0, flags::MORE_TO_COME, &body, &[]).unwrap()).unwrap();
    assert!(m.request_info().more_to_come);
    assert!(unauthorized_reply(&m.request_info(), 2, "no").is_none());
    // Two bodies.
    let mut two = encode_op_msg(1, 0, 0, &body, &[]).unwrap();
    two.push(0);
    two.extend_from_slice(body.as_bytes());
    let len = two.len() as i32;
    two[..4].copy_from_slice(&len.to_le_bytes());
    assert_eq!(parse(two).unwrap_err().code(), ResultCode::WireMalformed);
    // Unknown section kind 2.
    let mut k2 = encode_op_msg(1, 0, 0, &body, &[]).unwrap();
    k2[20] = 2;
    assert_eq!(parse(k2).unwrap_err().code(), ResultCode::WireMalformed);
    // No body at all: only a sequence.
    let mut nobody = BytesMut::new();
    MessageHeader {
        length: 0,
        request_id: 1,
        response_to: 0,
        op_code: op::OP_MSG,
    }
    .write(&mut nobody);
    nobody.put_u32_le(0);
    nobody.put_u8(1);
    nobody.put_i32_le(4 + 2 + 5);
    nobody.put_slice(b"d\0");
    nobody.put_slice(raw(&doc! {}).as_bytes());
    let len = nobody.len() as i32;
    nobody[..4].copy_from_slice(&len.to_le_bytes());
    assert_eq!(
        parse(nobody.to_vec()).unwrap_err().code(),
        ResultCode::WireMalformed
    );
}

#[test]
fn invalid_bson_anywhere_is_refused() {
    let good = encode_op_msg(
        1,
        0,
        0,
        &raw(&doc! {"find": "c", "filter": {"a": {"b": "x"}}, "$db": "test"}),
        &[],
    )
    .unwrap();
    // Corrupt the type byte of the nested string.
    let pos = good.windows(2).position(|w| w == [2, b'b']).unwrap();
    let mut bad = good.clone();
    bad[pos] = 0x7f;
    assert_eq!(parse(bad).unwrap_err().code(), ResultCode::WireInvalidBson);
    // Invalid UTF-8 inside the nested string.
    let pos = good.windows(1).rposition(|w| w == b"x").unwrap();
    let mut bad = good.clone();
    bad[pos] = 0xff;
    assert_eq!(parse(bad).unwrap_err().code(), ResultCode::WireInvalidBson);
    // Too deep.
    let mut d = doc! {"x": 1};
    for _ in 0..(MAX_BSON_DEPTH + 1) {
        d = doc! {"x": d};
    }
    let mut top = doc! {"insert": "c", "$db": "test"};
    top.insert("deep", d);
    let e = parse(encode_op_msg(1, 0, 0, &raw(&top), &[]).unwrap()).unwrap_err();
    assert_eq!(e.code(), ResultCode::WireInvalidBson);
}

// ---------------------------------------------------------------- OP_QUERY / OP_REPLY

fn op_query(ns: &str, q: Document) -> Message {
    parse(encode_op_query(11, 0, ns, 0, -1, &raw(&q), None).unwrap()).unwrap()
}

#[test]
fn op_query_commands_use_db_dollar_cmd() {
    let a = analyse(&op_query(
        "admin.$cmd",
        doc! {"isMaster": 1, "client": {"x": 1}},
    ))
    .unwrap();
    assert_eq!(a.command, "isMaster");
    assert_eq!(a.database, "admin");
    assert_eq!(a.class, CommandClass::Connection);
    let a = analyse(&op_query(
        "test.$cmd",
        doc! {"$query": {"count": "c"}, "$readPreference": {"mode": "secondary"}},
    ))
    .unwrap();
    assert_eq!(a.command, "count");
    assert_eq!(a.databases(), vec!["test"]);
    let a = analyse(&op_query(
        "admin.$cmd",
        doc! {"renameCollection": "test.a", "to": "other.b"},
    ))
    .unwrap();
    // Issue 10: judged by its namespaces (and refused as an OP_QUERY command anyway).
    assert_eq!(a.databases(), vec!["test", "other"]);
    assert!(a.refused.is_some());
}

#[test]
fn op_query_non_commands_are_refused() {
    // Issue 10: an OP_QUERY on a collection is refused as mongod 5.1+ refuses it (5739101);
    // a `$cmd` namespace with a bad database name is an invalid namespace.
    for ns in ["test.coll", "admin.$cmd.sys.inprog", "nodot"] {
        let e = analyse(&op_query(ns, doc! {"a": 1})).unwrap_err();
        assert_eq!(e.code(), ResultCode::WireQueryNotCommand, "{ns}");
    }
    let e = analyse(&op_query(".$cmd", doc! {"a": 1})).unwrap_err();
    assert_eq!(e.code(), ResultCode::WireInvalidNamespace);
    let e = analyse(&op_query("test.$cmd", doc! {"find": "c", "$db": "other"})).unwrap_err();
    assert_eq!(e.code(), ResultCode::WireMalformedCommand);
}

#[test]
fn op_reply_build_and_parse() {
    let d = raw(&doc! {"ok": 1.0, "maxMessageSizeBytes": 1_000_000i32});
    let bytes = encode_op_reply(5, 11, 8, 0, 0, &[&d]).unwrap();
    let m = parse_reply(bytes);
    let r = m.op_reply().unwrap();
    assert_eq!((r.response_flags, r.number_returned), (8, 1));
    assert_eq!(r.documents().next().unwrap().unwrap(), &*d);
    assert_eq!(m.max_message_size_bytes(), Some(1_000_000));
    // numberReturned must match.
    let mut lie = encode_op_reply(5, 11, 0, 0, 0, &[&d]).unwrap();
    lie[32] = 2;
    let e = Message::parse(Frame::from_bytes(Bytes::from(lie), LIMIT).unwrap(), LIMIT);
    assert_eq!(e.unwrap_err().code(), ResultCode::WireMalformed);
    // A client may not send OP_REPLY.
    let e = parse(encode_op_reply(5, 0, 0, 0, 0, &[&d]).unwrap()).unwrap_err();
    assert_eq!(e.code(), ResultCode::WireRefusedOpcode);
}

// ---------------------------------------------------------------- replies

#[test]
fn error_reply_matches_the_request_kind() {
    let m = op_msg(doc! {"find": "c", "$db": "admin"});
    let reply =
        unauthorized_reply(&m.request_info(), 77, "access to database admin denied").unwrap();
    let r = parse_reply(reply);
    assert_eq!(r.op_code(), op::OP_MSG);
    assert_eq!(r.header().response_to, 7);
    assert_eq!(r.header().request_id, 77);
    let body = todoc(r.op_msg().unwrap().body());
    assert_eq!(
        body,
        doc! {"ok": 0.0, "errmsg": "access to database admin denied", "code": 13, "codeName": "Unauthorized"}
    );
    let q = op_query("admin.$cmd", doc! {"listDatabases": 1});
    let reply = unauthorized_reply(&q.request_info(), 78, "denied").unwrap();
    let r = parse_reply(reply);
    assert_eq!(r.op_code(), op::OP_REPLY);
    assert_eq!(r.header().response_to, 11);
    let rep = r.op_reply().unwrap();
    let d = todoc(rep.documents().next().unwrap().unwrap());
    assert_eq!(d.get_f64("ok").unwrap(), 0.0);
    assert_eq!(d.get_i32("code").unwrap(), 13);
    assert_eq!(d.get_str("codeName").unwrap(), "Unauthorized");
}

// ---------------------------------------------------------------- handshake

#[test]
fn strip_handshake_removes_speculative_auth_sasl_mechs_compression_and_client_metadata() {
    let body = doc! {
        "hello": 1, "$db": "admin", "client": {"driver": {"name": "x"}},
        "compression": ["snappy", "zstd"],
        "speculativeAuthenticate": {"saslStart": 1, "mechanism": "SCRAM-SHA-256", "payload": bson::Binary{subtype: bson::spec::BinarySubtype::Generic, bytes: vec![1,2,3]}, "db": "admin"},
        "saslSupportedMechs": "admin.u",
    };
    let m = op_msg(body);
    let a = analyse(&m).unwrap();
    assert!(a.speculative_authenticate);
    assert_eq!(a.class, CommandClass::Connection);
    let s = strip_handshake(&m).unwrap();
    let out = todoc(s.op_msg().unwrap().body());
    assert_eq!(out, doc! {"hello": 1, "$db": "admin"});
    assert_eq!(s.header().request_id, m.header().request_id);
    assert!(!analyse(&s).unwrap().speculative_authenticate);
    // `client` alone is enough: the upstream connection's first hello was the proxy's.
    let m = op_msg(
        doc! {"hello": 1, "helloOk": true, "client": {"application": {"name": "app"}}, "$db": "admin"},
    );
    let s = strip_handshake(&m).unwrap();
    assert_eq!(
        todoc(s.op_msg().unwrap().body()),
        doc! {"hello": 1, "helloOk": true, "$db": "admin"}
    );
    // saslSupportedMechs alone is enough to re-encode the hello without it.
    let m = op_msg(doc! {"hello": 1, "saslSupportedMechs": "admin.root", "$db": "admin"});
    let s = strip_handshake(&m).unwrap();
    assert_eq!(
        todoc(s.op_msg().unwrap().body()),
        doc! {"hello": 1, "$db": "admin"}
    );

    // OP_QUERY isMaster, plain and wrapped.
    let q = op_query(
        "admin.$cmd",
        doc! {"isMaster": 1, "compression": ["zlib"], "speculativeAuthenticate": {"a": 1}, "saslSupportedMechs": "admin.u"},
    );
    let s = strip_handshake(&q).unwrap();
    assert_eq!(todoc(s.op_query().unwrap().query), doc! {"isMaster": 1});
    assert_eq!(s.op_query().unwrap().full_collection_name, "admin.$cmd");
    let q = op_query(
        "admin.$cmd",
        doc! {"$query": {"ismaster": 1, "compression": ["zlib"], "client": {"driver": {"name": "legacy"}}}, "$readPreference": {"mode": "primary"}},
    );
    let s = strip_handshake(&q).unwrap();
    assert_eq!(
        todoc(s.op_query().unwrap().query),
        doc! {"$query": {"ismaster": 1}, "$readPreference": {"mode": "primary"}}
    );
    // Other commands are untouched (same bytes).
    let f = op_msg(doc! {"find": "c", "compression": 1, "$db": "test"});
    assert_eq!(strip_handshake(&f).unwrap().bytes(), f.bytes());
}

// ---------------------------------------------------------------- compression

fn compressed(body: Document, c: Compressor) -> Vec<u8> {
    let plain = encode_op_msg(9, 0, 0, &raw(&body), &[]).unwrap();
    compress_message(&plain, c).unwrap()
}

#[test]
fn op_compressed_round_trips_for_every_compressor() {
    for c in [
        Compressor::Noop,
        Compressor::Snappy,
        Compressor::Zlib,
        Compressor::Zstd,
    ] {
        let body = doc! {"aggregate": "c", "pipeline": [{"$out": {"db": "other", "coll": "x"}}], "cursor": {}, "$db": "test", "pad": "y".repeat(3000)};
        let plain = encode_op_msg(9, 0, 0, &raw(&body), &[]).unwrap();
        let m = parse(compressed(body, c)).unwrap();
        assert_eq!(m.compressor(), Some(c));
        assert_eq!(m.op_code(), op::OP_MSG);
        assert_eq!(m.bytes().as_ref(), &plain[..], "{c:?}");
        assert_eq!(
            analyse(&m).unwrap().databases(),
            vec!["test", "other"],
            "{c:?}"
        );
    }
}

fn set_uncompressed_size(mut bytes: Vec<u8>, size: i32) -> Vec<u8> {
    bytes[20..24].copy_from_slice(&size.to_le_bytes());
    bytes
}

#[test]
fn op_compressed_size_lies_and_bombs_are_refused() {
    let body = doc! {"insert": "c", "$db": "test", "pad": "z".repeat(100_000)};
    for c in [
        Compressor::Noop,
        Compressor::Snappy,
        Compressor::Zlib,
        Compressor::Zstd,
    ] {
        let good = compressed(body.clone(), c);
        let real = i32::from_le_bytes(good[20..24].try_into().unwrap());
        for lie in [real - 1, real + 1, 10, real * 2] {
            let e = parse(set_uncompressed_size(good.clone(), lie)).unwrap_err();
            assert!(
                matches!(
                    e.code(),
                    ResultCode::WireDecompressionFailed | ResultCode::WireBadLength
                ),
                "{c:?} {lie}: {e:?}"
            );
        }
        // Claims over the limit are refused before decompressing.
        let e = parse(set_uncompressed_size(good.clone(), 100_000_000)).unwrap_err();
        assert_eq!(e.code(), ResultCode::WireTooLarge, "{c:?}");
        let e = parse(set_uncompressed_size(good, -5)).unwrap_err();
        assert_eq!(e.code(), ResultCode::WireDecompressionFailed, "{c:?}");
    }
    // A zlib bomb: 40 MB of zeros in ~40 KB, claiming 1 KB.
    let mut bomb = BytesMut::new();
    MessageHeader {
        length: 0,
        request_id: 1,
        response_to: 0,
        op_code: op::OP_COMPRESSED,
    }
    .write(&mut bomb);
    bomb.put_i32_le(op::OP_MSG);
    bomb.put_i32_le(1024);
    bomb.put_u8(Compressor::Zlib.id());
    {
        use std::io::Write;
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..40 {
            enc.write_all(&zeros).unwrap();
        }
        bomb.put_slice(&enc.finish().unwrap());
    }
    let len = bomb.len() as i32;
    bomb[..4].copy_from_slice(&len.to_le_bytes());
    let e = parse(bomb.to_vec()).unwrap_err();
    assert_eq!(e.code(), ResultCode::WireDecompressionFailed);
    // Unknown compressor, nested compression.
    let mut unknown = compressed(doc! {"ping": 1, "$db": "a"}, Compressor::Snappy);
    unknown[24] = 9;
    assert_eq!(
        parse(unknown).unwrap_err().code(),
        ResultCode::WireDecompressionFailed
    );
    let inner = compressed(doc! {"ping": 1, "$db": "a"}, Compressor::Noop);
    let twice = compress_message(&inner, Compressor::Noop).unwrap();
    assert_eq!(
        parse(twice).unwrap_err().code(),
        ResultCode::WireDecompressionFailed
    );
    // A compressed legacy opcode is refused after decompression.
    let mut legacy = BytesMut::new();
    MessageHeader {
        length: 24,
        request_id: 1,
        response_to: 0,
        op_code: op::OP_INSERT,
    }
    .write(&mut legacy);
    legacy.put_slice(&[0u8; 8]);
    let c = compress_message(&legacy, Compressor::Snappy).unwrap();
    assert_eq!(parse(c).unwrap_err().code(), ResultCode::WireRefusedOpcode);
}

#[test]
fn zstd_window_larger_than_message_is_refused() {
    // Frame header: magic, descriptor (no FCS, not single segment), window descriptor
    // 0x88 = 2^27 (128 MiB), for a 100-byte message.
    let mut b = BytesMut::new();
    MessageHeader {
        length: 0,
        request_id: 1,
        response_to: 0,
        op_code: op::OP_COMPRESSED,
    }
    .write(&mut b);
    b.put_i32_le(op::OP_MSG);
    b.put_i32_le(100);
    b.put_u8(Compressor::Zstd.id());
    b.put_u32_le(0xFD2F_B528);
    b.put_u8(0x00);
    b.put_u8(0x88);
    b.put_slice(&[1, 0, 0]);
    let len = b.len() as i32;
    b[..4].copy_from_slice(&len.to_le_bytes());
    let e = parse(b.to_vec()).unwrap_err();
    assert_eq!(e.code(), ResultCode::WireDecompressionFailed);
    assert!(e.message().contains("window"), "{e:?}");
}

// ---------------------------------------------------------------- analysis: basics

#[test]
fn db_and_command_name() {
    let a = access(doc! {"find": "users", "filter": {"a": 1}, "$db": "test"});
    assert_eq!(a.command, "find");
    assert_eq!(a.database, "test");
    assert_eq!(a.collection.as_deref(), Some("users"));
    assert_eq!(a.class, CommandClass::Data);
    assert_eq!(
        a.namespaces,
        vec![Namespace {
            database: "test".into(),
            collection: Some("users".into())
        }]
    );
}

#[test]
fn missing_or_bad_db_is_refused() {
    assert_eq!(
        access_err(doc! {"find": "c"}),
        ResultCode::WireMalformedCommand
    );
    assert_eq!(
        access_err(doc! {"find": "c", "$db": 1}),
        ResultCode::WireMalformedCommand
    );
    // Issue 10: a bad database name is InvalidNamespace (code 73), not a malformed command.
    assert_eq!(
        access_err(doc! {"find": "c", "$db": ""}),
        ResultCode::WireInvalidNamespace
    );
    assert_eq!(
        access_err(doc! {"find": "c", "$db": "a\0b"}),
        ResultCode::WireInvalidNamespace
    );
}

#[test]
fn duplicate_db_is_refused() {
    let body = body_with_fields(&[
        ("find", "c".into()),
        ("$db", "test".into()),
        ("$db", "admin".into()),
    ]);
    let e = analyse(&parse(encode_op_msg(1, 0, 0, &body, &[]).unwrap()).unwrap()).unwrap_err();
    assert_eq!(e.code(), ResultCode::WireDuplicateKey);
}

#[test]
fn duplicate_command_name_is_refused() {
    let body = body_with_fields(&[
        ("find", "c".into()),
        ("$db", "test".into()),
        ("find", "d".into()),
    ]);
    let e = analyse(&parse(encode_op_msg(1, 0, 0, &body, &[]).unwrap()).unwrap()).unwrap_err();
    assert_eq!(e.code(), ResultCode::WireDuplicateKey);
}

#[test]
fn duplicate_namespace_fields_are_refused() {
    let body = body_with_fields(&[
        ("renameCollection", "test.a".into()),
        ("to", "test.b".into()),
        ("to", "other.b".into()),
        ("$db", "admin".into()),
    ]);
    let e = analyse(&parse(encode_op_msg(1, 0, 0, &body, &[]).unwrap()).unwrap()).unwrap_err();
    assert_eq!(e.code(), ResultCode::WireDuplicateKey);
    let body = body_with_fields(&[
        ("aggregate", "c".into()),
        ("pipeline", bson::Bson::Array(vec![])),
        (
            "pipeline",
            bson::Bson::Array(vec![bson::Bson::Document(
                doc! {"$out": {"db": "other", "coll": "x"}},
            )]),
        ),
        ("$db", "test".into()),
    ]);
    let e = analyse(&parse(encode_op_msg(1, 0, 0, &body, &[]).unwrap()).unwrap()).unwrap_err();
    assert_eq!(e.code(), ResultCode::WireDuplicateKey);
    // Inside a stage.
    let stage = body_with_fields(&[
        ("into", "x".into()),
        (
            "into",
            bson::Bson::Document(doc! {"db": "other", "coll": "x"}),
        ),
    ]);
    let pipeline = vec![bson::Bson::Document(
        doc! {"$merge": stage.to_document().unwrap_or_default()},
    )];
    // Document dedups keys, so build the raw stage by hand instead.
    let _ = pipeline;
    let mut merge = RawDocumentBuf::new();
    merge.append("$merge", stage);
    let mut arr = bson::RawArrayBuf::new();
    arr.push(merge);
    let mut body = RawDocumentBuf::new();
    body.append("aggregate", "c");
    body.append("pipeline", arr);
    body.append("$db", "test");
    let e = analyse(&parse(encode_op_msg(1, 0, 0, &body, &[]).unwrap()).unwrap()).unwrap_err();
    assert_eq!(e.code(), ResultCode::WireDuplicateKey);
}

#[test]
fn sequence_identifier_colliding_with_body_is_refused() {
    let body = raw(&doc! {"insert": "c", "documents": [], "$db": "test"});
    let d = raw(&doc! {"_id": 1});
    let bytes = encode_op_msg(1, 0, 0, &body, &[("documents", &[&d])]).unwrap();
    let e = analyse(&parse(bytes).unwrap()).unwrap_err();
    assert_eq!(e.code(), ResultCode::WireDuplicateKey);
    let body = raw(&doc! {"insert": "c", "$db": "test"});
    let bytes = encode_op_msg(
        1,
        0,
        0,
        &body,
        &[("documents", &[&d]), ("documents", &[&d])],
    )
    .unwrap();
    assert_eq!(
        analyse(&parse(bytes).unwrap()).unwrap_err().code(),
        ResultCode::WireDuplicateKey
    );
    let bytes = encode_op_msg(1, 0, 0, &body, &[("$db", &[&d])]).unwrap();
    assert_eq!(
        analyse(&parse(bytes).unwrap()).unwrap_err().code(),
        ResultCode::WireDuplicateKey
    );
}

#[test]
fn only_listed_fields_may_come_as_document_sequences() {
    // Issue 10: document sequences only for the fields the command table lists (a pipeline
    // as a sequence was analysed before; a find `filter` as a sequence went unread).
    let body = raw(&doc! {"aggregate": "c", "cursor": {}, "$db": "test"});
    let stage = raw(&doc! {"$out": {"db": "other", "coll": "x"}});
    let bytes = encode_op_msg(1, 0, 0, &body, &[("pipeline", &[&stage])]).unwrap();
    assert_eq!(
        analyse(&parse(bytes).unwrap()).unwrap_err().code(),
        ResultCode::WireRefusedField
    );
    let body = raw(&doc! {"find": "c", "$db": "test"});
    let filter = raw(&doc! {"a": 1});
    let bytes = encode_op_msg(1, 0, 0, &body, &[("filter", &[&filter])]).unwrap();
    assert_eq!(
        analyse(&parse(bytes).unwrap()).unwrap_err().code(),
        ResultCode::WireRefusedField
    );
    let body = raw(&doc! {"insert": "c", "$db": "test"});
    let d = raw(&doc! {"a": 1});
    let bytes = encode_op_msg(1, 0, 0, &body, &[("documents", &[&d])]).unwrap();
    assert_eq!(
        analyse(&parse(bytes).unwrap()).unwrap().databases(),
        vec!["test"]
    );
}

// ---------------------------------------------------------------- analysis: classes

#[test]
fn auth_commands_are_classified() {
    for name in [
        "saslStart",
        "saslContinue",
        "authenticate",
        "logout",
        "getnonce",
    ] {
        let mut d = Document::new();
        d.insert(name, 1);
        d.insert("$db", "admin");
        assert_eq!(access(d).class, CommandClass::Auth, "{name}");
    }
}

#[test]
fn connection_commands_are_classified() {
    for name in COMMANDS
        .iter()
        .filter(|r| r.reach == Reach::Connection)
        .map(|r| r.name)
    {
        let mut d = Document::new();
        d.insert(name, 1);
        d.insert("$db", "admin");
        let a = access(d);
        assert_eq!(a.class, CommandClass::Connection, "{name}");
        assert!(a.unanalysable.is_none());
        assert_eq!(a.databases(), vec!["admin"]);
    }
    assert!(
        access(doc! {"isMaster": 1, "speculativeAuthenticate": {}, "$db": "admin"})
            .speculative_authenticate
    );
}

#[test]
fn same_database_crud() {
    for body in [
        doc! {"insert": "c", "documents": [{"a": 1}], "$db": "test"},
        doc! {"update": "c", "updates": [{"q": {}, "u": {"$set": {"a": 1}}}], "$db": "test"},
        doc! {"delete": "c", "deletes": [{"q": {}, "limit": 0}], "$db": "test"},
        doc! {"findAndModify": "c", "query": {}, "update": {"$inc": {"n": 1}}, "$db": "test"},
        doc! {"count": "c", "$db": "test"},
        doc! {"distinct": "c", "key": "a", "$db": "test"},
        doc! {"getMore": 5i64, "collection": "c", "$db": "test"},
        doc! {"killCursors": "c", "cursors": [5i64], "$db": "test"},
        doc! {"createIndexes": "c", "indexes": [{"key": {"a": 1}, "name": "a_1"}], "$db": "test"},
        doc! {"listCollections": 1, "$db": "test"},
        doc! {"drop": "c", "$db": "test"},
        doc! {"dropDatabase": 1, "$db": "test"},
    ] {
        assert_eq!(dbs(body.clone()), vec!["test"], "{body}");
    }
    assert_eq!(
        access(doc! {"getMore": 5i64, "collection": "c", "$db": "test"})
            .collection
            .as_deref(),
        Some("c")
    );
}

// ---------------------------------------------------------------- analysis: rename, copy

#[test]
fn rename_collection_reaches_both_namespaces() {
    // Issue 10: judged by its two namespaces, not by `$db` admin (the server requires admin
    // as the address; pymongo's Collection.rename() in `test` was denied for `admin`).
    assert_eq!(
        dbs(doc! {"renameCollection": "test.a", "to": "other.b", "$db": "admin"}),
        vec!["test", "other"]
    );
    let a = access(
        doc! {"renameCollection": "test.a", "to": "test.b", "dropTarget": true, "$db": "admin"},
    );
    assert_eq!(a.databases(), vec!["test"]);
    assert_eq!(a.database, "test");
    assert_eq!(a.namespaces.len(), 2);
    assert_eq!(
        access_err(doc! {"renameCollection": "test.a", "$db": "admin"}),
        ResultCode::WireMalformedCommand
    );
    // Issue 10: a namespace without a collection is an invalid namespace (code 73).
    assert_eq!(
        access_err(doc! {"renameCollection": "test.a", "to": "nodot", "$db": "admin"}),
        ResultCode::WireInvalidNamespace
    );
    assert_eq!(
        access_err(doc! {"renameCollection": "test.a", "to": 5, "$db": "admin"}),
        ResultCode::WireMalformedCommand
    );
}

#[test]
fn copydb_and_clone_collection() {
    // Issue 10: legacy copy/clone commands are never forwarded (their databases were listed).
    for d in [
        doc! {"copydb": 1, "fromdb": "src", "todb": "dst", "$db": "admin"},
        doc! {"cloneCollection": "other.c", "from": "host:27017", "$db": "test"},
        doc! {"clone": "host:27017", "$db": "test"},
    ] {
        assert!(access(d)
            .refused
            .unwrap()
            .reason
            .contains("never forwarded"));
    }
}

#[test]
fn namespace_and_database_valued_admin_commands() {
    assert_eq!(
        dbs(doc! {"shardCollection": "other.c", "key": {"_id": 1}, "$db": "admin"}),
        vec!["admin", "other"]
    );
    assert_eq!(
        dbs(doc! {"dataSize": "other.c", "$db": "test"}),
        vec!["test", "other"]
    );
    assert_eq!(
        dbs(doc! {"enableSharding": "other", "$db": "admin"}),
        vec!["admin", "other"]
    );
    assert_eq!(
        dbs(doc! {"movePrimary": "other", "to": "shard1", "$db": "admin"}),
        vec!["admin", "other"]
    );
    assert_eq!(
        dbs(doc! {"flushRouterConfig": "other.c", "$db": "admin"}),
        vec!["admin", "other"]
    );
    assert!(everything(doc! {"flushRouterConfig": 1, "$db": "admin"}).contains("every"));
}

// ---------------------------------------------------------------- analysis: aggregate

#[test]
fn out_string_and_document() {
    assert_eq!(
        dbs(
            doc! {"aggregate": "c", "pipeline": [{"$match": {}}, {"$out": "x"}], "cursor": {}, "$db": "test"}
        ),
        vec!["test"]
    );
    let a = access(
        doc! {"aggregate": "c", "pipeline": [{"$out": {"db": "other", "coll": "x"}}], "cursor": {}, "$db": "test"},
    );
    assert_eq!(a.databases(), vec!["test", "other"]);
    assert!(a.namespaces.contains(&Namespace {
        database: "other".into(),
        collection: Some("x".into())
    }));
    assert_eq!(
        access_err(doc! {"aggregate": "c", "pipeline": [{"$out": 5}], "$db": "test"}),
        ResultCode::WireMalformedCommand
    );
}

#[test]
fn merge_string_into_string_and_into_document() {
    assert_eq!(
        dbs(doc! {"aggregate": "c", "pipeline": [{"$merge": "x"}], "$db": "test"}),
        vec!["test"]
    );
    assert_eq!(
        dbs(doc! {"aggregate": "c", "pipeline": [{"$merge": {"into": "x"}}], "$db": "test"}),
        vec!["test"]
    );
    assert_eq!(
        dbs(
            doc! {"aggregate": "c", "pipeline": [{"$merge": {"into": {"db": "other", "coll": "x"}, "on": "_id"}}], "$db": "test"}
        ),
        vec!["test", "other"]
    );
    assert_eq!(
        access_err(doc! {"aggregate": "c", "pipeline": [{"$merge": {"on": "_id"}}], "$db": "test"}),
        ResultCode::WireMalformedCommand
    );
}

#[test]
fn lookup_from_string_document_and_db_field() {
    assert_eq!(
        dbs(
            doc! {"aggregate": "c", "pipeline": [{"$lookup": {"from": "d", "localField": "a", "foreignField": "b", "as": "j"}}], "$db": "test"}
        ),
        vec!["test"]
    );
    assert_eq!(
        dbs(
            doc! {"aggregate": "c", "pipeline": [{"$lookup": {"from": {"db": "other", "coll": "d"}, "localField": "a", "foreignField": "b", "as": "j"}}], "$db": "test"}
        ),
        vec!["test", "other"]
    );
    assert_eq!(
        dbs(
            doc! {"aggregate": "c", "pipeline": [{"$lookup": {"from": "d", "db": "other", "as": "j", "pipeline": []}}], "$db": "test"}
        ),
        vec!["test", "other"]
    );
}

#[test]
fn graph_lookup_from_other_database() {
    assert_eq!(
        dbs(
            doc! {"aggregate": "c", "pipeline": [{"$graphLookup": {"from": {"db": "other", "coll": "g"}, "startWith": "$a", "connectFromField": "a", "connectToField": "b", "as": "t"}}], "$db": "test"}
        ),
        vec!["test", "other"]
    );
    assert_eq!(
        dbs(
            doc! {"aggregate": "c", "pipeline": [{"$graphLookup": {"from": "g", "startWith": "$a", "connectFromField": "a", "connectToField": "b", "as": "t"}}], "$db": "test"}
        ),
        vec!["test"]
    );
}

#[test]
fn union_with_string_and_document() {
    assert_eq!(
        dbs(doc! {"aggregate": "c", "pipeline": [{"$unionWith": "d"}], "$db": "test"}),
        vec!["test"]
    );
    assert_eq!(
        dbs(
            doc! {"aggregate": "c", "pipeline": [{"$unionWith": {"coll": "d", "db": "other", "pipeline": [{"$match": {}}]}}], "$db": "test"}
        ),
        vec!["test", "other"]
    );
}

#[test]
fn nested_pipelines_are_followed() {
    // $out to another database inside $lookup's pipeline is impossible on real servers, but
    // a $lookup nested in $facet nested in $unionWith must still be found.
    assert_eq!(
        dbs(doc! {"aggregate": "c", "pipeline": [
            {"$unionWith": {"coll": "u", "pipeline": [
                {"$facet": {"a": [{"$match": {}}], "b": [
                    {"$lookup": {"from": {"db": "deep", "coll": "x"}, "as": "j", "pipeline": []}}
                ]}}
            ]}}
        ], "$db": "test"}),
        vec!["test", "deep"]
    );
    // A string `from` inside a $lookup whose foreign collection is in another database is
    // resolved against that database.
    let a = access(doc! {"aggregate": "c", "pipeline": [
        {"$lookup": {"from": {"db": "other", "coll": "x"}, "as": "j", "pipeline": [
            {"$lookup": {"from": "y", "as": "k", "pipeline": []}}
        ]}}
    ], "$db": "test"});
    assert!(a.namespaces.contains(&Namespace {
        database: "other".into(),
        collection: Some("y".into())
    }));
    // $facet with $lookup to another database.
    assert_eq!(
        dbs(
            doc! {"aggregate": "c", "pipeline": [{"$facet": {"x": [{"$lookup": {"from": {"db": "f", "coll": "z"}, "as": "q", "localField": "a", "foreignField": "b"}}]}}], "$db": "test"}
        ),
        vec!["test", "f"]
    );
    // $unionWith inside $lookup inside $unionWith with its own db.
    assert_eq!(
        dbs(
            doc! {"aggregate": "c", "pipeline": [{"$unionWith": {"coll": "u", "db": "one", "pipeline": [
                {"$lookup": {"from": "l", "as": "j", "pipeline": [{"$unionWith": {"coll": "v", "db": "two"}}]}}
            ]}}], "$db": "test"}
        ),
        vec!["test", "one", "two"]
    );
    // $merge whenMatched pipeline is analysed too.
    assert_eq!(
        dbs(
            doc! {"aggregate": "c", "pipeline": [{"$merge": {"into": "x", "whenMatched": [{"$set": {"a": 1}}]}}], "$db": "test"}
        ),
        vec!["test"]
    );
}

#[test]
fn stage_shape_is_strict() {
    assert_eq!(
        access_err(
            doc! {"aggregate": "c", "pipeline": [{"$match": {}, "$out": {"db": "o", "coll": "x"}}], "$db": "test"}
        ),
        ResultCode::WireMalformedCommand
    );
    assert_eq!(
        access_err(doc! {"aggregate": "c", "pipeline": [5], "$db": "test"}),
        ResultCode::WireMalformedCommand
    );
    assert_eq!(
        access_err(doc! {"aggregate": "c", "pipeline": {"$out": "x"}, "$db": "test"}),
        ResultCode::WireMalformedCommand
    );
    assert_eq!(
        access_err(doc! {"aggregate": "c", "$db": "test"}),
        ResultCode::WireMalformedCommand
    );
}

#[test]
fn cluster_wide_and_unknown_stages_are_unanalysable() {
    // Issue 10: $currentOp (and $listSessions, $listLocalSessions) act on every client of
    // the shared upstream user: refused; an unknown stage is refused (40324), no longer
    // unanalysable.
    for stage in ["$currentOp", "$listSessions", "$listLocalSessions"] {
        let a = access(
            doc! {"aggregate": 1, "pipeline": [{stage: {"allUsers": true}}], "cursor": {}, "$db": "admin"},
        );
        assert!(a
            .refused
            .unwrap()
            .reason
            .contains("one upstream database user"));
    }
    assert!(everything(doc! {"aggregate": 1, "pipeline": [{"$changeStream": {"allChangesForCluster": true}}], "cursor": {}, "$db": "admin"}).contains("allChangesForCluster"));
    assert_eq!(
        dbs(
            doc! {"aggregate": "c", "pipeline": [{"$changeStream": {}}], "cursor": {}, "$db": "test"}
        ),
        vec!["test"]
    );
    assert_eq!(
        access_err(doc! {"aggregate": "c", "pipeline": [{"$brandNewStage": {}}], "$db": "test"}),
        ResultCode::WireUnknownStage
    );
    assert_eq!(
        access_err(
            doc! {"aggregate": "c", "pipeline": [{"$facet": {"a": [{"$_internalX": {}}]}}], "$db": "test"}
        ),
        ResultCode::WireUnknownStage
    );
    assert!(
        everything(doc! {"aggregate": 1, "pipeline": [{"$listCatalog": {}}], "$db": "admin"})
            .contains("$listCatalog")
    );
}

#[test]
fn explain_analyses_the_inner_command() {
    assert_eq!(
        dbs(
            doc! {"explain": {"aggregate": "c", "pipeline": [{"$lookup": {"from": {"db": "other", "coll": "d"}, "as": "j", "pipeline": []}}], "cursor": {}}, "verbosity": "executionStats", "$db": "test"}
        ),
        vec!["test", "other"]
    );
    assert_eq!(
        dbs(doc! {"explain": {"find": "c"}, "$db": "test"}),
        vec!["test"]
    );
    // Issue 10: the inner command is judged with the same table: unknown refused, cluster-wide
    // unanalysable, shared-principal refused, an inner `$db` of its own refused.
    assert_eq!(
        access_err(doc! {"explain": {"mystery": 1}, "$db": "test"}),
        ResultCode::WireUnknownCommand
    );
    assert!(
        everything(doc! {"explain": {"serverStatus": 1}, "$db": "test"}).contains("serverStatus")
    );
    assert!(
        access(doc! {"explain": {"killSessions": []}, "$db": "test"})
            .refused
            .is_some()
    );
    assert_eq!(
        access_err(doc! {"explain": {"find": "c", "$db": "other"}, "$db": "test"}),
        ResultCode::WireRefusedField
    );
    assert_eq!(
        dbs(doc! {"explain": {"find": "c", "$db": "test"}, "$db": "test"}),
        vec!["test"]
    );
}

#[test]
fn views_with_pipelines() {
    assert_eq!(
        dbs(
            doc! {"create": "v", "viewOn": "c", "pipeline": [{"$lookup": {"from": {"db": "other", "coll": "d"}, "as": "j", "pipeline": []}}], "$db": "test"}
        ),
        vec!["test", "other"]
    );
    assert_eq!(
        dbs(
            doc! {"collMod": "v", "viewOn": "c", "pipeline": [{"$unionWith": {"coll": "d", "db": "other"}}], "$db": "test"}
        ),
        vec!["test", "other"]
    );
}

// ---------------------------------------------------------------- analysis: mapReduce

#[test]
fn map_reduce_out_database() {
    assert_eq!(
        dbs(
            doc! {"mapReduce": "c", "map": "function(){}", "reduce": "function(){}", "out": {"replace": "r", "db": "other"}, "$db": "test"}
        ),
        vec!["test", "other"]
    );
    assert_eq!(
        dbs(
            doc! {"mapreduce": "c", "map": "function(){}", "reduce": "function(){}", "out": {"inline": 1}, "$db": "test"}
        ),
        vec!["test"]
    );
    assert_eq!(
        dbs(doc! {"mapReduce": "c", "map": "f", "reduce": "g", "out": "r", "$db": "test"}),
        vec!["test"]
    );
    assert_eq!(
        access_err(doc! {"mapReduce": "c", "out": {"merge": "r", "db": 3}, "$db": "test"}),
        ResultCode::WireMalformedCommand
    );
}

// ---------------------------------------------------------------- analysis: applyOps, bulkWrite

#[test]
fn apply_ops_is_never_forwarded() {
    // Issue 10: applyOps is in the "never forwarded" class (it applies oplog entries as the
    // server; its namespaces were listed before).
    let a = access(doc! {"applyOps": [
        {"op": "i", "ns": "one.c", "o": {"_id": 1}},
        {"op": "n", "ns": "", "o": {"msg": "noop"}},
    ], "$db": "admin"});
    assert!(a.refused.unwrap().reason.contains("never forwarded"));
}

#[test]
fn bulk_write_ns_info_body_and_sequence() {
    // Issue 10: bulkWrite is sent to admin but reaches only its nsInfo namespaces, so admin
    // is no longer among the databases judged (a driver's client.bulk_write in `test` was
    // denied for `admin`).
    let a = access(
        doc! {"bulkWrite": 1, "ops": [{"insert": 0, "document": {}}], "nsInfo": [{"ns": "test.a"}, {"ns": "other.b"}], "$db": "admin"},
    );
    assert_eq!(a.databases(), vec!["test", "other"]);
    assert_eq!(a.database, "test");
    let body = raw(&doc! {"bulkWrite": 1, "$db": "admin"});
    let op1 = raw(&doc! {"insert": 0, "document": {}});
    let ns1 = raw(&doc! {"ns": "third.c"});
    let bytes = encode_op_msg(1, 0, 0, &body, &[("ops", &[&op1]), ("nsInfo", &[&ns1])]).unwrap();
    assert_eq!(
        analyse(&parse(bytes).unwrap()).unwrap().databases(),
        vec!["third"]
    );
}

// ---------------------------------------------------------------- analysis: users and roles

#[test]
fn users_and_roles_in_other_databases() {
    assert_eq!(
        dbs(
            doc! {"createUser": "u", "pwd": "p", "roles": ["readWrite", {"role": "root", "db": "admin"}], "$db": "test"}
        ),
        vec!["test", "admin"]
    );
    assert_eq!(
        dbs(
            doc! {"grantRolesToUser": "u", "roles": [{"role": "read", "db": "other"}], "$db": "test"}
        ),
        vec!["test", "other"]
    );
    assert_eq!(
        dbs(doc! {"usersInfo": {"user": "u", "db": "other"}, "$db": "test"}),
        vec!["test", "other"]
    );
    assert_eq!(
        dbs(doc! {"rolesInfo": [{"role": "r", "db": "x"}, "local"], "$db": "test"}),
        vec!["test", "x"]
    );
    assert!(
        everything(doc! {"usersInfo": 1, "forAllDBs": true, "$db": "admin"}).contains("forAllDBs")
    );
    assert_eq!(
        dbs(
            doc! {"createRole": "r", "privileges": [{"resource": {"db": "other", "collection": "c"}, "actions": ["find"]}], "roles": [], "$db": "test"}
        ),
        vec!["test", "other"]
    );
    assert!(everything(doc! {"createRole": "r", "privileges": [{"resource": {"cluster": true}, "actions": ["shutdown"]}], "roles": [], "$db": "admin"}).contains("cluster"));
    assert!(everything(doc! {"grantPrivilegesToRole": "r", "privileges": [{"resource": {"db": "", "collection": ""}, "actions": ["find"]}], "$db": "test"}).contains("every"));
}

// ---------------------------------------------------------------- analysis: unanalysable

#[test]
fn unknown_and_cluster_wide_commands_are_unanalysable() {
    // Issue 10: an unknown command is refused (59 CommandNotFound), no longer unanalysable;
    // currentOp is shared-principal and eval never forwarded (both refused).
    assert_eq!(
        access_err(doc! {"frobnicate": 1, "$db": "test"}),
        ResultCode::WireUnknownCommand
    );
    assert!(
        everything(doc! {"listDatabases": 1, "nameOnly": true, "$db": "admin"})
            .contains("listDatabases")
    );
    assert!(access(doc! {"currentOp": 1, "$db": "admin"})
        .refused
        .is_some());
    assert!(access(doc! {"eval": "db.getSiblingDB('x')", "$db": "test"})
        .refused
        .is_some());
    // Command names are case-sensitive: an unknown spelling is refused, not allowed.
    assert_eq!(
        access_err(doc! {"FIND": "c", "$db": "test"}),
        ResultCode::WireUnknownCommand
    );
    // Server administration sent to `test` is judged as every database.
    for name in [
        "serverStatus",
        "getParameter",
        "profile",
        "shutdown",
        "fsync",
    ] {
        assert!(everything(doc! {name: 1, "$db": "test"}).contains(name));
    }
    // Shared-principal commands are refused whatever the session may reach.
    for name in [
        "killSessions",
        "killAllSessions",
        "killAllSessionsByPattern",
        "killOp",
        "currentOp",
    ] {
        let a = access(doc! {name: [], "$db": "admin"});
        assert!(
            a.refused
                .unwrap()
                .reason
                .contains("one upstream database user"),
            "{name}"
        );
    }
}

#[test]
fn too_many_namespaces_become_unanalysable() {
    // (Was built with applyOps, which issue 10 makes never forwarded; bulkWrite's nsInfo
    // names as many.)
    let ns: Vec<bson::Bson> = (0..(MAX_NAMESPACES + 10))
        .map(|i| bson::Bson::Document(doc! {"ns": format!("db{i}.c")}))
        .collect();
    let a = access(doc! {"bulkWrite": 1, "ops": [], "nsInfo": ns, "$db": "admin"});
    assert!(a.unanalysable.unwrap().contains("namespaces"));
    assert_eq!(a.namespaces.len(), MAX_NAMESPACES);
}

#[test]
fn compressed_message_is_judged_after_decompression() {
    let bytes = compressed(
        doc! {"renameCollection": "test.a", "to": "other.b", "$db": "admin"},
        Compressor::Zstd,
    );
    let a = analyse(&parse(bytes).unwrap()).unwrap();
    // Issue 10: renameCollection is judged by its namespaces, not by `$db` admin.
    assert_eq!(a.databases(), vec!["test", "other"]);
}

#[test]
fn error_codes_are_in_the_wire_group() {
    for code in crate::ResultCode::all() {
        if format!("{code:?}").starts_with("Wire") {
            assert!((400..500).contains(&(*code as u32)), "{code:?}");
        }
    }
}

/// Streams made by independent implementations (the `zstd` CLI with `--check`, Python's
/// zlib) of the OP_MSG `{find: "c", $db: "other", pad: "q" * 300}` (347 bytes after the
/// header).
const ZSTD_CLI: &str = "28b52ffd645b0085010002c30911904d07e0e77ef380eeff6fa93b1b932405ff1e8cb3b80e918aed0f9b14fdfc3dd94a7d40fe0f0100465141198f896ced";
const PY_ZLIB: &str = "78da6360008230460606a6b4ccbc140626202f998149252589810dc8cc2fc9482d62602a484c61d005aa291c05440306060083e08b45";

fn compressed_fixture(compressor: Compressor, payload: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    MessageHeader {
        length: 0,
        request_id: 4,
        response_to: 0,
        op_code: op::OP_COMPRESSED,
    }
    .write(&mut b);
    b.put_i32_le(op::OP_MSG);
    b.put_i32_le(347);
    b.put_u8(compressor.id());
    b.put_slice(payload);
    let len = b.len() as i32;
    b[..4].copy_from_slice(&len.to_le_bytes());
    b.to_vec()
}

#[test]
fn streams_from_independent_compressors_are_accepted() {
    for (c, hex_stream) in [(Compressor::Zstd, ZSTD_CLI), (Compressor::Zlib, PY_ZLIB)] {
        let stream = hex::decode(hex_stream).unwrap();
        let m = parse(compressed_fixture(c, &stream)).unwrap();
        assert_eq!(m.header().length, 16 + 347);
        assert_eq!(m.header().request_id, 4);
        let a = analyse(&m).unwrap();
        assert_eq!(
            (a.command.as_str(), a.databases()),
            ("find", vec!["other"]),
            "{c:?}"
        );
        // Trailing bytes after the stream are refused.
        let mut extra = stream.clone();
        extra.extend_from_slice(b"XYZ");
        let e = parse(compressed_fixture(c, &extra)).unwrap_err();
        assert_eq!(e.code(), ResultCode::WireDecompressionFailed, "{c:?}");
    }
    // A wrong zstd content checksum (the frame's last 4 bytes) is refused.
    let mut stream = hex::decode(ZSTD_CLI).unwrap();
    let n = stream.len();
    stream[n - 1] ^= 0x55;
    let e = parse(compressed_fixture(Compressor::Zstd, &stream)).unwrap_err();
    assert_eq!(e.code(), ResultCode::WireDecompressionFailed);
    assert!(e.message().contains("checksum"), "{e:?}");
}

#[test]
fn client_names_in_reasons_are_cut_short() {
    let long = "x".repeat(10_000);
    let mut d = Document::new();
    d.insert(long.clone(), 1);
    d.insert("$db", "test");
    // Issue 10: an unknown command is refused (an error) instead of unanalysable.
    let e = analyse(&op_msg(d)).unwrap_err();
    assert_eq!(e.code(), ResultCode::WireUnknownCommand);
    let reason = e.message();
    assert!(reason.len() < 200, "{}", reason.len());
    assert!(reason.contains('…'));
    let e = analyse(&op_query(&format!("test.{long}"), doc! {"a": 1})).unwrap_err();
    assert!(e.message().len() < 200);
}

/// Messages encoded by pymongo 4.20.1 (`pymongo.message._op_msg`, the driver's own encoder),
/// the third one zlib-compressed by pymongo's `ZlibContext`.
const PYMONGO_INSERT: &str = "7d00000067458b6b00000000dd07000000000000002b00000002696e7365727400020000006300086f7264657265640001022464620005000000746573740000013c000000646f63756d656e74730017000000105f696400010000000261000200000078000017000000105f6964000200000002610002000000790000";
const PYMONGO_AGGREGATE: &str = "0d010000c6237b3200000000dd0700000000000000f8000000026167677265676174650002000000630004706970656c696e6500930000000330005100000003246c6f6f6b757000430000000366726f6d001f00000002646200060000006f746865720002636f6c6c000200000064000002617300020000006a0004706970656c696e6500050000000000000331003700000003246d65726765002a00000003696e746f001f000000026462000600000074686972640002636f6c6c00020000006d000000000003637572736f720005000000000224646200050000007465737400032472656164507265666572656e63650019000000026d6f6465000a0000007365636f6e64617279000000";
const PYMONGO_RENAME_ZLIB: &str = "60000000469012b000000000dc070000dd0700004600000002789c636000024720662a4acd4bcc4d75cecfc9494d2ec9cccf6360078a96a41697e825323095e4337000b9f92519a9457a490c4c2a29490c6c4081c494dccc3c060600295c0fb8";

#[test]
fn messages_encoded_by_pymongo() {
    let m = parse(hex::decode(PYMONGO_INSERT).unwrap()).unwrap();
    let msg = m.op_msg().unwrap();
    let seq = msg.sequence("documents").unwrap();
    assert_eq!(seq.documents().count(), 2);
    let a = analyse(&m).unwrap();
    assert_eq!(
        (a.command.as_str(), a.databases()),
        ("insert", vec!["test"])
    );

    let a = analyse(&parse(hex::decode(PYMONGO_AGGREGATE).unwrap()).unwrap()).unwrap();
    assert_eq!(a.databases(), vec!["test", "other", "third"]);
    assert!(a.unanalysable.is_none());

    let m = parse(hex::decode(PYMONGO_RENAME_ZLIB).unwrap()).unwrap();
    assert_eq!(m.compressor(), Some(Compressor::Zlib));
    let a = analyse(&m).unwrap();
    // Issue 10: renameCollection is judged by its namespaces, not by `$db` admin.
    assert_eq!(a.databases(), vec!["test", "other"]);
}

// ---------------------------------------------------------------- issue 10: names

#[test]
fn database_names_follow_the_server_rules() {
    for bad in [
        "test.x", "a/b", "a\\b", "a b", "a\"b", "a$b", "a*b", "a<b", "a>b", "a:b", "a|b", "a?b",
    ] {
        assert_eq!(
            access_err(doc! {"find": "c", "$db": bad}),
            ResultCode::WireInvalidNamespace,
            "{bad}"
        );
        // In connection commands too, and in fields naming another database.
        assert_eq!(
            access_err(doc! {"ping": 1, "$db": bad}),
            ResultCode::WireInvalidNamespace,
            "{bad}"
        );
        assert_eq!(
            access_err(
                doc! {"aggregate": "c", "pipeline": [{"$out": {"db": bad, "coll": "x"}}], "cursor": {}, "$db": "test"}
            ),
            ResultCode::WireInvalidNamespace,
            "{bad}"
        );
    }
    // `$external` is the one database name with a `$` (drivers authenticate there).
    assert!(access(doc! {"saslStart": 1, "$db": "$external"})
        .refused
        .is_some());
    let longest = "d".repeat(MAX_DATABASE_NAME_LEN);
    assert_eq!(
        dbs(doc! {"find": "c", "$db": longest.as_str()}),
        vec![longest.clone()]
    );
    let too_long = "d".repeat(MAX_DATABASE_NAME_LEN + 1);
    assert_eq!(
        access_err(doc! {"find": "c", "$db": too_long}),
        ResultCode::WireInvalidNamespace
    );
}

#[test]
fn collection_names_and_namespace_length_follow_the_server_rules() {
    for bad in ["", "a\0b", "$cmd", "a$b", ".a"] {
        assert_eq!(
            access_err(doc! {"find": bad, "$db": "test"}),
            ResultCode::WireInvalidNamespace,
            "{bad:?}"
        );
        assert_eq!(
            access_err(
                doc! {"renameCollection": "test.a", "to": format!("other.{bad}"), "$db": "admin"}
            ),
            ResultCode::WireInvalidNamespace,
            "{bad:?}"
        );
    }
    // `test.` + 250 bytes = 255: the longest namespace.
    let longest = "c".repeat(MAX_NAMESPACE_LEN - "test.".len());
    assert_eq!(
        access(doc! {"find": longest.as_str(), "$db": "test"})
            .collection
            .as_deref(),
        Some(longest.as_str())
    );
    let too_long = "c".repeat(MAX_NAMESPACE_LEN - "test.".len() + 1);
    assert_eq!(
        access_err(doc! {"find": too_long.as_str(), "$db": "test"}),
        ResultCode::WireInvalidNamespace
    );
    assert_eq!(
        access_err(
            doc! {"aggregate": "c", "pipeline": [{"$lookup": {"from": too_long, "as": "j", "pipeline": []}}], "cursor": {}, "$db": "test"}
        ),
        ResultCode::WireInvalidNamespace
    );
}

// ---------------------------------------------------------------- issue 10: OP_QUERY

#[test]
fn op_query_carries_only_the_handshake() {
    for name in ["hello", "isMaster", "ismaster"] {
        let a = analyse(&op_query("admin.$cmd", doc! {name: 1})).unwrap();
        assert!(a.refused.is_none(), "{name}");
    }
    for cmd in [
        doc! {"count": "c"},
        doc! {"ping": 1},
        doc! {"dropDatabase": 1},
        doc! {"$query": {"find": "c"}, "$readPreference": {"mode": "primary"}},
    ] {
        let a = analyse(&op_query("test.$cmd", cmd.clone())).unwrap();
        let refusal = a.refused.expect("refused");
        assert_eq!(refusal.code, Some(ResultCode::WireRefusedQuery), "{cmd:?}");
        assert!(refusal.reason.contains("OP_QUERY"), "{}", refusal.reason);
    }
    // `$queryOptions` (folded into the command by mongod after the proxy looked) is refused,
    // wrapped or not.
    let e = analyse(&op_query(
        "admin.$cmd",
        doc! {"$query": {"isMaster": 1}, "$queryOptions": {"$readPreference": {"mode": "secondary"}}},
    ))
    .unwrap_err();
    assert_eq!(e.code(), ResultCode::WireRefusedField);
    let e = analyse(&op_query(
        "admin.$cmd",
        doc! {"isMaster": 1, "$queryOptions": {"$tenant": "x"}},
    ))
    .unwrap_err();
    assert_eq!(e.code(), ResultCode::WireRefusedField);
}

#[test]
fn op_query_on_a_collection_gets_a_query_failure_reply() {
    let info = op_query("test.coll", doc! {"a": 1}).request_info();
    let bytes = query_failure_reply(&info, 9, 5739101, "Location5739101", "no").unwrap();
    let reply = parse_reply(bytes);
    let r = reply.op_reply().unwrap();
    assert_eq!(r.response_flags & QUERY_FAILURE, QUERY_FAILURE);
    let d = todoc(r.documents().next().unwrap().unwrap());
    assert_eq!(d.get_i32("code").unwrap(), 5739101);
    assert_eq!(d.get_str("$err").unwrap(), "no");
    assert_eq!(reply.header().response_to, 11);
    // Not for an OP_MSG.
    let info = op_msg(doc! {"find": "c", "$db": "test"}).request_info();
    assert!(query_failure_reply(&info, 9, 5739101, "x", "no").is_none());
}

// ---------------------------------------------------------------- issue 10: handshake

#[test]
fn a_hello_carrying_authentication_is_refused() {
    for key in HANDSHAKE_AUTH_KEYS {
        for name in ["hello", "isMaster", "ismaster"] {
            let a = access(doc! {name: 1, *key: "admin.alice", "$db": "admin"});
            let refusal = a.refused.expect("refused");
            assert_eq!(refusal.code, None);
            assert!(
                refusal.reason.contains("connect without credentials"),
                "{}",
                refusal.reason
            );
        }
    }
    // `client` and `compression` alone are stripped, not refused.
    let a = access(
        doc! {"hello": 1, "client": {"driver": {"name": "x"}}, "compression": ["zstd"], "$db": "admin"},
    );
    assert!(a.refused.is_none());
    // Client authentication commands are refused by the analysis, never judged.
    let a = access(doc! {"saslStart": 1, "mechanism": "PLAIN", "$db": "admin"});
    assert!(a.refused.unwrap().reason.contains("saslStart"));
}

// ---------------------------------------------------------------- issue 10: fields

#[test]
fn only_generic_dollar_fields_are_accepted() {
    let a = access(
        doc! {"find": "c", "$db": "test", "$readPreference": {"mode": "primary"},
        "$clusterTime": {"clusterTime": bson::Timestamp{time: 1, increment: 1}}, "lsid": {"id": 1},
        "txnNumber": 1i64, "autocommit": false, "startTransaction": true, "readConcern": {},
        "writeConcern": {"w": 1}, "comment": "x", "maxTimeMS": 5, "apiVersion": "1",
        "apiStrict": true, "apiDeprecationErrors": true},
    );
    assert!(a.refused.is_none());
    for key in [
        "$_requestResumeToken",
        "$_resumeAfter",
        "$_generateV2ResumeTokens",
        "$tenant",
        "$queryOptions",
        "$audit",
        "$anything",
        "expectPrefix",
        "mayBypassWriteBlocking",
    ] {
        assert_eq!(
            access_err(doc! {"find": "c", "$db": "test", key: true}),
            ResultCode::WireRefusedField,
            "{key}"
        );
    }
}

#[test]
fn duplicate_top_level_fields_are_refused() {
    let body = body_with_fields(&[
        ("find", "c".into()),
        ("filter", bson::Bson::Document(doc! {"a": 1})),
        ("filter", bson::Bson::Document(doc! {"b": 1})),
        ("$db", "test".into()),
    ]);
    let m = parse(encode_op_msg(1, 0, 0, &body, &[]).unwrap()).unwrap();
    assert_eq!(
        analyse(&m).unwrap_err().code(),
        ResultCode::WireDuplicateKey
    );
}

#[test]
fn documents_over_16_mib_are_refused() {
    let big = "x".repeat(MAX_BSON_OBJECT_SIZE);
    let bytes = encode_op_msg(
        1,
        0,
        0,
        &raw(&doc! {"find": "c", "filter": {"a": big.as_str()}, "$db": "test"}),
        &[],
    )
    .unwrap();
    assert_eq!(parse(bytes).unwrap_err().code(), ResultCode::WireTooLarge);
    let small = raw(&doc! {"insert": "c", "$db": "test"});
    let huge = raw(&doc! {"a": big.as_str()});
    let bytes = encode_op_msg(1, 0, 0, &small, &[("documents", &[&huge])]).unwrap();
    assert_eq!(parse(bytes).unwrap_err().code(), ResultCode::WireTooLarge);
}

// ---------------------------------------------------------------- issue 10: command table

#[test]
fn the_command_table_has_one_row_per_name_and_the_aliases() {
    let mut names = std::collections::HashSet::new();
    for row in COMMANDS {
        assert!(names.insert(row.name), "{} twice", row.name);
        assert!(
            row.sequences.is_empty() || row.collection || row.name == "bulkWrite",
            "{}",
            row.name
        );
    }
    for alias in [
        "isMaster",
        "ismaster",
        "findAndModify",
        "findandmodify",
        "dbStats",
        "dbstats",
        "buildInfo",
        "buildinfo",
        "mapReduce",
        "mapreduce",
        "dbHash",
        "dbhash",
    ] {
        assert!(command(alias).is_some(), "{alias}");
    }
    let mut stages = std::collections::HashSet::new();
    for (name, _) in STAGES {
        assert!(stages.insert(*name), "{name} twice");
    }
    // The audit's collection comes only from commands whose value is a collection.
    assert_eq!(
        access(doc! {"find": "people", "$db": "test"})
            .collection
            .as_deref(),
        Some("people")
    );
    assert_eq!(
        access(doc! {"createUser": "alice", "pwd": "x", "roles": [], "$db": "test"}).collection,
        None
    );
}

#[test]
fn collections_by_uuid_and_for_all_dbs_documents_are_not_forwarded() {
    let uuid = bson::Binary {
        subtype: bson::spec::BinarySubtype::Uuid,
        bytes: vec![7; 16],
    };
    for name in ["find", "count", "listIndexes", "aggregate", "collMod"] {
        assert_eq!(
            access_err(doc! {name: uuid.clone(), "pipeline": [], "$db": "test"}),
            ResultCode::WireInvalidNamespace,
            "{name}"
        );
    }
    assert_eq!(
        access_err(doc! {"find": {"db": "other", "coll": "secrets"}, "$db": "test"}),
        ResultCode::WireInvalidNamespace
    );
    assert_eq!(
        dbs(
            doc! {"aggregate": 1, "pipeline": [{"$documents": [{"a": 1}]}], "cursor": {}, "$db": "test"}
        ),
        vec!["test"]
    );
    assert!(
        everything(doc! {"usersInfo": {"forAllDBs": true}, "$db": "test"}).contains("forAllDBs")
    );
    assert!(everything(doc! {"rolesInfo": {"forAllDBs": 1}, "$db": "test"}).contains("forAllDBs"));
}
