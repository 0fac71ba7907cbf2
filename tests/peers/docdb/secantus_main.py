"""SecantusDB's own daemon (`python -m secantus`), with its connection cap raised.

SecantusDB 0.7.0b3 closes every connection past 1,000 at once (`DEFAULT_MAX_CONNECTIONS` in
secantus/server.py), and neither its command line nor its config file can change that. The
stand-in in front plays an Amazon DocumentDB instance, whose connection limit is far higher
(by instance size, into the tens of thousands), and the load test
(tests/python/test_load_c_proxy.py) holds 1,000 driver clients with a monitoring connection
each. So this runs SecantusDB's own `main` with the one keyword its server already takes:
`max_connections` (default 20,000; `DOCAUTH_SECANTUS_MAX_CONNECTIONS` overrides).
"""

from __future__ import annotations

import functools
import os
import sys

import secantus.cli
from secantus.server import SecantusDBServer

MAX_CONNECTIONS = int(os.environ.get("DOCAUTH_SECANTUS_MAX_CONNECTIONS", "20000"))

secantus.cli.SecantusDBServer = functools.partial(SecantusDBServer, max_connections=MAX_CONNECTIONS)  # type: ignore[misc]

if __name__ == "__main__":
    sys.exit(secantus.cli.main())
