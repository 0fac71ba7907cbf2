"""Every validation the MONGODB-AWS spec mandates on server-first is rejected, through the
Python binding, with its own exception class — and malformed BSON never crashes."""

from __future__ import annotations

import os
import random
import struct

import bson
import pytest

import docauth

NONCE = bytes(range(1, 33))
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "FQoGZXIvYXdzEXAMPLE-session-token"


def _server_first(s: bytes, h) -> bytes:
    return bson.encode({"s": bson.Binary(s, 0), "h": h})


def _final(server_first: bytes, token: str | None = TOKEN) -> bytes:
    with docauth.Credentials("AKIAIOSFODNN7EXAMPLE", SECRET, token) as creds:
        with docauth.AwsConversation._for_testing(creds, NONCE, 1_700_000_000) as conv:
            conv.client_first()
            return conv.client_final(server_first)


GOOD_S = NONCE + bytes(32)

CASES = [
    # nonce length
    ("s 63 bytes", _server_first(GOOD_S[:63], "sts.amazonaws.com"), docauth.SaslServerNonceLengthError),
    ("s 65 bytes", _server_first(GOOD_S + b"\0", "sts.amazonaws.com"), docauth.SaslServerNonceLengthError),
    ("s 32 bytes (only ours)", _server_first(NONCE, "sts.amazonaws.com"), docauth.SaslServerNonceLengthError),
    ("s empty", _server_first(b"", "sts.amazonaws.com"), docauth.SaslServerNonceLengthError),
    # nonce prefix
    ("s not prefixed by r", _server_first(bytes(64), "sts.amazonaws.com"), docauth.SaslServerNonceMismatchError),
    (
        "s prefix differs in last byte",
        _server_first(NONCE[:31] + b"\xff" + bytes(32), "sts.amazonaws.com"),
        docauth.SaslServerNonceMismatchError,
    ),
    ("r at the end of s", _server_first(bytes(32) + NONCE, "sts.amazonaws.com"), docauth.SaslServerNonceMismatchError),
    # host length
    ("host empty", _server_first(GOOD_S, ""), docauth.SaslHostLengthError),
    ("host 256 bytes", _server_first(GOOD_S, ("a" * 63 + ".") * 3 + "b" * 64), docauth.SaslHostLengthError),
    ("host 300 bytes", _server_first(GOOD_S, "s" * 300), docauth.SaslHostLengthError),
    # labels
    ("empty label", _server_first(GOOD_S, "sts..amazonaws.com"), docauth.SaslHostEmptyLabelError),
    ("empty label at the end", _server_first(GOOD_S, "sts.amazonaws..com"), docauth.SaslHostEmptyLabelError),
    ("leading dot", _server_first(GOOD_S, ".sts.amazonaws.com"), docauth.SaslHostEdgeDotError),
    ("trailing dot", _server_first(GOOD_S, "sts.amazonaws.com."), docauth.SaslHostEdgeDotError),
]

