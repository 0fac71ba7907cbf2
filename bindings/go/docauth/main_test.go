package docauth

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMain opens the static library so that `go test`'s result cache notices a rebuilt
// library (Go tracks the files a test opens, not the files named in cgo LDFLAGS).
func TestMain(m *testing.M) {
	if f, err := os.Open(filepath.Join("..", "..", "..", "target", "release", "libdocauth.a")); err == nil {
		f.Close()
	}
	os.Exit(m.Run())
}
