#!/usr/bin/env python3
"""A MONGODB-AWS conversation through libdocauth's Python binding, against a real verifier.

Run under tests/peers/with_moto.py (what `make demo` does), which starts moto's STS with
signature checking ON and the DocumentDB-like verifier, and exports:

    DOCAUTH_TEST_VERIFIER_URL                        the verifier (POST /sasl/start, /sasl/finish)
    DOCAUTH_TEST_AWS_ACCESS_KEY_ID / _SECRET_ACCESS_KEY   long-term IAM user key
    DOCAUTH_TEST_TEMP_ACCESS_KEY_ID / _SECRET_ACCESS_KEY / _SESSION_TOKEN   AssumeRole credentials

For each set of credentials it prints the decoded client-first, server-first and
client-final documents (the session token by length only) and the ARN the verifier got from
STS. Exit status 0 only if the verifier accepted every conversation.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import bson  # from pymongo

import docauth


def post(url: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/octet-stream"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback verifier
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def show(title: str, doc: dict[str, Any]) -> None:
    print(f"  {title}:")
    for key, value in doc.items():
        if key == "t":
            print(f"    {key}: <session token, {len(value)} characters>")
        elif isinstance(value, bytes):
            print(f"    {key}: BinData(0, {len(value)} bytes) {value.hex()}")
        else:
            print(f"    {key}: {value!r}")


def converse(verifier_url: str, label: str, akid: str, secret: str, token: str | None) -> bool:
    print(f"\n{label} (access key id {akid})")
    with docauth.Credentials(akid, secret, token) as creds, docauth.AwsConversation(creds) as conv:
        client_first = conv.client_first()
        show("client-first", bson.decode(client_first))

        status, headers, server_first = post(verifier_url + "/sasl/start", client_first)
        if status != 200:
            print(f"  verifier refused client-first: HTTP {status} {server_first.decode(errors='replace')}")
            return False
        conversation_id = {k.lower(): v for k, v in headers.items()}["x-conversation-id"]
        show("server-first", bson.decode(server_first))

        client_final = conv.client_final(server_first)
        show("client-final", bson.decode(client_final))

    query = urllib.parse.urlencode({"conversation": conversation_id})
    status, _, body = post(f"{verifier_url}/sasl/finish?{query}", client_final)
    answer = json.loads(body)
    if status == 200:
        print(f"  verifier: STS accepted the signature, caller ARN = {answer['arn']}")
        return True
    print(f"  verifier: REFUSED (HTTP {status}): {answer.get('error')}")
    return False


def main() -> int:
    env = os.environ
    url = env.get("DOCAUTH_TEST_VERIFIER_URL")
    if not url:
        print("DOCAUTH_TEST_VERIFIER_URL is not set: run me as\n"
              "  python tests/peers/with_moto.py -- python examples/python/aws_conversation.py", file=sys.stderr)
        return 2
    print(f"libdocauth {docauth.library_version()} (Python binding {docauth.__version__}), verifier {url}")
    ok = converse(
        url,
        "Long-term credentials of an IAM user",
        env["DOCAUTH_TEST_AWS_ACCESS_KEY_ID"],
        env["DOCAUTH_TEST_AWS_SECRET_ACCESS_KEY"],
        None,
    )
    if "DOCAUTH_TEST_TEMP_ACCESS_KEY_ID" in env:
        ok = converse(
            url,
            "Temporary credentials from AssumeRole",
            env["DOCAUTH_TEST_TEMP_ACCESS_KEY_ID"],
            env["DOCAUTH_TEST_TEMP_SECRET_ACCESS_KEY"],
            env["DOCAUTH_TEST_TEMP_SESSION_TOKEN"],
        ) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
