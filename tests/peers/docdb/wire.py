"""The bits of the MongoDB wire protocol the DocumentDB stand-in needs.

Reference: mongodb/specifications source/message/OP_MSG.md and the legacy opcode docs.
Every message starts with a 16-byte little-endian header
`messageLength int32, requestID int32, responseTo int32, opCode int32`; `messageLength`
counts the header. The stand-in reads whole messages (`read_message`), parses just enough of
OP_MSG / OP_QUERY to find the command (`parse_command`), builds its own replies
(`op_msg_reply`, `op_reply`) and relays everything else byte for byte.
"""

from __future__ import annotations

import asyncio
import dataclasses
import struct
from typing import Any

import bson
from bson.codec_options import CodecOptions

OP_REPLY = 1
OP_UPDATE = 2001
OP_INSERT = 2002
OP_QUERY = 2004
OP_GET_MORE = 2005
OP_DELETE = 2006
OP_KILL_CURSORS = 2007
OP_COMPRESSED = 2012
OP_MSG = 2013

# OP_MSG flagBits
MSG_CHECKSUM_PRESENT = 1 << 0
MSG_MORE_TO_COME = 1 << 1
MSG_EXHAUST_ALLOWED = 1 << 16
# Bits 0-15 are "required": a receiver must fail on one it does not know.
MSG_REQUIRED_MASK = 0xFFFF
MSG_KNOWN_REQUIRED = MSG_CHECKSUM_PRESENT | MSG_MORE_TO_COME

# OP_QUERY flags
QUERY_EXHAUST = 1 << 6
# OP_REPLY responseFlags
REPLY_QUERY_FAILURE = 1 << 1
REPLY_AWAIT_CAPABLE = 1 << 3

HEADER = struct.Struct("<iiii")
HEADER_LEN = HEADER.size
# What DocumentDB (and MongoDB) advertise as maxMessageSizeBytes.
MAX_MESSAGE_SIZE = 48_000_000
MAX_BSON_OBJECT_SIZE = 16 * 1024 * 1024

DECODE = CodecOptions(document_class=dict)


class WireError(ValueError):
    """A message the stand-in cannot frame or parse; the connection is closed."""


@dataclasses.dataclass(frozen=True)
class Message:
    request_id: int
    response_to: int
    op_code: int
    raw: bytes  # the whole message, header included

    @property
    def body(self) -> memoryview:
        return memoryview(self.raw)[HEADER_LEN:]


@dataclasses.dataclass
class Command:
    """A command found in an OP_MSG body or an OP_QUERY on `<db>.$cmd`."""

    name: str
    db: str
    doc: dict[str, Any]
    kind: int  # OP_MSG or OP_QUERY
    flags: int  # OP_MSG flagBits or OP_QUERY flags
    has_sequences: bool = False


async def read_message(reader: asyncio.StreamReader, max_size: int = MAX_MESSAGE_SIZE) -> Message | None:
    """Read one whole message; None on a clean EOF before a header. Raises WireError."""
    try:
        header = await reader.readexactly(HEADER_LEN)
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            return None
        raise WireError(f"connection closed inside a message header ({len(e.partial)} bytes)") from None
    length, request_id, response_to, op_code = HEADER.unpack(header)
    if length < HEADER_LEN or length > max_size:
        raise WireError(f"message length {length} outside [{HEADER_LEN}, {max_size}]")
    try:
        rest = await reader.readexactly(length - HEADER_LEN)
    except asyncio.IncompleteReadError as e:
        raise WireError(
            f"connection closed inside a message ({len(e.partial)} of {length - HEADER_LEN} body bytes)"
        ) from None
    return Message(request_id, response_to, op_code, header + rest)


def _bson_doc_at(buf: memoryview, pos: int, end: int) -> tuple[dict[str, Any], int]:
    if end - pos < 5:
        raise WireError("truncated BSON document")
    (size,) = struct.unpack_from("<i", buf, pos)
    if size < 5 or pos + size > end:
        raise WireError(f"BSON document size {size} does not fit the message")
    try:
        doc = bson.decode(bytes(buf[pos : pos + size]), codec_options=DECODE)
    except Exception as e:  # bson raises InvalidBSON and friends
        raise WireError(f"invalid BSON: {e}") from None
    return doc, pos + size


def _cstring_at(buf: memoryview, pos: int, end: int) -> tuple[str, int]:
    nul = bytes(buf[pos:end]).find(b"\x00")
    if nul < 0:
        raise WireError("unterminated cstring")
    try:
        return bytes(buf[pos : pos + nul]).decode("utf-8"), pos + nul + 1
    except UnicodeDecodeError:
        raise WireError("cstring is not UTF-8") from None


def msg_flags(msg: Message) -> int:
    if msg.op_code != OP_MSG or len(msg.raw) < HEADER_LEN + 4:
        return 0
    return struct.unpack_from("<I", msg.raw, HEADER_LEN)[0]


def peek_command_name(msg: Message) -> str | None:
    """The first key of an OP_MSG's body section, without decoding the document (None if the
    message is not a well-formed OP_MSG as far as this look goes)."""
    if msg.op_code != OP_MSG:
        return None
    body = msg.body
    end = len(body)
    if end < 5:
        return None
    (flags,) = struct.unpack_from("<I", body, 0)
    if flags & MSG_CHECKSUM_PRESENT:
        end -= 4
    pos = 4
    while pos < end:
        kind = body[pos]
        pos += 1
        if kind == 1:
            if end - pos < 4:
                return None
            (size,) = struct.unpack_from("<i", body, pos)
            if size < 4:
                return None
            pos += size
            continue
        if kind != 0 or end - pos < 6 or body[pos + 4] == 0:
            return None
        try:
            return _cstring_at(body, pos + 5, end)[0]
        except WireError:
            return None
    return None


