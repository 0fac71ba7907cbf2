"""Writes the seed inputs of every fuzz target into a directory (one sub-directory per
target), from real messages and documents:

- wire targets: the driver-encoded fixtures of src/wire/tests.rs (pymongo, the zstd CLI,
  Python's zlib) and every message of the adversarial corpus (tests/adversarial/corpus.py:
  must-deny cases with their compressed and moreToCome twins, and the must-allow near misses);
- MONGODB-AWS: the specification's server-first example, and hosts for the host parser;
- STS: AssumeRole / GetCallerIdentity answers and errors as STS and moto write them;
- policy config, decision request, session parameters, provider config: the documented
  examples and the tests' documents.

The committed corpora (fuzz/corpus/) are these seeds after fuzzing and `cargo fuzz cmin`;
see fuzz/README.md. Needs pymongo's `bson` (tests/requirements.txt):

    .venv/bin/python fuzz/seed_corpora.py /tmp/seeds
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import bson  # noqa: E402
from bson.binary import Binary  # noqa: E402

from tests.adversarial import corpus  # noqa: E402
from tests.adversarial import framing as f  # noqa: E402

OP_MSG, OP_QUERY, OP_COMPRESSED = 2013, 2004, 2012


# Larger inputs (the corpus's oversized messages) only slow the fuzzer down: the size limits
# are reached by the fuzzer's own length fields.
MAX_SEED = 64 * 1024


def save(out: Path, target: str, data: bytes) -> None:
    if len(data) > MAX_SEED:
        return
    d = out / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


def wire_messages() -> list[bytes]:
    messages = []
    text = (ROOT / "src/wire/tests.rs").read_text()
    for hex_text in re.findall(r'"((?:[0-9a-f]{2}){16,})"', text):
        messages.append(bytes.fromhex(hex_text))
    for case in corpus.must_deny() + corpus.must_allow():
        messages.append(case.build(1))
    return messages


def sections_of(m: bytes) -> bytes | None:
    """An OP_MSG's sections (no checksum), as the harness wraps them."""
    if len(m) < 21 or struct.unpack_from("<i", m, 12)[0] != OP_MSG:
        return None
    flags = struct.unpack_from("<I", m, 16)[0]
    if flags & 1 or m[20] != 0:
        return None
    return m[21:]


def query_of(m: bytes) -> tuple[str, bytes] | None:
    """An OP_QUERY's namespace and query (and anything after it)."""
    if len(m) < 20 or struct.unpack_from("<i", m, 12)[0] != OP_QUERY:
        return None
    end = m.index(b"\0", 20)
    return m[20:end].decode(errors="replace"), m[end + 9 :]


def first_key(doc: bytes) -> str:
    try:
        return next(iter(bson.decode(doc[: struct.unpack_from("<i", doc)[0]]).keys()), "")
    except Exception:
        return ""


def wire(out: Path) -> None:
    messages = wire_messages()
    for m in messages:
        save(out, "wire_message", m)
        save(out, "wire_frame", b"\x07" + m)
        op = struct.unpack_from("<i", m, 12)[0] if len(m) >= 16 else 0
        if op == OP_COMPRESSED and len(m) >= 25:
            original = struct.unpack_from("<i", m, 16)[0]
            save(out, "wire_decompress", bytes([m[24], 1 if original == OP_QUERY else 0]) + m[20:24] + m[25:])
        sections = sections_of(m)
        if sections is not None:
            save(out, "wire_analyse", sections)
            save(out, "wire_differential", sections)
            save(out, "wire_decompress", b"\x01\x00" + sections)
            if first_key(sections) in ("hello", "isMaster", "ismaster"):
                save(out, "wire_handshake", sections)
        query = query_of(m)
        if query is not None:
            save(out, "wire_analyse", query[1])
            if first_key(query[1]) in ("hello", "isMaster", "ismaster", "$query", "query"):
                save(out, "wire_handshake", query[1])
    # A stream of several messages, delivered in 1-byte and 64-byte pieces.
    stream = b"".join(messages[:6])
    save(out, "wire_frame", b"\x00" + stream)
    save(out, "wire_frame", b"\x3f" + stream)
    # Driver handshakes as drivers send them (pymongo 4.x's first hello).
    hello = {
        "hello": 1,
        "helloOk": True,
        "client": {
            "driver": {"name": "PyMongo", "version": "4.20.1"},
            "os": {"type": "Linux", "name": "Linux", "architecture": "x86_64", "version": "6.8"},
            "platform": "CPython 3.12.3.final.0",
        },
        "compression": ["zstd", "snappy", "zlib"],
        "saslSupportedMechs": "admin.app",
        "speculativeAuthenticate": {"saslStart": 1, "mechanism": "MONGODB-AWS", "payload": Binary(b"\x05\x00\x00\x00\x00"), "db": "$external"},
        "$db": "admin",
    }
    save(out, "wire_handshake", bson.encode(hello))
    legacy = dict(hello)
    del legacy["hello"]
    legacy = {"isMaster": 1, **legacy}
    del legacy["$db"]
    save(out, "wire_handshake", bson.encode(legacy))
    save(out, "wire_handshake", bson.encode({"$query": legacy, "$readPreference": {"mode": "primaryPreferred"}}))


