"""A DocumentDB-like MONGODB-AWS verifier: the server side of the SASL conversation.

What DocumentDB (and MongoDB Atlas) do with MONGODB-AWS, per mongodb/specifications
source/auth/auth.md:

1. client-first `{r: BinData(0, 32 bytes), p: 110}` -> check `p == 110` and `len(r) == 32`;
   answer server-first `{s: BinData(0, r + 32 random bytes), h: <STS host>}`.
2. client-final `{a: Authorization, d: X-Amz-Date, t?: X-Amz-Security-Token}` -> rebuild the
   STS request `POST /` body `Action=GetCallerIdentity&Version=2011-06-15` with the headers
   Content-Type, Content-Length, Host (= h), X-Amz-Date (= d), Authorization (= a),
   X-Amz-Security-Token (= t, only if present), X-MongoDB-Server-Nonce (= base64(s)) and
   X-MongoDB-GS2-CB-Flag (= n); send it to STS; the caller is whoever STS says it is.
   Before that, like the MongoDB server, check that `a` signs X-MongoDB-Server-Nonce and
   X-MongoDB-GS2-CB-Flag (and X-Amz-Security-Token iff `t`) and no header outside the
   MONGODB-AWS set: STS would verify a signature over fewer headers, one not bound to `s`.

Here "STS" is moto's server on loopback (see moto_sts.py): we connect to 127.0.0.1:<port>
but send `Host: <h>`, so moto checks the signature over exactly the host the client signed.
Nothing of the client's request is forwarded verbatim except `a`, `d`, `t`: the server nonce
and host come from the verifier's own state, which is what makes a replay or a nonce swap
fail.

Two faces:
- `MongoDbAwsVerifier` — a Python class (reused by the DocumentDB stand-in of issue 5);
- `VerifierHttpService` — the HTTP service described in notes/COMMON.md:
  `POST /sasl/start[?host=<h>]` body = client-first BSON -> 200, body = server-first BSON,
  header `X-Conversation-Id`; `POST /sasl/finish?conversation=<id>` body = client-final BSON
  -> 200 JSON {"arn": ..., "user": <MongoDB user: the ARN, assumed-role/ROLE/* for a
  session>} or 401 JSON {"error": ..., "code": ..., "status": ...} (what STS
  said); malformed client messages -> 400 JSON {"error": ...}.
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import http.server
import ipaddress
import json
import os
import secrets
import threading
import urllib.parse
import xml.etree.ElementTree as ET
from collections import OrderedDict
from typing import Any

import bson
from bson.codec_options import CodecOptions

GET_CALLER_IDENTITY_BODY = b"Action=GetCallerIdentity&Version=2011-06-15"
CLIENT_NONCE_LEN = 32
SERVER_NONCE_LEN = 64
GS2_CB_FLAG = "n"
_DECODE = CodecOptions(document_class=dict)
_MAX_MESSAGE = 1 << 20


class VerifierProtocolError(ValueError):
    """The client sent a SASL message the verifier cannot accept (before asking STS)."""


@dataclasses.dataclass(frozen=True)
class ClientFinal:
    authorization: str
    amz_date: str
    security_token: str | None


@dataclasses.dataclass(frozen=True)
class StsAnswer:
    """What STS answered to the rebuilt GetCallerIdentity."""

    status: int
    arn: str | None
    error_code: str | None
    error_message: str | None

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.arn is not None

    def describe(self) -> str:
        if self.ok:
            return f"STS accepted: {self.arn}"
        return f"STS refused (HTTP {self.status}): {self.error_code}: {self.error_message}"


def _decode(data: bytes, what: str) -> dict[str, Any]:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise VerifierProtocolError(f"{what} must be bytes")
    try:
        return bson.decode(bytes(data), codec_options=_DECODE)
    except Exception as e:  # bson raises several types (InvalidBSON, struct.error, ...)
        raise VerifierProtocolError(f"{what} is not a BSON document: {e}") from None


def parse_client_first(data: bytes) -> bytes:
    """Validate client-first `{r, p}`; return the client nonce `r`."""
    doc = _decode(data, "client-first")
    if set(doc) != {"r", "p"}:
        raise VerifierProtocolError(f"client-first must have exactly fields r and p, got {sorted(doc)}")
    r, p = doc["r"], doc["p"]
    # pymongo's bson decodes BinData subtype 0 as `bytes` and every other subtype as Binary.
    if type(r) is not bytes:
        raise VerifierProtocolError(f"client-first r must be BinData subtype 0, got {type(r).__name__}")
    if len(r) != CLIENT_NONCE_LEN:
        raise VerifierProtocolError(f"client-first r must be {CLIENT_NONCE_LEN} bytes, got {len(r)}")
    if type(p) is not int or p != 110:
        raise VerifierProtocolError(f"client-first p must be the int 110 ('n'), got {p!r}")
    return r


#: The only headers a MONGODB-AWS signature may cover (the MongoDB server refuses others,
#: e.g. channel-binding headers), and the two that bind it to this conversation.
ALLOWED_SIGNED_HEADERS = frozenset(
    {
        "content-length",
        "content-type",
        "host",
        "x-amz-date",
        "x-amz-security-token",
        "x-mongodb-gs2-cb-flag",
        "x-mongodb-server-nonce",
    }
)
REQUIRED_SIGNED_HEADERS = frozenset({"host", "x-amz-date", "x-mongodb-gs2-cb-flag", "x-mongodb-server-nonce"})


def check_authorization(authorization: str, has_token: bool) -> list[str]:
    """Check `a` as the MongoDB server does before asking STS; return its SignedHeaders.

    STS verifies a signature over whatever headers the client chose to sign, so without this
    a signature that does not cover X-MongoDB-Server-Nonce (a GetCallerIdentity captured
    anywhere else) would be accepted for any conversation.
    """
    if not authorization.startswith("AWS4-HMAC-SHA256 "):
        raise VerifierProtocolError("client-final a is not an AWS4-HMAC-SHA256 Authorization header")
    fields: dict[str, str] = {}
    for part in authorization[len("AWS4-HMAC-SHA256 ") :].split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or key in fields:
            raise VerifierProtocolError(f"client-final a has a malformed or repeated part {key!r}")
        fields[key] = value
    if set(fields) != {"Credential", "SignedHeaders", "Signature"}:
        raise VerifierProtocolError(f"client-final a must have Credential, SignedHeaders, Signature; got {sorted(fields)}")
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or scope[3] != "sts" or scope[4] != "aws4_request" or not scope[0]:
        raise VerifierProtocolError("client-final a has a Credential that is not <key>/<date>/<region>/sts/aws4_request")
    signed = fields["SignedHeaders"].split(";")
    extra = set(signed) - ALLOWED_SIGNED_HEADERS
    if extra:
        raise VerifierProtocolError(f"client-final a signs headers a MONGODB-AWS request does not have: {sorted(extra)}")
    missing = REQUIRED_SIGNED_HEADERS - set(signed)
    if has_token:
        missing |= {"x-amz-security-token"} - set(signed)
    elif "x-amz-security-token" in signed:
        raise VerifierProtocolError("client-final a signs X-Amz-Security-Token but t is absent")
    if missing:
        raise VerifierProtocolError(f"client-final a does not sign {sorted(missing)}: not bound to this conversation")
    return signed


def simplified_arn(arn: str) -> str:
    """The MongoDB user an ARN authenticates as (what the MongoDB server does): an IAM user
    is itself; an assumed-role session `arn:…:sts::ACCT:assumed-role/ROLE/SESSION` becomes
    `arn:…:sts::ACCT:assumed-role/ROLE/*`."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        raise ValueError(f"not an ARN: {arn!r}")
    resource = parts[5]
    if parts[2] == "sts" and resource.startswith("assumed-role/"):
        pieces = resource.split("/")
        if len(pieces) != 3:
            raise ValueError(f"assumed-role ARN must be assumed-role/ROLE/SESSION: {arn!r}")
        return ":".join(parts[:5] + [f"assumed-role/{pieces[1]}/*"])
    if parts[2] == "iam" and resource.startswith("user/"):
        return arn
    raise ValueError(f"neither an IAM user nor an assumed role: {arn!r}")


