"""Proxied sessions: a host-owned `Runtime` and the `Session`s it runs.

    with docauth.Runtime(threads=0) as runtime:
        conn, addr = listener.accept()
        session = runtime.start_session(
            conn,                                   # handed over: the library owns it now
            {"identity": "alice", "database": "docdb", "db_user": "teleport-docdb-user",
             "db_name": "test", "client_addr": f"{addr[0]}:{addr[1]}"},
            engine, provider,
            on_audit=lambda event: print(json.dumps(event), flush=True),
        )
        stats = session.wait()                      # raises the error that ended it

The library connects to the database over TLS, authenticates upstream with MONGODB-AWS
(credentials from the provider), judges every client message with the engine and relays.
Audit events reach `on_audit` as dicts, on the runtime's single audit dispatcher thread.
"""

from __future__ import annotations

import atexit
import ctypes
import itertools
import json
import logging
import socket
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Union

from . import _ffi
from ._handle import OwnedHandle
from .aws import _c_string
from .errors import CalledFromAuditCallbackError, InvalidArgumentError
from .policy import PolicyEngine
from .provider import CredentialsProvider

__all__ = ["AuditCallback", "Runtime", "Session", "SessionStats"]

_log = logging.getLogger("docauth")

#: An audit consumer: receives each event as a dict (the library's JSON object, parsed).
AuditCallback = Callable[[Dict[str, Any]], None]


@dataclass(frozen=True)
class SessionStats:
    """Counters of a finished session (`docauth_session_stats`)."""

    bytes_from_client: int
    bytes_to_client: int
    messages_from_client: int
    messages_to_client: int
    #: client messages refused: policy denials, unparsable messages, authentication commands
    messages_denied: int
    duration_ms: int
    #: audit events of this session dropped because the callback was too slow
    audit_events_dropped: int


# ---------------------------------------------------------------------------------------
# Audit callbacks. ONE pair of C function pointers for the whole process, created once and
# never collected: the library may call them on its dispatcher thread at any time until it
# calls `user_data_free`. `user_data` is a key into `_audit_targets`, which holds the
# session's Python callable until the library releases it (user_data_free), so the
# callable lives exactly as long as the library may call it.


class _AuditTarget:
    __slots__ = ("callback", "errors", "first_error")

    def __init__(self, callback: AuditCallback) -> None:
        self.callback = callback
        self.errors = 0
        self.first_error: Optional[BaseException] = None


_audit_targets: dict[int, _AuditTarget] = {}
_audit_lock = threading.Lock()
_audit_keys = itertools.count(1)
_on_dispatcher = threading.local()  # .active: inside an audit callback (the dispatcher thread)


def _audit_trampoline(user_data: Optional[int], event_json: Optional[bytes], length: int) -> None:
    # Nothing may propagate from here into C: every exception is caught, counted on the
    # session, and logged.
    try:
        with _audit_lock:
            target = _audit_targets.get(user_data or 0)
        if target is None:
            return
        _on_dispatcher.active = True
        try:
            # ctypes hands a `c_char_p` argument over as bytes (the JSON has no NUL byte).
            target.callback(json.loads(event_json[:length] if event_json else b""))
        except BaseException as e:  # noqa: BLE001 - must never cross into C
            target.errors += 1
            if target.first_error is None:
                target.first_error = e
            _log.error("docauth: the audit callback raised %s: %s (event dropped)", type(e).__name__, e)
        finally:
            _on_dispatcher.active = False
    except BaseException:  # noqa: BLE001 - e.g. interpreter shutting down
        pass


def _audit_release(user_data: Optional[int]) -> None:
    try:
        with _audit_lock:
            _audit_targets.pop(user_data or 0, None)
    except BaseException:  # noqa: BLE001 - must never cross into C
        pass


_AUDIT_FN = _ffi.docauth_audit_fn(_audit_trampoline)
_AUDIT_FREE_FN = _ffi.docauth_user_data_free_fn(_audit_release)
_NO_AUDIT_FN = _ffi.docauth_audit_fn()  # NULL
_NO_FREE_FN = _ffi.docauth_user_data_free_fn()  # NULL


# ---------------------------------------------------------------------------------------


def _take_fd(sock_or_fd: Union[socket.socket, int]) -> int:
    """The descriptor to hand over; a socket object is detached (it no longer owns it)."""
    if isinstance(sock_or_fd, socket.socket):
        fd = sock_or_fd.detach()
        if fd < 0:
            raise InvalidArgumentError(
                InvalidArgumentError.code, InvalidArgumentError.name, "the socket is closed"
            )
        return fd
    if isinstance(sock_or_fd, int) and not isinstance(sock_or_fd, bool):
        return sock_or_fd
    raise TypeError(f"sock_or_fd must be a socket.socket or an int, not {type(sock_or_fd).__name__}")


def _params_json(params: Union[Mapping[str, Any], str, bytes]) -> bytes:
    if isinstance(params, Mapping):
        try:
            text = json.dumps(dict(params))
        except (TypeError, ValueError) as e:
            raise InvalidArgumentError(
                InvalidArgumentError.code, InvalidArgumentError.name, f"params are not JSON-serialisable: {e}"
            ) from None
        return _c_string(text, "params")
    return _c_string(params, "params")


