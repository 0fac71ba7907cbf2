//! The few wire-protocol operations the session needs, until `src/wire/` (branch `wire`) is
//! merged: message header, OP_MSG/OP_QUERY command analysis (command name, `$db`,
//! collection), error replies of the request's kind, and the stripped client handshake.
//!
//! TEMPORARY: every function here is replaced by its `crate::wire` counterpart when that
//! module lands; the session only calls it through this module so the swap is local.
//! Nothing here panics on client data.

use bson::{Bson, Document, RawDocument};

/// Bytes in a message header: messageLength, requestID, responseTo, opCode.
pub(crate) const HEADER_LEN: usize = 16;
/// The message size limit before the server told us its `maxMessageSizeBytes`.
pub(crate) const DEFAULT_MAX_MESSAGE_SIZE: usize = 48_000_000;

pub(crate) const OP_REPLY: i32 = 1;
pub(crate) const OP_QUERY: i32 = 2004;
pub(crate) const OP_COMPRESSED: i32 = 2012;
pub(crate) const OP_MSG: i32 = 2013;

const MSG_CHECKSUM_PRESENT: u32 = 1;
pub(crate) const MSG_MORE_TO_COME: u32 = 1 << 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub length: i32,
    pub request_id: i32,
    pub response_to: i32,
    pub op_code: i32,
}

pub(crate) fn parse_header(bytes: &[u8]) -> Option<Header> {
    let word = |i: usize| -> Option<i32> {
        Some(i32::from_le_bytes(bytes.get(i..i + 4)?.try_into().ok()?))
    };
    Some(Header {
        length: word(0)?,
        request_id: word(4)?,
        response_to: word(8)?,
        op_code: word(12)?,
    })
}

fn write_header(out: &mut Vec<u8>, request_id: i32, response_to: i32, op_code: i32) {
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&request_id.to_le_bytes());
    out.extend_from_slice(&response_to.to_le_bytes());
    out.extend_from_slice(&op_code.to_le_bytes());
}

fn finish_length(out: &mut [u8]) {
    let len = out.len() as i32;
    out[0..4].copy_from_slice(&len.to_le_bytes());
}

/// An OP_MSG with one body section holding `doc`.
pub(crate) fn op_msg(request_id: i32, response_to: i32, doc: &Document) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    write_header(&mut out, request_id, response_to, OP_MSG);
    out.extend_from_slice(&0u32.to_le_bytes());
    out.push(0);
    // Encoding a Document into a Vec cannot fail for documents we build ourselves.
    let _ = doc.to_writer(&mut out);
    finish_length(&mut out);
    out
}

/// An OP_REPLY with one document.
pub(crate) fn op_reply(request_id: i32, response_to: i32, doc: &Document) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    write_header(&mut out, request_id, response_to, OP_REPLY);
    out.extend_from_slice(&0i32.to_le_bytes()); // responseFlags
    out.extend_from_slice(&0i64.to_le_bytes()); // cursorID
    out.extend_from_slice(&0i32.to_le_bytes()); // startingFrom
    out.extend_from_slice(&1i32.to_le_bytes()); // numberReturned
    let _ = doc.to_writer(&mut out);
    finish_length(&mut out);
    out
}

fn bson_len(bytes: &[u8]) -> Option<usize> {
    let len = i32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?);
    usize::try_from(len)
        .ok()
        .filter(|l| *l >= 5 && *l <= bytes.len())
}

fn cstring(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let end = bytes.iter().position(|b| *b == 0)?;
    Some((std::str::from_utf8(&bytes[..end]).ok()?, &bytes[end + 1..]))
}

