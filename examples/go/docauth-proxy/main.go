// Command docauth-proxy is a multi-connection MongoDB / Amazon DocumentDB access proxy in
// Go, on libdocauth's Go binding. Every accepted TCP connection is handed over (its file
// descriptor) to Runtime.StartSession: the library connects to the database over TLS,
// authenticates as the db user with MONGODB-AWS (credentials from the credentials
// provider), relays the wire protocol and judges every client message with the policy
// engine. This program only accepts, prints the audit events and shuts down cleanly.
//
//	make build/examples/docauth-proxy-go     # or, with libdocauth installed: cd examples/go && go build ./docauth-proxy
//	build/examples/docauth-proxy-go proxy.conf
//
// Same command line, configuration file and output as examples/c/docauth-proxy.c and
// examples/python/docauth_proxy.py. Configuration file: `key = value` lines; `#` starts a
// comment (at the start of a line or after a blank, outside a JSON string); blank lines are
// ignored. Relative paths are taken against the configuration file's directory.
//
//	listen = 127.0.0.1:0         # HOST:PORT, [IPv6]:PORT; port 0 = a free port (required)
//	policy = policy.yaml         # engine configuration, docauth_engine_new_from_file (required)
//	credentials = creds.json     # credentials provider settings, JSON (required)
//	threads = 0                  # runtime worker threads, 0 = one per CPU (default 0)
//	session = {"identity": "alice", "database": "docdb", "db_user": "teleport-docdb-user", "db_name": "test", "ca_file": "/abs/global-bundle.pem"}
//	metrics = 127.0.0.1:9464     # optional: serve GET /metrics (Prometheus text) and /healthz
//
// `session` is the session parameters JSON (one line); the proxy adds `client_addr` for
// each connection. Paths inside it (ca_file) are used as written: give absolute ones.
//
// `metrics`, when set, is a second listening address: GET /metrics answers the metrics of
// the runtime, engine and provider (Prometheus text 0.0.4, or OpenMetrics when the request's
// Accept header asks for application/openmetrics-text), GET /healthz answers `ok`. Bind it
// to a loopback or private address.
//
// Output: on stderr `docauth-proxy: listening on HOST:PORT` once ready (the real port), and
// `docauth-proxy: metrics on HOST:PORT` when `metrics` is set; then only problems (refused connections, sessions that ended with an error); on stdout every
// audit event, one JSON object per line, flushed as it comes.
//
// Exit status: 0 after SIGTERM / SIGINT (stop accepting, shut the running sessions down,
// wait for them, free everything); 2 for a bad command line or configuration (the message
// names the file, line and key); 1 for other start-up failures (listening, runtime).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/libdocauth/libdocauth/bindings/go/docauth"
)

const (
	prog         = "docauth-proxy"
	exitConfig   = 2
	reapInterval = time.Second // finished sessions are collected this often
)

var (
	keyNames        = []string{"listen", "policy", "credentials", "threads", "session", "metrics"}
	optionalKeys    = []string{"threads", "metrics"}
	sessionKeys     = []string{"identity", "database", "db_user", "db_name", "database_uri", "ca_file", "connect_timeout_ms", "handshake_timeout_ms", "idle_timeout_ms", "message_timeout_ms"}
	sessionRequired = []string{"identity", "database", "db_user"}
)

type config struct {
	file        string
	listen      string // host:port as given (host without brackets + port, joined by net)
	metrics     string // the same for the metrics endpoint; "" for none
	policy      string
	credentials string
	threads     int
	session     map[string]json.RawMessage
	lineOf      map[string]int
}

type configError string

func (e configError) Error() string { return string(e) }

func (c *config) errorf(key, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if line := c.lineOf[key]; key != "" && line > 0 {
		return configError(fmt.Sprintf("%s: %s:%d: %s: %s", prog, c.file, line, key, msg))
	}
	return configError(fmt.Sprintf("%s: %s: %s", prog, c.file, msg))
}

// stripComment cuts a `#` comment: at the start or after a blank, outside a JSON string.
func stripComment(line string) string {
	inString := false
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case inString && ch == '\\' && i+1 < len(line):
			i++
		case inString && ch == '"':
			inString = false
		case inString:
		case ch == '"':
			inString = true
		case ch == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			return line[:i]
		}
	}
	return line
}

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// parseAddress reads HOST:PORT or [IPv6]:PORT for key (listen or metrics).
func (c *config) parseAddress(key, value string) (string, error) {
	var host, port string
	if strings.HasPrefix(value, "[") {
		end := strings.IndexByte(value, ']')
		if end < 0 || !strings.HasPrefix(value[end+1:], ":") {
			return "", c.errorf(key, "expected [IPV6]:PORT, got %q", value)
		}
		host, port = value[1:end], value[end+2:]
	} else {
		i := strings.LastIndexByte(value, ':')
		if i < 0 || strings.IndexByte(value[:i], ':') >= 0 {
			return "", c.errorf(key, "expected HOST:PORT (IPv6 as [ADDR]:PORT), got %q", value)
		}
		host, port = value[:i], value[i+1:]
	}
	if host == "" {
		return "", c.errorf(key, "no host in %q (e.g. 127.0.0.1:0)", value)
	}
	if n, err := strconv.Atoi(port); !allDigits(port) || len(port) > 5 || err != nil || n > 65535 {
		return "", c.errorf(key, "port must be 0..65535, got %q", port)
	}
	return net.JoinHostPort(host, port), nil
}

