/*
 * docauth-proxy — a multi-connection MongoDB / Amazon DocumentDB access proxy in C, on
 * libdocauth. Every accepted TCP connection is handed (its file descriptor) to
 * docauth_session_start: the library connects to the database over TLS, authenticates as
 * the db user with MONGODB-AWS (credentials from the credentials provider), relays the wire
 * protocol and judges every client message with the policy engine. This program only
 * accepts, prints the audit events and shuts down cleanly.
 *
 * Build and run:
 *
 *   make build/examples/docauth-proxy          # or: cc -std=c11 -Iinclude docauth-proxy.c \
 *                                              #     -Ltarget/release -ldocauth -pthread
 *   build/examples/docauth-proxy proxy.conf
 *
 * `make demo` writes a configuration, starts this proxy in front of the DocumentDB stand-in
 * and runs a pymongo client through it (examples/demo/run-demo.sh).
 *
 * Configuration file: `key = value` lines; `#` starts a comment (at the start of a line or
 * after a blank, outside a JSON string); blank lines are ignored. Relative paths are taken
 * against the configuration file's directory.
 *
 *   listen = 127.0.0.1:0         # HOST:PORT, [IPv6]:PORT; port 0 = a free port (required)
 *   policy = policy.yaml         # engine configuration, docauth_engine_new_from_file (required)
 *   credentials = creds.json     # credentials provider settings, JSON (required)
 *   threads = 0                  # runtime worker threads, 0 = one per CPU (default 0)
 *   session = {"identity": "alice", "database": "docdb", "db_user": "teleport-docdb-user", "db_name": "test", "ca_file": "/abs/global-bundle.pem"}
 *   metrics = 127.0.0.1:9464     # optional: serve GET /metrics (Prometheus text) and /healthz
 *
 * `session` is the parameters JSON of docauth_session_start (one line; see include/docauth.h);
 * the proxy adds `client_addr` for each connection. Paths inside it (ca_file) are used as
 * written: give absolute ones.
 *
 * `metrics`, when set, is a second listening address: `GET /metrics` answers
 * docauth_metrics_render of the runtime, engine and provider (Prometheus text 0.0.4, or
 * OpenMetrics when the request's Accept header asks for application/openmetrics-text),
 * `GET /healthz` answers `ok`. Bind it to a loopback or private address: the metrics name no
 * user or database, but tell how busy the proxy is.
 *
 * Output:
 *   stderr  `docauth-proxy: listening on HOST:PORT` once ready (the real port), and
 *           `docauth-proxy: metrics on HOST:PORT` when `metrics` is set; then only
 *           problems: refused connections and sessions that ended with an error.
 *   stdout  every audit event, one JSON object per line, flushed as it comes.
 *
 * Exit status: 0 after SIGTERM / SIGINT (stop accepting, shut the running sessions down,
 * wait for them, free everything); 2 for a bad command line or configuration (the message
 * names the file, line and key); 1 for other start-up failures (listening, runtime).
 *
 * Threads: the main thread runs the accept loop (and answers the metrics requests, each
 * read within METRICS_READ_TIMEOUT_MS, so a slow scraper delays new connections by at most
 * that); the audit callback runs on the library's
 * audit dispatcher thread (one event at a time) and writes under a mutex. Signals only
 * write a byte into a self-pipe that the accept loop polls.
 */
#define _POSIX_C_SOURCE 200809L

#include <docauth.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

#define PROG "docauth-proxy"
#define EXIT_CONFIG 2
#define MAX_FILE_BYTES (1 << 20) /* configuration and credentials files */
#define MAX_JSON_DEPTH 64
#define ADDR_LEN (INET6_ADDRSTRLEN + 8) /* "[addr]:port" */
#define REAP_INTERVAL_MS 1000           /* finished sessions are collected this often */
#define METRICS_READ_TIMEOUT_MS 1000    /* a metrics request must arrive whole within this */

/* --------------------------------------------------------------------------------------
 * Small helpers */

static void *xalloc(size_t n) {
    void *p = calloc(1, n ? n : 1);
    if (!p) {
        fprintf(stderr, PROG ": out of memory\n");
        exit(1);
    }
    return p;
}

