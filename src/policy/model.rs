//! What a decision is about: the identity, the database and the request.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::template::Traits;

/// Who is asking: a user name, the role names they hold and their traits
/// (`db_users`, `db_names` and any external trait).
///
/// Immutable once built; its hash is computed once so cached decisions are cheap.
#[derive(Debug, Clone)]
pub struct Identity {
    user: String,
    roles: Vec<String>,
    traits: Traits,
    hash: u64,
    /// `input.identity` for Rego, built on first use.
    value: std::sync::OnceLock<regorus::Value>,
}

/// The serialized form of an [`Identity`] (config files, request JSON, Rego input).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IdentitySpec {
    pub user: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub traits: Traits,
}

impl Identity {
    pub fn new(user: impl Into<String>, roles: Vec<String>, traits: Traits) -> Identity {
        let user = user.into();
        let mut h = rustc_hash::FxHasher::default();
        user.hash(&mut h);
        roles.hash(&mut h);
        traits.hash(&mut h);
        Identity {
            user,
            roles,
            traits,
            hash: h.finish(),
            value: std::sync::OnceLock::new(),
        }
    }

    pub fn from_spec(spec: IdentitySpec) -> Identity {
        Identity::new(spec.user, spec.roles, spec.traits)
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn roles(&self) -> &[String] {
        &self.roles
    }

    pub fn traits(&self) -> &Traits {
        &self.traits
    }

    /// The Rego `input.identity` value (built once per identity).
    pub(crate) fn rego_value(&self) -> regorus::Value {
        self.value
            .get_or_init(|| {
                super::rego::obj([
                    ("user", regorus::Value::from(self.user.as_str())),
                    ("roles", super::rego::str_list(&self.roles)),
                    ("traits", super::rego::traits_value(&self.traits)),
                ])
            })
            .clone()
    }

    pub(crate) fn precomputed_hash(&self) -> u64 {
        self.hash
    }

    pub fn to_spec(&self) -> IdentitySpec {
        IdentitySpec {
            user: self.user.clone(),
            roles: self.roles.clone(),
            traits: self.traits.clone(),
        }
    }
}

impl PartialEq for Identity {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
            && self.user == other.user
            && self.roles == other.roles
            && self.traits == other.traits
    }
}

impl Eq for Identity {}

/// AWS metadata of a database (DocumentDB): used to name IAM db users and, by the session,
/// to obtain credentials.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AwsMetadata {
    #[serde(default)]
    pub account_id: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub assume_role_arn: String,
    /// Passed to STS AssumeRole; not shown to Rego modules.
    #[serde(default)]
    pub external_id: String,
}

/// A database the proxy can reach.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Database {
    pub name: String,
    #[serde(default = "default_protocol")]
    pub protocol: String,
    #[serde(default)]
    pub uri: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub aws: AwsMetadata,
}

fn default_protocol() -> String {
    "mongodb".to_string()
}

/// Commands a MongoDB driver sends while connecting or keeping a connection alive touch no
/// database's data, so they need no `$db` (usually `admin`) in `db_names`: the command table's
/// connection rows ([`crate::wire::Reach::Connection`]), the same the wire analysis uses.
pub use crate::wire::is_connection_command;

/// One question: may `identity` reach `database` as `db_user`, touching `db_name` (and, per
/// message, every namespace `db.coll` the command names)?
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub identity: Arc<Identity>,
    pub database: String,
    pub db_user: String,
    pub db_name: String,
    /// The command name of the message (`find`, `dropDatabase`…); `None` for the
    /// connection-level check.
    pub command: Option<String>,
    /// Every `db.coll` namespace the message touches.
    pub namespaces: Vec<String>,
}

impl Request {
    pub fn new(
        identity: Arc<Identity>,
        database: impl Into<String>,
        db_user: impl Into<String>,
        db_name: impl Into<String>,
    ) -> Request {
        Request {
            identity,
            database: database.into(),
            db_user: db_user.into(),
            db_name: db_name.into(),
            command: None,
            namespaces: Vec::new(),
        }
    }

    pub fn with_command(mut self, command: impl Into<String>) -> Request {
        self.command = Some(command.into());
        self
    }

    pub fn with_namespaces(mut self, namespaces: Vec<String>) -> Request {
        self.namespaces = namespaces;
        self
    }

    /// True for a connection command (see [`is_connection_command`]).
    pub fn is_connection_command(&self) -> bool {
        self.command.as_deref().is_some_and(is_connection_command)
    }

    /// The logical databases the request touches: `db_name` and the database part of every
    /// namespace, deduplicated, in first-seen order. Empty for a connection command.
    pub fn databases(&self) -> Vec<&str> {
        if self.is_connection_command() {
            return Vec::new();
        }
        let mut out: Vec<&str> = vec![self.db_name.as_str()];
        for ns in &self.namespaces {
            let db = ns.split_once('.').map_or(ns.as_str(), |(db, _)| db);
            if !out.contains(&db) {
                out.push(db);
            }
        }
        out
    }

    /// A hash of every field, cheap to compute (the identity's hash is precomputed).
    pub(crate) fn cache_hash(&self) -> u64 {
        let mut h = rustc_hash::FxHasher::default();
        h.write_u64(self.identity.precomputed_hash());
        self.database.hash(&mut h);
        self.db_user.hash(&mut h);
        self.db_name.hash(&mut h);
        self.command.hash(&mut h);
        self.namespaces.hash(&mut h);
        h.finish()
    }

    /// Field-wise equality, with a pointer shortcut for the shared identity.
    pub(crate) fn same_as(&self, other: &Request) -> bool {
        (Arc::ptr_eq(&self.identity, &other.identity) || self.identity == other.identity)
            && self.database == other.database
            && self.db_user == other.db_user
            && self.db_name == other.db_name
            && self.command == other.command
            && self.namespaces == other.namespaces
    }
}

/// The outcome of a decision. A deny is a value, never an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub allowed: bool,
    /// A sentence for a human operator naming the deciding role(s) and rule.
    pub reason: String,
    /// The roles that decided: the allowing roles, or the roles whose deny rules matched.
    pub matched_roles: Vec<String>,
}

impl Decision {
    pub fn deny(reason: impl Into<String>, matched_roles: Vec<String>) -> Decision {
        Decision {
            allowed: false,
            reason: reason.into(),
            matched_roles,
        }
    }

    /// `{"allowed": …, "reason": …, "matched_roles": […]}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            // Serializing bools and strings cannot fail; keep a valid document regardless.
            String::from(
                "{\"allowed\":false,\"reason\":\"serialization failed\",\"matched_roles\":[]}",
            )
        })
    }
}
