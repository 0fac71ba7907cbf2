//! What the analysis finds out about a command ([`CommandAccess`]: its class, every
//! [`Namespace`] it reaches, or why it reaches every database or is refused), the server's
//! rules for the names in those namespaces, and the collector the analysis fills in.

use super::doc::shown;
use crate::{Error, Result, ResultCode};

/// How the session treats a command before (or instead of) asking the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CommandClass {
    /// Client authentication ([`Reach::Authentication`](super::commands::Reach::Authentication)): never forwarded; the proxy
    /// authenticates upstream itself.
    Auth,
    /// Connection commands ([`Reach::Connection`](super::commands::Reach::Connection)): need no database in `db_names`.
    Connection,
    /// Everything else: judged against every database in [`CommandAccess::namespaces`].
    Data,
}

/// A database, and the collection in it when one is named.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Namespace {
    /// The database.
    pub database: String,
    /// The collection, when the command names one.
    pub collection: Option<String>,
}

/// What a client command is and everything it can reach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandAccess {
    /// The command name (first key of the command document), e.g. `find`.
    pub command: String,
    /// The database the command is addressed to (`$db`, or `<db>` of `<db>.$cmd`).
    pub database: String,
    /// The collection the command is about, when its value names one (`find: "c"`), for audit.
    pub collection: Option<String>,
    /// Every namespace the command can reach, starting with `database`; no duplicates.
    pub namespaces: Vec<Namespace>,
    /// How the session treats it.
    pub class: CommandClass,
    /// The command's row in the command table: what it can reach (for metrics: a bounded
    /// label, where the command name is the client's string).
    pub reach: super::commands::Reach,
    /// A `hello`/`isMaster` carried `speculativeAuthenticate` (strip it before forwarding).
    pub speculative_authenticate: bool,
    /// `Some(reason)` when the command can reach databases that cannot be listed (unknown
    /// command or stage, cluster-wide operation, JavaScript, `applyOps` by UUID…): deny it
    /// unless the session may reach every database.
    pub unanalysable: Option<String>,
    /// `Some` when the command is refused whatever the policy says (client authentication,
    /// a legacy OP_QUERY command, a handshake carrying credentials…): never forwarded, never
    /// judged, answered with the refusal's error.
    pub refused: Option<Refusal>,
}

/// Why the analysis itself refuses a command (see [`CommandAccess::refused`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// `None` for an authorization refusal (the reply is code 13, Unauthorized); otherwise
    /// the library code whose MongoDB error the reply carries (e.g.
    /// [`ResultCode::WireRefusedQuery`] → 352 UnsupportedOpQueryCommand).
    pub code: Option<ResultCode>,
    /// A sentence for the client and the audit.
    pub reason: String,
}

impl CommandAccess {
    /// Every database the command can reach, `database` first, without duplicates.
    pub fn databases(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::with_capacity(self.namespaces.len());
        for ns in &self.namespaces {
            if !out.contains(&ns.database.as_str()) {
                out.push(&ns.database);
            }
        }
        out
    }

    /// Every namespace the command can reach as the policy engine's request takes them
    /// (`db.collection`, or `db` when no collection is named), in order: what the session
    /// judges and what its audit event records for a replay.
    pub fn request_namespaces(&self) -> Vec<String> {
        self.namespaces
            .iter()
            .map(|ns| match &ns.collection {
                Some(c) => format!("{}.{c}", ns.database),
                None => ns.database.clone(),
            })
            .collect()
    }
}

pub(super) fn bad(msg: impl Into<String>) -> Error {
    Error::new(ResultCode::WireMalformedCommand, msg)
}

/// Longest database name the server accepts, in bytes (`DatabaseName::kMaxDatabaseNameLength`,
/// `src/mongo/db/database_name.h`).
pub const MAX_DATABASE_NAME_LEN: usize = 63;
/// Longest namespace `db.collection` the server accepts, in bytes
/// (`NamespaceString::MaxNsLen`, `src/mongo/db/namespace_string.h`).
pub const MAX_NAMESPACE_LEN: usize = 255;
/// Characters a database name may not contain (`NamespaceString::validDBName` with
/// `DollarInDbNameBehavior::Disallow`, the Windows set, `src/mongo/db/namespace_string.cpp`),
/// besides NUL.
pub const FORBIDDEN_DATABASE_CHARS: &[char] =
    &['/', '\\', '.', ' ', '"', '$', '*', '<', '>', ':', '|', '?'];

