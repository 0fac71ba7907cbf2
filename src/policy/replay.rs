//! `docauth-check replay`: the policy decisions of an audit log made again under another
//! configuration, and those that would change. A policy rollout checked against the traffic
//! it will meet, before it is loaded.
//!
//! The input is the audit stream as the example proxies write it: one JSON event per line
//! (`docs/audit.md`). Only `db.session.query` / `db.session.query.failed` events with
//! `decided_by: "policy"` depend on the policy; each is decided again with
//! [`PolicyEngine::decide_message`], the function the session's judge uses, from what the
//! event recorded: the identity (`user`, `user_roles`, `user_traits`; looked up in the new
//! configuration's `identities` when the session named it, as a running session would after
//! a reload), the database (`db_service`), the db user, the message's `$db` (`database`),
//! its command, every namespace it reaches and whether it reaches databases nobody can list.
//! The other events (session start and end, messages refused by the wire analysis or
//! unreadable, decisions of a judge without an engine) are counted and skipped.
//!
//! Identical changes (same user, database, db user, command, namespaces and both decisions)
//! are reported once, with the number of events and their first lines.

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::template::Traits;
use super::{Decision, Identity, PolicyEngine, Request};

/// The audit events `replay` reads.
const QUERY_EVENTS: [&str; 2] = ["db.session.query", "db.session.query.failed"];
/// Lines listed per change; the count says how many there were.
const LINES_SHOWN: usize = 5;

/// An audit log that cannot be replayed: the line (1-based; 0 when reading failed before any
/// line) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

impl std::error::Error for ReplayError {}

/// Where the identity of a decision came from (the event's `identity_source`).
#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum IdentitySource {
    /// Named by the session: its entry in the configuration's `identities`.
    Config,
    /// Given in full with the session's parameters.
    Session,
}

/// What replay reads from a policy-decided query event.
#[derive(Deserialize)]
struct QueryEvent {
    user: String,
    user_roles: Vec<String>,
    #[serde(default)]
    user_traits: Traits,
    identity_source: IdentitySource,
    db_service: String,
    db_user: String,
    database: String,
    command: String,
    namespaces: Vec<String>,
    #[serde(default)]
    reaches_unlisted: Option<String>,
    allowed: bool,
    reason: String,
}

/// A decision that would change, with every event that shares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub user: String,
    /// The database of the engine configuration (the event's `db_service`).
    pub database: String,
    pub db_user: String,
    pub command: String,
    /// Every namespace the message reaches (`db.collection` or `db`).
    pub namespaces: Vec<String>,
    /// Why the message also reaches databases nobody can list, when it does.
    pub reaches_unlisted: Option<String>,
    pub was_allowed: bool,
    pub was_reason: String,
    /// The decision under the new configuration.
    pub now: Decision,
    /// How many events had this change.
    pub events: usize,
    /// The first lines (at most 5) of those events.
    pub lines: Vec<usize>,
}

/// What a replay found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Query events decided again.
    pub replayed: usize,
    /// Query events not decided by the policy (refused by the wire analysis, unreadable
    /// messages, a handshake that could not be rewritten, a judge without an engine).
    pub skipped: usize,
    /// Every distinct change, in the order of its first event.
    pub changes: Vec<Change>,
}

impl Report {
    /// Events whose decision would change.
    pub fn changed(&self) -> usize {
        self.changes.iter().map(|c| c.events).sum()
    }

