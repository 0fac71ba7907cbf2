# libdocauth — every build, test and install step. Works on a fresh machine that has
# Rust (cargo), Go, Python 3.11, a C compiler, valgrind and pkg-config: everything else
# (cbindgen, the Python venv with moto and the test peers, Go modules) is fetched here.
#
#   make demo        the C example proxy before a DocumentDB stand-in, with a pymongo client
#   make test        every test: header, Rust, C (ASan + valgrind), install, Python, Go
#   make wheel       the Python binding's platform wheel with libdocauth.so inside (build/wheel)
#   make install     PREFIX=/usr/local DESTDIR= : shared + static library, header, docauth.pc,
#                    bin/docauth-check (builds the library and its programs, never the tests)
#   make bench       criterion benchmarks (see BENCHMARKS.md)
#   make soak        10 minutes of load through the C proxy, its memory sampled (not in make test)
#   make miri        the FFI boundary and src/wire unit tests under Miri (nightly; not in make test)
#
# One cargo profile everywhere: release. The bindings use target/release/libdocauth.so.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := lib
.DELETE_ON_ERROR:
# The stages share cargo's lock and two cores: run them one after the other, fail fast.
.NOTPARALLEL:

CARGO ?= cargo
GO ?= go
PYTHON ?= python3
VALGRIND ?= valgrind

PREFIX ?= /usr/local
DESTDIR ?=
LIBDIR ?= $(PREFIX)/lib
BINDIR ?= $(PREFIX)/bin
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
# The build keeps line tables (file:line in backtraces and valgrind reports); the installed
# libraries drop them (25 MB instead of 112 MB for the .so). INSTALL_STRIP= keeps them.
STRIP ?= strip
INSTALL_STRIP ?= --strip-debug

