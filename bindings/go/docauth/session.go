package docauth

// #include <stdlib.h>
// #include <stdint.h>
// #include "include_docauth.h"
//
// // Exported from audit.go (cgo cannot take the address of a Go function directly).
// extern void docauthGoAudit(void *user_data, char *event_json, size_t len);
// extern void docauthGoAuditFree(void *user_data);
//
// // Set while an audit callback runs on this (the dispatcher) thread: a Wait from inside
// // the callback would deadlock, so it is refused.
// static __thread int docauth_go_in_audit;
// static void docauth_go_audit_trampoline(void *user_data, const char *event_json, size_t len) {
//     docauth_go_in_audit = 1;
//     docauthGoAudit(user_data, (char *)event_json, len);
//     docauth_go_in_audit = 0;
// }
// static int docauth_go_on_audit_thread(void) { return docauth_go_in_audit; }
// static docauth_audit_fn docauth_go_audit_fn(void) { return docauth_go_audit_trampoline; }
// static docauth_user_data_free_fn docauth_go_audit_free_fn(void) { return docauthGoAuditFree; }
import "C"

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"runtime"
	"runtime/cgo"
	"sync"
	"syscall"
	"unsafe"
)

// Runtime runs sessions: worker threads doing every session's I/O and one audit dispatcher
// thread calling the audit callbacks of all its sessions. It may be shared by any number
// of goroutines. Close cancels the sessions still running (closing their connections),
// delivers the audit events already queued and frees it; a finalizer does the same for a
// Runtime that was never closed (and is no longer referenced by any Session).
type Runtime struct {
	h *handle[*C.docauth_runtime]
}

// NewRuntime creates a runtime with threads worker threads (0 = one per CPU; at most 1024).
func NewRuntime(threads int) (*Runtime, error) {
	if threads < 0 || threads > 1024 {
		return nil, newGoError(ResultInvalidArgument, fmt.Sprintf("threads is %d; use 0 (one per CPU) to 1024", threads), nil)
	}
	var out *C.docauth_runtime
	var cerr *C.docauth_error
	if err := takeError(C.docauth_runtime_new(C.uint32_t(threads), &out, &cerr), cerr); err != nil {
		return nil, err
	}
	return &Runtime{h: newHandle(out, func(p *C.docauth_runtime) { C.docauth_runtime_free(p) }, "Runtime")}, nil
}

// SetMaxSessions caps the sessions this runtime runs at once (default 10,000; at least 1).
// A session started past the cap ends at once: its Wait returns ErrSessionLimit, its
// client's first message gets a MongoDB error naming the cap, its audit has a failed
// db.session.start, and no database connection is made. Applies to sessions started
// afterwards; running sessions are never cut.
func (r *Runtime) SetMaxSessions(max uint32) error {
	return r.use(func(p *C.docauth_runtime) error {
		var cerr *C.docauth_error
		return takeError(C.docauth_runtime_set_max_sessions(p, C.uint32_t(max), &cerr), cerr)
	})
}

// AuditDropped counts the audit events all sessions of this runtime dropped because their
// callbacks were too slow. 0 after Close.
func (r *Runtime) AuditDropped() uint64 {
	var n uint64
	_ = r.use(func(p *C.docauth_runtime) error {
		n = uint64(C.docauth_runtime_audit_dropped(p))
		return nil
	})
	return n
}

// Close cancels the runtime's running sessions, delivers the queued audit events and frees
// it (waiting up to 5 s for its threads). Idempotent; always returns nil. Sessions' handles
// stay usable: their Wait reports how they ended.
func (r *Runtime) Close() error { return r.h.close() }

func (r *Runtime) use(f func(*C.docauth_runtime) error) error {
	if r == nil {
		return newGoError(ResultNullParameter, "runtime is nil", nil)
	}
	return r.h.use(f)
}