static char *xstrndup(const char *s, size_t n) {
    char *p = xalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* Reads a whole file (at most MAX_FILE_BYTES) as a NUL-terminated string. NULL + errno on
 * failure (EFBIG when too large, EINVAL when it contains a NUL byte). */
static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, len = 0;
    char *buf = xalloc(cap);
    for (;;) {
        if (len + 1 >= cap) {
            if (cap > MAX_FILE_BYTES) {
                free(buf);
                fclose(f);
                errno = EFBIG;
                return NULL;
            }
            cap *= 2;
            char *grown = realloc(buf, cap);
            if (!grown) {
                free(buf);
                fclose(f);
                errno = ENOMEM;
                return NULL;
            }
            buf = grown;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0) break;
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        errno = EIO;
        return NULL;
    }
    buf[len] = '\0';
    if (strlen(buf) != len) {
        free(buf);
        errno = EINVAL;
        return NULL;
    }
    return buf;
}

/* `path` if absolute, else `dir/path`. */
static char *resolve_path(const char *dir, const char *path) {
    if (path[0] == '/') return xstrndup(path, strlen(path));
    size_t n = strlen(dir) + 1 + strlen(path) + 1;
    char *out = xalloc(n);
    snprintf(out, n, "%s/%s", dir, path);
    return out;
}

/* --------------------------------------------------------------------------------------
 * A JSON syntax check for the `session` value, so that a typo is a configuration error
 * (exit 2) rather than a refusal of every connection. It also lists the top-level keys,
 * which are checked against the session parameters the library knows. */

typedef struct {
    const char *s;
    size_t pos;
    const char *error;
    bool empty_object;
    /* Top-level keys, as raw slices of `s` (between the quotes). */
    const char *keys[32];
    size_t key_lens[32];
    size_t n_keys;
} json_check;

static void json_ws(json_check *j) {
    while (is_blank(j->s[j->pos])) j->pos++;
}

static bool json_fail(json_check *j, const char *what) {
    if (!j->error) j->error = what;
    return false;
}

