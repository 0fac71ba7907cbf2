"""A DocumentDB stand-in: TLS + MONGODB-AWS (verified by moto's STS) in front of a real
MongoDB-compatible server (SecantusDB or FerretDB) that runs without authentication.

What it does, the way Amazon DocumentDB 5.0 does it:

* TLS only (the certificate comes from `certs.py`: a CA bundle in `global-bundle.pem` style).
* Answers `hello` / `isMaster` (OP_MSG, and the legacy OP_QUERY on `admin.$cmd` with an
  OP_REPLY) itself: `maxWireVersion` 13 (5.0), `maxMessageSizeBytes` 48,000,000, no
  compression (a client's `compression` list is ignored), no `speculativeAuthenticate`.
* Before authentication only `hello`, `isMaster`, `ping`, `buildInfo`, `saslStart`,
  `saslContinue` are answered; anything else gets `{ok: 0, code: 13, codeName: "Unauthorized",
  errmsg: "Command <name> requires authentication"}`.
* MONGODB-AWS server side via `saslStart` / `saslContinue` (payloads BinData, a
  `conversationId`, `done`): client-first `{r, p}` -> server-first `{s, h}`; client-final
  `{a, d, t?}` -> the STS GetCallerIdentity is rebuilt and sent to moto (signature checking ON)
  by `tests/peers/verifier.py`'s `MongoDbAwsVerifier` (imported, not copied); the caller ARN
  STS returns is mapped to a user of the `$external` database (assumed-role ARN ->
  `arn:<partition>:iam::<account>:role/<name>`, IAM user ARN as is), which must list
  `MONGODB-AWS` in its mechanisms. Any failure -> `{ok: 0, code: 18, codeName:
  "AuthenticationFailed", errmsg: "Authentication failed."}` (DocumentDB tells the client no
  more; the reason is logged and recorded in `DocDbStandIn.events`).
* After authentication, every message except the handshake/auth commands above is relayed
  byte for byte over one plain-TCP backend connection per client connection (request ids
  are untouched, so replies carry the client's `responseTo`); an OP_MSG with `moreToCome`
  expects no reply (a backend that answers one anyway, like FerretDB 1.x, has that answer
  dropped); a backend reply with `moreToCome` (exhaust) is followed by more replies.
* OP_COMPRESSED (never negotiated) and the removed legacy opcodes close the connection.

Rules of a real mongod it enforces, so that tests see what a real server would refuse:

* **Client metadata only in a connection's first hello** (code 186,
  ClientMetadataCannotBeMutated, "The client metadata document may only be sent in the first
  hello"). mongod finalizes a connection's metadata at its *first* `hello`/`isMaster`, whether
  or not that one carried `client` (`ClientMetadata::tryFinalize` in `CmdHello::run`,
  `src/mongo/db/repl/replication_info.cpp`; `ClientMetadata::setFromMetadata` in
  `src/mongo/rpc/metadata/client_metadata.cpp` raises 186 once finalized; FerretDB issue #2989
  shows the reply). A proxy that said hello upstream itself must not relay its client's
  `client` document.
* **OP_QUERY only for the handshake** (MongoDB 5.1+): a command on `<db>.$cmd` other than
  `hello`/`isMaster`/`ismaster` (and the still "temporarily allowed" `buildinfo`/`buildInfo`,
  `saslStart`, `saslContinue`, `authenticate`, `_isSelf`) gets code 352,
  UnsupportedOpQueryCommand (`checkAllowedOpQueryCommand`,
  `src/mongo/rpc/check_allowed_op_query_cmd.cpp`); an OP_QUERY that is not a command gets an
  OP_REPLY with the QueryFailure flag and `{$err: "OP_QUERY is no longer supported...", code:
  5739101}` (`makeErrorResponseToUnsupportedOpQuery`, `src/mongo/db/service_entry_point_common.cpp`).

Command line (prints one JSON line `{"listening": "127.0.0.1:PORT", ...}` on stdout when ready):

    python -m tests.peers.docdb.standin --listen 127.0.0.1:0 --backend 127.0.0.1:27017 \\
        --tls-cert server.pem --tls-key server-key.pem --users users.json \\
        --sts-endpoint "$DOCAUTH_TEST_STS_ENDPOINT"

`users.json`: `{"users": [{"user": "arn:aws:iam::123456789012:role/teleport-docdb-user",
"db": "$external", "mechanisms": ["MONGODB-AWS"], "roles": [{"role": "root", "db": "admin"}]}]}`
— what `db.createUser` in the guide creates (roles are recorded, not enforced).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import datetime
import itertools
import json
import logging
import os
import re
import signal
import ssl
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterable

import bson

from ..verifier import MongoDbAwsVerifier, VerifierConversation, VerifierProtocolError
from . import wire

log = logging.getLogger("docdb-standin")

MECHANISM = "MONGODB-AWS"
EXTERNAL_DB = "$external"
MAX_WIRE_VERSION = 13  # DocumentDB 5.0 (MongoDB 5.0 API)
DOCDB_VERSION = "5.0.0"

# Commands answered before authentication (everything else: code 13).
PRE_AUTH_COMMANDS = frozenset(
    {"hello", "isMaster", "ismaster", "ping", "buildInfo", "buildinfo", "saslStart", "saslContinue"}
)
# Commands the stand-in always answers itself, also after authentication.
LOCAL_COMMANDS = PRE_AUTH_COMMANDS | {"logout"}

AUTH_FAILED = {"ok": 0.0, "errmsg": "Authentication failed.", "code": 18, "codeName": "AuthenticationFailed"}

HANDSHAKE_COMMANDS = frozenset({"hello", "isMaster", "ismaster"})
# checkAllowedOpQueryCommand (src/mongo/rpc/check_allowed_op_query_cmd.cpp): the handshake,
# plus the commands MongoDB 5.1+ still "temporarily" allows over OP_QUERY for old drivers.
OP_QUERY_COMMANDS = HANDSHAKE_COMMANDS | {
    "_isSelf",
    "authenticate",
    "buildinfo",
    "buildInfo",
    "saslContinue",
    "saslStart",
}


def metadata_mutated() -> dict[str, Any]:
    return error_doc(186, "ClientMetadataCannotBeMutated", "The client metadata document may only be sent in the first hello")


def unsupported_op_query(command: str) -> dict[str, Any]:
    return error_doc(
        352,
        "UnsupportedOpQueryCommand",
        f"Unsupported OP_QUERY command: {command}. The client driver may require an upgrade. "
        "For more details see https://dochub.mongodb.org/core/legacy-opcode-removal",
    )


# makeErrorResponseToUnsupportedOpQuery: an OP_REPLY with QueryFailure and a $err document.
OP_QUERY_REMOVED = {
    "$err": "OP_QUERY is no longer supported. The client driver may require an upgrade.",
    "code": 5739101,
    "ok": 0.0,
}

_ASSUMED_ROLE = re.compile(r"^arn:([a-z0-9-]+):sts::(\d{12}):assumed-role/([^/]+)/[^/]+$")
_IAM_PRINCIPAL = re.compile(r"^arn:([a-z0-9-]+):iam::(\d{12}):(user|role)/.+$")


def principal_for_arn(arn: str) -> str | None:
    """The `$external` user name a GetCallerIdentity ARN stands for (None: not a user/role).

    `arn:aws:sts::123456789012:assumed-role/teleport-docdb-user/session` ->
    `arn:aws:iam::123456789012:role/teleport-docdb-user`; IAM user (and role) ARNs as is.
    """
    m = _ASSUMED_ROLE.match(arn)
    if m:
        partition, account, role = m.groups()
        return f"arn:{partition}:iam::{account}:role/{role}"
    if _IAM_PRINCIPAL.match(arn):
        return arn
    return None


def error_doc(code: int, code_name: str, errmsg: str) -> dict[str, Any]:
    return {"ok": 0.0, "errmsg": errmsg, "code": code, "codeName": code_name}


def unauthorized(command: str) -> dict[str, Any]:
    return error_doc(13, "Unauthorized", f"Command {command} requires authentication")


@dataclasses.dataclass(frozen=True)
class DbUser:
    user: str
    db: str
    mechanisms: tuple[str, ...]
    roles: tuple[dict[str, Any], ...]


class UserDirectory:
    """The cluster's users, as `db.createUser` made them (only `$external` ones matter here)."""

    def __init__(self, users: Iterable[DbUser]):
        self._users = {(u.db, u.user): u for u in users}

    @classmethod
    def from_json(cls, data: Any) -> "UserDirectory":
        items = data.get("users") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise ValueError('users JSON must be a list or {"users": [...]}')
        users = []
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("user"), str):
                raise ValueError(f"users[{i}] must be an object with a string 'user'")
            mechanisms = item.get("mechanisms", [MECHANISM])
            if not isinstance(mechanisms, list) or not all(isinstance(m, str) for m in mechanisms):
                raise ValueError(f"users[{i}].mechanisms must be a list of strings")
            users.append(
                DbUser(
                    user=item["user"],
                    db=item.get("db", EXTERNAL_DB),
                    mechanisms=tuple(mechanisms),
                    roles=tuple(item.get("roles", [{"role": "root", "db": "admin"}])),
                )
            )
        return cls(users)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "UserDirectory":
        return cls.from_json(json.loads(Path(path).read_text()))

    @classmethod
    def of_arns(cls, *arns: str) -> "UserDirectory":
        """Users in `$external` with MONGODB-AWS and root, as the guide's createUser makes them."""
        return cls(DbUser(a, EXTERNAL_DB, (MECHANISM,), ({"role": "root", "db": "admin"},)) for a in arns)

    def lookup(self, db: str, user: str) -> DbUser | None:
        return self._users.get((db, user))

    def __iter__(self):
        return iter(self._users.values())


