//! The semantics table: each case pins one Teleport behaviour, cited by the function (and
//! test) in gravitational/teleport that defines it:
//!
//! - `lib/services/role.go`: `RoleSet.checkAccess` (deny first, greedy deny matchers, allow
//!   needs labels + every matcher in ONE role), `MatchLabelGetter`, `MatchDatabaseUser`,
//!   `MatchDatabaseName`, `NewDatabaseUserMatcher` / `makeUsernamesForAWSRoleARN` /
//!   `makeAlternativeNamesForAWSRole`, `ApplyValueTraits` / `applyValueTraitsSlice` /
//!   `applyLabelsTraits`;
//! - `lib/services/role_test.go`: `TestCheckAccessToDatabase`, `TestCheckAccessToDatabaseUser`,
//!   `TestCheckDatabaseRoles`, `TestApplyTraits`, `TestMatchLabels` (label cases);
//! - `lib/utils/replace.go`: `SliceMatchesRegex` / `MatchString` (a value is a regex only
//!   when it starts with `^` AND ends with `$`; otherwise a glob, anchored);
//! - `api/types/role.go`: `RoleV6.CheckAndSetDefaults` (v3 `db_labels` default `*: *`).

use std::collections::BTreeMap;
use std::sync::Arc;

use docauth::policy::{Identity, PolicyEngine, Request};

struct Case {
    cite: &'static str,
    /// Inline YAML role documents (flow style), one per element.
    roles: &'static [&'static str],
    labels: &'static str,
    aws_account: &'static str,
    holds: &'static [&'static str],
    traits: &'static [(&'static str, &'static [&'static str])],
    db_user: &'static str,
    db_name: &'static str,
    command: Option<&'static str>,
    namespaces: &'static [&'static str],
    allowed: bool,
}

const ALL: &str = "{'*': '*'}";