static bool json_string(json_check *j, const char **start, size_t *len) {
    if (j->s[j->pos] != '"') return json_fail(j, "expected a string");
    j->pos++;
    size_t begin = j->pos;
    for (;;) {
        unsigned char c = (unsigned char)j->s[j->pos];
        if (c == '\0') return json_fail(j, "unterminated string");
        if (c < 0x20) return json_fail(j, "control character in a string");
        if (c == '"') break;
        if (c == '\\') {
            char e = j->s[j->pos + 1];
            if (e == 'u') {
                for (int i = 2; i < 6; i++) {
                    char h = j->s[j->pos + i];
                    bool hex = (h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') || (h >= 'A' && h <= 'F');
                    if (!hex) return json_fail(j, "bad \\u escape");
                }
                j->pos += 6;
                continue;
            }
            if (!e || !strchr("\"\\/bfnrt", e)) return json_fail(j, "bad escape in a string");
            j->pos += 2;
            continue;
        }
        j->pos++;
    }
    if (start) *start = j->s + begin;
    if (len) *len = j->pos - begin;
    j->pos++;
    return true;
}

static bool json_digits(json_check *j) {
    if (j->s[j->pos] < '0' || j->s[j->pos] > '9') return json_fail(j, "expected a digit");
    while (j->s[j->pos] >= '0' && j->s[j->pos] <= '9') j->pos++;
    return true;
}

static bool json_number(json_check *j) {
    if (j->s[j->pos] == '-') j->pos++;
    if (j->s[j->pos] == '0') {
        j->pos++;
    } else if (!json_digits(j)) {
        return false;
    }
    if (j->s[j->pos] == '.') {
        j->pos++;
        if (!json_digits(j)) return false;
    }
    if (j->s[j->pos] == 'e' || j->s[j->pos] == 'E') {
        j->pos++;
        if (j->s[j->pos] == '+' || j->s[j->pos] == '-') j->pos++;
        if (!json_digits(j)) return false;
    }
    return true;
}

static bool json_value(json_check *j, int depth);

/* An object (`close` = '}') or an array (']'); `depth` is the container's own depth. */
static bool json_container(json_check *j, int depth, char close) {
    j->pos++; /* '{' or '[' */
    json_ws(j);
    if (j->s[j->pos] == close) {
        j->pos++;
        if (depth == 1) j->empty_object = true;
        return true;
    }
    for (;;) {
        if (close == '}') {
            const char *key;
            size_t key_len;
            json_ws(j);
            if (!json_string(j, &key, &key_len)) return false;
            if (depth == 1) {
                if (j->n_keys == sizeof j->keys / sizeof j->keys[0]) return json_fail(j, "too many keys");
                j->keys[j->n_keys] = key;
                j->key_lens[j->n_keys++] = key_len;
            }
            json_ws(j);
            if (j->s[j->pos] != ':') return json_fail(j, "expected ':'");
            j->pos++;
        }
        if (!json_value(j, depth)) return false;
        json_ws(j);
        if (j->s[j->pos] == ',') {
            j->pos++;
            continue;
        }
        if (j->s[j->pos] == close) {
            j->pos++;
            return true;
        }
        return json_fail(j, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static bool json_value(json_check *j, int depth) {
    if (depth >= MAX_JSON_DEPTH) return json_fail(j, "nested too deeply");
    json_ws(j);
    char c = j->s[j->pos];
    if (c == '{') return json_container(j, depth + 1, '}');
    if (c == '[') return json_container(j, depth + 1, ']');
    if (c == '"') return json_string(j, NULL, NULL);
    if (c == '-' || (c >= '0' && c <= '9')) return json_number(j);
    static const char *const literals[] = {"true", "false", "null"};
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(literals[i]);
        if (strncmp(j->s + j->pos, literals[i], n) == 0) {
            j->pos += n;
            return true;
        }
    }
    return json_fail(j, "expected a JSON value");
}

/* The session parameters of the contract; `client_addr` is the proxy's to add. */
static const char *const SESSION_KEYS[] = {
    "identity",           "database",          "db_user",          "db_name",
    "database_uri",       "ca_file",           "connect_timeout_ms", "handshake_timeout_ms",
    "idle_timeout_ms",    "message_timeout_ms",
};
static const char *const SESSION_REQUIRED[] = {"identity", "database", "db_user"};

static bool json_has_key(const json_check *j, const char *name) {
    for (size_t i = 0; i < j->n_keys; i++) {
        if (j->key_lens[i] == strlen(name) && memcmp(j->keys[i], name, j->key_lens[i]) == 0) return true;
    }
    return false;
}

/* --------------------------------------------------------------------------------------
 * Configuration */

typedef struct {
    const char *file; /* as given on the command line */
    char *listen_host;
    char *listen_port;
    char *metrics_host; /* NULL: no metrics endpoint */
    char *metrics_port;
    char *policy_path; /* resolved against the file's directory */
    char *credentials_path;
    char *session_json; /* validated: a JSON object */
    bool session_empty;
    uint32_t threads;
    int line_of[6]; /* line of each key (KEY_*), 0 = absent */
} proxy_config;

enum { KEY_LISTEN, KEY_POLICY, KEY_CREDENTIALS, KEY_THREADS, KEY_SESSION, KEY_METRICS, N_KEYS };
static const char *const KEY_NAMES[N_KEYS] = {"listen", "policy", "credentials", "threads", "session", "metrics"};

static void config_free(proxy_config *c) {
    free(c->listen_host);
    free(c->listen_port);
    free(c->metrics_host);
    free(c->metrics_port);
    free(c->policy_path);
    free(c->credentials_path);
    free(c->session_json);
}

/* Prints `docauth-proxy: FILE:LINE: key "KEY": message` (line 0: no line). */
static void config_error(const proxy_config *c, int key, const char *fmt, ...) {
    int line = key >= 0 ? c->line_of[key] : 0;
    if (line > 0) {
        fprintf(stderr, PROG ": %s:%d: %s: ", c->file, line, KEY_NAMES[key]);
    } else {
        fprintf(stderr, PROG ": %s: ", c->file);
    }
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* Cuts a `#` comment: at the start or after a blank, outside a JSON string. */
static void strip_comment(char *line) {
    bool in_string = false;
    for (size_t i = 0; line[i]; i++) {
        char ch = line[i];
        if (in_string) {
            if (ch == '\\' && line[i + 1]) {
                i++;
            } else if (ch == '"') {
                in_string = false;
            }
        } else if (ch == '"') {
            in_string = true;
        } else if (ch == '#' && (i == 0 || is_blank(line[i - 1]))) {
            line[i] = '\0';
            return;
        }
    }
}

static char *trim(char *s) {
    while (is_blank(*s)) s++;
    size_t n = strlen(s);
    while (n > 0 && is_blank(s[n - 1])) s[--n] = '\0';
    return s;
}

/* HOST:PORT or [HOST]:PORT, PORT in 0..65535, for `key` (listen or metrics). */
static bool parse_address(proxy_config *c, int key, const char *value, char **host_out, char **port_out) {
    const char *host, *host_end, *port;
    if (value[0] == '[') {
        host = value + 1;
        host_end = strchr(host, ']');
        if (!host_end || host_end[1] != ':') {
            config_error(c, key, "expected [IPV6]:PORT, got \"%s\"", value);
            return false;
        }
        port = host_end + 2;
    } else {
        host = value;
        host_end = strrchr(value, ':');
        if (!host_end || memchr(value, ':', (size_t)(host_end - value))) {
            config_error(c, key, "expected HOST:PORT (IPv6 as [ADDR]:PORT), got \"%s\"", value);
            return false;
        }
        port = host_end + 1;
    }
    if (host_end == host) {
        config_error(c, key, "no host in \"%s\" (e.g. 127.0.0.1:0)", value);
        return false;
    }
    size_t port_len = strlen(port);
    if (port_len == 0 || port_len > 5 || strspn(port, "0123456789") != port_len || atol(port) > 65535) {
        config_error(c, key, "port must be 0..65535, got \"%s\"", port);
        return false;
    }
    *host_out = xstrndup(host, (size_t)(host_end - host));
    *port_out = xstrndup(port, port_len);
    return true;
}

static bool parse_threads(proxy_config *c, const char *value) {
    size_t n = strlen(value);
    if (n == 0 || n > 4 || strspn(value, "0123456789") != n || atol(value) > 1024) {
        config_error(c, KEY_THREADS, "expected a number 0..1024 (0 = one per CPU), got \"%s\"", value);
        return false;
    }
    c->threads = (uint32_t)atol(value);
    return true;
}

static bool parse_session(proxy_config *c, const char *value) {
    json_check j = {.s = value};
    json_ws(&j);
    if (value[j.pos] != '{') {
        config_error(c, KEY_SESSION, "expected a JSON object on one line, {\"identity\": ...}");
        return false;
    }
    if (!json_value(&j, 0)) {
        config_error(c, KEY_SESSION, "invalid JSON at column %zu: %s", j.pos + 1, j.error);
        return false;
    }
    json_ws(&j);
    if (value[j.pos] != '\0') {
        config_error(c, KEY_SESSION, "invalid JSON at column %zu: text after the object", j.pos + 1);
        return false;
    }
    for (size_t i = 0; i < j.n_keys; i++) {
        bool known = false;
        for (size_t k = 0; k < sizeof SESSION_KEYS / sizeof SESSION_KEYS[0]; k++) {
            known = known || (j.key_lens[i] == strlen(SESSION_KEYS[k]) &&
                              memcmp(j.keys[i], SESSION_KEYS[k], j.key_lens[i]) == 0);
        }
        if (!known) {
            config_error(c, KEY_SESSION, "unknown session parameter \"%.*s\"%s", (int)j.key_lens[i], j.keys[i],
                         json_has_key(&j, "client_addr") ? " (the proxy sets client_addr itself)" : "");
            return false;
        }
    }
    for (size_t k = 0; k < sizeof SESSION_REQUIRED / sizeof SESSION_REQUIRED[0]; k++) {
        if (!json_has_key(&j, SESSION_REQUIRED[k])) {
            config_error(c, KEY_SESSION, "missing session parameter \"%s\"", SESSION_REQUIRED[k]);
            return false;
        }
    }
    c->session_json = xstrndup(value, strlen(value));
    c->session_empty = j.empty_object;
    return true;
}

/* Parses the whole file; on failure prints why (file, line, key) and returns false. */
static bool config_load(proxy_config *c, const char *file) {
    memset(c, 0, sizeof *c);
    c->file = file;
    char *text = read_file(file);
    if (!text) {
        fprintf(stderr, PROG ": cannot read configuration %s: %s\n", file,
                errno == EINVAL ? "it contains a NUL byte" : strerror(errno));
        return false;
    }
    char *slash = strrchr(file, '/');
    char *dir = slash ? xstrndup(file, (size_t)(slash - file) + (slash == file)) : xstrndup(".", 1);

    bool ok = true;
    int line_no = 0;
    char *save = NULL;
    /* strtok_r would merge empty lines and lose the count: split by hand. */
    for (char *line = text; ok && line; line = save) {
        line_no++;
        char *nl = strchr(line, '\n');
        save = nl ? nl + 1 : NULL;
        if (nl) *nl = '\0';
        strip_comment(line);
        char *content = trim(line);
        if (*content == '\0') continue;
        char *eq = strchr(content, '=');
        if (!eq) {
            fprintf(stderr, PROG ": %s:%d: expected `key = value`, got \"%s\"\n", file, line_no, content);
            ok = false;
            break;
        }
        *eq = '\0';
        char *key = trim(content);
        char *value = trim(eq + 1);
        int k = 0;
        while (k < N_KEYS && strcmp(key, KEY_NAMES[k]) != 0) k++;
        if (k == N_KEYS) {
            fprintf(stderr, PROG ": %s:%d: unknown key \"%s\" (known: listen, policy, credentials, threads, session, metrics)\n",
                    file, line_no, key);
            ok = false;
            break;
        }
        if (c->line_of[k]) {
            fprintf(stderr, PROG ": %s:%d: key \"%s\" given twice (first on line %d)\n", file, line_no, key,
                    c->line_of[k]);
            ok = false;
            break;
        }
        c->line_of[k] = line_no;
        if (*value == '\0') {
            config_error(c, k, "no value");
            ok = false;
            break;
        }
        switch (k) {
        case KEY_LISTEN: ok = parse_address(c, KEY_LISTEN, value, &c->listen_host, &c->listen_port); break;
        case KEY_METRICS: ok = parse_address(c, KEY_METRICS, value, &c->metrics_host, &c->metrics_port); break;
        case KEY_POLICY: c->policy_path = resolve_path(dir, value); break;
        case KEY_CREDENTIALS: c->credentials_path = resolve_path(dir, value); break;
        case KEY_THREADS: ok = parse_threads(c, value); break;
        case KEY_SESSION: ok = parse_session(c, value); break;
        default: break;
        }
    }
    for (int k = 0; ok && k < N_KEYS; k++) {
        if (k != KEY_THREADS && k != KEY_METRICS && !c->line_of[k]) {
            config_error(c, -1, "missing key \"%s\"", KEY_NAMES[k]);
            ok = false;
        }
    }
    free(dir);
    free(text);
    if (!ok) config_free(c);
    return ok;
}

/* --------------------------------------------------------------------------------------
 * Audit: one JSON line per event on stdout. Called on the library's audit dispatcher
 * thread; the mutex keeps lines whole should anything else ever write there. */

typedef struct {
    pthread_mutex_t lock;
    FILE *out;
} audit_sink;

static void on_audit(void *user_data, const char *event_json, size_t len) {
    audit_sink *sink = user_data;
    pthread_mutex_lock(&sink->lock);
    fwrite(event_json, 1, len, sink->out);
    fputc('\n', sink->out);
    fflush(sink->out);
    pthread_mutex_unlock(&sink->lock);
}

/* --------------------------------------------------------------------------------------
 * Signals: the handler writes one byte into a self-pipe; the accept loop polls it. */

static int signal_pipe[2] = {-1, -1};

static void on_signal(int signo) {
    int saved = errno;
    unsigned char b = (unsigned char)signo;
    ssize_t ignored = write(signal_pipe[1], &b, 1); /* full pipe: a byte is already there */
    (void)ignored;
    errno = saved;
}

static int set_flags(int fd) {
    int fl = fcntl(fd, F_GETFL);
    int fdfl = fcntl(fd, F_GETFD);
    if (fl < 0 || fdfl < 0) return -1;
    if (fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) < 0) return -1;
    return 0;
}

static int install_signals(void) {
    if (pipe(signal_pipe) < 0 || set_flags(signal_pipe[0]) < 0 || set_flags(signal_pipe[1]) < 0) return -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0) return -1;
    sa.sa_handler = SIG_IGN; /* a client gone while we write must not kill the proxy */
    return sigaction(SIGPIPE, &sa, NULL);
}

/* --------------------------------------------------------------------------------------
 * Listening socket and addresses */

static void format_addr(const struct sockaddr *sa, char out[ADDR_LEN]) {
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
        snprintf(out, ADDR_LEN, "%s:%u", host, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
        snprintf(out, ADDR_LEN, "[%s]:%u", host, port);
    } else {
        snprintf(out, ADDR_LEN, "unknown");
    }
}

/* Binds the first address HOST resolves to (`key`: listen or metrics). Returns the socket or
 * -1 (message printed). */
static int listen_on(const proxy_config *c, int key, const char *host, const char *port, char bound[ADDR_LEN]) {
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0) {
        config_error(c, key, "cannot resolve \"%s\": %s", host, gai_strerror(gai));
        return -1;
    }
    int fd = -1, saved = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (set_flags(fd) < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 128) < 0) {
            saved = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        fprintf(stderr, PROG ": cannot listen on %s:%s: %s\n", host, port, strerror(saved));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        fprintf(stderr, PROG ": getsockname: %s\n", strerror(errno));
        close(fd);
        return -1;
    }
    format_addr((struct sockaddr *)&ss, bound);
    return fd;
}

