"""Start a whole DocumentDB stand-in set-up in-process: test PKI, a backend, the stand-ins.

    from peers.docdb.harness import start_docdb          # with tests/ on sys.path
    docdb = start_docdb("ferretdb", sts_endpoint=moto.endpoint, user_arns=[role_arn, user_arn])
    try:
        MongoClient(docdb.uri, username=akid, password=secret)   # see DocDb.uri
    finally:
        docdb.stop()

One backend process (SecantusDB or FerretDB) serves four stand-ins that differ only in the
certificate they present (see certs.py): the main one (`server.pem`, SANs), and for the
TLS troubleshooting cases `legacy.pem` (CN only, no SAN), `untrusted.pem` (CA not in the
bundle) and `expired.pem`. Two more loopback ports play broken servers: `silent` accepts TCP
and never answers (a TLS handshake that times out) and `closing` closes every connection as
soon as it is accepted (server closed mid-handshake). `DocDb.env()` gives the
DOCAUTH_TEST_DOCDB_* variables (documented in README.md).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import socket
import tempfile
import threading
import urllib.parse
from pathlib import Path
from typing import Iterable

from ..verifier import MongoDbAwsVerifier
from .backends import Backend, start_backend
from .certs import TestPki, make_test_pki
from .standin import EXTERNAL_DB, MECHANISM, DocDbStandIn, StandInThread, UserDirectory


@dataclasses.dataclass
class DocDb:
    backend: Backend
    pki: TestPki
    users_file: Path
    standin: DocDbStandIn  # server.pem
    legacy: DocDbStandIn  # legacy.pem: CN only, no SAN
    untrusted: DocDbStandIn  # untrusted.pem: issued by a CA that is not in the bundle
    expired: DocDbStandIn  # expired.pem
    db_user: str  # the $external user a Teleport db_user names (the role ARN)
    faults: "FaultListeners"
    _threads: list[StandInThread]
    _workdir: Path

    @property
    def host(self) -> str:
        return self.standin.host

    @property
    def port(self) -> int:
        return self.standin.port

    @property
    def uri(self) -> str:
        """mongodb:// URI of the main stand-in without credentials (pass them to MongoClient)."""
        return uri_for(self.host, self.port, self.pki.bundle)

    def env(self) -> dict[str, str]:
        return {
            "DOCAUTH_TEST_DOCDB_BACKEND": self.backend.name,
            "DOCAUTH_TEST_DOCDB_HOST": self.host,
            "DOCAUTH_TEST_DOCDB_PORT": str(self.port),
            "DOCAUTH_TEST_DOCDB_ADDR": f"{self.host}:{self.port}",
            "DOCAUTH_TEST_DOCDB_TLS_SERVER_NAME": "localhost",
            "DOCAUTH_TEST_DOCDB_CA_FILE": str(self.pki.bundle),
            "DOCAUTH_TEST_DOCDB_URI": self.uri,
            "DOCAUTH_TEST_DOCDB_DB_USER": self.db_user,
            "DOCAUTH_TEST_DOCDB_USERS_FILE": str(self.users_file),
            "DOCAUTH_TEST_DOCDB_LEGACY_CN_PORT": str(self.legacy.port),
            "DOCAUTH_TEST_DOCDB_UNTRUSTED_PORT": str(self.untrusted.port),
            "DOCAUTH_TEST_DOCDB_EXPIRED_PORT": str(self.expired.port),
            "DOCAUTH_TEST_DOCDB_SILENT_PORT": str(self.faults.silent_port),
            "DOCAUTH_TEST_DOCDB_CLOSING_PORT": str(self.faults.closing_port),
            "DOCAUTH_TEST_DOCDB_PKI_DIR": str(self.pki.directory),
            "DOCAUTH_TEST_DOCDB_BACKEND_HOST": self.backend.host,
            "DOCAUTH_TEST_DOCDB_BACKEND_PORT": str(self.backend.port),
        }

    def stop(self) -> None:
        for t in self._threads:
            t.stop()
        self.faults.stop()
        self.backend.stop()
        shutil.rmtree(self._workdir, ignore_errors=True)


