"""Typical use of the binding, checked by `mypy --strict` (make test-python), never run:
the types a user's editor and type checker see must be the precise ones (a `with` block gives
the class itself, a decision is a `Decision`, payloads are `bytes`)."""

from __future__ import annotations

from docauth import AwsConversation, Credentials, CredentialsProvider, Decision, PolicyEngine, Runtime


def decide(config: str) -> bool:
    with PolicyEngine(config) as engine:
        decision: Decision = engine.decide({"identity": "alice", "database": "docdb", "db_user": "u", "db_name": "test"})
        return decision.allowed


def sign(server_first: bytes) -> bytes:
    with Credentials("AKID", "secret") as creds, AwsConversation(creds) as conv:
        first: bytes = conv.client_first()
        assert first
        return conv.client_final(server_first)


def runtime_and_provider(provider_config: str) -> None:
    with Runtime() as runtime, CredentialsProvider(provider_config) as provider:
        assert not runtime.closed and not provider.closed
