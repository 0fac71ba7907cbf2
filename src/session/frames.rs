//! Whole wire messages off a byte stream, framed by [`crate::wire::try_frame`] (lengths are
//! checked before anything is reserved).

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::wire::{
    frame_status, try_frame, Frame, FrameStatus, MessageHeader, RequestInfo, HEADER_LEN,
};

/// Bytes read at most per read call while a message is incomplete (a length claim is
/// never reserved at once: a client claiming 48 MB and sending nothing costs nothing).
const READ_CHUNK: usize = 64 * 1024;

/// Why a frame could not be read.
#[derive(Debug)]
pub(crate) enum FrameError {
    /// The peer closed the connection in the middle of a message.
    Truncated,
    /// The length is impossible or over the limit; the stream cannot be resynchronised.
    /// `request` is known when the header had arrived.
    Bad {
        error: crate::Error,
        request: Option<RequestInfo>,
    },
    Io(std::io::Error),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Truncated => {
                f.write_str("the connection closed in the middle of a message")
            }
            FrameError::Bad { error, .. } => f.write_str(error.message()),
            FrameError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// A stream and its read buffer.
pub(crate) struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub(crate) fn new(inner: R, capacity: usize) -> Self {
        FrameReader {
            inner,
            buf: BytesMut::with_capacity(capacity),
        }
    }

    pub(crate) fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    pub(crate) fn into_parts(self) -> (R, BytesMut) {
        (self.inner, self.buf)
    }

    pub(crate) fn from_parts(inner: R, buf: BytesMut) -> Self {
        FrameReader { inner, buf }
    }

    /// Waits until at least one byte of the next message is there. `Ok(false)`: clean end
    /// of stream.
    pub(crate) async fn wait_readable(&mut self) -> std::io::Result<bool> {
        if !self.buf.is_empty() {
            return Ok(true);
        }
        self.buf.reserve(4096);
        Ok(self.inner.read_buf(&mut self.buf).await? > 0)
    }

    /// The next message if it is already whole in the buffer (no read, no timer).
    pub(crate) fn buffered(&mut self, limit: usize) -> Option<Frame> {
        match frame_status(&self.buf, limit) {
            Ok(FrameStatus::Complete(_)) => try_frame(&mut self.buf, limit).ok().flatten(),
            _ => None,
        }
    }

    /// The next whole message. `Ok(None)` when the stream ended cleanly between messages.
    pub(crate) async fn next(&mut self, limit: usize) -> Result<Option<Frame>, FrameError> {
        loop {
            match try_frame(&mut self.buf, limit) {
                Ok(Some(frame)) => {
                    // Give back the memory of a large message once it has been consumed.
                    if self.buf.is_empty() && self.buf.capacity() > 1 << 20 {
                        self.buf = BytesMut::with_capacity(16 * 1024);
                    }
                    return Ok(Some(frame));
                }
                Ok(None) => {}
                Err(error) => {
                    let request = MessageHeader::parse(&self.buf).map(|h| RequestInfo {
                        request_id: h.request_id,
                        op_code: h.op_code,
                        more_to_come: false,
                    });
                    return Err(FrameError::Bad { error, request });
                }
            }
            let want = match frame_status(&self.buf, limit) {
                Ok(FrameStatus::NeedMore(n)) => n.max(HEADER_LEN),
                _ => HEADER_LEN,
            };
            self.buf.reserve(want.min(READ_CHUNK));
            let n = self
                .inner
                .read_buf(&mut self.buf)
                .await
                .map_err(FrameError::Io)?;
            if n == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(FrameError::Truncated)
                };
            }
        }
    }
}
