#!/usr/bin/env bash
# The three MONGODB-AWS examples, one after the other, against the same verifier.
# Run through `make demo`, which builds the library and the C example and starts the peers:
#   .venv/bin/python tests/peers/with_moto.py -- examples/run-demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DOCAUTH_TEST_VERIFIER_URL:?run me under tests/peers/with_moto.py (make demo)}"

banner() { printf '\n======== %s ========\n' "$*"; }

banner "C: examples/c/aws_conversation.c"
build/examples/aws_conversation

banner "Python: examples/python/aws_conversation.py"
.venv/bin/python examples/python/aws_conversation.py

banner "Go: examples/go/aws_conversation"
(cd examples/go && go run ./aws_conversation)

banner "demo: C, Python and Go were each accepted by the verifier"
