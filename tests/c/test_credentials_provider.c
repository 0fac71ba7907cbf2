/*
 * The credentials provider's C ABI as a C program sees it (make test-c: ASan + UBSan, then
 * valgrind, under tests/peers/with_moto.py): configuration errors with the field named, NULL
 * and invalid UTF-8 arguments, out-params untouched on failure, db user refused before any
 * network call, an unreachable STS endpoint (a closed loopback port) reported with the
 * endpoint and the timeout, no secret in any message, invalidate and _free(NULL).
 *
 * Against moto (signature checking ON; DOCAUTH_TEST_* from with_moto.py): `teleport-docdb-user`
 * resolved by name and by ARN to the same temporary (ASIA...) credentials of the assumed role,
 * read back with docauth_credentials_access_key_id / _expiry; then a MONGODB-AWS conversation
 * signed with them is sent to the verifier (tests/peers/README.md), which replays the signed
 * GetCallerIdentity to moto exactly as DocumentDB does: moto must answer with the assumed
 * role's session ARN. The same conversation signed with a wrong secret must be refused.
 */
#define _POSIX_C_SOURCE 200809L

#include <docauth.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

static int sentinel_storage;
#define SENTINEL ((void *)&sentinel_storage)

static const char *const check_secrets[] = {SECRET, NULL};

/* Port 1 on loopback: nothing listens there, connections are refused at once. */
#define CONFIG                                                                               \
    "{\"source\": {\"type\": \"static\", \"access_key_id\": \"AKIAIOSFODNN7EXAMPLE\","      \
    " \"secret_access_key\": \"" SECRET "\"},"                                               \
    " \"region\": \"us-east-1\", \"sts_endpoint\": \"http://127.0.0.1:1\","                  \
    " \"connect_timeout_ms\": 500, \"operation_timeout_ms\": 3000,"                          \
    " \"database\": {\"account_id\": \"123456789012\"}}"

static void test_configuration_errors(void) {
    docauth_error *err = NULL;
    docauth_credentials_provider *p = SENTINEL;
    CHECK_FAILS(docauth_credentials_provider_new(NULL, &p, &err), err,
                DOCAUTH_RESULT_NULL_PARAMETER, "config_json");
    CHECK(p == SENTINEL);
    CHECK_FAILS(docauth_credentials_provider_new("{\"region\": \"\xff\"}", &p, &err), err,
                DOCAUTH_RESULT_INVALID_UTF8, "config_json");
    CHECK_FAILS(docauth_credentials_provider_new("{\"sts_endpont\": \"http://x\"}", &p, &err), err,
                DOCAUTH_RESULT_INVALID_CONFIG, "sts_endpont");
    CHECK_FAILS(docauth_credentials_provider_new("{\"database\": {\"external_id\": \"abc\"}}", &p, &err),
                err, DOCAUTH_RESULT_INVALID_CONFIG, "assume_role_arn");
    CHECK_FAILS(docauth_credentials_provider_new(
                    "{\"database\": {\"assume_role_arn\": \"arn:aws:iam::123456789012:user/x\"}}", &p, &err),
                err, DOCAUTH_RESULT_AWS_INVALID_ROLE_ARN, "not a `role`");
    CHECK_FAILS(docauth_credentials_provider_new(CONFIG, NULL, &err), err,
                DOCAUTH_RESULT_NULL_PARAMETER, "out");
    CHECK(p == SENTINEL);
    /* err is optional */
    CHECK_INT_EQ(docauth_credentials_provider_new("[]", &p, NULL), DOCAUTH_RESULT_INVALID_CONFIG);
}

