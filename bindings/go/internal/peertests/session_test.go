package peertests

// Sessions end to end with real peers: the Go driver -> an accept loop in the test that
// hands each connection to Runtime.StartSession -> the library (TLS, MONGODB-AWS with
// credentials the CredentialsProvider gets from moto's STS, signature checking ON) -> the
// DocumentDB stand-in of tests/peers/docdb -> SecantusDB. `make test-go` runs these tests
// under tests/peers/with_moto.py and tests/peers/docdb/run.py, which export the
// DOCAUTH_TEST_* and DOCAUTH_TEST_DOCDB_* variables; without them they are skipped, unless
// DOCAUTH_TEST_REQUIRE_PEERS=1 (then they fail).

import (
	. "github.com/libdocauth/libdocauth/bindings/go/docauth"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// sessionEngineConfig is shared with the Python binding's session tests.
var sessionEngineConfig = func() string {
	b, err := os.ReadFile("../../../../tests/fixtures/session-engine.yaml")
	if err != nil {
		panic("the shared session engine configuration: " + err.Error())
	}
	return string(b)
}()

type docdbEnv struct {
	port, caFile string
	stsEndpoint  string
	akid, secret string
}

func requireDocDB(t *testing.T) docdbEnv {
	t.Helper()
	e := docdbEnv{
		port:        os.Getenv("DOCAUTH_TEST_DOCDB_PORT"),
		caFile:      os.Getenv("DOCAUTH_TEST_DOCDB_CA_FILE"),
		stsEndpoint: os.Getenv("DOCAUTH_TEST_STS_ENDPOINT"),
		akid:        os.Getenv("DOCAUTH_TEST_AWS_ACCESS_KEY_ID"),
		secret:      os.Getenv("DOCAUTH_TEST_AWS_SECRET_ACCESS_KEY"),
	}
	if e.port == "" || e.stsEndpoint == "" {
		if os.Getenv("DOCAUTH_TEST_REQUIRE_PEERS") == "1" {
			t.Fatal("DOCAUTH_TEST_REQUIRE_PEERS=1 but DOCAUTH_TEST_DOCDB_PORT / DOCAUTH_TEST_STS_ENDPOINT are unset: run under tests/peers/docdb/run.py")
		}
		t.Skip("no DocumentDB stand-in: run under tests/peers/docdb/run.py (make test-go)")
	}
	return e
}

// sessionPeers builds the engine, provider and runtime of one test (closed at its end).
func sessionPeers(t *testing.T, e docdbEnv) (*Runtime, *Engine, *CredentialsProvider) {
	t.Helper()
	engine, err := NewEngine(strings.ReplaceAll(sessionEngineConfig, "PORT", e.port))
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(map[string]any{
		"source":       map[string]string{"type": "static", "access_key_id": e.akid, "secret_access_key": e.secret},
		"region":       "us-east-1",
		"sts_endpoint": e.stsEndpoint,
	})
	provider, err := NewCredentialsProvider(string(cfg))
	if err != nil {
		t.Fatal(err)
	}
	rt, err := NewRuntime(2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(); engine.Close(); provider.Close() })
	return rt, engine, provider
}

func (e docdbEnv) params(identity string) SessionParams {
	return SessionParams{
		Identity:    identity,
		Database:    "docdb",
		DBUser:      "teleport-docdb-user",
		DBName:      "test",
		DatabaseURI: fmt.Sprintf("mongodb://localhost:%s/?tls=true", e.port),
		CAFile:      e.caFile,
	}
}

// testProxy accepts on a listener and hands every connection to StartSession.
type testProxy struct {
	t        *testing.T
	listener net.Listener
	mu       sync.Mutex
	sessions []*Session
	events   []map[string]any
	accepted sync.WaitGroup
}

func startTestProxy(t *testing.T, l net.Listener, rt *Runtime, params SessionParams, engine *Engine, provider *CredentialsProvider, audit AuditFunc) *testProxy {
	p := &testProxy{t: t, listener: l}
	if audit == nil {
		audit = p.record
	}
	p.accepted.Add(1)
	go func() {
		defer p.accepted.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			sp := params
			sp.ClientAddr = conn.RemoteAddr().String()
			s, err := rt.StartSession(conn, sp, engine, provider, audit)
			if err != nil {
				t.Errorf("StartSession: %v", err)
				return
			}
			p.mu.Lock()
			p.sessions = append(p.sessions, s)
			p.mu.Unlock()
		}
	}()
	return p
}

func (p *testProxy) record(event []byte) {
	var v map[string]any
	if err := json.Unmarshal(event, &v); err != nil {
		p.t.Errorf("audit event is not JSON: %v: %s", err, event)
		return
	}
	p.mu.Lock()
	p.events = append(p.events, v)
	p.mu.Unlock()
}