def aws(out: Path) -> None:
    nonce = bytes([7]) * 32 + bytes(range(32))
    for host in ["sts.amazonaws.com", "sts.us-west-2.amazonaws.com", "sts.cn-north-1.amazonaws.com.cn", "localhost"]:
        save(out, "aws_server_first", b"\x00" + bson.encode({"s": Binary(nonce), "h": host}))
        save(out, "aws_server_first", b"\x01" + bytes(range(32)) + host.encode())
    save(out, "aws_server_first", b"\x00" + bson.encode({"s": Binary(nonce, 4), "h": "sts.amazonaws.com"}))
    save(out, "aws_server_first", b"\x00" + bson.encode({"s": Binary(nonce), "h": "sts.amazonaws.com", "x": 1}))
    assume = (
        '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>'
        "<SourceIdentity>alice</SourceIdentity><AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/fuzz/alice</Arn>"
        "<AssumedRoleId>AROA3XFRBF535PLBIFPI4:alice</AssumedRoleId></AssumedRoleUser><Credentials>"
        "<AccessKeyId>ASIAJEXAMPLEXEG2JICEA</AccessKeyId><SecretAccessKey>9drTJvcXLB89EXAMPLELB8923FB892xMFI</SecretAccessKey>"
        "<SessionToken>AQoXdzELDDY//////////wEaoAK1wvxJY12r2IrDFT2IvAzTCn3zHoZ7YNtpiQLF0MqZye/qwjzP2iEXAMPLE</SessionToken>"
        "<Expiration>2099-10-24T23:00:23Z</Expiration></Credentials><PackedPolicySize>8</PackedPolicySize>"
        "</AssumeRoleResult><ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata></AssumeRoleResponse>"
    )
    caller = (
        '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>'
        "<Arn>arn:aws:iam::123456789012:user/service</Arn><UserId>AIDACKCEVSQ6C2EXAMPLE</UserId><Account>123456789012</Account>"
        "</GetCallerIdentityResult><ResponseMetadata><RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
    )

    def error(code: str, message: str, wrapper: str = "ErrorResponse") -> str:
        inner = f"<Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
        if wrapper == "Errors":
            return f"<Response><Errors>{inner}</Errors><RequestID>x</RequestID></Response>"
        return f'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">{inner}<RequestId>x</RequestId></ErrorResponse>'

    answers = [
        (0, assume),
        (0, assume.replace("2099-10-24T23:00:23Z", "not a time")),
        (0, assume.replace("<Credentials>", "<Nothing>").replace("</Credentials>", "</Nothing>")),
        (0, caller),
        (3, error("AccessDenied", "User: arn:aws:iam::123456789012:user/service is not authorized to perform: sts:AssumeRole")),
        (2, error("ExpiredToken", "The security token included in the request is expired")),
        (3, error("SignatureDoesNotMatch", "The request signature we calculated does not match", "Errors")),
        (2, error("InvalidClientTokenId", "The security token included in the request is invalid.")),
        (4, error("InternalFailure", "internal")),
        (5, error("Throttling", "Rate exceeded")),
        (0x83, error("AccessDenied", "secret was {SECRET} and token {TOKEN}")),
        (0x82, error("ExpiredToken", "{TOKEN}", "Errors")),
        (4, "<html>502 Bad Gateway</html>"),
        (6, ""),
        (7, ""),
    ]
    for status, body in answers:
        save(out, "aws_sts_response", bytes([status]) + body.encode())