    /// The report as `docauth-check replay` prints it; `source` names the audit log.
    pub fn render(&self, source: &str) -> String {
        let mut out = String::new();
        for c in &self.changes {
            let reach = if c.namespaces.is_empty() {
                String::new()
            } else {
                format!(" {}", c.namespaces.join(", "))
            };
            let unlisted = match &c.reaches_unlisted {
                Some(why) => format!(" and unlisted databases ({why})"),
                None => String::new(),
            };
            let more = match c.events {
                1 => String::new(),
                n => {
                    let lines: Vec<String> = c.lines.iter().map(usize::to_string).collect();
                    let etc = if n > c.lines.len() { ", …" } else { "" };
                    format!(" ({n} events, lines {}{etc})", lines.join(", "))
                }
            };
            out.push_str(&format!(
                "{source}:{}: {} -> {}: {} on {} as {}: {}{reach}{unlisted}{more}\n",
                c.lines.first().copied().unwrap_or_default(),
                verdict(c.was_allowed),
                verdict(c.now.allowed),
                c.user,
                c.database,
                c.db_user,
                c.command,
            ));
            // The reasons name the deciding role(s) and rule.
            out.push_str(&format!(
                "    now: {}\n    was: {}\n",
                c.now.reason, c.was_reason
            ));
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    /// The last line: how many decisions were replayed and changed.
    pub fn summary(&self) -> String {
        let skipped = match self.skipped {
            0 => String::new(),
            n => format!(
                " ({n} query event{} not decided by the policy skipped)",
                plural(n)
            ),
        };
        let head = format!(
            "replayed {} decision{}{skipped}",
            self.replayed,
            plural(self.replayed)
        );
        let changed = self.changed();
        if changed == 0 {
            return format!("{head}: none would change");
        }
        let denied: usize = self
            .changes
            .iter()
            .filter(|c| !c.now.allowed)
            .map(|c| c.events)
            .sum();
        format!(
            "{head}: {changed} would change ({denied} ALLOW -> DENY, {} DENY -> ALLOW)",
            changed - denied
        )
    }
}

fn verdict(allowed: bool) -> &'static str {
    if allowed {
        "ALLOW"
    } else {
        "DENY"
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Decides every policy decision of `audit` (JSON lines) again with `engine`. Errors on the
/// first line that is not an audit event or a query event that lacks what a replay needs.
pub fn replay(engine: &PolicyEngine, audit: impl BufRead) -> Result<Report, ReplayError> {
    let mut report = Report::default();
    let mut seen: HashMap<ChangeKey, usize> = HashMap::new();
    for (index, line) in audit.lines().enumerate() {
        let number = index + 1;
        let line = line.map_err(|e| ReplayError {
            line: number,
            message: format!("cannot read: {e}"),
        })?;
        let event = match read_line(&line).map_err(|message| ReplayError {
            line: number,
            message,
        })? {
            Line::Other => continue,
            Line::NotByPolicy => {
                report.skipped += 1;
                continue;
            }
            Line::Decided(event) => event,
        };
        report.replayed += 1;
        let now = decide(engine, &event);
        if now.allowed == event.allowed {
            continue;
        }
        let key = ChangeKey {
            user: event.user.clone(),
            database: event.db_service.clone(),
            db_user: event.db_user.clone(),
            command: event.command.clone(),
            namespaces: event.namespaces.clone(),
            reaches_unlisted: event.reaches_unlisted.clone(),
            was_reason: event.reason.clone(),
            now_reason: now.reason.clone(),
        };
        match seen.get(&key) {
            Some(&i) => {
                let c = &mut report.changes[i];
                c.events += 1;
                if c.lines.len() < LINES_SHOWN {
                    c.lines.push(number);
                }
            }
            None => {
                seen.insert(key, report.changes.len());
                report.changes.push(Change {
                    user: event.user,
                    database: event.db_service,
                    db_user: event.db_user,
                    command: event.command,
                    namespaces: event.namespaces,
                    reaches_unlisted: event.reaches_unlisted,
                    was_allowed: event.allowed,
                    was_reason: event.reason,
                    now,
                    events: 1,
                    lines: vec![number],
                });
            }
        }
    }
    Ok(report)
}

/// What makes two changes the same (the old verdict is the opposite of the new one).
#[derive(Hash, PartialEq, Eq)]
struct ChangeKey {
    user: String,
    database: String,
    db_user: String,
    command: String,
    namespaces: Vec<String>,
    reaches_unlisted: Option<String>,
    was_reason: String,
    now_reason: String,
}

/// What one line of the audit log is to a replay.
enum Line {
    /// A blank line or another event (session start or end).
    Other,
    /// A query event the policy did not decide.
    NotByPolicy,
    /// A policy decision, to make again.
    Decided(Box<QueryEvent>),
}

fn read_line(line: &str) -> Result<Line, String> {
    if line.trim().is_empty() {
        return Ok(Line::Other);
    }
    let value: Value =
        serde_json::from_str(line).map_err(|e| format!("not a JSON audit event: {e}"))?;
    let Some(kind) = value.get("event").and_then(Value::as_str) else {
        return Err("not an audit event (no \"event\" field)".to_string());
    };
    if !QUERY_EVENTS.contains(&kind) {
        return Ok(Line::Other);
    }
    match value.get("decided_by").and_then(Value::as_str) {
        Some("policy") => {}
        Some(_) => return Ok(Line::NotByPolicy),
        None => {
            return Err(format!(
                "{kind} event without \"decided_by\": written by a libdocauth that did not record what a replay needs"
            ))
        }
    }
    let kind = kind.to_string();
    serde_json::from_value(value)
        .map(Line::Decided)
        .map_err(|e| format!("{kind} event: {e}"))
}

/// The decision the session would make now: [`PolicyEngine::decide_message`] for the
/// recorded identity (or, for one the session named, its entry in the new configuration).
fn decide(engine: &PolicyEngine, event: &QueryEvent) -> Decision {
    let identity = match event.identity_source {
        IdentitySource::Session => Arc::new(Identity::new(
            event.user.as_str(),
            event.user_roles.clone(),
            event.user_traits.clone(),
        )),
        IdentitySource::Config => match engine.session_identity(&event.user) {
            Ok(identity) => identity,
            Err(denied) => return denied,
        },
    };
    let request = Request::new(
        identity,
        event.db_service.as_str(),
        event.db_user.as_str(),
        event.database.as_str(),
    )
    .with_command(event.command.as_str())
    .with_namespaces(event.namespaces.clone());
    engine.decide_message(&request, event.reaches_unlisted.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ROLES: &str = r#"
roles:
  - kind: role
    version: v7
    metadata: {name: access}
    spec:
      allow:
        db_labels: {'*': '*'}
        db_users: ['*']
        db_names: [test, other]
  - kind: role
    version: v7
    metadata: {name: all}
    spec:
      allow:
        db_labels: {'*': '*'}
        db_users: ['*']
        db_names: ['*']
databases:
  - {name: docdb, labels: {env: dev}}
identities:
  - {user: alice, roles: [access]}
"#;

    fn engine(text: &str) -> PolicyEngine {
        PolicyEngine::from_config_str("test.yaml", text, None).unwrap()
    }

    /// The engine after a rollout that drops `other` from role `access`.
    fn stricter() -> PolicyEngine {
        engine(&ROLES.replace("[test, other]", "[test]"))
    }

    fn event(command: &str, db: &str, namespaces: &[&str], allowed: bool) -> Value {
        json!({
            "event": if allowed { "db.session.query" } else { "db.session.query.failed" },
            "code": if allowed { "TDB02I" } else { "TDB02W" },
            "sid": "s1", "user": "alice", "db_service": "docdb", "db_user": "u",
            "db_name": "test", "command": command, "database": db, "namespaces": namespaces,
            "reaches_unlisted": null, "allowed": allowed,
            "reason": if allowed { "allowed by role(s) [access]" } else { "denied: no" },
            "decided_by": "policy", "matched_roles": ["access"],
            "user_roles": ["access"], "user_traits": {}, "identity_source": "session",
        })
    }

    fn lines(events: &[Value]) -> String {
        events.iter().map(|e| format!("{e}\n")).collect()
    }

    fn run(engine: &PolicyEngine, text: &str) -> Result<Report, ReplayError> {
        replay(engine, text.as_bytes())
    }

    #[test]
    fn a_decision_that_flips_is_reported_once_per_distinct_change() {
        let log = lines(&[
            json!({"event": "db.session.start", "user": "alice", "success": true}),
            event("find", "test", &["test.orders"], true),
            event("insert", "other", &["other.stuff"], true),
            event("insert", "other", &["other.stuff"], true),
            event("hello", "admin", &["admin"], true),
            json!({"event": "db.session.end", "user": "alice"}),
        ]);
        let report = run(&stricter(), &log).unwrap();
        assert_eq!(
            (report.replayed, report.skipped, report.changed()),
            (4, 0, 2)
        );
        assert_eq!(report.changes.len(), 1);
        let c = &report.changes[0];
        assert_eq!((c.command.as_str(), c.events), ("insert", 2));
        assert_eq!(c.lines, vec![3, 4]);
        assert!(c.was_allowed && !c.now.allowed);
        assert!(c.now.reason.contains("other"), "{}", c.now.reason);
        let text = report.render("audit.jsonl");
        assert!(
            text.starts_with(
                "audit.jsonl:3: ALLOW -> DENY: alice on docdb as u: insert other.stuff (2 events, lines 3, 4)\n    now: denied: "
            ),
            "{text}"
        );
        assert!(
            text.contains("\n    was: allowed by role(s) [access]\n"),
            "{text}"
        );
        assert!(
            text.ends_with(
                "replayed 4 decisions: 2 would change (2 ALLOW -> DENY, 0 DENY -> ALLOW)\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn the_same_policy_changes_nothing() {
        let log = lines(&[
            event("find", "test", &["test.orders"], true),
            event("insert", "admin", &["admin.x"], false),
        ]);
        let report = run(&engine(ROLES), &log).unwrap();
        assert_eq!((report.replayed, report.changed()), (2, 0));
        assert_eq!(
            report.render("a"),
            "replayed 2 decisions: none would change\n"
        );
    }

    #[test]
    fn a_grant_is_a_deny_to_allow_change() {
        let mut e = event("insert", "admin", &["admin.x"], false);
        e["user_roles"] = json!(["all"]);
        e["reason"] = json!("denied: was");
        let report = run(&engine(ROLES), &lines(&[e])).unwrap();
        assert_eq!(report.changed(), 1);
        assert!(report.changes[0].now.allowed);
        assert!(report
            .summary()
            .ends_with("1 would change (0 ALLOW -> DENY, 1 DENY -> ALLOW)"));
    }

    #[test]
    fn a_named_identity_is_looked_up_in_the_new_configuration() {
        let mut e = event("find", "test", &["test.orders"], true);
        e["identity_source"] = json!("config");
        // The recorded roles would still allow; the new configuration's alice has none.
        let text = ROLES.replace("{user: alice, roles: [access]}", "{user: alice, roles: []}");
        let report = run(&engine(&text), &lines(std::slice::from_ref(&e))).unwrap();
        assert_eq!(report.changed(), 1);
        // And when alice left the configuration, the running session's answer.
        let text = ROLES.replace("{user: alice, roles: [access]}", "{user: bob, roles: []}");
        let report = run(&engine(&text), &lines(&[e])).unwrap();
        assert_eq!(
            report.changes[0].now.reason,
            "denied: identity \"alice\" is no longer in the policy engine's configuration"
        );
    }

    #[test]
    fn a_command_reaching_unlisted_databases_needs_every_database() {
        let mut e = event("eval", "test", &["test"], true);
        e["reaches_unlisted"] = json!("`eval` reaches every database or the whole server");
        e["user_roles"] = json!(["all"]);
        let report = run(&engine(ROLES), &lines(std::slice::from_ref(&e))).unwrap();
        assert_eq!(report.changed(), 0);
        e["user_roles"] = json!(["access"]);
        let report = run(&engine(ROLES), &lines(&[e])).unwrap();
        let now = &report.changes[0].now;
        assert!(
            now.reason.starts_with("libdocauth cannot list the databases command \"eval\" reaches (`eval` reaches every database"),
            "{}",
            now.reason
        );
        assert!(report
            .render("a")
            .contains(": eval test and unlisted databases ("));
    }

    #[test]
    fn query_events_the_policy_did_not_decide_are_skipped() {
        let mut refused = event("saslStart", "admin", &["admin"], false);
        refused["decided_by"] = json!("analysis");
        let unreadable =
            json!({"event": "db.session.query.failed", "command": "", "decided_by": "protocol"});
        let report = run(&stricter(), &lines(&[refused, unreadable])).unwrap();
        assert_eq!(
            (report.replayed, report.skipped, report.changed()),
            (0, 2, 0)
        );
        assert_eq!(
            report.summary(),
            "replayed 0 decisions (2 query events not decided by the policy skipped): none would change"
        );
    }

    #[test]
    fn unusable_lines_are_errors_naming_the_line() {
        let good = event("find", "test", &["test.orders"], true).to_string();
        let err = run(&stricter(), &format!("{good}\n\nnot json\n")).unwrap_err();
        assert_eq!(err.line, 3);
        assert!(
            err.to_string()
                .starts_with("line 3: not a JSON audit event: "),
            "{err}"
        );

        let err = run(&stricter(), "{\"user\": \"alice\"}\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1: not an audit event (no \"event\" field)"
        );

        let mut old = event("find", "test", &["test.orders"], true);
        old.as_object_mut().unwrap().remove("decided_by");
        let err = run(&stricter(), &lines(&[old])).unwrap_err();
        assert!(err.message.contains("without \"decided_by\""), "{err}");

        let mut partial = event("find", "test", &["test.orders"], true);
        partial.as_object_mut().unwrap().remove("user_roles");
        let err = run(&stricter(), &lines(&[partial])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1: db.session.query event: missing field `user_roles`"
        );
    }
}