// SessionParams are the parameters of a session (the params JSON of docauth_session_start).
// Identity is a user name of the engine configuration (string) or an Identity value.
// Zero-valued optional fields are left out (the library's defaults apply).
type SessionParams struct {
	Identity           any    `json:"identity"`
	Database           string `json:"database"`
	DBUser             string `json:"db_user"`
	DBName             string `json:"db_name,omitempty"`
	DatabaseURI        string `json:"database_uri,omitempty"`
	CAFile             string `json:"ca_file,omitempty"`
	ConnectTimeoutMS   uint64 `json:"connect_timeout_ms,omitempty"`
	HandshakeTimeoutMS uint64 `json:"handshake_timeout_ms,omitempty"`
	IdleTimeoutMS      uint64 `json:"idle_timeout_ms,omitempty"`
	MessageTimeoutMS   uint64 `json:"message_timeout_ms,omitempty"`
	// ClientWriteTimeoutMS: a write to the client that moves no byte for this long ends the
	// session with ErrClientWriteTimeout (0 here = the library's default, 30000).
	ClientWriteTimeoutMS uint64 `json:"client_write_timeout_ms,omitempty"`
	ClientAddr           string `json:"client_addr,omitempty"`
}

// SessionStats are the counters of a session that ended normally.
type SessionStats struct {
	BytesFromClient    uint64
	BytesToClient      uint64
	MessagesFromClient uint64
	MessagesToClient   uint64
	// MessagesDenied counts client messages refused: policy denials, unparsable messages,
	// authentication commands.
	MessagesDenied uint64
	DurationMS     uint64
	// AuditEventsDropped counts this session's audit events dropped (callback too slow).
	AuditEventsDropped uint64
}

// AuditFunc receives one audit event: a JSON object (a copy; the function may keep it).
// It runs on the runtime's audit dispatcher thread, one event at a time, and must return
// quickly: while it runs, other events queue and are dropped when the queue fills. A panic
// in it is recovered (the event is lost; Session.AuditCallbackPanics counts it).
type AuditFunc func(event []byte)

// auditTarget is what the C side's user_data designates (through a cgo.Handle).
type auditTarget struct {
	fn     AuditFunc
	mu     sync.Mutex
	panics uint64
	first  any
}

// Session is one proxied session. Its methods may be called from any goroutine at the same
// time; Shutdown never blocks, so a goroutine can end a session another one is waiting for.
// Close releases the handle only: the session itself runs on until it ends (a side closes,
// idle timeout, Shutdown, or Runtime.Close). A finalizer releases a handle never closed.
type Session struct {
	mu      sync.Mutex
	ptr     *C.docauth_session
	users   int  // calls in progress holding ptr
	closing bool // Close was called: the last user frees ptr
	rt      *Runtime
	audit   *auditTarget

	waiting bool          // the waiter goroutine was started
	done    chan struct{} // closed when the library's wait returned
	stats   SessionStats
	err     error
}

// StartSession starts a proxied session on conn, a connected *net.TCPConn or *net.UnixConn
// (any net.Conn that implements syscall.Conn), and returns at once: the library connects to
// the database over TLS, authenticates upstream with MONGODB-AWS using credentials from
// provider, judges the connection and every client message with engine, and relays.
//
// The connection is handed over: its descriptor is duplicated for the library and conn is
// closed before StartSession returns, whatever the outcome (the caller must not use it).
// params is a SessionParams, any value marshalled to the params JSON object, or the JSON
// text itself as []byte, json.RawMessage or string. The session keeps its own references to
// engine and provider (they may be closed afterwards; an engine Reload applies to running
// sessions from their next message). audit (nil for none) receives the session's audit
// events until the library releases it.
//
// Errors: ErrInvalidConfig (bad parameters: the message names the field),
// ErrDatabaseUriInvalid, ErrInvalidArgument (not a connected TCP/Unix socket); failures
// reaching the database, and a connection the engine denies, come from Wait.
func (r *Runtime) StartSession(conn net.Conn, params any, engine *Engine, provider *CredentialsProvider, audit AuditFunc) (*Session, error) {
	fd, err := takeConnFD(conn)
	if err != nil {
		return nil, err
	}
	return r.StartSessionFD(fd, params, engine, provider, audit)
}

