/*
 * The session C ABI from C: runtime lifecycle, a session on a Unix socketpair whose database
 * refuses the connection (the outcome and the audit events), parameter errors, ownership of
 * the fd and of user_data (freed exactly once, also on failure). Runs under ASan+UBSan and
 * valgrind via `make test-c`.
 */
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

static docauth_credentials *credentials(void) {
    docauth_credentials *c = NULL;
    CHECK_INT_EQ(docauth_credentials_new("AKIDSESSIONC", "secret", NULL, &c, NULL), DOCAUTH_RESULT_OK);
    return c;
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
}

static void test_refused_database_over_a_unix_socketpair(void) {
    docauth_runtime *rt = NULL;
    CHECK_INT_EQ(docauth_runtime_new(1, &rt, NULL), DOCAUTH_RESULT_OK);
    docauth_credentials *creds = credentials();
    int pair[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0);
    char params[512];
    snprintf(params, sizeof params,
             "{\"identity\": {\"user\": \"alice\"}, \"database_uri\": \"mongodb://127.0.0.1:%d/?tls=false\","
             " \"db_user\": \"teleport-docdb-user\", \"connect_timeout_ms\": 2000}",
             refused_port());
    host_state state = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0};
    docauth_session *session = NULL;
    docauth_error *err = NULL;
    CHECK_INT_EQ(docauth_session_start(rt, pair[1], params, creds, on_event, &state, free_state, &session, &err),
                 DOCAUTH_RESULT_OK);
    docauth_credentials_free(creds); /* the session keeps its own reference */
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

static void test_failed_start_owns_fd_and_user_data(void) {
    docauth_runtime *rt = NULL;
    CHECK_INT_EQ(docauth_runtime_new(1, &rt, NULL), DOCAUTH_RESULT_OK);
    docauth_credentials *creds = credentials();
    const char *bad[] = {
        "{",
        "{\"identity\": {\"user\": \"a\"}, \"database_uri\": \"mongodb://h\", \"db_user\": \"u\", \"typo\": 1}",
        "{\"identity\": {\"user\": \"a\"}, \"database_uri\": \"http://h\", \"db_user\": \"u\"}",
    };
    const docauth_result want[] = {DOCAUTH_RESULT_INVALID_CONFIG, DOCAUTH_RESULT_INVALID_CONFIG,
                                   DOCAUTH_RESULT_DATABASE_URI_INVALID};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int pair[2];
        CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0);
        host_state state = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0};
        docauth_session *session = (docauth_session *)0x1;
        docauth_error *err = NULL;
        CHECK_INT_EQ(docauth_session_start(rt, pair[1], bad[i], creds, on_event, &state, free_state, &session, &err),
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
    CHECK_INT_EQ(docauth_session_start(NULL, pair[1], "{}", creds, NULL, NULL, NULL, &session, &err),
                 DOCAUTH_RESULT_NULL_PARAMETER);
    CHECK_STR_CONTAINS(docauth_error_message(err), "runtime");
    docauth_error_free(err);
    char b;
    CHECK(read(pair[0], &b, 1) == 0);
    close(pair[0]);
    docauth_session_free(NULL);
    docauth_session_shutdown(NULL);
    CHECK(!docauth_session_is_finished(NULL));
    CHECK(docauth_session_audit_dropped(NULL) == 0);
    docauth_credentials_free(creds);
    docauth_runtime_free(rt);
}

int main(void) {
    RUN(test_runtime_lifecycle);
    RUN(test_refused_database_over_a_unix_socketpair);
    RUN(test_failed_start_owns_fd_and_user_data);
    return check_summary();
}
