"""The reference signer: pymongo-auth-aws, driven step by step with a frozen nonce and clock."""

from __future__ import annotations

import datetime
import types
from unittest import mock

import bson
import pymongo_auth_aws
import pymongo_auth_aws.auth


class ReferenceContext(pymongo_auth_aws.AwsSaslContext):
    """pymongo-auth-aws's AwsSaslContext with pymongo's own dependency injection."""

    def binary_type(self):
        return bson.Binary

    def bson_encode(self, doc):
        return bson.encode(doc)

    def bson_decode(self, data):
        return bson.decode(data)


def reference_payloads(
    access_key_id: str,
    secret_access_key: str,
    session_token: str | None,
    client_nonce: bytes,
    server_first: bytes,
    unix_time: int,
) -> tuple[bytes, bytes]:
    """(client-first, client-final) as pymongo-auth-aws makes them with os.urandom frozen to
    `client_nonce` (as seen by pymongo_auth_aws.auth only) and botocore's clock frozen."""
    frozen_now = datetime.datetime.fromtimestamp(unix_time, datetime.timezone.utc).replace(tzinfo=None)

    def urandom(n: int) -> bytes:
        assert n == len(client_nonce) == 32, n
        return client_nonce

    fake_os = types.SimpleNamespace(urandom=urandom)
    with mock.patch.object(pymongo_auth_aws.auth, "os", fake_os), mock.patch(
        "botocore.auth.get_current_datetime", return_value=frozen_now
    ):
        ctx = ReferenceContext(
            pymongo_auth_aws.AwsCredential(access_key_id, secret_access_key, session_token)
        )
        first = bytes(ctx.step(None))
        final = bytes(ctx.step(server_first))
    return first, final