/// The body (kind 0) section of an OP_MSG frame, as raw BSON.
pub(crate) fn op_msg_body(frame: &[u8]) -> Result<&RawDocument, String> {
    let flags = frame
        .get(HEADER_LEN..HEADER_LEN + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or("OP_MSG shorter than its flag bits")?;
    let mut end = frame.len();
    if flags & MSG_CHECKSUM_PRESENT != 0 {
        end = end
            .checked_sub(4)
            .ok_or("OP_MSG shorter than its checksum")?;
    }
    let mut rest = frame
        .get(HEADER_LEN + 4..end)
        .ok_or("OP_MSG shorter than its checksum")?;
    let mut body = None;
    while let Some((&kind, after)) = rest.split_first() {
        let len = bson_len(after).ok_or("OP_MSG section length is invalid")?;
        match kind {
            0 => {
                if body.is_some() {
                    return Err("OP_MSG has two body sections".into());
                }
                body = Some(
                    RawDocument::from_bytes(&after[..len])
                        .map_err(|e| format!("OP_MSG body is not BSON: {e}"))?,
                );
            }
            1 => {}
            other => return Err(format!("OP_MSG section kind {other} is unknown")),
        }
        rest = &after[len..];
    }
    body.ok_or_else(|| "OP_MSG has no body section".into())
}

/// The first document of an OP_REPLY frame.
pub(crate) fn op_reply_doc(frame: &[u8]) -> Result<&RawDocument, String> {
    let docs = frame
        .get(HEADER_LEN + 20..)
        .ok_or("OP_REPLY shorter than its fixed fields")?;
    let len = bson_len(docs).ok_or("OP_REPLY document length is invalid")?;
    RawDocument::from_bytes(&docs[..len]).map_err(|e| format!("OP_REPLY document is not BSON: {e}"))
}

/// The kind of request a client message is, which decides the kind of reply it gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RequestKind {
    Msg { more_to_come: bool },
    Query,
}

/// What a client message asks for.
#[derive(Debug)]
pub(crate) struct Analysis {
    pub kind: RequestKind,
    pub command: String,
    pub databases: Vec<String>,
    pub collection: Option<String>,
}

fn command_of(doc: &RawDocument) -> Result<(String, Option<String>), String> {
    let mut iter = doc.iter();
    let (name, value) = match iter.next() {
        Some(Ok((name, value))) => (name.to_string(), value),
        Some(Err(e)) => return Err(format!("command document is not BSON: {e}")),
        None => return Err("empty command document".into()),
    };
    // Walk the whole document so that invalid BSON anywhere is refused here.
    let mut seen_db = false;
    for item in iter {
        let (key, _) = item.map_err(|e| format!("command document is not BSON: {e}"))?;
        if key == "$db" {
            if seen_db {
                return Err("command document has two $db fields".into());
            }
            seen_db = true;
        }
    }
    let collection = value.as_str().map(str::to_string);
    Ok((name, collection))
}

/// Command name, databases and collection of a client OP_MSG or OP_QUERY command.
/// Other opcodes are errors (the caller closes the connection).
pub(crate) fn analyse(frame: &[u8]) -> Result<Analysis, String> {
    let header = parse_header(frame).ok_or("message shorter than its header")?;
    match header.op_code {
        OP_MSG => {
            let flags = frame
                .get(HEADER_LEN..HEADER_LEN + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_le_bytes)
                .unwrap_or(0);
            let body = op_msg_body(frame)?;
            let (command, collection) = command_of(body)?;
            let db = body
                .get_str("$db")
                .map_err(|_| format!("command {command} has no string $db"))?;
            Ok(Analysis {
                kind: RequestKind::Msg {
                    more_to_come: flags & MSG_MORE_TO_COME != 0,
                },
                command,
                databases: vec![db.to_string()],
                collection,
            })
        }
        OP_QUERY => {
            let rest = frame.get(HEADER_LEN + 4..).ok_or("OP_QUERY too short")?;
            let (namespace, rest) = cstring(rest).ok_or("OP_QUERY namespace is invalid")?;
            let (db, coll) = namespace
                .split_once('.')
                .ok_or("OP_QUERY namespace has no collection")?;
            if coll != "$cmd" {
                return Err(format!(
                    "legacy OP_QUERY on {namespace} is not supported; use a driver that speaks OP_MSG"
                ));
            }
            let docs = rest.get(8..).ok_or("OP_QUERY too short")?;
            let len = bson_len(docs).ok_or("OP_QUERY query length is invalid")?;
            let mut query = RawDocument::from_bytes(&docs[..len])
                .map_err(|e| format!("OP_QUERY query is not BSON: {e}"))?;
            if let Ok(inner) = query.get_document("$query") {
                query = inner;
            }
            let (command, collection) = command_of(query)?;
            Ok(Analysis {
                kind: RequestKind::Query,
                command,
                databases: vec![db.to_string()],
                collection,
            })
        }
        OP_COMPRESSED => {
            Err("compressed messages are not accepted (compression was not negotiated)".into())
        }
        other => Err(format!("opcode {other} is not supported")),
    }
}

/// A MongoDB error reply of the request's kind.
pub(crate) fn error_reply(
    kind: RequestKind,
    request_id: i32,
    response_to: i32,
    code: i32,
    code_name: &str,
    errmsg: &str,
) -> Vec<u8> {
    let mut doc = Document::new();
    doc.insert("ok", 0.0);
    doc.insert("errmsg", errmsg);
    doc.insert("code", code);
    doc.insert("codeName", code_name);
    match kind {
        RequestKind::Msg { .. } => op_msg(request_id, response_to, &doc),
        RequestKind::Query => {
            doc.insert("$err", errmsg);
            op_reply(request_id, response_to, &doc)
        }
    }
}

