/* C test of the policy engine ABI: allow, deny with reason, reload, bad config, NULL and
 * invalid UTF-8 arguments. Built with -Wall -Wextra -Werror -fsanitize=address,undefined. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docauth.h"

static int failures = 0;

#define CHECK(cond)                                                        \
  do {                                                                     \
    if (!(cond)) {                                                         \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                          \
    }                                                                      \
  } while (0)

static const char *CONFIG_V1 =
    "{\"roles\": [\n"
    "  {\"kind\": \"role\", \"version\": \"v7\", \"metadata\": {\"name\": \"access\"},\n"
    "   \"spec\": {\"allow\": {\"db_labels\": {\"*\": \"*\"},\n"
    "                        \"db_users\": [\"{{internal.db_users}}\"],\n"
    "                        \"db_names\": [\"{{internal.db_names}}\"]}}},\n"
    "  {\"kind\": \"role\", \"version\": \"v7\", \"metadata\": {\"name\": \"no-admin\"},\n"
    "   \"spec\": {\"deny\": {\"db_names\": [\"admin\"]}}}],\n"
    " \"databases\": [{\"name\": \"my-docdb\", \"labels\": {\"env\": \"dev\"}}]}";

/* The same, but the access role only allows database name "reports". */
static const char *CONFIG_V2 =
    "roles:\n"
    "  - kind: role\n"
    "    version: v7\n"
    "    metadata: {name: access}\n"
    "    spec: {allow: {db_labels: {env: dev}, db_users: ['*'], db_names: [reports]}}\n"
    "databases:\n"
    "  - {name: my-docdb, labels: {env: dev}}\n";

static const char *REQ_TEST =
    "{\"identity\": {\"user\": \"alice\", \"roles\": [\"access\", \"no-admin\"],"
    " \"traits\": {\"db_users\": [\"*\"], \"db_names\": [\"*\"]}},"
    " \"database\": \"my-docdb\", \"db_user\": \"teleport-docdb-user\", \"db_name\": \"test\","
    " \"command\": \"find\", \"namespaces\": [\"test.orders\"]}";

static const char *REQ_ADMIN =
    "{\"identity\": {\"user\": \"alice\", \"roles\": [\"access\", \"no-admin\"],"
    " \"traits\": {\"db_users\": [\"*\"], \"db_names\": [\"*\"]}},"
    " \"database\": \"my-docdb\", \"db_user\": \"teleport-docdb-user\", \"db_name\": \"admin\"}";

static docauth_decision *decide(const docauth_engine *engine, const char *request) {
  docauth_decision *d = NULL;
  docauth_error *err = NULL;
  docauth_result r = docauth_engine_decide(engine, request, &d, &err);
  if (r != DOCAUTH_RESULT_OK) {
    fprintf(stderr, "decide failed: %s\n", docauth_error_message(err));
    docauth_error_free(err);
    failures++;
    return NULL;
  }
  CHECK(err == NULL);
  return d;
}

