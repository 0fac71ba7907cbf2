//! The judge: what the relay asks the policy engine about one session. [`EngineJudge`] judges
//! with the [`PolicyEngine`] (cached decisions; a reload applies from the next message).

use std::sync::Arc;

use crate::policy::{Identity, PolicyEngine, Request};
use crate::{Error, Result, ResultCode};

/// What one client message asks for, as the judge sees it: the wire analysis (command,
/// `$db`, every namespace it can reach, or `unanalysable`).
pub use crate::wire::CommandAccess;

/// A decision: allowed or not, and why (the reason reaches the client's error message and
/// the audit event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub reason: String,
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

    fn identity(&self) -> std::result::Result<Arc<Identity>, Verdict> {
        match &self.identity {
            SessionIdentity::Spec(i) => Ok(Arc::clone(i)),
            SessionIdentity::Name(name) => self.engine.identity(name).ok_or_else(|| Verdict {
                allowed: false,
                reason: format!(
                    "denied: identity {name:?} is no longer in the policy engine's configuration"
                ),
            }),
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
        let identity = match self.identity() {
            Ok(i) => i,
            Err(v) => return v,
        };
        // Without a db name only the database and the db user are checked (as for a
        // connection command, which reaches no database's data).
        let request = if self.db_name.is_empty() {
            self.request(identity, "").with_command("hello")
        } else {
            self.request(identity, &self.db_name)
        };
        let d = self.engine.decide(&request);
        Verdict {
            allowed: d.allowed,
            reason: d.reason.clone(),
        }
    }

    fn judge(&self, access: &CommandAccess) -> Verdict {
        let identity = match self.identity() {
            Ok(i) => i,
            Err(v) => return v,
        };
        let namespaces = access
            .namespaces
            .iter()
            .map(|ns| match &ns.collection {
                Some(c) => format!("{}.{c}", ns.database),
                None => ns.database.clone(),
            })
            .collect();
        let request = self
            .request(identity, &access.database)
            .with_command(access.command.as_str())
            .with_namespaces(namespaces);
        if let Some(why) = &access.unanalysable {
            let every = self.engine.may_reach_every_database(&request);
            if !every.allowed {
                return Verdict {
                    allowed: false,
                    reason: format!(
                        "libdocauth cannot list the databases command {:?} reaches ({why}); {}",
                        access.command, every.reason
                    ),
                };
            }
        }
        let d = self.engine.decide(&request);
        Verdict {
            allowed: d.allowed,
            reason: d.reason.clone(),
        }
    }
}
