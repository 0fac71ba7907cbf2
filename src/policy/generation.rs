//! One generation of the rules: the compiled roles, databases and identities of one
//! configuration, how a request is matched against them, and the generation's own decision
//! cache. A reload builds a new generation; decisions in flight finish on the old one.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use regorus::Value;

use super::cache::DecisionCache;
use super::config::Config;
use super::labels::LabelSelector;
use super::model::{Database, Decision, Identity, Request};
use super::rego::{self, obj, str_list, str_map, OperatorModules};
use super::role::Role;
use super::template::{Template, Traits};
use super::INPUT_VERSION;
use crate::Error;

static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

pub(super) struct DatabaseEntry {
    pub(super) db: Database,
    /// The `input.database` value, built once.
    pub(super) value: Value,
}

pub(super) struct LoadedRole {
    pub(super) role: Role,
}

/// One immutable set of rules with its own decision cache.
pub(super) struct Generation {
    pub(super) id: u64,
    pub(super) roles: HashMap<String, LoadedRole>,
    pub(super) databases: HashMap<String, DatabaseEntry>,
    pub(super) identities: HashMap<String, Arc<Identity>>,
    pub(super) operator: Option<OperatorModules>,
    pub(super) cache: DecisionCache,
}

// -- matching -------------------------------------------------------------------------

/// The IAM alias of a db user on a database with AWS metadata (DocumentDB): the full role
/// ARN for a role name, the role name for a role ARN of the database's account.
fn iam_alias(db: &Database, user: &str) -> Option<String> {
    let account = db.aws.account_id.as_str();
    if account.is_empty() || user.is_empty() {
        return None;
    }
    let partition = if db.aws.region.starts_with("cn-") {
        "aws-cn"
    } else if db.aws.region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    };
    if let Some(rest) = user.strip_prefix("arn:") {
        // arn:<partition>:iam::<account>:role/<path/>name
        let mut parts = rest.splitn(5, ':');
        let (p, service, region, acct, resource) = (
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        );
        let name = resource.strip_prefix("role/")?;
        if service != "iam" || !region.is_empty() || acct != account || p != partition {
            return None;
        }
        if name.is_empty() || name.ends_with('/') {
            return None;
        }
        return Some(name.to_string());
    }
    if user.contains(':') {
        return None;
    }
    let name = user.strip_prefix("role/").unwrap_or(user);
    if name.is_empty() {
        return None;
    }
    Some(format!("arn:{partition}:iam::{account}:role/{name}"))
}

/// `db_users`: exact or `*` for the requested user; exact only for its IAM alias
/// (Teleport's `databaseUserMatcher` with `matchWildcard=false` for alternative names).
fn user_matches(selectors: &[Template], traits: &Traits, user: &str, alias: Option<&str>) -> bool {
    selectors.iter().any(|t| {
        t.any_expansion(traits, |s| {
            s == "*" || s == user || alias.is_some_and(|a| s == a)
        })
    })
}

/// `db_names`: exact or `*` (Teleport's `MatchDatabaseName`).
fn name_matches(selectors: &[Template], traits: &Traits, name: &str) -> bool {
    selectors
        .iter()
        .any(|t| t.any_expansion(traits, |s| s == "*" || s == name))
}

fn labels_match(
    sel: &Result<std::borrow::Cow<'_, LabelSelector>, String>,
    labels: &BTreeMap<String, String>,
    role: &str,
    side: &str,
    errors: &mut Vec<String>,
) -> bool {
    match sel {
        Ok(s) => s.matches(labels),
        Err(e) => {
            errors.push(format!(
                "role {role:?}: {side}.db_labels cannot be evaluated for this identity: {e}"
            ));
            false
        }
    }
}

impl Generation {
    pub(super) fn build(config: Config) -> Result<Generation, Error> {
        rego::check_builtin()?;
        let id = NEXT_GENERATION.fetch_add(1, Ordering::Relaxed);
        let operator = if config.modules.is_empty() {
            None
        } else {
            Some(OperatorModules::new(id, &config.modules)?)
        };
        let roles = config
            .roles
            .into_iter()
            .map(|role| (role.name.clone(), LoadedRole { role }))
            .collect();
        let databases = config
            .databases
            .into_iter()
            .map(|db| {
                let value = obj([
                    ("name", Value::from(db.name.as_str())),
                    ("protocol", Value::from(db.protocol.as_str())),
                    ("uri", Value::from(db.uri.as_str())),
                    ("labels", str_map(&db.labels)),
                    (
                        "aws",
                        obj([
                            ("account_id", Value::from(db.aws.account_id.as_str())),
                            ("region", Value::from(db.aws.region.as_str())),
                            (
                                "assume_role_arn",
                                Value::from(db.aws.assume_role_arn.as_str()),
                            ),
                        ]),
                    ),
                ]);
                (db.name.clone(), DatabaseEntry { db, value })
            })
            .collect();
        let identities = config
            .identities
            .into_iter()
            .map(|spec| (spec.user.clone(), Arc::new(Identity::from_spec(spec))))
            .collect();
        Ok(Generation {
            id,
            roles,
            databases,
            identities,
            operator,
            cache: DecisionCache::new(),
        })
    }

