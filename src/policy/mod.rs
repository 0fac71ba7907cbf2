//! Database access decisions: Teleport-compatible roles evaluated by a Rego policy.
//!
//! - [`role`]: role documents (`db_labels`, `db_users`, `db_names`), validated and compiled
//!   when loaded;
//! - [`labels`] and [`template`]: label selectors and trait templates, Teleport's semantics;
//! - [`rego`]: the built-in Rego policy (`builtin.rego`) and operator modules (`regorus`);
//! - [`config`]: the engine configuration and its limits; [`lint`]: what in one silently
//!   matches nothing (`docauth-check lint`); [`replay`]: an audit log re-decided under another
//!   configuration (`docauth-check replay`);
//! - `generation`: one immutable set of compiled rules, how a request is matched against
//!   them, and its own decision cache;
//! - this module: [`PolicyEngine`], built once from a [`Config`], shareable across threads,
//!   reloaded by swapping in a new generation atomically.
//!
//! The Rego input document is a stable contract, documented in `docs/policy.md`.

pub mod config;
pub mod labels;
pub mod lint;
pub mod model;
pub mod rego;
pub mod replay;
pub mod role;
pub mod template;

mod cache;
mod generation;
pub mod metrics;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;

pub use cache::MAX_CACHE_BYTES;
pub use config::Config;
pub use model::{AwsMetadata, Database, Decision, Identity, IdentitySpec, Request};
pub use role::Role;

use crate::Error;
use generation::Generation;
use metrics::{EngineMetrics, PolicyMetrics};

/// Version of the Rego input document (`input.version`).
pub(crate) const INPUT_VERSION: i64 = 1;

/// The policy engine. `Send + Sync`: share it (e.g. in an `Arc`) between sessions.
///
/// [`decide`](Self::decide) may run on any number of threads while
/// [`reload`](Self::reload) swaps in new rules: each decision sees either the old or the
/// new rules, never a mix, and the next decision after a reload sees the new ones.
pub struct PolicyEngine {
    current: ArcSwap<Generation>,
    /// Kept across reloads.
    metrics: Arc<PolicyMetrics>,
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
            metrics: Arc::default(),
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
        self.decide_in(&self.current.load(), request)
    }

    /// Decides with `generation`'s rules and cache, counting the decision.
    fn decide_in(&self, generation: &Generation, request: &Request) -> Arc<Decision> {
        let hash = request.cache_hash();
        if let Some(hit) = generation.cache.get(hash, request) {
            self.metrics.hit(hit.allowed);
            return hit;
        }
        let started = Instant::now();
        let decision = Arc::new(generation.decide(request));
        self.metrics.evaluated(decision.allowed, started.elapsed());
        generation
            .cache
            .insert(hash, request.clone(), Arc::clone(&decision));
        decision
    }

    /// This engine's metrics as they are now, for [`crate::metrics::render`].
    pub fn metrics(&self) -> EngineMetrics {
        EngineMetrics(Arc::clone(&self.metrics))
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
        let decision = self.decide_in(&generation, &every);
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

    /// The identity a session names (the session parameters' `"identity": "alice"`), read from
    /// the current rules at every decision so that a reload changing it applies to running
    /// sessions. `Err` is the decision for every message of a session whose identity left the
    /// configuration.
    pub fn session_identity(&self, user: &str) -> Result<Arc<Identity>, Decision> {
        self.identity(user).ok_or_else(|| {
            Decision::deny(
                format!(
                    "denied: identity {user:?} is no longer in the policy engine's configuration"
                ),
                Vec::new(),
            )
        })
    }

    /// The decision for one client message, as a session makes it and as `docauth-check
    /// replay` re-makes it from the message's audit event (one function, so that a replay
    /// decides exactly as the relay did). `request` carries the command, its `$db` as
    /// `db_name` and every namespace the command reaches; `unlisted` says why the command can
    /// also reach databases nobody can list, and then it needs every database
    /// ([`may_reach_every_database`](Self::may_reach_every_database)).
    pub fn decide_message(&self, request: &Request, unlisted: Option<&str>) -> Decision {
        if let Some(why) = unlisted {
            let every = self.may_reach_every_database(request);
            if !every.allowed {
                return Decision::deny(
                    format!(
                        "libdocauth cannot list the databases command {:?} reaches ({why}); {}",
                        request.command.as_deref().unwrap_or_default(),
                        every.reason
                    ),
                    every.matched_roles,
                );
            }
        }
        Decision::clone(&self.decide(request))
    }

    /// Only the verdict: the cheapest per-message check.
    pub fn is_allowed(&self, request: &Request) -> bool {
        let generation = self.current.load();
        let hash = request.cache_hash();
        if let Some(allowed) = generation.cache.allowed(hash, request) {
            self.metrics.hit(allowed);
            return allowed;
        }
        let started = Instant::now();
        let decision = Arc::new(generation.decide(request));
        let allowed = decision.allowed;
        self.metrics.evaluated(allowed, started.elapsed());
        generation.cache.insert(hash, request.clone(), decision);
        allowed
    }

    /// Decides without reading or filling the cache.
    pub fn decide_uncached(&self, request: &Request) -> Decision {
        let started = Instant::now();
        let decision = self.current.load().decide(request);
        self.metrics.evaluated(decision.allowed, started.elapsed());
        decision
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

    /// Estimated bytes of the cached decisions of the current generation; never more than
    /// [`MAX_CACHE_BYTES`] (64 MiB), whatever names the requests carry.
    pub fn cached_bytes(&self) -> usize {
        self.current.load().cache.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn engine_is_send_and_sync() {
        assert_send_sync::<PolicyEngine>();
    }
}
