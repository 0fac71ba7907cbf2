//go:build !docauth_dynamic

package docauth

// By default the package links the static library the repository builds
// (`cargo build --release` → target/release/libdocauth.a), so `go test` and `go build`
// work in the source tree with nothing installed and the binaries need no libdocauth.so at
// run time. The system libraries are those `rustc --print native-static-libs` lists.
// Build with `-tags docauth_dynamic` to use an installed libdocauth.so and docauth.h through
// pkg-config instead (that also works outside this repository, e.g. from the module cache).

// #cgo CFLAGS: -I${SRCDIR}/../../../include
// #cgo LDFLAGS: -L${SRCDIR}/../../../target/release -l:libdocauth.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
import "C"
