"""docauth — Python binding (ctypes) of libdocauth.

    from docauth import Credentials, AwsConversation
    with Credentials(akid, secret, token) as creds, AwsConversation(creds) as conv:
        first = conv.client_first()
        final = conv.client_final(server_first)

    # A proxied session (see docauth.session): the library takes the client socket over.
    with Runtime() as runtime:
        session = runtime.start_session(conn, params, PolicyEngine.from_file("policy.yaml"),
                                        CredentialsProvider(provider_config), on_audit=print)

The shared library is found through $DOCAUTH_LIBRARY, else the copy inside the package
(the platform wheel), else the repository's target/release build, else the system library path.
"""

from __future__ import annotations

from importlib import metadata as _metadata

from . import _ffi
from .aws import AwsConversation, Credentials
from .provider import CredentialsProvider
from .policy import Decision, PolicyEngine
from .session import Runtime, Session, SessionStats
from ._metrics import MetricFamily, MetricSample, metrics, metrics_content_type, metrics_text, parse_metrics
from .errors import *  # noqa: F403 - one exception class per result code
from .errors import __all__ as _error_names

try:
    # pyproject.toml's version, which a test keeps equal to Cargo.toml's (the one source).
    __version__ = _metadata.version("docauth")
except _metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"


def library_version() -> str:
    """The loaded libdocauth's version (`docauth_version()`)."""
    raw = _ffi.lib().docauth_version()
    return raw.decode("utf-8") if raw else ""


def library_path() -> str:
    """The file libdocauth was loaded from ($DOCAUTH_LIBRARY, the package's own copy, ...)."""
    return _ffi.loaded_path()


def result_name(code: int) -> str:
    """The C constant name of a result code, as the library reports it."""
    return _ffi.result_name(code)


__all__ = [
    "AwsConversation",
    "Credentials",
    "CredentialsProvider",
    "Decision",
    "MetricFamily",
    "MetricSample",
    "PolicyEngine",
    "Runtime",
    "Session",
    "SessionStats",
    "library_path",
    "library_version",
    "metrics",
    "metrics_content_type",
    "metrics_text",
    "parse_metrics",
    "result_name",
    *_error_names,
]
