//! Database access decisions: Teleport-compatible roles evaluated by a Rego policy.
//!
//! - [`role`]: role documents (`db_labels`, `db_users`, `db_names`), validated and compiled
//!   when loaded;
//! - [`labels`] and [`template`]: label selectors and trait templates, Teleport's semantics;
//! - [`rego`]: the built-in Rego policy (`builtin.rego`) and operator modules (`regorus`);
//! - [`config`]: the engine configuration and its limits;
//! - this module: [`PolicyEngine`], built once from a [`Config`], shareable across threads,
//!   reloaded by swapping in a new generation atomically; each generation has its own
//!   decision cache.
//!
//! The Rego input document is a stable contract, documented in `docs/policy.md`.

pub mod config;
pub mod labels;
pub mod model;
pub mod rego;
pub mod role;
pub mod template;

mod cache;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use regorus::Value;

pub use config::Config;
pub use model::{AwsMetadata, Database, Decision, Identity, IdentitySpec, Request};
pub use role::Role;

use crate::Error;
use cache::DecisionCache;
use labels::LabelSelector;
use rego::{obj, str_list, str_map, OperatorModules};
use template::{Template, Traits};

/// Version of the Rego input document (`input.version`).
pub(crate) const INPUT_VERSION: i64 = 1;

static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

struct DatabaseEntry {
    db: Database,
    /// The `input.database` value, built once.
    value: Value,
}

struct LoadedRole {
    role: Role,
}

/// One immutable set of rules with its own decision cache.
struct Generation {
    id: u64,
    roles: HashMap<String, LoadedRole>,
    databases: HashMap<String, DatabaseEntry>,
    identities: HashMap<String, Arc<Identity>>,
    operator: Option<OperatorModules>,
    cache: DecisionCache,
}

/// The policy engine. `Send + Sync`: share it (e.g. in an `Arc`) between sessions.
///
/// [`decide`](Self::decide) may run on any number of threads while
/// [`reload`](Self::reload) swaps in new rules: each decision sees either the old or the
/// new rules, never a mix, and the next decision after a reload sees the new ones.
pub struct PolicyEngine {
    current: ArcSwap<Generation>,
}

impl std::fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = self.current.load();
        f.debug_struct("PolicyEngine")
            .field("generation", &g.id)
            .field("roles", &g.roles.len())
            .field("databases", &g.databases.len())
            .finish()
    }
}

impl PolicyEngine {
    /// Builds an engine. Errors only for bad configuration (invalid Rego, …).
    pub fn new(config: Config) -> Result<PolicyEngine, Error> {
        Ok(PolicyEngine {
            current: ArcSwap::from_pointee(Generation::build(config)?),
        })
    }

    /// Builds an engine from a config file (JSON or YAML).
    pub fn from_file(path: impl AsRef<Path>) -> Result<PolicyEngine, Error> {
        PolicyEngine::new(Config::from_file(path)?)
    }

    /// Builds an engine from config text; `source` names it in error messages.
    pub fn from_config_str(
        source: &str,
        text: &str,
        base_dir: Option<&Path>,
    ) -> Result<PolicyEngine, Error> {
        PolicyEngine::new(Config::from_str(source, text, base_dir)?)
    }

    /// Replaces the rules atomically. On error the current rules stay in force.
    pub fn reload(&self, config: Config) -> Result<(), Error> {
        let next = Generation::build(config)?;
        self.current.store(Arc::new(next));
        Ok(())
    }

    /// A number that changes with every successful reload.
    pub fn generation(&self) -> u64 {
        self.current.load().id
    }

    /// A configured identity (config `identities`), by user name.
    pub fn identity(&self, user: &str) -> Option<Arc<Identity>> {
        self.current.load().identities.get(user).cloned()
    }

    /// A configured database, by name.
    pub fn database(&self, name: &str) -> Option<Database> {
        self.current
            .load()
            .databases
            .get(name)
            .map(|e| e.db.clone())
    }

    /// Decides, answering from the cache of the current generation when it can.
    pub fn decide(&self, request: &Request) -> Arc<Decision> {
        self.current.load().decide_cached(request)
    }

    /// For a command that can reach databases nobody can list (unknown command, cluster-wide
    /// operation, JavaScript…): allowed only when the identity may reach *every* database —
    /// the request with `db_name` `*` (and no namespaces) is allowed — and none of the
    /// identity's roles has a `deny.db_names` rule (such a rule would deny some database the
    /// command may reach). Both are read from one generation of the rules; the first part
    /// is cached.
    pub fn may_reach_every_database(&self, request: &Request) -> Decision {
        let generation = self.current.load();
        let mut every = request.clone();
        every.db_name = "*".to_string();
        every.namespaces.clear();
        let decision = generation.decide_cached(&every);
        if !decision.allowed {
            return Decision::deny(
                format!(
                    "denied: the command needs access to every database (db_names \"*\") on database {:?}, which {}",
                    request.database,
                    decision.reason.trim_start_matches("denied: ")
                ),
                decision.matched_roles.clone(),
            );
        }
        let traits = request.identity.traits();
        for name in request.identity.roles() {
            let Some(loaded) = generation.roles.get(name) else {
                continue;
            };
            if loaded
                .role
                .deny
                .db_names
                .iter()
                .any(|t| t.any_expansion(traits, |_| true))
            {
                return Decision::deny(
                    format!(
                        "denied: the command needs access to every database on database {:?}, but role {name:?} has deny.db_names rules",
                        request.database
                    ),
                    vec![name.clone()],
                );
            }
        }
        Decision {
            allowed: true,
            reason: format!(
                "allowed: every database on database {:?}: {}",
                request.database, decision.reason
            ),
            matched_roles: decision.matched_roles.clone(),
        }
    }

