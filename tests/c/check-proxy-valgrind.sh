#!/usr/bin/env bash
# The C example proxy under valgrind with real traffic: `make valgrind-proxy`, i.e.
#   .venv/bin/python tests/peers/with_moto.py -- .venv/bin/python tests/peers/docdb/run.py -- tests/c/check-proxy-valgrind.sh
# Listens on [::1]; six pymongo clients at once (insert, find, a refused admin read), three
# of them still connected at SIGTERM. Fails on a definite/indirect leak, an invalid access,
# a client error or an exit status other than 0.
# --undef-value-errors=no: ring's assembly AES-GCM/ChaCha (rustls) reads bytes valgrind
# believes uninitialised (a known false positive for constant-time assembly).
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${DOCAUTH_TEST_DOCDB_ADDR:?run me under tests/peers/docdb/run.py (make valgrind-proxy)}"
work=$(mktemp -d)
pid=""
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; wait "$pid" || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

.venv/bin/python - "$work" <<'PY'
import json, os, sys
e, w = os.environ, sys.argv[1]
with open(f"{w}/policy.yaml", "w") as f:
    f.write(f"""roles:
  - {{kind: role, version: v7, metadata: {{name: r}},
     spec: {{allow: {{db_labels: {{'*': '*'}}, db_users: [teleport-docdb-user], db_names: [test]}}}}}}
databases:
  - {{name: docdb, protocol: mongodb, uri: "{e['DOCAUTH_TEST_DOCDB_ADDR']}",
     aws: {{account_id: "{e['DOCAUTH_TEST_AWS_ACCOUNT_ID']}", region: us-east-1}}}}
identities:
  - {{user: alice, roles: [r]}}
""")
with open(f"{w}/creds.json", "w") as f:
    json.dump({"source": {"type": "static", "access_key_id": e["DOCAUTH_TEST_AWS_ACCESS_KEY_ID"],
                          "secret_access_key": e["DOCAUTH_TEST_AWS_SECRET_ACCESS_KEY"]},
               "sts_endpoint": e["DOCAUTH_TEST_STS_ENDPOINT"], "region": "us-east-1"}, f)
session = {"identity": "alice", "database": "docdb", "db_user": "teleport-docdb-user", "db_name": "test",
           "ca_file": e["DOCAUTH_TEST_DOCDB_CA_FILE"]}
with open(f"{w}/proxy.conf", "w") as f:
    f.write(f"listen = [::1]:0\npolicy = policy.yaml\ncredentials = creds.json\nthreads = 2\nsession = {json.dumps(session)}\n")
PY

${VALGRIND:-valgrind} -q --undef-value-errors=no --leak-check=full --show-leak-kinds=definite,indirect \
    --errors-for-leak-kinds=definite,indirect --error-exitcode=1 \
    --suppressions=tests/c/valgrind.supp build/examples/docauth-proxy "$work/proxy.conf" \
    >"$work/audit.jsonl" 2>"$work/err" &
pid=$!
addr=""
for _ in $(seq 1 600); do  # valgrind starts slowly: up to 2 minutes
    addr=$(sed -n 's/^docauth-proxy: listening on //p' "$work/err")
    [ -n "$addr" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
done
[ -n "$addr" ] || { cat "$work/err" >&2; echo "proxy did not start" >&2; exit 1; }
echo "proxy under valgrind at $addr"

.venv/bin/python - "${addr##*:}" <<'PY'
import sys, threading
import pymongo
from pymongo.errors import OperationFailure
port, kept, errors = int(sys.argv[1]), [], []
def client(i):
    try:
        c = pymongo.MongoClient("[::1]", port, directConnection=True, retryWrites=False, serverSelectionTimeoutMS=60_000)
        c.test.valgrind.insert_one({"i": i})
        assert c.test.valgrind.find_one({"i": i})["i"] == i
        try:
            c.admin["system.users"].find_one()
            errors.append(f"client {i}: admin read allowed")
        except OperationFailure as e:
            if e.code != 13:
                errors.append(f"client {i}: code {e.code}")
        (kept.append(c) if i % 2 else c.close())
    except Exception as e:  # noqa: BLE001 - reported below
        errors.append(f"client {i}: {e!r}")
threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
for t in threads: t.start()
for t in threads: t.join()
if errors:
    sys.exit("\n".join(errors))
print(f"6 clients done, {len(kept)} still connected")
PY

kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=""
.venv/bin/python -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$work/audit.jsonl"
echo "proxy exit status $status, $(wc -l <"$work/audit.jsonl") audit lines (all JSON)"
tail -n +2 "$work/err"
exit "$status"