VERSION := $(shell sed -n 's/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)
MAJOR := $(firstword $(subst ., ,$(VERSION)))

export CARGO_TARGET_DIR := $(CURDIR)/target
RELEASE := $(CARGO_TARGET_DIR)/release
LIB_SO := $(RELEASE)/libdocauth.so
LIB_A := $(RELEASE)/libdocauth.a
export DOCAUTH_LIBRARY := $(LIB_SO)
# No prompt may ever wait for a terminal (CI has no stdin).
export PIP_NO_INPUT := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

# System libraries the static library needs (rustc --print native-static-libs, Linux/glibc).
# `make test-install` links a program statically against libdocauth.a with exactly these.
STATIC_LIBS := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc

# cbindgen, pinned: the committed header must be what this exact version generates.
# Installed as a debug build: it compiles in a fraction of the release build's time and
# generates the header in well under a second either way.
CBINDGEN_VERSION := 0.29.4
TOOLS := $(CURDIR)/.tools
CBINDGEN := $(shell c=$$(command -v cbindgen 2>/dev/null) && \
	[ "$$("$$c" --version 2>/dev/null)" = "cbindgen $(CBINDGEN_VERSION)" ] && echo "$$c" || \
	echo "$(TOOLS)/bin/cbindgen")

VENV := $(CURDIR)/.venv
VENV_PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.docauth-installed
PY_REQUIREMENTS := bindings/python/pyproject.toml tests/requirements.txt
# Starts moto (STS + IAM, signature checking on) and the MONGODB-AWS verifier on free
# loopback ports, exports DOCAUTH_TEST_* (tests/peers/README.md), runs the command, stops them.
WITH_MOTO := $(VENV_PY) $(CURDIR)/tests/peers/with_moto.py --

# The C tests: each tests/c/test_*.c, built against the committed header.
C_TESTS := $(wildcard tests/c/test_*.c)
C_TEST_NAMES := $(basename $(notdir $(C_TESTS)))
C_BUILD := build/c
C_TEST_CFLAGS := -std=c11 -Wall -Wextra -Werror -g -O1 -Iinclude \
	-DDOCAUTH_VERSION_EXPECTED='"$(VERSION)"'
C_SANITIZE := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
C_LINK := -L$(RELEASE) -ldocauth -Wl,-rpath,$(RELEASE)
# Leak checking stays on under ASan; the Rust standard library's one-off allocations are all
# still reachable at exit, which LeakSanitizer does not report, so no suppressions are needed.
C_ASAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
C_VALGRIND := $(VALGRIND) -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
	--error-exitcode=1 --suppressions=$(CURDIR)/tests/c/valgrind.supp

stage = @printf '\n==> %s\n' "$(1)"

.PHONY: all tools venv lib header test test-ferretdb-background test-header test-rust test-c test-install \
	test-python test-go test-go-module wheel test-wheel demo soak valgrind-proxy install-build install uninstall bench miri clean distclean help ferretdb \
	build/examples/docauth-proxy-go e2e-programs

all: lib

help:
	@sed -n 's/^#   //p' Makefile

# ---------------------------------------------------------------------------------------
# Set-up

tools:
	@if [ "$$("$(CBINDGEN)" --version 2>/dev/null)" != "cbindgen $(CBINDGEN_VERSION)" ]; then \
		echo "==> installing cbindgen $(CBINDGEN_VERSION) into $(TOOLS)"; \
		$(CARGO) install --locked --force --debug --root "$(TOOLS)" cbindgen --version $(CBINDGEN_VERSION); \
	fi

venv: $(VENV_STAMP)

# FerretDB v1.24.2 (SQLite backend) for the DocumentDB stand-in: .tools/bin/ferretdb, built once.
ferretdb:
	tests/peers/docdb/build_ferretdb.sh

# Re-run only when the Python package's metadata or the test requirements change
# (the package itself is installed editable).
$(VENV_STAMP): $(PY_REQUIREMENTS)
	$(call stage,venv: $(VENV))
	[ -x "$(VENV_PY)" ] || $(PYTHON) -m venv "$(VENV)"
	"$(VENV_PY)" -m pip install -q -e bindings/python -r tests/requirements.txt
	touch $@

# `--lib --tests` builds the library with the same dependency features as `cargo test` and
# `cargo clippy --all-targets` (cargo's resolver 2 unifies dev-dependency features only when
# a test target is in the build): with a plain `cargo build --release` every switch between
# building and testing recompiled serde, bson and the AWS crates (~4 min on 2 busy cores).
lib:
	$(call stage,lib: cargo build --release --lib --tests)
	$(CARGO) build --release --lib --tests
	@# Programs linked with -ldocauth record the soname libdocauth.so.$(MAJOR) (build.rs).
	ln -sfn libdocauth.so "$(RELEASE)/libdocauth.so.$(MAJOR)"

header: tools
	$(call stage,header: include/docauth.h)
	"$(CBINDGEN)" --config cbindgen.toml --crate docauth --output include/docauth.h

# ---------------------------------------------------------------------------------------
# Tests

test: test-ferretdb-background test-header test-rust test-c test-install test-wheel test-python test-go \
	test-go-module
	@printf '\n==> all tests passed\n'

# FerretDB (for the end-to-end cases of test-python) builds in the background at low priority
# while the Rust stages run: on 2 cores it fills the gaps the Rust build leaves (linking,
# single-crate compiles, valgrind). The `ferretdb` prerequisite of test-python waits for it
# (the script takes a lock) and rebuilds in the foreground if it failed.
test-ferretdb-background:
	@mkdir -p build
	@if [ ! -x "$(TOOLS)/bin/ferretdb" ]; then \
		echo "==> ferretdb: building in the background (log: build/ferretdb-build.log)"; \
		(nice -n 10 tests/peers/docdb/build_ferretdb.sh > build/ferretdb-build.log 2>&1 &); \
	fi

test-header: tools
	$(call stage,test-header: committed include/docauth.h == cbindgen $(CBINDGEN_VERSION) output)
	CBINDGEN="$(CBINDGEN)" CBINDGEN_VERSION=$(CBINDGEN_VERSION) tests/check-header.sh

test-rust: venv
	$(call stage,test-rust: cargo fmt --check)
	$(CARGO) fmt --all -- --check
	$(call stage,test-rust: cargo clippy -D warnings)
	$(CARGO) clippy --all-targets --release -- -D warnings
	$(call stage,test-rust: cargo test --release)
	$(CARGO) test --release

# Built first, then run under moto + the verifier (the credentials provider's C test resolves
# teleport-docdb-user against moto and signs with the result): ASan + UBSan, then valgrind.
test-c: lib venv
	@mkdir -p $(C_BUILD)
	@for src in $(C_TESTS); do \
		name=$$(basename "$$src" .c); \
		printf '\n==> test-c: build %s (ASan + UBSan, and plain for valgrind)\n' "$$name"; \
		$(CC) $(C_TEST_CFLAGS) $(C_SANITIZE) -o "$(C_BUILD)/$$name.asan" "$$src" $(C_LINK); \
		$(CC) $(C_TEST_CFLAGS) -o "$(C_BUILD)/$$name" "$$src" $(C_LINK); \
	done
	$(WITH_MOTO) $(SHELL) $(.SHELLFLAGS) 'for name in $(C_TEST_NAMES); do \
		printf "\n==> test-c: %s (ASan + UBSan)\n" "$$name"; \
		$(C_ASAN_ENV) "$(C_BUILD)/$$name.asan"; \
		printf "\n==> test-c: %s (valgrind, no leaks)\n" "$$name"; \
		$(C_VALGRIND) "$(C_BUILD)/$$name"; \
	done'

test-install: lib
	$(call stage,test-install: make install into a temporary prefix then build with pkg-config)
	tests/check-install.sh

# The wheel as a user gets it: a fresh venv outside the repository, a smoke script from /tmp.
test-wheel: wheel
	$(call stage,test-wheel: install the wheel into a fresh venv and run a smoke script from /tmp)
	tests/check-wheel.sh $(WHEEL_DIR)/docauth-$(VERSION)-py3-none-*.whl

# The end-to-end tests (tests/python/test_e2e_proxies.py) need FerretDB, the example proxies
# and the Go driver client; DOCAUTH_TEST_REQUIRE_PEERS=1 turns a missing one into a failure.
test-python: lib venv ferretdb e2e-programs
	$(call stage,test-python: mypy --strict on the package, the examples and typical use)
	"$(VENV)/bin/mypy" --strict bindings/python/src/docauth examples/python bindings/python/typecheck
	$(call stage,test-python: pytest under moto + verifier)
	DOCAUTH_TEST_REQUIRE_PEERS=1 $(WITH_MOTO) "$(VENV)/bin/pytest" bindings/python/tests tests/python

# Programs of the end-to-end tests: the example proxies and the Go driver client (its own
# module, tests/e2e/goclient).
E2E_GOCLIENT := build/e2e/goclient
e2e-programs: $(E2E_GOCLIENT) build/examples/docauth-proxy build/examples/docauth-proxy-go

$(E2E_GOCLIENT): $(wildcard tests/e2e/goclient/*.go) tests/e2e/goclient/go.mod tests/e2e/goclient/go.sum
	$(call stage,e2e: go build $@)
	@mkdir -p $(@D)
	cd tests/e2e/goclient && $(GO) build -o $(CURDIR)/$@ .

# In this repository the Go binding links target/release/libdocauth.a (-tags docauth_static,
# bindings/go/docauth/link_static.go): tests and example programs need nothing installed.
# A user's default build takes the installed library through pkg-config (test-go-module).
GO_IN_REPO := GOFLAGS=-tags=docauth_static CGO_CFLAGS="-O2 -g -I$(CURDIR)/include" \
	CGO_LDFLAGS="-L$(RELEASE)"

# Under moto + verifier + the DocumentDB stand-in (SecantusDB): the binding's session tests
# and the Go example proxy's smoke test need DOCAUTH_TEST_DOCDB_*. The binding's tests that
# need the AWS SDK or the Go driver are their own module (bindings/go/internal/peertests).
test-go: lib venv
	$(call stage,test-go: go test -race under moto + verifier + DocumentDB stand-in)
	$(GO_IN_REPO) DOCAUTH_TEST_REQUIRE_PEERS=1 $(WITH_MOTO) $(VENV_PY) tests/peers/docdb/run.py --backend secantusdb -- \
		sh -c 'for m in bindings/go bindings/go/internal/peertests examples/go; do \
			(cd $$m && $(GO) test -race -count=1 ./...) || exit 1; done'

# The binding as a user gets it: bindings/go alone (what its module zip holds) in a temporary
# directory, an outside module importing it through `replace`, the library from
# `make install PREFIX=<tmp>` through pkg-config; no AWS SDK in that module's graph.
test-go-module: install-build
	$(call stage,test-go-module: bindings/go outside the repository against an installed libdocauth)
	tests/check-go-module.sh

# The Go example proxy (examples/go/docauth-proxy): `build/examples/docauth-proxy-go CONFIG`.
build/examples/docauth-proxy-go: lib
	@mkdir -p $(@D)
	cd examples/go && $(GO_IN_REPO) $(GO) build -o $(CURDIR)/$@ ./docauth-proxy

# ---------------------------------------------------------------------------------------
# Demo, install, bench

build/examples/aws_conversation: examples/c/aws_conversation.c include/docauth.h lib
	@mkdir -p $(@D)
	$(CC) -std=c11 -Wall -Wextra -Werror -O2 -Iinclude -o $@ $< $(C_LINK)

# The C example proxy (examples/c/docauth-proxy.c): `build/examples/docauth-proxy CONFIG`.
build/examples/docauth-proxy: examples/c/docauth-proxy.c include/docauth.h lib
	@mkdir -p $(@D)
	$(CC) -std=c11 -Wall -Wextra -Werror -O2 -g -Iinclude -pthread -o $@ $< $(C_LINK)

# The proxy under valgrind (no leaks, no invalid access) with six pymongo clients and SIGTERM.
# Rounds of 200 Go driver clients × 100 round trips through the C proxy for SOAK_SECONDS; the
# proxy's RSS (after malloc_trim) after each round must stay flat. Figures: BENCHMARKS.md.
SOAK_SECONDS ?= 600
soak: lib venv build/examples/docauth-proxy $(E2E_GOCLIENT)
	$(call stage,soak: $(SOAK_SECONDS) s of load through the C proxy)
	DOCAUTH_SOAK_SECONDS=$(SOAK_SECONDS) $(WITH_MOTO) "$(VENV)/bin/pytest" -q -s \
		tests/python/test_load_c_proxy.py::test_soak_memory_stays_flat

valgrind-proxy: lib venv build/examples/docauth-proxy
	$(call stage,valgrind-proxy: the C proxy under valgrind, real traffic, SIGTERM)
	$(WITH_MOTO) "$(VENV_PY)" tests/peers/docdb/run.py --backend secantusdb -- tests/c/check-proxy-valgrind.sh

# moto (STS + IAM, signature checking on) + the DocumentDB stand-in over TLS (SecantusDB
# behind it), then examples/demo/run-demo.sh: the C proxy, a pymongo client, the audit lines.
demo: lib venv build/examples/docauth-proxy build/examples/aws_conversation
	$(call stage,demo: C proxy + pymongo -> DocumentDB stand-in (MONGODB-AWS via moto) -> SecantusDB)
	$(WITH_MOTO) "$(VENV_PY)" tests/peers/docdb/run.py --backend secantusdb -- examples/demo/run-demo.sh

# What `make install` installs and nothing more: an install (perhaps as root) compiles no test.
# Cargo.toml aligns the features of plain and test builds, so after `make lib` this only links.
install-build:
	$(call stage,install-build: cargo build --release --lib --bins)
	$(CARGO) build --release --lib --bins

install: install-build
	$(call stage,install: $(DESTDIR)$(PREFIX))
	install -d "$(DESTDIR)$(LIBDIR)" "$(DESTDIR)$(INCLUDEDIR)" "$(DESTDIR)$(PKGCONFIGDIR)" "$(DESTDIR)$(BINDIR)"
	install -m 0755 "$(RELEASE)/docauth-check" "$(DESTDIR)$(BINDIR)/docauth-check"
	install -m 0755 "$(LIB_SO)" "$(DESTDIR)$(LIBDIR)/libdocauth.so.$(VERSION)"
	ln -sfn "libdocauth.so.$(VERSION)" "$(DESTDIR)$(LIBDIR)/libdocauth.so.$(MAJOR)"
	ln -sfn "libdocauth.so.$(MAJOR)" "$(DESTDIR)$(LIBDIR)/libdocauth.so"
	install -m 0644 "$(LIB_A)" "$(DESTDIR)$(LIBDIR)/libdocauth.a"
	$(if $(INSTALL_STRIP),$(STRIP) $(INSTALL_STRIP) "$(DESTDIR)$(LIBDIR)/libdocauth.so.$(VERSION)" "$(DESTDIR)$(LIBDIR)/libdocauth.a" "$(DESTDIR)$(BINDIR)/docauth-check")
	install -m 0644 include/docauth.h "$(DESTDIR)$(INCLUDEDIR)/docauth.h"
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
		-e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g' \
		-e 's|@STATIC_LIBS@|$(STATIC_LIBS)|g' \
		pkg-config/docauth.pc.in > "$(DESTDIR)$(PKGCONFIGDIR)/docauth.pc"
	chmod 0644 "$(DESTDIR)$(PKGCONFIGDIR)/docauth.pc"

uninstall:
	rm -f "$(DESTDIR)$(LIBDIR)/libdocauth.so.$(VERSION)" "$(DESTDIR)$(LIBDIR)/libdocauth.so.$(MAJOR)" \
		"$(DESTDIR)$(LIBDIR)/libdocauth.so" "$(DESTDIR)$(LIBDIR)/libdocauth.a" \
		"$(DESTDIR)$(INCLUDEDIR)/docauth.h" "$(DESTDIR)$(PKGCONFIGDIR)/docauth.pc" \
		"$(DESTDIR)$(BINDIR)/docauth-check"

# The Python binding's platform wheel, libdocauth.so inside, manylinux-tagged by auditwheel:
# build/wheel/docauth-$(VERSION)-py3-none-<platform>.whl (bindings/python/build-wheel.sh).
WHEEL_DIR := build/wheel
wheel: install-build venv
	$(call stage,wheel: $(WHEEL_DIR)/docauth-$(VERSION)-py3-none-<platform>.whl)
	bindings/python/build-wheel.sh "$(LIB_SO)" $(WHEEL_DIR) "$(VENV_PY)"

bench:
	$(call stage,bench: cargo bench)
	$(CARGO) bench $(BENCH_ARGS)

# Miri (undefined behaviour: pointer misuse, uninitialised reads, aliasing) over the unit tests
# of the panic boundary and its pointer helpers (src/ffi/boundary.rs) and of the wire parser
# (src/wire/). Needs the nightly toolchain with the miri and rust-src components, installed
# here through rustup when missing; not part of `make test` (a fresh machine may have no
# nightly). Its own target directory (target/miri), so the release build stays as it is.
# The decompression-bomb test is skipped: it inflates tens of MB, hours in Miri's interpreter
# (it runs natively in make test). 2026-12-02: 63 passed (4 boundary + 59 wire), no UB, 154 s.
MIRI_TESTS ?= ffi::boundary wire:: --skip op_compressed_size_lies_and_bombs_are_refused
miri:
	$(call stage,miri: cargo +nightly miri test --lib -- $(MIRI_TESTS))
	@rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^miri' || \
		rustup component add --toolchain nightly miri rust-src
	$(CARGO) +nightly miri test --lib -- $(MIRI_TESTS)

clean:
	$(CARGO) clean
	rm -rf build

# Also drops what the set-up fetched (.venv, .tools).
distclean: clean
	rm -rf "$(VENV)" "$(TOOLS)"
