/* The smallest policy-only C program: build an engine from a configuration, decide one request,
 * free both. BENCHMARKS.md (Sizes) links it statically with -Wl,--gc-sections to measure what a
 * policy-only program costs; tests/check-install.sh builds and runs it that way. */
#include <docauth.h>
#include <stdio.h>
int main(void) {
    const char *config =
        "roles:\n"
        "  - {kind: role, version: v7, metadata: {name: access},\n"
        "     spec: {allow: {db_labels: {'*': '*'}, db_users: [u], db_names: [test]}}}\n"
        "databases:\n  - {name: db, labels: {env: dev}}\n"
        "identities:\n  - {user: alice, roles: [access]}\n";
    docauth_engine *engine = NULL;
    docauth_decision *decision = NULL;
    if (docauth_engine_new(config, &engine, NULL) != DOCAUTH_RESULT_OK) return 2;
    if (docauth_engine_decide(engine,
            "{\"identity\":\"alice\",\"database\":\"db\",\"db_user\":\"u\",\"db_name\":\"test\"}",
            &decision, NULL) != DOCAUTH_RESULT_OK) return 3;
    int allowed = docauth_decision_allowed(decision);
    printf("%s: %s\n", allowed ? "allowed" : "denied", docauth_decision_reason(decision));
    docauth_decision_free(decision);
    docauth_engine_free(engine);
    return allowed ? 0 : 1;
}
