//! Encoders (OP_MSG, OP_QUERY, OP_REPLY), the error reply a denied request gets, and the
//! handshake rewrite that removes `speculativeAuthenticate` and `compression`.

use bson::raw::{RawDocument, RawDocumentBuf};
use bson::rawdoc;
use bytes::{BufMut, Bytes, BytesMut};

use super::analyse::is_handshake;
use super::frame::{
    flags, op, Frame, MessageHeader, RequestInfo, DEFAULT_MAX_MESSAGE_SIZE, HEADER_LEN,
};
use super::message::Message;
use super::views::wrapped_command;
use crate::{Error, Result, ResultCode};

/// MongoDB's error code for an authorization failure.
pub const UNAUTHORIZED_CODE: i32 = 13;
/// Its code name.
pub const UNAUTHORIZED_CODE_NAME: &str = "Unauthorized";

/// OP_REPLY responseFlags bit: the query failed (the document holds `$err`).
pub const QUERY_FAILURE: i32 = 1 << 1;

fn finish(out: BytesMut) -> Result<Vec<u8>> {
    if out.len() > i32::MAX as usize {
        return Err(Error::new(
            ResultCode::WireTooLarge,
            "encoded message over 2 GiB",
        ));
    }
    Ok(out.to_vec())
}

fn header_placeholder(out: &mut BytesMut, request_id: i32, response_to: i32, op_code: i32) {
    MessageHeader {
        length: 0,
        request_id,
        response_to,
        op_code,
    }
    .write(out);
}

/// Encodes an OP_MSG: `body` as the kind-0 section, then each `(identifier, documents)` as a
/// kind-1 section. `flag_bits` must not include `CHECKSUM_PRESENT` (no checksum is written).
pub fn encode_op_msg(
    request_id: i32,
    response_to: i32,
    flag_bits: u32,
    body: &RawDocument,
    sequences: &[(&str, &[&RawDocument])],
) -> Result<Vec<u8>> {
    let mut out = BytesMut::with_capacity(HEADER_LEN + 5 + body.as_bytes().len());
    header_placeholder(&mut out, request_id, response_to, op::OP_MSG);
    out.put_u32_le(flag_bits & !flags::CHECKSUM_PRESENT);
    out.put_u8(0);
    out.put_slice(body.as_bytes());
    for (identifier, docs) in sequences {
        if identifier.is_empty() || identifier.contains('\0') {
            return Err(Error::new(
                ResultCode::InvalidArgument,
                "a document sequence identifier must be non-empty and contain no NUL",
            ));
        }
        out.put_u8(1);
        let at = put_len_placeholder(&mut out);
        out.put_slice(identifier.as_bytes());
        out.put_u8(0);
        for doc in docs.iter() {
            out.put_slice(doc.as_bytes());
        }
        patch_len(&mut out, at, at)?;
    }
    patch_len(&mut out, 0, 0)?;
    finish(out)
}

/// Encodes an OP_QUERY.
pub fn encode_op_query(
    request_id: i32,
    flags: i32,
    full_collection_name: &str,
    number_to_skip: i32,
    number_to_return: i32,
    query: &RawDocument,
    return_fields_selector: Option<&RawDocument>,
) -> Result<Vec<u8>> {
    if full_collection_name.contains('\0') {
        return Err(Error::new(
            ResultCode::InvalidArgument,
            "fullCollectionName must not contain NUL",
        ));
    }
    let mut out = BytesMut::with_capacity(HEADER_LEN + 64 + query.as_bytes().len());
    header_placeholder(&mut out, request_id, 0, op::OP_QUERY);
    out.put_i32_le(flags);
    out.put_slice(full_collection_name.as_bytes());
    out.put_u8(0);
    out.put_i32_le(number_to_skip);
    out.put_i32_le(number_to_return);
    out.put_slice(query.as_bytes());
    if let Some(fields) = return_fields_selector {
        out.put_slice(fields.as_bytes());
    }
    patch_len(&mut out, 0, 0)?;
    finish(out)
}

/// Encodes an OP_REPLY.
pub fn encode_op_reply(
    request_id: i32,
    response_to: i32,
    response_flags: i32,
    cursor_id: i64,
    starting_from: i32,
    documents: &[&RawDocument],
) -> Result<Vec<u8>> {
    let number_returned = i32::try_from(documents.len())
        .map_err(|_| Error::new(ResultCode::InvalidArgument, "too many documents"))?;
    let mut out = BytesMut::with_capacity(HEADER_LEN + 20 + 256);
    header_placeholder(&mut out, request_id, response_to, op::OP_REPLY);
    out.put_i32_le(response_flags);
    out.put_i64_le(cursor_id);
    out.put_i32_le(starting_from);
    out.put_i32_le(number_returned);
    for doc in documents {
        out.put_slice(doc.as_bytes());
    }
    patch_len(&mut out, 0, 0)?;
    finish(out)
}