    /// Runs the matchers and builds the Rego input. `Err` is an immediate decision
    /// (unknown database).
    pub(super) fn facts(&self, req: &Request) -> Result<(Value, Facts), Decision> {
        let Some(entry) = self.databases.get(&req.database) else {
            return Err(Decision::deny(
                format!(
                    "denied: database {:?} is not configured in the policy engine",
                    req.database
                ),
                vec![],
            ));
        };
        let db = &entry.db;
        let identity = &req.identity;
        let alias = iam_alias(db, &req.db_user);
        let alias = alias.as_deref();
        let databases = req.databases();

        let mut facts = Facts::default();
        let mut allow_by_name: Vec<Vec<&str>> = vec![Vec::new(); databases.len()];
        let mut deny_values = Vec::new();
        for name in identity.roles() {
            let Some(loaded) = self.roles.get(name) else {
                facts.unknown_roles.push(name.clone());
                continue;
            };
            facts.known_roles.push(name.clone());
            let role = &loaded.role;
            let traits = identity.traits();
            // Deny: greedy, each rule on its own (Teleport: labels match, or MatchAny).
            let mut push_deny = |rule: &'static str, value: &str, facts: &mut Facts| {
                deny_values.push(obj([
                    ("role", Value::from(name.as_str())),
                    ("rule", Value::from(rule)),
                    ("value", Value::from(value)),
                ]));
                if !facts.deny_roles.contains(name) {
                    facts.deny_roles.push(name.clone());
                }
            };
            let deny_labels = role.deny.labels_for(traits);
            if labels_match(&deny_labels, &db.labels, name, "deny", &mut facts.errors) {
                push_deny("db_labels", &db.name, &mut facts);
            }
            if user_matches(&role.deny.db_users, traits, &req.db_user, alias) {
                push_deny("db_users", &req.db_user, &mut facts);
            }
            for n in &databases {
                if name_matches(&role.deny.db_names, traits, n) {
                    push_deny("db_names", n, &mut facts);
                }
            }
            // Allow: one role must match labels, db user and db name together.
            let allow_labels = role.allow.labels_for(traits);
            if !labels_match(&allow_labels, &db.labels, name, "allow", &mut facts.errors) {
                continue;
            }
            facts.any_allow_labels = true;
            if !user_matches(&role.allow.db_users, traits, &req.db_user, alias) {
                continue;
            }
            facts.connect_roles.push(name.clone());
            let mut allows_a_name = databases.is_empty();
            for (i, n) in databases.iter().enumerate() {
                if name_matches(&role.allow.db_names, traits, n) {
                    allow_by_name[i].push(name.as_str());
                    allows_a_name = true;
                }
            }
            if allows_a_name {
                facts.allow_roles.push(name.clone());
            }
        }
        facts.all_names_allowed = allow_by_name.iter().all(|roles| !roles.is_empty());
        let mut allow_map = BTreeMap::new();
        for (i, n) in databases.iter().enumerate() {
            allow_map.insert(Value::from(*n), str_list(&allow_by_name[i]));
        }
        let command = match &req.command {
            Some(c) => Value::from(c.as_str()),
            None => Value::Null,
        };
        let input = obj([
            ("version", Value::from(INPUT_VERSION)),
            ("identity", identity.rego_value()),
            ("database", entry.value.clone()),
            (
                "request",
                obj([
                    ("db_user", Value::from(req.db_user.as_str())),
                    ("db_name", Value::from(req.db_name.as_str())),
                    ("command", command),
                    ("namespaces", str_list(&req.namespaces)),
                    ("databases", str_list(&databases)),
                    (
                        "connection_command",
                        Value::from(req.is_connection_command()),
                    ),
                    ("db_user_alias", alias.map_or(Value::Null, Value::from)),
                ]),
            ),
            (
                "rbac",
                obj([
                    ("deny", Value::from(deny_values)),
                    ("connect_roles", str_list(&facts.connect_roles)),
                    ("allow", Value::from(allow_map)),
                    ("unknown_roles", str_list(&facts.unknown_roles)),
                    ("errors", str_list(&facts.errors)),
                ]),
            ),
        ]);
        Ok((input, facts))
    }

    pub(super) fn decide(&self, req: &Request) -> Decision {
        let (input, facts) = match self.facts(req) {
            Ok(v) => v,
            Err(d) => return d,
        };
        let allowed = match rego::eval_allow(input.clone()) {
            Ok(a) => a,
            Err(e) => {
                return Decision::deny(
                    format!("denied: the built-in policy failed to evaluate ({e})"),
                    vec![],
                )
            }
        };
        let user = req.identity.user();
        let db = &req.database;
        // Defense in depth: the Rust facts must agree with the Rego verdict; a disagreement
        // (a bug in either) denies.
        let facts_allow = facts.deny_roles.is_empty()
            && facts.unknown_roles.is_empty()
            && facts.errors.is_empty()
            && !facts.connect_roles.is_empty()
            && facts.all_names_allowed;
        if allowed && !facts_allow {
            return Decision::deny(
                "denied: internal consistency check failed (the Rego verdict allows what the matchers do not); please report this bug",
                vec![],
            );
        }
        if !allowed {
            let mut reasons = match rego::eval_deny_reasons(input) {
                Ok(r) => r,
                Err(e) => vec![format!("the built-in policy failed to explain ({e})")],
            };
            if facts.known_roles.is_empty() && facts.unknown_roles.is_empty() {
                reasons = vec![format!("identity {user:?} holds no roles")];
            } else if facts.deny_roles.is_empty()
                && facts.unknown_roles.is_empty()
                && facts.errors.is_empty()
                && !facts.any_allow_labels
            {
                reasons = vec![format!(
                    "no allow.db_labels of roles [{}] match database {db:?}",
                    facts.known_roles.join(", ")
                )];
            }
            if reasons.is_empty() {
                reasons.push("no allow rule matched (default deny)".to_string());
            }
            reasons.sort();
            return Decision::deny(format!("denied: {}", reasons.join("; ")), facts.deny_roles);
        }
        if let Some(op) = &self.operator {
            let mut reasons = op.deny_reasons(input);
            if !reasons.is_empty() {
                reasons.sort();
                return Decision::deny(format!("denied: {}", reasons.join("; ")), vec![]);
            }
        }
        let names = req.databases();
        let what = if names.is_empty() {
            format!(
                "connection command {:?} (no database name needed)",
                req.command.as_deref().unwrap_or("")
            )
        } else {
            format!("database name(s) [{}]", names.join(", "))
        };
        Decision {
            allowed: true,
            reason: format!(
                "allowed by role(s) [{}]: allow.db_labels match database {db:?}, allow.db_users match {:?}, allow.db_names match {what}",
                facts.allow_roles.join(", "),
                req.db_user
            ),
            matched_roles: facts.allow_roles,
        }
    }
}