int main(void) {
  docauth_engine *engine = NULL;
  docauth_error *err = NULL;

  CHECK(docauth_engine_new(CONFIG_V1, &engine, &err) == DOCAUTH_RESULT_OK);
  CHECK(engine != NULL);
  CHECK(err == NULL);

  /* Allow. */
  docauth_decision *d = decide(engine, REQ_TEST);
  CHECK(d != NULL && docauth_decision_allowed(d));
  CHECK(docauth_decision_matched_roles_count(d) == 1);
  CHECK(strcmp(docauth_decision_matched_role(d, 0), "access") == 0);
  CHECK(docauth_decision_matched_role(d, 1) == NULL);
  CHECK(strstr(docauth_decision_reason(d), "allowed by role(s) [access]") != NULL);
  CHECK(strstr(docauth_decision_json(d), "\"allowed\":true") != NULL);
  docauth_decision_free(d);

  /* Deny with reason: the deny role on db_names [admin]. */
  d = decide(engine, REQ_ADMIN);
  CHECK(d != NULL && !docauth_decision_allowed(d));
  CHECK(strstr(docauth_decision_reason(d), "no-admin") != NULL);
  CHECK(strstr(docauth_decision_reason(d), "deny.db_names") != NULL);
  CHECK(docauth_decision_matched_roles_count(d) == 1);
  docauth_decision_free(d);

  /* Reload: the same handle now answers with the new rules. */
  CHECK(docauth_engine_reload(engine, CONFIG_V2, &err) == DOCAUTH_RESULT_OK);
  d = decide(engine, REQ_TEST);
  CHECK(d != NULL && !docauth_decision_allowed(d));
  docauth_decision_free(d);

  /* A bad reload keeps the old rules and names the line. */
  CHECK(docauth_engine_reload(engine, "roles: [\n  - kind: role\n  version", &err) ==
        DOCAUTH_RESULT_POLICY_CONFIG_SYNTAX);
  CHECK(err != NULL && docauth_error_code(err) == DOCAUTH_RESULT_POLICY_CONFIG_SYNTAX);
  CHECK(err != NULL && strstr(docauth_error_message(err), "line") != NULL);
  docauth_error_free(err);
  err = NULL;
  d = decide(engine, REQ_TEST);
  CHECK(d != NULL && !docauth_decision_allowed(d));
  docauth_decision_free(d);

  /* Bad config: invalid regex in a label value is a load-time error. */
  docauth_engine *bad = NULL;
  CHECK(docauth_engine_new("{\"roles\": [{\"kind\": \"role\", \"version\": \"v7\","
                           " \"metadata\": {\"name\": \"r\"}, \"spec\": {\"allow\":"
                           " {\"db_labels\": {\"env\": \"^(dev$\"}}}}]}",
                           &bad, &err) == DOCAUTH_RESULT_POLICY_ROLE_INVALID);
  CHECK(bad == NULL);
  CHECK(err != NULL && strstr(docauth_error_message(err), "regular expression") != NULL);
  docauth_error_free(err);
  err = NULL;

  /* Bad Rego. */
  CHECK(docauth_engine_new("{\"modules\": [{\"name\": \"ops.rego\", \"rego\": \"package docauth.operator\\nimport rego.v1\\ndeny contains x if {\"}]}",
                           &bad, &err) == DOCAUTH_RESULT_POLICY_REGO_INVALID);
  CHECK(err != NULL && strstr(docauth_error_message(err), "ops.rego") != NULL);
  docauth_error_free(err);
  err = NULL;

  /* Malformed request: an error, not a decision. */
  d = NULL;
  CHECK(docauth_engine_decide(engine, "{\"identity\": 5}", &d, &err) ==
        DOCAUTH_RESULT_POLICY_REQUEST_INVALID);
  CHECK(d == NULL);
  docauth_error_free(err);
  err = NULL;

  /* NULL and invalid UTF-8 arguments. */
  CHECK(docauth_engine_new(NULL, &bad, NULL) == DOCAUTH_RESULT_NULL_PARAMETER);
  CHECK(docauth_engine_new(CONFIG_V1, NULL, NULL) == DOCAUTH_RESULT_NULL_PARAMETER);
  CHECK(docauth_engine_decide(NULL, REQ_TEST, &d, NULL) == DOCAUTH_RESULT_NULL_PARAMETER);
  CHECK(docauth_engine_decide(engine, REQ_TEST, NULL, &err) == DOCAUTH_RESULT_NULL_PARAMETER);
  CHECK(err != NULL && strstr(docauth_error_message(err), "out") != NULL);
  docauth_error_free(err);
  err = NULL;
  CHECK(docauth_engine_decide(engine, "{\"x\": \"\xff\"}", &d, NULL) == DOCAUTH_RESULT_INVALID_UTF8);
  CHECK(docauth_engine_reload(NULL, CONFIG_V1, NULL) == DOCAUTH_RESULT_NULL_PARAMETER);
  CHECK(!docauth_decision_allowed(NULL));
  CHECK(docauth_decision_matched_roles_count(NULL) == 0);
  CHECK(strcmp(docauth_decision_reason(NULL), "") == 0);
  docauth_decision_free(NULL);
  docauth_engine_free(NULL);

  docauth_engine_free(engine);
  if (failures) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("test_policy: ok\n");
  return 0;
}
