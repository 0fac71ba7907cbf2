/*
 * The session C ABI from C: runtime lifecycle, a session on a Unix socketpair whose database
 * refuses the connection (the outcome and the audit events), a session the policy engine
 * denies at connection level (code 13 to the client, SESSION_ACCESS_DENIED, no database
 * contacted), parameter errors, ownership of the fd and of user_data (freed exactly once,
 * also on failure). Runs under ASan+UBSan and valgrind via `make test-c`.
 */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "docauth.h"

typedef struct host_state {
    pthread_mutex_t lock;
    int events;
    int start_failures;
    int ends;
    int frees;
} host_state;

static void on_event(void *user_data, const char *json, size_t len) {
    host_state *s = user_data;
    pthread_mutex_lock(&s->lock);
    s->events++;
    if (strstr(json, "\"db.session.start\"") && strstr(json, "\"success\":false")) s->start_failures++;
    if (strstr(json, "\"db.session.end\"")) s->ends++;
    pthread_mutex_unlock(&s->lock);
    (void)len;
}

static void free_state(void *user_data) {
    host_state *s = user_data;
    pthread_mutex_lock(&s->lock);
    s->frees++;
    pthread_mutex_unlock(&s->lock);
}

static const char ENGINE_CONFIG[] =
    "roles:\n"
    "  - {kind: role, version: v7, metadata: {name: access}, spec: {allow: {db_labels: {'*': '*'},"
    " db_users: ['*'], db_names: [test]}}}\n"
    "databases:\n"
    "  - {name: my-docdb, labels: {env: test}}\n";

static docauth_engine *engine(void) {
    docauth_engine *e = NULL;
    CHECK_INT_EQ(docauth_engine_new(ENGINE_CONFIG, &e, NULL), DOCAUTH_RESULT_OK);
    return e;
}

/* A provider whose STS endpoint is never reached in these tests. */
static docauth_credentials_provider *provider(void) {
    docauth_credentials_provider *p = NULL;
    CHECK_INT_EQ(docauth_credentials_provider_new(
                     "{\"source\": {\"type\": \"static\", \"access_key_id\": \"AKIDSESSIONC\","
                     " \"secret_access_key\": \"secret\"}, \"region\": \"us-east-1\","
                     " \"sts_endpoint\": \"http://127.0.0.1:9\"}",
                     &p, NULL),
                 DOCAUTH_RESULT_OK);
    return p;
}

/* A loopback port where nothing listens. */
static int refused_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

static void test_runtime_lifecycle(void) {
    docauth_runtime *rt = NULL;
    CHECK_INT_EQ(docauth_runtime_new(1, &rt, NULL), DOCAUTH_RESULT_OK);
    CHECK(rt != NULL);
    CHECK(docauth_runtime_audit_dropped(rt) == 0);
    docauth_runtime_free(rt);
    docauth_runtime_free(NULL);
    docauth_error *err = NULL;
    CHECK_INT_EQ(docauth_runtime_new(1, NULL, &err), DOCAUTH_RESULT_NULL_PARAMETER);
    docauth_error_free(err);
    CHECK_INT_EQ(docauth_runtime_new(100000, &rt, NULL), DOCAUTH_RESULT_INVALID_ARGUMENT);
    /* The session cap: at least 1; NULL runtime refused. */
    CHECK_INT_EQ(docauth_runtime_new(1, &rt, NULL), DOCAUTH_RESULT_OK);
    err = NULL;
    CHECK_INT_EQ(docauth_runtime_set_max_sessions(rt, 0, &err), DOCAUTH_RESULT_INVALID_ARGUMENT);
    CHECK(err != NULL && docauth_error_code(err) == DOCAUTH_RESULT_INVALID_ARGUMENT);
    docauth_error_free(err);
    CHECK_INT_EQ(docauth_runtime_set_max_sessions(rt, 100, NULL), DOCAUTH_RESULT_OK);
    CHECK_INT_EQ(docauth_runtime_set_max_sessions(NULL, 100, NULL), DOCAUTH_RESULT_NULL_PARAMETER);
    docauth_runtime_free(rt);
}

/* Starts a session on `fd` for alice as db user teleport-docdb-user with logical database
 * `db_name`, towards a refused port; the engine and provider handles are released at once
 * (the session keeps its own references). */