func (p *testProxy) stopAccepting() []*Session {
	p.listener.Close()
	p.accepted.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*Session(nil), p.sessions...)
}

type outcome struct {
	stats SessionStats
	err   error
}

func (p *testProxy) waitAll() []outcome {
	var out []outcome
	for _, s := range p.stopAccepting() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		st, err := s.Wait(ctx)
		cancel()
		out = append(out, outcome{st, err})
	}
	return out
}

func (p *testProxy) eventsOf(kind string) []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []map[string]any
	for _, e := range p.events {
		if e["event"] == kind {
			out = append(out, e)
		}
	}
	return out
}

func mongoClient(t *testing.T, uri string) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(15 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func commandCode(err error) int32 {
	var ce mongo.CommandError
	if errors.As(err, &ce) {
		return ce.Code
	}
	var we mongo.WriteException
	if errors.As(err, &we) && len(we.WriteErrors) > 0 {
		return int32(we.WriteErrors[0].Code)
	}
	return -1
}

func TestSessionAllowedDeniedAuditStats(t *testing.T) {
	e := requireDocDB(t)
	rt, engine, provider := sessionPeers(t, e)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := startTestProxy(t, l, rt, e.params("alice"), engine, provider, nil)
	ctx := context.Background()
	c := mongoClient(t, fmt.Sprintf("mongodb://%s/?directConnection=true&retryWrites=false", l.Addr()))
	coll := c.Database("test").Collection("go_people")
	_ = coll.Drop(ctx)
	docs := make([]any, 100)
	for i := range docs {
		docs[i] = bson.D{{Key: "_id", Value: i}, {Key: "ssn", Value: fmt.Sprintf("SECRET-%d", i)}}
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	if n, err := coll.CountDocuments(ctx, bson.D{}); err != nil || n != 100 {
		t.Fatalf("count = %d, %v", n, err)
	}
	err = c.Database("admin").RunCommand(ctx, bson.D{{Key: "listDatabases", Value: 1}}).Err()
	if commandCode(err) != 13 {
		t.Fatalf("admin: want code 13, got %v", err)
	}
	_, err = c.Database("other").Collection("x").InsertOne(ctx, bson.D{{Key: "a", Value: 1}})
	if commandCode(err) != 13 || !strings.Contains(err.Error(), "other") {
		t.Fatalf("other: want code 13 naming the database, got %v", err)
	}
	var got bson.M
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: 7}}).Decode(&got); err != nil || got["ssn"] != "SECRET-7" {
		t.Fatalf("find after denials: %v %v", got, err)
	}
	if err := c.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	outcomes := p.waitAll()
	if len(outcomes) == 0 {
		t.Fatal("no session")
	}
	var denied uint64
	for _, o := range outcomes {
		if o.err != nil {
			t.Fatalf("session ended with %v", o.err)
		}
		if o.stats.BytesFromClient == 0 || o.stats.MessagesToClient == 0 {
			t.Errorf("empty stats %+v", o.stats)
		}
		denied += o.stats.MessagesDenied
	}
	if denied != 2 {
		t.Errorf("messages denied = %d, want 2", denied)
	}
	sessions := p.stopAccepting()
	for _, s := range sessions {
		if !s.IsFinished() || s.AuditDropped() != 0 {
			t.Errorf("finished=%v dropped=%d", s.IsFinished(), s.AuditDropped())
		}
		if n, _ := s.AuditCallbackPanics(); n != 0 {
			t.Errorf("audit callback panicked %d times", n)
		}
		s.Close()
		s.Close()
		if err := s.Shutdown(); !errors.Is(err, ErrClosed) {
			t.Errorf("Shutdown after Close: %v", err)
		}
	}
	rt.Close() // delivers every queued event
	if n := len(p.eventsOf("db.session.start")); n != len(sessions) {
		t.Errorf("%d start events for %d sessions", n, len(sessions))
	}
	if n := len(p.eventsOf("db.session.end")); n != len(sessions) {
		t.Errorf("%d end events for %d sessions", n, len(sessions))
	}
	var dbs []string
	for _, ev := range p.eventsOf("db.session.query.failed") {
		dbs = append(dbs, fmt.Sprint(ev["database"]))
		if ev["allowed"] != false {
			t.Errorf("failed query event not allowed=false: %v", ev)
		}
	}
	if strings.Join(dbs, ",") != "admin,other" {
		t.Errorf("denied databases %v", dbs)
	}
	raw, _ := json.Marshal(p.events)
	if strings.Contains(string(raw), "SECRET-") || strings.Contains(string(raw), e.secret) {
		t.Error("audit stream leaks a document value or the secret key")
	}
}

