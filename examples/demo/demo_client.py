#!/usr/bin/env python3
"""The `make demo` client: plain pymongo through docauth-proxy.

    .venv/bin/python examples/demo/demo_client.py HOST PORT

No credentials and no TLS on this side: the proxy (libdocauth) opens TLS to the database and
authenticates upstream as the db user with MONGODB-AWS. Writes and reads in `test` (allowed
by the demo policy), then reads `admin.system.users`, which the policy refuses with
MongoDB error 13 (Unauthorized) while the connection goes on. Exit status 0 only when all
of that happened.
"""

from __future__ import annotations

import sys

import pymongo
from pymongo.errors import OperationFailure


def main(host: str, port: int) -> int:
    client = pymongo.MongoClient(
        host, port, directConnection=True, retryWrites=False, serverSelectionTimeoutMS=30_000, appname="docauth-demo"
    )
    try:
        coll = client.test.demo
        coll.delete_many({})
        coll.insert_many([{"_id": i, "name": name} for i, name in enumerate(["ada", "grace", "edsger"], start=1)])
        print("  test.demo: inserted 3 documents")
        names = [d["name"] for d in coll.find({}, sort=[("_id", 1)])]
        print(f"  test.demo: find -> {names}")
        if names != ["ada", "grace", "edsger"]:
            print("  unexpected find result", file=sys.stderr)
            return 1
        try:
            client.admin["system.users"].find_one()
        except OperationFailure as e:
            details = e.details or {}
            print(f"  admin.system.users: find refused: code {e.code} ({details.get('codeName')}): {details.get('errmsg')}")
            if e.code != 13:
                return 1
        else:
            print("  admin.system.users: find was ALLOWED — the policy should refuse it", file=sys.stderr)
            return 1
        # The session goes on after a refusal.
        print(f"  test.demo: count after the refusal -> {coll.count_documents({})}")
        return 0
    finally:
        client.close()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
