#!/usr/bin/env bash
# The Go binding as a user gets it, outside this repository:
#  1. bindings/go is copied alone to a temporary directory, as its module zip holds it (nested
#     modules such as internal/peertests left out), and the library is installed with
#     `make install PREFIX=<tmp>`;
#  2. an outside module imports the binding through a `replace` and is built with the default
#     tags: the library comes from pkg-config (PKG_CONFIG_PATH=<tmp>/lib/pkgconfig), the program
#     records libdocauth.so.0 and runs (rpath from pkg-config's libdir): version, a signed
#     client-first, an allow and a deny decision;
#  3. `go mod graph` of that module names no AWS SDK and no MongoDB driver;
#  4. `-tags docauth_static` with CGO_CFLAGS/CGO_LDFLAGS from pkg-config links libdocauth.a:
#     the program needs no libdocauth.so and runs;
#  5. without the library the build fails with a message that says what to do.
# Expects the library to be built (make install-build); `make test-go-module` does that first.
set -euo pipefail
cd "$(dirname "$0")/.."
MAKE=${MAKE:-make}
GO=${GO:-go}
repo=$(pwd)
version=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "check-go-module: $*" >&2; exit 1; }
# Nothing of the repository's own Go set-up (make test-go's tags and cgo flags) may leak in.
unset GOFLAGS CGO_CFLAGS CGO_LDFLAGS PKG_CONFIG_PATH DOCAUTH_LIBRARY
export GOWORK=off GOTOOLCHAIN=local

# 1. The library, and the binding's module as a zip would hold it.
prefix="$tmp/prefix"
"$MAKE" --no-print-directory -s install PREFIX="$prefix" >/dev/null
cp -r bindings/go "$tmp/binding"
find "$tmp/binding" -mindepth 2 -name go.mod -printf '%h\n' | xargs -r rm -rf
[ ! -e "$tmp/binding/internal/peertests" ] || fail "nested module still in the copy"

# 2. A program of a user.
mkdir "$tmp/app"
cat > "$tmp/app/go.mod" <<'MOD'
module example.com/docauth-user

go 1.20

require github.com/libdocauth/libdocauth/bindings/go v0.0.0

replace github.com/libdocauth/libdocauth/bindings/go => ../binding
MOD
cat > "$tmp/app/main.go" <<'GO'
package main

import (
	"fmt"
	"os"

	"github.com/libdocauth/libdocauth/bindings/go/docauth"
)

const config = `
roles:
  - {kind: role, version: v7, metadata: {name: access},
     spec: {allow: {db_labels: {'*': '*'}, db_users: [teleport-docdb-user], db_names: [test]}}}
databases:
  - {name: my-docdb, labels: {env: dev}}
identities:
  - {user: alice, roles: [access]}
`

func run() error {
	fmt.Println("libdocauth", docauth.Version())
	creds, err := docauth.NewCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "")
	if err != nil {
		return err
	}
	defer creds.Close()
	conv, err := docauth.NewAwsConversation(creds)
	if err != nil {
		return err
	}
	defer conv.Close()
	first, err := conv.ClientFirst()
	if err != nil {
		return err
	}
	engine, err := docauth.NewEngine(config)
	if err != nil {
		return err
	}
	defer engine.Close()
	ask := func(db string) (docauth.Decision, error) {
		return engine.Decide(docauth.Request{Identity: "alice", Database: "my-docdb", DBUser: "teleport-docdb-user", DBName: db})
	}
	allowed, err := ask("test")
	if err != nil {
		return err
	}
	denied, err := ask("admin")
	if err != nil {
		return err
	}
	if !allowed.Allowed || denied.Allowed {
		return fmt.Errorf("decisions: test %+v, admin %+v", allowed, denied)
	}
	fmt.Printf("client-first %d bytes; test allowed, admin denied (%s)\n", len(first), denied.Reason)
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "docauth-user:", err)
		os.Exit(1)
	}
}
GO
pc() { PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config "$@"; }
libdir=$(pc --variable=libdir docauth)
cd "$tmp/app"
PKG_CONFIG_PATH="$prefix/lib/pkgconfig" CGO_LDFLAGS="-Wl,-rpath,$libdir" "$GO" build -o app-shared . \
    || fail "default (pkg-config) build failed"
needed=$(readelf -d app-shared | sed -n 's/.*(NEEDED).*\[\(libdocauth[^]]*\)\].*/\1/p')
[ "$needed" = "libdocauth.so.0" ] || fail "program records NEEDED '$needed', want libdocauth.so.0"
out=$(./app-shared) || fail "pkg-config build did not run: $out"
grep -qx "libdocauth $version" <<<"$out" || fail "unexpected output: $out"

# 3. What the binding brings into a user's module graph.
graph=$("$GO" mod graph)
if grep -E 'aws-sdk-go|smithy-go|mongo-driver' <<<"$graph"; then fail "the binding brings test dependencies into a user's module graph"; fi

# 4. Static.
CGO_CFLAGS="-O2 -g $(pc --cflags docauth)" CGO_LDFLAGS="-L$libdir" \
    "$GO" build -tags docauth_static -o app-static . || fail "docauth_static build failed"
if readelf -d app-static | grep -q libdocauth; then fail "docauth_static program needs libdocauth.so"; fi
./app-static >/dev/null || fail "docauth_static program failed"

# 5. No library: the error says what to do.
if err=$("$GO" build -o /dev/null . 2>&1); then fail "built without an installed libdocauth"; fi
grep -q "PKG_CONFIG_PATH" <<<"$err" || fail "pkg-config build error does not say what to do: $err"
if err=$("$GO" build -tags docauth_static -o /dev/null . 2>&1); then fail "docauth_static built without CGO_CFLAGS"; fi
grep -q "docauth.h not found. Install libdocauth" <<<"$err" || fail "docauth_static build error does not say what to do: $err"
cd "$repo"

echo "check-go-module: bindings/go alone builds against the installed library (pkg-config: NEEDED $needed; docauth_static: no libdocauth.so), runs ($(sed -n 2p <<<"$out")); no AWS SDK or driver in a user's go mod graph; missing library errors name the fix"
