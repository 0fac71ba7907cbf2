package peertests

// Tests against real peers: moto's STS with request-signature checking ON behind the
// DocumentDB-like MONGODB-AWS verifier of tests/peers. Run them with
//
//	make test-go    (moto + verifier + DocumentDB stand-in; the binding linked statically)
//
// (make test does). Without DOCAUTH_TEST_VERIFIER_URL they are skipped, unless
// DOCAUTH_TEST_REQUIRE_PEERS=1, in which case they fail.

import (
	. "github.com/libdocauth/libdocauth/bindings/go/docauth"

	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

type peerEnv struct {
	verifierURL                     string
	akid, secret, userARN           string
	tempAkid, tempSecret, tempToken string
	assumedRoleARN                  string
}

func requirePeers(t *testing.T) peerEnv {
	t.Helper()
	get := func(name string) string { return os.Getenv(name) }
	env := peerEnv{
		verifierURL:    get("DOCAUTH_TEST_VERIFIER_URL"),
		akid:           get("DOCAUTH_TEST_AWS_ACCESS_KEY_ID"),
		secret:         get("DOCAUTH_TEST_AWS_SECRET_ACCESS_KEY"),
		userARN:        get("DOCAUTH_TEST_USER_ARN"),
		tempAkid:       get("DOCAUTH_TEST_TEMP_ACCESS_KEY_ID"),
		tempSecret:     get("DOCAUTH_TEST_TEMP_SECRET_ACCESS_KEY"),
		tempToken:      get("DOCAUTH_TEST_TEMP_SESSION_TOKEN"),
		assumedRoleARN: get("DOCAUTH_TEST_ASSUMED_ROLE_ARN"),
	}
	if env.verifierURL == "" {
		if get("DOCAUTH_TEST_REQUIRE_PEERS") == "1" {
			t.Fatal("DOCAUTH_TEST_REQUIRE_PEERS=1 but DOCAUTH_TEST_VERIFIER_URL is not set: run under tests/peers/with_moto.py")
		}
		t.Skip("no verifier: run under tests/peers/with_moto.py (DOCAUTH_TEST_VERIFIER_URL unset)")
	}
	if u, err := url.Parse(env.verifierURL); err != nil || !isLoopback(u.Hostname()) {
		t.Fatalf("DOCAUTH_TEST_VERIFIER_URL %q is not a loopback URL; tests only talk to loopback", env.verifierURL)
	}
	for name, v := range map[string]string{
		"DOCAUTH_TEST_AWS_ACCESS_KEY_ID": env.akid, "DOCAUTH_TEST_AWS_SECRET_ACCESS_KEY": env.secret,
		"DOCAUTH_TEST_USER_ARN": env.userARN, "DOCAUTH_TEST_TEMP_ACCESS_KEY_ID": env.tempAkid,
		"DOCAUTH_TEST_TEMP_SECRET_ACCESS_KEY": env.tempSecret, "DOCAUTH_TEST_TEMP_SESSION_TOKEN": env.tempToken,
		"DOCAUTH_TEST_ASSUMED_ROLE_ARN": env.assumedRoleARN,
	} {
		if v == "" {
			t.Fatalf("%s is not set although the verifier is", name)
		}
	}
	return env
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "::1" || strings.HasPrefix(host, "127.")
}

var peerClient = &http.Client{Timeout: 30 * time.Second}

// verifierResult is what the verifier said about a whole conversation.
type verifierResult struct {
	status int
	ARN    string `json:"arn"`
	Error  string `json:"error"`
	Code   string `json:"code"`
}

func post(u string, body []byte) (*http.Response, []byte, error) {
	resp, err := peerClient.Post(u, "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp, data, err
}

// converse runs a full MONGODB-AWS conversation with the verifier. tamper, when not nil,
// may change the client-final payload before it is sent.
func converse(base string, conv *AwsConversation, tamper func([]byte) []byte) (verifierResult, []byte, error) {
	var res verifierResult
	first, err := conv.ClientFirst()
	if err != nil {
		return res, nil, err
	}
	resp, serverFirst, err := post(strings.TrimRight(base, "/")+"/sasl/start", first)
	if err != nil {
		return res, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return res, nil, fmt.Errorf("/sasl/start: HTTP %d: %s", resp.StatusCode, serverFirst)
	}
	id := resp.Header.Get("X-Conversation-Id")
	if id == "" {
		return res, nil, fmt.Errorf("/sasl/start: no X-Conversation-Id")
	}
	final, err := conv.ClientFinal(serverFirst)
	if err != nil {
		return res, nil, fmt.Errorf("client-final: %w", err)
	}
	if tamper != nil {
		final = tamper(final)
	}
	resp, answer, err := post(strings.TrimRight(base, "/")+"/sasl/finish?conversation="+url.QueryEscape(id), final)
	if err != nil {
		return res, nil, err
	}
	res.status = resp.StatusCode
	if err := json.Unmarshal(answer, &res); err != nil {
		return res, nil, fmt.Errorf("/sasl/finish: HTTP %d, not JSON: %q", resp.StatusCode, answer)
	}
	return res, serverFirst, nil
}

func peerConversation(t *testing.T, akid, secret, token string) *AwsConversation {
	t.Helper()
	creds, err := NewCredentials(akid, secret, token)
	if err != nil {
		t.Fatal(err)
	}
	defer creds.Close() // the conversation keeps its own reference
	conv, err := NewAwsConversation(creds)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conv.Close() })
	return conv
}

