//! Framing: the 16-byte header, length checks before any allocation, incremental reads.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::{Error, Result, ResultCode};

/// Length of the standard message header.
pub const HEADER_LEN: usize = 16;

/// The size limit before the server's `maxMessageSizeBytes` is known (MongoDB's default).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 48_000_000;

/// OP_MSG flag bits.
pub mod flags {
    /// The message ends with a CRC-32C checksum.
    pub const CHECKSUM_PRESENT: u32 = 1 << 0;
    /// Another message follows without waiting for a reply (the receiver sends none).
    pub const MORE_TO_COME: u32 = 1 << 1;
    /// The client accepts several replies to this request (exhaust cursors).
    pub const EXHAUST_ALLOWED: u32 = 1 << 16;
    /// Bits 0–15 must be understood; an unknown one is an error.
    pub const REQUIRED_MASK: u32 = 0xFFFF;
    /// The required bits this library knows.
    pub const KNOWN_REQUIRED: u32 = CHECKSUM_PRESENT | MORE_TO_COME;
}

/// Wire opcodes (MongoDB wire protocol). Only `OP_MSG`, `OP_QUERY`, `OP_REPLY` and
/// `OP_COMPRESSED` are parsed; every other one is refused.
pub mod op {
    /// Reply to OP_QUERY / OP_GET_MORE (legacy).
    pub const OP_REPLY: i32 = 1;
    /// Legacy update (removed in MongoDB 6.0).
    pub const OP_UPDATE: i32 = 2001;
    /// Legacy insert (removed in MongoDB 6.0).
    pub const OP_INSERT: i32 = 2002;
    /// Reserved, formerly OP_GET_BY_OID.
    pub const OP_RESERVED: i32 = 2003;
    /// Legacy query; still used for the first `hello`/`isMaster` and `db.$cmd` commands.
    pub const OP_QUERY: i32 = 2004;
    /// Legacy get-more (removed in MongoDB 6.0).
    pub const OP_GET_MORE: i32 = 2005;
    /// Legacy delete (removed in MongoDB 6.0).
    pub const OP_DELETE: i32 = 2006;
    /// Legacy kill-cursors (removed in MongoDB 6.0).
    pub const OP_KILL_CURSORS: i32 = 2007;
    /// A compressed message wrapping another opcode.
    pub const OP_COMPRESSED: i32 = 2012;
    /// The modern extensible message.
    pub const OP_MSG: i32 = 2013;

    /// A readable name for an opcode, for error messages and audit.
    pub fn name(op_code: i32) -> &'static str {
        match op_code {
            OP_REPLY => "OP_REPLY",
            OP_UPDATE => "OP_UPDATE",
            OP_INSERT => "OP_INSERT",
            OP_RESERVED => "OP_RESERVED",
            OP_QUERY => "OP_QUERY",
            OP_GET_MORE => "OP_GET_MORE",
            OP_DELETE => "OP_DELETE",
            OP_KILL_CURSORS => "OP_KILL_CURSORS",
            OP_COMPRESSED => "OP_COMPRESSED",
            OP_MSG => "OP_MSG",
            _ => "unknown opcode",
        }
    }
}

/// The standard header that starts every wire message (all fields little-endian int32).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MessageHeader {
    /// Total message length in bytes, header included.
    pub length: i32,
    /// The sender's identifier for this message.
    pub request_id: i32,
    /// For replies, the `request_id` of the request; 0 for requests.
    pub response_to: i32,
    /// The opcode (see [`op`]).
    pub op_code: i32,
}

impl MessageHeader {
    /// Reads a header from the first 16 bytes of `bytes`; `None` if fewer are available.
    pub fn parse(bytes: &[u8]) -> Option<MessageHeader> {
        let mut b = bytes.get(..HEADER_LEN)?;
        Some(MessageHeader {
            length: b.get_i32_le(),
            request_id: b.get_i32_le(),
            response_to: b.get_i32_le(),
            op_code: b.get_i32_le(),
        })
    }

    /// Appends the 16 header bytes to `out`.
    pub fn write(&self, out: &mut impl BufMut) {
        out.put_i32_le(self.length);
        out.put_i32_le(self.request_id);
        out.put_i32_le(self.response_to);
        out.put_i32_le(self.op_code);
    }
}

/// The smallest total length (header included) a message with this opcode can have.
/// Refused and unknown opcodes only need a header: they are refused after framing.
pub fn min_message_len(op_code: i32) -> usize {
    HEADER_LEN
        + match op_code {
            // flagBits, one kind-0 section with an empty document.
            op::OP_MSG => 4 + 1 + 5,
            // flags, cstring (at least "\0"), skip, return, empty document.
            op::OP_QUERY => 4 + 1 + 4 + 4 + 5,
            // responseFlags, cursorID, startingFrom, numberReturned.
            op::OP_REPLY => 4 + 8 + 4 + 4,
            // originalOpcode, uncompressedSize, compressorId.
            op::OP_COMPRESSED => 4 + 4 + 1,
            _ => 0,
        }
}

/// What an incremental read found at the front of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameStatus {
    /// A whole message of this many bytes is at the front of the buffer.
    Complete(usize),
    /// This many more bytes are needed before the message is complete (or, with fewer than
    /// 16 bytes, before the header can be checked).
    NeedMore(usize),
}