def policy(out: Path) -> None:
    docs = []
    text = (ROOT / "docs/policy.md").read_text()
    docs += re.findall(r"```(?:yaml|json)\n(.*?)```", text, re.S)
    module_doc = (ROOT / "src/policy/config.rs").read_text().split("//! ```yaml\n", 1)[1].split("//! ```", 1)[0]
    docs.append("\n".join(line[4:] for line in module_doc.splitlines()))
    docs.append(
        "roles:\n  - {kind: role, version: v7, metadata: {name: dev}, spec: {allow: {db_labels: {env: dev}, db_users: ['*'], db_names: [test, reports]}}}\n"
        "  - {kind: role, version: v7, metadata: {name: no-reports}, spec: {deny: {db_names: [reports]}}}\n"
        "  - {kind: role, version: v7, metadata: {name: tmpl}, spec: {allow: {db_labels: {env: '{{external.env}}'}, db_users: ['{{internal.db_users}}'], db_names: ['{{regexp.replace(external.team, \"^(.*)$\", \"team-$1\")}}', '^app-.*$']}}}\n"
        "databases:\n  - {name: my-docdb, labels: {env: dev}, aws: {account_id: '123456789012', region: us-east-1}}\n"
        "identities:\n  - {user: alice, roles: [dev, tmpl], traits: {db_users: ['*'], env: [dev], team: [a]}}\n"
        "modules:\n  - name: ops.rego\n    rego: |\n      package docauth.operator\n      import rego.v1\n      deny contains \"no drops\" if input.request.command == \"dropDatabase\"\n"
    )
    docs.append(json.dumps({"roles": [{"kind": "role", "version": "v7", "metadata": {"name": "r"}, "spec": {"allow": {"db_labels": {"*": "*"}, "db_users": ["*"], "db_names": ["*"]}, "deny": {"db_names": ["admin"]}}}], "databases": [{"name": "d", "labels": {"a": "b"}}]}))
    docs.append("roles: [roles/access.yaml]\n")
    for d in docs:
        save(out, "policy_config", d.encode())
    requests = [
        {"identity": "bob", "database": "docdb", "db_user": "u", "db_name": "test", "command": "find", "namespaces": ["test.a"]},
        {"identity": {"user": "a", "roles": ["only-test"], "traits": {"db_names": ["x"]}}, "database": "docdb", "db_user": "u", "db_name": "admin", "command": "listDatabases"},
        {"identity": "bob", "database": "docdb", "db_user": "u"},
        {"identity": {"user": "a"}, "database": "docdb", "db_user": "u", "bogus": 1},
    ]
    for r in requests:
        save(out, "policy_request", json.dumps(r).encode())
    params = [
        {"identity": "alice", "database": "my-docdb", "db_user": "u"},
        {"identity": {"user": "a", "roles": ["dev"], "traits": {"db_names": ["test"]}}, "database": "my-docdb", "database_uri": "mongodb://h.docdb.amazonaws.com:27017/?tls=true&tlsCAFile=/etc/ssl/global-bundle.pem", "ca_file": "/etc/ssl/global-bundle.pem", "db_user": "arn:aws:iam::123456789012:role/r", "db_name": "test", "connect_timeout_ms": 1000, "idle_timeout_ms": 0, "client_write_timeout_ms": 5, "client_addr": "10.0.0.1:5000"},
        {"identity": "alice", "database": "my-docdb", "db_user": "u", "client_write_timeout_ms": 0},
    ]
    for p in params:
        save(out, "session_params", json.dumps(p).encode())
    for uri in ["mongodb://127.0.0.1:27017/?tls=false", "mongodb://[::1]:27018/?tls=true&tlsCAFile=%2Ftmp%2Fca.pem", "mongodb://u:p@h"]:
        save(out, "session_params", uri.encode())
    settings = [
        {"source": {"type": "default"}, "region": "us-east-1", "sts_endpoint": "http://127.0.0.1:5000", "imds_endpoint": "http://169.254.169.254", "connect_timeout_ms": 3000, "operation_timeout_ms": 10000, "imds_timeout_ms": 1000, "session_duration_seconds": 3600, "database": {"account_id": "123456789012", "region": "us-east-1", "assume_role_arn": "arn:aws:iam::123456789012:role/docdb-access", "external_id": "example-external-id"}},
        {"source": {"type": "static", "access_key_id": "AKID", "secret_access_key": "s", "session_token": "t"}, "region": "cn-north-1"},
        {"source": {"type": "profile", "name": "prod"}, "database": {"region": "us-gov-west-1"}},
        {"region": "US East"},
        {"session_duration_seconds": 60},
    ]
    for s in settings:
        save(out, "provider_config", json.dumps(s).encode())


def main() -> None:
    out = Path(sys.argv[1])
    wire(out)
    aws(out)
    policy(out)
    for d in sorted(out.iterdir()):
        print(f"{d.name}: {len(list(d.iterdir()))}")


if __name__ == "__main__":
    main()
