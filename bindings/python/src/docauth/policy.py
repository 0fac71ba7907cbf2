"""The policy engine: Teleport-compatible database RBAC evaluated by Rego (docs/policy.md)."""

from __future__ import annotations

import ctypes
import json
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Union

from . import _ffi
from ._handle import OwnedHandle
from .aws import _c_string

StrOrBytes = Union[str, bytes]


@dataclass(frozen=True)
class Decision:
    """One decision: a value, never an exception. `reason` names the deciding role(s) and
    rule; `matched_roles` are the allowing roles, or the roles whose deny rules matched."""

    allowed: bool
    reason: str
    matched_roles: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.allowed


def _request_json(request: Union[Mapping[str, Any], StrOrBytes]) -> bytes:
    if isinstance(request, Mapping):
        return _c_string(json.dumps(request), "request")
    return _c_string(request, "request")


class PolicyEngine(OwnedHandle):
    """A policy engine built from a configuration document (JSON or YAML text: `roles`,
    `databases`, optional `identities` and operator Rego `modules`).

    Shareable: `decide` and `reload` may be called from any thread; a reload swaps the rules
    atomically. Bad configuration raises the exception of its result code (e.g.
    `PolicyConfigSyntaxError` naming the file, line and problem).
    """

    def __init__(self, config: StrOrBytes) -> None:
        text = _c_string(config, "config")
        self._init(lambda lib, out, err: lib.docauth_engine_new(text, out, err))

    @classmethod
    def from_file(cls, path: Union[str, "os.PathLike[str]"]) -> "PolicyEngine":
        """Reads the configuration from a file; relative paths in it are resolved against
        the file's directory."""
        raw = _c_string(os.fsdecode(path), "path")
        self = cls.__new__(cls)
        self._init(lambda lib, out, err: lib.docauth_engine_new_from_file(raw, out, err))
        return self

    def _init(self, call: Any) -> None:
        lib = _ffi.lib()
        out = ctypes.POINTER(_ffi.docauth_engine)()
        err = _ffi.new_error_out()
        result = call(lib, ctypes.byref(out), ctypes.byref(err))
        _ffi.check(result, err)
        OwnedHandle.__init__(self, out, lib.docauth_engine_free)

    def reload(self, config: StrOrBytes) -> None:
        """Replaces the rules; on error the old rules stay in force."""
        text = _c_string(config, "config")
        lib = _ffi.lib()
        with self._lock:
            err = _ffi.new_error_out()
            result = lib.docauth_engine_reload(self._use(), text, ctypes.byref(err))
        _ffi.check(result, err)

    def reload_from_file(self, path: Union[str, "os.PathLike[str]"]) -> None:
        raw = _c_string(os.fsdecode(path), "path")
        lib = _ffi.lib()
        with self._lock:
            err = _ffi.new_error_out()
            result = lib.docauth_engine_reload_from_file(self._use(), raw, ctypes.byref(err))
        _ffi.check(result, err)

    def decide(self, request: Union[Mapping[str, Any], StrOrBytes]) -> Decision:
        """Decides a request: a dict (or its JSON text) with `identity` (an object
        `{user, roles, traits}` or a configured user name), `database`, `db_user`, `db_name`
        and optionally `command` and `namespaces`. A deny is a Decision, not an exception;
        a malformed request raises `PolicyRequestInvalidError`."""
        raw = _request_json(request)
        lib = _ffi.lib()
        out = ctypes.POINTER(_ffi.docauth_decision)()
        with self._lock:
            err = _ffi.new_error_out()
            result = lib.docauth_engine_decide(self._use(), raw, ctypes.byref(out), ctypes.byref(err))
        _ffi.check(result, err)
        try:
            reason = lib.docauth_decision_reason(out) or b""
            roles = [
                (lib.docauth_decision_matched_role(out, i) or b"").decode("utf-8", "replace")
                for i in range(lib.docauth_decision_matched_roles_count(out))
            ]
            return Decision(
                allowed=bool(lib.docauth_decision_allowed(out)),
                reason=reason.decode("utf-8", "replace"),
                matched_roles=roles,
            )
        finally:
            lib.docauth_decision_free(out)