class FaultListeners:
    """Three broken servers on loopback: `silent_port` completes TCP (the kernel's backlog) but
    never reads or answers, so a TLS handshake waits until the client's timeout;
    `closing_port` accepts and closes at once (the server closed mid-handshake);
    `black_hole_port` is a backlog-0 listener whose accept queue is kept full, so the kernel
    drops every further SYN and a TCP connect hangs as to a port a security group
    black-holes."""

    def __init__(self) -> None:
        self._silent = socket.create_server(("127.0.0.1", 0), backlog=64)
        self._closing = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.silent_port = self._silent.getsockname()[1]
        self.closing_port = self._closing.getsockname()[1]
        self._black_hole = socket.create_server(("127.0.0.1", 0), backlog=0)
        self.black_hole_port = self._black_hole.getsockname()[1]
        try:
            self._fillers = self._fill_accept_queue(self.black_hole_port)
        except BaseException:
            for s in (self._silent, self._closing, self._black_hole):
                s.close()
            raise
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._close_all, name="docdb-closing", daemon=True)
        self._thread.start()

    @staticmethod
    def _fill_accept_queue(port: int) -> list[socket.socket]:
        fillers: list[socket.socket] = []
        for _ in range(16):
            try:
                fillers.append(socket.create_connection(("127.0.0.1", port), timeout=0.3))
            except TimeoutError:
                return fillers  # the queue is full: SYNs are dropped from now on
        for f in fillers:
            f.close()
        raise RuntimeError("could not fill the accept queue of a backlog-0 listener")

    def _close_all(self) -> None:
        self._closing.settimeout(0.2)
        while not self._stopped.is_set():
            try:
                conn, _ = self._closing.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.close()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(5)
        self._closing.close()
        self._silent.close()
        for f in self._fillers:
            f.close()
        self._black_hole.close()


def uri_for(host: str, port: int, ca_file: str | Path) -> str:
    query = urllib.parse.urlencode(
        {
            "tls": "true",
            "tlsCAFile": str(ca_file),
            "authMechanism": MECHANISM,
            "authSource": EXTERNAL_DB,
            "directConnection": "true",
            "retryWrites": "false",  # as DocumentDB's connection strings say
        }
    )
    return f"mongodb://{host}:{port}/?{query}"


def write_users(path: Path, user_arns: Iterable[str]) -> Path:
    users = [
        {"user": arn, "db": EXTERNAL_DB, "mechanisms": [MECHANISM], "roles": [{"role": "root", "db": "admin"}]}
        for arn in user_arns
    ]
    path.write_text(json.dumps({"users": users}, indent=2) + "\n")
    return path


def start_docdb(
    backend: str,
    *,
    sts_endpoint: str,
    user_arns: Iterable[str],
    sts_host: str = "sts.amazonaws.com",
    replica_set: str | None = None,
) -> DocDb:
    """Start the backend and the four stand-ins; `user_arns[0]` is reported as the db user."""
    arns = list(user_arns)
    if not arns:
        raise ValueError("at least one $external user ARN is needed")
    workdir = Path(tempfile.mkdtemp(prefix="docauth-docdb-"))
    threads: list[StandInThread] = []
    backend_proc: Backend | None = None
    faults: FaultListeners | None = None
    try:
        pki = make_test_pki(workdir / "pki")
        users_file = write_users(workdir / "users.json", arns)
        users = UserDirectory.load(users_file)
        backend_proc = start_backend(backend)
        faults = FaultListeners()
        verifier = MongoDbAwsVerifier(sts_endpoint, sts_host)

        def standin(cert: Path, key: Path) -> DocDbStandIn:
            s = DocDbStandIn(
                backend=backend_proc.address,
                verifier=verifier,
                users=users,
                tls_cert=cert,
                tls_key=key,
                replica_set=replica_set,
            )
            threads.append(StandInThread(s).start())
            return s

        return DocDb(
            backend=backend_proc,
            pki=pki,
            users_file=users_file,
            standin=standin(pki.server_cert, pki.server_key),
            legacy=standin(pki.legacy_cert, pki.legacy_key),
            untrusted=standin(pki.untrusted_cert, pki.untrusted_key),
            expired=standin(pki.expired_cert, pki.expired_key),
            db_user=arns[0],
            faults=faults,
            _threads=threads,
            _workdir=workdir,
        )
    except BaseException:
        for t in threads:
            t.stop()
        if faults is not None:
            faults.stop()
        if backend_proc is not None:
            backend_proc.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        raise
