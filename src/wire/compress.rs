//! OP_COMPRESSED: bounded decompression (snappy, zlib, zstd, noop) and, for tests and
//! benches, compression.

use std::io::Read;

use bytes::{BufMut, Bytes, BytesMut};

use super::frame::{min_message_len, op, MessageHeader, HEADER_LEN};
use crate::{Error, Result, ResultCode};

/// Compressors of the wire protocol (`compressorId`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compressor {
    /// 0: no compression.
    Noop,
    /// 1: snappy (raw format).
    Snappy,
    /// 2: zlib.
    Zlib,
    /// 3: zstd.
    Zstd,
}

impl Compressor {
    /// The `compressorId` byte.
    pub fn id(self) -> u8 {
        match self {
            Compressor::Noop => 0,
            Compressor::Snappy => 1,
            Compressor::Zlib => 2,
            Compressor::Zstd => 3,
        }
    }

    /// The compressor with this id.
    pub fn from_id(id: u8) -> Option<Compressor> {
        match id {
            0 => Some(Compressor::Noop),
            1 => Some(Compressor::Snappy),
            2 => Some(Compressor::Zlib),
            3 => Some(Compressor::Zstd),
            _ => None,
        }
    }
}

/// Largest zstd window accepted when it exceeds the declared size (a frame may legally
/// declare a window larger than its content; the decoder reserves the whole window).
pub const MAX_ZSTD_WINDOW: u64 = 8 << 20;

fn failed(msg: impl Into<String>) -> Error {
    Error::new(ResultCode::WireDecompressionFailed, msg)
}

/// Decompresses an OP_COMPRESSED message (`bytes`, header included) into the original
/// message (header rebuilt with the original opcode and length). The output is allocated
/// only after `uncompressedSize` was checked against `limit`, and decompression stops at
/// exactly that size: a stream that yields more or fewer bytes is refused.
pub(crate) fn decompress(
    header: &MessageHeader,
    bytes: &[u8],
    limit: usize,
) -> Result<(MessageHeader, Bytes, Compressor)> {
    let body = bytes.get(HEADER_LEN..).unwrap_or_default();
    let (Some(orig), Some(size), Some(&id)) = (body.get(0..4), body.get(4..8), body.get(8)) else {
        return Err(failed("OP_COMPRESSED is shorter than its fixed fields"));
    };
    let original_opcode = i32::from_le_bytes([orig[0], orig[1], orig[2], orig[3]]);
    let claimed = i32::from_le_bytes([size[0], size[1], size[2], size[3]]);
    let payload = body.get(9..).unwrap_or_default();
    if original_opcode == op::OP_COMPRESSED {
        return Err(failed("OP_COMPRESSED wraps another OP_COMPRESSED"));
    }
    let compressor = Compressor::from_id(id)
        .ok_or_else(|| failed(format!("OP_COMPRESSED uses unknown compressor id {id}")))?;
    let size = usize::try_from(claimed)
        .map_err(|_| failed(format!("OP_COMPRESSED claims a negative size ({claimed})")))?;
    let total = size
        .checked_add(HEADER_LEN)
        .ok_or_else(|| failed("OP_COMPRESSED size overflows"))?;
    if total > limit {
        return Err(Error::new(
            ResultCode::WireTooLarge,
            format!("OP_COMPRESSED claims {size} uncompressed bytes, over the {limit}-byte limit"),
        ));
    }
    if total < min_message_len(original_opcode) {
        return Err(Error::new(
            ResultCode::WireBadLength,
            format!(
                "OP_COMPRESSED claims {size} uncompressed bytes, too few for {}",
                op::name(original_opcode)
            ),
        ));
    }
    let inner_header = MessageHeader {
        length: i32::try_from(total).map_err(|_| failed("OP_COMPRESSED size overflows"))?,
        request_id: header.request_id,
        response_to: header.response_to,
        op_code: original_opcode,
    };
    let mut out = BytesMut::with_capacity(total);
    inner_header.write(&mut out);
    out.resize(total, 0);
    let dest = &mut out[HEADER_LEN..];
    match compressor {
        Compressor::Noop => {
            if payload.len() != size {
                return Err(failed(format!(
                    "OP_COMPRESSED (noop) carries {} bytes but claims {size}",
                    payload.len()
                )));
            }
            dest.copy_from_slice(payload);
        }
        Compressor::Snappy => {
            let declared = snap::raw::decompress_len(payload)
                .map_err(|e| failed(format!("snappy data is corrupt: {e}")))?;
            if declared != size {
                return Err(failed(format!(
                    "snappy data decompresses to {declared} bytes but OP_COMPRESSED claims {size}"
                )));
            }
            let written = snap::raw::Decoder::new()
                .decompress(payload, dest)
                .map_err(|e| failed(format!("snappy data is corrupt: {e}")))?;
            if written != size {
                return Err(failed("snappy data is shorter than it declares"));
            }
        }
        Compressor::Zlib => {
            // bufread: the decoder consumes the slice itself, so what is left is exactly
            // what follows the zlib stream.
            let mut decoder = flate2::bufread::ZlibDecoder::new(payload);
            read_exact_then_end(&mut decoder, dest, "zlib")?;
            if !decoder.get_ref().is_empty() {
                return Err(failed("zlib stream is followed by extra bytes"));
            }
        }
        Compressor::Zstd => {
            check_zstd_frame(payload, size)?;
            let mut source = payload;
            let mut decoder = ruzstd::decoding::StreamingDecoder::new(&mut source)
                .map_err(|e| failed(format!("zstd data is corrupt: {e}")))?;
            read_exact_then_end(&mut decoder, dest, "zstd")?;
            if let (Some(sent), Some(computed)) = (
                decoder.decoder.get_checksum_from_data(),
                decoder.decoder.get_calculated_checksum(),
            ) {
                if sent != computed {
                    return Err(failed("zstd content checksum does not match"));
                }
            }
            drop(decoder);
            if !source.is_empty() {
                return Err(failed("zstd frame is followed by extra bytes"));
            }
        }
    }
    Ok((inner_header, out.freeze(), compressor))
}