func TestPeerLongTermCredentialsGiveTheUserARN(t *testing.T) {
	env := requirePeers(t)
	res, serverFirst, err := converse(env.verifierURL, peerConversation(t, env.akid, env.secret, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.status != http.StatusOK || res.ARN != env.userARN {
		t.Fatalf("verifier: HTTP %d arn=%q error=%q code=%q; want the IAM user %q", res.status, res.ARN, res.Error, res.Code, env.userARN)
	}
	// The server-first the verifier sent is the shape the spec describes.
	raw := bson.Raw(serverFirst)
	if st, s, ok := raw.Lookup("s").BinaryOK(); !ok || st != 0 || len(s) != 64 {
		t.Fatalf("server-first s: %v", raw.Lookup("s"))
	}
	if _, ok := raw.Lookup("h").StringValueOK(); !ok {
		t.Fatalf("server-first h: %v", raw.Lookup("h"))
	}
}

func TestPeerTemporaryCredentialsGiveTheAssumedRoleARN(t *testing.T) {
	env := requirePeers(t)
	res, _, err := converse(env.verifierURL, peerConversation(t, env.tempAkid, env.tempSecret, env.tempToken), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.status != http.StatusOK || res.ARN != env.assumedRoleARN {
		t.Fatalf("verifier: HTTP %d arn=%q error=%q code=%q; want the assumed role %q", res.status, res.ARN, res.Error, res.Code, env.assumedRoleARN)
	}
	if !strings.Contains(res.ARN, ":assumed-role/") {
		t.Fatalf("ARN %q is not an assumed-role ARN", res.ARN)
	}
}

func TestPeerRefusesWrongSecret(t *testing.T) {
	env := requirePeers(t)
	wrong := "X" + env.secret[1:]
	if wrong == env.secret {
		wrong = "Y" + env.secret[1:]
	}
	res, _, err := converse(env.verifierURL, peerConversation(t, env.akid, wrong, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.status != http.StatusUnauthorized || res.ARN != "" {
		t.Fatalf("wrong secret: HTTP %d arn=%q; want 401", res.status, res.ARN)
	}
	if strings.Contains(res.Error, wrong) || strings.Contains(res.Error, env.secret) {
		t.Fatal("the refusal echoes a secret")
	}
}

func TestPeerRefusesWrongSessionToken(t *testing.T) {
	env := requirePeers(t)
	token := env.tempToken[:len(env.tempToken)-1] + "x"
	if token == env.tempToken {
		token = env.tempToken[:len(env.tempToken)-1] + "y"
	}
	res, _, err := converse(env.verifierURL, peerConversation(t, env.tempAkid, env.tempSecret, token), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.status != http.StatusUnauthorized || res.ARN != "" {
		t.Fatalf("wrong session token: HTTP %d arn=%q; want 401", res.status, res.ARN)
	}
}

// A client-final whose signature was made for other bytes is refused: we flip one hex digit
// of the signature, as an attacker replaying a payload with a changed nonce effectively would.
func TestPeerRefusesTamperedSignature(t *testing.T) {
	env := requirePeers(t)
	tamper := func(final []byte) []byte {
		var doc bson.D
		if err := bson.Unmarshal(final, &doc); err != nil {
			t.Error(err)
			return final
		}
		for i := range doc {
			if doc[i].Key == "a" {
				a := doc[i].Value.(string)
				last := a[len(a)-1]
				repl := byte('0')
				if last == '0' {
					repl = '1'
				}
				doc[i].Value = a[:len(a)-1] + string(repl)
			}
		}
		out, err := bson.Marshal(doc)
		if err != nil {
			t.Error(err)
		}
		return out
	}
	res, _, err := converse(env.verifierURL, peerConversation(t, env.akid, env.secret, ""), tamper)
	if err != nil {
		t.Fatal(err)
	}
	if res.status != http.StatusUnauthorized {
		t.Fatalf("tampered signature: HTTP %d arn=%q; want 401", res.status, res.ARN)
	}
}

// Many goroutines run whole conversations against the verifier with shared Credentials.
func TestPeerConcurrentConversationsWithSharedCredentials(t *testing.T) {
	env := requirePeers(t)
	longTerm, err := NewCredentials(env.akid, env.secret, "")
	if err != nil {
		t.Fatal(err)
	}
	defer longTerm.Close()
	temporary, err := NewCredentials(env.tempAkid, env.tempSecret, env.tempToken)
	if err != nil {
		t.Fatal(err)
	}
	defer temporary.Close()

	const goroutines, perGoroutine = 8, 4
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			creds, want := longTerm, env.userARN
			if g%2 == 1 {
				creds, want = temporary, env.assumedRoleARN
			}
			for i := 0; i < perGoroutine; i++ {
				conv, err := NewAwsConversation(creds)
				if err != nil {
					t.Error(err)
					return
				}
				res, _, err := converse(env.verifierURL, conv, nil)
				conv.Close()
				if err != nil {
					t.Error(err)
					return
				}
				if res.status != http.StatusOK || res.ARN != want {
					t.Errorf("goroutine %d: HTTP %d arn=%q error=%q; want %q", g, res.status, res.ARN, res.Error, want)
				}
			}
		}(g)
	}
	wg.Wait()
}
