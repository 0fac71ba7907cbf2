package peertests

import (
	. "github.com/libdocauth/libdocauth/bindings/go/docauth"

	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// A fixed instant: 2026-11-25T18:41:05Z.
// Test credentials (a copy of docauth/errors_test.go's: the two test packages live in
// different modules, so that this one's peers stay out of the binding's go.mod).
const (
	testAkid   = "AKIDEXAMPLE0000000001"
	testSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYSECRETSECRET"
	testToken  = "FwoGZXIvYXdzEXAMPLE//session+token/with=odd&chars"
)

const testUnixTime = int64(1795632065)

func testNonce() []byte {
	n := make([]byte, 32)
	for i := range n {
		n[i] = byte(0xA0 + i)
	}
	return n
}

// serverNonce extends the client nonce with 32 server bytes, as DocumentDB does.
func serverNonce(client []byte) []byte {
	s := append([]byte{}, client...)
	for i := 0; i < 32; i++ {
		s = append(s, byte(i*7+1))
	}
	return s
}

func serverFirst(t testing.TB, s []byte, host string) []byte {
	t.Helper()
	b, err := marshalServerFirst(s, host)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func marshalServerFirst(s []byte, host string) ([]byte, error) {
	return bson.Marshal(bson.D{{Key: "s", Value: bson.Binary{Subtype: 0, Data: s}}, {Key: "h", Value: host}})
}

func mustCreds(t testing.TB, token string) *Credentials {
	t.Helper()
	c, err := NewCredentials(testAkid, testSecret, token)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testConversation(t testing.TB, creds *Credentials) *AwsConversation {
	t.Helper()
	conv, err := NewAwsConversationForTesting(creds, testNonce(), testUnixTime)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conv.Close() })
	return conv
}

func keys(t testing.TB, raw bson.Raw) []string {
	t.Helper()
	elems, err := raw.Elements()
	if err != nil {
		t.Fatalf("payload is not a valid BSON document: %v", err)
	}
	var ks []string
	for _, e := range elems {
		ks = append(ks, e.Key())
	}
	return ks
}

func TestClientFirstIsNonceAndGS2Flag(t *testing.T) {
	conv := testConversation(t, mustCreds(t, ""))
	first, err := conv.ClientFirst()
	if err != nil {
		t.Fatal(err)
	}
	raw := bson.Raw(first)
	if err := raw.Validate(); err != nil {
		t.Fatalf("invalid BSON: %v", err)
	}
	if got := strings.Join(keys(t, raw), ","); got != "r,p" {
		t.Fatalf("client-first keys = %s, want r,p", got)
	}
	subtype, r, ok := raw.Lookup("r").BinaryOK()
	if !ok || subtype != 0 || len(r) != 32 || !bytes.Equal(r, testNonce()) {
		t.Fatalf("r = subtype %d, %x (ok=%v)", subtype, r, ok)
	}
	p, ok := raw.Lookup("p").Int32OK()
	if !ok || p != 110 {
		t.Fatalf("p = %v (int32: %v), want int32 110 ('n')", raw.Lookup("p"), ok)
	}
}

func TestClientFirstNonceIsRandom(t *testing.T) {
	creds := mustCreds(t, "")
	seen := map[string]bool{}
	for i := 0; i < 20; i++ {
		conv, err := NewAwsConversation(creds)
		if err != nil {
			t.Fatal(err)
		}
		first, err := conv.ClientFirst()
		conv.Close()
		if err != nil {
			t.Fatal(err)
		}
		subtype, r, ok := bson.Raw(first).Lookup("r").BinaryOK()
		if !ok || subtype != 0 || len(r) != 32 {
			t.Fatalf("r = subtype %d len %d", subtype, len(r))
		}
		if seen[string(r)] {
			t.Fatal("the same nonce twice")
		}
		seen[string(r)] = true
	}
}

var authRe = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/sts/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$`)

type finalFields struct {
	akid, date, region, signedHeaders, signature string
	d, t                                         string
	hasT                                         bool
}

func decodeFinal(t testing.TB, final []byte) finalFields {
	t.Helper()
	f, err := parseFinal(final)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// parseFinal decodes a client-final payload and checks its shape; usable from any goroutine.
func parseFinal(final []byte) (finalFields, error) {
	var f finalFields
	raw := bson.Raw(final)
	if err := raw.Validate(); err != nil {
		return f, fmt.Errorf("client-final is not valid BSON: %w", err)
	}
	a, ok := raw.Lookup("a").StringValueOK()
	if !ok {
		return f, fmt.Errorf("a missing or not a string: %v", raw)
	}
	if f.d, ok = raw.Lookup("d").StringValueOK(); !ok {
		return f, fmt.Errorf("d missing or not a string: %v", raw)
	}
	if tv, err := raw.LookupErr("t"); err == nil {
		f.hasT = true
		if f.t, ok = tv.StringValueOK(); !ok {
			return f, fmt.Errorf("t is not a string: %v", tv)
		}
	}
	m := authRe.FindStringSubmatch(a)
	if m == nil {
		return f, fmt.Errorf("a = %q does not have the AWS4-HMAC-SHA256 shape", a)
	}
	f.akid, f.date, f.region, f.signedHeaders, f.signature = m[1], m[2], m[3], m[4], m[5]
	wantKeys := "a,d"
	if f.hasT {
		wantKeys = "a,d,t"
	}
	elems, err := raw.Elements()
	if err != nil {
		return f, err
	}
	var ks []string
	for _, e := range elems {
		ks = append(ks, e.Key())
	}
	if got := strings.Join(ks, ","); got != wantKeys {
		return f, fmt.Errorf("client-final keys = %s, want %s", got, wantKeys)
	}
	return f, nil
}

func TestClientFinalLongTermCredentials(t *testing.T) {
	conv := testConversation(t, mustCreds(t, ""))
	if _, err := conv.ClientFirst(); err != nil {
		t.Fatal(err)
	}
	final, err := conv.ClientFinal(serverFirst(t, serverNonce(testNonce()), "sts.amazonaws.com"))
	if err != nil {
		t.Fatal(err)
	}
	f := decodeFinal(t, final)
	if f.hasT {
		t.Fatal("t present without a session token")
	}
	when := time.Unix(testUnixTime, 0).UTC()
	if f.d != when.Format("20060102T150405Z") {
		t.Errorf("d = %q, want %q", f.d, when.Format("20060102T150405Z"))
	}
	if f.akid != testAkid || f.date != when.Format("20060102") || f.region != "us-east-1" {
		t.Errorf("credential scope = %s/%s/%s", f.akid, f.date, f.region)
	}
	// The spec's header set, sorted, without the security token.
	if f.signedHeaders != "content-length;content-type;host;x-amz-date;x-mongodb-gs2-cb-flag;x-mongodb-server-nonce" {
		t.Errorf("SignedHeaders = %s", f.signedHeaders)
	}
	if strings.Contains(string(final), testSecret) {
		t.Error("client-final contains the secret key")
	}
}

func TestClientFinalTemporaryCredentials(t *testing.T) {
	conv := testConversation(t, mustCreds(t, testToken))
	if _, err := conv.ClientFirst(); err != nil {
		t.Fatal(err)
	}
	final, err := conv.ClientFinal(serverFirst(t, serverNonce(testNonce()), "sts.us-west-2.amazonaws.com"))
	if err != nil {
		t.Fatal(err)
	}
	f := decodeFinal(t, final)
	if !f.hasT || f.t != testToken {
		t.Fatalf("t = %q (present %v), want the session token", f.t, f.hasT)
	}
	if f.region != "us-west-2" {
		t.Errorf("region = %s", f.region)
	}
	if f.signedHeaders != "content-length;content-type;host;x-amz-date;x-amz-security-token;x-mongodb-gs2-cb-flag;x-mongodb-server-nonce" {
		t.Errorf("SignedHeaders = %s", f.signedHeaders)
	}
}

// The region comes from the host as the MONGODB-AWS spec says (and as the Go driver does).
func TestRegionFromHost(t *testing.T) {
	cases := map[string]string{
		"sts.amazonaws.com":                      "us-east-1",
		"sts.us-west-2.amazonaws.com":            "us-west-2",
		"sts.eu-central-1.amazonaws.com":         "eu-central-1",
		"sts.cn-north-1.amazonaws.com.cn":        "cn-north-1",
		"sts.us-gov-west-1.amazonaws.com":        "us-gov-west-1",
		"localhost":                              "us-east-1",
		"first.second":                           "second",
		"sts.ap-southeast-2.amazonaws.com":       "ap-southeast-2",
		strings.Repeat("a", 200) + ".b.c.d.e.fg": "b",
	}
	creds := mustCreds(t, "")
	for host, region := range cases {
		conv := testConversation(t, creds)
		if _, err := conv.ClientFirst(); err != nil {
			t.Fatal(err)
		}
		final, err := conv.ClientFinal(serverFirst(t, serverNonce(testNonce()), host))
		if err != nil {
			t.Errorf("host %q: %v", host, err)
			continue
		}
		if got := decodeFinal(t, final).region; got != region {
			t.Errorf("host %q: region %q, want %q", host, got, region)
		}
	}
}

// Same inputs, same bytes; a different server nonce changes the signature.
func TestClientFinalIsDeterministicGivenNonceAndClock(t *testing.T) {
	creds := mustCreds(t, testToken)
	run := func(s []byte) []byte {
		conv := testConversation(t, creds)
		if _, err := conv.ClientFirst(); err != nil {
			t.Fatal(err)
		}
		final, err := conv.ClientFinal(serverFirst(t, s, "sts.amazonaws.com"))
		if err != nil {
			t.Fatal(err)
		}
		return final
	}
	s := serverNonce(testNonce())
	a, b := run(s), run(s)
	if !bytes.Equal(a, b) {
		t.Fatal("same inputs gave different payloads")
	}
	s2 := append([]byte{}, s...)
	s2[63] ^= 1
	c := run(s2)
	if decodeFinal(t, a).signature == decodeFinal(t, c).signature {
		t.Fatal("the server nonce is not covered by the signature")
	}
}

func TestValidationFailures(t *testing.T) {
	client := testNonce()
	good := serverNonce(client)
	flipped := func(i int) []byte { s := append([]byte{}, good...); s[i] ^= 0xFF; return s }
	raw := func(d bson.D) []byte {
		b, err := bson.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	valid := serverFirst(t, good, "sts.amazonaws.com")
	cases := []struct {
		name  string
		input []byte
		want  *Error
	}{
		{"nonce 63 bytes", serverFirst(t, good[:63], "sts.amazonaws.com"), ErrSaslServerNonceLength},
		{"nonce 65 bytes", serverFirst(t, append(append([]byte{}, good...), 0), "sts.amazonaws.com"), ErrSaslServerNonceLength},
		{"nonce 32 bytes (client part only)", serverFirst(t, client, "sts.amazonaws.com"), ErrSaslServerNonceLength},
		{"nonce empty", serverFirst(t, nil, "sts.amazonaws.com"), ErrSaslServerNonceLength},
		{"nonce first byte changed", serverFirst(t, flipped(0), "sts.amazonaws.com"), ErrSaslServerNonceMismatch},
		{"nonce last client byte changed", serverFirst(t, flipped(31), "sts.amazonaws.com"), ErrSaslServerNonceMismatch},
		{"host empty", serverFirst(t, good, ""), ErrSaslHostLength},
		{"host 256 bytes", serverFirst(t, good, strings.Repeat("a", 252)+".com"), ErrSaslHostLength},
		{"host empty label", serverFirst(t, good, "sts..amazonaws.com"), ErrSaslHostEmptyLabel},
		{"host leading dot", serverFirst(t, good, ".sts.amazonaws.com"), ErrSaslHostEdgeDot},
		{"host trailing dot", serverFirst(t, good, "sts.amazonaws.com."), ErrSaslHostEdgeDot},
		{"host only a dot", serverFirst(t, good, "."), ErrSaslHostEdgeDot},
		{"empty input", nil, ErrSaslMalformedServerFirst},
		{"not BSON", []byte("hello, this is not BSON"), ErrSaslMalformedServerFirst},
		{"truncated", valid[:len(valid)-5], ErrSaslMalformedServerFirst},
		{"length prefix lies", append([]byte{0xff, 0, 0, 0}, valid[4:]...), ErrSaslMalformedServerFirst},
		{"s missing", raw(bson.D{{Key: "h", Value: "sts.amazonaws.com"}}), ErrSaslMalformedServerFirst},
		{"h missing", raw(bson.D{{Key: "s", Value: bson.Binary{Data: good}}}), ErrSaslMalformedServerFirst},
		{"s is a string", raw(bson.D{{Key: "s", Value: string(good)}, {Key: "h", Value: "sts.amazonaws.com"}}), ErrSaslMalformedServerFirst},
		{"h is an int", raw(bson.D{{Key: "s", Value: bson.Binary{Data: good}}, {Key: "h", Value: int32(7)}}), ErrSaslMalformedServerFirst},
		{"16 MB of junk", bytes.Repeat([]byte{0x5a}, 16<<20), ErrSaslMalformedServerFirst},
	}
	creds := mustCreds(t, "")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conv := testConversation(t, creds)
			if _, err := conv.ClientFirst(); err != nil {
				t.Fatal(err)
			}
			_, err := conv.ClientFinal(tc.input)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %s", err, tc.want.Name)
			}
			var de *Error
			if !errors.As(err, &de) || de.Message == "" || de.Name != tc.want.Name {
				t.Fatalf("error has no message or wrong name: %#v", de)
			}
		})
	}

	// 255 bytes is still a valid host length.
	conv := testConversation(t, creds)
	if _, err := conv.ClientFirst(); err != nil {
		t.Fatal(err)
	}
	if _, err := conv.ClientFinal(serverFirst(t, good, strings.Repeat("a", 251)+".com")); err != nil {
		t.Fatalf("255-byte host refused: %v", err)
	}
}

func TestTestingConstructorRejectsBadNonce(t *testing.T) {
	creds := mustCreds(t, "")
	for _, n := range [][]byte{nil, make([]byte, 31), make([]byte, 33)} {
		conv, err := NewAwsConversationForTesting(creds, n, testUnixTime)
		if err == nil {
			conv.Close()
			t.Fatalf("nonce of %d bytes accepted", len(n))
		}
		if !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("nonce of %d bytes: %v", len(n), err)
		}
	}
}

func TestStateOrder(t *testing.T) {
	creds := mustCreds(t, "")
	sf := serverFirst(t, serverNonce(testNonce()), "sts.amazonaws.com")

	conv := testConversation(t, creds)
	if _, err := conv.ClientFinal(sf); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("client-final before client-first: %v", err)
	}

	conv = testConversation(t, creds)
	if _, err := conv.ClientFirst(); err != nil {
		t.Fatal(err)
	}
	if _, err := conv.ClientFirst(); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("client-first twice: %v", err)
	}

	conv = testConversation(t, creds)
	if _, err := conv.ClientFirst(); err != nil {
		t.Fatal(err)
	}
	if _, err := conv.ClientFinal(sf); err != nil {
		t.Fatal(err)
	}
	if _, err := conv.ClientFinal(sf); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("client-final twice: %v", err)
	}
	if _, err := conv.ClientFirst(); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("client-first after client-final: %v", err)
	}
}

func TestConversationCloseAndUseAfterClose(t *testing.T) {
	creds := mustCreds(t, "")
	conv, err := NewAwsConversationForTesting(creds, testNonce(), testUnixTime)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conv.ClientFirst(); err != nil {
		t.Fatal(err)
	}
	if err := conv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := conv.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = conv.ClientFinal(serverFirst(t, serverNonce(testNonce()), "sts.amazonaws.com"))
	if !errors.Is(err, ErrClosed) || !errors.Is(err, ErrInvalidState) {
		t.Fatalf("ClientFinal after Close: %v", err)
	}
	if _, err := conv.ClientFirst(); !errors.Is(err, ErrClosed) {
		t.Fatalf("ClientFirst after Close: %v", err)
	}
}

// The conversation keeps its own reference: closing the credentials right after creating
// it does not break it.
func TestConversationOutlivesCredentials(t *testing.T) {
	creds, err := NewCredentials(testAkid, testSecret, testToken)
	if err != nil {
		t.Fatal(err)
	}
	conv, err := NewAwsConversationForTesting(creds, testNonce(), testUnixTime)
	if err != nil {
		t.Fatal(err)
	}
	defer conv.Close()
	creds.Close()
	if _, err := conv.ClientFirst(); err != nil {
		t.Fatal(err)
	}
	final, err := conv.ClientFinal(serverFirst(t, serverNonce(testNonce()), "sts.amazonaws.com"))
	if err != nil {
		t.Fatal(err)
	}
	if f := decodeFinal(t, final); f.t != testToken || f.akid != testAkid {
		t.Fatalf("payload after credentials closed: %+v", f)
	}
}

// Objects never closed are freed by their finalizers; nothing crashes when the GC runs
// while other objects are in use.
func TestFinalizersFreeUnclosedObjects(t *testing.T) {
	for i := 0; i < 200; i++ {
		creds, err := NewCredentials(testAkid, testSecret, testToken)
		if err != nil {
			t.Fatal(err)
		}
		conv, err := NewAwsConversation(creds)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conv.ClientFirst(); err != nil {
			t.Fatal(err)
		}
		if i%20 == 0 {
			runtimeGC()
		}
	}
	runtimeGC()
}

// The server nonce header value is the standard base64 of s; checked here so the peer
// tests' request rebuilding has a unit-level counterpart.
func TestServerNonceEncoding(t *testing.T) {
	s := serverNonce(testNonce())
	if got := base64.StdEncoding.EncodeToString(s); len(got) != 88 {
		t.Fatalf("base64 of a 64-byte nonce is %d chars", len(got))
	}
}

// Close racing with use: every call either works or reports use after Close.
func TestConcurrentCloseAndUse(t *testing.T) {
	creds := mustCreds(t, testToken)
	sf := serverFirst(t, serverNonce(testNonce()), "sts.amazonaws.com")
	for round := 0; round < 50; round++ {
		conv, err := NewAwsConversationForTesting(creds, testNonce(), testUnixTime)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, step := range []func() error{
					func() error { _, err := conv.ClientFirst(); return err },
					func() error { _, err := conv.ClientFinal(sf); return err },
				} {
					if err := step(); err != nil && !errors.Is(err, ErrInvalidState) {
						t.Errorf("unexpected error: %v", err)
					}
				}
			}()
		}
		wg.Add(1)
		go func() { defer wg.Done(); conv.Close() }()
		wg.Wait()
		conv.Close()
	}
}

// Many goroutines share one Credentials while another closes a second one under them.
func TestConcurrentConversationsShareCredentials(t *testing.T) {
	creds := mustCreds(t, testToken)
	doomed, err := NewCredentials(testAkid, testSecret, "")
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, perGoroutine = 16, 40
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < perGoroutine; i++ {
				nonce := testNonce()
				nonce[0], nonce[1] = byte(g), byte(i)
				conv, err := NewAwsConversationForTesting(creds, nonce, testUnixTime+int64(i))
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := conv.ClientFirst(); err != nil {
					t.Error(err)
				}
				sf, err := marshalServerFirst(serverNonce(nonce), "sts.amazonaws.com")
				if err != nil {
					t.Error(err)
					return
				}
				final, err := conv.ClientFinal(sf)
				conv.Close()
				if err != nil {
					t.Error(err)
					return
				}
				if f, err := parseFinal(final); err != nil || f.t != testToken || f.d != time.Unix(testUnixTime+int64(i), 0).UTC().Format("20060102T150405Z") {
					t.Errorf("payload %+v: %v", f, err)
				}
				if c, err := NewAwsConversation(doomed); err == nil {
					c.Close()
				} else if !errors.Is(err, ErrClosed) {
					t.Errorf("shared credentials being closed: %v", err)
				}
			}
		}(g)
	}
	doomed.Close()
	wg.Wait()
}