static void test_resolve(void) {
    docauth_error *err = NULL;
    docauth_credentials_provider *p = NULL;
    CHECK_INT_EQ(docauth_credentials_provider_new(CONFIG, &p, &err), DOCAUTH_RESULT_OK);
    CHECK(err == NULL);
    if (p == NULL) return;

    docauth_credentials *c = SENTINEL;
    CHECK_FAILS(docauth_credentials_provider_resolve(NULL, "teleport-docdb-user", NULL, &c, &err), err,
                DOCAUTH_RESULT_NULL_PARAMETER, "provider");
    CHECK_FAILS(docauth_credentials_provider_resolve(p, NULL, NULL, &c, &err), err,
                DOCAUTH_RESULT_NULL_PARAMETER, "db_user");
    CHECK_FAILS(docauth_credentials_provider_resolve(p, "teleport-docdb-user", NULL, NULL, &err), err,
                DOCAUTH_RESULT_NULL_PARAMETER, "out");
    CHECK_FAILS(docauth_credentials_provider_resolve(p, "bad\xc3", NULL, &c, &err), err,
                DOCAUTH_RESULT_INVALID_UTF8, "db_user");
    CHECK_FAILS(docauth_credentials_provider_resolve(p, "teleport-docdb-user", "\xff", &c, &err), err,
                DOCAUTH_RESULT_INVALID_UTF8, "session_user");
    /* Refused before any network call, with the reason. */
    CHECK_FAILS(docauth_credentials_provider_resolve(p, "arn:aws:iam::123456789012:user/alice", NULL, &c, &err),
                err, DOCAUTH_RESULT_AWS_INVALID_ROLE_ARN, "not a `role`");
    CHECK_FAILS(docauth_credentials_provider_resolve(p, "arn:aws:iam::210987654321:role/x", NULL, &c, &err),
                err, DOCAUTH_RESULT_AWS_INVALID_ROLE_ARN, "account 210987654321");
    /* STS unreachable: the endpoint and the timeout are named. */
    CHECK_FAILS(docauth_credentials_provider_resolve(p, "teleport-docdb-user", "alice@example.com", &c, &err),
                err, DOCAUTH_RESULT_AWS_STS_UNREACHABLE, "http://127.0.0.1:1");
    CHECK_FAILS(docauth_credentials_provider_resolve(p, "teleport-docdb-user", NULL, &c, &err), err,
                DOCAUTH_RESULT_AWS_STS_UNREACHABLE, "connect_timeout_ms 500");
    CHECK(c == SENTINEL);

    CHECK_INT_EQ(docauth_credentials_provider_invalidate(p, "teleport-docdb-user", &err), DOCAUTH_RESULT_OK);
    CHECK_INT_EQ(docauth_credentials_provider_invalidate(p, "never-resolved", NULL), DOCAUTH_RESULT_OK);
    CHECK_FAILS(docauth_credentials_provider_invalidate(p, NULL, &err), err,
                DOCAUTH_RESULT_NULL_PARAMETER, "db_user");
    CHECK_FAILS(docauth_credentials_provider_invalidate(NULL, "x", &err), err,
                DOCAUTH_RESULT_NULL_PARAMETER, "provider");
    docauth_credentials_provider_free(p);
}

static void test_free_null(void) {
    docauth_credentials_provider_free(NULL);
    docauth_credentials_free(NULL);
    CHECK_STR_EQ(docauth_result_name(DOCAUTH_RESULT_AWS_NO_CREDENTIALS), "DOCAUTH_RESULT_AWS_NO_CREDENTIALS");
    CHECK_STR_EQ(docauth_result_name(306), "DOCAUTH_RESULT_AWS_CREDENTIALS_SOURCE_FAILED");
}

/* ---------------------------------------------------------------------------------------
 * Against moto + the MONGODB-AWS verifier (tests/peers/with_moto.py). */

/* A DOCAUTH_TEST_* variable; a failed check (not a skip) when with_moto.py did not set it. */
static const char *test_env(const char *name) {
    const char *v = getenv(name);
    if (!check_report(v != NULL && v[0] != '\0', __FILE__, __LINE__, name))
        fprintf(stderr, "    %s is not set: run under tests/peers/with_moto.py (make test-c)\n", name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

typedef struct http_reply {
    int status;               /* 0: no HTTP answer */
    char conversation_id[128]; /* X-Conversation-Id, "" when absent */
    uint8_t *body;            /* malloc'd, NUL-terminated (not counted in body_len) */
    size_t body_len;
} http_reply;

static int header_is(const char *line, size_t len, const char *name) {
    size_t n = strlen(name);
    if (len <= n || line[n] != ':') return 0;
    for (size_t i = 0; i < n; i++) {
        char c = line[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != name[i]) return 0;
    }
    return 1;
}

/* POST `body` to base_url ("http://127.0.0.1:PORT") + path over loopback, HTTP/1.1 with
 * Connection: close, and read the whole reply. */
static http_reply http_post(const char *base_url, const char *path, const uint8_t *body, size_t len) {
    http_reply r;
    memset(&r, 0, sizeof r);
    char host[64];
    int port = 0;
    if (sscanf(base_url, "http://%63[^:/]:%d", host, &port) != 2 || port <= 0) return r;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return r;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return r;
    }
    char head[512];
    int n = snprintf(head, sizeof head,
                     "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/octet-stream\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     path, host, port, len);
    if (n <= 0 || (size_t)n >= sizeof head || write(fd, head, (size_t)n) != n ||
        (len > 0 && write(fd, body, len) != (ssize_t)len)) {
        close(fd);
        return r;
    }
    size_t cap = 4096, got = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (buf == NULL) break;
        if (cap - got < 1024) {
            char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL) break;
            buf = bigger;
            cap *= 2;
        }
        ssize_t k = read(fd, buf + got, cap - got - 1);
        if (k <= 0) break;
        got += (size_t)k;
    }
    close(fd);
    if (buf == NULL) return r;
    buf[got] = '\0';
    char *end = strstr(buf, "\r\n\r\n");
    if (end == NULL || sscanf(buf, "HTTP/%*d.%*d %d", &r.status) != 1) {
        free(buf);
        r.status = 0;
        return r;
    }
    for (char *line = strstr(buf, "\r\n") + 2; line < end;) {
        char *eol = strstr(line, "\r\n");
        size_t line_len = (size_t)(eol - line);
        if (header_is(line, line_len, "x-conversation-id")) {
            const char *v = line + strlen("x-conversation-id:");
            while (*v == ' ') v++;
            size_t v_len = (size_t)(eol - v);
            if (v_len < sizeof r.conversation_id) {
                memcpy(r.conversation_id, v, v_len);
                r.conversation_id[v_len] = '\0';
            }
        }
        line = eol + 2;
    }
    r.body_len = got - (size_t)(end + 4 - buf);
    r.body = malloc(r.body_len + 1);
    if (r.body != NULL) {
        memcpy(r.body, end + 4, r.body_len);
        r.body[r.body_len] = '\0';
    }
    free(buf);
    return r;
}

