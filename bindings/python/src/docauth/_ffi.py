"""The one place that talks to libdocauth through ctypes.

`SIGNATURES` declares restype/argtypes for every C function of include/docauth.h
(tests/test_header.py parses the header and checks each declaration). `lib()` finds and loads
the shared library once; `check()` turns a `docauth_result` + `docauth_error *` into the
exception class of that code. Nothing outside this module touches a raw pointer.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading
from pathlib import Path
from typing import Any

from .errors import DocauthError, LibraryNotFoundError, error_class


class docauth_error(ctypes.Structure):  # noqa: N801 - C name
    """Opaque."""


class docauth_bytes(ctypes.Structure):  # noqa: N801
    """Opaque."""


class docauth_credentials(ctypes.Structure):  # noqa: N801
    """Opaque."""


class docauth_aws_conversation(ctypes.Structure):  # noqa: N801
    """Opaque."""


class docauth_credentials_provider(ctypes.Structure):  # noqa: N801
    """Opaque."""


class docauth_engine(ctypes.Structure):  # noqa: N801
    """Opaque."""


class docauth_decision(ctypes.Structure):  # noqa: N801
    """Opaque."""


class docauth_runtime(ctypes.Structure):  # noqa: N801
    """Opaque."""


class docauth_session(ctypes.Structure):  # noqa: N801
    """Opaque."""


class docauth_session_stats(ctypes.Structure):  # noqa: N801
    """Counters of a finished session (filled by docauth_session_wait)."""

    _fields_ = [
        ("bytes_from_client", ctypes.c_uint64),
        ("bytes_to_client", ctypes.c_uint64),
        ("messages_from_client", ctypes.c_uint64),
        ("messages_to_client", ctypes.c_uint64),
        ("messages_denied", ctypes.c_uint64),
        ("duration_ms", ctypes.c_uint64),
        ("audit_events_dropped", ctypes.c_uint64),
    ]


# Callbacks: keep the CFUNCTYPE object alive as long as the library may call it.
docauth_audit_fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t)
docauth_user_data_free_fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


P = ctypes.POINTER
c_result = ctypes.c_int  # `enum docauth_result`: a C enum is an int
u8p = P(ctypes.c_uint8)
ErrOut = P(P(docauth_error))

#: name -> (restype, argtypes). Must match include/docauth.h exactly (tested).
SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "docauth_version": (ctypes.c_char_p, []),
    "docauth_result_name": (ctypes.c_char_p, [ctypes.c_uint32]),
    "docauth_bytes_data": (u8p, [P(docauth_bytes)]),
    "docauth_bytes_len": (ctypes.c_size_t, [P(docauth_bytes)]),
    "docauth_bytes_free": (None, [P(docauth_bytes)]),
    "docauth_error_code": (c_result, [P(docauth_error)]),
    "docauth_error_message": (ctypes.c_char_p, [P(docauth_error)]),
    "docauth_error_free": (None, [P(docauth_error)]),
    "docauth_credentials_new": (
        c_result,
        [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, P(P(docauth_credentials)), ErrOut],
    ),
    "docauth_credentials_free": (None, [P(docauth_credentials)]),
    "docauth_credentials_access_key_id": (ctypes.c_char_p, [P(docauth_credentials)]),
    "docauth_credentials_expiry": (ctypes.c_int64, [P(docauth_credentials)]),
    "docauth_aws_conversation_new": (
        c_result,
        [P(docauth_credentials), P(P(docauth_aws_conversation)), ErrOut],
    ),
    "docauth_aws_conversation_new_for_testing": (
        c_result,
        [
            P(docauth_credentials),
            u8p,
            ctypes.c_size_t,
            ctypes.c_int64,
            P(P(docauth_aws_conversation)),
            ErrOut,
        ],
    ),
    "docauth_aws_conversation_client_first": (
        c_result,
        [P(docauth_aws_conversation), P(P(docauth_bytes)), ErrOut],
    ),
    "docauth_aws_conversation_client_final": (
        c_result,
        [P(docauth_aws_conversation), u8p, ctypes.c_size_t, P(P(docauth_bytes)), ErrOut],
    ),
    "docauth_aws_conversation_free": (None, [P(docauth_aws_conversation)]),
    "docauth_credentials_provider_new": (
        c_result,
        [ctypes.c_char_p, P(P(docauth_credentials_provider)), ErrOut],
    ),
    "docauth_credentials_provider_resolve": (
        c_result,
        [
            P(docauth_credentials_provider),
            ctypes.c_char_p,
            ctypes.c_char_p,
            P(P(docauth_credentials)),
            ErrOut,
        ],
    ),
    "docauth_credentials_provider_invalidate": (
        c_result,
        [P(docauth_credentials_provider), ctypes.c_char_p, ErrOut],
    ),
    "docauth_credentials_provider_free": (None, [P(docauth_credentials_provider)]),
    "docauth_engine_new": (c_result, [ctypes.c_char_p, P(P(docauth_engine)), ErrOut]),
    "docauth_engine_new_from_file": (c_result, [ctypes.c_char_p, P(P(docauth_engine)), ErrOut]),
    "docauth_engine_reload": (c_result, [P(docauth_engine), ctypes.c_char_p, ErrOut]),
    "docauth_engine_reload_from_file": (c_result, [P(docauth_engine), ctypes.c_char_p, ErrOut]),
    "docauth_engine_decide": (
        c_result,
        [P(docauth_engine), ctypes.c_char_p, P(P(docauth_decision)), ErrOut],
    ),
    "docauth_engine_free": (None, [P(docauth_engine)]),
    "docauth_decision_allowed": (ctypes.c_bool, [P(docauth_decision)]),
    "docauth_decision_reason": (ctypes.c_char_p, [P(docauth_decision)]),
    "docauth_decision_matched_roles_count": (ctypes.c_size_t, [P(docauth_decision)]),
    "docauth_decision_matched_role": (ctypes.c_char_p, [P(docauth_decision), ctypes.c_size_t]),
    "docauth_decision_json": (ctypes.c_char_p, [P(docauth_decision)]),
    "docauth_decision_free": (None, [P(docauth_decision)]),
    "docauth_runtime_new": (c_result, [ctypes.c_uint32, P(P(docauth_runtime)), ErrOut]),
    "docauth_runtime_free": (None, [P(docauth_runtime)]),
    "docauth_runtime_audit_dropped": (ctypes.c_uint64, [P(docauth_runtime)]),
    "docauth_runtime_set_max_sessions": (c_result, [P(docauth_runtime), ctypes.c_uint32, ErrOut]),
    "docauth_session_start": (
        c_result,
        [
            P(docauth_runtime),
            ctypes.c_int,
            ctypes.c_char_p,
            P(docauth_engine),
            P(docauth_credentials_provider),
            docauth_audit_fn,
            ctypes.c_void_p,
            docauth_user_data_free_fn,
            P(P(docauth_session)),
            ErrOut,
        ],
    ),
    "docauth_session_shutdown": (None, [P(docauth_session)]),
    "docauth_session_is_finished": (ctypes.c_bool, [P(docauth_session)]),
    "docauth_session_wait": (c_result, [P(docauth_session), P(docauth_session_stats), ErrOut]),
    "docauth_session_audit_dropped": (ctypes.c_uint64, [P(docauth_session)]),
    "docauth_session_free": (None, [P(docauth_session)]),
    "docauth_metrics_render": (
        c_result,
        [
            P(docauth_runtime),
            P(docauth_engine),
            P(docauth_credentials_provider),
            ctypes.c_uint32,
            P(P(docauth_bytes)),
            ErrOut,
        ],
    ),
    "docauth_metrics_content_type": (ctypes.c_char_p, [ctypes.c_uint32]),
}

_REPO_ROOT = Path(__file__).resolve().parents[4]  # <repo>/bindings/python/src/docauth/_ffi.py
_IN_SOURCE_TREE = (_REPO_ROOT / "Cargo.toml").is_file() and (_REPO_ROOT / "include" / "docauth.h").is_file()
_LIB_FILE = {"darwin": "libdocauth.dylib", "win32": "docauth.dll"}.get(sys.platform, "libdocauth.so")

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None


def library_candidates() -> list[str]:
    """Where the library is looked for, in order: $DOCAUTH_LIBRARY, the library bundled in
    the package (the platform wheel of `make wheel`, next to this file), the repository's
    target/release build next to this source tree, then the system (ctypes.util.find_library)."""
    env = os.environ.get("DOCAUTH_LIBRARY")
    if env:
        return [env]  # explicit: do not silently fall back to another build
    out = []
    bundled = Path(__file__).resolve().parent / _LIB_FILE
    if bundled.is_file():
        out.append(str(bundled))
    repo_build = _REPO_ROOT / "target" / "release" / _LIB_FILE
    if _IN_SOURCE_TREE and repo_build.exists():
        out.append(str(repo_build))
    found = ctypes.util.find_library("docauth")
    if found:
        out.append(found)
    return out


def _load() -> ctypes.CDLL:
    candidates = library_candidates()
    if not candidates:
        if _IN_SOURCE_TREE:
            where = (
                f"build it with `cargo build --release` in {_REPO_ROOT} (looked for "
                f"{_REPO_ROOT / 'target' / 'release' / _LIB_FILE} and the system library path)"
            )
        else:
            where = "install it (make install) so the system finds it (looked on the system library path)"
        raise LibraryNotFoundError(f"libdocauth not found: set DOCAUTH_LIBRARY=/path/to/{_LIB_FILE}, or {where}")
    path = candidates[0]
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        raise LibraryNotFoundError(f"cannot load libdocauth from {path}: {e}") from e
    missing = []
    for name, (restype, argtypes) in SIGNATURES.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            missing.append(name)
            continue
        fn.restype = restype
        fn.argtypes = argtypes
    if missing:
        raise LibraryNotFoundError(
            f"{path} lacks {', '.join(missing)}: it was built from older sources than this binding"
        )
    return lib


def loaded_path() -> str:
    """The file the library was loaded from (loads it if needed)."""
    return str(lib()._name)


def lib() -> ctypes.CDLL:
    """The loaded library (loaded on first use, then cached)."""
    global _lib
    if _lib is None:
        with _lock:
            if _lib is None:
                _lib = _load()
    return _lib


def result_name(code: int) -> str:
    raw = lib().docauth_result_name(ctypes.c_uint32(code & 0xFFFFFFFF))
    return raw.decode("utf-8", "replace") if raw else "DOCAUTH_RESULT_UNKNOWN"


def new_error_out() -> Any:
    return P(docauth_error)()


def check(result: int, err: Any) -> None:
    """Raise the exception class of `result` (with the message from `err`) unless it is OK.
    Frees `err` in every case."""
    l = lib()
    try:
        if result == 0:
            return
        message = ""
        if err:
            raw = l.docauth_error_message(err)
            message = raw.decode("utf-8", "replace") if raw else ""
        raise error_class(result)(result, result_name(result), message or result_name(result))
    finally:
        if err:
            l.docauth_error_free(err)


def take_bytes(buf: Any) -> bytes:
    """Copy a `docauth_bytes *` into Python bytes and free it."""
    l = lib()
    try:
        n = l.docauth_bytes_len(buf)
        data = l.docauth_bytes_data(buf)
        if n == 0:
            return b""
        if not data:
            raise DocauthError(-1, "DOCAUTH_RESULT_UNKNOWN", "library returned a NULL buffer")
        return ctypes.string_at(data, n)
    finally:
        l.docauth_bytes_free(buf)


def byte_pointer(data: bytes) -> Any:
    """A `const uint8_t *` to `data`'s storage; the caller keeps `data` alive during the call."""
    return ctypes.cast(ctypes.c_char_p(data), u8p)
