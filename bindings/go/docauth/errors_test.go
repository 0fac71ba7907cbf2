package docauth

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestVersionIsTheCrateVersion(t *testing.T) {
	cargo, err := os.ReadFile(filepath.Join("..", "..", "..", "Cargo.toml"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^version\s*=\s*"([^"]+)"`).FindSubmatch(cargo)
	if m == nil {
		t.Fatal("no version in Cargo.toml")
	}
	if got := Version(); got != string(m[1]) {
		t.Fatalf("Version() = %q, Cargo.toml says %q", got, m[1])
	}
}

func TestErrorsIsMatchesByCode(t *testing.T) {
	err := error(&Error{Code: ResultSaslHostLength, Name: ResultSaslHostLength.String(), Message: "h is empty"})
	wrapped := fmt.Errorf("authenticating: %w", err)
	if !errors.Is(wrapped, ErrSaslHostLength) {
		t.Error("errors.Is(wrapped, ErrSaslHostLength) = false")
	}
	if errors.Is(wrapped, ErrSaslHostEdgeDot) {
		t.Error("errors.Is matched a different code")
	}
	var de *Error
	if !errors.As(wrapped, &de) || de.Code != ResultSaslHostLength || de.Message != "h is empty" {
		t.Errorf("errors.As gave %#v", de)
	}
	if got := err.Error(); got != "docauth: DOCAUTH_RESULT_SASL_HOST_LENGTH: h is empty" {
		t.Errorf("Error() = %q", got)
	}
}

const (
	testAkid   = "AKIDEXAMPLE0000000001"
	testSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYSECRETSECRET"
	testToken  = "FwoGZXIvYXdzEXAMPLE//session+token/with=odd&chars"
)

func TestNewCredentialsRejectsBadStrings(t *testing.T) {
	cases := []struct {
		name                string
		akid, secret, token string
		want                error
		mention             string
	}{
		{"NUL in access key id", "AKID\x00X", testSecret, "", ErrInvalidArgument, "access key id"},
		{"NUL in secret", testAkid, "sec\x00ret", "", ErrInvalidArgument, "secret access key"},
		{"NUL in token", testAkid, testSecret, "tok\x00en", ErrInvalidArgument, "session token"},
		{"invalid UTF-8 access key id", "AKID\xff", testSecret, "", ErrInvalidUtf8, ""},
		{"invalid UTF-8 secret", testAkid, "secret\xc3", "", ErrInvalidUtf8, ""},
		{"invalid UTF-8 token", testAkid, testSecret, "\xfetoken", ErrInvalidUtf8, ""},
		{"empty access key id", "", testSecret, "", ErrAwsInvalidCredentials, ""},
		{"empty secret", testAkid, "", "", ErrAwsInvalidCredentials, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewCredentials(tc.akid, tc.secret, tc.token)
			if err == nil {
				c.Close()
				t.Fatal("accepted")
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want.(*Error).Name)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("message %q does not say which argument (%q)", err, tc.mention)
			}
			for _, secret := range []string{"sec\x00ret", testSecret, "tok\x00en", "secret\xc3", "\xfetoken"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error message leaks a secret: %q", err)
				}
			}
		})
	}
}

func TestCredentialsPrintNoSecret(t *testing.T) {
	c, err := NewCredentials(testAkid, testSecret, testToken)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", c, c, c, c)} {
		if strings.Contains(s, testSecret) || strings.Contains(s, testToken) {
			t.Fatalf("printed a secret: %s", s)
		}
		if !strings.Contains(s, testAkid) {
			t.Fatalf("does not name the access key id: %s", s)
		}
	}
	if !c.Temporary() || c.AccessKeyID() != testAkid {
		t.Fatal("accessors")
	}
	if at, ok := c.Expiry(); ok || !at.IsZero() {
		t.Fatalf("credentials from NewCredentials have no expiry, got %v", at)
	}
}

func TestCredentialsCloseIsIdempotentAndUseAfterCloseFails(t *testing.T) {
	c, err := NewCredentials(testAkid, testSecret, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = NewAwsConversation(c)
	if !errors.Is(err, ErrClosed) || !errors.Is(err, ErrInvalidState) {
		t.Fatalf("conversation from closed credentials: %v", err)
	}
	_, err = NewAwsConversation(nil)
	if !errors.Is(err, ErrNullParameter) {
		t.Fatalf("conversation from nil credentials: %v", err)
	}
}

func TestRuntimeSessionCap(t *testing.T) {
	rt, err := NewRuntime(1)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	if err := rt.SetMaxSessions(0); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("SetMaxSessions(0) = %v, want ErrInvalidArgument", err)
	}
	if err := rt.SetMaxSessions(100); err != nil {
		t.Errorf("SetMaxSessions(100) = %v", err)
	}
	rt.Close()
	if err := rt.SetMaxSessions(100); err == nil {
		t.Error("SetMaxSessions after Close succeeded")
	}
}
