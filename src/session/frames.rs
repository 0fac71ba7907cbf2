//! Reading whole wire messages from a byte stream (size-checked) for the session loop.

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

use super::wire_shim::{parse_header, Header, HEADER_LEN};

/// Why a frame could not be read.
#[derive(Debug)]
pub(crate) enum FrameError {
    /// The peer closed the connection in the middle of a message.
    Truncated,
    /// The header's length is impossible or over the limit; the stream cannot be resynchronised.
    BadLength {
        header: Header,
        limit: usize,
    },
    Io(std::io::Error),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Truncated => {
                f.write_str("the connection closed in the middle of a message")
            }
            FrameError::BadLength { header, limit } => write!(
                f,
                "message length {} is outside 17..={limit} bytes",
                header.length
            ),
            FrameError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Waits until at least one byte is readable. `Ok(false)` on a clean end of stream.
pub(crate) async fn wait_readable<R: AsyncBufRead + Unpin>(
    reader: &mut R,
) -> std::io::Result<bool> {
    Ok(!reader.fill_buf().await?.is_empty())
}

/// Reads one whole message into `buf` (replacing its contents). `Ok(None)` when the stream
/// ended cleanly before a new message.
pub(crate) async fn read_frame<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    limit: usize,
) -> Result<Option<Header>, FrameError> {
    if !wait_readable(reader).await.map_err(FrameError::Io)? {
        return Ok(None);
    }
    let mut head = [0u8; HEADER_LEN];
    reader
        .read_exact(&mut head)
        .await
        .map_err(eof_is_truncation)?;
    let header = parse_header(&head).ok_or(FrameError::Truncated)?;
    let len = usize::try_from(header.length).unwrap_or(0);
    if len <= HEADER_LEN || len > limit {
        return Err(FrameError::BadLength { header, limit });
    }
    buf.clear();
    // Give back the memory of an earlier large message before the next one.
    if buf.capacity() > (1 << 20) && len < (1 << 20) {
        buf.shrink_to(len.max(16 * 1024));
    }
    buf.reserve(len);
    buf.extend_from_slice(&head);
    buf.resize(len, 0);
    reader
        .read_exact(&mut buf[HEADER_LEN..])
        .await
        .map_err(eof_is_truncation)?;
    Ok(Some(header))
}

fn eof_is_truncation(e: std::io::Error) -> FrameError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        FrameError::Truncated
    } else {
        FrameError::Io(e)
    }
}
