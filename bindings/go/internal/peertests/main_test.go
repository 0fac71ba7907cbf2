// Package peertests holds the binding's tests that need independent peers as Go modules:
// the AWS SDK for Go v2 (its SigV4 signer as a reference) and the MongoDB Go driver (BSON
// decoding, a real client of proxied sessions). It is a module of its own so that those
// modules never reach the go.mod of a program that imports the binding.
package peertests

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMain opens the static library so that `go test`'s result cache notices a rebuilt
// library (Go tracks the files a test opens, not the files named in cgo LDFLAGS).
func TestMain(m *testing.M) {
	if f, err := os.Open(filepath.Join("..", "..", "..", "..", "target", "release", "libdocauth.a")); err == nil {
		f.Close()
	}
	os.Exit(m.Run())
}
