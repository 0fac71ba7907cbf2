"""AWS credentials provider: the service's own credentials, then STS AssumeRole into the IAM
role that is the db user (optionally through the database's `assume_role_arn`)."""

from __future__ import annotations

import ctypes
import json
from typing import Any, Mapping, Union

from . import _ffi
from ._handle import OwnedHandle
from .aws import Credentials, StrOrBytes, _c_string


class CredentialsProvider(OwnedHandle):
    """Resolves db users (IAM role names or role ARNs) to temporary AWS credentials.

    `config` is the JSON document of `docauth_credentials_provider_new` (a str, bytes, or a
    mapping that is serialised to JSON), e.g.::

        CredentialsProvider({"source": {"type": "default"}, "region": "us-east-1"})

    Sessions take a database's AWS settings (`account_id`, `region`, `assume_role_arn`,
    `external_id`) from its entry in the engine configuration (`databases[].aws`); the
    optional `"database"` block is for `resolve()` without sessions, and a session refuses
    one that contradicts the engine's entry.

    `resolve()` blocks until the credentials are cached or STS answers (bounded by the
    configured timeouts) and returns a `Credentials` usable with `AwsConversation`. The
    provider is shareable between threads; credentials are cached per db user and session
    until five minutes before they expire, and `invalidate()` drops them (e.g. after
    DocumentDB rejected an authentication). Errors raise the exception class of their code:
    `AwsNoCredentialsError`, `AwsAssumeRoleDeniedError`, `AwsStsUnreachableError`,
    `AwsInvalidTokenError`, `AwsInvalidRoleArnError`, `InvalidConfigError`, ...
    """

    def __init__(self, config: Union[str, bytes, Mapping[str, Any]]) -> None:
        if isinstance(config, Mapping):
            config = json.dumps(config)
        raw = _c_string(config, "config")
        lib = _ffi.lib()
        out = ctypes.POINTER(_ffi.docauth_credentials_provider)()
        err = _ffi.new_error_out()
        result = lib.docauth_credentials_provider_new(raw, ctypes.byref(out), ctypes.byref(err))
        del raw, config
        _ffi.check(result, err)
        super().__init__(out, lib.docauth_credentials_provider_free)

    def resolve(self, db_user: StrOrBytes, session_user: StrOrBytes | None = None) -> Credentials:
        """Temporary credentials of the IAM role `db_user` names; `session_user` (the
        identity's user name) becomes the STS role session name."""
        user = _c_string(db_user, "db_user")
        session = None if session_user is None else _c_string(session_user, "session_user")
        lib = _ffi.lib()
        out = ctypes.POINTER(_ffi.docauth_credentials)()
        err = _ffi.new_error_out()
        with self._lock:
            result = lib.docauth_credentials_provider_resolve(
                self._use(), user, session, ctypes.byref(out), ctypes.byref(err)
            )
        _ffi.check(result, err)
        return Credentials._from_handle(out, has_session_token=True)

    def invalidate(self, db_user: StrOrBytes) -> None:
        """Drop the cached credentials of `db_user` (name or ARN); the next resolve calls STS."""
        user = _c_string(db_user, "db_user")
        lib = _ffi.lib()
        err = _ffi.new_error_out()
        with self._lock:
            result = lib.docauth_credentials_provider_invalidate(self._use(), user, ctypes.byref(err))
        _ffi.check(result, err)

    def __enter__(self) -> "CredentialsProvider":
        return self

    def __repr__(self) -> str:
        return f"<docauth.CredentialsProvider {'closed' if self.closed else 'open'}>"
