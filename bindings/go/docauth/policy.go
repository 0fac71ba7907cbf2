package docauth

// #include <stdlib.h>
// #include "include_docauth.h"
import "C"

import (
	"encoding/json"
)

// Engine is a policy engine: Teleport-compatible database roles evaluated by Rego
// (docs/policy.md). It may be shared by any number of goroutines: Decide and Reload may run
// concurrently, and a Reload swaps the rules atomically. Close frees it.
type Engine struct {
	h *handle[*C.docauth_engine] // the engine itself is thread-safe: calls share the read lock
}

// Decision is the outcome of Decide: a deny is a Decision, never an error.
type Decision struct {
	Allowed bool
	// Reason names the deciding role(s) and rule.
	Reason string
	// MatchedRoles are the allowing roles, or the roles whose deny rules matched.
	MatchedRoles []string
}

// Request is a decision request; Identity is either a configured user name (string) or an
// Identity value.
type Request struct {
	Identity   any      `json:"identity"`
	Database   string   `json:"database"`
	DBUser     string   `json:"db_user"`
	DBName     string   `json:"db_name"`
	Command    string   `json:"command,omitempty"`
	Namespaces []string `json:"namespaces,omitempty"`
}

// Identity is who asks: a user, the role names they hold, their traits.
type Identity struct {
	User   string              `json:"user"`
	Roles  []string            `json:"roles"`
	Traits map[string][]string `json:"traits,omitempty"`
}

// NewEngine builds an engine from a configuration document (JSON or YAML text). Bad
// configuration returns an *Error such as ErrPolicyConfigSyntax (naming file, line, problem).
func NewEngine(config string) (*Engine, error) {
	cConfig, err := cString("config", config)
	if err != nil {
		return nil, err
	}
	defer freeCString(cConfig)
	var out *C.docauth_engine
	var cerr *C.docauth_error
	if err := takeError(C.docauth_engine_new(cConfig, &out, &cerr), cerr); err != nil {
		return nil, err
	}
	return newEngine(out), nil
}

// NewEngineFromFile builds an engine from a configuration file; relative paths inside it are
// resolved against its directory.
func NewEngineFromFile(path string) (*Engine, error) {
	cPath, err := cString("path", path)
	if err != nil {
		return nil, err
	}
	defer freeCString(cPath)
	var out *C.docauth_engine
	var cerr *C.docauth_error
	if err := takeError(C.docauth_engine_new_from_file(cPath, &out, &cerr), cerr); err != nil {
		return nil, err
	}
	return newEngine(out), nil
}

func newEngine(ptr *C.docauth_engine) *Engine {
	return &Engine{h: newHandle(ptr, func(p *C.docauth_engine) { C.docauth_engine_free(p) }, "Engine")}
}

// Reload replaces the rules with those of a new configuration document. On error the old
// rules stay in force.
func (e *Engine) Reload(config string) error {
	cConfig, err := cString("config", config)
	if err != nil {
		return err
	}
	defer freeCString(cConfig)
	return e.use(func(p *C.docauth_engine) error {
		var cerr *C.docauth_error
		return takeError(C.docauth_engine_reload(p, cConfig, &cerr), cerr)
	})
}

// Decide decides a request. A malformed request returns ErrPolicyRequestInvalid.
func (e *Engine) Decide(req Request) (Decision, error) {
	raw, err := json.Marshal(req)
	if err != nil {
		return Decision{}, newGoError(ResultInvalidArgument, "request: "+err.Error(), err)
	}
	return e.DecideJSON(string(raw))
}

// DecideJSON decides a request given as the JSON document of docauth_engine_decide.
func (e *Engine) DecideJSON(requestJSON string) (Decision, error) {
	cReq, err := cString("request", requestJSON)
	if err != nil {
		return Decision{}, err
	}
	defer freeCString(cReq)
	var d Decision
	err = e.use(func(p *C.docauth_engine) error {
		var out *C.docauth_decision
		var cerr *C.docauth_error
		if err := takeError(C.docauth_engine_decide(p, cReq, &out, &cerr), cerr); err != nil {
			return err
		}
		defer C.docauth_decision_free(out)
		d.Allowed = bool(C.docauth_decision_allowed(out))
		d.Reason = C.GoString(C.docauth_decision_reason(out))
		n := int(C.docauth_decision_matched_roles_count(out))
		d.MatchedRoles = make([]string, 0, n)
		for i := 0; i < n; i++ {
			d.MatchedRoles = append(d.MatchedRoles, C.GoString(C.docauth_decision_matched_role(out, C.size_t(i))))
		}
		return nil
	})
	return d, err
}

// Close frees the engine. It is idempotent, waits for calls in progress, and returns nil.
func (e *Engine) Close() error { return e.h.close() }

func (e *Engine) use(f func(*C.docauth_engine) error) error {
	if e == nil {
		return newGoError(ResultNullParameter, "engine is nil", nil)
	}
	return e.h.use(f)
}
