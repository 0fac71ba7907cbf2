"""Conformance: our payloads are byte-identical to pymongo-auth-aws's for the same inputs.

pymongo-auth-aws (with botocore's SigV4) is an independent MONGODB-AWS implementation. For
each generated input set — keys, optional session token, client nonce, server nonce, STS host,
signing time — both sign the same conversation: pymongo-auth-aws with os.urandom (as seen by
pymongo_auth_aws.auth) and botocore.auth.get_current_datetime frozen, libdocauth through
`AwsConversation._for_testing(credentials, nonce, unix_time)`. Client-first and client-final
must be equal byte for byte. Seeded: DOCAUTH_CONFORMANCE_SEED / _CASES override the defaults.
"""

from __future__ import annotations

import calendar
import dataclasses
import os
import random
import string
import time

import bson
import pytest
from reference_signer import reference_payloads

import docauth

SEED = int(os.environ.get("DOCAUTH_CONFORMANCE_SEED", "20261125"))
CASES = int(os.environ.get("DOCAUTH_CONFORMANCE_CASES", "40"))

_UPPER_ALNUM = string.ascii_uppercase + string.digits
_B64 = string.ascii_letters + string.digits + "+/"
_PRINTABLE_NO_SPACE = "".join(c for c in string.printable if not c.isspace())

# Regions and partitions, the global endpoint, a single-label host (region us-east-1 per the
# spec), FIPS and upper-case spellings, and a 255-byte host (the longest allowed).
HOSTS = [
    "sts.amazonaws.com",
    "sts.us-east-1.amazonaws.com",
    "sts.us-west-2.amazonaws.com",
    "sts.eu-central-1.amazonaws.com",
    "sts.ap-southeast-2.amazonaws.com",
    "sts.cn-north-1.amazonaws.com.cn",
    "sts.cn-northwest-1.amazonaws.com.cn",
    "sts.us-gov-west-1.amazonaws.com",
    "sts.us-iso-east-1.c2s.ic.gov",
    "sts-fips.us-east-2.amazonaws.com",
    "sts",
    "localhost",
    "STS.EU-WEST-1.AMAZONAWS.COM",
    "sts.me-central-1.amazonaws.com",
    ("a" * 63 + ".") * 3 + "b" * 63,  # 255 bytes, region = "aaa…a"
]

_T = calendar.timegm
TIMES = [
    _T((2024, 1, 1, 0, 0, 0)),  # midnight, new year
    _T((2023, 12, 31, 23, 59, 59)),  # last second of a year
    _T((2024, 2, 29, 12, 0, 0)),  # leap day
    _T((2025, 3, 1, 0, 0, 0)),  # midnight after February
    _T((1970, 1, 1, 0, 0, 0)),  # the epoch
    _T((2099, 12, 31, 23, 59, 59)),
    _T((2026, 11, 25, 18, 0, 0)),
]


@dataclasses.dataclass(frozen=True)
class InputSet:
    index: int
    access_key_id: str
    secret_access_key: str
    session_token: str | None
    client_nonce: bytes
    server_nonce_tail: bytes
    sts_host: str
    unix_time: int

    @property
    def server_first(self) -> bytes:
        return bson.encode({"s": bson.Binary(self.client_nonce + self.server_nonce_tail, 0), "h": self.sts_host})

    def __str__(self) -> str:  # pytest id: no secrets
        token = "none" if self.session_token is None else f"token{len(self.session_token)}"
        return f"{self.index}-{self.sts_host[:30]}-{token}-{self.unix_time}"


def _token(rng: random.Random) -> str:
    kind = rng.choice(["sts", "b64", "printable", "short", "long"])
    if kind == "sts":  # the shape of a real STS session token
        return "FQoGZXIvYXdzE" + "".join(rng.choice(_B64) for _ in range(rng.randint(300, 900))) + "=="
    if kind == "b64":
        return "".join(rng.choice(_B64 + "=") for _ in range(rng.randint(20, 200)))
    if kind == "printable":
        return "".join(rng.choice(_PRINTABLE_NO_SPACE) for _ in range(rng.randint(10, 300)))
    if kind == "short":
        return rng.choice(_B64)
    return "".join(rng.choice(_B64) for _ in range(rng.randint(2000, 4000)))


def generate(seed: int, count: int) -> list[InputSet]:
    rng = random.Random(seed)
    sets = []
    for i in range(count):
        prefix = rng.choice(["AKIA", "ASIA", "AROA", ""])
        akid = prefix + "".join(rng.choice(_UPPER_ALNUM) for _ in range(rng.choice([16, 16, 12, 28])))
        secret = "".join(rng.choice(_B64) for _ in range(rng.choice([40, 40, 30, 64])))
        token = None if i % 3 == 0 else _token(rng)
        nonce = rng.randbytes(32)
        if i == 0:
            nonce = bytes(32)
        elif i == 1:
            nonce = b"\xff" * 32
        tail = rng.randbytes(32)
        host = HOSTS[i % len(HOSTS)]
        when = TIMES[i % len(TIMES)] if i < 2 * len(TIMES) else rng.randint(_T((2000, 1, 1, 0, 0, 0)), _T((2040, 1, 1, 0, 0, 0)))
        sets.append(InputSet(i, akid, secret, token, nonce, tail, host, when))
    return sets


INPUT_SETS = generate(SEED, CASES)


def test_the_generated_inputs_cover_what_the_issue_asks():
    assert len(INPUT_SETS) >= 20
    assert {s.sts_host for s in INPUT_SETS} >= set(HOSTS)
    assert {s.unix_time for s in INPUT_SETS} >= set(TIMES)
    tokens = [s.session_token for s in INPUT_SETS if s.session_token is not None]
    assert any(s.session_token is None for s in INPUT_SETS) and len(tokens) >= 10
    assert len({len(t) for t in tokens}) >= 8  # varied lengths
    assert any(set(t) - set(_B64 + "=") for t in tokens)  # characters beyond base64
    assert len({s.client_nonce for s in INPUT_SETS}) == len(INPUT_SETS)
    assert len(max(HOSTS, key=len)) == 255


@pytest.mark.parametrize("case", INPUT_SETS, ids=str)
def test_payloads_are_byte_identical_to_pymongo_auth_aws(case: InputSet):
    ref_first, ref_final = reference_payloads(
        case.access_key_id,
        case.secret_access_key,
        case.session_token,
        case.client_nonce,
        case.server_first,
        case.unix_time,
    )
    with docauth.Credentials(case.access_key_id, case.secret_access_key, case.session_token) as creds:
        with docauth.AwsConversation._for_testing(creds, case.client_nonce, case.unix_time) as conv:
            first = conv.client_first()
            final = conv.client_final(case.server_first)

    # The reference itself is what we think it is (guards against a broken freeze).
    assert bson.decode(ref_first) == {"r": case.client_nonce, "p": 110}
    ref_doc = bson.decode(ref_final)
    assert ref_doc["d"] == time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(case.unix_time))
    assert ("t" in ref_doc) == (case.session_token is not None)

    assert first == ref_first
    if final != ref_final:
        # Show the decoded documents (a and d are not secret; the token is shown by length).
        ours = bson.decode(final)
        detail = {
            k: (ours.get(k), ref_doc.get(k)) if k != "t" else (len(ours.get("t", "")), len(ref_doc.get("t", "")))
            for k in sorted(set(ours) | set(ref_doc))
        }
        pytest.fail(f"client-final differs from pymongo-auth-aws (ours, reference): {detail}")
