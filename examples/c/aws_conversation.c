/*
 * A MONGODB-AWS conversation from C, against the verifier HTTP service that stands in for
 * DocumentDB (tests/peers/; it forwards our signed GetCallerIdentity to STS — moto here).
 *
 *   DOCAUTH_TEST_VERIFIER_URL=http://127.0.0.1:PORT \
 *   DOCAUTH_TEST_AWS_ACCESS_KEY_ID=... DOCAUTH_TEST_AWS_SECRET_ACCESS_KEY=... \
 *   [DOCAUTH_TEST_TEMP_ACCESS_KEY_ID=... DOCAUTH_TEST_TEMP_SECRET_ACCESS_KEY=... \
 *    DOCAUTH_TEST_TEMP_SESSION_TOKEN=...] ./aws_conversation
 *
 * Runs one conversation with the long-term key and, when the DOCAUTH_TEST_TEMP_* variables
 * are set, one with the temporary credentials (session token).
 *
 * `make demo` builds it and runs it under tests/peers/with_moto.py, which sets those.
 *
 * Protocol: POST /sasl/start with the client-first BSON -> 200, server-first BSON, header
 * X-Conversation-Id; POST /sasl/finish?conversation=ID with the client-final BSON -> 200
 * {"arn": "..."} or 401 {"error": "..."}. Plain HTTP/1.1, one request per connection.
 *
 * Prints the payloads' fields (the session token's length only, never the secret) and the
 * ARN the verifier returned. Exit status 0 only when the verifier accepted us.
 */
#define _POSIX_C_SOURCE 200809L

#include <docauth.h>

#include <errno.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#define MAX_RESPONSE (1 << 20)

/* --------------------------------------------------------------------------------------
 * A minimal HTTP/1.1 client: POST, Connection: close, Content-Length bodies only. */

typedef struct {
    char host[256];
    char port[8];
    char base_path[256]; /* "" or "/prefix" without a trailing slash */
} http_url;

typedef struct {
    int status;
    char conversation_id[128];
    unsigned char *raw; /* whole response; body points into it */
    const unsigned char *body;
    size_t body_len;
} http_response;

static int parse_url(const char *url, http_url *out) {
    const char *p = url;
    if (strncmp(p, "http://", 7) != 0) {
        fprintf(stderr, "verifier URL must start with http:// (got %s)\n", url);
        return -1;
    }
    p += 7;
    size_t host_len = strcspn(p, ":/");
    if (host_len == 0 || host_len >= sizeof out->host) return -1;
    memcpy(out->host, p, host_len);
    out->host[host_len] = 0;
    p += host_len;
    strcpy(out->port, "80");
    if (*p == ':') {
        p++;
        size_t port_len = strspn(p, "0123456789");
        if (port_len == 0 || port_len >= sizeof out->port) return -1;
        memcpy(out->port, p, port_len);
        out->port[port_len] = 0;
        p += port_len;
    }
    size_t path_len = strlen(p);
    while (path_len > 0 && p[path_len - 1] == '/') path_len--;
    if (path_len >= sizeof out->base_path) return -1;
    memcpy(out->base_path, p, path_len);
    out->base_path[path_len] = 0;
    return 0;
}

static int connect_to(const http_url *url) {
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(url->host, url->port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "cannot resolve %s: %s\n", url->host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) fprintf(stderr, "cannot connect to %s:%s: %s\n", url->host, url->port, strerror(errno));
    return fd;
}

static int send_all(int fd, const void *data, size_t len) {
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Finds header `name` (case-insensitive) in the header block [start, end); copies its value. */
static int find_header(const char *start, const char *end, const char *name, char *value,
                       size_t size) {
    size_t name_len = strlen(name);
    const char *line = start;
    while (line < end) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (eol == NULL) eol = end;
        if ((size_t)(eol - line) > name_len && strncasecmp(line, name, name_len) == 0 &&
            line[name_len] == ':') {
            const char *v = line + name_len + 1;
            while (v < eol && (*v == ' ' || *v == '\t')) v++;
            const char *v_end = eol;
            while (v_end > v && (v_end[-1] == '\r' || v_end[-1] == ' ')) v_end--;
            if ((size_t)(v_end - v) >= size) return -1;
            memcpy(value, v, (size_t)(v_end - v));
            value[v_end - v] = 0;
            return 0;
        }
        line = eol + 1;
    }
    return -1;
}

