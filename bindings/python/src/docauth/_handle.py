"""Base class for Python objects that own a libdocauth handle."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

from .errors import UseAfterCloseError

# `with PolicyEngine(...) as engine:` gives the subclass, not OwnedHandle (typing.Self is 3.11+).
_Handle = TypeVar("_Handle", bound="OwnedHandle")


class OwnedHandle:
    """Owns one C handle: `close()` frees it exactly once (idempotent), `with` closes it,
    `__del__` is a safety net, and any use after close raises `UseAfterCloseError`.

    A re-entrant lock serializes the C calls made on this object with its `close()`, so a
    handle is never freed while another thread is inside a call that uses it. A call that
    may block for long (a session's wait) pins the handle instead of holding the lock:
    other calls go on beside it, and a `close()` meanwhile frees the handle when the last
    pin is released.
    """

    _ptr: Any = None
    _free: Callable[[Any], None] | None = None

    def __init__(self, ptr: Any, free: Callable[[Any], None]) -> None:
        self._lock = threading.RLock()
        self._ptr = ptr
        self._free = free
        self._pins = 0
        self._closing = False

    @property
    def closed(self) -> bool:
        return self._closing or not self._ptr

    def _use(self) -> Any:
        """The live handle; the caller must hold `self._lock`."""
        if self.closed:
            raise UseAfterCloseError(
                UseAfterCloseError.code,
                UseAfterCloseError.name,
                f"{type(self).__name__} is closed; it cannot be used after close()",
            )
        return self._ptr

    def _pin(self) -> Any:
        """The live handle, kept alive until the matching `_unpin()` even if closed meanwhile."""
        with self._lock:
            ptr = self._use()
            self._pins += 1
            return ptr

    def _unpin(self) -> None:
        with self._lock:
            self._pins -= 1
            if self._pins == 0 and self._closing:
                self._release_locked()

    @contextmanager
    def _pinned(self) -> Iterator[Any]:
        ptr = self._pin()
        try:
            yield ptr
        finally:
            self._unpin()

    def _release_locked(self) -> None:
        ptr, free = self._ptr, self._free
        self._ptr = None
        if ptr and free is not None:
            free(ptr)

    def close(self) -> None:
        """Free the C object (at once, or when the last pinned call returns). Calling it
        again does nothing."""
        lock = getattr(self, "_lock", None)
        if lock is None:  # __init__ failed before the handle existed
            return
        with lock:
            if self._closing:
                return
            self._closing = True
            if self._pins == 0:
                self._release_locked()

    def __enter__(self: _Handle) -> _Handle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown: never raise from __del__
            pass
