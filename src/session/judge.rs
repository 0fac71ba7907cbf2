//! The judge: what the relay asks the policy engine about one session. [`EngineJudge`] judges
//! with the [`PolicyEngine`] (cached decisions; a reload applies from the next message).

use std::sync::Arc;

use crate::policy::{Decision, Identity, PolicyEngine, Request};
use crate::{Error, Result, ResultCode};

/// What one client message asks for, as the judge sees it: the wire analysis (command,
/// `$db`, every namespace it can reach, or `unanalysable`).
pub use crate::wire::CommandAccess;

/// A decision: allowed or not, and why (the reason reaches the client's error message and
/// the audit event), with what the audit event needs for `docauth-check replay` to decide the
/// message again under another policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub reason: String,
    /// The roles that decided ([`Decision::matched_roles`]); empty when no role did.
    pub matched_roles: Vec<String>,
    /// Whom the policy engine decided for; `None` for a judge without an engine (then the
    /// audit event cannot be replayed and says so: `decided_by` is `judge`).
    pub identity: Option<JudgedIdentity>,
}

/// The identity a decision was made for, as the audit event records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JudgedIdentity {
    pub identity: Arc<Identity>,
    /// True when the session named an identity of the engine configuration (looked up again
    /// at every decision, so a replay looks it up in the new configuration too).
    pub from_config: bool,
}

impl Verdict {
    /// A verdict of a judge without a policy engine (no roles, no identity).
    pub fn new(allowed: bool, reason: impl Into<String>) -> Verdict {
        Verdict {
            allowed,
            reason: reason.into(),
            matched_roles: Vec::new(),
            identity: None,
        }
    }

    fn of(decision: Decision, identity: JudgedIdentity) -> Verdict {
        Verdict {
            allowed: decision.allowed,
            reason: decision.reason,
            matched_roles: decision.matched_roles,
            identity: Some(identity),
        }
    }
}

/// Decides for one session (the identity, database and db user are the session's; the
/// judge is built for them). Called on the session's task: must not block long.
pub trait Judge: Send + Sync {
    /// The connection-level decision, made before the database is contacted.
    fn admit(&self) -> Verdict;
    /// One client message (connection commands included: they need no database name).
    fn judge(&self, access: &CommandAccess) -> Verdict;
}

/// Who the session is for: an identity given in full, or the name of one of the engine
/// configuration's `identities` (looked up again at every decision, so that a reload that
/// changes it applies to running sessions).
#[derive(Clone, Debug)]
pub enum SessionIdentity {
    Name(String),
    Spec(Arc<Identity>),
}

impl SessionIdentity {
    pub fn user(&self) -> &str {
        match self {
            SessionIdentity::Name(n) => n,
            SessionIdentity::Spec(i) => i.user(),
        }
    }
}

/// Judges a session's messages with the policy engine: per message, a [`Request`] with the
/// command, `$db` as `db_name` and every namespace the command can reach.
pub struct EngineJudge {
    engine: Arc<PolicyEngine>,
    identity: SessionIdentity,
    database: String,
    db_user: String,
    db_name: String,
}

impl EngineJudge {
    /// Errors (INVALID_CONFIG) when `database` is not in the engine's configuration or a
    /// named identity is not in its `identities`.
    pub fn new(
        engine: Arc<PolicyEngine>,
        identity: SessionIdentity,
        database: &str,
        db_user: &str,
        db_name: &str,
    ) -> Result<Self> {
        if engine.database(database).is_none() {
            return Err(Error::new(
                ResultCode::InvalidConfig,
                format!(
                    "session parameters: database {database:?} is not in the policy engine's configuration (its `databases`)"
                ),
            ));
        }
        if let SessionIdentity::Name(name) = &identity {
            if engine.identity(name).is_none() {
                return Err(Error::new(
                    ResultCode::InvalidConfig,
                    format!(
                        "session parameters: identity {name:?} is not in the policy engine's configuration (its `identities`); give the identity as an object instead"
                    ),
                ));
            }
        }
        Ok(EngineJudge {
            engine,
            identity,
            database: database.to_string(),
            db_user: db_user.to_string(),
            db_name: db_name.to_string(),
        })
    }

    /// The identity to decide for now, or the verdict for a named identity that left the
    /// configuration (recorded with its name only: a replay looks it up again).
    fn identity(&self) -> std::result::Result<JudgedIdentity, Verdict> {
        match &self.identity {
            SessionIdentity::Spec(i) => Ok(JudgedIdentity {
                identity: Arc::clone(i),
                from_config: false,
            }),
            SessionIdentity::Name(name) => match self.engine.session_identity(name) {
                Ok(identity) => Ok(JudgedIdentity {
                    identity,
                    from_config: true,
                }),
                Err(denied) => {
                    let gone = JudgedIdentity {
                        identity: Arc::new(Identity::new(
                            name.as_str(),
                            Vec::new(),
                            Default::default(),
                        )),
                        from_config: true,
                    };
                    Err(Verdict::of(denied, gone))
                }
            },
        }
    }

    fn request(&self, identity: Arc<Identity>, db_name: &str) -> Request {
        Request::new(
            identity,
            self.database.as_str(),
            self.db_user.as_str(),
            db_name,
        )
    }
}

impl Judge for EngineJudge {
    fn admit(&self) -> Verdict {
        let judged = match self.identity() {
            Ok(i) => i,
            Err(v) => return v,
        };
        // Without a db name only the database and the db user are checked (as for a
        // connection command, which reaches no database's data).
        let identity = Arc::clone(&judged.identity);
        let request = if self.db_name.is_empty() {
            self.request(identity, "").with_command("hello")
        } else {
            self.request(identity, &self.db_name)
        };
        Verdict::of(Decision::clone(&self.engine.decide(&request)), judged)
    }

    fn judge(&self, access: &CommandAccess) -> Verdict {
        let judged = match self.identity() {
            Ok(i) => i,
            Err(v) => return v,
        };
        let request = self
            .request(Arc::clone(&judged.identity), &access.database)
            .with_command(access.command.as_str())
            .with_namespaces(access.request_namespaces());
        let decision = self
            .engine
            .decide_message(&request, access.unanalysable.as_deref());
        Verdict::of(decision, judged)
    }
}