// StartSessionFD is StartSession for a raw descriptor of a connected TCP or Unix socket,
// which the library owns from this call on, whatever the result (it is closed on failure).
func (r *Runtime) StartSessionFD(fd int, params any, engine *Engine, provider *CredentialsProvider, audit AuditFunc) (*Session, error) {
	raw, err := paramsJSON(params)
	if err != nil {
		_ = syscall.Close(fd)
		return nil, err
	}
	cParams, err := cString("params", string(raw))
	if err != nil {
		_ = syscall.Close(fd)
		return nil, err
	}
	defer freeCString(cParams)

	var target *auditTarget
	var auditFn C.docauth_audit_fn
	var freeFn C.docauth_user_data_free_fn
	var userData unsafe.Pointer
	if audit != nil {
		target = &auditTarget{fn: audit}
		// user_data is C memory holding the handle's number: no Go pointer crosses to C.
		userData = C.malloc(C.size_t(unsafe.Sizeof(C.uintptr_t(0))))
		*(*C.uintptr_t)(userData) = C.uintptr_t(cgo.NewHandle(target))
		auditFn, freeFn = C.docauth_go_audit_fn(), C.docauth_go_audit_free_fn()
	}
	handedOver := false
	// From the C call on, the library owns fd and user_data (freed through freeFn).
	defer func() {
		if !handedOver {
			_ = syscall.Close(fd)
			if userData != nil {
				docauthGoAuditFree(userData)
			}
		}
	}()

	var out *C.docauth_session
	err = engine.use(func(e *C.docauth_engine) error {
		return provider.use(func(p *C.docauth_credentials_provider) error {
			return r.use(func(rt *C.docauth_runtime) error {
				var cerr *C.docauth_error
				handedOver = true
				rc := C.docauth_session_start(rt, C.int(fd), cParams, e, p, auditFn, userData, freeFn, &out, &cerr)
				return takeError(rc, cerr)
			})
		})
	})
	if err != nil {
		return nil, err
	}
	s := &Session{ptr: out, rt: r, audit: target, done: make(chan struct{})}
	runtime.SetFinalizer(s, (*Session).Close)
	return s, nil
}

func paramsJSON(params any) ([]byte, error) {
	switch p := params.(type) {
	case []byte:
		return p, nil
	case json.RawMessage:
		return p, nil
	case string:
		return []byte(p), nil
	case nil:
		return nil, newGoError(ResultNullParameter, "params is nil", nil)
	}
	raw, err := json.Marshal(params)
	if err != nil {
		return nil, newGoError(ResultInvalidArgument, "params: "+err.Error(), err)
	}
	return raw, nil
}

// takeConnFD duplicates conn's descriptor (close-on-exec) and closes conn.
func takeConnFD(conn net.Conn) (int, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok || conn == nil {
		if conn != nil {
			_ = conn.Close()
		}
		return -1, newGoError(ResultInvalidArgument, fmt.Sprintf("conn is a %T; a *net.TCPConn or *net.UnixConn is needed", conn), nil)
	}
	defer conn.Close()
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, newGoError(ResultInvalidArgument, "conn: "+err.Error(), err)
	}
	fd := -1
	var dupErr error
	if err := rc.Control(func(s uintptr) {
		r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, s, syscall.F_DUPFD_CLOEXEC, 0)
		if errno != 0 {
			dupErr = errno
			return
		}
		fd = int(r)
	}); err != nil {
		return -1, newGoError(ResultInvalidArgument, "conn: "+err.Error(), err)
	}
	if dupErr != nil {
		return -1, newGoError(ResultInvalidArgument, "duplicating the connection's descriptor: "+dupErr.Error(), dupErr)
	}
	return fd, nil
}

// acquire returns the live handle and counts a call in progress; release ends it.
func (s *Session) acquire() (*C.docauth_session, error) {
	if s == nil {
		return nil, newGoError(ResultNullParameter, "session is nil", nil)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ptr == nil || s.closing {
		return nil, closedError("Session")
	}
	s.users++
	return s.ptr, nil
}

func (s *Session) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users--
	if s.users == 0 && s.closing {
		s.freeLocked()
	}
}

