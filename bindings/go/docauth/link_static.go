//go:build docauth_static

package docauth

// With `-tags docauth_static` the package links libdocauth.a into the program, which then
// needs no libdocauth.so at run time. The header and library directories come from the
// environment (pkg-config is not used: its `-ldocauth` would pick the shared library):
//
//	CGO_CFLAGS="-O2 -g $(pkg-config --cflags docauth)" \
//	CGO_LDFLAGS="-L$(pkg-config --variable=libdir docauth)" go build -tags docauth_static ./...
//
// (in a libdocauth checkout, -I<repo>/include and -L<repo>/target/release, as `make test-go`
// does). The system libraries below are what `rustc --print native-static-libs` lists for
// Linux/glibc, the same as docauth.pc's Libs.private.

// #cgo LDFLAGS: -l:libdocauth.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
import "C"