/* --------------------------------------------------------------------------------------
 * Sessions */

typedef struct {
    docauth_session *session;
    char client[ADDR_LEN];
} running_session;

typedef struct {
    running_session *items;
    size_t len, cap;
} session_list;

/* The configured parameters plus `"client_addr": "ADDR"` (ADDR has no character JSON
 * would need escaped: digits, dots, colons, brackets, hex). */
static char *session_params(const proxy_config *c, const char *client) {
    const char *json = c->session_json;
    const char *close_brace = strrchr(json, '}'); /* validated: the object's last byte */
    size_t head = (size_t)(close_brace - json);
    size_t n = head + strlen(client) + 32;
    char *out = xalloc(n);
    snprintf(out, n, "%.*s%s\"client_addr\": \"%s\"}", (int)head, json, c->session_empty ? "" : ", ", client);
    return out;
}

/* Waits for a finished (or shut down) session, reports an error end, frees the handle. */
static void finish_session(running_session *s) {
    docauth_error *err = NULL;
    docauth_result r = docauth_session_wait(s->session, NULL, &err);
    if (r != DOCAUTH_RESULT_OK) {
        fprintf(stderr, PROG ": session from %s ended: %s: %s\n", s->client, docauth_result_name(r),
                docauth_error_message(err));
    }
    docauth_error_free(err);
    docauth_session_free(s->session);
    s->session = NULL;
}

