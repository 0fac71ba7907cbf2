// Command aws_conversation performs MONGODB-AWS conversations with libdocauth against the
// DocumentDB-like verifier of tests/peers (moto's STS behind it, signature checking on),
// printing the decoded payloads and the ARN the verifier returned.
//
//	cargo build --release   # at the repository root
//	python tests/peers/with_moto.py -- sh -c 'cd examples/go && go run ./aws_conversation'
//
// In this repository the binding links target/release/libdocauth.a: add -tags docauth_static
// with CGO_CFLAGS=-I$PWD/../../include CGO_LDFLAGS=-L$PWD/../../target/release (as make
// test-go does), or build against an installed library (bindings/go/README.md).
//
// Environment: DOCAUTH_TEST_VERIFIER_URL, DOCAUTH_TEST_AWS_ACCESS_KEY_ID,
// DOCAUTH_TEST_AWS_SECRET_ACCESS_KEY (long-term credentials), and optionally
// DOCAUTH_TEST_TEMP_ACCESS_KEY_ID, DOCAUTH_TEST_TEMP_SECRET_ACCESS_KEY,
// DOCAUTH_TEST_TEMP_SESSION_TOKEN (temporary credentials, e.g. from AssumeRole).
package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/libdocauth/libdocauth/bindings/go/docauth"
	"go.mongodb.org/mongo-driver/v2/bson"
)

var client = &http.Client{Timeout: 30 * time.Second}

func main() {
	verifier := os.Getenv("DOCAUTH_TEST_VERIFIER_URL")
	akid := os.Getenv("DOCAUTH_TEST_AWS_ACCESS_KEY_ID")
	secret := os.Getenv("DOCAUTH_TEST_AWS_SECRET_ACCESS_KEY")
	if verifier == "" || akid == "" || secret == "" {
		fmt.Fprintln(os.Stderr, "aws_conversation: set DOCAUTH_TEST_VERIFIER_URL, DOCAUTH_TEST_AWS_ACCESS_KEY_ID and "+
			"DOCAUTH_TEST_AWS_SECRET_ACCESS_KEY (run under tests/peers/with_moto.py)")
		os.Exit(2)
	}
	fmt.Printf("libdocauth %s (Go binding)\n", docauth.Version())

	ok := run("long-term IAM user credentials", verifier, akid, secret, "")
	if tAkid, tSecret, tToken := os.Getenv("DOCAUTH_TEST_TEMP_ACCESS_KEY_ID"),
		os.Getenv("DOCAUTH_TEST_TEMP_SECRET_ACCESS_KEY"), os.Getenv("DOCAUTH_TEST_TEMP_SESSION_TOKEN"); tAkid != "" {
		ok = run("temporary AssumeRole credentials", verifier, tAkid, tSecret, tToken) && ok
	}
	if !ok {
		os.Exit(1)
	}
}

// run performs one conversation and reports whether the verifier accepted it.
func run(title, verifier, akid, secret, token string) bool {
	fmt.Printf("\n== %s (access key id %s)\n", title, akid)
	arn, err := converse(verifier, akid, secret, token)
	if err != nil {
		fmt.Fprintf(os.Stderr, "aws_conversation: %v\n", err)
		return false
	}
	fmt.Printf("verifier accepted: ARN %s\n", arn)
	return true
}

func converse(verifier, akid, secret, token string) (string, error) {
	creds, err := docauth.NewCredentials(akid, secret, token)
	if err != nil {
		return "", err
	}
	defer creds.Close()
	conv, err := docauth.NewAwsConversation(creds)
	if err != nil {
		return "", err
	}
	defer conv.Close()

	first, err := conv.ClientFirst()
	if err != nil {
		return "", err
	}
	raw := bson.Raw(first)
	_, r, _ := raw.Lookup("r").BinaryOK()
	p, _ := raw.Lookup("p").Int32OK()
	fmt.Printf("client-first  (%3d bytes): r = %s (%d bytes), p = %d (int32, 'n')\n", len(first), hex.EncodeToString(r), len(r), p)

	base := strings.TrimRight(verifier, "/")
	resp, serverFirst, err := post(base+"/sasl/start", first)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("/sasl/start: HTTP %d: %s", resp.StatusCode, serverFirst)
	}
	raw = bson.Raw(serverFirst)
	_, s, _ := raw.Lookup("s").BinaryOK()
	h, _ := raw.Lookup("h").StringValueOK()
	fmt.Printf("server-first  (%3d bytes): s = %s (%d bytes), h = %q\n", len(serverFirst), hex.EncodeToString(s), len(s), h)

	final, err := conv.ClientFinal(serverFirst)
	if err != nil {
		return "", err
	}
	raw = bson.Raw(final)
	a, _ := raw.Lookup("a").StringValueOK()
	d, _ := raw.Lookup("d").StringValueOK()
	fmt.Printf("client-final  (%3d bytes):\n  a = %s\n  d = %s\n", len(final), a, d)
	if t, err := raw.LookupErr("t"); err == nil {
		tok, _ := t.StringValueOK()
		fmt.Printf("  t = <session token, %d bytes>\n", len(tok))
	} else {
		fmt.Println("  t absent (no session token)")
	}

	resp, answer, err := post(base+"/sasl/finish?conversation="+url.QueryEscape(resp.Header.Get("X-Conversation-Id")), final)
	if err != nil {
		return "", err
	}
	var res struct {
		ARN   string `json:"arn"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(answer, &res); err != nil {
		return "", fmt.Errorf("/sasl/finish: HTTP %d: %q", resp.StatusCode, answer)
	}
	if resp.StatusCode != http.StatusOK || res.ARN == "" {
		return "", fmt.Errorf("verifier refused (HTTP %d): %s", resp.StatusCode, res.Error)
	}
	return res.ARN, nil
}

func post(u string, body []byte) (*http.Response, []byte, error) {
	resp, err := client.Post(u, "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp, data, err
}