/// The virtual database external (x.509, LDAP, AWS IAM) users authenticate against.
pub const EXTERNAL_DATABASE: &str = "$external";

pub(super) fn invalid_namespace(msg: String) -> Error {
    Error::new(ResultCode::WireInvalidNamespace, msg)
}

/// The server's rules for a database name: not empty, at most 63 bytes, none of
/// [`FORBIDDEN_DATABASE_CHARS`] nor NUL. A dotted name is refused here, so it can never be
/// judged as its prefix.
pub(crate) fn check_database(name: &str, what: &str) -> Result<()> {
    // The one name with a `$`: the virtual database of external users (`DatabaseName::kExternal`).
    if name == EXTERNAL_DATABASE {
        return Ok(());
    }
    if name.is_empty() {
        return Err(invalid_namespace(format!("{what} names an empty database")));
    }
    if name.len() > MAX_DATABASE_NAME_LEN {
        return Err(invalid_namespace(format!(
            "{what} names a database of {} bytes (at most {MAX_DATABASE_NAME_LEN})",
            name.len()
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| *c == '\0' || FORBIDDEN_DATABASE_CHARS.contains(c))
    {
        return Err(invalid_namespace(format!(
            "{what} names the database `{}`, which contains the forbidden character {c:?}",
            shown(name)
        )));
    }
    Ok(())
}

/// The server's rules for a collection name (`NamespaceString::validCollectionName`): not
/// empty, not starting with a dot, no NUL and no `$`; and `db.collection` at most 255 bytes.
pub(crate) fn check_collection(database: &str, collection: &str, what: &str) -> Result<()> {
    if collection.is_empty() {
        return Err(invalid_namespace(format!(
            "{what} names an empty collection"
        )));
    }
    if collection.starts_with('.') || collection.contains(['\0', '$']) {
        return Err(invalid_namespace(format!(
            "{what} names the collection `{}`, which is not a valid collection name",
            shown(collection)
        )));
    }
    let len = database.len() + 1 + collection.len();
    if len > MAX_NAMESPACE_LEN {
        return Err(invalid_namespace(format!(
            "{what} names a namespace of {len} bytes (at most {MAX_NAMESPACE_LEN})"
        )));
    }
    Ok(())
}

/// Splits `db.collection` (the database ends at the first dot) and checks both names.
pub(super) fn split_namespace(ns: &str, what: &str) -> Result<(String, String)> {
    match ns.split_once('.') {
        Some((db, coll)) => {
            check_database(db, what)?;
            check_collection(db, coll, what)?;
            Ok((db.to_owned(), coll.to_owned()))
        }
        _ => Err(invalid_namespace(format!(
            "{what} must be a full namespace `db.collection`, got `{}`",
            shown(ns)
        ))),
    }
}

pub(super) struct Analysis {
    pub(super) namespaces: Vec<Namespace>,
    pub(super) unanalysable: Option<String>,
    pub(super) refused: Option<Refusal>,
}

/// Most distinct namespaces listed for one command; past it the command counts as reaching
/// every database (keeps analysis linear and its memory small on hostile input).
pub const MAX_NAMESPACES: usize = 256;

impl Analysis {
    /// Adds a namespace after checking its names (see [`check_database`], [`check_collection`]).
    pub(super) fn add(&mut self, database: &str, collection: Option<&str>) -> Result<()> {
        check_database(database, "the command")?;
        if let Some(c) = collection {
            check_collection(database, c, "the command")?;
        }
        let known = self
            .namespaces
            .iter()
            .any(|n| n.database == database && n.collection.as_deref() == collection);
        if known {
            return Ok(());
        }
        if self.namespaces.len() >= MAX_NAMESPACES {
            self.everything(format!("names more than {MAX_NAMESPACES} namespaces"));
            return Ok(());
        }
        self.namespaces.push(Namespace {
            database: database.to_owned(),
            collection: collection.map(str::to_owned),
        });
        Ok(())
    }

    pub(super) fn add_namespace(&mut self, ns: &str, what: &str) -> Result<()> {
        let (db, coll) = split_namespace(ns, what)?;
        self.add(&db, Some(&coll))
    }

    pub(super) fn everything(&mut self, reason: impl Into<String>) {
        if self.unanalysable.is_none() {
            self.unanalysable = Some(reason.into());
        }
    }

    /// Refused whatever the policy says (code 13); the first reason wins.
    pub(super) fn refuse(&mut self, reason: String) {
        if self.refused.is_none() {
            self.refused = Some(Refusal { code: None, reason });
        }
    }
}