#[derive(Default)]
pub(super) struct Facts {
    pub(super) known_roles: Vec<String>,
    pub(super) unknown_roles: Vec<String>,
    pub(super) errors: Vec<String>,
    pub(super) deny_roles: Vec<String>,
    pub(super) connect_roles: Vec<String>,
    pub(super) allow_roles: Vec<String>,
    pub(super) any_allow_labels: bool,
    pub(super) all_names_allowed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::AwsMetadata;

    #[test]
    fn iam_aliases() {
        let db = Database {
            name: "d".into(),
            protocol: "mongodb".into(),
            uri: String::new(),
            labels: Default::default(),
            aws: AwsMetadata {
                account_id: "123456789012".into(),
                region: "us-east-1".into(),
                ..Default::default()
            },
        };
        assert_eq!(
            iam_alias(&db, "teleport-docdb-user").as_deref(),
            Some("arn:aws:iam::123456789012:role/teleport-docdb-user")
        );
        assert_eq!(
            iam_alias(&db, "arn:aws:iam::123456789012:role/teleport-docdb-user").as_deref(),
            Some("teleport-docdb-user")
        );
        assert_eq!(
            iam_alias(&db, "arn:aws:iam::999999999999:role/teleport-docdb-user"),
            None
        );
        assert_eq!(iam_alias(&db, "arn:aws:iam::123456789012:user/bob"), None);
    }
}