def parse_client_final(data: bytes, check_signed_headers: bool = True) -> ClientFinal:
    """Validate client-final `{a, d, t?}` (and, as the MongoDB server does, `a` itself)."""
    doc = _decode(data, "client-final")
    extra = set(doc) - {"a", "d", "t"}
    if extra:
        raise VerifierProtocolError(f"client-final has unexpected fields {sorted(extra)}")
    for field in ("a", "d"):
        if field not in doc:
            raise VerifierProtocolError(f"client-final lacks field {field}")
    for field, value in doc.items():
        if not isinstance(value, str) or not value:
            raise VerifierProtocolError(f"client-final field {field} must be a non-empty string")
    final = ClientFinal(doc["a"], doc["d"], doc.get("t"))
    if check_signed_headers:
        check_authorization(final.authorization, final.security_token is not None)
    return final


def server_first_payload(server_nonce: bytes, sts_host: str) -> bytes:
    return bson.encode({"s": bson.Binary(server_nonce, 0), "h": sts_host})


def sts_request_headers(final: ClientFinal, server_nonce: bytes, sts_host: str) -> list[tuple[str, str]]:
    """The headers DocumentDB sends to STS, rebuilt from its own s, h and the client's a, d, t."""
    headers = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Content-Length", str(len(GET_CALLER_IDENTITY_BODY))),
        ("Host", sts_host),
        ("X-Amz-Date", final.amz_date),
        ("Authorization", final.authorization),
    ]
    if final.security_token is not None:
        headers.append(("X-Amz-Security-Token", final.security_token))
    headers.append(("X-MongoDB-Server-Nonce", base64.b64encode(server_nonce).decode("ascii")))
    headers.append(("X-MongoDB-GS2-CB-Flag", GS2_CB_FLAG))
    return headers


