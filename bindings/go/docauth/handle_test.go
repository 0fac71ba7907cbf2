package docauth

import (
	"errors"
	"strings"
	"testing"
)

// Every owning type shares one handle: Close is idempotent and a use afterwards is an
// error naming the type that matches ErrClosed and ErrInvalidState.
func TestEveryOwningTypeRefusesUseAfterClose(t *testing.T) {
	engine, err := NewEngine(policyConfig)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := NewRuntime(1)
	if err != nil {
		t.Fatal(err)
	}
	provider, err := NewCredentialsProvider(`{"source": {"type": "static", "access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": "secret"}, "region": "us-east-1"}`)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := NewCredentials("AKIAIOSFODNN7EXAMPLE", "secret", "")
	if err != nil {
		t.Fatal(err)
	}
	conv, err := NewAwsConversation(creds)
	if err != nil {
		t.Fatal(err)
	}
	uses := []struct {
		what  string
		close func() error
		use   func() error
	}{
		{"Engine", engine.Close, func() error { _, err := engine.Decide(alice("test")); return err }},
		{"Runtime", rt.Close, func() error { return rt.SetMaxSessions(5) }},
		{"CredentialsProvider", provider.Close, func() error { return provider.Invalidate("u") }},
		{"AwsConversation", conv.Close, func() error { _, err := conv.ClientFirst(); return err }},
		{"Credentials", creds.Close, func() error { _, err := NewAwsConversation(creds); return err }},
	}
	for _, u := range uses {
		if err := u.close(); err != nil {
			t.Fatalf("%s: Close: %v", u.what, err)
		}
		if err := u.close(); err != nil {
			t.Fatalf("%s: second Close: %v", u.what, err)
		}
		err := u.use()
		if !errors.Is(err, ErrClosed) || !errors.Is(err, ErrInvalidState) || !strings.Contains(err.Error(), u.what+" used after Close") {
			t.Fatalf("%s used after Close: %v", u.what, err)
		}
	}
}
