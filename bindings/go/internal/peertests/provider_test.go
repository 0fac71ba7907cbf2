package peertests

// The credentials provider against its own moto server (a child process, signature
// checking ON), set up as the DocumentDB guide sets up AWS by tests/moto/credentials_setup.py.
// Needs the repository's .venv with moto[server] (or DOCAUTH_TEST_PYTHON); skipped without
// it unless DOCAUTH_TEST_REQUIRE_PEERS=1.

import (
	. "github.com/libdocauth/libdocauth/bindings/go/docauth"

	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

type motoSetup struct {
	Account          string `json:"account"`
	AccessKeyID      string `json:"access_key_id"`
	SecretAccessKey  string `json:"secret_access_key"`
	UserARN          string `json:"user_arn"`
	DBUserRoleARN    string `json:"db_user_role_arn"`
	AssumeRoleARN    string `json:"assume_role_arn"`
	ExternalID       string `json:"external_id"`
	UntrustedRoleARN string `json:"untrusted_role_arn"`
}

func startCredentialsMoto(t *testing.T) (string, motoSetup) {
	t.Helper()
	repo, err := filepath.Abs(filepath.Join("..", "..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	python := os.Getenv("DOCAUTH_TEST_PYTHON")
	if python == "" {
		python = filepath.Join(repo, ".venv", "bin", "python")
	}
	if _, err := os.Stat(python); err != nil {
		if os.Getenv("DOCAUTH_TEST_REQUIRE_PEERS") == "1" {
			t.Fatalf("no python with moto at %s", python)
		}
		t.Skipf("no python with moto at %s (make venv, or set DOCAUTH_TEST_PYTHON)", python)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	cmd := exec.Command(python, "-m", "moto.server", "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(url + "/moto-api/data.json")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("moto did not start: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, err := exec.Command(python, filepath.Join(repo, "tests", "moto", "credentials_setup.py"), url).Output()
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	var setup motoSetup
	if err := json.Unmarshal(out, &setup); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url+"/moto-api/reset-auth", "text/plain", strings.NewReader("0"))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("reset-auth: %v", err)
	}
	resp.Body.Close()
	return url, setup
}

func assumedCount(t *testing.T, url, roleARN string) int {
	t.Helper()
	return len(assumedKeys(t, url, roleARN))
}

// assumedKeys lists the access key ids moto's STS issued for roleARN, one per call.
func assumedKeys(t *testing.T, url, roleARN string) []string {
	t.Helper()
	resp, err := http.Get(url + "/moto-api/data.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var data struct {
		STS struct {
			AssumedRole []struct {
				RoleARN     string `json:"role_arn"`
				AccessKeyID string `json:"access_key_id"`
			} `json:"AssumedRole"`
		} `json:"sts"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&data); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, r := range data.STS.AssumedRole {
		if r.RoleARN == roleARN {
			keys = append(keys, r.AccessKeyID)
		}
	}
	return keys
}

// signedCallerARN runs a MONGODB-AWS conversation with creds and sends the signed
// GetCallerIdentity to moto as DocumentDB would (Host: the STS host the client signed).
func signedCallerARN(t *testing.T, url string, creds *Credentials) string {
	t.Helper()
	conv, err := NewAwsConversation(creds)
	if err != nil {
		t.Fatal(err)
	}
	defer conv.Close()
	first, err := conv.ClientFirst()
	if err != nil {
		t.Fatal(err)
	}
	var cf struct {
		R bson.Binary `bson:"r"`
	}
	if err := bson.Unmarshal(first, &cf); err != nil {
		t.Fatal(err)
	}
	nonce := append(append([]byte{}, cf.R.Data...), bytes.Repeat([]byte{7}, 32)...)
	serverFirst, err := bson.Marshal(bson.D{{Key: "s", Value: bson.Binary{Data: nonce}}, {Key: "h", Value: "sts.amazonaws.com"}})
	if err != nil {
		t.Fatal(err)
	}
	final, err := conv.ClientFinal(serverFirst)
	if err != nil {
		t.Fatal(err)
	}
	var cl struct {
		A string `bson:"a"`
		D string `bson:"d"`
		T string `bson:"t"`
	}
	if err := bson.Unmarshal(final, &cl); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", url+"/", strings.NewReader("Action=GetCallerIdentity&Version=2011-06-15"))
	req.Host = "sts.amazonaws.com"
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Amz-Date", cl.D)
	req.Header.Set("Authorization", cl.A)
	req.Header.Set("X-MongoDB-Server-Nonce", base64.StdEncoding.EncodeToString(nonce))
	req.Header.Set("X-MongoDB-GS2-CB-Flag", "n")
	if cl.T != "" {
		req.Header.Set("X-Amz-Security-Token", cl.T)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("moto refused the signed GetCallerIdentity: %d %s", resp.StatusCode, body)
	}
	s := string(body)
	start := strings.Index(s, "<Arn>")
	end := strings.Index(s, "</Arn>")
	if start < 0 || end < start {
		t.Fatalf("no ARN in %s", s)
	}
	return s[start+5 : end]
}

func providerConfig(url string, s motoSetup, database map[string]string) string {
	cfg, _ := json.Marshal(map[string]any{
		"source": map[string]string{
			"type": "static", "access_key_id": s.AccessKeyID, "secret_access_key": s.SecretAccessKey,
		},
		"region": "us-east-1", "sts_endpoint": url, "database": database,
	})
	return string(cfg)
}

func TestCredentialsProviderResolvesAndSigns(t *testing.T) {
	url, setup := startCredentialsMoto(t)
	p, err := NewCredentialsProvider(providerConfig(url, setup, map[string]string{
		"assume_role_arn": setup.AssumeRoleARN, "external_id": setup.ExternalID,
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			user := "teleport-docdb-user"
			if i%2 == 1 {
				user = setup.DBUserRoleARN
			}
			c, err := p.Resolve(user, "alice")
			if err != nil {
				errs <- err
				return
			}
			c.Close()
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := assumedCount(t, url, setup.DBUserRoleARN); n != 1 {
		t.Fatalf("50 concurrent resolutions made %d AssumeRole calls, want 1", n)
	}

	creds, err := p.Resolve("teleport-docdb-user", "alice")
	if err != nil {
		t.Fatal(err)
	}
	defer creds.Close()
	// The temporary key moto issued for the db user's role, read back from the library.
	akid := creds.AccessKeyID()
	if keys := assumedKeys(t, url, setup.DBUserRoleARN); !strings.HasPrefix(akid, "ASIA") ||
		akid == setup.AccessKeyID || len(keys) != 1 || keys[0] != akid {
		t.Fatalf("resolved access key id %q; moto issued %q for the role", akid, keys)
	}
	if !strings.Contains(creds.String(), akid) {
		t.Fatalf("String() %q lacks the access key id", creds.String())
	}
	expiry, ok := creds.Expiry()
	if left := time.Until(expiry); !ok || left < 3000*time.Second || left > 3720*time.Second {
		t.Fatalf("expiry %v (%v), want about an hour from now", expiry, ok)
	}
	want := "arn:aws:sts::" + setup.Account + ":assumed-role/teleport-docdb-user/alice"
	if got := signedCallerARN(t, url, creds); got != want {
		t.Fatalf("signed as %s, want %s", got, want)
	}

	if err := p.Invalidate("teleport-docdb-user"); err != nil {
		t.Fatal(err)
	}
	again, err := p.Resolve("teleport-docdb-user", "alice")
	if err != nil {
		t.Fatal(err)
	}
	again.Close()
	if n := assumedCount(t, url, setup.DBUserRoleARN); n != 2 {
		t.Fatalf("after Invalidate: %d AssumeRole calls, want 2", n)
	}
}

func TestCredentialsProviderErrors(t *testing.T) {
	url, setup := startCredentialsMoto(t)
	p, err := NewCredentialsProvider(providerConfig(url, setup, map[string]string{"account_id": setup.Account}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Resolve("untrusted-role", "alice")
	if !errors.Is(err, ErrAwsAssumeRoleDenied) {
		t.Fatalf("got %v, want ErrAwsAssumeRoleDenied", err)
	}
	for _, part := range []string{setup.UserARN, setup.UntrustedRoleARN, "trust policy"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error lacks %q: %v", part, err)
		}
	}
	if strings.Contains(err.Error(), setup.SecretAccessKey) {
		t.Fatal("the secret key leaked into an error")
	}
	if _, err := p.Resolve("arn:aws:iam::123456789012:user/alice", ""); !errors.Is(err, ErrAwsInvalidRoleArn) {
		t.Fatalf("got %v, want ErrAwsInvalidRoleArn", err)
	}
	p.Close()
	p.Close()
	if _, err := p.Resolve("teleport-docdb-user", ""); err == nil {
		t.Fatal("Resolve after Close succeeded")
	}
	if _, err := NewCredentialsProvider(`{"sts_endpont": "x"}`); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("got %v, want ErrInvalidConfig", err)
	}
}