static docauth_session *start_session_to_refused_port(docauth_runtime *rt, int fd, const char *db_name,
                                                      host_state *state) {
    docauth_engine *e = engine();
    docauth_credentials_provider *p = provider();
    char params[512];
    snprintf(params, sizeof params,
             "{\"identity\": {\"user\": \"alice\", \"roles\": [\"access\"]}, \"database\": \"my-docdb\","
             " \"database_uri\": \"mongodb://127.0.0.1:%d/?tls=false\","
             " \"db_user\": \"teleport-docdb-user\", \"db_name\": \"%s\", \"connect_timeout_ms\": 2000}",
             refused_port(), db_name);
    docauth_session *session = NULL;
    docauth_error *err = NULL;
    CHECK_INT_EQ(docauth_session_start(rt, fd, params, e, p, on_event, state, free_state, &session, &err),
                 DOCAUTH_RESULT_OK);
    docauth_error_free(err);
    docauth_engine_free(e);
    docauth_credentials_provider_free(p);
    return session;
}

static void test_refused_database_over_a_unix_socketpair(void) {
    docauth_runtime *rt = NULL;
    CHECK_INT_EQ(docauth_runtime_new(1, &rt, NULL), DOCAUTH_RESULT_OK);
    int pair[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0);
    host_state state = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0};
    docauth_session *session = start_session_to_refused_port(rt, pair[1], "test", &state);
    docauth_error *err = NULL;
    docauth_session_stats stats;
    memset(&stats, 0xff, sizeof stats);
    CHECK_INT_EQ(docauth_session_wait(session, &stats, &err), DOCAUTH_RESULT_CONNECT_FAILED);
    CHECK(stats.messages_from_client == UINT64_MAX); /* untouched on failure */
    CHECK_STR_CONTAINS(docauth_error_message(err), "127.0.0.1:");
    CHECK_STR_CONTAINS(docauth_error_message(err), "security group");
    docauth_error_free(err);
    CHECK(docauth_session_is_finished(session));
    docauth_session_shutdown(session); /* harmless after the end */
    docauth_session_free(session);
    docauth_runtime_free(rt); /* delivers the queued events, stops the dispatcher */
    CHECK_INT_EQ(state.start_failures, 1);
    CHECK_INT_EQ(state.ends, 1);
    CHECK_INT_EQ(state.frees, 1);
    /* The library closed its end. */
    char b;
    CHECK(read(pair[0], &b, 1) == 0);
    close(pair[0]);
}

/* OP_MSG {hello: 1, $db: "admin"}, requestID 7. */
static const unsigned char HELLO[] = {
    0x34, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0xdd, 0x07, 0, 0, /* header: 52 bytes, OP_MSG */
    0, 0, 0, 0, 0,                                           /* flags, body section */
    0x1f, 0, 0, 0,                                           /* document: 31 bytes */
    0x10, 'h', 'e', 'l', 'l', 'o', 0, 1, 0, 0, 0,            /* hello: int32 1 */
    0x02, '$', 'd', 'b', 0, 6, 0, 0, 0, 'a', 'd', 'm', 'i', 'n', 0, /* $db: "admin" */
    0};

static void test_connection_level_deny(void) {
    docauth_runtime *rt = NULL;
    CHECK_INT_EQ(docauth_runtime_new(1, &rt, NULL), DOCAUTH_RESULT_OK);
    int pair[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0);
    host_state state = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0};
    /* The role allows db name "test" only; the session asks for "admin". */
    docauth_session *session = start_session_to_refused_port(rt, pair[1], "admin", &state);
    docauth_error *err = NULL;
    CHECK(write(pair[0], HELLO, sizeof HELLO) == (ssize_t)sizeof HELLO);
    unsigned char reply[4096];
    size_t got = 0;
    for (;;) {
        ssize_t n = read(pair[0], reply + got, sizeof reply - got);
        if (n <= 0) break;
        got += (size_t)n;
    }
    CHECK(got > 21);
    CHECK(memcmp(reply + 8, "\x07\0\0\0", 4) == 0); /* responseTo = 7 */
    CHECK(memmem(reply, got, "Unauthorized", 12) != NULL);
    CHECK(memmem(reply, got, "\"admin\"", 7) != NULL);
    CHECK_INT_EQ(docauth_session_wait(session, NULL, &err), DOCAUTH_RESULT_SESSION_ACCESS_DENIED);
    CHECK_STR_CONTAINS(docauth_error_message(err), "db_names");
    CHECK_STR_CONTAINS(docauth_error_message(err), "\"admin\"");
    CHECK_STR_CONTAINS(docauth_result_name(DOCAUTH_RESULT_SESSION_ACCESS_DENIED), "SESSION_ACCESS_DENIED");
    docauth_error_free(err);
    docauth_session_free(session);
    docauth_runtime_free(rt);
    CHECK_INT_EQ(state.start_failures, 1);
    CHECK_INT_EQ(state.ends, 1);
    CHECK_INT_EQ(state.frees, 1);
    close(pair[0]);
}

