"""Test PKI for the DocumentDB stand-in, generated with `cryptography` into a directory.

Amazon DocumentDB presents a server certificate issued by an RDS regional CA; clients trust
it through `global-bundle.pem`, a PEM file holding many CA certificates. `make_test_pki(dir)`
writes the same shape:

| file | what |
| --- | --- |
| `global-bundle.pem` | the PEM bundle clients trust: the test CA **and** a second, unrelated root (a bundle, as AWS ships it) |
| `ca.pem` | the test CA alone |
| `server.pem` / `server-key.pem` | server certificate issued by the test CA, SANs `localhost`, `127.0.0.1`, `::1` and any extra names; CN `docdb-standin` |
| `legacy.pem` / `legacy-key.pem` | issued by the same CA, CN `127.0.0.1`, **no subjectAltName at all** — a pre-2020 RDS/DocumentDB certificate (the guide's "x509: certificate relies on legacy Common Name field" case) |
| `untrusted.pem` / `untrusted-key.pem` | SANs like `server.pem` but issued by a CA that is **not** in the bundle (unknown CA) |
| `expired.pem` / `expired-key.pem` | issued by the test CA, valid SANs, expired yesterday |

Keys are RSA 2048 (as RDS/DocumentDB certificates are); certificates are X.509 v3 with
the extensions webpki/rustls, Go and OpenSSL require (basicConstraints, keyUsage,
extendedKeyUsage serverAuth, subject/authority key identifiers).

    python -m tests.peers.docdb.certs DIR     # writes the files above, prints their paths as JSON
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import json
import os
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_DAY = datetime.timedelta(days=1)


@dataclasses.dataclass(frozen=True)
class TestPki:
    """Paths of the generated files (all PEM)."""

    directory: Path
    bundle: Path  # global-bundle.pem: what clients pass as tlsCAFile
    ca_cert: Path
    server_cert: Path
    server_key: Path
    legacy_cert: Path
    legacy_key: Path
    untrusted_cert: Path
    untrusted_key: Path
    expired_cert: Path
    expired_key: Path

    def as_dict(self) -> dict[str, str]:
        return {f.name: str(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(cn: str, org: str = "libdocauth tests") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _ca(cn: str, now: datetime.datetime) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = _key()
    name = _name(cn)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _DAY)
        .not_valid_after(now + 3650 * _DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    general: list[x509.GeneralName] = []
    for n in names:
        try:
            general.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            general.append(x509.DNSName(n))
    return x509.SubjectAlternativeName(general)


def _leaf(
    cn: str,
    san: list[str] | None,
    ca: tuple[x509.Certificate, rsa.RSAPrivateKey],
    not_before: datetime.datetime,
    not_after: datetime.datetime,
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    ca_cert, ca_key = ca
    key = _key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if san is not None:
        builder = builder.add_extension(_san(san), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, private: bool = False) -> Path:
    path.write_bytes(data)
    if private:
        os.chmod(path, 0o600)
    return path


def make_test_pki(directory: str | os.PathLike[str], extra_names: list[str] | None = None) -> TestPki:
    """Generate the CA bundle and the server certificates into `directory` (created if needed)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    names = ["localhost", "127.0.0.1", "::1", *(extra_names or [])]

    ca = _ca("libdocauth test DocumentDB CA", now)
    other_root, _ = _ca("libdocauth test unrelated root (bundle filler)", now)
    rogue_ca = _ca("libdocauth test rogue CA (not in the bundle)", now)

    server = _leaf("docdb-standin", names, ca, now - _DAY, now + 365 * _DAY)
    legacy = _leaf("127.0.0.1", None, ca, now - _DAY, now + 365 * _DAY)
    untrusted = _leaf("docdb-standin", names, rogue_ca, now - _DAY, now + 365 * _DAY)
    expired = _leaf("docdb-standin", names, ca, now - 30 * _DAY, now - _DAY)

    def pair(stem: str, leaf: tuple[x509.Certificate, rsa.RSAPrivateKey]) -> tuple[Path, Path]:
        # The certificate file carries the chain up to (not including) the root, like a
        # server configured with its leaf only: the CA is in the client's bundle.
        return (
            _write(d / f"{stem}.pem", _pem_cert(leaf[0])),
            _write(d / f"{stem}-key.pem", _pem_key(leaf[1]), private=True),
        )

    server_cert, server_key = pair("server", server)
    legacy_cert, legacy_key = pair("legacy", legacy)
    untrusted_cert, untrusted_key = pair("untrusted", untrusted)
    expired_cert, expired_key = pair("expired", expired)
    return TestPki(
        directory=d,
        bundle=_write(d / "global-bundle.pem", _pem_cert(other_root) + _pem_cert(ca[0])),
        ca_cert=_write(d / "ca.pem", _pem_cert(ca[0])),
        server_cert=server_cert,
        server_key=server_key,
        legacy_cert=legacy_cert,
        legacy_key=legacy_key,
        untrusted_cert=untrusted_cert,
        untrusted_key=untrusted_key,
        expired_cert=expired_cert,
        expired_key=expired_key,
    )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m tests.peers.docdb.certs DIR", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(make_test_pki(sys.argv[1]).as_dict(), indent=2))
