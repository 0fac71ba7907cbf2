//! MongoDB wire protocol: framing, message parsing, command analysis, replies.
//!
//! The session uses it in this order for every client message:
//!
//! 1. [`try_frame`] takes one length-checked [`Frame`] off the read buffer (the claimed
//!    length is checked against the limit — 48,000,000 until the server's
//!    `maxMessageSizeBytes` is known — before anything is reserved);
//! 2. [`Message::parse_request`] validates the structure and every BSON document
//!    (OP_COMPRESSED is decompressed first, bounded by the limit); legacy and unknown opcodes
//!    are refused with [`crate::ResultCode::WireRefusedOpcode`];
//! 3. [`analyse`] looks the command up in the command table ([`commands`]: one missing is
//!    refused), names its `$db`, its [`CommandClass`] and every database it can reach
//!    ([`CommandAccess`]), flags it `unanalysable` (reaches every database) or `refused`;
//! 4. [`strip_handshake`] rewrites `hello`/`isMaster`; [`Message::bytes`] are forwarded;
//!    a denied or malformed request gets [`unauthorized_reply`] / [`error_reply`] built from
//!    [`Frame::request_info`] or [`Message::request_info`].
//!
//! Nothing here panics on any input, and nothing is allocated in proportion to a claimed
//! size before that size is checked.
//!
//! A `tokio_util::codec::Decoder` is a thin wrapper (the crate does not depend on tokio-util):
//!
//! ```ignore
//! struct WireCodec { limit: usize }
//! impl tokio_util::codec::Decoder for WireCodec {
//!     type Item = docauth::wire::Frame;
//!     type Error = std::io::Error;
//!     fn decode(&mut self, buf: &mut bytes::BytesMut) -> std::io::Result<Option<Frame>> {
//!         match docauth::wire::frame_status(buf, self.limit) {
//!             Ok(docauth::wire::FrameStatus::NeedMore(n)) => { buf.reserve(n); Ok(None) }
//!             Ok(_) => docauth::wire::try_frame(buf, self.limit).map_err(std::io::Error::other),
//!             Err(e) => Err(std::io::Error::other(e)),
//!         }
//!     }
//! }
//! ```

mod access;
mod analyse;
pub mod commands;
mod compress;
mod doc;
mod encode;
mod fields;
mod frame;
mod message;
mod pipeline;
mod views;

pub use access::{
    CommandAccess, CommandClass, Namespace, Refusal, EXTERNAL_DATABASE, FORBIDDEN_DATABASE_CHARS,
    MAX_DATABASE_NAME_LEN, MAX_NAMESPACES, MAX_NAMESPACE_LEN,
};
pub use analyse::{analyse, HANDSHAKE_AUTH_KEYS, HANDSHAKE_COMMANDS, OP_QUERY_WRAPPER_FIELDS};
pub use commands::{
    command, is_connection_command, stage, CommandRow, Reach, StageReach, Targets, COMMANDS, STAGES,
};
pub use compress::{compress_message, Compressor, MAX_ZSTD_WINDOW};
pub use doc::{first_field, unique_field, validate as validate_document, MAX_BSON_DEPTH};
pub use encode::{
    encode_op_msg, encode_op_query, encode_op_reply, error_document, error_reply,
    query_failure_reply, strip_handshake, unauthorized_reply, QUERY_FAILURE,
    STRIPPED_HANDSHAKE_KEYS, UNAUTHORIZED_CODE, UNAUTHORIZED_CODE_NAME,
};
pub use fields::{GENERIC_ARGUMENTS, INTERNAL_GENERIC_ARGUMENTS};
pub use frame::{
    flags, frame_status, min_message_len, op, try_frame, Frame, FrameStatus, MessageHeader,
    RequestInfo, DEFAULT_MAX_MESSAGE_SIZE, HEADER_LEN,
};
pub use message::{Message, MAX_BSON_OBJECT_SIZE, MAX_SEQUENCES};
pub use views::{DocumentSequence, Documents, OpMsg, OpQuery, OpReply, Sequences};

#[cfg(test)]
mod tests;
