/*
 * The C ABI of libdocauth as a C program sees it: built against the committed
 * include/docauth.h with -std=c11 -Wall -Wextra -Werror, run under ASan + UBSan and again
 * under valgrind (make test-c). Covers the general conventions (version, result names,
 * error and byte-buffer accessors, _free(NULL)), the credentials constructor's argument
 * checks, and the MONGODB-AWS conversation: payload shapes, every server-first validation
 * failure with its own code, a deterministic success, and the order rules.
 */
#include <docauth.h>

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#ifndef DOCAUTH_VERSION_EXPECTED
#error "compile with -DDOCAUTH_VERSION_EXPECTED='\"x.y.z\"' (the Makefile passes Cargo.toml's version)"
#endif

/* Example credentials from the AWS documentation; never real. */
#define AKID "AKIAIOSFODNN7EXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define TOKEN "IQoJb3JpZ2luX2VjEXAMPLE/session+token=="

/* A value no library call writes: out-params must keep it when a call fails. */
static int sentinel_storage;
#define SENTINEL ((void *)&sentinel_storage)

/* --------------------------------------------------------------------------------------
 * Error checking */

static const char *const check_secrets[] = {SECRET, TOKEN, NULL};

#define CHECK_OK(call_result, err)                                                           \
    do {                                                                                     \
        docauth_result got_ = (call_result);                                                 \
        if (!check_report(got_ == DOCAUTH_RESULT_OK, __FILE__, __LINE__, #call_result " -> OK")) \
            fprintf(stderr, "    got %s: %s\n", docauth_result_name((uint32_t)got_),         \
                    docauth_error_message(err));                                             \
        CHECK((err) == NULL);                                                                \
        docauth_error_free(err);                                                             \
        (err) = NULL;                                                                        \
    } while (0)

/* --------------------------------------------------------------------------------------
 * Minimal BSON: enough to build server-first messages and read the client payloads. */

typedef struct {
    uint8_t data[1024];
    size_t len;
} bson_buf;

static void put_i32(uint8_t *p, int32_t v) {
    uint32_t u = (uint32_t)v;
    p[0] = (uint8_t)u;
    p[1] = (uint8_t)(u >> 8);
    p[2] = (uint8_t)(u >> 16);
    p[3] = (uint8_t)(u >> 24);
}

static int32_t get_i32(const uint8_t *p) {
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24);
}

static void bson_append(bson_buf *b, const void *data, size_t len) {
    if (b->len + len > sizeof b->data) {
        fprintf(stderr, "test BSON buffer too small\n");
        abort();
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

static void bson_begin(bson_buf *b) {
    b->len = 4; /* length prefix, written by bson_end */
}

static void bson_key(bson_buf *b, uint8_t type, const char *key) {
    bson_append(b, &type, 1);
    bson_append(b, key, strlen(key) + 1);
}

static void bson_binary(bson_buf *b, const char *key, const uint8_t *data, size_t len) {
    uint8_t header[5];
    bson_key(b, 0x05, key);
    put_i32(header, (int32_t)len);
    header[4] = 0x00; /* generic binary subtype */
    bson_append(b, header, sizeof header);
    bson_append(b, data, len);
}

static void bson_string(bson_buf *b, const char *key, const char *s) {
    uint8_t n[4];
    bson_key(b, 0x02, key);
    put_i32(n, (int32_t)(strlen(s) + 1));
    bson_append(b, n, 4);
    bson_append(b, s, strlen(s) + 1);
}

static void bson_int32(bson_buf *b, const char *key, int32_t v) {
    uint8_t n[4];
    bson_key(b, 0x10, key);
    put_i32(n, v);
    bson_append(b, n, 4);
}

static void bson_end(bson_buf *b) {
    uint8_t zero = 0;
    bson_append(b, &zero, 1);
    put_i32(b->data, (int32_t)b->len);
}

/* One element of a decoded document (pointers into the document). */
typedef struct {
    uint8_t type;
    const char *key;
    const uint8_t *value; /* binary: the data; string: the characters; int32: 4 bytes */
    size_t len;           /* binary: data length; string: length without the NUL */
    uint8_t subtype;      /* binary only */
} bson_elem;

/* Decodes a flat document of binary, string and int32 elements. Returns the number of
 * elements, or -1 when the bytes are not such a document. */
static int bson_parse(const uint8_t *doc, size_t len, bson_elem *elems, int max) {
    if (len < 5 || (size_t)get_i32(doc) != len || doc[len - 1] != 0) return -1;
    size_t pos = 4;
    int n = 0;
    while (pos < len - 1) {
        if (n == max) return -1;
        bson_elem *e = &elems[n++];
        e->type = doc[pos++];
        e->key = (const char *)doc + pos;
        const uint8_t *nul = memchr(doc + pos, 0, len - 1 - pos);
        if (nul == NULL) return -1;
        pos = (size_t)(nul - doc) + 1;
        if (len - 1 - pos < 4) return -1;
        int32_t n32 = get_i32(doc + pos);
        switch (e->type) {
        case 0x05: /* binary */
            if (n32 < 0 || len - 1 - pos < 5 + (size_t)n32) return -1;
            e->subtype = doc[pos + 4];
            e->value = doc + pos + 5;
            e->len = (size_t)n32;
            pos += 5 + (size_t)n32;
            break;
        case 0x02: /* string */
            if (n32 < 1 || len - 1 - pos < 4 + (size_t)n32 || doc[pos + 4 + (size_t)n32 - 1] != 0)
                return -1;
            e->value = doc + pos + 4;
            e->len = (size_t)n32 - 1;
            pos += 4 + (size_t)n32;
            break;
        case 0x10: /* int32 */
            e->value = doc + pos;
            e->len = 4;
            pos += 4;
            break;
        default:
            return -1;
        }
    }
    return pos == len - 1 ? n : -1;
}

static const bson_elem *bson_find(const bson_elem *elems, int n, const char *key) {
    for (int i = 0; i < n; i++)
        if (strcmp(elems[i].key, key) == 0) return &elems[i];
    return NULL;
}

/* --------------------------------------------------------------------------------------
 * Fixtures */

static const int64_t FIXED_TIME = 1700000000; /* 2023-11-14T22:13:20Z */

static void fixed_nonce(uint8_t nonce[32]) {
    for (int i = 0; i < 32; i++) nonce[i] = (uint8_t)(i * 7 + 1);
}

/* Server nonce: our 32 bytes then `extra` bytes of the server's. */
static void server_nonce(uint8_t *s, const uint8_t client[32], size_t total) {
    for (size_t i = 0; i < total; i++) s[i] = i < 32 ? client[i] : (uint8_t)(0xA0 + i);
}

static void make_server_first(bson_buf *b, const uint8_t *s, size_t s_len, const char *host) {
    bson_begin(b);
    bson_binary(b, "s", s, s_len);
    bson_string(b, "h", host);
    bson_end(b);
}

static docauth_credentials *new_credentials(const char *token) {
    docauth_credentials *creds = NULL;
    docauth_error *err = NULL;
    CHECK_OK(docauth_credentials_new(AKID, SECRET, token, &creds, &err), err);
    CHECK(creds != NULL);
    return creds;
}

/* A conversation with the fixed nonce and clock whose client-first was already sent. */
static docauth_aws_conversation *started_conversation(const char *token) {
    uint8_t nonce[32];
    fixed_nonce(nonce);
    docauth_credentials *creds = new_credentials(token);
    docauth_aws_conversation *conv = NULL;
    docauth_error *err = NULL;
    CHECK_OK(docauth_aws_conversation_new_for_testing(creds, nonce, sizeof nonce, FIXED_TIME,
                                                      &conv, &err),
             err);
    docauth_credentials_free(creds); /* the conversation keeps its own reference */
    docauth_bytes *first = NULL;
    CHECK_OK(docauth_aws_conversation_client_first(conv, &first, &err), err);
    docauth_bytes_free(first);
    return conv;
}

/* Runs client_final on a fresh started conversation; returns the result, *err set. */
static docauth_result final_with(const uint8_t *server_first, size_t len, docauth_bytes **out,
                                 docauth_error **err) {
    docauth_aws_conversation *conv = started_conversation(NULL);
    docauth_result r = docauth_aws_conversation_client_final(conv, server_first, len, out, err);
    docauth_aws_conversation_free(conv);
    return r;
}

/* Expects client_final on `server_first` to fail with `want` and leave out untouched. */
static void check_rejected(const uint8_t *server_first, size_t len, docauth_result want,
                           const char *needle) {
    docauth_bytes *out = SENTINEL;
    docauth_error *err = NULL;
    CHECK_FAILS(final_with(server_first, len, &out, &err), err, want, needle);
    CHECK(out == SENTINEL);
    /* Also without an error out-param: same code. */
    CHECK_INT_EQ(final_with(server_first, len, &out, NULL), want);
    CHECK(out == SENTINEL);
}

static void check_host_rejected(const char *host, docauth_result want) {
    uint8_t nonce[32], s[64];
    bson_buf b;
    fixed_nonce(nonce);
    server_nonce(s, nonce, sizeof s);
    make_server_first(&b, s, sizeof s, host);
    check_rejected(b.data, b.len, want, NULL);
}

/* --------------------------------------------------------------------------------------
 * General conventions */

static void test_version(void) {
    const char *v = docauth_version();
    CHECK_STR_EQ(v, DOCAUTH_VERSION_EXPECTED);
    CHECK(docauth_version() == v); /* static, same pointer every time */
}

static void test_result_names(void) {
    static const struct {
        docauth_result code;
        uint32_t number;
        const char *name;
    } known[] = {
        {DOCAUTH_RESULT_OK, 0, "DOCAUTH_RESULT_OK"},
        {DOCAUTH_RESULT_NULL_PARAMETER, 1, "DOCAUTH_RESULT_NULL_PARAMETER"},
        {DOCAUTH_RESULT_INVALID_UTF8, 2, "DOCAUTH_RESULT_INVALID_UTF8"},
        {DOCAUTH_RESULT_INVALID_CONFIG, 3, "DOCAUTH_RESULT_INVALID_CONFIG"},
        {DOCAUTH_RESULT_INVALID_ARGUMENT, 4, "DOCAUTH_RESULT_INVALID_ARGUMENT"},
        {DOCAUTH_RESULT_INVALID_STATE, 5, "DOCAUTH_RESULT_INVALID_STATE"},
        {DOCAUTH_RESULT_PANIC, 99, "DOCAUTH_RESULT_PANIC"},
        {DOCAUTH_RESULT_AWS_INVALID_CREDENTIALS, 100, "DOCAUTH_RESULT_AWS_INVALID_CREDENTIALS"},
        {DOCAUTH_RESULT_SASL_MALFORMED_SERVER_FIRST, 101,
         "DOCAUTH_RESULT_SASL_MALFORMED_SERVER_FIRST"},
        {DOCAUTH_RESULT_SASL_SERVER_NONCE_LENGTH, 102, "DOCAUTH_RESULT_SASL_SERVER_NONCE_LENGTH"},
        {DOCAUTH_RESULT_SASL_SERVER_NONCE_MISMATCH, 103,
         "DOCAUTH_RESULT_SASL_SERVER_NONCE_MISMATCH"},
        {DOCAUTH_RESULT_SASL_HOST_LENGTH, 104, "DOCAUTH_RESULT_SASL_HOST_LENGTH"},
        {DOCAUTH_RESULT_SASL_HOST_EMPTY_LABEL, 105, "DOCAUTH_RESULT_SASL_HOST_EMPTY_LABEL"},
        {DOCAUTH_RESULT_SASL_HOST_EDGE_DOT, 106, "DOCAUTH_RESULT_SASL_HOST_EDGE_DOT"},
        {DOCAUTH_RESULT_SIGNING_FAILED, 107, "DOCAUTH_RESULT_SIGNING_FAILED"},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        /* The numbers are ABI: pinned here independently of the header. */
        CHECK_INT_EQ((uint32_t)known[i].code, known[i].number);
        CHECK_STR_EQ(docauth_result_name(known[i].number), known[i].name);
    }
    static const uint32_t unknown[] = {999, 1000, 65536, 0x7fffffffu, 0xffffffffu};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        CHECK_STR_EQ(docauth_result_name(unknown[i]), "DOCAUTH_RESULT_UNKNOWN");
}

static void test_error_accessors_accept_null(void) {
    CHECK_INT_EQ(docauth_error_code(NULL), DOCAUTH_RESULT_NULL_PARAMETER);
    const char *message = docauth_error_message(NULL);
    CHECK(message != NULL);
    CHECK_STR_EQ(message, "");
    docauth_error_free(NULL);
}

static void test_bytes_accessors_accept_null(void) {
    CHECK(docauth_bytes_data(NULL) == NULL);
    CHECK_INT_EQ(docauth_bytes_len(NULL), 0);
    docauth_bytes_free(NULL);
}

static void test_every_free_accepts_null(void) {
    docauth_error_free(NULL);
    docauth_bytes_free(NULL);
    docauth_credentials_free(NULL);
    docauth_aws_conversation_free(NULL);
    CHECK(1); /* reaching here without a crash or sanitizer report is the test */
}

/* --------------------------------------------------------------------------------------
 * Credentials */

static void test_credentials_new_succeeds(void) {
    docauth_credentials *creds = NULL;
    docauth_error *err = NULL;
    CHECK_OK(docauth_credentials_new(AKID, SECRET, NULL, &creds, &err), err);
    CHECK(creds != NULL);
    docauth_credentials_free(creds);

    creds = NULL;
    CHECK_OK(docauth_credentials_new(AKID, SECRET, TOKEN, &creds, &err), err);
    CHECK(creds != NULL);
    docauth_credentials_free(creds);

    /* err may be NULL on success too. */
    creds = NULL;
    CHECK_INT_EQ(docauth_credentials_new(AKID, SECRET, NULL, &creds, NULL), DOCAUTH_RESULT_OK);
    CHECK(creds != NULL);
    docauth_credentials_free(creds);
}

static void check_credentials_rejected(const char *akid, const char *secret, const char *token,
                                       docauth_result want, const char *needle) {
    docauth_credentials *creds = SENTINEL;
    docauth_error *err = NULL;
    CHECK_FAILS(docauth_credentials_new(akid, secret, token, &creds, &err), err, want, needle);
    CHECK(creds == SENTINEL);
    CHECK_INT_EQ(docauth_credentials_new(akid, secret, token, &creds, NULL), want);
    CHECK(creds == SENTINEL);
}

static void test_credentials_new_rejects_bad_arguments(void) {
    check_credentials_rejected(NULL, SECRET, NULL, DOCAUTH_RESULT_NULL_PARAMETER, "access_key_id");
    check_credentials_rejected(AKID, NULL, NULL, DOCAUTH_RESULT_NULL_PARAMETER,
                               "secret_access_key");
    check_credentials_rejected("AKIA\xff\xfe", SECRET, NULL, DOCAUTH_RESULT_INVALID_UTF8,
                               "access_key_id");
    check_credentials_rejected(AKID, "wJalr\xc3(", NULL, DOCAUTH_RESULT_INVALID_UTF8,
                               "secret_access_key");
    check_credentials_rejected(AKID, SECRET, "tok\x80", DOCAUTH_RESULT_INVALID_UTF8,
                               "session_token");
    check_credentials_rejected("", SECRET, NULL, DOCAUTH_RESULT_AWS_INVALID_CREDENTIALS,
                               "access key id");
    check_credentials_rejected(AKID, "", NULL, DOCAUTH_RESULT_AWS_INVALID_CREDENTIALS, "secret");
    check_credentials_rejected(AKID, SECRET, "", DOCAUTH_RESULT_AWS_INVALID_CREDENTIALS, "token");

    docauth_error *err = NULL;
    CHECK_FAILS(docauth_credentials_new(AKID, SECRET, NULL, NULL, &err), err,
                DOCAUTH_RESULT_NULL_PARAMETER, "out");
    CHECK_INT_EQ(docauth_credentials_new(AKID, SECRET, NULL, NULL, NULL),
                 DOCAUTH_RESULT_NULL_PARAMETER);
}

/* --------------------------------------------------------------------------------------
 * The MONGODB-AWS conversation */

static void test_conversation_new_rejects_bad_arguments(void) {
    docauth_credentials *creds = new_credentials(NULL);
    docauth_aws_conversation *conv = SENTINEL;
    docauth_error *err = NULL;
    uint8_t nonce[33];
    memset(nonce, 0x11, sizeof nonce);

    CHECK_FAILS(docauth_aws_conversation_new(NULL, &conv, &err), err,
                DOCAUTH_RESULT_NULL_PARAMETER, "credentials");
    CHECK_FAILS(docauth_aws_conversation_new(creds, NULL, &err), err,
                DOCAUTH_RESULT_NULL_PARAMETER, "out");
    CHECK_FAILS(docauth_aws_conversation_new_for_testing(NULL, nonce, 32, FIXED_TIME, &conv, &err),
                err, DOCAUTH_RESULT_NULL_PARAMETER, "credentials");
    CHECK_FAILS(docauth_aws_conversation_new_for_testing(creds, NULL, 32, FIXED_TIME, &conv, &err),
                err, DOCAUTH_RESULT_NULL_PARAMETER, "client_nonce");
    CHECK_FAILS(docauth_aws_conversation_new_for_testing(creds, nonce, 31, FIXED_TIME, &conv, &err),
                err, DOCAUTH_RESULT_INVALID_ARGUMENT, "32");
    CHECK_FAILS(docauth_aws_conversation_new_for_testing(creds, nonce, 33, FIXED_TIME, &conv, &err),
                err, DOCAUTH_RESULT_INVALID_ARGUMENT, "32");
    CHECK_FAILS(docauth_aws_conversation_new_for_testing(creds, nonce, 32, FIXED_TIME, NULL, &err),
                err, DOCAUTH_RESULT_NULL_PARAMETER, "out");
    CHECK(conv == SENTINEL);
    docauth_credentials_free(creds);
}

static void test_client_first_shape(void) {
    uint8_t nonce[32];
    fixed_nonce(nonce);
    docauth_credentials *creds = new_credentials(NULL);
    docauth_aws_conversation *conv = NULL;
    docauth_error *err = NULL;
    CHECK_OK(docauth_aws_conversation_new_for_testing(creds, nonce, 32, FIXED_TIME, &conv, &err),
             err);
    docauth_bytes *first = NULL;
    CHECK_OK(docauth_aws_conversation_client_first(conv, &first, &err), err);

    /* {r: BinData(0, our 32 bytes), p: 110}, in that order, nothing else. */
    bson_elem e[4];
    int n = bson_parse(docauth_bytes_data(first), docauth_bytes_len(first), e, 4);
    CHECK_INT_EQ(n, 2);
    if (n == 2) {
        CHECK_STR_EQ(e[0].key, "r");
        CHECK_INT_EQ(e[0].type, 0x05);
        CHECK_INT_EQ(e[0].subtype, 0x00);
        CHECK_INT_EQ(e[0].len, 32);
        CHECK(e[0].len == 32 && memcmp(e[0].value, nonce, 32) == 0);
        CHECK_STR_EQ(e[1].key, "p");
        CHECK_INT_EQ(e[1].type, 0x10);
        CHECK_INT_EQ(get_i32(e[1].value), 110);
    }
    /* 4 + (1+2+4+1+32) + (1+2+4) + 1 */
    CHECK_INT_EQ(docauth_bytes_len(first), 52);
    docauth_bytes_free(first);
    docauth_aws_conversation_free(conv);
    docauth_credentials_free(creds);
}

static void test_client_first_nonce_is_random(void) {
    docauth_credentials *creds = new_credentials(NULL);
    uint8_t seen[2][32];
    for (int i = 0; i < 2; i++) {
        docauth_aws_conversation *conv = NULL;
        docauth_bytes *first = NULL;
        docauth_error *err = NULL;
        CHECK_OK(docauth_aws_conversation_new(creds, &conv, &err), err);
        CHECK_OK(docauth_aws_conversation_client_first(conv, &first, &err), err);
        bson_elem e[4];
        int n = bson_parse(docauth_bytes_data(first), docauth_bytes_len(first), e, 4);
        CHECK_INT_EQ(n, 2);
        memset(seen[i], 0, 32);
        if (n == 2 && e[0].len == 32) memcpy(seen[i], e[0].value, 32);
        docauth_bytes_free(first);
        docauth_aws_conversation_free(conv);
    }
    docauth_credentials_free(creds);
    CHECK(memcmp(seen[0], seen[1], 32) != 0);
}

/* Decodes a client-final and checks it against the fixed inputs; copies `a` out. */
static void check_client_final(const docauth_bytes *final, const char *token, const char *region,
                               const char *want_signature, char *authorization,
                               size_t authorization_size) {
    bson_elem e[4];
    int n = bson_parse(docauth_bytes_data(final), docauth_bytes_len(final), e, 4);
    CHECK_INT_EQ(n, token ? 3 : 2);
    if (n < 2) return;
    const bson_elem *a = bson_find(e, n, "a"), *d = bson_find(e, n, "d"), *t = bson_find(e, n, "t");
    CHECK(a != NULL && a->type == 0x02);
    CHECK(d != NULL && d->type == 0x02);
    CHECK(token ? t != NULL && t->type == 0x02 : t == NULL);
    if (a == NULL || d == NULL) return;

    char date[32] = "";
    if (d->len < sizeof date) {
        memcpy(date, d->value, d->len);
        date[d->len] = 0;
    }
    CHECK_STR_EQ(date, "20231114T221320Z");

    if (a->len >= authorization_size) {
        CHECK(!"authorization header too long");
        return;
    }
    memcpy(authorization, a->value, a->len);
    authorization[a->len] = 0;
    char prefix[256];
    snprintf(prefix, sizeof prefix,
             "AWS4-HMAC-SHA256 Credential=" AKID "/20231114/%s/sts/aws4_request, SignedHeaders=%s, "
             "Signature=",
             region,
             token ? "content-length;content-type;host;x-amz-date;x-amz-security-token;"
                     "x-mongodb-gs2-cb-flag;x-mongodb-server-nonce"
                   : "content-length;content-type;host;x-amz-date;x-mongodb-gs2-cb-flag;"
                     "x-mongodb-server-nonce");
    CHECK(strncmp(authorization, prefix, strlen(prefix)) == 0);
    if (strncmp(authorization, prefix, strlen(prefix)) != 0)
        fprintf(stderr, "    got  %s\n    want %s...\n", authorization, prefix);
    const char *sig = authorization + strlen(prefix);
    CHECK_INT_EQ(strlen(sig), 64);
    if (want_signature != NULL) CHECK_STR_EQ(sig, want_signature);
    for (const char *c = sig; *c; c++) CHECK(isxdigit((unsigned char)*c) && !isupper((unsigned char)*c));
    CHECK_STR_LACKS(authorization, SECRET);

    if (token && t) {
        CHECK_INT_EQ(t->len, strlen(token));
        CHECK(t->len == strlen(token) && memcmp(t->value, token, t->len) == 0);
    }
}

/* A successful conversation with the fixed inputs; `want_signature` (or NULL) is what
 * pymongo-auth-aws computes for them (see the KNOWN_ANSWER comment). */
static void run_success(const char *token, const char *host, const char *region,
                        const char *want_signature, char *auth, size_t auth_size) {
    uint8_t nonce[32], s[64];
    bson_buf b;
    fixed_nonce(nonce);
    server_nonce(s, nonce, sizeof s);
    make_server_first(&b, s, sizeof s, host);

    docauth_aws_conversation *conv = started_conversation(token);
    docauth_bytes *final = NULL;
    docauth_error *err = NULL;
    CHECK_OK(docauth_aws_conversation_client_final(conv, b.data, b.len, &final, &err), err);
    CHECK(final != NULL);
    if (final) check_client_final(final, token, region, want_signature, auth, auth_size);
    docauth_bytes_free(final);

    /* Each step runs once. */
    docauth_bytes *again = SENTINEL;
    CHECK_FAILS(docauth_aws_conversation_client_final(conv, b.data, b.len, &again, &err), err,
                DOCAUTH_RESULT_INVALID_STATE, NULL);
    CHECK_FAILS(docauth_aws_conversation_client_first(conv, &again, &err), err,
                DOCAUTH_RESULT_INVALID_STATE, NULL);
    CHECK(again == SENTINEL);
    docauth_aws_conversation_free(conv);
}

/* KNOWN_ANSWER: signatures pymongo-auth-aws 1.3.0 (tests/python/reference_signer.py) computes
 * for AKID/SECRET, the fixed nonce, server nonce and clock of this file; the full conformance
 * suite (tests/python/test_conformance.py) compares whole payloads on generated inputs. */
#define SIG_LONG_TERM "e9d54e3ea040e0456ac90559bbd25212ab0cea0c5f1732d7b3751a2d00bcacfe"
#define SIG_TOKEN "4b463adca635f527bb26953e06ae73340c5c630fd600f4c0ec9d529ff941ab74"
#define SIG_EU_WEST_2 "f662026cc0a3af69fb2750acc9da83503374e0667439c4290e75154df98aca56"
#define SIG_EU_WEST_2_TOKEN "f4957f175b035e939ff14179489b6e5ae3a34ab6179b626aea096ec0679fb5cb"

static void test_client_final_success_long_term(void) {
    char a1[512] = "", a2[512] = "";
    run_success(NULL, "sts.amazonaws.com", "us-east-1", SIG_LONG_TERM, a1, sizeof a1);
    /* Same nonce, clock and credentials: the same bytes. */
    run_success(NULL, "sts.amazonaws.com", "us-east-1", SIG_LONG_TERM, a2, sizeof a2);
    CHECK_STR_EQ(a1, a2);
}

static void test_client_final_success_session_token(void) {
    char a[512] = "";
    run_success(TOKEN, "sts.amazonaws.com", "us-east-1", SIG_TOKEN, a, sizeof a);
}

static void test_client_final_region_from_host(void) {
    char a[512] = "";
    run_success(NULL, "sts.eu-west-2.amazonaws.com", "eu-west-2", SIG_EU_WEST_2, a, sizeof a);
    run_success(TOKEN, "sts.eu-west-2.amazonaws.com", "eu-west-2", SIG_EU_WEST_2_TOKEN, a,
                sizeof a);
    run_success(NULL, "sts.cn-north-1.amazonaws.com.cn", "cn-north-1", NULL, a, sizeof a);
    run_success(NULL, "localhost", "us-east-1", NULL, a, sizeof a);
    /* 255 bytes is the longest host allowed: one 255-byte label (single label: us-east-1). */
    char host[256];
    memset(host, 'a', 255);
    host[255] = 0;
    run_success(NULL, host, "us-east-1", NULL, a, sizeof a);
}

static void test_client_final_rejects_bad_server_nonce(void) {
    uint8_t nonce[32], s[65];
    bson_buf b;
    fixed_nonce(nonce);

    server_nonce(s, nonce, 63);
    make_server_first(&b, s, 63, "sts.amazonaws.com");
    check_rejected(b.data, b.len, DOCAUTH_RESULT_SASL_SERVER_NONCE_LENGTH, "64");

    server_nonce(s, nonce, 65);
    make_server_first(&b, s, 65, "sts.amazonaws.com");
    check_rejected(b.data, b.len, DOCAUTH_RESULT_SASL_SERVER_NONCE_LENGTH, "64");

    make_server_first(&b, s, 0, "sts.amazonaws.com");
    check_rejected(b.data, b.len, DOCAUTH_RESULT_SASL_SERVER_NONCE_LENGTH, "64");

    /* 64 bytes, but the first 32 are not ours (last byte of our part flipped). */
    server_nonce(s, nonce, 64);
    s[31] ^= 0x01;
    make_server_first(&b, s, 64, "sts.amazonaws.com");
    check_rejected(b.data, b.len, DOCAUTH_RESULT_SASL_SERVER_NONCE_MISMATCH, NULL);
    s[31] ^= 0x01;
    s[0] ^= 0x80;
    make_server_first(&b, s, 64, "sts.amazonaws.com");
    check_rejected(b.data, b.len, DOCAUTH_RESULT_SASL_SERVER_NONCE_MISMATCH, NULL);
}

static void test_client_final_rejects_bad_host(void) {
    char long_host[257];
    memset(long_host, 'a', 256);
    long_host[256] = 0;
    check_host_rejected("", DOCAUTH_RESULT_SASL_HOST_LENGTH);
    check_host_rejected(long_host, DOCAUTH_RESULT_SASL_HOST_LENGTH);
    check_host_rejected("a..b", DOCAUTH_RESULT_SASL_HOST_EMPTY_LABEL);
    check_host_rejected("sts..amazonaws.com", DOCAUTH_RESULT_SASL_HOST_EMPTY_LABEL);
    check_host_rejected(".a", DOCAUTH_RESULT_SASL_HOST_EDGE_DOT);
    check_host_rejected("a.", DOCAUTH_RESULT_SASL_HOST_EDGE_DOT);
    check_host_rejected(".sts.amazonaws.com", DOCAUTH_RESULT_SASL_HOST_EDGE_DOT);
    check_host_rejected("sts.amazonaws.com.", DOCAUTH_RESULT_SASL_HOST_EDGE_DOT);
}

static void test_client_final_rejects_malformed_bson(void) {
    uint8_t nonce[32], s[64];
    bson_buf b;
    fixed_nonce(nonce);
    server_nonce(s, nonce, sizeof s);
    const docauth_result malformed = DOCAUTH_RESULT_SASL_MALFORMED_SERVER_FIRST;

    static const uint8_t junk[] = {0x01, 0x02, 0x03};
    check_rejected(junk, sizeof junk, malformed, NULL);
    static const uint8_t empty_doc[] = {0x05, 0x00, 0x00, 0x00, 0x00};
    check_rejected(empty_doc, sizeof empty_doc, malformed, NULL);
    check_rejected(junk, 0, malformed, NULL);

    /* A valid document cut short, and one whose length prefix lies. */
    make_server_first(&b, s, sizeof s, "sts.amazonaws.com");
    check_rejected(b.data, b.len - 1, malformed, NULL);
    check_rejected(b.data, b.len / 2, malformed, NULL);
    put_i32(b.data, (int32_t)b.len + 10);
    check_rejected(b.data, b.len, malformed, NULL);

    /* Missing h; missing s. */
    bson_begin(&b);
    bson_binary(&b, "s", s, sizeof s);
    bson_end(&b);
    check_rejected(b.data, b.len, malformed, NULL);
    bson_begin(&b);
    bson_string(&b, "h", "sts.amazonaws.com");
    bson_end(&b);
    check_rejected(b.data, b.len, malformed, NULL);

    /* Wrong types: s as a string, h as an int32. */
    bson_begin(&b);
    bson_string(&b, "s", "not binary");
    bson_string(&b, "h", "sts.amazonaws.com");
    bson_end(&b);
    check_rejected(b.data, b.len, malformed, NULL);
    bson_begin(&b);
    bson_binary(&b, "s", s, sizeof s);
    bson_int32(&b, "h", 7);
    bson_end(&b);
    check_rejected(b.data, b.len, malformed, NULL);

    /* An extra field. */
    bson_begin(&b);
    bson_binary(&b, "s", s, sizeof s);
    bson_string(&b, "h", "sts.amazonaws.com");
    bson_int32(&b, "x", 1);
    bson_end(&b);
    check_rejected(b.data, b.len, malformed, NULL);
}

static void test_client_final_argument_checks(void) {
    docauth_aws_conversation *conv = started_conversation(NULL);
    docauth_bytes *out = SENTINEL;
    docauth_error *err = NULL;
    uint8_t byte = 0;
    CHECK_FAILS(docauth_aws_conversation_client_final(conv, NULL, 10, &out, &err), err,
                DOCAUTH_RESULT_NULL_PARAMETER, "server_first");
    CHECK_FAILS(docauth_aws_conversation_client_final(conv, &byte, 1, NULL, &err), err,
                DOCAUTH_RESULT_NULL_PARAMETER, "out");
    CHECK_FAILS(docauth_aws_conversation_client_final(NULL, &byte, 1, &out, &err), err,
                DOCAUTH_RESULT_NULL_PARAMETER, "conversation");
    CHECK_FAILS(docauth_aws_conversation_client_first(NULL, &out, &err), err,
                DOCAUTH_RESULT_NULL_PARAMETER, "conversation");
    CHECK(out == SENTINEL);
    docauth_aws_conversation_free(conv);

    /* client_first with a NULL out on a fresh conversation. */
    docauth_credentials *creds = new_credentials(NULL);
    CHECK_OK(docauth_aws_conversation_new(creds, &conv, &err), err);
    CHECK_FAILS(docauth_aws_conversation_client_first(conv, NULL, &err), err,
                DOCAUTH_RESULT_NULL_PARAMETER, "out");
    docauth_aws_conversation_free(conv);
    docauth_credentials_free(creds);
}

static void test_conversation_order(void) {
    uint8_t nonce[32], s[64];
    bson_buf b;
    fixed_nonce(nonce);
    server_nonce(s, nonce, sizeof s);
    make_server_first(&b, s, sizeof s, "sts.amazonaws.com");

    docauth_credentials *creds = new_credentials(NULL);
    docauth_aws_conversation *conv = NULL;
    docauth_error *err = NULL;
    docauth_bytes *out = SENTINEL;
    CHECK_OK(docauth_aws_conversation_new_for_testing(creds, nonce, 32, FIXED_TIME, &conv, &err),
             err);
    /* client_final before client_first. */
    CHECK_FAILS(docauth_aws_conversation_client_final(conv, b.data, b.len, &out, &err), err,
                DOCAUTH_RESULT_INVALID_STATE, "client_first");
    CHECK(out == SENTINEL);
    /* client_first twice. */
    out = NULL;
    CHECK_OK(docauth_aws_conversation_client_first(conv, &out, &err), err);
    docauth_bytes_free(out);
    out = SENTINEL;
    CHECK_FAILS(docauth_aws_conversation_client_first(conv, &out, &err), err,
                DOCAUTH_RESULT_INVALID_STATE, NULL);
    CHECK(out == SENTINEL);
    docauth_aws_conversation_free(conv);
    docauth_credentials_free(creds);
}

int main(void) {
    RUN(test_version);
    RUN(test_result_names);
    RUN(test_error_accessors_accept_null);
    RUN(test_bytes_accessors_accept_null);
    RUN(test_every_free_accepts_null);
    RUN(test_credentials_new_succeeds);
    RUN(test_credentials_new_rejects_bad_arguments);
    RUN(test_conversation_new_rejects_bad_arguments);
    RUN(test_client_first_shape);
    RUN(test_client_first_nonce_is_random);
    RUN(test_client_final_success_long_term);
    RUN(test_client_final_success_session_token);
    RUN(test_client_final_region_from_host);
    RUN(test_client_final_rejects_bad_server_nonce);
    RUN(test_client_final_rejects_bad_host);
    RUN(test_client_final_rejects_malformed_bson);
    RUN(test_client_final_argument_checks);
    RUN(test_conversation_order);
    return check_summary();
}