_live_runtimes: "weakref.WeakSet[Runtime]" = weakref.WeakSet()


@atexit.register
def _close_runtimes_at_exit() -> None:
    # Free runtimes while the interpreter can still run the audit callbacks the freeing
    # delivers; a runtime freed by the garbage collector during finalisation could not.
    for rt in list(_live_runtimes):
        try:
            rt.close()
        except Exception:  # noqa: BLE001
            pass


class Runtime(OwnedHandle):
    """Worker threads running every session's I/O, plus one audit dispatcher thread.

    `threads=0` means one worker per CPU. Shareable: sessions may be started from any
    thread. `close()` (or leaving `with`) cancels the sessions still running, closing their
    connections, delivers the audit events already queued and frees the runtime. Sessions'
    handles stay usable after that (their `wait()` reports how they ended).
    """

    def __init__(self, threads: int = 0) -> None:
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 0:
            raise TypeError(f"threads must be an int >= 0, not {threads!r}")
        lib = _ffi.lib()
        out = ctypes.POINTER(_ffi.docauth_runtime)()
        err = _ffi.new_error_out()
        result = lib.docauth_runtime_new(ctypes.c_uint32(threads), ctypes.byref(out), ctypes.byref(err))
        _ffi.check(result, err)
        super().__init__(out, lib.docauth_runtime_free)
        _live_runtimes.add(self)

    def __enter__(self) -> "Runtime":
        return self

    def set_max_sessions(self, max_sessions: int) -> None:
        """Caps the sessions this runtime runs at once (default 10,000; at least 1).

        A session started past the cap ends at once: its `wait()` raises
        `SessionLimitError`, its client's first message gets a MongoDB error naming the cap,
        its audit has a failed `db.session.start`, and no database connection is made.
        Applies to sessions started afterwards; running sessions are never cut.
        """
        if not isinstance(max_sessions, int) or isinstance(max_sessions, bool) or not 0 <= max_sessions < 2**32:
            raise TypeError(f"max_sessions must be an int from 1 to 2**32-1, not {max_sessions!r}")
        # 0 goes to the library, which refuses it with InvalidArgumentError like any C caller.
        err = _ffi.new_error_out()
        with self._lock:
            result = _ffi.lib().docauth_runtime_set_max_sessions(
                self._use(), ctypes.c_uint32(max_sessions), ctypes.byref(err)
            )
        _ffi.check(result, err)

    @property
    def audit_dropped(self) -> int:
        """Audit events dropped by all sessions of this runtime (callbacks too slow)."""
        with self._lock:
            return int(_ffi.lib().docauth_runtime_audit_dropped(self._use()))

    def start_session(
        self,
        sock_or_fd: Union[socket.socket, int],
        params: Union[Mapping[str, Any], str, bytes],
        engine: PolicyEngine,
        credentials: CredentialsProvider,
        on_audit: Optional[AuditCallback] = None,
    ) -> "Session":
        """Starts a proxied session on a connected client socket and returns at once.

        `sock_or_fd`: a connected TCP or Unix `socket.socket` (detached here: do not use it
        afterwards) or a raw descriptor; once the arguments are checked the library owns the
        descriptor whatever the outcome (it is closed on failure).
        `params`: the session parameters (a dict, or its JSON text): `identity`, `database`,
        `db_user`, `db_name`, optional `database_uri`, `ca_file`, `client_addr` and timeouts
        (see include/docauth.h). `engine` judges the connection and every message;
        `credentials` gives the db user's AWS credentials. The session keeps its own
        references to both.
        `on_audit`: called with each audit event (a dict) on the runtime's audit dispatcher
        thread; it must return quickly (a slow consumer makes the library drop events, see
        `audit_dropped`). An exception it raises is logged on the `docauth` logger, counted
        in `Session.audit_callback_errors` and never reaches the library.

        Raises the error of a refused start (`InvalidConfigError` for bad parameters,
        `InvalidArgumentError` for a descriptor that is not a connected socket, ...);
        failures reaching the database come from `Session.wait()`.
        """
        if not isinstance(engine, PolicyEngine):
            raise TypeError(f"engine must be docauth.PolicyEngine, not {type(engine).__name__}")
        if not isinstance(credentials, CredentialsProvider):
            raise TypeError(f"credentials must be docauth.CredentialsProvider, not {type(credentials).__name__}")
        if on_audit is not None and not callable(on_audit):
            raise TypeError("on_audit must be callable or None")
        raw = _params_json(params)
        lib = _ffi.lib()
        target: Optional[_AuditTarget] = None
        key = 0
        if on_audit is not None:
            target = _AuditTarget(on_audit)
            key = next(_audit_keys)
            with _audit_lock:
                _audit_targets[key] = target
        out = ctypes.POINTER(_ffi.docauth_session)()
        err = _ffi.new_error_out()
        try:
            with self._lock, engine._lock, credentials._lock:
                rt, eng, prov = self._use(), engine._use(), credentials._use()
                fd = _take_fd(sock_or_fd)
                # From here the library owns fd and (through user_data_free) the target.
                target_key, key = key, 0
                result = lib.docauth_session_start(
                    rt,
                    fd,
                    raw,
                    eng,
                    prov,
                    _AUDIT_FN if target is not None else _NO_AUDIT_FN,
                    ctypes.c_void_p(target_key) if target is not None else None,
                    _AUDIT_FREE_FN if target is not None else _NO_FREE_FN,
                    ctypes.byref(out),
                    ctypes.byref(err),
                )
        finally:
            if key:  # failed before the library took it over
                _audit_release(key)
        _ffi.check(result, err)
        return Session(out, self, target)

    def __repr__(self) -> str:
        return f"<docauth.Runtime {'closed' if self.closed else 'open'}>"


