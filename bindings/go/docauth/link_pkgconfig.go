//go:build !docauth_static

package docauth

// By default the package builds against an installed libdocauth, found by pkg-config:
//
//	make install PREFIX=$HOME/.local        # in a libdocauth checkout: lib, header, docauth.pc
//	export PKG_CONFIG_PATH=$HOME/.local/lib/pkgconfig
//	go build ./...
//
// The program then needs libdocauth.so.0 at run time: install under a prefix the loader
// searches (/usr/local + ldconfig), or link with CGO_LDFLAGS=-Wl,-rpath,<libdir>, or set
// LD_LIBRARY_PATH=<libdir>. If `go build` stops with "Package docauth was not found in the
// pkg-config search path", the library is not installed or PKG_CONFIG_PATH does not name its
// lib/pkgconfig directory. `-tags docauth_static` links libdocauth.a instead (link_static.go).

// #cgo pkg-config: docauth
import "C"