/// Fills `dest` exactly, then checks the stream has nothing more (a decompression bomb or a
/// size lie is refused without ever producing more than `dest.len() + 1` bytes).
fn read_exact_then_end(reader: &mut impl Read, dest: &mut [u8], name: &str) -> Result<()> {
    let size = dest.len();
    let mut filled = 0;
    while filled < size {
        match reader.read(&mut dest[filled..]) {
            Ok(0) => {
                return Err(failed(format!(
                    "{name} data decompresses to {filled} bytes but OP_COMPRESSED claims {size}"
                )))
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(failed(format!("{name} data is corrupt: {e}"))),
        }
    }
    let mut extra = [0u8; 1];
    loop {
        match reader.read(&mut extra) {
            Ok(0) => return Ok(()),
            Ok(_) => {
                return Err(failed(format!(
                    "{name} data decompresses to more than the {size} bytes OP_COMPRESSED claims"
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(failed(format!("{name} data is corrupt: {e}"))),
        }
    }
}

/// Reads the zstd frame header before the decoder does, because the decoder reserves the
/// declared window up front: the window must fit the declared size (or [`MAX_ZSTD_WINDOW`]),
/// no dictionary, and a declared content size must equal `size`.
fn check_zstd_frame(payload: &[u8], size: usize) -> Result<()> {
    let magic = payload
        .get(0..4)
        .map(|m| u32::from_le_bytes([m[0], m[1], m[2], m[3]]))
        .ok_or_else(|| failed("zstd data is shorter than a frame header"))?;
    if magic != 0xFD2F_B528 {
        return Err(failed("zstd data does not start with a zstd frame"));
    }
    let descriptor = *payload
        .get(4)
        .ok_or_else(|| failed("zstd frame header is truncated"))?;
    let fcs_flag = descriptor >> 6;
    let single_segment = descriptor & 0x20 != 0;
    let dict_flag = descriptor & 0x03;
    if dict_flag != 0 {
        return Err(failed("zstd frame needs a dictionary; none is supported"));
    }
    let mut at = 5;
    let mut window: Option<u64> = None;
    if !single_segment {
        let wd = *payload
            .get(at)
            .ok_or_else(|| failed("zstd frame header is truncated"))?;
        let log = 10 + u64::from(wd >> 3);
        let base = 1u64 << log;
        window = Some(base + (base / 8) * u64::from(wd & 7));
        at += 1;
    }
    let fcs_len = match (fcs_flag, single_segment) {
        (0, false) => 0,
        (0, true) => 1,
        (1, _) => 2,
        (2, _) => 4,
        _ => 8,
    };
    let content_size = if fcs_len == 0 {
        None
    } else {
        let field = payload
            .get(at..at + fcs_len)
            .ok_or_else(|| failed("zstd frame header is truncated"))?;
        let mut v = [0u8; 8];
        v[..fcs_len].copy_from_slice(field);
        let mut value = u64::from_le_bytes(v);
        if fcs_len == 2 {
            value += 256;
        }
        Some(value)
    };
    if let Some(cs) = content_size {
        if cs != size as u64 {
            return Err(failed(format!(
                "zstd frame declares {cs} bytes but OP_COMPRESSED claims {size}"
            )));
        }
    }
    let window = window.or(content_size).unwrap_or(0);
    if window > (size as u64).max(MAX_ZSTD_WINDOW) {
        return Err(failed(format!(
            "zstd frame asks for a {window}-byte window for a {size}-byte message"
        )));
    }
    Ok(())
}

/// Wraps a complete uncompressed message (header included) in OP_COMPRESSED with the given
/// compressor, keeping its requestID and responseTo. For tests, benches and a session that
/// chooses to compress.
pub fn compress_message(message: &[u8], compressor: Compressor) -> Result<Vec<u8>> {
    let header = MessageHeader::parse(message)
        .ok_or_else(|| failed("message to compress is shorter than a header"))?;
    let body = &message[HEADER_LEN..];
    let compressed = match compressor {
        Compressor::Noop => body.to_vec(),
        Compressor::Snappy => snap::raw::Encoder::new()
            .compress_vec(body)
            .map_err(|e| failed(format!("snappy compression failed: {e}")))?,
        Compressor::Zlib => {
            use std::io::Write;
            let mut enc =
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(body)
                .and_then(|_| enc.finish())
                .map_err(|e| failed(format!("zlib compression failed: {e}")))?
        }
        Compressor::Zstd => {
            ruzstd::encoding::compress_to_vec(body, ruzstd::encoding::CompressionLevel::Fastest)
        }
    };
    let mut out = BytesMut::with_capacity(HEADER_LEN + 9 + compressed.len());
    let total = i32::try_from(HEADER_LEN + 9 + compressed.len())
        .map_err(|_| failed("compressed message over 2 GiB"))?;
    let size = i32::try_from(body.len()).map_err(|_| failed("message over 2 GiB"))?;
    MessageHeader {
        length: total,
        request_id: header.request_id,
        response_to: header.response_to,
        op_code: op::OP_COMPRESSED,
    }
    .write(&mut out);
    out.put_i32_le(header.op_code);
    out.put_i32_le(size);
    out.put_u8(compressor.id());
    out.put_slice(&compressed);
    Ok(out.to_vec())
}