/// The error document MongoDB servers send: `{ok: 0.0, errmsg, code, codeName}`.
pub fn error_document(code: i32, code_name: &str, errmsg: &str) -> RawDocumentBuf {
    rawdoc! {
        "ok": 0.0,
        "errmsg": errmsg,
        "code": code,
        "codeName": code_name,
    }
}

/// The reply a refused request gets, of the request's own kind, or `None` when the client
/// expects no reply (OP_MSG with `moreToCome`, legacy fire-and-forget writes and
/// OP_KILL_CURSORS): the session then drops the message (and may close the connection).
///
/// - OP_MSG request → OP_MSG `{ok: 0.0, errmsg, code, codeName}`;
/// - OP_QUERY (a `db.$cmd` command) → OP_REPLY with the same document;
/// - OP_GET_MORE (legacy) → OP_REPLY with `QueryFailure` and `{$err, code, ok: 0.0, …}`;
/// - anything else (unknown opcodes) → OP_MSG, which modern clients understand.
///
/// `responseTo` is the request's id; `reply_request_id` is the reply's own id.
pub fn error_reply(
    request: &RequestInfo,
    reply_request_id: i32,
    code: i32,
    code_name: &str,
    errmsg: &str,
) -> Option<Vec<u8>> {
    if request.more_to_come {
        return None;
    }
    let doc = error_document(code, code_name, errmsg);
    let encoded = match request.op_code {
        op::OP_INSERT | op::OP_UPDATE | op::OP_DELETE | op::OP_KILL_CURSORS => return None,
        op::OP_QUERY => encode_op_reply(reply_request_id, request.request_id, 0, 0, 0, &[&doc]),
        op::OP_GET_MORE => query_failure(
            request.request_id,
            reply_request_id,
            code,
            code_name,
            errmsg,
        ),
        _ => encode_op_msg(reply_request_id, request.request_id, 0, &doc, &[]),
    };
    encoded.ok()
}

/// The reply mongod (5.1+) gives a legacy OP_QUERY that is not a command: an OP_REPLY with
/// the QueryFailure flag and `{$err, code, codeName, ok: 0}`. `None` for any other request
/// kind (use [`error_reply`]) and for a moreToCome request.
pub fn query_failure_reply(
    request: &RequestInfo,
    reply_request_id: i32,
    code: i32,
    code_name: &str,
    errmsg: &str,
) -> Option<Vec<u8>> {
    if request.more_to_come || request.op_code != op::OP_QUERY {
        return None;
    }
    query_failure(
        request.request_id,
        reply_request_id,
        code,
        code_name,
        errmsg,
    )
    .ok()
}

/// An OP_REPLY with the QueryFailure flag and `{$err, code, codeName, ok: 0}`: how mongod
/// fails a legacy query or getMore.
fn query_failure(
    response_to: i32,
    reply_request_id: i32,
    code: i32,
    code_name: &str,
    errmsg: &str,
) -> Result<Vec<u8>> {
    let doc = rawdoc! {
        "$err": errmsg,
        "code": code,
        "codeName": code_name,
        "ok": 0.0,
    };
    encode_op_reply(reply_request_id, response_to, QUERY_FAILURE, 0, 0, &[&doc])
}

/// The `Unauthorized` (code 13) reply for a denied request; see [`error_reply`].
pub fn unauthorized_reply(
    request: &RequestInfo,
    reply_request_id: i32,
    errmsg: &str,
) -> Option<Vec<u8>> {
    error_reply(
        request,
        reply_request_id,
        UNAUTHORIZED_CODE,
        UNAUTHORIZED_CODE_NAME,
        errmsg,
    )
}

/// Keys removed from a client's `hello`/`isMaster` before it goes upstream: no client
/// authentication (or its mechanism negotiation for a user of the client's choosing) reaches
/// the server, compression is negotiated away, and the client's `client` metadata is dropped.
///
/// `client` because the upstream connection's first hello was the proxy's own: mongod
/// finalizes a connection's metadata at its first `hello`/`isMaster`, with or without a
/// `client` document (`ClientMetadata::tryFinalize` in `CmdHello::run`,
/// `src/mongo/db/repl/replication_info.cpp`), and refuses any later hello that carries one
/// with code 186, ClientMetadataCannotBeMutated. Relaying the driver's metadata would make
/// every driver's first hello fail on a real server.
pub const STRIPPED_HANDSHAKE_KEYS: &[&str] = &[
    "speculativeAuthenticate",
    "compression",
    "saslSupportedMechs",
    "client",
];