/// Checks the message at the front of `buf` without copying or allocating.
///
/// The claimed length is validated (at least 16 plus the opcode's minimum body, at most
/// `limit`) as soon as enough bytes of the header have arrived, so a caller can reserve
/// `NeedMore(n)` bytes safely.
pub fn frame_status(buf: &[u8], limit: usize) -> Result<FrameStatus> {
    if buf.len() < 4 {
        return Ok(FrameStatus::NeedMore(4 - buf.len()));
    }
    let claimed = i32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let length = check_length(claimed, None, limit)?;
    if buf.len() < HEADER_LEN {
        return Ok(FrameStatus::NeedMore(HEADER_LEN - buf.len()));
    }
    let op_code = i32::from_le_bytes([buf[12], buf[13], buf[14], buf[15]]);
    check_length(claimed, Some(op_code), limit)?;
    if buf.len() < length {
        Ok(FrameStatus::NeedMore(length - buf.len()))
    } else {
        Ok(FrameStatus::Complete(length))
    }
}

fn check_length(claimed: i32, op_code: Option<i32>, limit: usize) -> Result<usize> {
    let min = op_code.map_or(HEADER_LEN, min_message_len);
    let Ok(length) = usize::try_from(claimed) else {
        return Err(Error::new(
            ResultCode::WireBadLength,
            format!("wire message claims a negative length ({claimed})"),
        ));
    };
    if length < min {
        let what = op_code.map_or("any message", op::name);
        return Err(Error::new(
            ResultCode::WireBadLength,
            format!("wire message claims {length} bytes; {what} needs at least {min}"),
        ));
    }
    if length > limit {
        return Err(Error::new(
            ResultCode::WireTooLarge,
            format!("wire message claims {length} bytes, over the {limit}-byte limit"),
        ));
    }
    Ok(length)
}

/// One complete, length-checked wire message: its header and all its bytes (header
/// included), not yet parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    header: MessageHeader,
    bytes: Bytes,
}

impl Frame {
    /// Checks a complete message held in `bytes` (exactly one message, header included).
    pub fn from_bytes(bytes: Bytes, limit: usize) -> Result<Frame> {
        match frame_status(&bytes, limit)? {
            FrameStatus::Complete(len) if len == bytes.len() => {}
            FrameStatus::Complete(len) => {
                return Err(Error::new(
                    ResultCode::WireMalformed,
                    format!(
                        "wire message claims {len} bytes but {} were given",
                        bytes.len()
                    ),
                ))
            }
            FrameStatus::NeedMore(n) => {
                return Err(Error::new(
                    ResultCode::WireMalformed,
                    format!("wire message is truncated: {n} more bytes were expected"),
                ))
            }
        }
        let header = MessageHeader::parse(&bytes).ok_or_else(|| {
            Error::new(
                ResultCode::WireMalformed,
                "wire message shorter than its header",
            )
        })?;
        Ok(Frame { header, bytes })
    }

    /// The message header.
    pub fn header(&self) -> &MessageHeader {
        &self.header
    }

    /// All bytes of the message, header included, exactly as received.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Consumes the frame, giving its bytes back.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// What a reply to this message needs to know, read from the header and, for OP_MSG
    /// and OP_COMPRESSED, the first bytes after it. Works on messages that fail to parse.
    pub fn request_info(&self) -> RequestInfo {
        let body = self.bytes.get(HEADER_LEN..).unwrap_or_default();
        let read_i32 = |at: usize| {
            body.get(at..at + 4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let (op_code, flags) = match self.header.op_code {
            op::OP_COMPRESSED => (read_i32(0).unwrap_or(op::OP_COMPRESSED), None),
            op::OP_MSG => (op::OP_MSG, read_i32(0)),
            other => (other, None),
        };
        RequestInfo {
            request_id: self.header.request_id,
            op_code,
            more_to_come: flags.is_some_and(|f| f & flags::MORE_TO_COME as i32 != 0),
        }
    }
}

/// The facts about a request that shape its reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestInfo {
    /// The request's `requestID`; the reply's `responseTo`.
    pub request_id: i32,
    /// The request's opcode (for OP_COMPRESSED, the compressed message's original opcode,
    /// when it could be read).
    pub op_code: i32,
    /// OP_MSG `moreToCome`: the client expects no reply.
    pub more_to_come: bool,
}

/// Takes one complete message off the front of `buf` if it is there.
///
/// `Ok(None)`: more bytes are needed ([`frame_status`] says how many; the claimed length has
/// already been checked against `limit`, so reserving it is safe). `Err`: the stream is
/// broken (bad or oversized length); the connection cannot be resynchronised.
pub fn try_frame(buf: &mut BytesMut, limit: usize) -> Result<Option<Frame>> {
    match frame_status(buf, limit)? {
        FrameStatus::NeedMore(_) => Ok(None),
        FrameStatus::Complete(len) => {
            let bytes = buf.split_to(len).freeze();
            let header = MessageHeader::parse(&bytes).ok_or_else(|| {
                Error::new(
                    ResultCode::WireMalformed,
                    "wire message shorter than its header",
                )
            })?;
            Ok(Some(Frame { header, bytes }))
        }
    }
}

pub(super) fn malformed(msg: impl Into<String>) -> Error {
    Error::new(ResultCode::WireMalformed, msg)
}

pub(super) fn read_i32(bytes: &[u8], at: usize) -> Result<i32> {
    bytes
        .get(at..at.saturating_add(4))
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| malformed("wire message truncated inside a fixed field"))
}