static void reap_finished(session_list *l) {
    for (size_t i = 0; i < l->len;) {
        if (docauth_session_is_finished(l->items[i].session)) {
            finish_session(&l->items[i]);
            l->items[i] = l->items[--l->len];
        } else {
            i++;
        }
    }
}

typedef struct {
    const proxy_config *config;
    const docauth_runtime *runtime;
    const docauth_engine *engine;
    const docauth_credentials_provider *provider;
    audit_sink *sink;
    session_list sessions;
} proxy;

static void accept_one(proxy *p, int listen_fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd = accept(listen_fd, (struct sockaddr *)&ss, &len);
    if (fd < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED) {
            fprintf(stderr, PROG ": accept: %s\n", strerror(errno)); /* e.g. EMFILE */
        }
        return;
    }
    int fdfl = fcntl(fd, F_GETFD);
    if (fdfl >= 0) fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC);

    running_session s = {0};
    format_addr((struct sockaddr *)&ss, s.client);
    char *params = session_params(p->config, s.client);
    docauth_error *err = NULL;
    /* The library owns `fd` from here on, whatever the result. */
    docauth_result r = docauth_session_start(p->runtime, fd, params, p->engine, p->provider, on_audit, p->sink,
                                             NULL /* the sink outlives the runtime */, &s.session, &err);
    free(params);
    if (r != DOCAUTH_RESULT_OK) {
        fprintf(stderr, PROG ": connection from %s refused: %s: %s\n", s.client, docauth_result_name(r),
                docauth_error_message(err));
        docauth_error_free(err);
        return;
    }
    session_list *l = &p->sessions;
    if (l->len == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        running_session *grown = realloc(l->items, cap * sizeof *grown);
        if (!grown) { /* keep serving: end this session rather than lose its handle */
            fprintf(stderr, PROG ": out of memory; closing the connection from %s\n", s.client);
            docauth_session_shutdown(s.session);
            finish_session(&s);
            return;
        }
        l->items = grown;
        l->cap = cap;
    }
    l->items[l->len++] = s;
}