func (c *config) parseThreads(value string) error {
	n, err := strconv.Atoi(value)
	if !allDigits(value) || len(value) > 4 || err != nil || n > 1024 {
		return c.errorf("threads", "expected a number 0..1024 (0 = one per CPU), got %q", value)
	}
	c.threads = n
	return nil
}

func (c *config) parseSession(value string) error {
	if !strings.HasPrefix(value, "{") {
		return c.errorf("session", `expected a JSON object on one line, {"identity": ...}`)
	}
	var obj map[string]json.RawMessage
	dec := json.NewDecoder(strings.NewReader(value))
	if err := dec.Decode(&obj); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return c.errorf("session", "invalid JSON at column %d: %v", se.Offset, err)
		}
		return c.errorf("session", "invalid JSON: %v", err)
	}
	if end := dec.InputOffset(); strings.TrimLeft(value[end:], " \t") != "" {
		return c.errorf("session", "invalid JSON at column %d: text after the object", end+1)
	}
	for key := range obj {
		known := false
		for _, k := range sessionKeys {
			known = known || k == key
		}
		if !known {
			hint := ""
			if _, ok := obj["client_addr"]; ok {
				hint = " (the proxy sets client_addr itself)"
			}
			return c.errorf("session", "unknown session parameter %q%s", key, hint)
		}
	}
	for _, k := range sessionRequired {
		if _, ok := obj[k]; !ok {
			return c.errorf("session", "missing session parameter %q", k)
		}
	}
	c.session = obj
	return nil
}

func loadConfig(path string) (*config, error) {
	c := &config{file: path, lineOf: map[string]int{}}
	raw, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, configError(fmt.Sprintf("%s: cannot read configuration %s: %v", prog, path, err))
	}
	if bytes.IndexByte(raw, 0) >= 0 {
		return nil, configError(fmt.Sprintf("%s: cannot read configuration %s: it contains a NUL byte", prog, path))
	}
	dir := filepath.Dir(path)
	for i, line := range strings.Split(string(raw), "\n") {
		lineNo := i + 1
		content := strings.Trim(stripComment(line), " \t\r")
		if content == "" {
			continue
		}
		eq := strings.IndexByte(content, '=')
		if eq < 0 {
			return nil, configError(fmt.Sprintf("%s: %s:%d: expected `key = value`, got %q", prog, path, lineNo, content))
		}
		key, value := strings.Trim(content[:eq], " \t"), strings.Trim(content[eq+1:], " \t")
		known := false
		for _, k := range keyNames {
			known = known || k == key
		}
		if !known {
			return nil, configError(fmt.Sprintf("%s: %s:%d: unknown key %q (known: listen, policy, credentials, threads, session, metrics)", prog, path, lineNo, key))
		}
		if first, dup := c.lineOf[key]; dup {
			return nil, configError(fmt.Sprintf("%s: %s:%d: key %q given twice (first on line %d)", prog, path, lineNo, key, first))
		}
		c.lineOf[key] = lineNo
		if value == "" {
			return nil, c.errorf(key, "no value")
		}
		switch key {
		case "listen":
			c.listen, err = c.parseAddress(key, value)
		case "metrics":
			c.metrics, err = c.parseAddress(key, value)
		case "policy":
			c.policy = resolve(dir, value)
		case "credentials":
			c.credentials = resolve(dir, value)
		case "threads":
			err = c.parseThreads(value)
		case "session":
			err = c.parseSession(value)
		}
		if err != nil {
			return nil, err
		}
	}
	for _, k := range keyNames {
		if _, ok := c.lineOf[k]; !ok && !contains(optionalKeys, k) {
			return nil, c.errorf("", "missing key %q", k)
		}
	}
	return c, nil
}

