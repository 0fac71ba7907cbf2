package docauth

import (
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
)

// policyConfig is the engine configuration shared with the Rust and Python tests.
var policyConfig = func() string {
	b, err := os.ReadFile("../../../tests/fixtures/engine.yaml")
	if err != nil {
		panic("the shared engine configuration: " + err.Error())
	}
	return string(b)
}()

func alice(dbName string) Request {
	return Request{Identity: "alice", Database: "my-docdb", DBUser: "teleport-docdb-user", DBName: dbName}
}

func TestEngineAllowDenyReload(t *testing.T) {
	e, err := NewEngine(policyConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	d, err := e.Decide(alice("test"))
	if err != nil || !d.Allowed || len(d.MatchedRoles) != 1 || d.MatchedRoles[0] != "access" {
		t.Fatalf("allow: %+v %v", d, err)
	}
	d, err = e.Decide(alice("admin"))
	if err != nil || d.Allowed || !strings.Contains(d.Reason, "deny.db_names") || d.MatchedRoles[0] != "no-admin" {
		t.Fatalf("deny: %+v %v", d, err)
	}
	inline := Request{Identity: Identity{User: "bob", Roles: []string{"access"}}, Database: "my-docdb", DBUser: "u", DBName: "test"}
	if d, err = e.Decide(inline); err != nil || d.Allowed {
		t.Fatalf("no traits: %+v %v", d, err)
	}
	if err := e.Reload(strings.Replace(policyConfig, "db_names: [admin]", "db_names: [test]", 1)); err != nil {
		t.Fatal(err)
	}
	if d, _ = e.Decide(alice("test")); d.Allowed {
		t.Fatalf("after reload: %+v", d)
	}
	err = e.Reload("roles: [\n  - kind: role\n  version")
	if !errors.Is(err, ErrPolicyConfigSyntax) || !strings.Contains(err.Error(), "line") {
		t.Fatalf("bad reload: %v", err)
	}
	if d, _ = e.Decide(alice("test")); d.Allowed {
		t.Fatalf("a failed reload changed the rules: %+v", d)
	}
}

func TestEngineBadConfigAndRequests(t *testing.T) {
	_, err := NewEngine("roles:\n  - {kind: role, version: v7, metadata: {name: r}, spec: {allow: {db_labels: {env: '^(dev$'}}}}\n")
	if !errors.Is(err, ErrPolicyRoleInvalid) {
		t.Fatalf("invalid regex: %v", err)
	}
	_, err = NewEngineFromFile("/nonexistent/policy.yaml")
	if !errors.Is(err, ErrPolicyConfigUnreadable) {
		t.Fatalf("missing file: %v", err)
	}
	e, err := NewEngine(policyConfig)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.DecideJSON(`{"identity": 5}`); !errors.Is(err, ErrPolicyRequestInvalid) {
		t.Fatalf("bad request: %v", err)
	}
	e.Close()
	e.Close()
	if _, err := e.Decide(alice("test")); !errors.Is(err, ErrClosed) {
		t.Fatalf("use after close: %v", err)
	}
}

func TestEngineReloadWhileDeciding(t *testing.T) {
	e, err := NewEngine(policyConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	other := strings.Replace(policyConfig, "db_names: [admin]", "db_names: [test]", 1)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				d, err := e.Decide(alice("reports")) // allowed under both rule sets
				if err != nil || !d.Allowed {
					t.Errorf("reports: %+v %v", d, err)
					return
				}
			}
		}()
	}
	for i := 0; i < 100; i++ {
		cfg := policyConfig
		if i%2 == 0 {
			cfg = other
		}
		if err := e.Reload(cfg); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}
