// Command gencodes writes docauth/codes_gen.go from the DOCAUTH_RESULT_* constants of
// include/docauth.h, so the Go result codes and sentinels never drift from the C header.
//
//	go generate ./docauth   (from bindings/go)
//
// The header is the single source; docauth's TestSentinelsMatchHeader fails when the
// generated file is stale.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/libdocauth/libdocauth/bindings/go/internal/headercodes"
)

func main() {
	header := flag.String("header", "../../../include/docauth.h", "path to docauth.h")
	out := flag.String("out", "codes_gen.go", "output Go file")
	flag.Parse()

	src, err := os.ReadFile(*header)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gencodes:", err)
		os.Exit(1)
	}
	codes, err := headercodes.Parse(src)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gencodes:", err)
		os.Exit(1)
	}

	formatted, err := headercodes.Generate(codes)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gencodes:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, formatted, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gencodes:", err)
		os.Exit(1)
	}
}
