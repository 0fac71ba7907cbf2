"""MONGODB-AWS: AWS credentials and the client side of the SASL conversation."""

from __future__ import annotations

import ctypes
import datetime
from typing import Union

from . import _ffi
from ._handle import OwnedHandle
from .errors import InvalidArgumentError, InvalidUtf8Error

StrOrBytes = Union[str, bytes]


def _c_string(value: StrOrBytes, what: str) -> bytes:
    """UTF-8 bytes for a `const char *` argument.

    `str` is encoded with `surrogateescape`, so a string holding undecodable bytes (as
    os.fsdecode produces) reaches the library unchanged and the library rejects it as invalid
    UTF-8; `bytes` are passed as they are. A lone surrogate that is not an escaped byte cannot
    be encoded at all and raises `InvalidUtf8Error` here. A NUL byte would silently cut a C
    string short, so it is refused with `InvalidArgumentError`.
    """
    if isinstance(value, str):
        try:
            raw = value.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            raise InvalidUtf8Error(
                InvalidUtf8Error.code, InvalidUtf8Error.name, f"{what} is not valid UTF-8 (lone surrogate)"
            ) from None
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
    else:
        raise TypeError(f"{what} must be str or bytes, not {type(value).__name__}")
    if b"\0" in raw:
        raise InvalidArgumentError(
            InvalidArgumentError.code, InvalidArgumentError.name, f"{what} contains a NUL byte"
        )
    return raw


def _as_bytes(value: bytes | bytearray | memoryview, what: str) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"{what} must be bytes, not {type(value).__name__}")
    return bytes(value)


def _require_credentials(credentials: object) -> None:
    if not isinstance(credentials, Credentials):
        raise TypeError(f"credentials must be docauth.Credentials, not {type(credentials).__name__}")


class Credentials(OwnedHandle):
    """AWS credentials held by the library (copied into zeroizing storage).

    `session_token=None` means long-term credentials. The secret is handed to the library at
    once and not kept by this object; `repr()` shows no secret. `access_key_id` (not a
    secret: `AKIA...` for long-term keys, `ASIA...` for the temporary credentials of an
    assumed role) and `expiry` (an aware UTC `datetime`, `None` without one) are read back
    from the library; the secret and the token cannot be. Immutable and shareable: one
    `Credentials` may start many conversations, from any thread. Close it (or use `with`) when
    done; conversations already started keep their own reference.
    """

    def __init__(
        self,
        access_key_id: StrOrBytes,
        secret_access_key: StrOrBytes,
        session_token: StrOrBytes | None = None,
    ) -> None:
        akid = _c_string(access_key_id, "access_key_id")
        secret = _c_string(secret_access_key, "secret_access_key")
        token = None if session_token is None else _c_string(session_token, "session_token")
        lib = _ffi.lib()
        out = ctypes.POINTER(_ffi.docauth_credentials)()
        err = _ffi.new_error_out()
        result = lib.docauth_credentials_new(akid, secret, token, ctypes.byref(out), ctypes.byref(err))
        del secret
        _ffi.check(result, err)
        super().__init__(out, lib.docauth_credentials_free)
        self._read_back()
        self.has_session_token = token is not None

    @classmethod
    def _from_handle(cls, ptr: object, has_session_token: bool) -> "Credentials":
        """Wrap a `docauth_credentials *` the library returned (e.g. from a provider)."""
        self = cls.__new__(cls)
        OwnedHandle.__init__(self, ptr, _ffi.lib().docauth_credentials_free)
        self._read_back()
        self.has_session_token = has_session_token
        return self

    def _read_back(self) -> None:
        """The access key id and expiry the library holds (the handle is fresh and owned)."""
        lib = _ffi.lib()
        with self._lock:
            ptr = self._use()
            akid = lib.docauth_credentials_access_key_id(ptr)
            expiry = lib.docauth_credentials_expiry(ptr)
        self.access_key_id: str = (akid or b"").decode("utf-8", "replace")
        self.expiry: datetime.datetime | None = (
            datetime.datetime.fromtimestamp(expiry, tz=datetime.timezone.utc) if expiry > 0 else None
        )

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("temporary" if self.has_session_token else "long-term")
        return f"<docauth.Credentials {self.access_key_id!r} {state}>"

    def __enter__(self) -> "Credentials":
        return self


