"""A recording TCP relay between a real driver and the proxy: captures every message the
driver sends (request id, opcode, command, database) and every reply it gets (responseTo,
error code and message), so that the corpus can check ordinary driver traffic end to end:
every request reached the server (the stand-in's MessageRecorder), and no reply is a
proxy denial.

    with CaptureRelay(proxy_host, proxy_port) as relay:
        run the driver against relay.uri ...
    relay.requests, relay.replies
"""

from __future__ import annotations

import dataclasses
import socket
import struct
import threading
from typing import Any

import bson

from . import framing as f


@dataclasses.dataclass(frozen=True)
class Request:
    connection: int
    request_id: int
    op_code: int
    more_to_come: bool
    command: str  # first key of the body ("" when not a command)
    db: str


@dataclasses.dataclass(frozen=True)
class Reply:
    connection: int
    response_to: int
    op_code: int
    doc: dict[str, Any] | None


def _describe_request(op_code: int, payload: bytes) -> tuple[bool, str, str]:
    """(moreToCome, command, $db) of a client message."""
    if op_code == f.OP_MSG:
        (flags,) = struct.unpack_from("<I", payload, 0)
        body = f.decode_reply(op_code, payload) or {}
        name = next(iter(body), "")
        db = body.get("$db", "")
        return bool(flags & f.MORE_TO_COME), name, db if isinstance(db, str) else repr(db)
    if op_code == f.OP_QUERY:
        end = payload.index(b"\x00", 4)
        ns = payload[4:end].decode("utf-8", "replace")
        size = struct.unpack_from("<i", payload, end + 9)[0]
        query = bson.decode(payload[end + 9 : end + 9 + size])
        if "$query" in query and isinstance(query["$query"], dict):
            query = query["$query"]
        return False, next(iter(query), ""), ns.split(".", 1)[0]
    return False, "", ""


class CaptureRelay:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.requests: list[Request] = []
        self.replies: list[Reply] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._next_connection = 0
        self._accept_thread = threading.Thread(target=self._accept, name="capture-accept", daemon=True)

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true&retryWrites=false&serverSelectionTimeoutMS=30000"

    def __enter__(self) -> "CaptureRelay":
        self._accept_thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stopped.set()
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        for t in self._threads:
            t.join(10)
        self._accept_thread.join(10)

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=30)
                upstream.settimeout(None)
            except OSError as e:
                with self._lock:
                    self.errors.append(f"cannot reach the proxy: {e}")
                client.close()
                continue
            with self._lock:
                cid = self._next_connection
                self._next_connection += 1
                self._sockets += [client, upstream]
            for src, dst, is_request in ((client, upstream, True), (upstream, client, False)):
                th = threading.Thread(target=self._pump, args=(cid, src, dst, is_request), daemon=True)
                self._threads.append(th)
                th.start()

    def _pump(self, cid: int, src: socket.socket, dst: socket.socket, is_request: bool) -> None:
        buf = bytearray()
        try:
            while True:
                chunk = src.recv(1 << 20)
                if not chunk:
                    break
                dst.sendall(chunk)
                buf += chunk
                while len(buf) >= 16:
                    length, request_id, response_to, op_code = f.HEADER.unpack_from(buf)
                    if len(buf) < length:
                        break
                    payload = bytes(buf[16:length])
                    del buf[:length]
                    self._record(cid, is_request, request_id, response_to, op_code, payload)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _record(self, cid: int, is_request: bool, request_id: int, response_to: int, op_code: int, payload: bytes) -> None:
        try:
            if is_request:
                more, name, db = _describe_request(op_code, payload)
                item: Any = Request(cid, request_id, op_code, more, name, db)
            else:
                item = Reply(cid, response_to, op_code, f.decode_reply(op_code, payload))
        except Exception as e:  # noqa: BLE001 - reported by the test
            with self._lock:
                self.errors.append(f"cannot read a {'request' if is_request else 'reply'}: {e!r}")
            return
        with self._lock:
            (self.requests if is_request else self.replies).append(item)