@dataclasses.dataclass(frozen=True)
class AuthEvent:
    """What happened to one MONGODB-AWS attempt (tests read these; no secrets in them)."""

    connection_id: int
    ok: bool
    principal: str | None  # the $external user (on success) or the mapped ARN (if any)
    reason: str  # on failure: why (what STS said, or which check failed)


@dataclasses.dataclass(frozen=True)
class Received:
    """One message that reached the stand-in on an authenticated connection, as it arrived
    (before the stand-in answered, relayed or refused it)."""

    connection_id: int
    request_id: int
    op_code: int
    raw: bytes


class MessageRecorder:
    """Records every message that reaches the stand-in after authentication: the ground
    truth of "what a proxy in front of it forwarded" (the adversarial corpus reads it).

    `hold_back` (request ids): such a message is recorded but neither relayed to the backend
    nor run by the stand-in; it is answered with `HELD_BACK` (no answer for `moreToCome`, and
    a message the stand-in cannot parse closes the connection as usual). A corpus sends
    messages that a proxy must never forward (`shutdown`, `dropDatabase` of other databases,
    `logout`...): one that gets through anyway is reported from the recording and must not
    take down the backend or the upstream session the rest of the corpus runs on.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._authenticated: list[int] = []
        self._closed: set[int] = set()
        self.hold_back: set[int] = set()

    def add(self, connection_id: int, msg: wire.Message) -> bool:
        """Records `msg`; True when it is to be held back."""
        with self._lock:
            self._received.append(Received(connection_id, msg.request_id, msg.op_code, msg.raw))
            return msg.request_id in self.hold_back

    def authenticated(self, connection_id: int) -> None:
        with self._lock:
            self._authenticated.append(connection_id)

    def closed(self, connection_id: int) -> None:
        with self._lock:
            self._closed.add(connection_id)

    def received(self, since: int = 0) -> list[Received]:
        """Messages recorded so far, from index `since` on (use `len(recorder)` as a mark)."""
        with self._lock:
            return self._received[since:]

    def is_closed(self, connection_id: int) -> bool:
        with self._lock:
            return connection_id in self._closed

    def __len__(self) -> int:
        with self._lock:
            return len(self._received)


# What a held-back message gets (see MessageRecorder): an error no real server sends.
HELD_BACK = {
    "ok": 0.0,
    "errmsg": "DocumentDB stand-in: message recorded and held back (a proxy forwarded it; it was not run)",
    "code": 0,
    "codeName": "HeldBackByStandIn",
}


class _BackendClosed(Exception):
    pass


@dataclasses.dataclass
class _Conversation:
    conversation_id: int
    db: str
    verifier_conversation: VerifierConversation


class _ClientConnection:
    def __init__(self, standin: "DocDbStandIn", reader: asyncio.StreamReader, writer: asyncio.StreamWriter, cid: int):
        self.standin = standin
        self.reader = reader
        self.writer = writer
        self.cid = cid
        self.user: DbUser | None = None
        self.conversation: _Conversation | None = None
        self.conversation_ids = itertools.count(1)
        self.backend: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        # Request ids of relayed moreToCome messages (no reply owed to the client).
        self.unanswered: collections.deque[int] = collections.deque(maxlen=1024)
        # mongod finalizes the client metadata at a connection's first hello.
        self.said_hello = False
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    # -- main loop -------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            while True:
                msg = await wire.read_message(self.reader, self.standin.max_message_size)
                if msg is None:
                    break
                if not await self.handle(msg):
                    break
        except wire.WireError as e:
            log.warning("conn %d (%s): closing: %s", self.cid, self.peer, e)
        except _BackendClosed as e:
            log.warning("conn %d (%s): backend closed the connection: %s", self.cid, self.peer, e)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError) as e:
            log.info("conn %d (%s): connection lost: %s", self.cid, self.peer, e)
        finally:
            await self.close()
            if self.user is not None and self.standin.recorder is not None:
                self.standin.recorder.closed(self.cid)

    async def close(self) -> None:
        for w in ([self.backend[1]] if self.backend else []) + [self.writer]:
            try:
                w.close()
                await asyncio.wait_for(w.wait_closed(), 2)
            except Exception:  # noqa: BLE001 - closing what is already broken
                pass
        self.backend = None

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def handle(self, msg: wire.Message) -> bool:
        """Handle one client message; False closes the connection."""
        recorder = self.standin.recorder
        if self.user is not None and recorder is not None and recorder.add(self.cid, msg):
            return await self.held_back(msg)
        if msg.op_code == wire.OP_COMPRESSED:
            log.warning("conn %d: OP_COMPRESSED but no compression was negotiated; closing", self.cid)
            return False
        if msg.op_code not in (wire.OP_MSG, wire.OP_QUERY):
            log.warning("conn %d: opcode %d is not supported; closing", self.cid, msg.op_code)
            return False
        refusal = self.refused_as_mongod_would(msg)
        if refusal is not None:
            await self.send(refusal)
            return True
        if self.user is not None:
            # Authenticated: relay without decoding, unless it is one of our own commands.
            name = wire.peek_command_name(msg)
            if name is not None and name not in LOCAL_COMMANDS:
                return await self.forward(msg)
        cmd = wire.parse_command(msg)
        if cmd is None:  # OP_QUERY on a collection (legacy find)
            if self.user is None:
                await self.send(wire.op_reply(msg.request_id, unauthorized("find"), self.standin.next_request_id()))
                return True
            return await self.forward(msg)
        if cmd.name in LOCAL_COMMANDS and (self.user is not None or cmd.name in PRE_AUTH_COMMANDS):
            reply = await self.local(cmd)
        elif self.user is None:
            reply = unauthorized(cmd.name)
        else:
            return await self.forward(msg)
        if cmd.kind == wire.OP_MSG and cmd.flags & wire.MSG_MORE_TO_COME:
            return True  # the client asked for no reply
        await self.send(wire.reply_for(cmd, msg.request_id, reply, self.standin.next_request_id()))
        return True

    async def held_back(self, msg: wire.Message) -> bool:
        """Answers a held-back message (see MessageRecorder) without running it."""
        rid = self.standin.next_request_id()
        if msg.op_code == wire.OP_QUERY:
            await self.send(wire.op_reply(msg.request_id, dict(HELD_BACK), rid))
        elif msg.op_code == wire.OP_MSG:
            if not wire.msg_flags(msg) & wire.MSG_MORE_TO_COME:
                await self.send(wire.op_msg_reply(msg.request_id, dict(HELD_BACK), rid))
        else:
            log.warning("conn %d: held back opcode %d; closing", self.cid, msg.op_code)
            return False
        return True

    def refused_as_mongod_would(self, msg: wire.Message) -> bytes | None:
        """The reply of a real mongod to a message it refuses before running it (see the module
        docstring: OP_QUERY only for the handshake; `client` only in the first hello), or None.
        Counts the connection's first hello."""
        if msg.op_code == wire.OP_QUERY:
            cmd = wire.parse_command(msg)
            if cmd is None:
                self.standin.count_refusal("op_query_removed")
                return wire.op_reply(msg.request_id, OP_QUERY_REMOVED, self.standin.next_request_id(), wire.REPLY_QUERY_FAILURE)
            if cmd.name not in OP_QUERY_COMMANDS:
                self.standin.count_refusal("unsupported_op_query")
                return wire.op_reply(msg.request_id, unsupported_op_query(cmd.name), self.standin.next_request_id())
        else:
            if wire.peek_command_name(msg) not in HANDSHAKE_COMMANDS:
                return None
            cmd = wire.parse_command(msg)
        if cmd is None or cmd.name not in HANDSHAKE_COMMANDS:
            return None
        first_hello = not self.said_hello
        self.said_hello = True
        if "client" in cmd.doc and not first_hello:
            self.standin.count_refusal("client_metadata_mutated")
            return wire.reply_for(cmd, msg.request_id, metadata_mutated(), self.standin.next_request_id())
        return None

    # -- locally answered commands ---------------------------------------------------------

    async def local(self, cmd: wire.Command) -> dict[str, Any]:
        name = cmd.name
        if name in ("hello", "isMaster", "ismaster"):
            return self.standin.hello_doc(cmd, self.cid)
        if name == "ping":
            return {"ok": 1.0}
        if name in ("buildInfo", "buildinfo"):
            return self.standin.build_info_doc()
        if name == "saslStart":
            return await self.sasl_start(cmd)
        if name == "saslContinue":
            return await self.sasl_continue(cmd)
        if name == "logout":
            self.user = None
            self.conversation = None
            if self.backend is not None:
                self.backend[1].close()
                self.backend = None
            return {"ok": 1.0}
        return error_doc(59, "CommandNotFound", f"no such command: '{name}'")

    def _fail(self, reason: str, principal: str | None = None) -> dict[str, Any]:
        self.conversation = None
        self.standin.record(AuthEvent(self.cid, False, principal, reason))
        log.info("conn %d: MONGODB-AWS authentication failed: %s", self.cid, reason)
        return dict(AUTH_FAILED)

    async def sasl_start(self, cmd: wire.Command) -> dict[str, Any]:
        mechanism = cmd.doc.get("mechanism")
        if mechanism != MECHANISM:
            return error_doc(
                334,
                "MechanismUnavailable",
                f"Received authentication for mechanism {mechanism} which is not enabled",
            )
        if cmd.db != EXTERNAL_DB:
            return self._fail(f"MONGODB-AWS used with database {cmd.db!r} instead of $external")
        payload = cmd.doc.get("payload")
        if not isinstance(payload, bytes):  # BinData subtype 0 decodes as bytes
            return self._fail("saslStart payload is not BinData (subtype 0)")
        try:
            conv = self.standin.verifier.start(payload)
        except VerifierProtocolError as e:
            return self._fail(f"client-first refused: {e}")
        self.conversation = _Conversation(next(self.conversation_ids), cmd.db, conv)
        return {
            "conversationId": self.conversation.conversation_id,
            "done": False,
            "payload": bson.Binary(conv.server_first, 0),
            "ok": 1.0,
        }

    async def sasl_continue(self, cmd: wire.Command) -> dict[str, Any]:
        conv = self.conversation
        if conv is None or cmd.doc.get("conversationId") != conv.conversation_id:
            return error_doc(17, "ProtocolError", "No SASL session state found")
        self.conversation = None  # one client-final per conversation
        payload = cmd.doc.get("payload")
        if not isinstance(payload, bytes):
            return self._fail("saslContinue payload is not BinData (subtype 0)")
        try:
            answer = await asyncio.to_thread(conv.verifier_conversation.finish, payload)
        except VerifierProtocolError as e:
            return self._fail(f"client-final refused: {e}")
        except OSError as e:
            return self._fail(f"STS unreachable: {e}")
        if not answer.ok or answer.arn is None:
            return self._fail(answer.describe())
        principal = principal_for_arn(answer.arn)
        if principal is None:
            return self._fail(f"STS caller {answer.arn} is neither an IAM user nor a role")
        user = self.standin.users.lookup(EXTERNAL_DB, principal)
        if user is None:
            return self._fail(f"no user {principal} in $external (STS caller {answer.arn})", principal)
        if MECHANISM not in user.mechanisms:
            return self._fail(f"user {principal} in $external is not configured for MONGODB-AWS", principal)
        if self.backend is None:
            try:
                self.backend = await asyncio.wait_for(
                    asyncio.open_connection(*self.standin.backend), self.standin.backend_connect_timeout
                )
            except (OSError, asyncio.TimeoutError) as e:
                log.error("conn %d: backend %s:%d unreachable: %s", self.cid, *self.standin.backend, e)
                return error_doc(6, "HostUnreachable", "Authentication succeeded but the cluster is unavailable")
        self.user = user
        if self.standin.recorder is not None:
            self.standin.recorder.authenticated(self.cid)
        self.standin.record(AuthEvent(self.cid, True, principal, f"STS caller {answer.arn}"))
        log.info("conn %d: authenticated as %s (STS caller %s)", self.cid, principal, answer.arn)
        return {"conversationId": conv.conversation_id, "done": True, "payload": bson.Binary(b"", 0), "ok": 1.0}

    # -- relay -----------------------------------------------------------------------------

    async def forward(self, msg: wire.Message) -> bool:
        if self.backend is None:
            raise _BackendClosed("no backend connection")
        fault = reply_fault(msg)
        if fault is not None:
            return await self.misbehave(msg, fault)
        reader, writer = self.backend
        writer.write(msg.raw)
        await writer.drain()
        if msg.op_code == wire.OP_MSG and wire.msg_flags(msg) & wire.MSG_MORE_TO_COME:
            # Fire-and-forget (w:0): the client expects no reply. FerretDB 1.x ignores the
            # flag and answers anyway; such an answer is dropped below, never relayed.
            self.unanswered.append(msg.request_id)
            return True
        while True:
            reply = await wire.read_message(reader, self.standin.max_message_size)
            if reply is None:
                raise _BackendClosed("EOF while the client waited for a reply")
            if reply.response_to in self.unanswered and reply.response_to != msg.request_id:
                self.unanswered.remove(reply.response_to)
                log.debug("conn %d: dropped the backend's reply to moreToCome request %d", self.cid, reply.response_to)
                continue
            if reply.op_code == wire.OP_COMPRESSED:
                raise _BackendClosed("backend sent OP_COMPRESSED though compression was never negotiated")
            await self.send(reply.raw)
            if not (reply.op_code == wire.OP_MSG and wire.msg_flags(reply) & wire.MSG_MORE_TO_COME):
                return True


    async def misbehave(self, msg: wire.Message, fault: str) -> bool:
        """Answers `msg` the way a broken database would (see REPLY_FAULTS); False closes."""
        reply = wire.op_msg_reply(msg.request_id, {"cursor": {"firstBatch": [], "id": 0, "ns": "test.fault"}, "ok": 1.0}, self.standin.next_request_id())
        log.info("conn %d: fault %s for request %d", self.cid, fault, msg.request_id)
        if fault == "fault_close_mid_reply":
            await self.send(reply[: len(reply) // 2])
            return False
        if fault == "fault_wrong_response_to":
            await self.send(reply[:8] + (msg.request_id + 1000).to_bytes(4, "little", signed=True) + reply[12:])
            return True
        # fault_malformed: a section kind that does not exist
        await self.send(reply[:20] + b"\x09" + reply[21:])
        return True


# A test hook no real server has: a `find` on one of these collections (after authentication)
# is answered by the stand-in itself as a broken database would, so that the e2e tests can
# watch a proxy meet a misbehaving upstream (tests/python/test_c_proxy.py). Every other
# collection name is served normally.
REPLY_FAULTS = ("fault_close_mid_reply", "fault_wrong_response_to", "fault_malformed")


def reply_fault(msg: wire.Message) -> str | None:
    if msg.op_code != wire.OP_MSG or wire.peek_command_name(msg) != "find":
        return None
    collection = wire.parse_op_msg(msg).doc.get("find")
    return collection if collection in REPLY_FAULTS else None


class DocDbStandIn:
    """The stand-in server (asyncio). Use `start()`/`stop()` in a loop, or `StandInThread`."""

    def __init__(
        self,
        *,
        backend: tuple[str, int],
        verifier: MongoDbAwsVerifier,
        users: UserDirectory,
        tls_cert: str | os.PathLike[str],
        tls_key: str | os.PathLike[str],
        host: str = "127.0.0.1",
        port: int = 0,
        replica_set: str | None = None,
        max_message_size: int = wire.MAX_MESSAGE_SIZE,
        backend_connect_timeout: float = 10.0,
    ):
        self.backend = backend
        self.verifier = verifier
        self.users = users
        self.host = host
        self.port = port
        self.replica_set = replica_set
        self.max_message_size = max_message_size
        self.backend_connect_timeout = backend_connect_timeout
        self.ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ssl_context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.ssl_context.load_cert_chain(str(tls_cert), str(tls_key))
        self.events: list[AuthEvent] = []
        self._events_lock = threading.Lock()
        # Set to a MessageRecorder to record what reaches the stand-in after authentication.
        self.recorder: MessageRecorder | None = None
        # How many messages were refused by each mongod rule (see the module docstring).
        self.refusals: collections.Counter[str] = collections.Counter()
        self._request_ids = itertools.count(1)
        self._connection_ids = itertools.count(1)
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.started_at = time.time()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def next_request_id(self) -> int:
        return next(self._request_ids) & 0x7FFFFFFF

    def record(self, event: AuthEvent) -> None:
        with self._events_lock:
            self.events.append(event)

    def count_refusal(self, rule: str) -> None:
        with self._events_lock:
            self.refusals[rule] += 1
        log.info("refused by mongod's rule %s", rule)

    def refusal_counts(self) -> dict[str, int]:
        with self._events_lock:
            return dict(self.refusals)

    def auth_events(self) -> list[AuthEvent]:
        with self._events_lock:
            return list(self.events)

    def hello_doc(self, cmd: wire.Command, connection_id: int) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        if cmd.name == "hello":
            doc["isWritablePrimary"] = True
        else:
            doc["ismaster"] = True
        if cmd.doc.get("helloOk") is True:
            doc["helloOk"] = True
        if self.replica_set:
            doc.update(
                setName=self.replica_set,
                setVersion=1,
                hosts=[self.address],
                primary=self.address,
                me=self.address,
                secondary=False,
            )
        doc.update(
            maxBsonObjectSize=wire.MAX_BSON_OBJECT_SIZE,
            maxMessageSizeBytes=wire.MAX_MESSAGE_SIZE,
            maxWriteBatchSize=100_000,
            localTime=datetime.datetime.now(datetime.timezone.utc),
            logicalSessionTimeoutMinutes=30,
            connectionId=connection_id,
            minWireVersion=0,
            maxWireVersion=MAX_WIRE_VERSION,
            readOnly=False,
            ok=1.0,
        )
        return doc

    def build_info_doc(self) -> dict[str, Any]:
        return {
            "version": DOCDB_VERSION,
            "gitVersion": "1234567890123456789012345678901234567890",
            "versionArray": [5, 0, 0, 0],
            "bits": 64,
            "debug": False,
            "maxBsonObjectSize": wire.MAX_BSON_OBJECT_SIZE,
            "ok": 1.0,
        }

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await _ClientConnection(self, reader, writer, next(self._connection_ids)).run()
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._on_client,
            self.host,
            self.port,
            ssl=self.ssl_context,
            ssl_handshake_timeout=10,
            limit=1 << 20,
        )
        sock = self._server.sockets[0]
        self.host, self.port = sock.getsockname()[:2]
        log.info("DocumentDB stand-in listening on %s (TLS), backend %s:%d", self.address, *self.backend)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.wait(list(self._tasks), timeout=5)
            await self._server.wait_closed()
            self._server = None


class StandInThread:
    """Runs a DocDbStandIn on its own event loop in a daemon thread (for tests and run.py)."""

    def __init__(self, standin: DocDbStandIn):
        self.standin = standin
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="docdb-standin", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.standin.start())
        except BaseException as e:  # noqa: BLE001 - reported to start()
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self.standin.stop())
        # Also end what the server does not track (e.g. TLS handshakes still in progress).
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        if pending:
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()

    def start(self) -> "StandInThread":
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> "StandInThread":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad port in {value!r}") from None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.peers.docdb.standin", description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", type=_host_port, default=("127.0.0.1", 0), help="HOST:PORT (port 0: any free one)")
    p.add_argument("--backend", type=_host_port, required=True, help="HOST:PORT of the MongoDB-compatible server (no auth)")
    p.add_argument("--tls-cert", required=True, help="server certificate PEM (e.g. certs.py's server.pem or legacy.pem)")
    p.add_argument("--tls-key", required=True, help="its private key PEM")
    p.add_argument("--users", required=True, help="users JSON (see module docstring)")
    p.add_argument(
        "--sts-endpoint",
        default=os.environ.get("DOCAUTH_TEST_STS_ENDPOINT"),
        help="moto's http://127.0.0.1:PORT (default: $DOCAUTH_TEST_STS_ENDPOINT)",
    )
    p.add_argument(
        "--sts-host",
        default=os.environ.get("DOCAUTH_TEST_STS_HOST", "sts.amazonaws.com"),
        help="the `h` sent in server-first (default: $DOCAUTH_TEST_STS_HOST or sts.amazonaws.com)",
    )
    p.add_argument("--replica-set", default=None, help="answer hello as a replica set primary with this setName (DocumentDB: rs0)")
    p.add_argument("--ready-file", default=None, help="also write the ready JSON line to this file")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = p.parse_args(argv)
    if not args.sts_endpoint:
        p.error("--sts-endpoint (or DOCAUTH_TEST_STS_ENDPOINT) is required")
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)

    standin = DocDbStandIn(
        backend=args.backend,
        verifier=MongoDbAwsVerifier(args.sts_endpoint, args.sts_host),
        users=UserDirectory.load(args.users),
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        host=args.listen[0],
        port=args.listen[1],
        replica_set=args.replica_set,
    )

    async def serve() -> None:
        await standin.start()
        ready = json.dumps({"listening": standin.address, "host": standin.host, "port": standin.port})
        print(ready, flush=True)
        if args.ready_file:
            Path(args.ready_file).write_text(ready + "\n")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await standin.stop()

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
