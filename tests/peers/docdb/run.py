#!/usr/bin/env python3
"""Run a command with a DocumentDB stand-in up (moto STS + backend + TLS/MONGODB-AWS front).

    python tests/peers/docdb/run.py [--backend secantusdb|ferretdb] -- <command> [args...]
    python tests/peers/docdb/run.py [--backend ...]          # no command: print the
                                                              # variables, serve until Ctrl-C

Uses the moto of an enclosing `tests/peers/with_moto.py` when DOCAUTH_TEST_STS_ENDPOINT is
set; otherwise starts its own (same set-up, signature checking proved ON) plus the verifier
HTTP service, and exports the same DOCAUTH_TEST_* variables as with_moto.py. Then starts the
backend and the stand-ins (see harness.py) with the role `teleport-docdb-user` and the IAM
user as `$external` users, exports DOCAUTH_TEST_DOCDB_* (README.md), runs the command and
returns its exit code. Everything it started is stopped, whatever the command does.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/ -> `peers`
    __package__ = "peers.docdb"  # noqa: A001 - lets the relative imports below work as a script

from ..moto_sts import start_moto_sts  # noqa: E402
from ..verifier import MongoDbAwsVerifier, VerifierHttpService  # noqa: E402
from .backends import BACKENDS  # noqa: E402
from .harness import start_docdb  # noqa: E402
from .standin import principal_for_arn  # noqa: E402

DEFAULT_STS_HOST = "sts.amazonaws.com"


def main(argv: list[str]) -> int:
    if "--" in argv:
        i = argv.index("--")
        own, command = argv[:i], argv[i + 1 :]
        if not command:
            print("run.py: nothing after --", file=sys.stderr)
            return 2
    else:
        own, command = argv, []
    p = argparse.ArgumentParser(prog="tests/peers/docdb/run.py", description="DocumentDB stand-in runner")
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default=os.environ.get("DOCAUTH_TEST_DOCDB_BACKEND", "secantusdb"),
        help="MongoDB-compatible server behind the stand-in (default: $DOCAUTH_TEST_DOCDB_BACKEND or secantusdb)",
    )
    p.add_argument("--replica-set", default=None, help="answer hello as primary of this replica set (DocumentDB: rs0)")
    args = p.parse_args(own)

    env = dict(os.environ)
    moto = None
    verifier_service = None
    docdb = None
    child: subprocess.Popen[bytes] | None = None
    try:
        if env.get("DOCAUTH_TEST_STS_ENDPOINT"):
            sts_endpoint = env["DOCAUTH_TEST_STS_ENDPOINT"]
            sts_host = env.get("DOCAUTH_TEST_STS_HOST", DEFAULT_STS_HOST)
            role_arn = principal_for_arn(env["DOCAUTH_TEST_ASSUMED_ROLE_ARN"]) or env["DOCAUTH_TEST_ROLE_ARN"]
            user_arn = env["DOCAUTH_TEST_USER_ARN"]
        else:
            moto = start_moto_sts()
            sts_endpoint, sts_host = moto.endpoint, DEFAULT_STS_HOST
            verifier_service = VerifierHttpService(MongoDbAwsVerifier(sts_endpoint, sts_host)).start()
            env.update(moto.env())
            env["DOCAUTH_TEST_STS_HOST"] = sts_host
            env["DOCAUTH_TEST_VERIFIER_URL"] = verifier_service.url
            role_arn, user_arn = moto.role_arn, moto.user_arn

        docdb = start_docdb(
            args.backend,
            sts_endpoint=sts_endpoint,
            sts_host=sts_host,
            user_arns=[role_arn, user_arn],
            replica_set=args.replica_set,
        )
        env.update(docdb.env())
        print(
            f"docdb run.py: stand-in {docdb.host}:{docdb.port} (TLS, MONGODB-AWS via moto {sts_endpoint}) "
            f"-> {args.backend} {docdb.backend.host}:{docdb.backend.port}",
            file=sys.stderr,
            flush=True,
        )

        if not command:
            for k in sorted(env):
                if k.startswith("DOCAUTH_TEST_") and k not in os.environ:
                    print(f"export {k}={shlex.quote(env[k])}", flush=True)
            stop = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
            stop.wait()
            return 0

        child = subprocess.Popen(command, env=env)

        def forward(signum: int, _frame: object) -> None:
            if child is not None and child.poll() is None:
                child.send_signal(signum)

        signal.signal(signal.SIGTERM, forward)
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:
                continue  # the child got the terminal's SIGINT too; wait for it
    finally:
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if docdb is not None:
            docdb.stop()
        if verifier_service is not None:
            verifier_service.stop()
        if moto is not None:
            moto.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
