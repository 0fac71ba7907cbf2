package docauth

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/libdocauth/libdocauth/bindings/go/internal/headercodes"
)

var headerPath = filepath.Join("..", "..", "..", "include", "docauth.h")

func headerCodes(t *testing.T) []headercodes.Code {
	t.Helper()
	src, err := os.ReadFile(headerPath)
	if err != nil {
		t.Fatalf("reading the C header: %v", err)
	}
	codes, err := headercodes.Parse(src)
	if err != nil {
		t.Fatalf("parsing the C header: %v", err)
	}
	return codes
}

// Every DOCAUTH_RESULT_* of the header has a Result constant and (except OK) a sentinel with
// the same number and name; and every Go sentinel is in the header.
func TestSentinelsMatchHeader(t *testing.T) {
	codes := headerCodes(t)
	inHeader := map[Result]string{}
	for _, c := range codes {
		r := Result(c.Number)
		inHeader[r] = c.CName
		if got := resultNames[r]; got != c.CName {
			t.Errorf("%s = %d: Go name for %d is %q", c.CName, c.Number, c.Number, got)
		}
		if got := cResultName(r); got != c.CName {
			t.Errorf("docauth_result_name(%d) = %q, header says %q", c.Number, got, c.CName)
		}
		if c.Number == 0 {
			if _, ok := sentinels[r]; ok {
				t.Errorf("OK must not have a sentinel error")
			}
			continue
		}
		s, ok := sentinels[r]
		if !ok {
			t.Errorf("%s = %d has no Go sentinel", c.CName, c.Number)
			continue
		}
		if s.Code != r || s.Name != c.CName {
			t.Errorf("sentinel for %s is {%d %q}", c.CName, s.Code, s.Name)
		}
	}
	for r, s := range sentinels {
		if inHeader[r] != s.Name {
			t.Errorf("Go sentinel %s (%d) is not DOCAUTH_RESULT %q in the header", s.Name, r, inHeader[r])
		}
	}
	if len(resultNames) != len(codes) {
		t.Errorf("Go knows %d codes, the header %d", len(resultNames), len(codes))
	}
}

// codes_gen.go is exactly what `go generate` would write from today's header.
func TestGeneratedCodesAreCurrent(t *testing.T) {
	want, err := headercodes.Generate(headerCodes(t))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("codes_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("codes_gen.go is stale: run `go generate ./docauth` in bindings/go")
	}
}

func TestUnknownResultName(t *testing.T) {
	if got := Result(4_000_000).String(); got != "DOCAUTH_RESULT_UNKNOWN" {
		t.Fatalf("unknown code name = %q", got)
	}
}
