//! Parsed messages: OP_MSG, OP_QUERY, OP_REPLY, and OP_COMPRESSED (decompressed first).
//!
//! A [`Message`] keeps the message bytes (a cheap `Bytes` handle) and the offsets of its
//! parts; the views ([`OpMsg`], [`OpQuery`], [`OpReply`]) borrow from it. Parsing validates
//! the whole structure and every BSON document before anything is judged or forwarded, and
//! allocates nothing except the decompressed copy of an OP_COMPRESSED message (bounded by the
//! size limit).

use std::ops::Range;

use bson::raw::{RawDocument, RawDocumentBuf};
use bytes::Bytes;
use once_cell::sync::Lazy;

use super::compress::{decompress, Compressor};
use super::doc::{doc_prefix, validate};
use super::frame::{flags, malformed, op, read_i32, Frame, MessageHeader, RequestInfo, HEADER_LEN};
use super::views::{OpMsg, OpQuery, OpReply};
use crate::{Error, Result, ResultCode};

/// Most kind-1 (document sequence) sections accepted in one OP_MSG. Drivers send at most
/// two (`bulkWrite`: `ops` and `nsInfo`); the cap keeps duplicate checks linear.
pub const MAX_SEQUENCES: usize = 16;

/// Largest document a client may send, body or sequence document: the server's
/// `maxBsonObjectSize` (16 MiB, `BSONObjMaxUserSize` in `src/mongo/bson/util/builder.h`).
/// A larger one is refused before it is judged.
pub const MAX_BSON_OBJECT_SIZE: usize = 16 * 1024 * 1024;

fn check_document_size(len: usize, what: &str) -> Result<()> {
    if len > MAX_BSON_OBJECT_SIZE {
        return Err(Error::new(
            ResultCode::WireTooLarge,
            format!("{what} is {len} bytes, over the {MAX_BSON_OBJECT_SIZE}-byte document limit"),
        ));
    }
    Ok(())
}

static EMPTY_DOC: Lazy<RawDocumentBuf> = Lazy::new(RawDocumentBuf::new);

/// How far parsing looks into a message's documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Depth {
    /// Every element of every document, and the document size limit: a client's message is
    /// judged and forwarded only when all of it was understood.
    Everything,
    /// The framing only: sections, document lengths and terminators, not the elements
    /// inside. Enough to relay a database reply in step with its request; the driver reads
    /// the elements itself.
    Framing,
}

/// A parsed wire message.
#[derive(Clone, Debug)]
pub struct Message {
    /// Header of the (decompressed) message; `op_code` is never OP_COMPRESSED.
    header: MessageHeader,
    /// The whole (decompressed) message, header included.
    bytes: Bytes,
    compressor: Option<Compressor>,
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    Msg {
        flag_bits: u32,
        body: Range<usize>,
        /// All sections (kind 0 and kind 1), without the checksum.
        sections: Range<usize>,
        sequences: usize,
    },
    Query {
        flags: i32,
        full_collection_name: Range<usize>,
        number_to_skip: i32,
        number_to_return: i32,
        query: Range<usize>,
        return_fields_selector: Option<Range<usize>>,
    },
    Reply {
        response_flags: i32,
        cursor_id: i64,
        starting_from: i32,
        number_returned: i32,
        documents: Range<usize>,
    },
}

fn read_i64(bytes: &[u8], at: usize) -> Result<i64> {
    bytes
        .get(at..at.saturating_add(8))
        .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
        .ok_or_else(|| malformed("wire message truncated inside a fixed field"))
}

/// A NUL-terminated UTF-8 string starting at `at`; returns its range (without the NUL).
fn read_cstring(bytes: &[u8], at: usize, what: &str) -> Result<Range<usize>> {
    let rest = bytes
        .get(at..)
        .ok_or_else(|| malformed(format!("{what} is missing")))?;
    let nul = rest
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| malformed(format!("{what} is not NUL-terminated")))?;
    std::str::from_utf8(&rest[..nul])
        .map_err(|_| malformed(format!("{what} is not valid UTF-8")))?;
    Ok(at..at + nul)
}

impl Message {
    /// Parses a framed message of any supported opcode (OP_MSG, OP_QUERY, OP_REPLY,
    /// OP_COMPRESSED wrapping one of those). `limit` bounds the decompressed size.
    pub fn parse(frame: Frame, limit: usize) -> Result<Message> {
        let header = *frame.header();
        let bytes = frame.into_bytes();
        match header.op_code {
            op::OP_COMPRESSED => {
                let (inner_header, inner, compressor) = decompress(&header, &bytes, limit)?;
                let mut message = Self::parse_plain(inner_header, inner)?;
                message.compressor = Some(compressor);
                Ok(message)
            }
            _ => Self::parse_plain(header, bytes),
        }
    }