class Session(OwnedHandle):
    """One proxied session (`docauth_session`).

    Every method may be called from any thread at the same time; `shutdown()` never
    blocks, so another thread can end a session that a thread is `wait()`ing for.
    `close()` releases the handle only — the session itself runs on until it ends (a side
    closes, idle timeout, `shutdown()`, or the runtime is closed). A `close()` while a
    `wait()` is in progress takes effect when that wait returns.
    """

    def __init__(self, ptr: Any, runtime: Runtime, target: Optional[_AuditTarget]) -> None:
        OwnedHandle.__init__(self, ptr, _ffi.lib().docauth_session_free)
        self._runtime = runtime  # keeps the runtime (and so the session) from being collected
        self._target = target
        self._done = threading.Event()
        self._waiter: Optional[threading.Thread] = None
        self._outcome: Optional[tuple[Optional[SessionStats], Optional[BaseException]]] = None

    def __enter__(self) -> "Session":
        return self

    # -- operations --

    def shutdown(self) -> None:
        """Asks the session to end; both connections close soon after. Never blocks."""
        with self._pinned() as ptr:
            _ffi.lib().docauth_session_shutdown(ptr)

    @property
    def is_finished(self) -> bool:
        """Whether the session has ended. Never blocks."""
        with self._pinned() as ptr:
            return bool(_ffi.lib().docauth_session_is_finished(ptr))

    @property
    def audit_dropped(self) -> int:
        """Audit events of this session dropped because the callback was too slow."""
        with self._pinned() as ptr:
            return int(_ffi.lib().docauth_session_audit_dropped(ptr))

    @property
    def audit_callback_errors(self) -> int:
        """How many times `on_audit` raised (those events were dropped)."""
        return self._target.errors if self._target is not None else 0

    @property
    def audit_callback_error(self) -> Optional[BaseException]:
        """The first exception `on_audit` raised, if any."""
        return self._target.first_error if self._target is not None else None

    def wait(self, timeout: Optional[float] = None) -> SessionStats:
        """Blocks until the session ends (at most `timeout` seconds; then `TimeoutError`).

        Returns its counters when it ended normally (a side closed, idle timeout,
        shutdown); otherwise raises the error that ended it (e.g. `ConnectTimeoutError`,
        `SessionAccessDeniedError`), whose message says what to fix. May be called again
        and from several threads; each call gives the same outcome. Must not be called from
        the audit callback (raises `CalledFromAuditCallbackError`).
        """
        if getattr(_on_dispatcher, "active", False) and not self._done.is_set():
            raise CalledFromAuditCallbackError(
                CalledFromAuditCallbackError.code,
                CalledFromAuditCallbackError.name,
                "Session.wait() called from inside an audit callback: it would deadlock the dispatcher",
            )
        with self._lock:
            if self._outcome is None and self._waiter is None:
                self._pin()  # unpinned by the waiter thread
                self._waiter = threading.Thread(target=self._wait_in_thread, name="docauth-session-wait", daemon=True)
                self._waiter.start()
        if not self._done.wait(timeout):
            raise TimeoutError(f"the session did not end within {timeout} s")
        assert self._outcome is not None
        stats, error = self._outcome
        if error is not None:
            raise error
        assert stats is not None
        return stats

    def _wait_in_thread(self) -> None:
        try:
            ptr = self._ptr
            c_stats = _ffi.docauth_session_stats()
            err = _ffi.new_error_out()
            result = _ffi.lib().docauth_session_wait(ptr, ctypes.byref(c_stats), ctypes.byref(err))
            try:
                _ffi.check(result, err)
                stats = SessionStats(
                    bytes_from_client=c_stats.bytes_from_client,
                    bytes_to_client=c_stats.bytes_to_client,
                    messages_from_client=c_stats.messages_from_client,
                    messages_to_client=c_stats.messages_to_client,
                    messages_denied=c_stats.messages_denied,
                    duration_ms=c_stats.duration_ms,
                    audit_events_dropped=c_stats.audit_events_dropped,
                )
                self._outcome = (stats, None)
            except BaseException as e:  # noqa: BLE001 - handed to the waiting caller
                self._outcome = (None, e)
        finally:
            self._unpin()
            self._done.set()

    def __repr__(self) -> str:
        return f"<docauth.Session {'closed' if self.closed else 'open'}>"
