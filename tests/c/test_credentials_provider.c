/*
 * The credentials provider's C ABI as a C program sees it (make test-c: ASan + UBSan, then
 * valgrind): configuration errors with the field named, NULL and invalid UTF-8 arguments,
 * out-params untouched on failure, db user refused before any network call, an unreachable
 * STS endpoint reported with the endpoint and the timeout, no secret in any message,
 * invalidate and _free(NULL). No peer is needed: the STS endpoint is a closed loopback port.
 * Resolution against moto (and signing with the result) is tested in Rust, Python and Go.
 */
#include <docauth.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

static int sentinel_storage;
#define SENTINEL ((void *)&sentinel_storage)

#define CHECK_FAILS(call_result, err, want, needle)                                          \
    do {                                                                                     \
        docauth_result got_ = (call_result);                                                 \
        if (!check_report(got_ == (want), __FILE__, __LINE__, #call_result " -> " #want))    \
            fprintf(stderr, "    got %s (%d): %s\n", docauth_result_name((uint32_t)got_),    \
                    (int)got_, docauth_error_message(err));                                  \
        CHECK((err) != NULL);                                                                \
        CHECK_INT_EQ(docauth_error_code(err), (want));                                       \
        if ((needle) != NULL) CHECK_STR_CONTAINS(docauth_error_message(err), (const char *)(needle)); \
        CHECK_STR_LACKS(docauth_error_message(err), SECRET);                                 \
        docauth_error_free(err);                                                             \
        (err) = NULL;                                                                        \
    } while (0)

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

int main(void) {
    RUN(test_configuration_errors);
    RUN(test_resolve);
    RUN(test_free_null);
    return check_summary();
}