fn without_keys(doc: &RawDocument, keys: &[&str]) -> Result<RawDocumentBuf> {
    let mut out = RawDocumentBuf::new();
    for item in doc.iter() {
        let (k, v) = item.map_err(|e| super::doc::invalid("handshake document", e))?;
        if !keys.contains(&k) {
            out.append_ref(k, v);
        }
    }
    Ok(out)
}

/// For a client `hello`/`isMaster` (OP_MSG or OP_QUERY): the same message without the
/// [`STRIPPED_HANDSHAKE_KEYS`] (`speculativeAuthenticate`, `saslSupportedMechs`,
/// `compression`, `client`). Any other message is returned unchanged
/// (a cheap clone). The rewritten message keeps its requestID, drops any checksum, and is
/// never compressed.
pub fn strip_handshake(message: &Message) -> Result<Message> {
    let Some(command) = message.command_document() else {
        return Ok(message.clone());
    };
    let name = command
        .iter()
        .next()
        .and_then(|r| r.ok())
        .map(|(k, _)| k)
        .unwrap_or_default();
    if !is_handshake(name)
        || !STRIPPED_HANDSHAKE_KEYS
            .iter()
            .any(|k| super::doc::has_key(command, k))
    {
        return Ok(message.clone());
    }
    let header = message.header();
    let bytes = if let Some(msg) = message.op_msg() {
        let body = without_keys(msg.body(), STRIPPED_HANDSHAKE_KEYS)?;
        let mut seqs: Vec<(&str, Vec<&RawDocument>)> = Vec::new();
        for s in msg.sequences() {
            let docs = s.documents().collect::<Result<Vec<_>>>()?;
            seqs.push((s.identifier, docs));
        }
        let seq_refs: Vec<(&str, &[&RawDocument])> =
            seqs.iter().map(|(i, d)| (*i, d.as_slice())).collect();
        encode_op_msg(
            header.request_id,
            header.response_to,
            msg.flag_bits() & !flags::CHECKSUM_PRESENT,
            &body,
            &seq_refs,
        )?
    } else if let Some(q) = message.op_query() {
        let query = match wrapped_command(q.query) {
            Some(inner) => {
                let inner = without_keys(inner, STRIPPED_HANDSHAKE_KEYS)?;
                let mut outer = RawDocumentBuf::new();
                for item in q.query.iter() {
                    let (k, v) = item.map_err(|e| super::doc::invalid("handshake document", e))?;
                    if k == "$query" || k == "query" {
                        outer.append_ref(k, &*inner);
                    } else {
                        outer.append_ref(k, v);
                    }
                }
                outer
            }
            None => without_keys(q.query, STRIPPED_HANDSHAKE_KEYS)?,
        };
        encode_op_query(
            header.request_id,
            q.flags,
            q.full_collection_name,
            q.number_to_skip,
            q.number_to_return,
            &query,
            q.return_fields_selector,
        )?
    } else {
        return Ok(message.clone());
    };
    message_from_vec(bytes, DEFAULT_MAX_MESSAGE_SIZE.max(message.bytes().len()))
}

/// Builds a [`Message`] from freshly encoded bytes (used by the encoders' round trips).
fn message_from_vec(bytes: Vec<u8>, limit: usize) -> Result<Message> {
    let frame = Frame::from_bytes(Bytes::from(bytes), limit)?;
    Message::parse(frame, limit)
}

/// Appends a little-endian i32 length placeholder and returns its position.
fn put_len_placeholder(out: &mut BytesMut) -> usize {
    let at = out.len();
    out.put_i32_le(0);
    at
}

/// Fills a placeholder written by [`put_len_placeholder`] with `out.len() - start`.
fn patch_len(out: &mut BytesMut, at: usize, start: usize) -> Result<()> {
    let len = i32::try_from(out.len() - start)
        .map_err(|_| Error::new(ResultCode::WireTooLarge, "encoded message over 2 GiB"))?;
    if let Some(slot) = out.get_mut(at..at + 4) {
        slot.copy_from_slice(&len.to_le_bytes());
    }
    Ok(())
}
