#!/usr/bin/env python3
"""docauth_proxy.py — a multi-connection MongoDB / Amazon DocumentDB access proxy in Python,
on libdocauth's Python binding. Every accepted TCP connection is handed over (its file
descriptor) to `Runtime.start_session`: the library connects to the database over TLS,
authenticates as the db user with MONGODB-AWS (credentials from the credentials provider),
relays the wire protocol and judges every client message with the policy engine. This
program only accepts, prints the audit events and shuts down cleanly.

    .venv/bin/python examples/python/docauth_proxy.py proxy.conf

Same command line, configuration file and output as examples/c/docauth-proxy.c and
examples/go/docauth-proxy. Configuration file: `key = value` lines; `#` starts a comment
(at the start of a line or after a blank, outside a JSON string); blank lines are ignored.
Relative paths are taken against the configuration file's directory.

    listen = 127.0.0.1:0         # HOST:PORT, [IPv6]:PORT; port 0 = a free port (required)
    policy = policy.yaml         # engine configuration, docauth_engine_new_from_file (required)
    credentials = creds.json     # credentials provider settings, JSON (required)
    threads = 0                  # runtime worker threads, 0 = one per CPU (default 0)
    session = {"identity": "alice", "database": "docdb", "db_user": "teleport-docdb-user", "db_name": "test", "ca_file": "/abs/global-bundle.pem"}
    metrics = 127.0.0.1:9464     # optional: serve GET /metrics (Prometheus text) and /healthz

`session` is the session parameters JSON (one line); the proxy adds `client_addr` for each
connection. Paths inside it (ca_file) are used as written: give absolute ones.

`metrics`, when set, is a second listening address: `GET /metrics` answers the metrics of
the runtime, engine and provider (Prometheus text 0.0.4, or OpenMetrics when the request's
Accept header asks for application/openmetrics-text), `GET /healthz` answers `ok`. Bind it
to a loopback or private address.

Output:
  stderr  `docauth-proxy: listening on HOST:PORT` once ready (the real port), and
          `docauth-proxy: metrics on HOST:PORT` when `metrics` is set; then only
          problems: refused connections and sessions that ended with an error.
  stdout  every audit event, one JSON object per line, flushed as it comes.

Exit status: 0 after SIGTERM / SIGINT (stop accepting, shut the running sessions down, wait
for them, free everything); 2 for a bad command line or configuration (the message names the
file, line and key); 1 for other start-up failures (listening, runtime).

Threads: the main thread runs a selector loop over the listening socket and a self-pipe the
signal handlers write to; the audit callback runs on the library's audit dispatcher thread
and writes under a lock; the metrics endpoint has its own thread.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Optional

import docauth

PROG = "docauth-proxy"
EXIT_CONFIG = 2
REAP_INTERVAL_S = 1.0  # finished sessions are collected this often
KEYS = ("listen", "policy", "credentials", "threads", "session", "metrics")
OPTIONAL_KEYS = ("threads", "metrics")
SESSION_KEYS = (
    "identity",
    "database",
    "db_user",
    "db_name",
    "database_uri",
    "ca_file",
    "connect_timeout_ms",
    "handshake_timeout_ms",
    "idle_timeout_ms",
    "message_timeout_ms",
)
SESSION_REQUIRED = ("identity", "database", "db_user")


class ConfigError(Exception):
    pass


@dataclass
class Config:
    file: str
    listen_host: str = ""
    listen_port: int = 0
    metrics_host: str = ""  # "": no metrics endpoint
    metrics_port: int = 0
    policy_path: str = ""
    credentials_path: str = ""
    threads: int = 0
    session: dict[str, Any] = field(default_factory=dict)
    line_of: dict[str, int] = field(default_factory=dict)

    def error(self, key: Optional[str], message: str) -> ConfigError:
        line = self.line_of.get(key) if key else None
        if line:
            return ConfigError(f"{PROG}: {self.file}:{line}: {key}: {message}")
        return ConfigError(f"{PROG}: {self.file}: {message}")


def strip_comment(line: str) -> str:
    """Cuts a `#` comment: at the start or after a blank, outside a JSON string."""
    in_string = False
    i = 0
    while i < len(line):
        ch = line[i]
        if in_string:
            if ch == "\\" and i + 1 < len(line):
                i += 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
        i += 1
    return line


def parse_address(c: Config, key: str, value: str) -> tuple[str, int]:
    """HOST:PORT or [IPv6]:PORT, for `key` (listen or metrics)."""
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or value[end + 1 : end + 2] != ":":
            raise c.error(key, f'expected [IPV6]:PORT, got "{value}"')
        host, port = value[1:end], value[end + 2 :]
    else:
        host, sep, port = value.rpartition(":")
        if not sep or ":" in host:
            raise c.error(key, f'expected HOST:PORT (IPv6 as [ADDR]:PORT), got "{value}"')
    if not host:
        raise c.error(key, f'no host in "{value}" (e.g. 127.0.0.1:0)')
    if not (port.isascii() and port.isdigit() and len(port) <= 5 and int(port) <= 65535):
        raise c.error(key, f'port must be 0..65535, got "{port}"')
    return host, int(port)


def parse_threads(c: Config, value: str) -> None:
    if not (value.isascii() and value.isdigit() and len(value) <= 4 and int(value) <= 1024):
        raise c.error("threads", f'expected a number 0..1024 (0 = one per CPU), got "{value}"')
    c.threads = int(value)


def parse_session(c: Config, value: str) -> None:
    if not value.startswith("{"):
        raise c.error("session", 'expected a JSON object on one line, {"identity": ...}')
    try:
        obj = json.loads(value)
    except json.JSONDecodeError as e:
        raise c.error("session", f"invalid JSON at column {e.colno}: {e.msg}") from None
    if not isinstance(obj, dict):
        raise c.error("session", 'expected a JSON object on one line, {"identity": ...}')
    for key in obj:
        if key not in SESSION_KEYS:
            hint = " (the proxy sets client_addr itself)" if "client_addr" in obj else ""
            raise c.error("session", f'unknown session parameter "{key}"{hint}')
    for key in SESSION_REQUIRED:
        if key not in obj:
            raise c.error("session", f'missing session parameter "{key}"')
    c.session = obj


def load_config(path: str) -> Config:
    c = Config(file=path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if b"\0" in raw:
            raise ConfigError(f"{PROG}: cannot read configuration {path}: it contains a NUL byte")
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ConfigError(f"{PROG}: cannot read configuration {path}: {reason}") from None
    directory = os.path.dirname(path) or "."
    for line_no, line in enumerate(text.split("\n"), start=1):
        content = strip_comment(line).strip(" \t\r")
        if not content:
            continue
        if "=" not in content:
            raise ConfigError(f'{PROG}: {path}:{line_no}: expected `key = value`, got "{content}"')
        key, _, value = content.partition("=")
        key, value = key.strip(" \t"), value.strip(" \t")
        if key not in KEYS:
            raise ConfigError(
                f'{PROG}: {path}:{line_no}: unknown key "{key}" (known: listen, policy, credentials, threads, session, metrics)'
            )
        if key in c.line_of:
            raise ConfigError(f'{PROG}: {path}:{line_no}: key "{key}" given twice (first on line {c.line_of[key]})')
        c.line_of[key] = line_no
        if not value:
            raise c.error(key, "no value")
        if key == "listen":
            c.listen_host, c.listen_port = parse_address(c, key, value)
        elif key == "metrics":
            c.metrics_host, c.metrics_port = parse_address(c, key, value)
        elif key == "policy":
            c.policy_path = os.path.join(directory, value)
        elif key == "credentials":
            c.credentials_path = os.path.join(directory, value)
        elif key == "threads":
            parse_threads(c, value)
        else:
            parse_session(c, value)
    for key in KEYS:
        if key not in OPTIONAL_KEYS and key not in c.line_of:
            raise c.error(None, f'missing key "{key}"')
    return c


def format_addr(addr: Any, family: int) -> str:
    if family == socket.AF_INET6:
        return f"[{addr[0]}]:{addr[1]}"
    if family == socket.AF_INET:
        return f"{addr[0]}:{addr[1]}"
    return "unknown"


def listen_on(c: Config, key: str, host: str, port: int) -> socket.socket:
    """Binds the first address the host resolves to (`key`: listen or metrics)."""
    try:
        infos = socket.getaddrinfo(
            host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE | socket.AI_NUMERICSERV
        )
    except socket.gaierror as e:
        raise c.error(key, f'cannot resolve "{host}": {e.strerror}') from None
    last: Optional[OSError] = None
    for family, kind, proto, _, sockaddr in infos:
        s = socket.socket(family, kind, proto)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(sockaddr)
            s.listen(128)
            s.setblocking(False)
            return s
        except OSError as e:
            last = e
            s.close()
    reason = last.strerror if last and last.strerror else str(last)
    raise OSError(f"{PROG}: cannot listen on {host}:{port}: {reason}")


class MetricsServer(HTTPServer):
    """GET /metrics (the runtime's, engine's and provider's metrics) and GET /healthz (`ok`),
    served on its own thread from an already bound socket."""

    def __init__(
        self,
        sock: socket.socket,
        runtime: docauth.Runtime,
        engine: docauth.PolicyEngine,
        provider: docauth.CredentialsProvider,
    ) -> None:
        super().__init__(sock.getsockname()[:2], MetricsHandler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        sock.setblocking(True)
        self.runtime, self.engine, self.provider = runtime, engine, provider


class MetricsHandler(BaseHTTPRequestHandler):
    server: MetricsServer

    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self.reply(200, "text/plain; charset=utf-8", b"ok\n")
        elif path == "/metrics":
            openmetrics = "application/openmetrics-text" in self.headers.get("Accept", "")
            s = self.server
            try:
                text = docauth.metrics_text(s.runtime, s.engine, s.provider, openmetrics=openmetrics)
            except docauth.DocauthError as e:
                self.reply(500, "text/plain; charset=utf-8", e.message.encode())
                return
            self.reply(200, docauth.metrics_content_type(openmetrics), text.encode())
        else:
            self.reply(404, "text/plain; charset=utf-8", b"not found: GET /metrics or /healthz\n")

    def reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the http.server name
        pass  # stderr is for problems only


class AuditSink:
    """Writes each audit event as one JSON line on stdout (called on the dispatcher thread)."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
        with self.lock:
            try:
                self.out.write(line + "\n")
                self.out.flush()
            except (OSError, ValueError):
                pass  # stdout gone: nothing to report it to


def finish_session(session: docauth.Session, client: str) -> None:
    """Waits for a finished (or shut down) session, reports an error end, frees the handle."""
    try:
        session.wait()
    except docauth.DocauthError as e:
        print(f"{PROG}: session from {client} ended: {e.name}: {e.message}", file=sys.stderr, flush=True)
    finally:
        session.close()


def serve(c: Config) -> int:
    try:
        engine = docauth.PolicyEngine.from_file(c.policy_path)
    except docauth.DocauthError as e:
        print(c.error("policy", f"{c.policy_path}: {e.name}: {e.message}"), file=sys.stderr)
        return EXIT_CONFIG
    try:
        with open(c.credentials_path, "rb") as f:
            creds_json = f.read()
    except OSError as e:
        engine.close()
        print(c.error("credentials", f"cannot read {c.credentials_path}: {e.strerror}"), file=sys.stderr)
        return EXIT_CONFIG
    try:
        provider = docauth.CredentialsProvider(creds_json)
    except docauth.DocauthError as e:
        engine.close()
        print(c.error("credentials", f"{c.credentials_path}: {e.name}: {e.message}"), file=sys.stderr)
        return EXIT_CONFIG
    finally:
        del creds_json

    wake_r, wake_w = socket.socketpair()
    wake_r.setblocking(False)
    wake_w.setblocking(False)

    def on_signal(signum: int, _frame: Any) -> None:
        try:
            wake_w.send(bytes([signum]))
        except OSError:
            pass  # full: a byte is already there

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    listener: Optional[socket.socket] = None
    metrics_listener: Optional[socket.socket] = None
    metrics_server: Optional[MetricsServer] = None
    runtime: Optional[docauth.Runtime] = None
    sessions: list[tuple[docauth.Session, str]] = []
    status = 0
    try:
        try:
            listener = listen_on(c, "listen", c.listen_host, c.listen_port)
            if c.metrics_host:
                metrics_listener = listen_on(c, "metrics", c.metrics_host, c.metrics_port)
        except ConfigError as e:
            print(e, file=sys.stderr)
            return 1
        except OSError as e:
            print(e, file=sys.stderr)
            return 1
        try:
            runtime = docauth.Runtime(threads=c.threads)
        except docauth.DocauthError as e:
            print(f"{PROG}: runtime: {e.message}", file=sys.stderr)
            return 1
        if metrics_listener is not None:
            metrics_bound = format_addr(metrics_listener.getsockname(), metrics_listener.family)
            metrics_server = MetricsServer(metrics_listener, runtime, engine, provider)
            metrics_listener = None  # the server owns it now
            threading.Thread(target=metrics_server.serve_forever, name="metrics", daemon=True).start()
            print(f"{PROG}: metrics on {metrics_bound}", file=sys.stderr, flush=True)
        bound = format_addr(listener.getsockname(), listener.family)
        print(f"{PROG}: listening on {bound}", file=sys.stderr, flush=True)
        sink = AuditSink(sys.stdout)

        sel = selectors.DefaultSelector()
        sel.register(listener, selectors.EVENT_READ, "accept")
        sel.register(wake_r, selectors.EVENT_READ, "signal")
        stop = False
        while not stop:
            for key, _ in sel.select(REAP_INTERVAL_S):
                if key.data == "signal":
                    stop = True
                    break
                try:
                    conn, addr = listener.accept()
                except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                    continue
                except OSError as e:  # e.g. EMFILE
                    print(f"{PROG}: accept: {e.strerror}", file=sys.stderr, flush=True)
                    continue
                client = format_addr(addr, conn.family)
                params = dict(c.session, client_addr=client)
                try:
                    # The library owns the connection from here on, whatever the result.
                    s = runtime.start_session(conn, params, engine, provider, on_audit=sink)
                except docauth.DocauthError as e:
                    print(f"{PROG}: connection from {client} refused: {e.name}: {e.message}", file=sys.stderr, flush=True)
                    continue
                sessions.append((s, client))
            still = []
            for s, client in sessions:
                if s.is_finished:
                    finish_session(s, client)
                else:
                    still.append((s, client))
            sessions = still

        # Stop accepting, ask every session to end, then wait for each.
        sel.close()
        listener.close()
        listener = None
        for s, _ in sessions:
            s.shutdown()
        for s, client in sessions:
            finish_session(s, client)
        sessions = []
    finally:
        if listener is not None:
            listener.close()
        if metrics_listener is not None:
            metrics_listener.close()
        if metrics_server is not None:
            metrics_server.shutdown()
            metrics_server.server_close()
        if runtime is not None:
            runtime.close()  # delivers the queued audit events, stops the dispatcher
        provider.close()
        engine.close()
        wake_r.close()
        wake_w.close()
    return status


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1].startswith("-"):
        print(f"usage: {PROG} CONFIG_FILE\n(see the docstring of examples/python/docauth_proxy.py)", file=sys.stderr)
        return EXIT_CONFIG
    try:
        config = load_config(argv[1])
    except ConfigError as e:
        print(e, file=sys.stderr)
        return EXIT_CONFIG
    return serve(config)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