/* One MONGODB-AWS conversation signed with `c`, verified by the verifier (and so by moto's
 * STS). Returns the /sasl/finish reply (status 200 + {"arn": ...} when moto accepted it). */
static http_reply authenticate(const char *verifier, const docauth_credentials *c) {
    http_reply none;
    memset(&none, 0, sizeof none);
    docauth_aws_conversation *conv = NULL;
    docauth_bytes *first = NULL, *final_msg = NULL;
    CHECK_INT_EQ(docauth_aws_conversation_new(c, &conv, NULL), DOCAUTH_RESULT_OK);
    if (conv == NULL) return none;
    CHECK_INT_EQ(docauth_aws_conversation_client_first(conv, &first, NULL), DOCAUTH_RESULT_OK);
    if (first == NULL) {
        docauth_aws_conversation_free(conv);
        return none;
    }
    http_reply server_first = http_post(verifier, "/sasl/start", docauth_bytes_data(first), docauth_bytes_len(first));
    docauth_bytes_free(first);
    CHECK_INT_EQ(server_first.status, 200);
    CHECK(server_first.conversation_id[0] != '\0');
    http_reply finish = none;
    if (server_first.status == 200 && server_first.body != NULL) {
        docauth_error *err = NULL;
        CHECK_INT_EQ(docauth_aws_conversation_client_final(conv, server_first.body, server_first.body_len,
                                                           &final_msg, &err),
                     DOCAUTH_RESULT_OK);
        if (err != NULL) fprintf(stderr, "    client_final: %s\n", docauth_error_message(err));
        docauth_error_free(err);
        if (final_msg != NULL) {
            char path[256];
            snprintf(path, sizeof path, "/sasl/finish?conversation=%s", server_first.conversation_id);
            finish = http_post(verifier, path, docauth_bytes_data(final_msg), docauth_bytes_len(final_msg));
            docauth_bytes_free(final_msg);
        }
    }
    free(server_first.body);
    docauth_aws_conversation_free(conv);
    return finish;
}

