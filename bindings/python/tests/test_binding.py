"""Unit tests of the binding itself: error mapping, strings, handle life cycle."""

from __future__ import annotations

import ctypes
import gc
import re
import threading

import bson
import pytest

import docauth
from binding_paths import REPO
from docauth import _ffi

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
NONCE = bytes(range(32))


def creds(**kw) -> docauth.Credentials:
    return docauth.Credentials(kw.get("akid", "AKIAIOSFODNN7EXAMPLE"), kw.get("secret", SECRET), kw.get("token"))


def test_library_and_package_versions_are_the_crate_version():
    """Cargo.toml is the one source: the library reports it, pyproject.toml repeats it and the
    package's __version__ comes from the installed metadata."""
    cargo = (REPO / "Cargo.toml").read_text()
    version = re.search(r'^version\s*=\s*"([^"]+)"', cargo, re.M).group(1)
    pyproject = (REPO / "bindings" / "python" / "pyproject.toml").read_text()
    assert re.search(r'^version\s*=\s*"([^"]+)"', pyproject, re.M).group(1) == version
    assert docauth.library_version() == version
    assert docauth.__version__ == version


def test_check_maps_a_real_library_error_to_its_class():
    """NULL can't be passed through the public API, so call the C function directly: the
    library's own error object must come out as NullParameterError with its message."""
    lib = _ffi.lib()
    out = ctypes.POINTER(_ffi.docauth_credentials)()
    err = _ffi.new_error_out()
    result = lib.docauth_credentials_new(None, b"secret", None, ctypes.byref(out), ctypes.byref(err))
    assert result == docauth.NullParameterError.code
    assert not out  # out-params untouched on failure
    with pytest.raises(docauth.NullParameterError) as info:
        _ffi.check(result, err)
    e = info.value
    assert (e.code, e.name) == (1, "DOCAUTH_RESULT_NULL_PARAMETER")
    assert e.message and "access_key_id" in e.message
    assert str(e).startswith("DOCAUTH_RESULT_NULL_PARAMETER: ")
    assert isinstance(e, docauth.DocauthError)


def test_credentials_read_back_the_key_id_and_no_expiry():
    with creds(akid="AKIAREADBACK00000000") as c:
        assert c.access_key_id == "AKIAREADBACK00000000"
        assert c.expiry is None  # long-term keys
        assert SECRET not in repr(c) and "AKIAREADBACK00000000" in repr(c)
    lib = _ffi.lib()
    assert lib.docauth_credentials_access_key_id(None) == b""
    assert lib.docauth_credentials_expiry(None) == 0


def test_check_without_error_object_still_raises_the_class():
    with pytest.raises(docauth.SaslHostEdgeDotError) as info:
        _ffi.check(docauth.SaslHostEdgeDotError.code, _ffi.new_error_out())
    assert info.value.message == "DOCAUTH_RESULT_SASL_HOST_EDGE_DOT"


def test_check_unknown_code_raises_the_base_class():
    with pytest.raises(docauth.DocauthError) as info:
        _ffi.check(4242, _ffi.new_error_out())
    assert type(info.value) is docauth.DocauthError and info.value.code == 4242


@pytest.mark.parametrize("field", ["akid", "secret", "token"])
def test_empty_access_key_secret_or_token_is_invalid_credentials(field):
    # An empty token is refused too: "no token" is None, not "".
    with pytest.raises(docauth.AwsInvalidCredentialsError) as info:
        creds(**{field: ""})
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("field", ["akid", "token"])
def test_header_unsafe_key_or_token_is_invalid_credentials(field):
    with pytest.raises(docauth.AwsInvalidCredentialsError):
        creds(**{field: "has space"})


@pytest.mark.parametrize("field", ["akid", "secret", "token"])
def test_invalid_utf8_bytes_are_rejected_by_the_library(field):
    with pytest.raises(docauth.InvalidUtf8Error) as info:
        creds(**{field: b"AKIA\xff\xfe"})
    assert info.value.code == 2