const fn case(cite: &'static str, roles: &'static [&'static str], allowed: bool) -> Case {
    Case {
        cite,
        roles,
        labels: "{env: dev, team: payments}",
        aws_account: "",
        holds: &["r"],
        traits: &[],
        db_user: "alice",
        db_name: "test",
        command: None,
        namespaces: &[],
        allowed,
    }
}

fn run(n: usize, c: &Case) {
    let mut config = String::from("roles:\n");
    for r in c.roles {
        config.push_str(&format!("  - {r}\n"));
    }
    config.push_str(&format!(
        "databases:\n  - name: db\n    labels: {}\n    aws: {{account_id: '{}', region: us-east-1}}\n",
        c.labels, c.aws_account
    ));
    let _ = ALL;
    let engine = PolicyEngine::from_config_str("case.yaml", &config, None)
        .unwrap_or_else(|e| panic!("case {n} ({}): config error {e:?}\n{config}", c.cite));
    let traits: BTreeMap<String, Vec<String>> = c
        .traits
        .iter()
        .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
        .collect();
    let identity = Arc::new(Identity::new(
        "alice",
        c.holds.iter().map(|s| s.to_string()).collect(),
        traits,
    ));
    let mut req = Request::new(identity, "db", c.db_user, c.db_name)
        .with_namespaces(c.namespaces.iter().map(|s| s.to_string()).collect());
    if let Some(cmd) = c.command {
        req = req.with_command(cmd);
    }
    let d = engine.decide_uncached(&req);
    assert_eq!(
        d.allowed, c.allowed,
        "case {n} ({}): expected allowed={}, got {:?}\n{config}",
        c.cite, c.allowed, d
    );
    // Cached and uncached answers agree.
    assert_eq!(engine.decide(&req).allowed, c.allowed);
    assert!(!d.reason.is_empty());
}

macro_rules! role {
    ($name:literal, $ver:literal, $spec:literal) => {
        concat!(
            "{kind: role, version: ",
            $ver,
            ", metadata: {name: ",
            $name,
            "}, spec: ",
            $spec,
            "}"
        )
    };
}

fn cases() -> Vec<Case> {
    vec![
        // --- evaluation order, default deny (checkAccess) ---
        case("checkAccess: allow role matching labels+user+name allows", &[role!("r", "v7", "{allow: {db_labels: {env: dev}, db_users: [alice], db_names: [test]}}")], true),
        case("checkAccess: default deny with a role without allow rules", &[role!("r", "v7", "{}")], false),
        Case { holds: &[], ..case("checkAccess: no roles, default deny", &[role!("r", "v7", "{allow: {db_labels: {env: dev}, db_users: ['*'], db_names: ['*']}}")], false) },
        case("checkAccess: deny labels in the same role win over allow", &[role!("r", "v7", "{allow: {db_labels: {env: dev}, db_users: ['*'], db_names: ['*']}, deny: {db_labels: {env: dev}}}")], false),
        Case { holds: &["a", "d"], ..case("checkAccess: deny in another role wins (deny rules of all roles first)", &[role!("a", "v7", "{allow: {db_labels: {env: dev}, db_users: ['*'], db_names: ['*']}}"), role!("d", "v7", "{deny: {db_labels: {env: dev}}}")], false) },
        Case { holds: &["a", "d"], ..case("checkAccess: deny labels not matching do not deny", &[role!("a", "v7", "{allow: {db_labels: {env: dev}, db_users: ['*'], db_names: ['*']}}"), role!("d", "v7", "{deny: {db_labels: {env: prod}}}")], true) },
        // --- greedy deny matchers (MatchAny on deny) ---
        Case { holds: &["a", "d"], ..case("checkAccess: deny db_users apply whatever the deny labels (greedy MatchAny)", &[role!("a", "v7", "{allow: {db_labels: {env: dev}, db_users: ['*'], db_names: ['*']}}"), role!("d", "v7", "{deny: {db_labels: {env: prod}, db_users: [alice]}}")], false) },
        Case { holds: &["a", "d"], ..case("checkAccess: deny db_names apply on every database (no deny labels)", &[role!("a", "v7", "{allow: {db_labels: {env: dev}, db_users: ['*'], db_names: ['*']}}"), role!("d", "v7", "{deny: {db_names: [test]}}")], false) },
        Case { holds: &["a", "d"], ..case("checkAccess: deny db_names for another name do not deny", &[role!("a", "v7", "{allow: {db_labels: {env: dev}, db_users: ['*'], db_names: ['*']}}"), role!("d", "v7", "{deny: {db_names: [admin]}}")], true) },
        Case { holds: &["a", "d"], ..case("MatchDatabaseUser: deny db_users '*' denies every user", &[role!("a", "v7", "{allow: {db_labels: {env: dev}, db_users: ['*'], db_names: ['*']}}"), role!("d", "v7", "{deny: {db_users: ['*']}}")], false) },
        Case { holds: &["a", "d"], ..case("MatchDatabaseName: deny db_names '*' denies every name", &[role!("a", "v7", "{allow: {db_labels: {env: dev}, db_users: ['*'], db_names: ['*']}}"), role!("d", "v7", "{deny: {db_names: ['*']}}")], false) },
        Case { holds: &["a", "d"], ..case("MatchDatabaseUser: deny db_users for another user do not deny", &[role!("a", "v7", "{allow: {db_labels: {env: dev}, db_users: ['*'], db_names: ['*']}}"), role!("d", "v7", "{deny: {db_users: [bob]}}")], true) },
        Case { holds: &["a", "d"], ..case("deny labels '*': '*' deny every database", &[role!("a", "v7", "{allow: {db_labels: {env: dev}, db_users: ['*'], db_names: ['*']}}"), role!("d", "v7", "{deny: {db_labels: {'*': '*'}}}")], false) },
        // --- allow: one single role must match everything ---
        Case { holds: &["u", "n"], ..case("checkAccess MatchAll: user from one role and name from another never combine", &[role!("u", "v7", "{allow: {db_labels: {env: dev}, db_users: [alice], db_names: [other]}}"), role!("n", "v7", "{allow: {db_labels: {env: dev}, db_users: [bob], db_names: [test]}}")], false) },
        Case { holds: &["l", "m"], ..case("checkAccess: labels from one role and users/names from another never combine", &[role!("l", "v7", "{allow: {db_labels: {env: dev}}}"), role!("m", "v7", "{allow: {db_labels: {env: prod}, db_users: ['*'], db_names: ['*']}}")], false) },
        Case { holds: &["x", "y"], ..case("checkAccess: any one of several roles may allow", &[role!("x", "v7", "{allow: {db_labels: {env: prod}, db_users: ['*'], db_names: ['*']}}"), role!("y", "v7", "{allow: {db_labels: {env: dev}, db_users: [alice], db_names: [test]}}")], true) },
        case("allow: labels+user match but no db_names → deny", &[role!("r", "v7", "{allow: {db_labels: {env: dev}, db_users: [alice]}}")], false),
        case("allow: labels+name match but no db_users → deny", &[role!("r", "v7", "{allow: {db_labels: {env: dev}, db_names: [test]}}")], false),
        // --- db_users / db_names matching (MatchDatabaseUser / MatchDatabaseName) ---
        case("MatchDatabaseUser: exact user", &[role!("r", "v7", "{allow: {db_labels: {env: dev}, db_users: [alice], db_names: ['*']}}")], true),
        case("MatchDatabaseUser: case-sensitive", &[role!("r", "v7", "{allow: {db_labels: {env: dev}, db_users: [Alice], db_names: ['*']}}")], false),
        case("MatchDatabaseUser: '*' any user", &[role!("r", "v7", "{allow: {db_labels: {env: dev}, db_users: ['*'], db_names: ['*']}}")], true),
        case("MatchDatabaseUser: no glob in db_users ('al*' is literal)", &[role!("r", "v7", "{allow: {db_labels: {env: dev}, db_users: ['al*'], db_names: ['*']}}")], false),
        case("MatchDatabaseUser: other user in list", &[role!("r", "v7", "{allow: {db_labels: {env: dev}, db_users: [bob, alice], db_names: ['*']}}")], true),
        case("MatchDatabaseName: exact name", &[role!("r", "v7", "{allow: {db_labels: {env: dev}, db_users: ['*'], db_names: [test]}}")], true),
        case("MatchDatabaseName: case-sensitive", &[role!("r", "v7", "{allow: {db_labels: {env: dev}, db_users: ['*'], db_names: [Test]}}")], false),
        case("MatchDatabaseName: no glob ('te*' is literal)", &[role!("r", "v7", "{allow: {db_labels: {env: dev}, db_users: ['*'], db_names: ['te*']}}")], false),
        case("MatchDatabaseName: no regex ('^te.*$' is literal)", &[role!("r", "v7", "{allow: {db_labels: {env: dev}, db_users: ['*'], db_names: ['^te.*$']}}")], false),
        // --- label selectors (MatchLabelGetter, SliceMatchesRegex) ---
        case("MatchLabelGetter: '*': '*' matches every database", &[role!("r", "v7", "{allow: {db_labels: {'*': '*'}, db_users: ['*'], db_names: ['*']}}")], true),
        Case { labels: "{}", ..case("MatchLabelGetter: '*': '*' matches even a database without labels", &[role!("r", "v7", "{allow: {db_labels: {'*': '*'}, db_users: ['*'], db_names: ['*']}}")], true) },
        case("MatchLabelGetter: empty selector matches nothing (v4+)", &[role!("r", "v7", "{allow: {db_labels: {}, db_users: ['*'], db_names: ['*']}}")], false),
        case("MatchLabelGetter: every key required (missing key)", &[role!("r", "v7", "{allow: {db_labels: {env: dev, region: '*'}, db_users: ['*'], db_names: ['*']}}")], false),
        case("MatchLabelGetter: every key required (all present)", &[role!("r", "v7", "{allow: {db_labels: {env: dev, team: payments}, db_users: ['*'], db_names: ['*']}}")], true),
        case("MatchLabelGetter: value '*' any value of an existing key", &[role!("r", "v7", "{allow: {db_labels: {team: '*'}, db_users: ['*'], db_names: ['*']}}")], true),
        case("MatchLabelGetter: key '*' with a non-'*' value is a literal key", &[role!("r", "v7", "{allow: {db_labels: {'*': dev}, db_users: ['*'], db_names: ['*']}}")], false),
        case("MatchLabelGetter: list of values, one matches", &[role!("r", "v7", "{allow: {db_labels: {env: [prod, dev]}, db_users: ['*'], db_names: ['*']}}")], true),
        case("MatchLabelGetter: label values case-sensitive", &[role!("r", "v7", "{allow: {db_labels: {env: DEV}, db_users: ['*'], db_names: ['*']}}")], false),
        case("MatchLabelGetter: label keys case-sensitive", &[role!("r", "v7", "{allow: {db_labels: {Env: dev}, db_users: ['*'], db_names: ['*']}}")], false),
        case("SliceMatchesRegex: glob 'pay*'", &[role!("r", "v7", "{allow: {db_labels: {team: 'pay*'}, db_users: ['*'], db_names: ['*']}}")], true),
        case("SliceMatchesRegex: glob anchored ('pay' does not match 'payments')", &[role!("r", "v7", "{allow: {db_labels: {team: pay}, db_users: ['*'], db_names: ['*']}}")], false),
        case("SliceMatchesRegex: glob '*ments'", &[role!("r", "v7", "{allow: {db_labels: {team: '*ments'}, db_users: ['*'], db_names: ['*']}}")], true),
        case("SliceMatchesRegex: glob regex chars literal ('pay.ents')", &[role!("r", "v7", "{allow: {db_labels: {team: 'pay.ents'}, db_users: ['*'], db_names: ['*']}}")], false),
        case("SliceMatchesRegex: '^…$' is a regex", &[role!("r", "v7", "{allow: {db_labels: {team: '^pay.*$'}, db_users: ['*'], db_names: ['*']}}")], true),
        case("SliceMatchesRegex: regex alternatives", &[role!("r", "v7", "{allow: {db_labels: {env: '^(prod|dev)$'}, db_users: ['*'], db_names: ['*']}}")], true),
        case("SliceMatchesRegex: '^pay.*' without '$' is a glob (literal ^)", &[role!("r", "v7", "{allow: {db_labels: {team: '^pay.*'}, db_users: ['*'], db_names: ['*']}}")], false),
        case("SliceMatchesRegex: 'pay.*$' without '^' is a glob", &[role!("r", "v7", "{allow: {db_labels: {team: 'pay.*$'}, db_users: ['*'], db_names: ['*']}}")], false),
        case("SliceMatchesRegex: regex is anchored by ^…$ (no partial match)", &[role!("r", "v7", "{allow: {db_labels: {team: '^pay$'}, db_users: ['*'], db_names: ['*']}}")], false),
        // --- role version defaults (CheckAndSetDefaults) ---
        case("CheckAndSetDefaults: v3 without db_labels gets '*': '*'", &[role!("r", "v3", "{allow: {db_users: ['*'], db_names: ['*']}}")], true),
        case("CheckAndSetDefaults: v4 without db_labels matches nothing", &[role!("r", "v4", "{allow: {db_users: ['*'], db_names: ['*']}}")], false),
        case("CheckAndSetDefaults: v5 without db_labels matches nothing", &[role!("r", "v5", "{allow: {db_users: ['*'], db_names: ['*']}}")], false),
        case("CheckAndSetDefaults: v6 without db_labels matches nothing", &[role!("r", "v6", "{allow: {db_users: ['*'], db_names: ['*']}}")], false),
        case("CheckAndSetDefaults: v7 without db_labels matches nothing", &[role!("r", "v7", "{allow: {db_users: ['*'], db_names: ['*']}}")], false),
        case("CheckAndSetDefaults: v8 without db_labels matches nothing", &[role!("r", "v8", "{allow: {db_users: ['*'], db_names: ['*']}}")], false),
        case("CheckAndSetDefaults: v3 with explicit empty db_labels {} matches nothing (non-nil)", &[role!("r", "v3", "{allow: {db_labels: {}, db_users: ['*'], db_names: ['*']}}")], false),
        case("CheckAndSetDefaults: v3 explicit labels are used", &[role!("r", "v3", "{allow: {db_labels: {env: prod}, db_users: ['*'], db_names: ['*']}}")], false),
        // --- traits (ApplyValueTraits, applyValueTraitsSlice, applyLabelsTraits) ---
        Case { traits: &[("db_users", &["alice"]), ("db_names", &["test"])], ..case("ApplyValueTraits: {{internal.db_users}}/{{internal.db_names}} expand", &[role!("r", "v7", "{allow: {db_labels: {env: dev}, db_users: ['{{internal.db_users}}'], db_names: ['{{internal.db_names}}']}}")], true) },
        Case { traits: &[("db_users", &["*"]), ("db_names", &["*"])], ..case("ApplyValueTraits: trait value '*' is a wildcard after expansion", &[role!("r", "v7", "{allow: {db_labels: {env: dev}, db_users: ['{{internal.db_users}}'], db_names: ['{{internal.db_names}}']}}")], true) },
        Case { traits: &[("db_names", &["test"])], ..case("applyValueTraitsSlice: missing trait drops the entry (no db_users left)", &[role!("r", "v7", "{allow: {db_labels: {env: dev}, db_users: ['{{internal.db_users}}'], db_names: ['{{internal.db_names}}']}}")], false) },
        Case { traits: &[("db_names", &["test"])], ..case("applyValueTraitsSlice: missing trait drops only that entry", &[role!("r", "v7", "{allow: {db_labels: {env: dev}, db_users: ['{{internal.db_users}}', alice], db_names: ['{{internal.db_names}}']}}")], true) },
        Case { traits: &[("db_users", &[]), ("db_names", &["test"])], ..case("ApplyValueTraits: empty trait list is 'not found'", &[role!("r", "v7", "{allow: {db_labels: {env: dev}, db_users: ['{{internal.db_users}}'], db_names: ['{{internal.db_names}}']}}")], false) },
        Case { traits: &[("team_users", &["alice"])], ..case("ApplyValueTraits: {{external.x}}", &[role!("r", "v7", "{allow: {db_labels: {env: dev}, db_users: ['{{external.team_users}}'], db_names: ['*']}}")], true) },
        Case { db_user: "svc-alice-ro", traits: &[("nick", &["alice"])], ..case("ApplyValueTraits: prefix and suffix around the expression", &[role!("r", "v7", "{allow: {db_labels: {env: dev}, db_users: ['svc-{{external.nick}}-ro'], db_names: ['*']}}")], true) },
        Case { traits: &[("foo", &["alice"])], ..case("ApplyValueTraits: unsupported internal.* variable expands to nothing", &[role!("r", "v7", "{allow: {db_labels: {env: dev}, db_users: ['{{internal.foo}}'], db_names: ['*']}}")], false) },
        Case { traits: &[("email", &["alice@example.com"])], ..case("parse: {{email.local(external.email)}}", &[role!("r", "v7", "{allow: {db_labels: {env: dev}, db_users: ['{{email.local(external.email)}}'], db_names: ['*']}}")], true) },
        Case { db_user: "alice-ro", traits: &[("login", &["alice@corp"])], ..case("parse: {{regexp.replace(...)}} with capture group", &[role!("r", "v7", r#"{allow: {db_labels: {env: dev}, db_users: ['{{regexp.replace(external.login, "^(.*)@corp$", "$1-ro")}}'], db_names: ['*']}}"#)], true) },
        Case { traits: &[("login", &["alice@other"])], ..case("parse: regexp.replace drops non-matching values", &[role!("r", "v7", r#"{allow: {db_labels: {env: dev}, db_users: ['{{regexp.replace(external.login, "^(.*)@corp$", "$1")}}', 'alice@other-not'], db_names: ['*']}}"#)], false) },
        Case { traits: &[("env", &["dev"])], ..case("applyLabelsTraits: label value from a trait", &[role!("r", "v7", "{allow: {db_labels: {env: '{{external.env}}'}, db_users: ['*'], db_names: ['*']}}")], true) },
        Case { traits: &[], ..case("applyLabelsTraits: missing label trait becomes '' (matches nothing here)", &[role!("r", "v7", "{allow: {db_labels: {env: '{{external.env}}'}, db_users: ['*'], db_names: ['*']}}")], false) },
        Case { traits: &[("key", &["team"])], ..case("applyLabelsTraits: label key from a trait", &[role!("r", "v7", "{allow: {db_labels: {'{{external.key}}': payments}, db_users: ['*'], db_names: ['*']}}")], true) },
        Case { holds: &["a", "d"], traits: &[("blocked", &["test"])], ..case("ApplyValueTraits in deny: deny db_names from a trait", &[role!("a", "v7", "{allow: {db_labels: {env: dev}, db_users: ['*'], db_names: ['*']}}"), role!("d", "v7", "{deny: {db_names: ['{{external.blocked}}']}}")], false) },
        Case { holds: &["a", "d"], traits: &[], ..case("applyValueTraitsSlice in deny: missing trait drops the deny entry", &[role!("a", "v7", "{allow: {db_labels: {env: dev}, db_users: ['*'], db_names: ['*']}}"), role!("d", "v7", "{deny: {db_names: ['{{external.blocked}}']}}")], true) },
        // --- IAM users on DocumentDB (NewDatabaseUserMatcher with AWS metadata) ---
        Case { aws_account: "123456789012", db_user: "arn:aws:iam::123456789012:role/teleport-docdb-user", ..case("makeUsernamesForAWSRoleARN: role ARN matches db_users role name", &[role!("r", "v7", "{allow: {db_labels: {env: dev}, db_users: [teleport-docdb-user], db_names: ['*']}}")], true) },
        Case { aws_account: "123456789012", db_user: "teleport-docdb-user", ..case("IAM alias: role name matches db_users role ARN (DESIGN: both forms name the same user)", &[role!("r", "v7", "{allow: {db_labels: {env: dev}, db_users: ['arn:aws:iam::123456789012:role/teleport-docdb-user'], db_names: ['*']}}")], true) },
        Case { aws_account: "123456789012", db_user: "arn:aws:iam::999999999999:role/teleport-docdb-user", ..case("ValidateRoleARNAndExtractRoleName: ARN of another account is not the same user", &[role!("r", "v7", "{allow: {db_labels: {env: dev}, db_users: [teleport-docdb-user], db_names: ['*']}}")], false) },
        Case { aws_account: "", db_user: "arn:aws:iam::123456789012:role/teleport-docdb-user", ..case("makeAlternativeNamesForAWSRole: no AWS account → no alias", &[role!("r", "v7", "{allow: {db_labels: {env: dev}, db_users: [teleport-docdb-user], db_names: ['*']}}")], false) },
        Case { holds: &["a", "d"], aws_account: "123456789012", db_user: "arn:aws:iam::123456789012:role/teleport-docdb-user", ..case("IAM alias in deny: deny on the role name denies the ARN", &[role!("a", "v7", "{allow: {db_labels: {env: dev}, db_users: ['*'], db_names: ['*']}}"), role!("d", "v7", "{deny: {db_users: [teleport-docdb-user]}}")], false) },
        // --- wire-level requests (DESIGN: every database a message touches) ---
        Case { namespaces: &["test.orders", "reports.daily"], ..case("every namespace's database must be allowed", &[role!("r", "v7", "{allow: {db_labels: {env: dev}, db_users: ['*'], db_names: [test]}}")], false) },
        Case { namespaces: &["test.orders", "reports.daily"], ..case("each touched database allowed (by one role with labels+user+name)", &[role!("r", "v7", "{allow: {db_labels: {env: dev}, db_users: ['*'], db_names: [test, reports]}}")], true) },
        Case { holds: &["a", "d"], namespaces: &["test.orders", "admin.system"], command: Some("aggregate"), ..case("deny db_names apply to a namespace's database", &[role!("a", "v7", "{allow: {db_labels: {env: dev}, db_users: ['*'], db_names: ['*']}}"), role!("d", "v7", "{deny: {db_names: [admin]}}")], false) },
        Case { db_name: "admin", command: Some("hello"), ..case("connection command on admin needs no admin in db_names", &[role!("r", "v7", "{allow: {db_labels: {env: dev}, db_users: ['*'], db_names: [test]}}")], true) },
        Case { db_name: "admin", command: Some("find"), ..case("data command on admin needs admin in db_names", &[role!("r", "v7", "{allow: {db_labels: {env: dev}, db_users: ['*'], db_names: [test]}}")], false) },
        Case { db_name: "admin", command: Some("ping"), ..case("connection command still needs labels and db user", &[role!("r", "v7", "{allow: {db_labels: {env: dev}, db_users: [bob], db_names: ['*']}}")], false) },
        // --- unknown roles ---
        Case { holds: &["r", "ghost"], ..case("unknown role: deny (Teleport fails to load the role set)", &[role!("r", "v7", "{allow: {db_labels: {env: dev}, db_users: ['*'], db_names: ['*']}}")], false) },
    ]
}

#[test]
fn semantics_table() {
    let cases = cases();
    assert!(cases.len() >= 60, "only {} cases", cases.len());
    for (n, c) in cases.iter().enumerate() {
        run(n, c);
    }
}

#[test]
fn reasons_name_the_deciding_role_and_rule() {
    let config = format!(
        "roles:\n  - {}\n  - {}\ndatabases:\n  - {{name: db, labels: {{env: dev}}}}\n",
        role!(
            "a",
            "v7",
            "{allow: {db_labels: {env: dev}, db_users: ['*'], db_names: ['*']}}"
        ),
        role!("d", "v7", "{deny: {db_users: [root]}}")
    );
    let e = PolicyEngine::from_config_str("r.yaml", &config, None).unwrap();
    let id = Arc::new(Identity::new(
        "alice",
        vec!["a".into(), "d".into(), "ghost".into()],
        BTreeMap::new(),
    ));
    let d = e.decide(&Request::new(id.clone(), "db", "root", "x"));
    assert!(!d.allowed);
    assert!(
        d.reason.contains("role \"d\": deny.db_users"),
        "{}",
        d.reason
    );
    assert!(
        d.reason.contains("\"ghost\", which is not loaded"),
        "{}",
        d.reason
    );
    assert_eq!(d.matched_roles, vec!["d".to_string()]);
    let id = Arc::new(Identity::new(
        "alice",
        vec!["a".into(), "d".into()],
        BTreeMap::new(),
    ));
    let d = e.decide(&Request::new(id.clone(), "db", "app", "x"));
    assert!(d.allowed, "{}", d.reason);
    assert!(d.reason.contains("allowed by role(s) [a]"), "{}", d.reason);
    let d = e.decide(&Request::new(id, "nope", "app", "x"));
    assert!(
        !d.allowed && d.reason.contains("\"nope\" is not configured"),
        "{}",
        d.reason
    );
}