const HANDSHAKE_FIELDS: [&str; 3] = [
    "speculativeAuthenticate",
    "compression",
    "saslSupportedMechs",
];

/// The client's hello/isMaster without `speculativeAuthenticate`, `compression` and
/// `saslSupportedMechs`, re-encoded with the same requestID; `None` when nothing had to go.
pub(crate) fn strip_handshake(frame: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let header = parse_header(frame).ok_or("message shorter than its header")?;
    let (doc, namespace) = match header.op_code {
        OP_MSG => (op_msg_body(frame)?, None),
        OP_QUERY => {
            let rest = frame.get(HEADER_LEN + 4..).ok_or("OP_QUERY too short")?;
            let (namespace, rest) = cstring(rest).ok_or("OP_QUERY namespace is invalid")?;
            let docs = rest.get(8..).ok_or("OP_QUERY too short")?;
            let len = bson_len(docs).ok_or("OP_QUERY query length is invalid")?;
            let query = RawDocument::from_bytes(&docs[..len])
                .map_err(|e| format!("OP_QUERY query is not BSON: {e}"))?;
            (query, Some(namespace))
        }
        _ => return Ok(None),
    };
    let needs = doc
        .iter()
        .filter_map(|r| r.ok())
        .any(|(k, _)| HANDSHAKE_FIELDS.contains(&k));
    if !needs {
        return Ok(None);
    }
    let mut owned: Document = doc
        .try_into()
        .map_err(|e: bson::raw::Error| format!("handshake is not BSON: {e}"))?;
    for field in HANDSHAKE_FIELDS {
        owned.remove(field);
    }
    if let Some(Bson::Document(inner)) = owned.get_mut("$query") {
        for field in HANDSHAKE_FIELDS {
            inner.remove(field);
        }
    }
    Ok(Some(match namespace {
        None => op_msg(header.request_id, header.response_to, &owned),
        Some(ns) => {
            let mut out = Vec::with_capacity(frame.len());
            write_header(&mut out, header.request_id, header.response_to, OP_QUERY);
            out.extend_from_slice(&frame[HEADER_LEN..HEADER_LEN + 4]);
            out.extend_from_slice(ns.as_bytes());
            out.push(0);
            let after_ns = HEADER_LEN + 4 + ns.len() + 1;
            out.extend_from_slice(&frame[after_ns..after_ns + 8]);
            let _ = owned.to_writer(&mut out);
            finish_length(&mut out);
            out
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn op_msg_round_trips_and_is_analysed() {
        let frame = op_msg(7, 0, &doc! {"find": "c", "filter": {"x": 1}, "$db": "test"});
        let a = analyse(&frame).unwrap();
        assert_eq!(a.command, "find");
        assert_eq!(a.databases, vec!["test"]);
        assert_eq!(a.collection.as_deref(), Some("c"));
        let h = parse_header(&frame).unwrap();
        assert_eq!(
            (h.length as usize, h.request_id, h.op_code),
            (frame.len(), 7, OP_MSG)
        );
    }

    #[test]
    fn handshake_fields_are_stripped() {
        let frame = op_msg(
            3,
            0,
            &doc! {"hello": 1, "speculativeAuthenticate": {"x": 1}, "compression": ["zlib"], "$db": "admin"},
        );
        let stripped = strip_handshake(&frame).unwrap().unwrap();
        let body = op_msg_body(&stripped).unwrap();
        assert!(body.get("speculativeAuthenticate").unwrap().is_none());
        assert!(body.get("compression").unwrap().is_none());
        assert_eq!(parse_header(&stripped).unwrap().request_id, 3);
        let plain = op_msg(4, 0, &doc! {"hello": 1, "$db": "admin"});
        assert!(strip_handshake(&plain).unwrap().is_none());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for len in 0..40 {
            let mut frame = op_msg(1, 0, &doc! {"ping": 1, "$db": "admin"});
            frame.truncate(len.min(frame.len()));
            let _ = analyse(&frame);
            let _ = strip_handshake(&frame);
        }
        let mut frame = op_msg(1, 0, &doc! {"ping": 1, "$db": "admin"});
        frame[21] = 0xff; // document length
        assert!(analyse(&frame).is_err());
    }
}