func TestSessionConnectionDenied(t *testing.T) {
	e := requireDocDB(t)
	rt, engine, provider := sessionPeers(t, e)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := startTestProxy(t, l, rt, e.params("mallory"), engine, provider, nil)
	ctx := context.Background()
	c, err := mongo.Connect(options.Client().ApplyURI(fmt.Sprintf("mongodb://%s/?directConnection=true", l.Addr())).SetServerSelectionTimeout(3 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Database("test").RunCommand(ctx, bson.D{{Key: "find", Value: "people"}}).Err()
	if err == nil || !(commandCode(err) == 13 || strings.Contains(err.Error(), "Unauthorized")) {
		t.Fatalf("want code 13 Unauthorized, got %v", err)
	}
	_ = c.Disconnect(ctx)
	outcomes := p.waitAll()
	if len(outcomes) == 0 {
		t.Fatal("no session")
	}
	for _, o := range outcomes {
		if !errors.Is(o.err, ErrSessionAccessDenied) {
			t.Errorf("want ErrSessionAccessDenied, got %v", o.err)
		}
	}
	rt.Close()
	for _, ev := range p.eventsOf("db.session.start") {
		if ev["success"] != false || ev["error_code"] != "DOCAUTH_RESULT_SESSION_ACCESS_DENIED" {
			t.Errorf("start event %v", ev)
		}
	}
}

// A Unix socket connection; Shutdown from another goroutine ends a Wait; a panicking audit
// callback is contained; Wait honours its context.
func TestSessionUnixShutdownAndPanickingAudit(t *testing.T) {
	e := requireDocDB(t)
	rt, engine, provider := sessionPeers(t, e)
	dir, err := os.MkdirTemp("", "docauth-go")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "proxy.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var calls sync.Map
	audit := func(event []byte) {
		var v map[string]any
		_ = json.Unmarshal(event, &v)
		calls.Store(fmt.Sprint(v["event"]), true)
		panic("consumer bug")
	}
	p := startTestProxy(t, l, rt, e.params("alice"), engine, provider, audit)
	ctx := context.Background()
	c := mongoClient(t, "mongodb://"+strings.ReplaceAll(path, "/", "%2F")+"/?directConnection=true")
	defer c.Disconnect(ctx)
	if err := c.Database("test").RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Database("test").Collection("go_unix").FindOne(ctx, bson.D{}).Err(); err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		t.Fatal(err)
	}
	sessions := p.stopAccepting()
	if len(sessions) == 0 {
		t.Fatal("no session")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := sessions[0].Wait(cancelled); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait(cancelled ctx) = %v", err)
	}
	var wg sync.WaitGroup
	results := make([]outcome, len(sessions))
	for i, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := s.Wait(ctx)
			results[i] = outcome{st, err}
		}()
	}
	for _, s := range sessions {
		if err := s.Shutdown(); err != nil {
			t.Fatal(err)
		}
		_ = s.Shutdown()
	}
	wg.Wait()
	for i, r := range results {
		if r.err != nil {
			t.Errorf("session %d: %v", i, r.err)
		}
		again, err := sessions[i].Wait(ctx)
		if err != nil || again != r.stats {
			t.Errorf("second Wait differs: %+v %v", again, err)
		}
	}
	rt.Close()
	var panics uint64
	for _, s := range sessions {
		n, first := s.AuditCallbackPanics()
		panics += n
		if n > 0 && first != "consumer bug" {
			t.Errorf("first panic %v", first)
		}
		s.Close()
	}
	if _, ok := calls.Load("db.session.end"); !ok || panics == 0 {
		t.Errorf("audit callback not called through to the end (panics %d)", panics)
	}
}

func TestStartSessionBadArguments(t *testing.T) {
	e := requireDocDB(t)
	rt, engine, provider := sessionPeers(t, e)
	a, b := net.Pipe() // not a syscall.Conn
	if _, err := rt.StartSession(a, e.params("alice"), engine, provider, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("net.Pipe: %v", err)
	}
	b.Close()
	// Unknown parameter: refused, and the connection was handed over (closed).
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string]any{"identity": "alice", "database": "docdb", "db_user": "u", "db_name": "test", "allow_db_names": []string{"*"}}
	_, err = rt.StartSession(server, bad, engine, provider, func([]byte) {})
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "allow_db_names") {
		t.Errorf("unknown field: %v", err)
	}
	if _, err := client.Read(make([]byte, 1)); err == nil {
		t.Error("the refused connection is still open")
	}
	rt.Close()
	if _, err := rt.StartSession(nil, e.params("alice"), engine, provider, nil); err == nil {
		t.Error("StartSession on a nil conn succeeded")
	}
	l2, _ := net.Listen("tcp", "127.0.0.1:0")
	defer l2.Close()
	c2, _ := net.Dial("tcp", l2.Addr().String())
	defer c2.Close()
	s2, _ := l2.Accept()
	if _, err := rt.StartSession(s2, e.params("alice"), engine, provider, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("StartSession after Runtime.Close: %v", err)
	}
}
