"""Base class for Python objects that own a libdocauth handle."""

from __future__ import annotations

import threading
from typing import Any, Callable, TypeVar

from .errors import UseAfterCloseError

# `with PolicyEngine(...) as engine:` gives the subclass, not OwnedHandle (typing.Self is 3.11+).
_Handle = TypeVar("_Handle", bound="OwnedHandle")


class OwnedHandle:
    """Owns one C handle: `close()` frees it exactly once (idempotent), `with` closes it,
    `__del__` is a safety net, and any use after close raises `UseAfterCloseError`.

    A re-entrant lock serializes the C calls made on this object with its `close()`, so a
    handle is never freed while another thread is inside a call that uses it.
    """

    _ptr: Any = None
    _free: Callable[[Any], None] | None = None

    def __init__(self, ptr: Any, free: Callable[[Any], None]) -> None:
        self._lock = threading.RLock()
        self._ptr = ptr
        self._free = free

    @property
    def closed(self) -> bool:
        return not self._ptr

    def _use(self) -> Any:
        """The live handle; the caller must hold `self._lock`."""
        if not self._ptr:
            raise UseAfterCloseError(
                UseAfterCloseError.code,
                UseAfterCloseError.name,
                f"{type(self).__name__} is closed; it cannot be used after close()",
            )
        return self._ptr

    def close(self) -> None:
        """Free the C object. Calling it again does nothing."""
        lock = getattr(self, "_lock", None)
        if lock is None:  # __init__ failed before the handle existed
            return
        with lock:
            ptr, free = self._ptr, self._free
            self._ptr = None
            if ptr and free is not None:
                free(ptr)

    def __enter__(self: _Handle) -> _Handle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown: never raise from __del__
            pass
