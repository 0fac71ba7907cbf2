"""The MongoDB-compatible servers behind the stand-in, started on free loopback ports.

* `secantusdb` — PyPI `secantusdb` 0.7.0b3 (pinned in tests/requirements.txt): its daemon
  `python -m secantus --host 127.0.0.1 --port 0 --storage-path :memory: --standalone`, through
  `secantus_main.py` (the same `main`, its fixed cap of 1,000 connections raised)
  (WiredTiger in a temporary directory it removes on exit; no auth by default). It logs
  `secantus listening on 127.0.0.1:<port>` at INFO once the socket is bound.
* `ferretdb` — FerretDB v1.24.2 built by `build_ferretdb.sh` into `.tools/bin/ferretdb`
  (or `$DOCAUTH_FERRETDB`): `--handler=sqlite --sqlite-url=file:<tmp>/ --listen-addr=127.0.0.1:0
  --state-dir=<tmp> --debug-addr=- --telemetry=disable` (no auth: FerretDB 1.x authenticates
  nothing unless the new-auth experiment is on). It logs `Listening on TCP 127.0.0.1:<port>...`.

Both are started as child processes (their own process group) with their output in a log
file; `Backend.stop()` terminates exactly that child and removes its temporary directory.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
BACKENDS = ("secantusdb", "ferretdb")
FERRETDB_VERSION = "v1.24.2"


class BackendError(RuntimeError):
    """A backend server could not be started."""


@dataclasses.dataclass
class Backend:
    name: str
    host: str
    port: int
    process: subprocess.Popen[bytes]
    workdir: Path
    log_path: Path

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.workdir, ignore_errors=True)


def ferretdb_binary() -> Path:
    env = os.environ.get("DOCAUTH_FERRETDB")
    return Path(env) if env else REPO / ".tools" / "bin" / "ferretdb"


def _wait_for_port(proc: subprocess.Popen[bytes], log_path: Path, pattern: re.Pattern[str], what: str, timeout: float) -> tuple[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace") if log_path.exists() else ""
        m = pattern.search(text)
        if m:
            return m.group(1), int(m.group(2))
        if proc.poll() is not None:
            raise BackendError(f"{what} exited with {proc.returncode} before listening:\n{text[-3000:]}")
        time.sleep(0.05)
    raise BackendError(f"{what} did not report its port within {timeout:.0f}s")


def _spawn(name: str, argv: list[str], workdir: Path, pattern: re.Pattern[str], timeout: float) -> Backend:
    log_path = workdir / f"{name}.log"
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen(
            argv,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal's Ctrl-C goes to the runner, which stops us
        )
    try:
        host, port = _wait_for_port(proc, log_path, pattern, name, timeout)
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return Backend(name, host, port, proc, workdir, log_path)


def start_secantusdb(timeout: float = 60.0) -> Backend:
    workdir = Path(tempfile.mkdtemp(prefix="docauth-secantusdb-"))
    # An explicit (empty) --config disables the auto-discovery of ./, ~/.secantus, /etc files.
    config = workdir / "secantusd.toml"
    config.write_text("")
    argv = [
        sys.executable,
        str(Path(__file__).resolve().parent / "secantus_main.py"),
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--storage-path",
        str(workdir / "data"),
        "--standalone",
        "--log-level",
        "INFO",
    ]
    return _spawn("secantusdb", argv, workdir, re.compile(r"secantus listening on (127\.0\.0\.1):(\d+)"), timeout)


def start_ferretdb(timeout: float = 60.0) -> Backend:
    binary = ferretdb_binary()
    if not os.access(binary, os.X_OK):
        raise BackendError(f"{binary} is missing: run `make ferretdb` (tests/peers/docdb/build_ferretdb.sh)")
    workdir = Path(tempfile.mkdtemp(prefix="docauth-ferretdb-"))
    (workdir / "data").mkdir()
    argv = [
        str(binary),
        "--handler=sqlite",
        f"--sqlite-url=file:{workdir / 'data'}/",
        "--listen-addr=127.0.0.1:0",
        f"--state-dir={workdir}",
        "--debug-addr=-",
        "--telemetry=disable",
        "--log-level=info",
    ]
    return _spawn("ferretdb", argv, workdir, re.compile(r"Listening on TCP (127\.0\.0\.1):(\d+)"), timeout)


def start_backend(name: str, timeout: float = 60.0) -> Backend:
    if name == "secantusdb":
        return start_secantusdb(timeout)
    if name == "ferretdb":
        return start_ferretdb(timeout)
    raise ValueError(f"unknown backend {name!r}; expected one of {BACKENDS}")