/* --------------------------------------------------------------------------------------
 * Metrics: one small HTTP/1.0 exchange per connection, answered on the main thread. */

static bool write_all(int fd, const char *data, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        data += n;
        len -= (size_t)n;
    }
    return true;
}

static void respond(int fd, const char *status, const char *content_type, const char *body, size_t len) {
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", status,
                     content_type, len);
    if (n > 0 && (size_t)n < sizeof head && write_all(fd, head, (size_t)n)) write_all(fd, body, len);
}

/* Answers one request on the metrics socket: GET /metrics, GET /healthz; anything else 404. */
static void serve_metrics(const proxy *p, int listen_fd) {
    int fd = accept(listen_fd, NULL, NULL);
    if (fd < 0) return;
    /* Blocking, with a read deadline: a scraper that sends nothing cannot hold the loop. */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    struct timeval tv = {.tv_sec = METRICS_READ_TIMEOUT_MS / 1000, .tv_usec = (METRICS_READ_TIMEOUT_MS % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    char req[4096];
    size_t got = 0;
    while (got < sizeof req - 1) {
        ssize_t n = read(fd, req + got, sizeof req - 1 - got);
        if (n <= 0) break;
        got += (size_t)n;
        req[got] = '\0';
        if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n")) break;
    }
    req[got] = '\0';
    static const char ok[] = "ok\n";
    if (strncmp(req, "GET /healthz ", 13) == 0 || strncmp(req, "GET /healthz?", 13) == 0) {
        respond(fd, "200 OK", "text/plain; charset=utf-8", ok, sizeof ok - 1);
    } else if (strncmp(req, "GET /metrics ", 13) == 0 || strncmp(req, "GET /metrics?", 13) == 0) {
        docauth_metrics_format format = strstr(req, "application/openmetrics-text")
                                            ? DOCAUTH_METRICS_FORMAT_OPENMETRICS
                                            : DOCAUTH_METRICS_FORMAT_PROMETHEUS;
        docauth_bytes *text = NULL;
        docauth_error *err = NULL;
        if (docauth_metrics_render(p->runtime, p->engine, p->provider, format, &text, &err) == DOCAUTH_RESULT_OK) {
            respond(fd, "200 OK", docauth_metrics_content_type(format), (const char *)docauth_bytes_data(text),
                    docauth_bytes_len(text));
        } else {
            const char *why = docauth_error_message(err);
            respond(fd, "500 Internal Server Error", "text/plain; charset=utf-8", why, strlen(why));
        }
        docauth_bytes_free(text);
        docauth_error_free(err);
    } else {
        static const char missing[] = "not found: GET /metrics or /healthz\n";
        respond(fd, "404 Not Found", "text/plain; charset=utf-8", missing, sizeof missing - 1);
    }
    close(fd);
}

/* --------------------------------------------------------------------------------------
 * main */

static int load_error(const proxy_config *c, int key, const char *path, docauth_error *err) {
    config_error(c, key, "%s: %s: %s", path, docauth_result_name(docauth_error_code(err)), docauth_error_message(err));
    docauth_error_free(err);
    return EXIT_CONFIG;
}

int main(int argc, char **argv) {
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: " PROG " CONFIG_FILE\n(see the comment at the top of examples/c/docauth-proxy.c)\n");
        return EXIT_CONFIG;
    }
    proxy_config config;
    if (!config_load(&config, argv[1])) return EXIT_CONFIG;

    int status = 0, listen_fd = -1, metrics_fd = -1;
    docauth_engine *engine = NULL;
    docauth_credentials_provider *provider = NULL;
    docauth_runtime *runtime = NULL;
    docauth_error *err = NULL;
    char *creds_json = NULL;
    audit_sink sink = {.out = stdout};
    pthread_mutex_init(&sink.lock, NULL);
    proxy p = {.config = &config, .sink = &sink};

    if (docauth_engine_new_from_file(config.policy_path, &engine, &err) != DOCAUTH_RESULT_OK) {
        status = load_error(&config, KEY_POLICY, config.policy_path, err);
        goto out;
    }
    creds_json = read_file(config.credentials_path);
    if (!creds_json) {
        config_error(&config, KEY_CREDENTIALS, "cannot read %s: %s", config.credentials_path, strerror(errno));
        status = EXIT_CONFIG;
        goto out;
    }
    if (docauth_credentials_provider_new(creds_json, &provider, &err) != DOCAUTH_RESULT_OK) {
        status = load_error(&config, KEY_CREDENTIALS, config.credentials_path, err);
        goto out;
    }
    /* The provider holds its own (zeroizing) copy of any static secret: wipe ours. */
    memset(creds_json, 0, strlen(creds_json));

    if (install_signals() < 0) {
        fprintf(stderr, PROG ": signal set-up: %s\n", strerror(errno));
        status = 1;
        goto out;
    }
    char bound[ADDR_LEN];
    listen_fd = listen_on(&config, KEY_LISTEN, config.listen_host, config.listen_port, bound);
    if (listen_fd < 0) {
        status = 1;
        goto out;
    }
    char metrics_bound[ADDR_LEN] = "";
    if (config.metrics_host) {
        metrics_fd = listen_on(&config, KEY_METRICS, config.metrics_host, config.metrics_port, metrics_bound);
        if (metrics_fd < 0) {
            status = 1;
            goto out;
        }
    }
    if (docauth_runtime_new(config.threads, &runtime, &err) != DOCAUTH_RESULT_OK) {
        fprintf(stderr, PROG ": runtime: %s\n", docauth_error_message(err));
        docauth_error_free(err);
        status = 1;
        goto out;
    }
    p.runtime = runtime;
    p.engine = engine;
    p.provider = provider;
    if (metrics_fd >= 0) fprintf(stderr, PROG ": metrics on %s\n", metrics_bound);
    fprintf(stderr, PROG ": listening on %s\n", bound);
    fflush(stderr);

    /* fds[2].fd is -1 without a metrics endpoint: poll ignores it. */
    struct pollfd fds[3] = {{.fd = listen_fd, .events = POLLIN},
                            {.fd = signal_pipe[0], .events = POLLIN},
                            {.fd = metrics_fd, .events = POLLIN}};
    for (;;) {
        int n = poll(fds, 3, REAP_INTERVAL_MS);
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, PROG ": poll: %s\n", strerror(errno));
            status = 1;
            break;
        }
        if (n > 0 && fds[1].revents) break; /* SIGTERM / SIGINT */
        if (n > 0 && (fds[0].revents & POLLIN)) accept_one(&p, listen_fd);
        if (n > 0 && (fds[2].revents & POLLIN)) serve_metrics(&p, metrics_fd);
        reap_finished(&p.sessions);
    }

    /* Stop accepting, ask every session to end, then wait for each. */
    close(listen_fd);
    listen_fd = -1;
    for (size_t i = 0; i < p.sessions.len; i++) docauth_session_shutdown(p.sessions.items[i].session);
    for (size_t i = 0; i < p.sessions.len; i++) finish_session(&p.sessions.items[i]);

out:
    free(p.sessions.items);
    if (listen_fd >= 0) close(listen_fd);
    if (metrics_fd >= 0) close(metrics_fd);
    docauth_runtime_free(runtime); /* delivers the queued audit events, stops the dispatcher */
    docauth_credentials_provider_free(provider);
    docauth_engine_free(engine);
    if (creds_json) memset(creds_json, 0, strlen(creds_json));
    free(creds_json);
    pthread_mutex_destroy(&sink.lock);
    for (int i = 0; i < 2; i++) {
        if (signal_pipe[i] >= 0) close(signal_pipe[i]);
    }
    config_free(&config);
    return status;
}
