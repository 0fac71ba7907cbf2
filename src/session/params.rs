//! The parameters of one session, as the host gives them.

use std::sync::Arc;

use serde::{Deserialize, Deserializer};

use super::judge::SessionIdentity;
use super::upstream::DatabaseUri;
use crate::policy::{Identity, IdentitySpec, PolicyEngine};
use crate::{Error, Result, ResultCode};

fn default_connect_timeout_ms() -> u64 {
    10_000
}
fn default_handshake_timeout_ms() -> u64 {
    15_000
}
fn default_message_timeout_ms() -> u64 {
    30_000
}
/// 30 minutes: far longer than any pause of a working client (drivers' monitoring connections
/// send a hello every 10 s), short enough that an abandoned connection does not hold its two
/// sockets and buffers for days. Drivers reopen a pooled connection that was closed.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 30 * 60 * 1000;
fn default_idle_timeout_ms() -> u64 {
    DEFAULT_IDLE_TIMEOUT_MS
}
/// 30 seconds without one byte accepted: a working client reads its replies at once (a slow
/// link still accepts some bytes in that time); one that stopped reading would otherwise hold
/// the session, and the database connection behind it, for ever.
pub const DEFAULT_CLIENT_WRITE_TIMEOUT_MS: u64 = 30_000;
fn default_client_write_timeout_ms() -> u64 {
    DEFAULT_CLIENT_WRITE_TIMEOUT_MS
}

pub(super) fn config_error(msg: impl Into<String>) -> Error {
    Error::new(
        ResultCode::InvalidConfig,
        format!("session parameters: {}", msg.into()),
    )
}

/// The parameters of one session, as the host gives them (JSON in the C ABI).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionParams {
    /// Who is connecting: `{"user": "alice", "roles": [...], "traits": {...}}`, or the user
    /// name of one of the engine configuration's `identities`; typed as it is parsed.
    #[serde(deserialize_with = "identity_param")]
    pub identity: SessionIdentity,
    /// The database's name in the engine configuration (decisions, URI default, audit).
    pub database: String,
    /// `mongodb://host:port/?tls=true&tlsCAFile=…`; default: from the engine's database
    /// `uri` (`host:port` → `mongodb://host:port/?tls=true`).
    #[serde(default)]
    pub database_uri: Option<String>,
    /// PEM CA bundle verifying the database (e.g. DocumentDB's global-bundle.pem).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// The database user (IAM role name or ARN) the session authenticates as.
    pub db_user: String,
    /// The logical database the client asked for (connection-level decision, audit).
    #[serde(default)]
    pub db_name: String,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_handshake_timeout_ms")]
    pub handshake_timeout_ms: u64,
    /// No message either way for this long ends the session; default
    /// [`DEFAULT_IDLE_TIMEOUT_MS`] (30 minutes); 0 = no idle timeout.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    #[serde(default = "default_message_timeout_ms")]
    pub message_timeout_ms: u64,
    /// A write to the client that moves no byte for this long ends the session with
    /// `CLIENT_WRITE_TIMEOUT`; default [`DEFAULT_CLIENT_WRITE_TIMEOUT_MS`] (30 s). 0 is
    /// refused: a client that stops reading must not hold the session for ever.
    #[serde(default = "default_client_write_timeout_ms")]
    pub client_write_timeout_ms: u64,
    /// The client's address, for audit events.
    #[serde(default)]
    pub client_addr: String,
}

impl SessionParams {
    pub fn from_json(json: &str) -> Result<Self> {
        let params: SessionParams =
            serde_json::from_str(json).map_err(|e| config_error(e.to_string()))?;
        if params.database.is_empty() {
            return Err(config_error(
                "database must name a database of the engine configuration",
            ));
        }
        if params.db_user.is_empty() {
            return Err(config_error("db_user must not be empty"));
        }
        if params.client_write_timeout_ms == 0 {
            return Err(config_error(
                "client_write_timeout_ms must be at least 1 (a client that stops reading must not hold the session for ever); the default is 30000",
            ));
        }
        if let Some(uri) = &params.database_uri {
            DatabaseUri::parse(uri)?;
        }
        Ok(params)
    }

    /// The database URI: `database_uri`, else the engine database's `uri`.
    pub(super) fn uri(&self, engine: &PolicyEngine) -> Result<DatabaseUri> {
        if let Some(uri) = &self.database_uri {
            return DatabaseUri::parse(uri);
        }
        let db = engine.database(&self.database).ok_or_else(|| {
            config_error(format!(
                "database {:?} is not in the policy engine's configuration (its `databases`)",
                self.database
            ))
        })?;
        let uri = db.uri.trim();
        if uri.is_empty() {
            return Err(config_error(format!(
                "database {:?} has no `uri` in the engine configuration; set one there or give database_uri",
                self.database
            )));
        }
        if uri.contains("://") {
            DatabaseUri::parse(uri)
        } else {
            DatabaseUri::parse(&format!("mongodb://{uri}/?tls=true"))
        }
    }
}

/// `identity`: an object (`user` required, non-empty) or a non-empty name.
fn identity_param<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<SessionIdentity, D::Error> {
    use serde::de::Error as _;
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(name) if !name.is_empty() => Ok(SessionIdentity::Name(name)),
        value @ serde_json::Value::Object(_) => {
            let spec: IdentitySpec = serde_json::from_value(value)
                .map_err(|e| D::Error::custom(format!("identity: {e}")))?;
            if spec.user.is_empty() {
                return Err(D::Error::custom("identity.user must be a non-empty string"));
            }
            Ok(SessionIdentity::Spec(Arc::new(Identity::from_spec(spec))))
        }
        _ => Err(D::Error::custom(
            "identity must be an object {\"user\": …, \"roles\": […], \"traits\": {…}} or the name of an identity of the engine configuration",
        )),
    }
}