@pytest.mark.parametrize("field", ["akid", "secret", "token"])
def test_surrogate_escaped_str_reaches_the_library_as_invalid_utf8(field):
    value = b"bad\xc3\x28".decode("utf-8", "surrogateescape")  # '\udcc3(' : undecodable byte
    with pytest.raises(docauth.InvalidUtf8Error):
        creds(**{field: value})


@pytest.mark.parametrize("field", ["akid", "secret", "token"])
def test_lone_surrogate_is_invalid_utf8(field):
    with pytest.raises(docauth.InvalidUtf8Error) as info:
        creds(**{field: "ab\ud800cd"})
    assert "lone surrogate" in info.value.message


@pytest.mark.parametrize("field", ["akid", "secret", "token"])
def test_nul_byte_is_refused_not_truncated(field):
    with pytest.raises(docauth.InvalidArgumentError) as info:
        creds(**{field: "abc\0def"})
    assert "NUL" in info.value.message


def test_non_string_argument_is_a_type_error():
    with pytest.raises(TypeError):
        docauth.Credentials(123, SECRET)  # type: ignore[arg-type]
    with creds() as c, docauth.AwsConversation(c) as conv:
        conv.client_first()
        with pytest.raises(TypeError):
            conv.client_final("not bytes")  # type: ignore[arg-type]


def test_conversation_arguments_are_checked_before_the_call():
    with pytest.raises(TypeError):
        docauth.AwsConversation("AKIA...")  # type: ignore[arg-type]
    with creds() as c:
        with pytest.raises(TypeError):
            docauth.AwsConversation._for_testing(c, NONCE, 1.5)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            docauth.AwsConversation._for_testing(c, "not bytes", 0)  # type: ignore[arg-type]
        for t in (2**63, 2**64 + 5, -(2**63) - 1):  # would wrap silently in ctypes
            with pytest.raises(docauth.InvalidArgumentError) as info:
                docauth.AwsConversation._for_testing(c, NONCE, t)
            assert "int64" in info.value.message
        for t in (-1, 253402300800):  # outside what the library accepts
            with pytest.raises(docauth.InvalidArgumentError) as info:
                docauth.AwsConversation._for_testing(c, NONCE, t)
            assert "unix_time_seconds" in info.value.message


def test_bytes_and_str_arguments_sign_the_same():
    server_first = bson.encode({"s": bson.Binary(NONCE + bytes(32), 0), "h": "sts.amazonaws.com"})
    out = []
    for akid, secret in (("AKIAIOSFODNN7EXAMPLE", SECRET), (b"AKIAIOSFODNN7EXAMPLE", SECRET.encode())):
        with docauth.Credentials(akid, secret) as c, docauth.AwsConversation._for_testing(c, NONCE, 1) as conv:
            conv.client_first()
            out.append(conv.client_final(bytearray(server_first)))
    assert out[0] == out[1]


def test_client_first_is_the_spec_document():
    with creds() as c, docauth.AwsConversation._for_testing(c, NONCE, 0) as conv:
        first = conv.client_first()
    assert first == bson.encode({"r": bson.Binary(NONCE, 0), "p": 110})


def test_real_nonces_are_random_and_32_bytes():
    with creds() as c:
        seen = set()
        for _ in range(20):
            with docauth.AwsConversation(c) as conv:
                doc = bson.decode(conv.client_first())
                assert set(doc) == {"r", "p"} and doc["p"] == 110 and len(doc["r"]) == 32
                seen.add(doc["r"])
    assert len(seen) == 20


def test_repr_has_no_secret():
    with creds(token="SECRET-TOKEN-VALUE") as c:
        assert SECRET not in repr(c) and "SECRET-TOKEN-VALUE" not in repr(c)
        assert "AKIAIOSFODNN7EXAMPLE" in repr(c) and "temporary" in repr(c)
        assert not hasattr(c, "secret_access_key")