    /// What a reply to this frame needs to know, for a frame that may not parse: for
    /// OP_COMPRESSED, the inner message's opcode and flags (moreToCome) after decompression;
    /// `None` when it cannot be decompressed (its flags cannot be known).
    pub fn request_info_of(frame: &Frame, limit: usize) -> Option<RequestInfo> {
        let header = frame.header();
        if header.op_code != op::OP_COMPRESSED {
            return Some(frame.request_info());
        }
        let (inner_header, inner, _) = decompress(header, frame.bytes(), limit).ok()?;
        let flags = inner
            .get(HEADER_LEN..HEADER_LEN + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        Some(RequestInfo {
            request_id: header.request_id,
            op_code: inner_header.op_code,
            more_to_come: inner_header.op_code == op::OP_MSG
                && flags.is_some_and(|f| f & flags::MORE_TO_COME != 0),
        })
    }

    /// Checks a reply from the database before it is relayed: OP_MSG or OP_REPLY, its flags,
    /// checksum and the framing of every section and document, but not the elements inside
    /// the documents (a pass over every byte of every reply would cost the relay its speed;
    /// the driver decodes them anyway). OP_COMPRESSED is refused: the proxy negotiates
    /// compression away and forwards every request uncompressed, so a compressed reply is not
    /// one a real server sends here.
    pub fn parse_reply_framing(frame: Frame) -> Result<Message> {
        let header = *frame.header();
        let bytes = frame.into_bytes();
        let kind = match header.op_code {
            op::OP_MSG => parse_msg(&bytes, Depth::Framing)?,
            op::OP_REPLY => parse_reply(&bytes, Depth::Framing)?,
            other => {
                return Err(Error::new(
                    ResultCode::WireRefusedOpcode,
                    format!("opcode {other} is not a reply this proxy relays: a database answers with OP_MSG or OP_REPLY, never compressed here (the proxy negotiates compression away)"),
                ))
            }
        };
        Ok(Message {
            header,
            bytes,
            compressor: None,
            kind,
        })
    }

    /// Parses a message a client sent: like [`Message::parse`], but OP_REPLY (a server's
    /// message) is refused too.
    pub fn parse_request(frame: Frame, limit: usize) -> Result<Message> {
        let message = Self::parse(frame, limit)?;
        if message.header.op_code == op::OP_REPLY {
            return Err(refused(op::OP_REPLY));
        }
        Ok(message)
    }

    fn parse_plain(header: MessageHeader, bytes: Bytes) -> Result<Message> {
        let kind = match header.op_code {
            op::OP_MSG => parse_msg(&bytes, Depth::Everything)?,
            op::OP_QUERY => parse_query(&bytes)?,
            op::OP_REPLY => parse_reply(&bytes, Depth::Everything)?,
            other => return Err(refused(other)),
        };
        Ok(Message {
            header,
            bytes,
            compressor: None,
            kind,
        })
    }

    /// The header of the (decompressed) message; `op_code` is OP_MSG, OP_QUERY or OP_REPLY.
    pub fn header(&self) -> &MessageHeader {
        &self.header
    }

    /// The opcode of the (decompressed) message.
    pub fn op_code(&self) -> i32 {
        self.header.op_code
    }

    /// The whole message, header included, uncompressed: these are the bytes to forward
    /// (for a message that arrived compressed, the decompressed form, since compression is
    /// negotiated away upstream).
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The compressor the message arrived with, if it arrived as OP_COMPRESSED.
    pub fn compressor(&self) -> Option<Compressor> {
        self.compressor
    }

    /// What a reply to this message needs to know.
    pub fn request_info(&self) -> RequestInfo {
        RequestInfo {
            request_id: self.header.request_id,
            op_code: self.header.op_code,
            more_to_come: self.op_msg().is_some_and(|m| m.more_to_come()),
        }
    }

    fn doc(&self, range: &Range<usize>) -> &RawDocument {
        // Every range was checked by the parser; the fallback cannot be reached.
        self.bytes
            .get(range.clone())
            .and_then(|b| RawDocument::from_bytes(b).ok())
            .unwrap_or(&EMPTY_DOC)
    }

    fn slice(&self, range: &Range<usize>) -> &[u8] {
        self.bytes.get(range.clone()).unwrap_or_default()
    }

    /// The OP_MSG view, if this is an OP_MSG.
    pub fn op_msg(&self) -> Option<OpMsg<'_>> {
        match &self.kind {
            Kind::Msg {
                flag_bits,
                body,
                sections,
                sequences,
            } => Some(OpMsg {
                flag_bits: *flag_bits,
                body: self.doc(body),
                sections: self.slice(sections),
                sequence_count: *sequences,
            }),
            _ => None,
        }
    }

