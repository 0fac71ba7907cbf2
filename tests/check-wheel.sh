#!/usr/bin/env bash
# The Python wheel works for a user who has no Rust, no checkout and no environment set-up:
#   tests/check-wheel.sh WHEEL        (make test-wheel builds it with `make wheel` first)
#  1. the wheel is a platform wheel, docauth-<version>-py3-none-<platform>.whl, with
#     docauth/libdocauth.so inside;
#  2. it installs into a fresh venv outside the repository (no index, no dependencies);
#  3. a smoke script run from a directory under /tmp, with no DOCAUTH_LIBRARY, PYTHONPATH or
#     LD_LIBRARY_PATH, loads the bundled library, signs a MONGODB-AWS conversation, decides an
#     allowed and a denied request, and starts and stops a runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
wheel=$(realpath "$1")
version=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)
fail() { echo "check-wheel: $*" >&2; exit 1; }
tmp=$(mktemp -d /tmp/docauth-wheel.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

name=$(basename "$wheel")
[[ "$name" =~ ^docauth-${version//./\\.}-py3-none-(manylinux|linux)_[0-9a-z_]+\.whl$ ]] \
    || fail "wheel name '$name' is not docauth-$version-py3-none-<platform>.whl"
files=$(unzip -Z1 "$wheel")
grep -qx 'docauth/libdocauth.so' <<<"$files" || fail "$name does not contain docauth/libdocauth.so"

# A Python from outside the repository's venv (the one that created .venv, or python3).
python=${PYTHON:-python3}
env -u VIRTUAL_ENV "$python" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install -q --no-index "$wheel" || fail "pip install $name failed"

mkdir "$tmp/run"
cat > "$tmp/run/smoke.py" <<'PY'
import os
import struct
import sys

import docauth
from docauth import AwsConversation, Credentials, PolicyEngine, Runtime

package_dir = os.path.dirname(os.path.realpath(docauth.__file__))
loaded = os.path.realpath(docauth.library_path())
assert os.path.dirname(loaded) == package_dir, f"loaded {loaded}, not the copy in {package_dir}"
assert docauth.library_version() == sys.argv[1], docauth.library_version()

# Sign: client-first is BSON {r: BinData(0, 32 bytes), p: 110}; answer with a server-first
# {s: r + 32 server bytes, h: host} and check the client-final carries a SigV4 authorization.
with Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY") as creds, AwsConversation(creds) as conv:
    first = conv.client_first()
    at = first.index(b"\x05r\x00") + 3
    length, subtype = struct.unpack_from("<iB", first, at)
    assert (length, subtype) == (32, 0), (length, subtype)
    nonce = first[at + 5 : at + 5 + 32]
    host = b"sts.amazonaws.com"
    body = (b"\x05s\x00" + struct.pack("<iB", 64, 0) + nonce + bytes(range(32))
            + b"\x02h\x00" + struct.pack("<i", len(host) + 1) + host + b"\x00")
    final = conv.client_final(struct.pack("<i", len(body) + 5) + body + b"\x00")
    assert b"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/" in final, final[:120]

config = """
roles:
  - {kind: role, version: v7, metadata: {name: access},
     spec: {allow: {db_labels: {'*': '*'}, db_users: [teleport-docdb-user], db_names: [test]}}}
databases:
  - {name: my-docdb, labels: {env: dev}}
identities:
  - {user: alice, roles: [access]}
"""
with PolicyEngine(config) as engine:
    ask = {"identity": "alice", "database": "my-docdb", "db_user": "teleport-docdb-user"}
    allowed = engine.decide({**ask, "db_name": "test"})
    denied = engine.decide({**ask, "db_name": "admin"})
    assert allowed.allowed and not denied.allowed, (allowed, denied)

with Runtime(1) as runtime:
    assert not runtime.closed
assert runtime.closed

print(f"smoke: libdocauth {docauth.library_version()} from {loaded}: signed ({len(final)}-byte client-final), "
      f"decided (test allowed, admin denied), runtime started and stopped")
PY
cd "$tmp/run"
env -u DOCAUTH_LIBRARY -u PYTHONPATH -u LD_LIBRARY_PATH -u VIRTUAL_ENV \
    "$tmp/venv/bin/python" smoke.py "$version" || fail "smoke script failed with the installed wheel"
echo "check-wheel: $name installs into a fresh venv and works from /tmp with no environment set"
