#!/usr/bin/env bash
# Fails when the committed include/docauth.h is not exactly what the pinned cbindgen
# generates from the current sources. Fix with `make header` and commit the header.
#   CBINDGEN=/path/to/cbindgen tests/check-header.sh     (default: cbindgen on PATH)
set -euo pipefail
cd "$(dirname "$0")/.."

want_version=${CBINDGEN_VERSION:-0.29.4}   # the Makefile passes its pin
cbindgen=${CBINDGEN:-cbindgen}
have_version=$("$cbindgen" --version 2>/dev/null || true)
if [ "$have_version" != "cbindgen $want_version" ]; then
    echo "check-header: need cbindgen $want_version, found '${have_version:-none}' ($cbindgen); run 'make tools'" >&2
    exit 2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$cbindgen" --quiet --config cbindgen.toml --crate docauth --output "$tmp/docauth.h"
if ! diff -u include/docauth.h "$tmp/docauth.h"; then
    echo "check-header: include/docauth.h is stale (diff above: committed -> generated); run 'make header' and commit it" >&2
    exit 1
fi
echo "check-header: include/docauth.h matches cbindgen $want_version output"