    /// Only the verdict: the cheapest per-message check.
    pub fn is_allowed(&self, request: &Request) -> bool {
        let generation = self.current.load();
        let hash = request.cache_hash();
        if let Some(allowed) = generation.cache.allowed(hash, request) {
            return allowed;
        }
        let decision = Arc::new(generation.decide(request));
        let allowed = decision.allowed;
        generation.cache.insert(hash, request.clone(), decision);
        allowed
    }

    /// Decides without reading or filling the cache.
    pub fn decide_uncached(&self, request: &Request) -> Decision {
        self.current.load().decide(request)
    }

    /// The Rego input document the built-in policy and operator modules see for `request`
    /// (for `docauth-check --explain` and the documentation).
    pub fn input_json(&self, request: &Request) -> String {
        let generation = self.current.load();
        match generation.facts(request) {
            Ok((input, _)) => input.to_json_str().unwrap_or_default(),
            Err(d) => serde_json::json!({ "decision": d }).to_string(),
        }
    }

    /// Parses a decision request document (the C ABI's `request_json`):
    ///
    /// ```json
    /// {"identity": {"user": "alice", "roles": ["access"], "traits": {"db_users": ["*"]}},
    ///  "database": "my-docdb", "db_user": "teleport-docdb-user", "db_name": "test",
    ///  "command": "find", "namespaces": ["test.orders"]}
    /// ```
    ///
    /// `identity` may also be the user name of an identity from the config. `command` and
    /// `namespaces` are optional.
    pub fn request_from_json(&self, json: &str) -> Result<Request, Error> {
        use crate::ResultCode;
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum IdentityRef {
            Name(String),
            Spec(IdentitySpec),
        }
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct RawRequest {
            identity: IdentityRef,
            database: String,
            db_user: String,
            #[serde(default)]
            db_name: String,
            #[serde(default)]
            command: Option<String>,
            #[serde(default)]
            namespaces: Vec<String>,
        }
        const MAX_REQUEST_BYTES: usize = 1024 * 1024;
        if json.len() > MAX_REQUEST_BYTES {
            return Err(Error::new(
                ResultCode::PolicyRequestInvalid,
                format!(
                    "request is {} bytes, larger than the limit of {MAX_REQUEST_BYTES}",
                    json.len()
                ),
            ));
        }
        let raw: RawRequest = serde_json::from_str(json).map_err(|e| {
            Error::new(
                ResultCode::PolicyRequestInvalid,
                format!("request: line {} column {}: {e}", e.line(), e.column()),
            )
        })?;
        let identity = match raw.identity {
            IdentityRef::Spec(spec) => Arc::new(Identity::from_spec(spec)),
            IdentityRef::Name(name) => self.identity(&name).ok_or_else(|| {
                Error::new(
                    ResultCode::PolicyRequestInvalid,
                    format!("request: identity {name:?} is not in the config's identities"),
                )
            })?,
        };
        Ok(Request {
            identity,
            database: raw.database,
            db_user: raw.db_user,
            db_name: raw.db_name,
            command: raw.command,
            namespaces: raw.namespaces,
        })
    }

    /// Number of cached decisions in the current generation.
    pub fn cached_decisions(&self) -> usize {
        self.current.load().cache.len()
    }
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
    /// Decides, answering from this generation's cache when it can.
    fn decide_cached(&self, request: &Request) -> Arc<Decision> {
        let hash = request.cache_hash();
        if let Some(hit) = self.cache.get(hash, request) {
            return hit;
        }
        let decision = Arc::new(self.decide(request));
        self.cache
            .insert(hash, request.clone(), Arc::clone(&decision));
        decision
    }

    fn build(config: Config) -> Result<Generation, Error> {
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
    fn facts(&self, req: &Request) -> Result<(Value, Facts), Decision> {
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

    fn decide(&self, req: &Request) -> Decision {
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
struct Facts {
    known_roles: Vec<String>,
    unknown_roles: Vec<String>,
    errors: Vec<String>,
    deny_roles: Vec<String>,
    connect_roles: Vec<String>,
    allow_roles: Vec<String>,
    any_allow_labels: bool,
    all_names_allowed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn engine_is_send_and_sync() {
        assert_send_sync::<PolicyEngine>();
    }

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