static int http_post(const http_url *url, const char *path, const uint8_t *body, size_t len,
                     http_response *resp) {
    memset(resp, 0, sizeof *resp);
    int fd = connect_to(url);
    if (fd < 0) return -1;
    char head[1024];
    int head_len = snprintf(head, sizeof head,
                            "POST %s%s HTTP/1.1\r\nHost: %s:%s\r\n"
                            "Content-Type: application/octet-stream\r\n"
                            "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                            url->base_path, path, url->host, url->port, len);
    if (head_len < 0 || (size_t)head_len >= sizeof head || send_all(fd, head, (size_t)head_len) ||
        send_all(fd, body, len)) {
        fprintf(stderr, "cannot send the request to %s%s\n", url->base_path, path);
        close(fd);
        return -1;
    }

    /* Read until the server closes (Connection: close), at most MAX_RESPONSE bytes. */
    unsigned char *buf = malloc(MAX_RESPONSE + 1);
    size_t got = 0;
    if (buf == NULL) {
        close(fd);
        return -1;
    }
    for (;;) {
        ssize_t n = recv(fd, buf + got, MAX_RESPONSE - got, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            fprintf(stderr, "reading the response failed: %s\n", strerror(errno));
            free(buf);
            close(fd);
            return -1;
        }
        if (n == 0) break;
        got += (size_t)n;
        if (got == MAX_RESPONSE) {
            fprintf(stderr, "response larger than %d bytes\n", MAX_RESPONSE);
            free(buf);
            close(fd);
            return -1;
        }
    }
    close(fd);
    buf[got] = 0;

    const char *text = (const char *)buf;
    const char *head_end = strstr(text, "\r\n\r\n");
    if (head_end == NULL || sscanf(text, "HTTP/1.%*d %d", &resp->status) != 1) {
        fprintf(stderr, "malformed HTTP response\n");
        free(buf);
        return -1;
    }
    char value[64];
    if (find_header(text, head_end, "Transfer-Encoding", value, sizeof value) == 0) {
        fprintf(stderr, "chunked responses are not supported by this example\n");
        free(buf);
        return -1;
    }
    resp->raw = buf;
    resp->body = buf + (head_end - text) + 4;
    resp->body_len = got - (size_t)(resp->body - buf);
    if (find_header(text, head_end, "Content-Length", value, sizeof value) == 0) {
        char *end = NULL;
        unsigned long long n = strtoull(value, &end, 10);
        if (*end != 0 || n > resp->body_len) {
            fprintf(stderr, "response shorter than its Content-Length\n");
            free(buf);
            resp->raw = NULL;
            return -1;
        }
        resp->body_len = (size_t)n;
    }
    find_header(text, head_end, "X-Conversation-Id", resp->conversation_id,
                sizeof resp->conversation_id);
    return 0;
}

/* --------------------------------------------------------------------------------------
 * Printing BSON payloads: a flat walk over binary, string and int32 fields. */

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void print_hex(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) printf("%02x", p[i]);
}

/* Prints each field; `t` (the session token) as its length only. */
static int print_bson(const char *label, const uint8_t *doc, size_t len) {
    printf("%s (%zu bytes BSON):\n", label, len);
    if (len < 5 || le32(doc) != len || doc[len - 1] != 0) {
        printf("  (not a BSON document)\n");
        return -1;
    }
    size_t pos = 4;
    while (pos < len - 1) {
        uint8_t type = doc[pos++];
        const char *key = (const char *)doc + pos;
        const uint8_t *nul = memchr(doc + pos, 0, len - 1 - pos);
        if (nul == NULL || (size_t)(nul - doc) + 5 > len - 1) goto bad;
        pos = (size_t)(nul - doc) + 1;
        uint32_t n = le32(doc + pos);
        if (type == 0x05 && len - 1 - pos >= 5 && n <= len - 1 - pos - 5) { /* binary */
            printf("  %-2s BinData(%u, %u bytes) ", key, doc[pos + 4], n);
            print_hex(doc + pos + 5, n);
            printf("\n");
            pos += 5 + n;
        } else if (type == 0x02 && n >= 1 && n <= len - 1 - pos - 4) { /* string */
            if (strcmp(key, "t") == 0)
                printf("  %-2s string, %u characters (session token, not shown)\n", key, n - 1);
            else
                printf("  %-2s \"%.*s\"\n", key, (int)(n - 1), (const char *)doc + pos + 4);
            pos += 4 + n;
        } else if (type == 0x10) { /* int32 */
            printf("  %-2s %d\n", key, (int32_t)n);
            pos += 4;
        } else {
            goto bad;
        }
    }
    return 0;
bad:
    printf("  (unexpected field type or truncated document)\n");
    return -1;
}

/* Copies the JSON string value of "key" (no escapes expected) from a small JSON object. */
static int json_string(const unsigned char *json, size_t len, const char *key, char *out,
                       size_t size) {
    char needle[64];
    snprintf(needle, sizeof needle, "\"%s\"", key);
    char *text = strndup((const char *)json, len);
    if (text == NULL) return -1;
    int rc = -1;
    const char *p = strstr(text, needle);
    if (p != NULL) {
        p += strlen(needle);
        while (*p == ' ' || *p == ':') p++;
        if (*p == '"') {
            const char *end = strchr(++p, '"');
            if (end != NULL && (size_t)(end - p) < size) {
                memcpy(out, p, (size_t)(end - p));
                out[end - p] = 0;
                rc = 0;
            }
        }
    }
    free(text);
    return rc;
}