def parse_op_msg(msg: Message) -> Command:
    body = msg.body
    end = len(body)
    if end < 5:
        raise WireError("OP_MSG too short")
    (flags,) = struct.unpack_from("<I", body, 0)
    unknown = flags & MSG_REQUIRED_MASK & ~MSG_KNOWN_REQUIRED
    if unknown:
        raise WireError(f"OP_MSG has unknown required flag bits {unknown:#x}")
    if flags & MSG_CHECKSUM_PRESENT:
        end -= 4  # CRC-32C trailer (not verified: loopback tests, and pymongo never sends one)
    pos = 4
    doc: dict[str, Any] | None = None
    sequences = False
    while pos < end:
        kind = body[pos]
        pos += 1
        if kind == 0:
            if doc is not None:
                raise WireError("OP_MSG has two body sections")
            doc, pos = _bson_doc_at(body, pos, end)
        elif kind == 1:
            if end - pos < 4:
                raise WireError("truncated document sequence")
            (size,) = struct.unpack_from("<i", body, pos)
            if size < 4 or pos + size > end:
                raise WireError(f"document sequence size {size} does not fit the message")
            _, _ = _cstring_at(body, pos + 4, pos + size)
            sequences = True
            pos += size
        else:
            raise WireError(f"OP_MSG section kind {kind} is unknown")
    if doc is None:
        raise WireError("OP_MSG has no body section")
    if not doc:
        raise WireError("OP_MSG body is an empty document")
    name = next(iter(doc))
    db = doc.get("$db")
    if not isinstance(db, str) or not db:
        raise WireError("OP_MSG body lacks a string $db")
    return Command(name, db, doc, OP_MSG, flags, sequences)


def parse_op_query(msg: Message) -> tuple[str, int, dict[str, Any]]:
    """OP_QUERY: (fullCollectionName, flags, query document)."""
    body = msg.body
    end = len(body)
    if end < 4:
        raise WireError("OP_QUERY too short")
    (flags,) = struct.unpack_from("<i", body, 0)
    ns, pos = _cstring_at(body, 4, end)
    if end - pos < 8:
        raise WireError("OP_QUERY lacks numberToSkip/numberToReturn")
    pos += 8
    query, pos = _bson_doc_at(body, pos, end)
    return ns, flags, query


def parse_command(msg: Message) -> Command | None:
    """The command of an OP_MSG, or of an OP_QUERY on `<db>.$cmd`; None for other messages."""
    if msg.op_code == OP_MSG:
        return parse_op_msg(msg)
    if msg.op_code == OP_QUERY:
        ns, flags, query = parse_op_query(msg)
        if not ns.endswith(".$cmd"):
            return None
        db = ns[: -len(".$cmd")]
        # Legacy drivers may wrap the command: {$query: {...}, $readPreference: ...}.
        if "$query" in query and isinstance(query["$query"], dict):
            query = query["$query"]
        if not query or not db:
            raise WireError("OP_QUERY command is empty or has no database")
        return Command(next(iter(query)), db, query, OP_QUERY, flags)
    return None


def op_msg_reply(response_to: int, doc: dict[str, Any], request_id: int, flags: int = 0) -> bytes:
    payload = struct.pack("<I", flags) + b"\x00" + bson.encode(doc)
    return HEADER.pack(HEADER_LEN + len(payload), request_id, response_to, OP_MSG) + payload


def op_reply(response_to: int, doc: dict[str, Any], request_id: int, flags: int = REPLY_AWAIT_CAPABLE) -> bytes:
    # responseFlags, cursorID int64 (0), startingFrom int32, numberReturned int32, documents
    payload = struct.pack("<iqii", flags, 0, 0, 1) + bson.encode(doc)
    return HEADER.pack(HEADER_LEN + len(payload), request_id, response_to, OP_REPLY) + payload


def reply_for(cmd: Command, response_to: int, doc: dict[str, Any], request_id: int) -> bytes:
    """A reply of the request's kind (OP_MSG -> OP_MSG, OP_QUERY -> OP_REPLY)."""
    if cmd.kind == OP_QUERY:
        return op_reply(response_to, doc, request_id)
    return op_msg_reply(response_to, doc, request_id)


def decode_reply(msg: Message) -> dict[str, Any]:
    """First document of an OP_MSG or OP_REPLY reply (for the stand-in's own backend checks)."""
    body = msg.body
    if msg.op_code == OP_MSG:
        flags = struct.unpack_from("<I", body, 0)[0]
        end = len(body) - (4 if flags & MSG_CHECKSUM_PRESENT else 0)
        pos = 4
        while pos < end:
            kind = body[pos]
            pos += 1
            if kind == 0:
                return _bson_doc_at(body, pos, end)[0]
            (size,) = struct.unpack_from("<i", body, pos)
            pos += size
        raise WireError("OP_MSG reply has no body section")
    if msg.op_code == OP_REPLY:
        return _bson_doc_at(body, 20, len(body))[0]
    raise WireError(f"unexpected reply opcode {msg.op_code}")
