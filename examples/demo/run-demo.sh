#!/usr/bin/env bash
# `make demo`: the C example proxy (examples/c/docauth-proxy.c) in front of a DocumentDB
# stand-in, with a pymongo client that is allowed into `test` and refused `admin`.
#
# make demo builds the library and the proxy, then runs this script under
#   .venv/bin/python tests/peers/with_moto.py -- .venv/bin/python tests/peers/docdb/run.py -- examples/demo/run-demo.sh
# which start moto (STS + IAM, signature checking ON; IAM user docauth-test-user, role
# teleport-docdb-user that the user may assume) and the stand-in (TLS, MONGODB-AWS checked
# against moto, SecantusDB behind it) and export DOCAUTH_TEST_* (tests/peers/*/README.md).
# This script writes the proxy's configuration into a temporary directory, starts the proxy,
# runs examples/demo/demo_client.py through it, prints a few lines of the proxy's /metrics,
# stops the proxy with SIGTERM and prints the audit events it wrote. Then, briefly, the MONGODB-AWS signer examples (C, Python).
# Whatever happens, it stops the proxy it started and removes its directory.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${DOCAUTH_TEST_DOCDB_ADDR:?run me through make demo (tests/peers/with_moto.py + tests/peers/docdb/run.py)}"

PY=.venv/bin/python
PROXY=build/examples/docauth-proxy
work=$(mktemp -d "${TMPDIR:-/tmp}/docauth-demo.XXXXXX")
proxy_pid=""

