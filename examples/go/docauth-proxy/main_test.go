package main

// Smoke test of the Go example proxy as a user runs it: the built binary, a config file,
// the Go driver through it to the DocumentDB stand-in (TLS, MONGODB-AWS checked by moto's
// STS with signature checking ON, SecantusDB behind), audit JSON lines on stdout, SIGTERM ->
// exit 0, a bad configuration -> exit 2 naming the line. `make test-go` runs it under
// tests/peers/with_moto.py and tests/peers/docdb/run.py (DOCAUTH_TEST_* variables); without
// them it is skipped unless DOCAUTH_TEST_REQUIRE_PEERS=1. The full matrix is test_e2e's.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

const listening = "docauth-proxy: listening on "

var proxyBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "docauth-proxy-go")
	if err != nil {
		panic(err)
	}
	proxyBinary = filepath.Join(dir, "docauth-proxy-go")
	build := exec.Command("go", "build", "-o", proxyBinary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the proxy:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func writeConfig(t *testing.T) string {
	t.Helper()
	get := os.Getenv
	port, ca, sts := get("DOCAUTH_TEST_DOCDB_PORT"), get("DOCAUTH_TEST_DOCDB_CA_FILE"), get("DOCAUTH_TEST_STS_ENDPOINT")
	if port == "" || sts == "" {
		if get("DOCAUTH_TEST_REQUIRE_PEERS") == "1" {
			t.Fatal("DOCAUTH_TEST_REQUIRE_PEERS=1 but no DocumentDB stand-in: run under tests/peers/docdb/run.py")
		}
		t.Skip("no DocumentDB stand-in: run under tests/peers/docdb/run.py (make test-go)")
	}
	dir := t.TempDir()
	policy := fmt.Sprintf(`roles:
  - kind: role
    version: v7
    metadata: {name: docdb-access}
    spec:
      allow:
        db_labels: {'*': '*'}
        db_users: [teleport-docdb-user]
        db_names: [test]
databases:
  - name: docdb
    protocol: mongodb
    uri: 127.0.0.1:%s
    aws: {account_id: "123456789012", region: us-east-1}
identities:
  - {user: alice, roles: [docdb-access]}
`, port)
	creds, _ := json.Marshal(map[string]any{
		"source":       map[string]string{"type": "static", "access_key_id": get("DOCAUTH_TEST_AWS_ACCESS_KEY_ID"), "secret_access_key": get("DOCAUTH_TEST_AWS_SECRET_ACCESS_KEY")},
		"region":       "us-east-1",
		"sts_endpoint": sts,
	})
	session, _ := json.Marshal(map[string]any{
		"identity": "alice", "database": "docdb", "db_user": "teleport-docdb-user", "db_name": "test",
		"database_uri": fmt.Sprintf("mongodb://localhost:%s/?tls=true", port), "ca_file": ca,
	})
	conf := "# the Go proxy under test\nlisten = 127.0.0.1:0   # a free port\npolicy = policy.yaml\n" +
		"credentials = creds.json\nthreads = 2\nsession = " + string(session) + "\n"
	for name, text := range map[string]string{"policy.yaml": policy, "creds.json": string(creds), "proxy.conf": conf} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "proxy.conf")
}

func TestGoDriverThroughTheGoProxy(t *testing.T) {
	conf := writeConfig(t)
	cmd := exec.Command(proxyBinary, conf)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	r := bufio.NewReader(stderr)
	line, _ := r.ReadString('\n')
	if !strings.HasPrefix(line, listening) {
		t.Fatalf("proxy did not start: %q", line)
	}
	addr := strings.TrimSpace(strings.TrimPrefix(line, listening))
	if !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":0") {
		t.Fatalf("listening line names %q", addr)
	}
	var rest bytes.Buffer
	stderrDone := make(chan struct{})
	go func() { _, _ = rest.ReadFrom(r); close(stderrDone) }()

	ctx := context.Background()
	c, err := mongo.Connect(options.Client().ApplyURI("mongodb://" + addr + "/?directConnection=true&retryWrites=false").SetServerSelectionTimeout(20 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	coll := c.Database("test").Collection("goproxy")
	_ = coll.Drop(ctx)
	if _, err := coll.InsertMany(ctx, []any{bson.D{{Key: "_id", Value: 1}, {Key: "ssn", Value: "SECRET-1"}}, bson.D{{Key: "_id", Value: 2}}}); err != nil {
		t.Fatal(err)
	}
	if n, err := coll.CountDocuments(ctx, bson.D{}); err != nil || n != 2 {
		t.Fatalf("count %d %v", n, err)
	}
	err = c.Database("admin").RunCommand(ctx, bson.D{{Key: "listDatabases", Value: 1}}).Err()
	var ce mongo.CommandError
	if !errors.As(err, &ce) || ce.Code != 13 {
		t.Fatalf("admin: want code 13, got %v", err)
	}
	if n, err := coll.CountDocuments(ctx, bson.D{}); err != nil || n != 2 {
		t.Fatalf("after the denial: count %d %v", n, err)
	}
	// SIGTERM with the client still connected: the proxy shuts its sessions down.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-stderrDone
	if err := cmd.Wait(); err != nil {
		t.Fatalf("proxy exit: %v; stderr: %s", err, rest.String())
	}
	_ = c.Disconnect(ctx)

	var starts, ends int
	var failed []string
	for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("stdout line is not one JSON object: %q", l)
		}
		switch ev["event"] {
		case "db.session.start":
			starts++
			if ev["success"] != true || !strings.HasPrefix(fmt.Sprint(ev["client_addr"]), "127.0.0.1:") {
				t.Errorf("start event %v", ev)
			}
		case "db.session.end":
			ends++
		case "db.session.query.failed":
			failed = append(failed, fmt.Sprint(ev["database"]))
		}
	}
	if starts == 0 || ends != starts {
		t.Errorf("%d start and %d end events", starts, ends)
	}
	if strings.Join(failed, ",") != "admin" {
		t.Errorf("denied databases %v", failed)
	}
	all := stdout.String() + rest.String()
	if strings.Contains(all, "SECRET-") || strings.Contains(all, os.Getenv("DOCAUTH_TEST_AWS_SECRET_ACCESS_KEY")) {
		t.Error("output leaks a document value or the secret key")
	}
}

func TestBadConfigExits2NamingTheLine(t *testing.T) {
	cases := []struct {
		text   string
		line   int
		needle string
	}{
		{"listen = 127.0.0.1:0\npolicy = p.yaml\nlisten_port = 5\n", 3, "listen_port"},
		{"# comment\n\nlisten = 127.0.0.1:99999\n", 3, "listen"},
		{"listen = 127.0.0.1:0\nlisten = 127.0.0.1:1\n", 2, "twice"},
		{`session = {"identity": "alice", "database": "docdb", "db_user": "u", "client_addr": "1.2.3.4:5"}` + "\n", 1, "client_addr"},
	}
	for _, tc := range cases {
		conf := filepath.Join(t.TempDir(), "bad.conf")
		if err := os.WriteFile(conf, []byte(tc.text), 0o600); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(proxyBinary, conf)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%q: exit %v, stderr %s", tc.text, err, stderr.String())
			continue
		}
		if want := fmt.Sprintf("%s:%d:", conf, tc.line); !strings.Contains(stderr.String(), want) || !strings.Contains(stderr.String(), tc.needle) {
			t.Errorf("%q: stderr %q lacks %q / %q", tc.text, stderr.String(), want, tc.needle)
		}
		if stdout.Len() != 0 {
			t.Errorf("stdout %q", stdout.String())
		}
	}
}