    /// The OP_QUERY view, if this is an OP_QUERY.
    pub fn op_query(&self) -> Option<OpQuery<'_>> {
        match &self.kind {
            Kind::Query {
                flags,
                full_collection_name,
                number_to_skip,
                number_to_return,
                query,
                return_fields_selector,
            } => Some(OpQuery {
                flags: *flags,
                full_collection_name: std::str::from_utf8(self.slice(full_collection_name))
                    .unwrap_or_default(),
                number_to_skip: *number_to_skip,
                number_to_return: *number_to_return,
                query: self.doc(query),
                return_fields_selector: return_fields_selector.as_ref().map(|r| self.doc(r)),
            }),
            _ => None,
        }
    }

    /// The OP_REPLY view, if this is an OP_REPLY.
    pub fn op_reply(&self) -> Option<OpReply<'_>> {
        match &self.kind {
            Kind::Reply {
                response_flags,
                cursor_id,
                starting_from,
                number_returned,
                documents,
            } => Some(OpReply {
                response_flags: *response_flags,
                cursor_id: *cursor_id,
                starting_from: *starting_from,
                number_returned: *number_returned,
                documents: self.slice(documents),
            }),
            _ => None,
        }
    }

    /// The command document: the OP_MSG body, or the OP_QUERY query (unwrapped from
    /// `$query`/`query` when wrapped); `None` for OP_REPLY.
    pub fn command_document(&self) -> Option<&RawDocument> {
        if let Some(m) = self.op_msg() {
            return Some(m.body());
        }
        self.op_query().map(|q| q.command())
    }

    /// For an OP_REPLY or OP_MSG reply to `hello`/`isMaster`: the server's
    /// `maxMessageSizeBytes`, to use as the framing limit from then on.
    pub fn max_message_size_bytes(&self) -> Option<usize> {
        let doc = match (self.op_msg(), self.op_reply()) {
            (Some(m), _) => m.body(),
            (_, Some(r)) => r.documents().next()?.ok()?,
            _ => return None,
        };
        let value = match doc.get("maxMessageSizeBytes").ok()?? {
            bson::RawBsonRef::Int32(v) => i64::from(v),
            bson::RawBsonRef::Int64(v) => v,
            bson::RawBsonRef::Double(v) if v.fract() == 0.0 => v as i64,
            _ => return None,
        };
        usize::try_from(value).ok().filter(|v| *v >= 1024)
    }
}

pub(crate) fn refused(op_code: i32) -> Error {
    let why = match op_code {
        op::OP_INSERT | op::OP_UPDATE | op::OP_DELETE | op::OP_GET_MORE | op::OP_KILL_CURSORS => {
            "a legacy opcode removed in MongoDB 6.0; use OP_MSG"
        }
        op::OP_REPLY => "a server reply, not a request",
        op::OP_COMPRESSED => "compressed twice",
        _ => "not supported by this proxy",
    };
    Error::new(
        ResultCode::WireRefusedOpcode,
        format!("refused opcode {op_code} ({}): {why}", op::name(op_code)),
    )
}