cleanup() {
    local status=$?
    if [ -n "$proxy_pid" ] && kill -0 "$proxy_pid" 2>/dev/null; then
        kill -TERM "$proxy_pid" 2>/dev/null || true
        wait "$proxy_pid" 2>/dev/null || true
    fi
    if [ "$status" -ne 0 ] && [ -s "$work/proxy.err" ]; then
        printf '\n-- the proxy said (stderr):\n' >&2
        cat "$work/proxy.err" >&2
    fi
    rm -rf "$work"
    [ "$status" -eq 0 ] || printf '\ndemo FAILED (exit %s)\n' "$status" >&2
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

heading() { printf '\n== %s\n' "$*"; }

account=${DOCAUTH_TEST_AWS_ACCOUNT_ID:-123456789012}
region=${DOCAUTH_TEST_AWS_REGION:-us-east-1}

heading "Peers"
echo "  moto (STS + IAM, signature checking on):  $DOCAUTH_TEST_STS_ENDPOINT"
echo "  DocumentDB stand-in (TLS, MONGODB-AWS):   $DOCAUTH_TEST_DOCDB_ADDR -> $DOCAUTH_TEST_DOCDB_BACKEND $DOCAUTH_TEST_DOCDB_BACKEND_HOST:$DOCAUTH_TEST_DOCDB_BACKEND_PORT"
echo "  db user (\$external, MONGODB-AWS):        $DOCAUTH_TEST_DOCDB_DB_USER"
echo "  service's own AWS key:                    IAM user $DOCAUTH_TEST_USER_ARN"

# The configuration: policy (Teleport role), credentials provider, proxy.
umask 077
cat >"$work/policy.yaml" <<YAML
# alice may reach the database "docdb" as db user teleport-docdb-user, database "test" only.
roles:
  - kind: role
    version: v7
    metadata: {name: docdb-test-only}
    spec:
      allow:
        db_labels: {env: demo}
        db_users: [teleport-docdb-user]
        db_names: [test]
databases:
  - name: docdb
    protocol: mongodb
    uri: $DOCAUTH_TEST_DOCDB_ADDR
    labels: {env: demo}
    aws: {account_id: "$account", region: $region}
identities:
  - {user: alice, roles: [docdb-test-only]}
YAML

"$PY" - "$work/credentials.json" <<'PYEOF'
import json, os, sys
e = os.environ
config = {
    # The service's own credentials: the IAM user's long-term key; the provider assumes the
    # db user's role (teleport-docdb-user, whose trust policy names that user) through moto.
    "source": {"type": "static", "access_key_id": e["DOCAUTH_TEST_AWS_ACCESS_KEY_ID"],
               "secret_access_key": e["DOCAUTH_TEST_AWS_SECRET_ACCESS_KEY"]},
    "region": e.get("DOCAUTH_TEST_AWS_REGION", "us-east-1"),
    "sts_endpoint": e["DOCAUTH_TEST_STS_ENDPOINT"],
    # No "database" block: the database's AWS settings (account, region, assume_role_arn,
    # external_id) are written once, in policy.yaml's database entry (`aws:`).
}
with open(sys.argv[1], "w") as f:
    json.dump(config, f, indent=2)
    f.write("\n")
PYEOF

cat >"$work/proxy.conf" <<CONF
# docauth-proxy configuration (examples/c/docauth-proxy.c)
listen = 127.0.0.1:0
policy = policy.yaml
credentials = credentials.json
threads = 2
session = {"identity": "alice", "database": "docdb", "db_user": "teleport-docdb-user", "db_name": "test", "ca_file": "$DOCAUTH_TEST_DOCDB_CA_FILE"}
metrics = 127.0.0.1:0
CONF

heading "Configuration ($work)"
sed 's/^/  proxy.conf   | /' "$work/proxy.conf"
sed 's/^/  policy.yaml  | /' "$work/policy.yaml"
sed -E 's/("secret_access_key": )"[^"]*"/\1"<redacted>"/; s/^/  credentials.json | /' "$work/credentials.json"

heading "Starting the C proxy: $PROXY proxy.conf"
"$PROXY" "$work/proxy.conf" >"$work/audit.jsonl" 2>"$work/proxy.err" &
proxy_pid=$!
listen=""
for _ in $(seq 1 300); do  # up to 30 s: the proxy only loads two files before listening
    listen=$(sed -n 's/^docauth-proxy: listening on //p' "$work/proxy.err")
    [ -n "$listen" ] && break
    kill -0 "$proxy_pid" 2>/dev/null || { wait "$proxy_pid" || true; echo "the proxy exited before listening" >&2; exit 1; }
    sleep 0.1
done
[ -n "$listen" ] || { echo "the proxy did not report its address" >&2; exit 1; }
metrics=$(sed -n 's/^docauth-proxy: metrics on //p' "$work/proxy.err")
[ -n "$metrics" ] || { echo "the proxy did not report its metrics address" >&2; exit 1; }
head -n 2 "$work/proxy.err" | sed 's/^/  /'

heading "pymongo client -> proxy $listen (no credentials, no TLS on this side)"
"$PY" examples/demo/demo_client.py "${listen%:*}" "${listen##*:}"

heading "A few lines of the proxy's metrics (GET http://$metrics/metrics; docs/metrics.md lists them all)"
# The client's sessions end a moment after it closed them: wait for none to be running.
"$PY" - "$metrics" <<'PYEOF'
import sys, time, urllib.request
url = f"http://{sys.argv[1]}"
assert urllib.request.urlopen(url + "/healthz", timeout=10).read() == b"ok\n"
deadline = time.monotonic() + 30
while True:
    text = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    if "\ndocauth_sessions_active 0\n" in text or time.monotonic() > deadline:
        break
    time.sleep(0.1)
wanted = ("docauth_sessions_started_total", "docauth_sessions_active", "docauth_sessions_ended_total",
          "docauth_messages_judged_total", "docauth_messages_denied_total", "docauth_relayed_bytes_total",
          "docauth_policy_cache_hits_total", "docauth_sts_calls_total",
          "docauth_upstream_phase_duration_seconds_sum", "docauth_audit_events_dropped_total")
for line in text.splitlines():
    name = line.split("{")[0].split(" ")[0]
    if name in wanted and not line.endswith(" 0"):
        print(f"  {line}")
PYEOF

heading "Stopping the proxy (SIGTERM)"
kill -TERM "$proxy_pid"
proxy_status=0
wait "$proxy_pid" || proxy_status=$?
proxy_pid=""
echo "  exit status $proxy_status"
[ "$proxy_status" -eq 0 ]
if [ "$(wc -l <"$work/proxy.err")" -gt 2 ]; then
    echo "  stderr:"
    tail -n +3 "$work/proxy.err" | sed 's/^/    /'
fi

heading "Audit events the proxy wrote to stdout ($(wc -l <"$work/audit.jsonl") JSON lines)"
"$PY" - "$work/audit.jsonl" <<'PYEOF'
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)  # every line must be one JSON object
    what = e.get("event", "?")
    detail = " ".join(
        f"{k}={json.dumps(e[k])}"
        for k in ("client_addr", "command", "databases", "collection", "allowed", "success", "error", "reason")
        if e.get(k) is not None and (k != "reason" or e.get("allowed") is False or what == "db.session.end")
        and not (k == "error" and "reason" in e)
    )
    print(f"  {what:<24} {detail}")
# Three of the lines as written (every line is one such JSON object): a start, a refusal, an end.
shown = set()
print()
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e["event"] in ("db.session.start", "db.session.query.failed", "db.session.end") and e["event"] not in shown:
        shown.add(e["event"])
        print(f"  {line.rstrip()}")
PYEOF

heading "Signer examples: one MONGODB-AWS conversation each (C, Python) against moto's STS"
# (the full payloads: build/examples/aws_conversation, .venv/bin/python examples/python/aws_conversation.py)
c_out=$(build/examples/aws_conversation)
py_out=$("$PY" examples/python/aws_conversation.py)
grep -i 'accepted' <<<"$c_out" | sed 's/^ */  C:      /'
grep -i 'accepted' <<<"$py_out" | sed 's/^ */  Python: /'

heading "demo OK: allowed in test, refused in admin (code 13), audited; everything started was stopped"
