"""The binding's exception base classes (hand-written); errors.py, generated from the header,
derives one class per `docauth_result` code from `DocauthError` and re-exports both."""

from __future__ import annotations


class DocauthError(Exception):
    """A libdocauth call failed: `code` (the `docauth_result` number), `name` (its C
    constant) and `message` (the library's message; never contains a secret)."""

    code: int = -1
    name: str = "DOCAUTH_RESULT_UNKNOWN"

    def __init__(self, code: int, name: str, message: str) -> None:
        super().__init__(code, name, message)
        self.code = code
        self.name = name
        self.message = message

    def __str__(self) -> str:
        return f"{self.name}: {self.message}"


class LibraryNotFoundError(ImportError):
    """libdocauth's shared library could not be found or loaded."""