/* --------------------------------------------------------------------------------------
 * The conversation */

static int fail(const char *what, docauth_result r, docauth_error *err) {
    fprintf(stderr, "%s failed: %s: %s\n", what, docauth_result_name((uint32_t)r),
            docauth_error_message(err));
    docauth_error_free(err);
    return 1;
}

static const char *need_env(const char *name) {
    const char *v = getenv(name);
    if (v == NULL || *v == 0) fprintf(stderr, "environment variable %s is not set\n", name);
    return v != NULL && *v != 0 ? v : NULL;
}

/* One conversation; returns 0 when the verifier accepted it. */
static int converse(const http_url *url, const char *akid, const char *secret, const char *token) {
    printf("\n--- access key id %s, %s credentials\n", akid,
           token ? "temporary (with session token)" : "long-term");
    int status = 1;
    docauth_error *err = NULL;
    docauth_credentials *creds = NULL;
    docauth_aws_conversation *conv = NULL;
    docauth_bytes *first = NULL, *final = NULL;
    http_response start = {0}, finish = {0};
    docauth_result r;

    if ((r = docauth_credentials_new(akid, secret, token, &creds, &err)) != DOCAUTH_RESULT_OK)
        return fail("docauth_credentials_new", r, err);
    r = docauth_aws_conversation_new(creds, &conv, &err);
    docauth_credentials_free(creds); /* the conversation holds its own reference */
    if (r != DOCAUTH_RESULT_OK) return fail("docauth_aws_conversation_new", r, err);

    if ((r = docauth_aws_conversation_client_first(conv, &first, &err)) != DOCAUTH_RESULT_OK) {
        status = fail("client_first", r, err);
        goto out;
    }
    print_bson("client-first", docauth_bytes_data(first), docauth_bytes_len(first));

    if (http_post(url, "/sasl/start", docauth_bytes_data(first), docauth_bytes_len(first),
                  &start) != 0)
        goto out;
    if (start.status != 200 || start.conversation_id[0] == 0) {
        fprintf(stderr, "/sasl/start answered HTTP %d: %.*s\n", start.status,
                (int)start.body_len, (const char *)start.body);
        goto out;
    }
    print_bson("server-first", start.body, start.body_len);

    r = docauth_aws_conversation_client_final(conv, start.body, start.body_len, &final, &err);
    if (r != DOCAUTH_RESULT_OK) {
        status = fail("client_final", r, err);
        goto out;
    }
    print_bson("client-final", docauth_bytes_data(final), docauth_bytes_len(final));

    char path[256];
    snprintf(path, sizeof path, "/sasl/finish?conversation=%s", start.conversation_id);
    if (http_post(url, path, docauth_bytes_data(final), docauth_bytes_len(final), &finish) != 0)
        goto out;
    char arn[512];
    if (finish.status == 200 &&
        json_string(finish.body, finish.body_len, "arn", arn, sizeof arn) == 0) {
        printf("verifier accepted: ARN %s\n", arn);
        status = 0;
    } else {
        fprintf(stderr, "verifier refused (HTTP %d): %.*s\n", finish.status,
                (int)finish.body_len, (const char *)finish.body);
    }

out:
    free(start.raw);
    free(finish.raw);
    docauth_bytes_free(first);
    docauth_bytes_free(final);
    docauth_aws_conversation_free(conv);
    return status;
}

int main(void) {
    const char *url_text = need_env("DOCAUTH_TEST_VERIFIER_URL");
    const char *akid = need_env("DOCAUTH_TEST_AWS_ACCESS_KEY_ID");
    const char *secret = need_env("DOCAUTH_TEST_AWS_SECRET_ACCESS_KEY");
    if (url_text == NULL || akid == NULL || secret == NULL) return 2;
    http_url url;
    if (parse_url(url_text, &url) != 0) {
        fprintf(stderr, "cannot parse DOCAUTH_TEST_VERIFIER_URL=%s\n", url_text);
        return 2;
    }
    printf("libdocauth %s, C example: MONGODB-AWS against the verifier at %s\n",
           docauth_version(), url_text);

    int failures = converse(&url, akid, secret, NULL);
    /* Temporary credentials (from AssumeRole), when the environment has them. */
    const char *temp_akid = getenv("DOCAUTH_TEST_TEMP_ACCESS_KEY_ID");
    const char *temp_secret = getenv("DOCAUTH_TEST_TEMP_SECRET_ACCESS_KEY");
    const char *temp_token = getenv("DOCAUTH_TEST_TEMP_SESSION_TOKEN");
    if (temp_akid && *temp_akid && temp_secret && *temp_secret && temp_token && *temp_token)
        failures += converse(&url, temp_akid, temp_secret, temp_token);
    return failures == 0 ? 0 : 1;
}
