#!/usr/bin/env bash
# `make install` works for a C user: installs into temporary prefixes and checks
#  1. PREFIX=<tmp>: a C program built with `cc prog.c $(pkg-config --cflags --libs docauth)`
#     runs against the installed shared library and docauth_version() == Cargo.toml's version;
#     the same program linked statically against libdocauth.a with `pkg-config --static`
#     (Libs.private, -Wl,--gc-sections) runs too; without LD_LIBRARY_PATH only the program
#     linked with -Wl,-rpath,$(pkg-config --variable=libdir docauth) starts;
#  2. DESTDIR=<tmp> PREFIX=/usr/local: files land under DESTDIR, the .pc names /usr/local,
#     libdocauth.so.X.Y.Z has the soname libdocauth.so.X and the two symlinks are right; the
#     installed libraries carry no debug sections (the build tree's keep their line tables);
#  3. bin/docauth-check is installed and decides (allow: exit 0, deny: exit 1);
#  4. `make install` builds no test target (`make -n install` runs no cargo with --tests).
# Expects the library to be built (make lib); `make test-install` does that first.
set -euo pipefail
cd "$(dirname "$0")/.."
MAKE=${MAKE:-make}
CC=${CC:-cc}

version=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)
major=${version%%.*}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "check-install: $*" >&2; exit 1; }

cat > "$tmp/prog.c" <<'C'
#include <docauth.h>
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
    if (argc != 2) return 2;
    const char *v = docauth_version();
    printf("docauth_version() = %s\n", v);
    docauth_credentials *c = NULL;
    docauth_error *err = NULL;
    docauth_result r = docauth_credentials_new(NULL, "secret", NULL, &c, &err);
    int ok = strcmp(v, argv[1]) == 0 && r == DOCAUTH_RESULT_NULL_PARAMETER && c == NULL &&
             docauth_error_code(err) == DOCAUTH_RESULT_NULL_PARAMETER;
    docauth_error_free(err);
    return ok ? 0 : 1;
}
C
# 1. A real prefix.
prefix="$tmp/prefix"
"$MAKE" --no-print-directory -s install PREFIX="$prefix" >/dev/null
# pkg-config sees the temporary prefix through this function only: exporting PKG_CONFIG_PATH
# would reach the nested `make install` below, and aws-lc-sys's build script reruns (and
# half the dependency tree recompiles) whenever PKG_CONFIG_PATH changes.
pc() { PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config "$@"; }
pc_version=$(pc --modversion docauth)
[ "$pc_version" = "$version" ] || fail "pkg-config --modversion says $pc_version, Cargo.toml $version"
# shellcheck disable=SC2046 # word splitting of pkg-config's flags is intended
"$CC" -std=c11 -Wall -Wextra -Werror -o "$tmp/prog" "$tmp/prog.c" $(pc --cflags --libs docauth)
# No rpath in the program: the loader finds the installed library through LD_LIBRARY_PATH.
LD_LIBRARY_PATH="$prefix/lib" "$tmp/prog" "$version" || fail "shared-library program failed"
needed=$(readelf -d "$tmp/prog" | sed -n 's/.*(NEEDED).*\[\(libdocauth[^]]*\)\].*/\1/p')
[ "$needed" = "libdocauth.so.$major" ] || fail "program records NEEDED '$needed', want libdocauth.so.$major"
# Without LD_LIBRARY_PATH the loader does not find it (the README's error message)...
if env -u LD_LIBRARY_PATH "$tmp/prog" "$version" 2>/dev/null; then fail "program ran without finding libdocauth"; fi
# ...unless the program records the library directory (the README's rpath recipe).
# shellcheck disable=SC2046
"$CC" -std=c11 -Wall -Wextra -Werror -o "$tmp/prog-rpath" "$tmp/prog.c" $(pc --cflags --libs docauth) \
    -Wl,-rpath,"$(pc --variable=libdir docauth)"
env -u LD_LIBRARY_PATH "$tmp/prog-rpath" "$version" || fail "program linked with -Wl,-rpath failed"

# Static: libdocauth.a plus the system libraries from Libs.private (pkg-config --static).
private=$(pc --static --libs-only-l docauth | tr ' ' '\n' | grep -vx -- '-ldocauth' | tr '\n' ' ')
# shellcheck disable=SC2046,SC2086
"$CC" -std=c11 -Wall -Wextra -Werror -o "$tmp/prog-static" "$tmp/prog.c" $(pc --cflags docauth) \
    "$(pc --variable=libdir docauth)/libdocauth.a" $private -Wl,--gc-sections