func (s *Session) freeLocked() {
	if s.ptr != nil {
		C.docauth_session_free(s.ptr)
		s.ptr = nil
	}
}

// Close releases the handle (it does not end the session: call Shutdown first for that).
// Idempotent; a Close during a Wait takes effect when the library's wait returns. Returns nil.
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closing {
		s.closing = true
		runtime.SetFinalizer(s, nil)
		if s.users == 0 {
			s.freeLocked()
		}
	}
	return nil
}

// Shutdown asks the session to end; both connections close soon after. Never blocks.
func (s *Session) Shutdown() error {
	p, err := s.acquire()
	if err != nil {
		return err
	}
	defer s.release()
	C.docauth_session_shutdown(p)
	runtime.KeepAlive(s)
	return nil
}

// IsFinished reports whether the session has ended (false after Close). Never blocks.
func (s *Session) IsFinished() bool {
	p, err := s.acquire()
	if err != nil {
		return false
	}
	defer s.release()
	return bool(C.docauth_session_is_finished(p))
}

// AuditDropped counts this session's audit events dropped because the callback was too
// slow (0 after Close).
func (s *Session) AuditDropped() uint64 {
	p, err := s.acquire()
	if err != nil {
		return 0
	}
	defer s.release()
	return uint64(C.docauth_session_audit_dropped(p))
}

// AuditCallbackPanics counts the audit events whose callback panicked, and returns the
// first panic value.
func (s *Session) AuditCallbackPanics() (uint64, any) {
	if s.audit == nil {
		return 0, nil
	}
	s.audit.mu.Lock()
	defer s.audit.mu.Unlock()
	return s.audit.panics, s.audit.first
}

// Wait blocks until the session ends or ctx is done (then it returns ctx.Err()). When the
// session ended normally (a side closed, idle timeout, Shutdown) it returns its counters;
// otherwise the *Error that ended it — ErrSessionAccessDenied, ErrConnectTimeout,
// ErrUpstreamAuthFailed, … with errors.Is — whose message says what to fix. Every call,
// from any goroutine, gives the same outcome. Must not be called from an audit callback
// (the library returns ErrCalledFromAuditCallback).
func (s *Session) Wait(ctx context.Context) (SessionStats, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if C.docauth_go_on_audit_thread() != 0 {
		select {
		case <-s.done:
		default:
			return SessionStats{}, newGoError(ResultCalledFromAuditCallback,
				"Session.Wait called from inside an audit callback: it would deadlock the dispatcher", nil)
		}
	}
	s.mu.Lock()
	if !s.waiting {
		if s.ptr == nil || s.closing {
			s.mu.Unlock()
			return SessionStats{}, closedError("Session")
		}
		s.waiting = true
		s.users++ // released by the waiter
		go s.waitInC(s.ptr)
	}
	s.mu.Unlock()
	select {
	case <-s.done:
		return s.stats, s.err
	case <-ctx.Done():
		return SessionStats{}, ctx.Err()
	}
}

func (s *Session) waitInC(p *C.docauth_session) {
	defer close(s.done)
	defer s.release()
	var cstats C.docauth_session_stats
	var cerr *C.docauth_error
	rc := C.docauth_session_wait(p, &cstats, &cerr)
	if err := takeError(rc, cerr); err != nil {
		s.err = err
		return
	}
	s.stats = SessionStats{
		BytesFromClient:    uint64(cstats.bytes_from_client),
		BytesToClient:      uint64(cstats.bytes_to_client),
		MessagesFromClient: uint64(cstats.messages_from_client),
		MessagesToClient:   uint64(cstats.messages_to_client),
		MessagesDenied:     uint64(cstats.messages_denied),
		DurationMS:         uint64(cstats.duration_ms),
		AuditEventsDropped: uint64(cstats.audit_events_dropped),
	}
}
