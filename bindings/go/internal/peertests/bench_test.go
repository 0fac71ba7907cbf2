package peertests

import (
	"testing"

	. "github.com/libdocauth/libdocauth/bindings/go/docauth"
)

// BenchmarkConversation measures one whole conversation through the binding (new,
// client-first, client-final, close), i.e. the signer plus the cgo and copy overhead.
//
//	go test -tags docauth_static -run '^$' -bench . -benchtime 3s .   # in this directory, CGO_* as make test-go sets them
func BenchmarkConversation(b *testing.B) {
	for _, tc := range []struct{ name, token string }{{"long-term", ""}, {"session-token", testToken}} {
		b.Run(tc.name, func(b *testing.B) {
			creds := mustCreds(b, tc.token)
			sf := serverFirst(b, serverNonce(testNonce()), "sts.us-west-2.amazonaws.com")
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				conv, err := NewAwsConversationForTesting(creds, testNonce(), testUnixTime)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := conv.ClientFirst(); err != nil {
					b.Fatal(err)
				}
				if _, err := conv.ClientFinal(sf); err != nil {
					b.Fatal(err)
				}
				conv.Close()
			}
		})
	}
}
