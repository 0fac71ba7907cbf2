#!/usr/bin/env python3
"""Run a command with moto's STS (signature checking ON) and the MONGODB-AWS verifier up.

    python tests/peers/with_moto.py -- <command> [args...]

Starts moto on 127.0.0.1:<free port> with an IAM user, its access key, a role it may assume
and temporary credentials of that role (see moto_sts.py), proves signature checking is ON,
starts the verifier HTTP service on another free loopback port, exports the DOCAUTH_TEST_*
variables listed in README.md, runs the command, and returns its exit code. The servers are
always stopped, whatever the command does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from peers.moto_sts import start_moto_sts  # noqa: E402
from peers.verifier import MongoDbAwsVerifier, VerifierHttpService  # noqa: E402

DEFAULT_STS_HOST = "sts.amazonaws.com"


def main(argv: list[str]) -> int:
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        print("usage: with_moto.py -- <command> [args...]", file=sys.stderr)
        return 2
    command = argv[argv.index("--") + 1 :]

    moto = start_moto_sts()
    verifier_service = None
    child: subprocess.Popen[bytes] | None = None
    try:
        verifier_service = VerifierHttpService(MongoDbAwsVerifier(moto.endpoint, DEFAULT_STS_HOST)).start()
        env = dict(os.environ)
        env.update(moto.env())
        env["DOCAUTH_TEST_STS_HOST"] = DEFAULT_STS_HOST
        env["DOCAUTH_TEST_VERIFIER_URL"] = verifier_service.url
        print(
            f"with_moto: moto STS {moto.endpoint} (signature checking ON, verified), "
            f"verifier {verifier_service.url}",
            file=sys.stderr,
            flush=True,
        )

        child = subprocess.Popen(command, env=env)

        def forward(signum: int, _frame: object) -> None:
            if child is not None and child.poll() is None:
                child.send_signal(signum)

        signal.signal(signal.SIGTERM, forward)
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:
                # The child got the same SIGINT from the terminal; wait for it to finish.
                continue
    finally:
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if verifier_service is not None:
            verifier_service.stop()
        moto.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