_GOOD = _server_first(GOOD_S, "sts.amazonaws.com")
_doc = lambda **kw: bson.encode(kw)  # noqa: E731
MALFORMED = [
    ("empty", b""),
    ("4 bytes", b"\x05\x00\x00\x00"),
    ("truncated by one", _GOOD[:-1]),
    ("truncated in half", _GOOD[: len(_GOOD) // 2]),
    ("length field too big", struct.pack("<i", len(_GOOD) + 10) + _GOOD[4:]),
    ("length field too small", struct.pack("<i", 5) + _GOOD[4:]),
    ("negative length", struct.pack("<i", -1) + _GOOD[4:]),
    ("trailing garbage", _GOOD + b"\x00junk"),
    ("missing s", _doc(h="sts.amazonaws.com")),
    ("missing h", _doc(s=bson.Binary(GOOD_S, 0))),
    ("s is a string", _doc(s="x" * 64, h="sts.amazonaws.com")),
    ("h is an int", _doc(s=bson.Binary(GOOD_S, 0), h=42)),
    ("h is binary", _doc(s=bson.Binary(GOOD_S, 0), h=bson.Binary(b"sts.amazonaws.com", 0))),
    ("s is a document", _doc(s={"x": 1}, h="sts.amazonaws.com")),
    ("extra field", _doc(s=bson.Binary(GOOD_S, 0), h="sts.amazonaws.com", x=1)),
    ("empty document", _doc()),
    ("not BSON (JSON)", b'{"s": "abc", "h": "sts.amazonaws.com"}'),
    ("16 MB of junk", random.Random(7).randbytes(16 * 1024 * 1024)),
    ("16 MB zeros", bytes(16 * 1024 * 1024)),
]


def test_the_good_server_first_is_accepted():
    final = bson.decode(_final(_GOOD))
    assert set(final) == {"a", "d", "t"} and final["t"] == TOKEN
    assert set(bson.decode(_final(_GOOD, None))) == {"a", "d"}
    # 255 bytes is the longest allowed host
    host255 = ("a" * 63 + ".") * 3 + "b" * 63
    assert len(host255) == 255
    assert "aaaaaaaa" in bson.decode(_final(_server_first(GOOD_S, host255)))["a"]


@pytest.mark.parametrize("label,server_first,cls", CASES, ids=[c[0] for c in CASES])
def test_each_spec_violation_has_its_own_exception(label, server_first, cls):
    with pytest.raises(docauth.DocauthError) as info:
        _final(server_first)
    err = info.value
    assert type(err) is cls, f"{label}: got {type(err).__name__} ({err}), expected {cls.__name__}"
    assert err.code == cls.code and err.name == cls.name
    assert err.message and err.message != err.name
    assert SECRET not in str(err) and TOKEN not in str(err)


def test_the_spec_violation_classes_are_all_distinct():
    classes = {c[2] for c in CASES} | {docauth.SaslMalformedServerFirstError}
    assert len(classes) == 6 and all(issubclass(c, docauth.DocauthError) for c in classes)
    assert len({c.code for c in classes}) == 6


@pytest.mark.parametrize("label,server_first", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_server_first_is_an_error_never_a_crash(label, server_first):
    with pytest.raises(docauth.SaslMalformedServerFirstError) as info:
        _final(server_first)
    assert info.value.message


def test_random_mutations_of_server_first_never_crash():
    """Fuzz-style: flip/truncate/extend a good server-first; every outcome is either a
    payload or a DocauthError of the conversation group (never PANIC, never a crash)."""
    rng = random.Random(20261125)
    allowed = {
        docauth.SaslMalformedServerFirstError,
        docauth.SaslServerNonceLengthError,
        docauth.SaslServerNonceMismatchError,
        docauth.SaslHostLengthError,
        docauth.SaslHostEmptyLabelError,
        docauth.SaslHostEdgeDotError,
        docauth.SigningFailedError,  # e.g. a host with a control character cannot be a header
    }
    outcomes = {}
    for _ in range(300):
        data = bytearray(_GOOD)
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(3)
            if op == 0 and data:
                data[rng.randrange(len(data))] = rng.randrange(256)
            elif op == 1 and data:
                del data[rng.randrange(len(data)) :]
            else:
                data += rng.randbytes(rng.randint(1, 8))
        try:
            _final(bytes(data))
            outcomes["ok"] = outcomes.get("ok", 0) + 1
        except docauth.DocauthError as e:
            assert type(e) in allowed, f"{type(e).__name__}: {e}"
            outcomes[type(e).__name__] = outcomes.get(type(e).__name__, 0) + 1
    assert "SaslMalformedServerFirstError" in outcomes


def test_state_errors():
    with docauth.Credentials("AKIAIOSFODNN7EXAMPLE", SECRET) as creds:
        with docauth.AwsConversation._for_testing(creds, NONCE, 0) as conv:
            with pytest.raises(docauth.InvalidStateError):
                conv.client_final(_GOOD)  # before client_first
        with docauth.AwsConversation(creds) as conv:
            conv.client_first()
            with pytest.raises(docauth.InvalidStateError):
                conv.client_first()
        with docauth.AwsConversation._for_testing(creds, NONCE, 0) as conv:
            conv.client_first()
            conv.client_final(_GOOD)
            with pytest.raises(docauth.InvalidStateError):
                conv.client_final(_GOOD)


def test_client_nonce_must_be_32_bytes():
    with docauth.Credentials("AKIAIOSFODNN7EXAMPLE", SECRET) as creds:
        for n in (0, 31, 33, 64):
            with pytest.raises(docauth.DocauthError) as info:
                docauth.AwsConversation._for_testing(creds, os.urandom(n), 0)
            assert type(info.value) is docauth.InvalidArgumentError, info.value