if readelf -d "$tmp/prog-static" | grep -q 'libdocauth'; then fail "static program still needs libdocauth.so"; fi
"$tmp/prog-static" "$version" || fail "statically linked program failed"
# The policy-only example the same way (BENCHMARKS.md, Sizes): it decides, and exits 0 (allowed).
# shellcheck disable=SC2046,SC2086
"$CC" -std=c11 -Wall -Wextra -Werror -O2 -o "$tmp/policy-static" examples/c/policy_decide.c \
    $(pc --cflags docauth) "$(pc --variable=libdir docauth)/libdocauth.a" $private -Wl,--gc-sections
"$tmp/policy-static" >/dev/null || fail "static policy-only example failed"

# 2. A staged install (packagers): DESTDIR + the default prefix.
stage="$tmp/stage"
"$MAKE" --no-print-directory -s install DESTDIR="$stage" >/dev/null
lib="$stage/usr/local/lib"
[ -f "$lib/libdocauth.so.$version" ] && [ ! -L "$lib/libdocauth.so.$version" ] || fail "missing $lib/libdocauth.so.$version"
[ "$(readlink "$lib/libdocauth.so.$major")" = "libdocauth.so.$version" ] || fail "bad symlink libdocauth.so.$major"
[ "$(readlink "$lib/libdocauth.so")" = "libdocauth.so.$major" ] || fail "bad symlink libdocauth.so"
[ -f "$lib/libdocauth.a" ] || fail "missing libdocauth.a"
[ -f "$stage/usr/local/include/docauth.h" ] || fail "missing docauth.h"
[ -x "$stage/usr/local/bin/docauth-check" ] || fail "missing bin/docauth-check"
soname=$(readelf -d "$lib/libdocauth.so.$version" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
[ "$soname" = "libdocauth.so.$major" ] || fail "soname is '$soname', want libdocauth.so.$major"
if readelf -S "$lib/libdocauth.so.$version" | grep -q '\.debug_'; then fail "installed libdocauth.so.$version still has debug sections"; fi
grep -qx 'prefix=/usr/local' "$lib/pkgconfig/docauth.pc" || fail "docauth.pc does not name prefix=/usr/local"
PKG_CONFIG_PATH="$lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$stage" pkg-config --cflags --libs docauth \
    | grep -q -- "-I$stage/usr/local/include" || fail "staged docauth.pc not usable with a sysroot"

# 3. The operator's tool, from the first (real) prefix.
check="$prefix/bin/docauth-check"
[ -x "$check" ] || fail "missing $check"
# (.debug_gdb_scripts, rustc's loaded pretty-printer hook, is not debug information and stays.)
if readelf -SW "$check" | grep -qE '\.debug_(info|line|abbrev|str) '; then fail "installed docauth-check still has debug sections"; fi
cat > "$tmp/roles.yaml" <<'YAML'
kind: role
version: v7
metadata: {name: access}
spec:
  allow: {db_labels: {'*': '*'}, db_users: [teleport-docdb-user], db_names: [test]}
YAML
printf 'roles: [roles.yaml]\ndatabases:\n  - {name: my-docdb, labels: {env: dev}}\n' > "$tmp/policy.yaml"
decide() {
    "$check" --config "$tmp/policy.yaml" --user alice --roles access --db my-docdb \
        --db-user teleport-docdb-user --db-name "$1"
}
decide test >/dev/null || fail "installed docauth-check did not allow alice on test"
rc=0; decide admin >/dev/null || rc=$?
[ "$rc" = 1 ] || fail "installed docauth-check exited $rc for a denied request, want 1"

# 4. No test build in an install: the recipe (dry run) must not compile test targets.
if "$MAKE" --no-print-directory -n install PREFIX="$tmp/dry" | grep -E 'cargo.* --tests|cargo +test'; then
    fail "make install builds test targets"
fi

echo "check-install: bin/docauth-check decides; make install builds no tests; shared ($needed) and static builds via pkg-config run; docauth_version() = $version; DESTDIR layout, soname, symlinks and stripping right"