func resolve(dir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// formatAddr prints HOST:PORT, an IPv6 host in brackets.
func formatAddr(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok {
		if ip4 := t.IP.To4(); ip4 != nil {
			return fmt.Sprintf("%s:%d", ip4, t.Port)
		}
		return fmt.Sprintf("[%s]:%d", t.IP, t.Port)
	}
	return "unknown"
}

// auditSink writes each event as one JSON line on stdout (called on the dispatcher thread).
type auditSink struct {
	mu  sync.Mutex
	out *os.File
}

func (s *auditSink) write(event []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	line := append(event, '\n')
	_, _ = s.out.Write(line) // *os.File is unbuffered: each line is flushed as written
}

type running struct {
	session *docauth.Session
	client  string
}

// finish waits for a finished (or shut down) session, reports an error end, frees the handle.
func finish(r running) {
	if _, err := r.session.Wait(context.Background()); err != nil {
		var de *docauth.Error
		if errors.As(err, &de) {
			fmt.Fprintf(os.Stderr, "%s: session from %s ended: %s: %s\n", prog, r.client, de.Name, de.Message)
		} else {
			fmt.Fprintf(os.Stderr, "%s: session from %s ended: %v\n", prog, r.client, err)
		}
	}
	r.session.Close()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// metricsHandler serves GET /metrics (the runtime's, engine's and provider's metrics) and
// GET /healthz (ok).
func metricsHandler(rt *docauth.Runtime, engine *docauth.Engine, provider *docauth.CredentialsProvider) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		format := docauth.FormatPrometheus
		if strings.Contains(r.Header.Get("Accept"), "application/openmetrics-text") {
			format = docauth.FormatOpenMetrics
		}
		text, err := docauth.MetricsText(rt, engine, provider, format)
		if err != nil {
			http.Error(w, libError(err), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", format.ContentType())
		_, _ = w.Write([]byte(text))
	})
	return mux
}

func libError(err error) string {
	var de *docauth.Error
	if errors.As(err, &de) {
		return de.Name + ": " + de.Message
	}
	return err.Error()
}

func serve(c *config) int {
	engine, err := docauth.NewEngineFromFile(c.policy)
	if err != nil {
		fmt.Fprintln(os.Stderr, c.errorf("policy", "%s: %s", c.policy, libError(err)))
		return exitConfig
	}
	defer engine.Close()
	credsJSON, err := os.ReadFile(c.credentials)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		fmt.Fprintln(os.Stderr, c.errorf("credentials", "cannot read %s: %v", c.credentials, err))
		return exitConfig
	}
	provider, err := docauth.NewCredentialsProvider(string(credsJSON))
	clear(credsJSON) // the provider holds its own (zeroizing) copy of any static secret
	if err != nil {
		fmt.Fprintln(os.Stderr, c.errorf("credentials", "%s: %s", c.credentials, libError(err)))
		return exitConfig
	}
	defer provider.Close()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	listener, err := net.Listen("tcp", c.listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: cannot listen on %s: %v\n", prog, c.listen, err)
		return 1
	}
	defer listener.Close()
	var metricsListener net.Listener
	if c.metrics != "" {
		if metricsListener, err = net.Listen("tcp", c.metrics); err != nil {
			fmt.Fprintf(os.Stderr, "%s: cannot listen on %s: %v\n", prog, c.metrics, err)
			return 1
		}
		defer metricsListener.Close()
	}
	rt, err := docauth.NewRuntime(c.threads)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: runtime: %s\n", prog, libError(err))
		return 1
	}
	defer rt.Close() // delivers the queued audit events, stops the dispatcher
	if metricsListener != nil {
		server := &http.Server{Handler: metricsHandler(rt, engine, provider), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = server.Serve(metricsListener) }()
		defer server.Close() // before rt.Close (defers run last-in first-out)
		fmt.Fprintf(os.Stderr, "%s: metrics on %s\n", prog, formatAddr(metricsListener.Addr()))
	}
	fmt.Fprintf(os.Stderr, "%s: listening on %s\n", prog, formatAddr(listener.Addr()))

	sink := &auditSink{out: os.Stdout}
	var mu sync.Mutex
	var sessions []running
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			conn, err := listener.Accept()
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
					return
				}
				fmt.Fprintf(os.Stderr, "%s: accept: %v\n", prog, err) // e.g. EMFILE
				time.Sleep(100 * time.Millisecond)
				continue
			}
			client := formatAddr(conn.RemoteAddr())
			params := make(map[string]json.RawMessage, len(c.session)+1)
			for k, v := range c.session {
				params[k] = v
			}
			params["client_addr"], _ = json.Marshal(client)
			// The library owns the connection from here on, whatever the result.
			s, err := rt.StartSession(conn, params, engine, provider, sink.write)
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s: connection from %s refused: %s\n", prog, client, libError(err))
				continue
			}
			mu.Lock()
			sessions = append(sessions, running{s, client})
			mu.Unlock()
		}
	}()

	ticker := time.NewTicker(reapInterval)
	defer ticker.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-ticker.C:
			mu.Lock()
			still := sessions[:0]
			for _, r := range sessions {
				if r.session.IsFinished() {
					finish(r)
				} else {
					still = append(still, r)
				}
			}
			sessions = still
			mu.Unlock()
		}
	}

	// Stop accepting, ask every session to end, then wait for each.
	listener.Close()
	<-accepted
	for _, r := range sessions {
		_ = r.session.Shutdown()
	}
	for _, r := range sessions {
		finish(r)
	}
	return 0
}

func main() {
	if len(os.Args) != 2 || strings.HasPrefix(os.Args[1], "-") {
		fmt.Fprintf(os.Stderr, "usage: %s CONFIG_FILE\n(see the comment at the top of examples/go/docauth-proxy/main.go)\n", prog)
		os.Exit(exitConfig)
	}
	c, err := loadConfig(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(exitConfig)
	}
	os.Exit(serve(c))
}
