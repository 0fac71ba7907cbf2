//go:build docauth_dynamic

package docauth

// With `-tags docauth_dynamic` the package links the installed shared library
// (`make install` puts libdocauth.so.0 and docauth.pc under PREFIX), found by pkg-config.

// #cgo pkg-config: docauth
import "C"