static void test_failed_start_owns_fd_and_user_data(void) {
    docauth_runtime *rt = NULL;
    CHECK_INT_EQ(docauth_runtime_new(1, &rt, NULL), DOCAUTH_RESULT_OK);
    docauth_engine *e = engine();
    docauth_credentials_provider *p = provider();
    const char *bad[] = {
        "{",
        "{\"identity\": {\"user\": \"a\"}, \"database\": \"my-docdb\", \"database_uri\": \"mongodb://h\","
        " \"db_user\": \"u\", \"typo\": 1}",
        "{\"identity\": {\"user\": \"a\"}, \"database\": \"my-docdb\", \"database_uri\": \"http://h\","
        " \"db_user\": \"u\"}",
        "{\"identity\": {\"user\": \"a\"}, \"database\": \"nowhere\", \"database_uri\": \"mongodb://h\","
        " \"db_user\": \"u\"}",
    };
    const docauth_result want[] = {DOCAUTH_RESULT_INVALID_CONFIG, DOCAUTH_RESULT_INVALID_CONFIG,
                                   DOCAUTH_RESULT_DATABASE_URI_INVALID, DOCAUTH_RESULT_INVALID_CONFIG};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int pair[2];
        CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0);
        host_state state = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0};
        docauth_session *session = (docauth_session *)0x1;
        docauth_error *err = NULL;
        CHECK_INT_EQ(docauth_session_start(rt, pair[1], bad[i], e, p, on_event, &state, free_state, &session, &err),
                     want[i]);
        CHECK(session == (docauth_session *)0x1);
        CHECK_INT_EQ(docauth_error_code(err), want[i]);
        docauth_error_free(err);
        CHECK_INT_EQ(state.frees, 1);
        char b;
        CHECK(read(pair[0], &b, 1) == 0);
        close(pair[0]);
    }
    /* NULL parameters are named; the fd is still taken. */
    int pair[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0);
    docauth_session *session = NULL;
    docauth_error *err = NULL;
    CHECK_INT_EQ(docauth_session_start(NULL, pair[1], "{}", e, p, NULL, NULL, NULL, &session, &err),
                 DOCAUTH_RESULT_NULL_PARAMETER);
    CHECK_STR_CONTAINS(docauth_error_message(err), "runtime");
    docauth_error_free(err);
    char b;
    CHECK(read(pair[0], &b, 1) == 0);
    close(pair[0]);
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0);
    CHECK_INT_EQ(docauth_session_start(rt, pair[1], "{}", NULL, p, NULL, NULL, NULL, &session, &err),
                 DOCAUTH_RESULT_NULL_PARAMETER);
    CHECK_STR_CONTAINS(docauth_error_message(err), "engine");
    docauth_error_free(err);
    CHECK(read(pair[0], &b, 1) == 0);
    close(pair[0]);
    docauth_session_free(NULL);
    docauth_session_shutdown(NULL);
    CHECK(!docauth_session_is_finished(NULL));
    CHECK(docauth_session_audit_dropped(NULL) == 0);
    docauth_engine_free(e);
    docauth_credentials_provider_free(p);
    docauth_runtime_free(rt);
}

int main(void) {
    RUN(test_runtime_lifecycle);
    RUN(test_refused_database_over_a_unix_socketpair);
    RUN(test_connection_level_deny);
    RUN(test_failed_start_owns_fd_and_user_data);
    return check_summary();
}
