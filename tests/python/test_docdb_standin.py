"""The DocumentDB stand-in (tests/peers/docdb) behaves like DocumentDB to a real client.

pymongo (with pymongo-auth-aws signing MONGODB-AWS) connects straight to the stand-in over
TLS with the generated `global-bundle.pem`; the stand-in verifies the signature by asking
moto's STS (signature checking ON) through `MongoDbAwsVerifier`, maps the caller to a
`$external` user and relays to a real backend — SecantusDB and FerretDB, each started once
for this module. This proves the stand-in before the session tests rely on it.

FerretDB must have been built (`make ferretdb`); without it the FerretDB cases are skipped,
unless DOCAUTH_TEST_REQUIRE_PEERS=1, where they fail.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import sys
from pathlib import Path

import bson
import boto3
import pymongo
import pytest
from pymongo.errors import OperationFailure, ServerSelectionTimeoutError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ -> `peers`

from peers.docdb import wire  # noqa: E402
from peers.docdb.backends import BACKENDS, ferretdb_binary  # noqa: E402
from peers.docdb.harness import DocDb, start_docdb, uri_for  # noqa: E402
from peers.docdb.standin import DocDbStandIn, StandInThread, UserDirectory, principal_for_arn  # noqa: E402
from peers.moto_sts import EXTERNAL_ID, EXTERNAL_ID_ROLE_NAME, REGION  # noqa: E402
from peers.verifier import MongoDbAwsVerifier  # noqa: E402

TIMEOUT_MS = 15_000


@pytest.fixture(scope="module", params=BACKENDS)
def docdb(request, peers):
    backend = request.param
    if backend == "ferretdb" and not os.access(ferretdb_binary(), os.X_OK):
        msg = f"{ferretdb_binary()} missing: run `make ferretdb`"
        if os.environ.get("DOCAUTH_TEST_REQUIRE_PEERS") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    role_arn = principal_for_arn(peers.assumed_role_arn)
    d = start_docdb(backend, sts_endpoint=peers.sts_endpoint, sts_host=peers.sts_host, user_arns=[role_arn, peers.user_arn])
    try:
        yield d
    finally:
        d.stop()


def client(d: DocDb, key: str | None, secret: str | None, token: str | None = None, port: int | None = None, **kw):
    if key is None:  # no credentials at all: TLS only
        uri = f"mongodb://{d.host}:{port or d.port}/?tls=true&directConnection=true"
        return pymongo.MongoClient(uri, tlsCAFile=str(d.pki.bundle), serverSelectionTimeoutMS=TIMEOUT_MS, **kw)
    props = {"AWS_SESSION_TOKEN": token} if token else {}
    return pymongo.MongoClient(
        uri_for(d.host, port or d.port, d.pki.bundle),
        username=key,
        password=secret,
        authMechanismProperties=props,
        serverSelectionTimeoutMS=TIMEOUT_MS,
        **kw,
    )


def backend_client(d: DocDb):
    """Plain connection to the backend itself: to check writes really landed there."""
    return pymongo.MongoClient(d.backend.host, d.backend.port, directConnection=True, serverSelectionTimeoutMS=TIMEOUT_MS)


def crud(c: pymongo.MongoClient, d: DocDb, coll_name: str) -> None:
    coll = c.test[coll_name]
    coll.drop()
    coll.insert_many([{"_id": i, "n": i, "even": i % 2 == 0} for i in range(10)])
    assert coll.count_documents({}) == 10
    # find with a small batch size: the cursor needs getMore through the relay
    assert [doc["n"] for doc in coll.find({}, batch_size=3).sort("n", 1)] == list(range(10))
    assert coll.update_one({"_id": 3}, {"$set": {"n": 33}}).modified_count == 1
    assert coll.find_one({"_id": 3})["n"] == 33
    assert coll.delete_many({"even": True}).deleted_count == 5
    agg = list(coll.aggregate([{"$match": {"even": False}}, {"$group": {"_id": None, "total": {"$sum": "$n"}}}]))
    assert agg == [{"_id": None, "total": 1 + 33 + 5 + 7 + 9}]
    # an unacknowledged write is an OP_MSG with moreToCome: relayed, no reply expected
    coll.with_options(write_concern=pymongo.WriteConcern(w=0)).insert_one({"_id": 100, "n": 100, "even": True})
    assert coll.find_one({"_id": 100}) is not None
    # the data is really in the backend, not in the stand-in
    with backend_client(d) as b:
        assert sorted(doc["_id"] for doc in b.test[coll_name].find()) == [1, 3, 5, 7, 9, 100]


def last_event(d: DocDb, standin: DocDbStandIn | None = None):
    events = (standin or d.standin).auth_events()
    assert events, "the stand-in recorded no authentication attempt"
    return events[-1]


def test_crud_with_iam_user_long_term_keys(docdb, peers):
    with client(docdb, peers.access_key_id, peers.secret_access_key) as c:
        crud(c, docdb, "user_keys")
    ev = last_event(docdb)
    assert ev.ok and ev.principal == peers.user_arn


def test_crud_with_assumed_role_temporary_keys(docdb, peers):
    with client(docdb, peers.temp_access_key_id, peers.temp_secret_access_key, peers.temp_session_token) as c:
        crud(c, docdb, "role_keys")
        assert c.admin.command("ping")["ok"] == 1.0
    ev = last_event(docdb)
    assert ev.ok and ev.principal == principal_for_arn(peers.assumed_role_arn)
    assert ev.principal.endswith(":role/teleport-docdb-user")


def test_wrong_secret_is_authentication_failed(docdb, peers):
    wrong = peers.secret_access_key[:-1] + ("A" if peers.secret_access_key[-1] != "A" else "B")
    with client(docdb, peers.access_key_id, wrong) as c:
        with pytest.raises(OperationFailure) as info:
            c.test.x.find_one()
    assert info.value.code == 18
    assert info.value.details["codeName"] == "AuthenticationFailed"
    assert "Authentication failed" in str(info.value)
    ev = last_event(docdb)
    assert not ev.ok and "SignatureDoesNotMatch" in ev.reason  # moto's verdict, not ours


def test_missing_session_token_is_authentication_failed(docdb, peers):
    with client(docdb, peers.temp_access_key_id, peers.temp_secret_access_key) as c:
        with pytest.raises(OperationFailure) as info:
            c.test.x.find_one()
    assert info.value.code == 18
    assert not last_event(docdb).ok


def test_role_without_external_user_is_authentication_failed(docdb, peers):
    # A real role that moto lets the user assume, but which has no user in $external.
    account = peers.user_arn.split(":")[4]
    sts = boto3.client(
        "sts",
        endpoint_url=peers.sts_endpoint,
        region_name=REGION,
        aws_access_key_id=peers.access_key_id,
        aws_secret_access_key=peers.secret_access_key,
    )
    creds = sts.assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/{EXTERNAL_ID_ROLE_NAME}",
        RoleSessionName="docdb-standin-test",
        ExternalId=EXTERNAL_ID,
    )["Credentials"]
    with client(docdb, creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]) as c:
        with pytest.raises(OperationFailure) as info:
            c.test.x.find_one()
    assert info.value.code == 18
    ev = last_event(docdb)
    assert not ev.ok
    assert ev.principal == f"arn:aws:iam::{account}:role/{EXTERNAL_ID_ROLE_NAME}"
    assert "no user" in ev.reason and "$external" in ev.reason


def test_user_without_mongodb_aws_mechanism_is_authentication_failed(docdb, peers):
    role_arn = principal_for_arn(peers.assumed_role_arn)
    users = UserDirectory.from_json([{"user": role_arn, "db": "$external", "mechanisms": ["SCRAM-SHA-1"]}])
    s = DocDbStandIn(
        backend=docdb.backend.address,
        verifier=MongoDbAwsVerifier(peers.sts_endpoint, peers.sts_host),
        users=users,
        tls_cert=docdb.pki.server_cert,
        tls_key=docdb.pki.server_key,
    )
    with StandInThread(s):
        with client(docdb, peers.temp_access_key_id, peers.temp_secret_access_key, peers.temp_session_token, port=s.port) as c:
            with pytest.raises(OperationFailure) as info:
                c.test.x.find_one()
    assert info.value.code == 18
    ev = last_event(docdb, s)
    assert not ev.ok and "not configured for MONGODB-AWS" in ev.reason


def test_unauthenticated_commands_are_unauthorized(docdb):
    with client(docdb, None, None) as c:
        # the handshake commands are answered before authentication
        hello = c.admin.command("hello")
        assert hello["isWritablePrimary"] is True and hello["maxWireVersion"] == 13
        assert hello["maxMessageSizeBytes"] == 48_000_000 and "compression" not in hello
        assert c.admin.command("ping")["ok"] == 1.0
        assert c.admin.command("buildInfo")["version"] == "5.0.0"
        for op in (lambda: c.test.x.find_one(), lambda: c.list_database_names(), lambda: c.test.x.insert_one({"a": 1})):
            with pytest.raises(OperationFailure) as info:
                op()
            assert info.value.code == 13
            assert info.value.details["codeName"] == "Unauthorized"
            assert "requires authentication" in info.value.details["errmsg"]


def _tls_socket(d: DocDb, port: int) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=str(d.pki.bundle))
    return ctx.wrap_socket(socket.create_connection((d.host, port), timeout=10), server_hostname="127.0.0.1")


def _roundtrip(s: ssl.SSLSocket, data: bytes) -> wire.Message:
    s.sendall(data)
    header = b""
    while len(header) < 16:
        chunk = s.recv(16 - len(header))
        assert chunk, "connection closed"
        header += chunk
    length, request_id, response_to, op_code = wire.HEADER.unpack(header)
    body = b""
    while len(body) < length - 16:
        chunk = s.recv(length - 16 - len(body))
        assert chunk, "connection closed"
        body += chunk
    return wire.Message(request_id, response_to, op_code, header + body)


def test_legacy_op_query_hello_and_unauthorized(docdb):
    with _tls_socket(docdb, docdb.port) as s:
        query = bson.encode({"isMaster": 1, "helloOk": True})
        body = struct.pack("<i", 0) + b"admin.$cmd\x00" + struct.pack("<ii", 0, -1) + query
        reply = _roundtrip(s, wire.HEADER.pack(16 + len(body), 4242, 0, wire.OP_QUERY) + body)
        assert reply.op_code == wire.OP_REPLY and reply.response_to == 4242
        doc = wire.decode_reply(reply)
        assert doc["ismaster"] is True and doc["helloOk"] is True and doc["maxWireVersion"] == 13
        # an OP_MSG find before authentication: code 13, responseTo = our request id
        msg = struct.pack("<I", 0) + b"\x00" + bson.encode({"find": "x", "$db": "test"})
        reply = _roundtrip(s, wire.HEADER.pack(16 + len(msg), 4243, 0, wire.OP_MSG) + msg)
        assert reply.op_code == wire.OP_MSG and reply.response_to == 4243
        doc = wire.decode_reply(reply)
        assert doc["ok"] == 0 and doc["code"] == 13 and doc["errmsg"] == "Command find requires authentication"


def _op_query(request_id: int, namespace: str, query: dict) -> bytes:
    body = struct.pack("<i", 0) + namespace.encode() + b"\x00" + struct.pack("<ii", 0, -1) + bson.encode(query)
    return wire.HEADER.pack(16 + len(body), request_id, 0, wire.OP_QUERY) + body


@pytest.mark.parametrize("first", [{"hello": 1, "client": {"application": {"name": "first"}}}, {"hello": 1}])
def test_client_metadata_only_in_the_first_hello_as_mongod(docdb, first):
    """mongod finalizes the metadata at a connection's first hello, with or without `client`:
    any later hello carrying `client` gets 186 (and one without it still works)."""
    with _tls_socket(docdb, docdb.port) as s:
        doc = wire.decode_reply(_roundtrip(s, _op_msg({**first, "$db": "admin"}, 1)))
        assert doc["ok"] == 1.0 and doc["isWritablePrimary"] is True
        for n, name in enumerate(("hello", "isMaster", "ismaster")):
            reply = _roundtrip(s, _op_msg({name: 1, "client": {"application": {"name": "again"}}, "$db": "admin"}, 10 + n))
            assert reply.response_to == 10 + n
            doc = wire.decode_reply(reply)
            assert doc == {
                "ok": 0.0,
                "errmsg": "The client metadata document may only be sent in the first hello",
                "code": 186,
                "codeName": "ClientMetadataCannotBeMutated",
            }
        # the same refusal over OP_QUERY, answered with an OP_REPLY
        reply = _roundtrip(s, _op_query(20, "admin.$cmd", {"isMaster": 1, "client": {"driver": {"name": "x"}}}))
        assert reply.op_code == wire.OP_REPLY and wire.decode_reply(reply)["code"] == 186
        assert wire.decode_reply(_roundtrip(s, _op_msg({"hello": 1, "$db": "admin"}, 21)))["ok"] == 1.0
    # a new connection starts over
    with _tls_socket(docdb, docdb.port) as s:
        doc = wire.decode_reply(_roundtrip(s, _op_msg({"hello": 1, "client": {"application": {"name": "x"}}, "$db": "admin"}, 1)))
        assert doc["ok"] == 1.0


def test_op_query_only_for_the_handshake_as_mongod_5_1(docdb):
    with _tls_socket(docdb, docdb.port) as s:
        for n, cmd in enumerate(({"ping": 1}, {"find": "x"}, {"listDatabases": 1}, {"$query": {"insert": "x"}})):
            reply = _roundtrip(s, _op_query(30 + n, "admin.$cmd", cmd))
            assert reply.op_code == wire.OP_REPLY and reply.response_to == 30 + n
            name = next(iter(cmd.get("$query", cmd)))
            doc = wire.decode_reply(reply)
            assert doc["code"] == 352 and doc["codeName"] == "UnsupportedOpQueryCommand", doc
            assert doc["errmsg"].startswith(f"Unsupported OP_QUERY command: {name}.")
        # a legacy find on a collection: OP_REPLY with QueryFailure and $err, code 5739101
        reply = _roundtrip(s, _op_query(40, "test.x", {}))
        assert reply.op_code == wire.OP_REPLY and reply.response_to == 40
        (flags,) = struct.unpack_from("<i", reply.body, 0)
        assert flags & wire.REPLY_QUERY_FAILURE
        assert wire.decode_reply(reply) == {
            "$err": "OP_QUERY is no longer supported. The client driver may require an upgrade.",
            "code": 5739101,
            "ok": 0.0,
        }
        # the handshake over OP_QUERY still works on the same connection
        doc = wire.decode_reply(_roundtrip(s, _op_query(41, "admin.$cmd", {"isMaster": 1})))
        assert doc["ismaster"] is True


def test_certificates_as_presented(docdb):
    # main: SANs; legacy: CN only, no SAN at all; untrusted: not in the bundle; expired.
    with _tls_socket(docdb, docdb.port) as s:
        assert ("IP Address", "127.0.0.1") in s.getpeercert()["subjectAltName"]
    ctx = ssl.create_default_context(cafile=str(docdb.pki.bundle))
    ctx.check_hostname = False
    with ctx.wrap_socket(socket.create_connection((docdb.host, docdb.legacy.port), timeout=10)) as s:
        cert = s.getpeercert()
        assert "subjectAltName" not in cert
        assert ((("commonName", "127.0.0.1"),) in cert["subject"])
    for port, reason in ((docdb.untrusted.port, "unable to get local issuer certificate"), (docdb.expired.port, "certificate has expired")):
        with pytest.raises(ssl.SSLCertVerificationError) as info:
            _tls_socket(docdb, port).close()
        assert reason in str(info.value)
    # and pymongo refuses a plain (non-TLS) connection's answer: DocumentDB requires TLS
    with pymongo.MongoClient(docdb.host, docdb.port, directConnection=True, serverSelectionTimeoutMS=1500) as c:
        with pytest.raises(ServerSelectionTimeoutError):
            c.admin.command("ping")


def _op_msg(doc: dict, request_id: int, flags: int = 0) -> bytes:
    payload = struct.pack("<I", flags) + b"\x00" + bson.encode(doc)
    return wire.HEADER.pack(16 + len(payload), request_id, 0, wire.OP_MSG) + payload


def test_sasl_protocol_errors(docdb):
    with _tls_socket(docdb, docdb.port) as s:
        cases = [
            ({"saslContinue": 1, "conversationId": 1, "payload": b"x", "$db": "$external"}, 17),
            ({"saslStart": 1, "mechanism": "SCRAM-SHA-1", "payload": b"x", "$db": "admin"}, 334),
            ({"saslStart": 1, "mechanism": "MONGODB-AWS", "payload": bson.encode({"r": b"\0" * 32, "p": 110}), "$db": "admin"}, 18),
            ({"saslStart": 1, "mechanism": "MONGODB-AWS", "payload": bson.encode({"r": b"\0" * 31, "p": 110}), "$db": "$external"}, 18),
        ]
        for i, (doc, code) in enumerate(cases):
            reply = wire.decode_reply(_roundtrip(s, _op_msg(doc, 100 + i)))
            assert reply["ok"] == 0 and reply["code"] == code, (doc, reply)
        # a good client-first gets {s, h}; a garbage client-final is refused with 18
        start = wire.decode_reply(
            _roundtrip(s, _op_msg({"saslStart": 1, "mechanism": "MONGODB-AWS", "payload": bson.encode({"r": b"\1" * 32, "p": 110}), "$db": "$external"}, 200))
        )
        assert start["ok"] == 1 and start["done"] is False
        server_first = bson.decode(start["payload"])
        assert server_first["s"][:32] == b"\1" * 32 and len(server_first["s"]) == 64 and server_first["h"] == "sts.amazonaws.com"
        final = wire.decode_reply(
            _roundtrip(s, _op_msg({"saslContinue": 1, "conversationId": start["conversationId"], "payload": bson.encode({"a": "x", "d": "y"}), "$db": "$external"}, 201))
        )
        assert final["ok"] == 0 and final["code"] == 18
        assert not last_event(docdb).ok


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(wire.HEADER.pack(5, 1, 0, wire.OP_MSG), id="length-below-header"),
        pytest.param(wire.HEADER.pack(100_000_000, 1, 0, wire.OP_MSG), id="100MB-length-claim"),
        pytest.param(wire.HEADER.pack(16 + 10, 1, 0, wire.OP_MSG) + b"\0\0\0\0\0" + b"\x05\0\0\0\x01", id="invalid-bson"),
        pytest.param(wire.HEADER.pack(16 + 4, 1, 0, 9999) + b"abcd", id="unknown-opcode"),
        pytest.param(wire.HEADER.pack(16 + 9, 1, 0, wire.OP_COMPRESSED) + struct.pack("<iiB", wire.OP_MSG, 0, 0), id="op-compressed"),
        pytest.param(_op_msg({"ping": 1, "$db": "admin"}, 1, flags=1 << 5), id="unknown-required-flag"),
    ],
)
def test_malformed_traffic_closes_the_connection(docdb, data):
    with _tls_socket(docdb, docdb.port) as s:
        s.sendall(data)
        s.settimeout(10)
        assert s.recv(1) == b""  # closed, no reply
    # other connections are unaffected
    with client(docdb, None, None) as c:
        assert c.admin.command("ping")["ok"] == 1.0


def test_broken_servers_for_timeout_and_mid_handshake_cases(docdb):
    ctx = ssl.create_default_context(cafile=str(docdb.pki.bundle))
    raw = socket.create_connection((docdb.host, docdb.faults.silent_port), timeout=1)
    with pytest.raises(TimeoutError):  # TCP is up, the TLS handshake never completes
        ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    raw.close()
    raw = socket.create_connection((docdb.host, docdb.faults.closing_port), timeout=5)
    with pytest.raises((ssl.SSLError, ConnectionError)):  # closed mid-handshake
        ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    raw.close()