fn parse_msg(bytes: &[u8], depth: Depth) -> Result<Kind> {
    let flag_bits = read_i32(bytes, HEADER_LEN)? as u32;
    let unknown = flag_bits & flags::REQUIRED_MASK & !flags::KNOWN_REQUIRED;
    if unknown != 0 {
        return Err(Error::new(
            ResultCode::WireUnknownRequiredFlag,
            format!("OP_MSG sets required flag bits {unknown:#06x} that this proxy does not know"),
        ));
    }
    let mut end = bytes.len();
    if flag_bits & flags::CHECKSUM_PRESENT != 0 {
        end = end
            .checked_sub(4)
            .filter(|e| *e >= HEADER_LEN + 4)
            .ok_or_else(|| malformed("OP_MSG checksum flag set but no room for the checksum"))?;
        let expected = read_i32(bytes, end)? as u32;
        let actual = crc32c::crc32c(&bytes[..end]);
        if expected != actual {
            return Err(Error::new(
                ResultCode::WireChecksumMismatch,
                format!(
                    "OP_MSG checksum {expected:#010x} does not match the message ({actual:#010x})"
                ),
            ));
        }
    }
    let sections_start = HEADER_LEN + 4;
    let mut at = sections_start;
    let mut body = None;
    let mut sequences = 0usize;
    while at < end {
        let area = &bytes[..end];
        match area[at] {
            0 => {
                if body.is_some() {
                    return Err(malformed("OP_MSG has more than one body (kind 0) section"));
                }
                let (doc, len) = doc_prefix(&area[at + 1..], "the OP_MSG body")?;
                if depth == Depth::Everything {
                    check_document_size(len, "the OP_MSG body")?;
                    validate(doc, "the OP_MSG body")?;
                }
                body = Some(at + 1..at + 1 + len);
                at += 1 + len;
            }
            1 => {
                sequences += 1;
                if sequences > MAX_SEQUENCES {
                    return Err(malformed(format!(
                        "OP_MSG has more than {MAX_SEQUENCES} document sequences"
                    )));
                }
                let size = read_i32(area, at + 1)?;
                let size = usize::try_from(size)
                    .ok()
                    .filter(|s| *s >= 5)
                    .ok_or_else(|| {
                        malformed(format!("OP_MSG document sequence size {size} is invalid"))
                    })?;
                let seq_end = (at + 1)
                    .checked_add(size)
                    .filter(|e| *e <= end)
                    .ok_or_else(|| malformed("OP_MSG document sequence overruns the message"))?;
                let seq = &area[..seq_end];
                let id = read_cstring(seq, at + 5, "OP_MSG document sequence identifier")?;
                if id.is_empty() {
                    return Err(malformed(
                        "OP_MSG document sequence has an empty identifier",
                    ));
                }
                let mut pos = id.end + 1;
                while pos < seq_end {
                    let (doc, len) = doc_prefix(&seq[pos..], "an OP_MSG sequence document")?;
                    if depth == Depth::Everything {
                        check_document_size(len, "an OP_MSG sequence document")?;
                        validate(doc, "an OP_MSG sequence document")?;
                    }
                    pos += len;
                }
                at = seq_end;
            }
            kind => {
                return Err(malformed(format!(
                    "OP_MSG section kind {kind} is not supported"
                )));
            }
        }
    }
    let body = body.ok_or_else(|| malformed("OP_MSG has no body (kind 0) section"))?;
    Ok(Kind::Msg {
        flag_bits,
        body,
        sections: sections_start..end,
        sequences,
    })
}

fn parse_query(bytes: &[u8]) -> Result<Kind> {
    let flags = read_i32(bytes, HEADER_LEN)?;
    let name = read_cstring(bytes, HEADER_LEN + 4, "OP_QUERY fullCollectionName")?;
    let mut at = name.end + 1;
    let number_to_skip = read_i32(bytes, at)?;
    let number_to_return = read_i32(bytes, at + 4)?;
    at += 8;
    let rest = bytes
        .get(at..)
        .ok_or_else(|| malformed("OP_QUERY has no query document"))?;
    let (query_doc, len) = doc_prefix(rest, "the OP_QUERY query")?;
    check_document_size(len, "the OP_QUERY query")?;
    validate(query_doc, "the OP_QUERY query")?;
    let query = at..at + len;
    at += len;
    let mut return_fields_selector = None;
    if at < bytes.len() {
        let (fields, len) = doc_prefix(&bytes[at..], "the OP_QUERY returnFieldsSelector")?;
        validate(fields, "the OP_QUERY returnFieldsSelector")?;
        return_fields_selector = Some(at..at + len);
        at += len;
    }
    if at != bytes.len() {
        return Err(malformed("OP_QUERY has bytes after its last document"));
    }
    Ok(Kind::Query {
        flags,
        full_collection_name: name,
        number_to_skip,
        number_to_return,
        query,
        return_fields_selector,
    })
}

fn parse_reply(bytes: &[u8], depth: Depth) -> Result<Kind> {
    let response_flags = read_i32(bytes, HEADER_LEN)?;
    let cursor_id = read_i64(bytes, HEADER_LEN + 4)?;
    let starting_from = read_i32(bytes, HEADER_LEN + 12)?;
    let number_returned = read_i32(bytes, HEADER_LEN + 16)?;
    let start = HEADER_LEN + 20;
    let mut at = start;
    let mut count: i64 = 0;
    while at < bytes.len() {
        let (doc, len) = doc_prefix(&bytes[at..], "an OP_REPLY document")?;
        if depth == Depth::Everything {
            validate(doc, "an OP_REPLY document")?;
        }
        at += len;
        count += 1;
    }
    if count != i64::from(number_returned) {
        return Err(malformed(format!(
            "OP_REPLY says numberReturned = {number_returned} but holds {count} documents"
        )));
    }
    Ok(Kind::Reply {
        response_flags,
        cursor_id,
        starting_from,
        number_returned,
        documents: start..bytes.len(),
    })
}