def test_close_twice_and_use_after_close():
    c = creds()
    conv = docauth.AwsConversation(c)
    conv.close()
    conv.close()
    assert conv.closed
    with pytest.raises(docauth.UseAfterCloseError) as info:
        conv.client_first()
    assert isinstance(info.value, docauth.InvalidStateError)
    assert "closed" in info.value.message
    c.close()
    c.close()
    with pytest.raises(docauth.UseAfterCloseError):
        docauth.AwsConversation(c)
    with pytest.raises(docauth.UseAfterCloseError):
        docauth.AwsConversation._for_testing(c, NONCE, 0)


def test_context_managers_close():
    with creds() as c:
        with docauth.AwsConversation(c) as conv:
            assert not conv.closed
        assert conv.closed
    assert c.closed
    with pytest.raises(docauth.UseAfterCloseError):
        conv.client_first()


def test_context_manager_closes_on_exception():
    with pytest.raises(RuntimeError):
        with creds() as c, docauth.AwsConversation(c) as conv:
            raise RuntimeError("boom")
    assert conv.closed and c.closed


def test_conversation_outlives_its_credentials_object():
    c = creds()
    conv = docauth.AwsConversation._for_testing(c, NONCE, 0)
    c.close()
    del c
    gc.collect()
    conv.client_first()
    final = conv.client_final(bson.encode({"s": bson.Binary(NONCE + bytes(32), 0), "h": "sts"}))
    assert set(bson.decode(final)) == {"a", "d"}
    conv.close()


def test_del_is_a_safety_net():
    # Objects dropped without close() are freed by __del__; a failed constructor leaves
    # nothing to free and must not raise from __del__ either.
    for _ in range(200):
        c = creds()
        docauth.AwsConversation(c).client_first()
        del c
    with pytest.raises(docauth.AwsInvalidCredentialsError):
        creds(akid="")
    gc.collect()


def test_one_thread_at_a_time_client_first_happens_once():
    with creds() as c, docauth.AwsConversation(c) as conv:
        barrier = threading.Barrier(8)
        results: list[object] = []

        def run():
            barrier.wait()
            try:
                results.append(conv.client_first())
            except docauth.InvalidStateError as e:
                results.append(e)

        threads = [threading.Thread(target=run) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sum(isinstance(r, bytes) for r in results) == 1
    assert sum(isinstance(r, docauth.InvalidStateError) for r in results) == 7


def test_close_racing_with_use_never_crashes():
    for _ in range(50):
        c = creds()
        conv = docauth.AwsConversation(c)
        t = threading.Thread(target=conv.close)
        t.start()
        try:
            conv.client_first()
        except docauth.UseAfterCloseError:
            pass
        t.join()
        c.close()


def _run_python(code: str, **env: str):
    import os
    import subprocess
    import sys

    full_env = {k: v for k, v in os.environ.items() if k != "DOCAUTH_LIBRARY"}
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", code], env=full_env, capture_output=True, text=True, timeout=60)


def test_library_discovery_env_variable_is_explicit():
    r = _run_python("import docauth; docauth.library_version()", DOCAUTH_LIBRARY="/nonexistent/libdocauth.so")
    assert r.returncode != 0
    assert "LibraryNotFoundError" in r.stderr and "/nonexistent/libdocauth.so" in r.stderr


def test_library_discovery_falls_back_to_the_repository_build():
    r = _run_python("import docauth._ffi as f; print(f.library_candidates()[0]); import docauth; print(docauth.library_version())")
    assert r.returncode == 0, r.stderr
    first, version = r.stdout.split()
    assert first == str(REPO / "target" / "release" / "libdocauth.so")
    assert version == docauth.library_version()


def test_importing_the_package_does_not_load_the_library():
    r = _run_python("import docauth, docauth._ffi as f; print(f._lib is None)", DOCAUTH_LIBRARY="/nonexistent/x.so")
    assert r.returncode == 0 and r.stdout.strip() == "True", r.stderr
