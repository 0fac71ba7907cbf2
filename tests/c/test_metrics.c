/*
 * The metrics C ABI from C: docauth_metrics_render over a runtime, an engine and a
 * credentials provider after two real sessions (one whose database refuses the connection,
 * one the policy denies at connection level), counted exactly; both formats and their
 * content types; any handle NULL; a bad format and a NULL out-parameter refused. Runs under
 * ASan+UBSan and valgrind via `make test-c`.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "docauth.h"

static const char *const check_secrets[] = {"metrics-secret", NULL};

static const char ENGINE_CONFIG[] =
    "roles:\n"
    "  - {kind: role, version: v7, metadata: {name: access}, spec: {allow: {db_labels: {'*': '*'},"
    " db_users: ['*'], db_names: [test]}}}\n"
    "databases:\n"
    "  - {name: my-docdb, labels: {env: test}}\n";

/* The rendered text as a NUL-terminated string the caller frees with free(). */
static char *render(const docauth_runtime *rt, const docauth_engine *e,
                    const docauth_credentials_provider *p, docauth_metrics_format format) {
    docauth_bytes *out = NULL;
    docauth_error *err = NULL;
    CHECK_INT_EQ(docauth_metrics_render(rt, e, p, format, &out, &err), DOCAUTH_RESULT_OK);
    CHECK(err == NULL);
    size_t len = docauth_bytes_len(out);
    char *text = malloc(len + 1);
    if (len > 0) memcpy(text, docauth_bytes_data(out), len);
    text[len] = '\0';
    docauth_bytes_free(out);
    return text;
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

/* One session for db name `db_name` towards a refused port; returns how it ended. */
static docauth_result run_session(docauth_runtime *rt, docauth_engine *e, docauth_credentials_provider *p,
                                  const char *db_name) {
    int pair[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0);
    close(pair[0]); /* the client leaves at once: nobody waits for an explanation */
    char params[512];
    snprintf(params, sizeof params,
             "{\"identity\": {\"user\": \"alice\", \"roles\": [\"access\"]}, \"database\": \"my-docdb\","
             " \"database_uri\": \"mongodb://127.0.0.1:%d/?tls=false\","
             " \"db_user\": \"teleport-docdb-user\", \"db_name\": \"%s\", \"connect_timeout_ms\": 2000}",
             refused_port(), db_name);
    docauth_session *session = NULL;
    CHECK_INT_EQ(docauth_session_start(rt, pair[1], params, e, p, NULL, NULL, NULL, &session, NULL),
                 DOCAUTH_RESULT_OK);
    docauth_result r = docauth_session_wait(session, NULL, NULL);
    docauth_session_free(session);
    return r;
}

static void test_two_sessions_counted_exactly(void) {
    docauth_runtime *rt = NULL;
    docauth_engine *e = NULL;
    docauth_credentials_provider *p = NULL;
    CHECK_INT_EQ(docauth_runtime_new(1, &rt, NULL), DOCAUTH_RESULT_OK);
    CHECK_INT_EQ(docauth_engine_new(ENGINE_CONFIG, &e, NULL), DOCAUTH_RESULT_OK);
    CHECK_INT_EQ(docauth_credentials_provider_new(
                     "{\"source\": {\"type\": \"static\", \"access_key_id\": \"AKIDMETRICS\","
                     " \"secret_access_key\": \"metrics-secret\"}, \"region\": \"us-east-1\","
                     " \"sts_endpoint\": \"http://127.0.0.1:9\"}",
                     &p, NULL),
                 DOCAUTH_RESULT_OK);

    CHECK_INT_EQ(run_session(rt, e, p, "test"), DOCAUTH_RESULT_CONNECT_FAILED);
    CHECK_INT_EQ(run_session(rt, e, p, "admin"), DOCAUTH_RESULT_SESSION_ACCESS_DENIED);

    char *text = render(rt, e, p, DOCAUTH_METRICS_FORMAT_PROMETHEUS);
    CHECK_STR_CONTAINS(text, "# TYPE docauth_sessions_started_total counter\n");
    CHECK_STR_CONTAINS(text, "\ndocauth_sessions_started_total 2\n");
    CHECK_STR_CONTAINS(text, "\ndocauth_sessions_active 0\n");
    CHECK_STR_CONTAINS(text, "\ndocauth_sessions_ended_total{reason=\"upstream_failed\"} 1\n");
    CHECK_STR_CONTAINS(text, "\ndocauth_sessions_ended_total{reason=\"access_denied\"} 1\n");
    CHECK_STR_CONTAINS(text, "\ndocauth_sessions_ended_total{reason=\"client_closed\"} 0\n");
    CHECK_STR_CONTAINS(text, "\ndocauth_upstream_failures_total{kind=\"connect_failed\"} 1\n");
    CHECK_STR_CONTAINS(text, "\ndocauth_upstream_phase_duration_seconds_count{phase=\"connect\"} 0\n");
    CHECK_STR_CONTAINS(text, "\ndocauth_policy_decisions_total{outcome=\"allowed\"} 1\n");
    CHECK_STR_CONTAINS(text, "\ndocauth_policy_decisions_total{outcome=\"denied\"} 1\n");
    CHECK_STR_CONTAINS(text, "\ndocauth_policy_cache_misses_total 2\n");
    CHECK_STR_CONTAINS(text, "\ndocauth_policy_decision_duration_seconds_count 2\n");
    CHECK_STR_CONTAINS(text, "\ndocauth_sts_calls_total{operation=\"AssumeRole\",outcome=\"ok\"} 0\n");
    CHECK_STR_CONTAINS(text, "\ndocauth_credentials_served_from_cache_total 0\n");
    CHECK_STR_LACKS(text, "# EOF");
    CHECK_STR_LACKS(text, "metrics-secret");
    CHECK_STR_LACKS(text, "AKIDMETRICS");
    free(text);

    text = render(rt, NULL, NULL, DOCAUTH_METRICS_FORMAT_OPENMETRICS);
    CHECK_STR_CONTAINS(text, "# TYPE docauth_sessions_started counter\n");
    CHECK_STR_CONTAINS(text, "# UNIT docauth_relayed_bytes bytes\n");
    CHECK_STR_LACKS(text, "docauth_policy_");
    CHECK_STR_LACKS(text, "docauth_sts_");
    CHECK(strlen(text) >= 6 && strcmp(text + strlen(text) - 6, "# EOF\n") == 0);
    free(text);

    docauth_credentials_provider_free(p);
    docauth_engine_free(e);
    docauth_runtime_free(rt);
}

static void test_nothing_bad_formats_and_null_out(void) {
    char *text = render(NULL, NULL, NULL, DOCAUTH_METRICS_FORMAT_PROMETHEUS);
    CHECK_STR_EQ(text, "");
    free(text);
    text = render(NULL, NULL, NULL, DOCAUTH_METRICS_FORMAT_OPENMETRICS);
    CHECK_STR_EQ(text, "# EOF\n");
    free(text);

    docauth_bytes *out = NULL;
    docauth_error *err = NULL;
    CHECK_FAILS(docauth_metrics_render(NULL, NULL, NULL, 2, &out, &err), err,
                DOCAUTH_RESULT_INVALID_ARGUMENT, "DOCAUTH_METRICS_FORMAT_OPENMETRICS");
    CHECK(out == NULL);
    CHECK_FAILS(docauth_metrics_render(NULL, NULL, NULL, DOCAUTH_METRICS_FORMAT_PROMETHEUS, NULL, &err), err,
                DOCAUTH_RESULT_NULL_PARAMETER, "out");
    /* err may be NULL too. */
    CHECK_INT_EQ(docauth_metrics_render(NULL, NULL, NULL, 99, &out, NULL), DOCAUTH_RESULT_INVALID_ARGUMENT);

    CHECK_STR_EQ(docauth_metrics_content_type(DOCAUTH_METRICS_FORMAT_PROMETHEUS),
                 "text/plain; version=0.0.4; charset=utf-8");
    CHECK_STR_EQ(docauth_metrics_content_type(DOCAUTH_METRICS_FORMAT_OPENMETRICS),
                 "application/openmetrics-text; version=1.0.0; charset=utf-8");
    CHECK(docauth_metrics_content_type(2) == NULL);
}

int main(void) {
    RUN(test_two_sessions_counted_exactly);
    RUN(test_nothing_bad_formats_and_null_out);
    return check_summary();
}
