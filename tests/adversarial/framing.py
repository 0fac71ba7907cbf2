"""Wire framing for the adversarial corpus, written from the protocol references rather than
with a driver, so that the corpus can send what no driver would: duplicate keys, document
sequences for any field, unknown flag bits, legacy opcodes, compressed twins.

References:
- OP_MSG: mongodb/specifications source/message/OP_MSG.md (flagBits, kind 0 body, kind 1
  document sequence `int32 size, cstring identifier, documents`).
- OP_QUERY / OP_REPLY / OP_INSERT / OP_UPDATE / OP_DELETE / OP_GET_MORE / OP_KILL_CURSORS:
  MongoDB manual "Legacy Opcodes" (reference/mongodb-wire-protocol).
- OP_COMPRESSED: mongodb/specifications source/compression/OP_COMPRESSED.md
  (`originalOpcode, uncompressedSize, compressorId, compressedMessage`; the compressed part is
  the original message without its 16-byte header; ids 0 noop, 1 snappy, 2 zlib, 3 zstd).
- snappy raw format: google/snappy format_description.txt (varint length, then elements; a
  literal element has tag bits 00). We write literal-only streams: valid snappy that any
  decoder must accept, and no snappy package is needed.
- zstd: RFC 8878 section 3.1 (frame header, Raw_Block). Raw blocks only, same reason.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any, Iterable

import bson
from bson.raw_bson import RawBSONDocument

# Opcodes and flag bits: the stand-in's (tests/ is on sys.path for the corpus and its runner).
from peers.docdb.wire import (
    HEADER,
    OP_COMPRESSED,
    OP_DELETE,
    OP_GET_MORE,
    OP_INSERT,
    OP_KILL_CURSORS,
    OP_MSG,
    OP_QUERY,
    OP_REPLY,
    OP_UPDATE,
)
from peers.docdb.wire import MSG_CHECKSUM_PRESENT as CHECKSUM_PRESENT
from peers.docdb.wire import MSG_MORE_TO_COME as MORE_TO_COME

COMPRESSORS = {"snappy": 1, "zlib": 2, "zstd": 3}


def element(key: str, value: Any) -> bytes:
    """One BSON element (type byte, key, value) as bson encodes it."""
    return bson.encode({key: value})[4:-1]


def raw_doc(*pairs: tuple[str, Any]) -> RawBSONDocument:
    """A BSON document from (key, value) pairs in order, duplicates allowed (a dict cannot
    hold them; the server's parser and ours may disagree on which one wins)."""
    body = b"".join(element(k, v) for k, v in pairs)
    return RawBSONDocument(struct.pack("<i", len(body) + 5) + body + b"\x00")


def encode(doc: Any) -> bytes:
    if isinstance(doc, RawBSONDocument):
        return bytes(doc.raw)
    return bson.encode(doc)


def frame(op_code: int, request_id: int, payload: bytes, response_to: int = 0) -> bytes:
    return HEADER.pack(16 + len(payload), request_id, response_to, op_code) + payload


def op_msg(request_id: int, body: Any, *, flags: int = 0, sequences: Iterable[tuple[str, list[Any]]] = (), extra_bodies: Iterable[Any] = ()) -> bytes:
    """OP_MSG: the body section first, then each document sequence, then any extra kind-0
    sections (malformed on purpose)."""
    payload = struct.pack("<I", flags) + b"\x00" + encode(body)
    for identifier, docs in sequences:
        inner = identifier.encode() + b"\x00" + b"".join(encode(d) for d in docs)
        payload += b"\x01" + struct.pack("<i", 4 + len(inner)) + inner
    for extra in extra_bodies:
        payload += b"\x00" + encode(extra)
    return frame(OP_MSG, request_id, payload)


def op_query(request_id: int, namespace: str, query: Any, *, flags: int = 0, number_to_return: int = -1) -> bytes:
    payload = struct.pack("<i", flags) + namespace.encode() + b"\x00" + struct.pack("<ii", 0, number_to_return) + encode(query)
    return frame(OP_QUERY, request_id, payload)


def op_insert(request_id: int, namespace: str, docs: list[Any]) -> bytes:
    return frame(OP_INSERT, request_id, struct.pack("<i", 0) + namespace.encode() + b"\x00" + b"".join(encode(d) for d in docs))


def op_update(request_id: int, namespace: str, selector: Any, update: Any) -> bytes:
    return frame(OP_UPDATE, request_id, struct.pack("<i", 0) + namespace.encode() + b"\x00" + struct.pack("<i", 0) + encode(selector) + encode(update))


def op_delete(request_id: int, namespace: str, selector: Any) -> bytes:
    return frame(OP_DELETE, request_id, struct.pack("<i", 0) + namespace.encode() + b"\x00" + struct.pack("<i", 0) + encode(selector))


def op_get_more(request_id: int, namespace: str, cursor_id: int) -> bytes:
    return frame(OP_GET_MORE, request_id, struct.pack("<i", 0) + namespace.encode() + b"\x00" + struct.pack("<iq", 0, cursor_id))


def op_kill_cursors(request_id: int, cursor_ids: list[int]) -> bytes:
    return frame(OP_KILL_CURSORS, request_id, struct.pack("<ii", 0, len(cursor_ids)) + b"".join(struct.pack("<q", c) for c in cursor_ids))


def snappy_literal(data: bytes) -> bytes:
    """A valid raw snappy stream made only of literal elements."""
    out = bytearray()
    n = len(data)
    while True:  # uncompressed length, little-endian base-128 varint
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            break
    for pos in range(0, len(data), 65536):
        chunk = data[pos : pos + 65536]
        m = len(chunk) - 1
        if m < 60:
            out.append(m << 2)
        elif m < 256:
            out += bytes([60 << 2, m])
        else:
            out += bytes([61 << 2]) + struct.pack("<H", m)
        out += chunk
    return bytes(out)


def zstd_raw(data: bytes) -> bytes:
    """A valid zstd frame: single segment, 4-byte content size, Raw_Blocks of <= 128 KiB."""
    out = bytearray(struct.pack("<I", 0xFD2FB528))
    out.append((2 << 6) | (1 << 5))  # Frame_Content_Size_flag 2 (4 bytes), Single_Segment_flag
    out += struct.pack("<I", len(data))
    block = 128 * 1024
    chunks = [data[i : i + block] for i in range(0, len(data), block)] or [b""]
    for i, chunk in enumerate(chunks):
        last = 1 if i == len(chunks) - 1 else 0
        header = last | (0 << 1) | (len(chunk) << 3)  # Block_Type 0 = Raw_Block
        out += struct.pack("<I", header)[:3] + chunk
    return bytes(out)


def zlib_compress(data: bytes) -> bytes:
    return zlib.compress(data)


def struct_pack_compressed(original_opcode: int, uncompressed_size: int, compressor_id: int) -> bytes:
    """The OP_COMPRESSED fields before the compressed bytes."""
    return struct.pack("<iiB", original_opcode, uncompressed_size, compressor_id)


def compress(message: bytes, compressor: str) -> bytes:
    """The OP_COMPRESSED twin of `message` (same request id)."""
    length, request_id, response_to, op_code = HEADER.unpack_from(message)
    original = message[16:]
    if compressor == "snappy":
        data = snappy_literal(original)
    elif compressor == "zlib":
        data = zlib.compress(original)
    elif compressor == "zstd":
        data = zstd_raw(original)
    else:
        raise ValueError(compressor)
    payload = struct_pack_compressed(op_code, len(original), COMPRESSORS[compressor]) + data
    return frame(OP_COMPRESSED, request_id, payload, response_to)


def with_flags(message: bytes, add: int) -> bytes:
    """`message` (an OP_MSG) with flag bits `add` set."""
    (flags,) = struct.unpack_from("<I", message, 16)
    return message[:16] + struct.pack("<I", flags | add) + message[20:]


def op_msg_flags(message: bytes) -> int:
    return struct.unpack_from("<I", message, 16)[0]


def decode_reply(op_code: int, payload: bytes) -> dict[str, Any] | None:
    """The first document of an OP_MSG (body) or OP_REPLY, or None if it cannot be read."""
    try:
        if op_code == OP_MSG:
            (flags,) = struct.unpack_from("<I", payload, 0)
            end = len(payload) - (4 if flags & CHECKSUM_PRESENT else 0)
            pos = 4
            while pos < end:
                kind = payload[pos]
                pos += 1
                (size,) = struct.unpack_from("<i", payload, pos)
                if kind == 0:
                    return bson.decode(payload[pos : pos + size])
                pos += size
            return None
        if op_code == OP_REPLY:
            (size,) = struct.unpack_from("<i", payload, 20)
            return bson.decode(payload[20 : 20 + size])
    except Exception:  # noqa: BLE001 - a reply we cannot read is reported as such
        return None
    return None