static void test_resolve_and_sign_against_moto(void) {
    const char *sts = test_env("DOCAUTH_TEST_STS_ENDPOINT");
    const char *verifier = test_env("DOCAUTH_TEST_VERIFIER_URL");
    const char *akid = test_env("DOCAUTH_TEST_AWS_ACCESS_KEY_ID");
    const char *secret = test_env("DOCAUTH_TEST_AWS_SECRET_ACCESS_KEY");
    const char *role_arn = test_env("DOCAUTH_TEST_ROLE_ARN");
    const char *account = test_env("DOCAUTH_TEST_AWS_ACCOUNT_ID");
    if (!sts || !verifier || !akid || !secret || !role_arn || !account) return;

    /* No account_id: the name becomes an ARN through GetCallerIdentity. */
    char config[1024];
    snprintf(config, sizeof config,
             "{\"source\": {\"type\": \"static\", \"access_key_id\": \"%s\", \"secret_access_key\": \"%s\"},"
             " \"region\": \"us-east-1\", \"sts_endpoint\": \"%s\","
             " \"connect_timeout_ms\": 2000, \"operation_timeout_ms\": 20000}",
             akid, secret, sts);
    docauth_credentials_provider *p = NULL;
    docauth_error *err = NULL;
    CHECK_INT_EQ(docauth_credentials_provider_new(config, &p, &err), DOCAUTH_RESULT_OK);
    if (p == NULL) {
        fprintf(stderr, "    %s\n", docauth_error_message(err));
        docauth_error_free(err);
        return;
    }

    docauth_credentials *by_name = NULL, *by_arn = NULL;
    CHECK_INT_EQ(docauth_credentials_provider_resolve(p, "teleport-docdb-user", "c-test", &by_name, &err),
                 DOCAUTH_RESULT_OK);
    if (err != NULL) fprintf(stderr, "    resolve by name: %s\n", docauth_error_message(err));
    docauth_error_free(err);
    err = NULL;
    CHECK_INT_EQ(docauth_credentials_provider_resolve(p, role_arn, "c-test", &by_arn, &err), DOCAUTH_RESULT_OK);
    if (err != NULL) fprintf(stderr, "    resolve by ARN: %s\n", docauth_error_message(err));
    docauth_error_free(err);
    docauth_credentials_provider_free(p); /* the credentials stay usable */
    if (by_name == NULL || by_arn == NULL) {
        docauth_credentials_free(by_name);
        docauth_credentials_free(by_arn);
        return;
    }

    /* The assumed role's temporary key, not the service's own; the same cache entry. */
    const char *temp_akid = docauth_credentials_access_key_id(by_name);
    CHECK(strncmp(temp_akid, "ASIA", 4) == 0);
    CHECK(strcmp(temp_akid, akid) != 0);
    CHECK_STR_EQ(docauth_credentials_access_key_id(by_arn), temp_akid);
    CHECK_STR_LACKS(temp_akid, secret);
    /* STS's Expiration: about an hour from now (DurationSeconds 3600). */
    long long now = (long long)time(NULL), expiry = (long long)docauth_credentials_expiry(by_name);
    if (!CHECK(expiry > now + 3000 && expiry <= now + 3600 + 120))
        fprintf(stderr, "    expiry %lld, now %lld\n", expiry, now);
    CHECK_INT_EQ(docauth_credentials_expiry(by_arn), expiry);

    /* Signed with the resolved credentials, the conversation is accepted by moto's STS as
     * the assumed role's session. */
    char want_arn[256];
    snprintf(want_arn, sizeof want_arn, "arn:aws:sts::%s:assumed-role/teleport-docdb-user/c-test", account);
    http_reply ok = authenticate(verifier, by_arn);
    CHECK_INT_EQ(ok.status, 200);
    CHECK_STR_CONTAINS((const char *)ok.body, want_arn);
    free(ok.body);

    /* Same key id and a made-up secret and token: moto refuses, the verifier says 401. */
    docauth_credentials *forged = NULL;
    CHECK_INT_EQ(docauth_credentials_new(temp_akid, "wrongSECRETwrongSECRETwrongSECRET00000000",
                                         "FwoGZXIvYXdzEJr//////////wrongTOKEN", &forged, NULL),
                 DOCAUTH_RESULT_OK);
    if (forged != NULL) {
        http_reply refused = authenticate(verifier, forged);
        CHECK_INT_EQ(refused.status, 401);
        CHECK_STR_LACKS((const char *)(refused.body != NULL ? refused.body : (uint8_t *)""), want_arn);
        free(refused.body);
        docauth_credentials_free(forged);
    }
    docauth_credentials_free(by_name);
    docauth_credentials_free(by_arn);
}

static void test_credentials_accessors(void) {
    docauth_credentials *c = NULL;
    CHECK_INT_EQ(docauth_credentials_new("AKIAIOSFODNN7EXAMPLE", SECRET, NULL, &c, NULL), DOCAUTH_RESULT_OK);
    CHECK_STR_EQ(docauth_credentials_access_key_id(c), "AKIAIOSFODNN7EXAMPLE");
    CHECK_INT_EQ(docauth_credentials_expiry(c), 0); /* long-term: no expiry */
    docauth_credentials_free(c);
    CHECK_STR_EQ(docauth_credentials_access_key_id(NULL), "");
    CHECK_INT_EQ(docauth_credentials_expiry(NULL), 0);
}

int main(void) {
    RUN(test_configuration_errors);
    RUN(test_resolve);
    RUN(test_free_null);
    RUN(test_credentials_accessors);
    RUN(test_resolve_and_sign_against_moto);
    return check_summary();
}