class AwsConversation(OwnedHandle):
    """The client side of one MONGODB-AWS SASL conversation.

    `client_first()` then `client_final(server_first)`, each exactly once, in that order
    (otherwise `InvalidStateError`). The client nonce comes from the OS CSPRNG and the
    signing time from the system clock. One thread at a time (calls are serialized).
    """

    def __init__(self, credentials: Credentials) -> None:
        _require_credentials(credentials)
        lib = _ffi.lib()
        out = ctypes.POINTER(_ffi.docauth_aws_conversation)()
        err = _ffi.new_error_out()
        with credentials._lock:
            result = lib.docauth_aws_conversation_new(credentials._use(), ctypes.byref(out), ctypes.byref(err))
        _ffi.check(result, err)
        super().__init__(out, lib.docauth_aws_conversation_free)

    @classmethod
    def _for_testing(cls, credentials: Credentials, nonce: bytes, unix_time: int) -> "AwsConversation":
        """TEST ONLY: a conversation with a fixed 32-byte client nonce and a frozen clock
        (`unix_time` seconds since the epoch). Never use it to authenticate for real."""
        _require_credentials(credentials)
        nonce_bytes = _as_bytes(nonce, "nonce")
        if not isinstance(unix_time, int) or isinstance(unix_time, bool):
            raise TypeError("unix_time must be an int")
        if not -(2**63) <= unix_time < 2**63:
            # ctypes would silently wrap it into int64_t: refuse instead.
            raise InvalidArgumentError(
                InvalidArgumentError.code, InvalidArgumentError.name, f"unix_time {unix_time} does not fit in int64_t"
            )
        lib = _ffi.lib()
        out = ctypes.POINTER(_ffi.docauth_aws_conversation)()
        err = _ffi.new_error_out()
        with credentials._lock:
            result = lib.docauth_aws_conversation_new_for_testing(
                credentials._use(),
                _ffi.byte_pointer(nonce_bytes),
                len(nonce_bytes),
                ctypes.c_int64(unix_time),
                ctypes.byref(out),
                ctypes.byref(err),
            )
        _ffi.check(result, err)
        self = cls.__new__(cls)
        OwnedHandle.__init__(self, out, lib.docauth_aws_conversation_free)
        return self

    def client_first(self) -> bytes:
        """The client-first payload: BSON `{r: BinData(0, 32-byte nonce), p: 110}`."""
        lib = _ffi.lib()
        out = ctypes.POINTER(_ffi.docauth_bytes)()
        err = _ffi.new_error_out()
        with self._lock:
            result = lib.docauth_aws_conversation_client_first(self._use(), ctypes.byref(out), ctypes.byref(err))
        _ffi.check(result, err)
        return _ffi.take_bytes(out)

    def client_final(self, server_first: bytes) -> bytes:
        """The client-final payload `{a, d, t?}` answering the server-first BSON `{s, h}`.

        Raises the exception class of each spec check that fails (e.g.
        `SaslServerNonceLengthError`, `SaslHostEmptyLabelError`, `SaslMalformedServerFirstError`).
        """
        data = _as_bytes(server_first, "server_first")
        lib = _ffi.lib()
        out = ctypes.POINTER(_ffi.docauth_bytes)()
        err = _ffi.new_error_out()
        with self._lock:
            result = lib.docauth_aws_conversation_client_final(
                self._use(), _ffi.byte_pointer(data), len(data), ctypes.byref(out), ctypes.byref(err)
            )
        _ffi.check(result, err)
        return _ffi.take_bytes(out)

    def __enter__(self) -> "AwsConversation":
        return self

    def __repr__(self) -> str:
        return f"<docauth.AwsConversation {'closed' if self.closed else 'open'}>"
