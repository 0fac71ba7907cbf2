/*
 * A tiny assertion framework for the C tests of libdocauth. No dependencies.
 *
 *   static void test_something(void) { CHECK(x == 1); CHECK_STR_EQ(a, "b"); }
 *   int main(void) { RUN(test_something); return check_summary(); }
 *
 * A failed CHECK prints file:line, the test's name and the expression (with values for the
 * typed variants) and lets the test go on; check_summary() returns 1 when any check failed.
 */
#ifndef DOCAUTH_TEST_CHECK_H
#define DOCAUTH_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failed = 0;
static int check_passed = 0;
static const char *check_test = "(none)";

static inline int check_report(int ok, const char *file, int line, const char *what) {
    if (ok) {
        check_passed++;
    } else {
        check_failed++;
        fprintf(stderr, "%s:%d: in %s: CHECK failed: %s\n", file, line, check_test, what);
    }
    return ok;
}

#define CHECK(cond) check_report((cond) ? 1 : 0, __FILE__, __LINE__, #cond)

#define CHECK_INT_EQ(got, want)                                                              \
    do {                                                                                     \
        long long check_g_ = (long long)(got), check_w_ = (long long)(want);                 \
        if (!check_report(check_g_ == check_w_, __FILE__, __LINE__, #got " == " #want))      \
            fprintf(stderr, "    got %lld, want %lld\n", check_g_, check_w_);                \
    } while (0)

#define CHECK_STR_EQ(got, want)                                                              \
    do {                                                                                     \
        const char *check_g_ = (got), *check_w_ = (want);                                    \
        int check_ok_ = check_g_ != NULL && check_w_ != NULL && strcmp(check_g_, check_w_) == 0; \
        if (!check_report(check_ok_, __FILE__, __LINE__, #got " equals " #want))             \
            fprintf(stderr, "    got \"%s\", want \"%s\"\n", check_g_ ? check_g_ : "(NULL)",   \
                    check_w_ ? check_w_ : "(NULL)");                                         \
    } while (0)

#define CHECK_STR_CONTAINS(haystack, needle)                                                 \
    do {                                                                                     \
        const char *check_h_ = (haystack), *check_n_ = (needle);                             \
        int check_ok_ = check_h_ != NULL && strstr(check_h_, check_n_) != NULL;              \
        if (!check_report(check_ok_, __FILE__, __LINE__, #haystack " contains " #needle))    \
            fprintf(stderr, "    \"%s\" does not contain \"%s\"\n",                          \
                    check_h_ ? check_h_ : "(NULL)", check_n_);                               \
    } while (0)

#define CHECK_STR_LACKS(haystack, needle)                                                    \
    do {                                                                                     \
        const char *check_h_ = (haystack), *check_n_ = (needle);                             \
        int check_ok_ = check_h_ != NULL && strstr(check_h_, check_n_) == NULL;              \
        if (!check_report(check_ok_, __FILE__, __LINE__, #haystack " lacks " #needle))       \
            fprintf(stderr, "    \"%s\" contains \"%s\"\n", check_h_ ? check_h_ : "(NULL)",  \
                    check_n_);                                                               \
    } while (0)

/* For libdocauth calls (the including file includes docauth.h and defines
 * `static const char *const check_secrets[]`, NULL-terminated): checks that a failed call
 * returned `want`, filled *err with the same code and a message containing `needle` (when not
 * NULL) and none of `check_secrets`; frees the error. */
#define CHECK_FAILS(call_result, err, want, needle)                                          \
    do {                                                                                     \
        docauth_result got_ = (call_result);                                                 \
        if (!check_report(got_ == (want), __FILE__, __LINE__, #call_result " -> " #want))    \
            fprintf(stderr, "    got %s (%d): %s\n", docauth_result_name((uint32_t)got_),    \
                    (int)got_, docauth_error_message(err));                                  \
        CHECK((err) != NULL);                                                                \
        CHECK_INT_EQ(docauth_error_code(err), (want));                                       \
        if ((needle) != NULL) CHECK_STR_CONTAINS(docauth_error_message(err), (const char *)(needle)); \
        for (const char *const *secret_ = check_secrets; *secret_ != NULL; secret_++)        \
            CHECK_STR_LACKS(docauth_error_message(err), *secret_);                           \
        docauth_error_free(err);                                                             \
        (err) = NULL;                                                                        \
    } while (0)

/* Runs one test function and prints "ok"/"FAIL" with its name. */
#define RUN(test_fn)                                                                         \
    do {                                                                                     \
        int check_before_ = check_failed;                                                    \
        check_test = #test_fn;                                                               \
        test_fn();                                                                           \
        printf("%s %s\n", check_failed == check_before_ ? "ok  " : "FAIL", #test_fn);        \
        fflush(stdout);                                                                      \
    } while (0)

static inline int check_summary(void) {
    printf("%d checks passed, %d failed\n", check_passed, check_failed);
    return check_failed == 0 ? 0 : 1;
}

#endif /* DOCAUTH_TEST_CHECK_H */