def _parse_sts_answer(status: int, body: bytes) -> StsAnswer:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return StsAnswer(status, None, "UnparsableResponse", body[:200].decode("utf-8", "replace"))

    def find(local: str) -> str | None:
        for el in root.iter():
            if el.tag == local or el.tag.endswith("}" + local):
                return (el.text or "").strip()
        return None

    if status == 200:
        arn = find("Arn")
        if arn:
            return StsAnswer(status, arn, None, None)
        return StsAnswer(status, None, "NoArn", "STS answered 200 without an Arn")
    return StsAnswer(status, None, find("Code") or "Unknown", find("Message") or "")


class _Loopback:
    def __init__(self, endpoint: str):
        url = urllib.parse.urlsplit(endpoint)
        if url.scheme != "http" or not url.hostname or not url.port:
            raise ValueError(f"STS endpoint must be http://<loopback>:<port>, got {endpoint!r}")
        host = url.hostname
        if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"STS endpoint must be on loopback (tests never leave it), got {host!r}")
        self.host, self.port = host, url.port


class MongoDbAwsVerifier:
    """Server side of MONGODB-AWS, checking client-final against a real STS (moto)."""

    def __init__(self, sts_endpoint: str, sts_host: str = "sts.amazonaws.com", timeout: float = 10.0):
        self._sts = _Loopback(sts_endpoint)
        self.sts_endpoint = sts_endpoint
        self.sts_host = sts_host
        self.timeout = timeout

    def start(self, client_first: bytes, sts_host: str | None = None) -> "VerifierConversation":
        """Step 1: validate client-first, pick the server nonce, return the conversation."""
        client_nonce = parse_client_first(client_first)
        server_nonce = client_nonce + os.urandom(SERVER_NONCE_LEN - CLIENT_NONCE_LEN)
        return VerifierConversation(self, client_nonce, server_nonce, sts_host or self.sts_host)

    def send_get_caller_identity(self, headers: list[tuple[str, str]]) -> StsAnswer:
        """POST the rebuilt GetCallerIdentity to STS (loopback) and parse its answer."""
        conn = http.client.HTTPConnection(self._sts.host, self._sts.port, timeout=self.timeout)
        try:
            conn.putrequest("POST", "/", skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                # Values go out as UTF-8 bytes exactly as received; http.client refuses CR/LF.
                conn.putheader(name, value.encode("utf-8"))
            conn.endheaders(GET_CALLER_IDENTITY_BODY)
            resp = conn.getresponse()
            return _parse_sts_answer(resp.status, resp.read())
        except ValueError as e:  # e.g. a header value with CR/LF: never reaches STS
            return StsAnswer(400, None, "InvalidHeader", f"client-final cannot be sent as HTTP headers: {e}")
        finally:
            conn.close()


class VerifierConversation:
    """One MONGODB-AWS conversation on the verifier side; `finish` may be called once."""

    def __init__(self, verifier: MongoDbAwsVerifier, client_nonce: bytes, server_nonce: bytes, sts_host: str):
        self.verifier = verifier
        self.client_nonce = client_nonce
        self.server_nonce = server_nonce
        self.sts_host = sts_host
        self.server_first = server_first_payload(server_nonce, sts_host)
        self._finished = False
        self._lock = threading.Lock()

    def finish(
        self,
        client_final: bytes,
        *,
        server_nonce: bytes | None = None,
        sts_host: str | None = None,
        check_signed_headers: bool = True,
    ) -> StsAnswer:
        """Step 2: rebuild the STS request from our s, h and the client's a, d, t; ask STS.

        `server_nonce`/`sts_host` override what this verifier sent — only for tests that
        check STS refuses a nonce (or host) changed after the client signed.
        """
        with self._lock:
            if self._finished:
                raise VerifierProtocolError("conversation already finished")
            self._finished = True
        final = parse_client_final(client_final, check_signed_headers)
        headers = sts_request_headers(
            final,
            self.server_nonce if server_nonce is None else server_nonce,
            self.sts_host if sts_host is None else sts_host,
        )
        return self.verifier.send_get_caller_identity(headers)


class VerifierHttpService:
    """The verifier as an HTTP service on 127.0.0.1:<free port> (see module docstring)."""

    MAX_OPEN_CONVERSATIONS = 10_000

    def __init__(self, verifier: MongoDbAwsVerifier, port: int = 0):
        self.verifier = verifier
        self._conversations: OrderedDict[str, VerifierConversation] = OrderedDict()
        self._lock = threading.Lock()
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # quiet: tests print what matters

            def _reply(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, doc: dict[str, Any]) -> None:
                self._reply(status, json.dumps(doc).encode(), "application/json")

            def do_POST(self) -> None:  # noqa: N802
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                try:
                    length = int(self.headers.get("Content-Length", "0"))
                except ValueError:
                    return self._json(400, {"error": "bad Content-Length"})
                if length < 0 or length > _MAX_MESSAGE:
                    return self._json(413, {"error": "message too large"})
                body = self.rfile.read(length)
                try:
                    if url.path == "/sasl/start":
                        host = query.get("host", [None])[0]
                        conv = service.verifier.start(body, host)
                        cid = service._remember(conv)
                        return self._reply(200, conv.server_first, "application/octet-stream", {"X-Conversation-Id": cid})
                    if url.path == "/sasl/finish":
                        cid = query.get("conversation", [""])[0]
                        conv = service._take(cid)
                        if conv is None:
                            return self._json(404, {"error": f"no open conversation {cid!r}"})
                        answer = conv.finish(body)
                        if answer.ok and answer.arn is not None:
                            return self._json(200, {"arn": answer.arn, "user": simplified_arn(answer.arn)})
                        return self._json(
                            401,
                            {
                                "error": answer.describe(),
                                "code": answer.error_code,
                                "status": answer.status,
                            },
                        )
                    return self._json(404, {"error": f"no such endpoint {url.path}"})
                except VerifierProtocolError as e:
                    return self._json(400, {"error": str(e)})

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def _remember(self, conv: VerifierConversation) -> str:
        cid = secrets.token_hex(16)
        with self._lock:
            self._conversations[cid] = conv
            while len(self._conversations) > self.MAX_OPEN_CONVERSATIONS:
                self._conversations.popitem(last=False)
        return cid

    def _take(self, cid: str) -> VerifierConversation | None:
        with self._lock:
            return self._conversations.pop(cid, None)

    def start(self) -> "VerifierHttpService":
        self._thread = threading.Thread(target=self._server.serve_forever, name="docauth-verifier", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)


class VerifierClient:
    """A tiny client of VerifierHttpService (for tests and examples)."""

    def __init__(self, url: str, timeout: float = 10.0):
        self._loop = _Loopback(url)
        self.timeout = timeout

    def _post(self, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self._loop.host, self._loop.port, timeout=self.timeout)
        try:
            conn.request("POST", path, body=body, headers={"Content-Type": "application/octet-stream"})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def start(self, client_first: bytes, sts_host: str | None = None) -> tuple[str, bytes]:
        """Returns (conversation id, server-first bytes); raises on a non-200 answer."""
        path = "/sasl/start" + ("?" + urllib.parse.urlencode({"host": sts_host}) if sts_host else "")
        status, headers, body = self._post(path, client_first)
        if status != 200:
            raise VerifierProtocolError(f"/sasl/start answered {status}: {body.decode('utf-8', 'replace')}")
        return headers["x-conversation-id"], body

    def finish(self, conversation_id: str, client_final: bytes) -> tuple[int, dict[str, Any]]:
        """Returns (HTTP status, JSON answer): 200 {"arn"} or 401 {"error", "code"} or 400."""
        path = "/sasl/finish?" + urllib.parse.urlencode({"conversation": conversation_id})
        status, _, body = self._post(path, client_final)
        return status, json.loads(body)
