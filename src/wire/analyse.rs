//! Command analysis: the command name, its `$db`, and every database the command can reach.
//!
//! The rule is "forward only what was understood": every command and aggregation stage is
//! looked up in the command table ([`super::commands`]); one missing from it is refused. A
//! command confined to its `$db` reaches that database; one that names further databases has
//! all those fields read (duplicates refused); a cluster-wide one sets
//! [`CommandAccess::unanalysable`] ("reaches every database"); a shared-principal,
//! authentication or never-forwarded one sets [`CommandAccess::refused`]. Top-level fields
//! outside the generic arguments that start with `$`, internal generic arguments, and document
//! sequences the command does not take are refused.

use bson::raw::{RawBsonRef, RawDocument};

use super::commands::{self, shared_principal_reason, Reach, StageReach, Targets};
use super::doc::{first_field, shown, truthy, unique_field};
use super::frame::op;
use super::message::{Message, OpMsg};
use crate::{Error, Result, ResultCode};

/// How the session treats a command before (or instead of) asking the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CommandClass {
    /// Client authentication ([`Reach::Authentication`]): never forwarded; the proxy
    /// authenticates upstream itself.
    Auth,
    /// Connection commands ([`Reach::Connection`]): need no database in `db_names`.
    Connection,
    /// Everything else: judged against every database in [`CommandAccess::namespaces`].
    Data,
}

/// The fields an OP_QUERY's wrapped query (`{$query: {...}, ...}`) may carry.
pub const OP_QUERY_WRAPPER_FIELDS: &[&str] = &["$query", "query", "$readPreference"];

/// Handshake commands whose `speculativeAuthenticate`/`compression` are stripped.
pub const HANDSHAKE_COMMANDS: &[&str] = &["hello", "isMaster", "ismaster"];

/// Handshake fields that start a client authentication: a hello carrying one is refused
/// (the proxy authenticates upstream itself; stripping them would leave a driver waiting
/// for an authentication that never happens).
pub const HANDSHAKE_AUTH_KEYS: &[&str] = &["speculativeAuthenticate", "saslSupportedMechs"];

pub(crate) fn is_handshake(name: &str) -> bool {
    HANDSHAKE_COMMANDS.contains(&name)
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
}

fn bad(msg: impl Into<String>) -> Error {
    Error::new(ResultCode::WireMalformedCommand, msg)
}

fn duplicate(key: &str) -> Error {
    Error::new(
        ResultCode::WireDuplicateKey,
        format!(
            "the field `{}` is given both in the body and as a document sequence; refused",
            shown(key)
        ),
    )
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

fn invalid_namespace(msg: String) -> Error {
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
fn split_namespace(ns: &str, what: &str) -> Result<(String, String)> {
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

/// A command document, with the OP_MSG document sequences that stand for its array fields.
#[derive(Clone, Copy)]
struct Cmd<'a> {
    body: &'a RawDocument,
    msg: Option<OpMsg<'a>>,
}

/// An array-like field: a BSON array or an OP_MSG document sequence.
enum Items<'a> {
    Array(bson::raw::RawArrayIter<'a>),
    Sequence(super::message::Documents<'a>),
}

impl<'a> Iterator for Items<'a> {
    type Item = Result<RawBsonRef<'a>>;
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Items::Array(it) => it
                .next()
                .map(|r| r.map_err(|e| super::doc::invalid("command array", e))),
            Items::Sequence(it) => it.next().map(|r| r.map(RawBsonRef::Document)),
        }
    }
}

impl<'a> Cmd<'a> {
    fn plain(body: &'a RawDocument) -> Self {
        Cmd { body, msg: None }
    }

    /// A scalar/document field: refused when duplicated or also sent as a sequence.
    fn get(&self, key: &str) -> Result<Option<RawBsonRef<'a>>> {
        let value = unique_field(self.body, key)?;
        if self.msg.and_then(|m| m.sequence(key)).is_some() {
            return Err(duplicate(key));
        }
        Ok(value)
    }

    /// An array field, from the body or from the document sequence with that identifier.
    fn items(&self, key: &str) -> Result<Option<Items<'a>>> {
        let value = unique_field(self.body, key)?;
        let seq = self.msg.and_then(|m| m.sequence(key));
        match (value, seq) {
            (Some(_), Some(_)) => Err(duplicate(key)),
            (None, Some(s)) => Ok(Some(Items::Sequence(s.documents()))),
            (Some(RawBsonRef::Array(a)), None) => Ok(Some(Items::Array(a.into_iter()))),
            (Some(_), None) => Err(bad(format!("`{key}` must be an array"))),
            (None, None) => Ok(None),
        }
    }

    fn get_str(&self, key: &str) -> Result<Option<&'a str>> {
        match self.get(key)? {
            None => Ok(None),
            Some(RawBsonRef::String(s)) => Ok(Some(s)),
            Some(_) => Err(bad(format!("`{key}` must be a string"))),
        }
    }
}

struct Analysis {
    namespaces: Vec<Namespace>,
    unanalysable: Option<String>,
    refused: Option<Refusal>,
}

/// Most distinct namespaces listed for one command; past it the command counts as reaching
/// every database (keeps analysis linear and its memory small on hostile input).
pub const MAX_NAMESPACES: usize = 256;

impl Analysis {
    /// Adds a namespace after checking its names (see [`check_database`], [`check_collection`]).
    fn add(&mut self, database: &str, collection: Option<&str>) -> Result<()> {
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

    fn add_namespace(&mut self, ns: &str, what: &str) -> Result<()> {
        let (db, coll) = split_namespace(ns, what)?;
        self.add(&db, Some(&coll))
    }

    fn everything(&mut self, reason: impl Into<String>) {
        if self.unanalysable.is_none() {
            self.unanalysable = Some(reason.into());
        }
    }

    /// Refused whatever the policy says (code 13); the first reason wins.
    fn refuse(&mut self, reason: String) {
        if self.refused.is_none() {
            self.refused = Some(Refusal { code: None, reason });
        }
    }
}

/// Analyses a client request: command name, `$db`, every database it can reach, its class.
///
/// Errors (the session answers them with an error reply): OP_REPLY, an OP_QUERY that is not a
/// `<db>.$cmd` command, a missing or non-string `$db`, duplicated keys the analysis reads,
/// a sequence identifier that repeats a body key, and namespace fields of the wrong type.
pub fn analyse(message: &Message) -> Result<CommandAccess> {
    if let Some(msg) = message.op_msg() {
        let body = msg.body();
        let database = match unique_field(body, "$db")? {
            Some(RawBsonRef::String(db)) => db,
            Some(_) => return Err(bad("`$db` must be a string")),
            None => return Err(bad("OP_MSG command has no `$db`")),
        };
        check_database(database, "`$db`")?;
        // Each sequence identifier once, never also a body key, never `$`-prefixed.
        let mut seen: Vec<&str> = Vec::with_capacity(msg.sequence_count());
        for s in msg.sequences() {
            if s.identifier.starts_with('$') || seen.contains(&s.identifier) {
                return Err(duplicate(s.identifier));
            }
            if super::doc::has_key(body, s.identifier) {
                return Err(duplicate(s.identifier));
            }
            seen.push(s.identifier);
        }
        analyse_command(
            Cmd {
                body,
                msg: Some(msg),
            },
            database,
        )
    } else if let Some(q) = message.op_query() {
        let (db, rest) = q
            .full_collection_name
            .split_once('.')
            .unwrap_or((q.full_collection_name, ""));
        if rest != "$cmd" {
            // As mongod 5.1+ (`receivedQuery` in `src/mongo/db/service_entry_point_common.cpp`):
            // OP_QUERY find is gone, the client gets an OP_REPLY QueryFailure, code 5739101.
            return Err(Error::new(
                ResultCode::WireQueryNotCommand,
                format!(
                    "legacy OP_QUERY on `{}` refused: OP_QUERY is no longer supported (only `hello`/`isMaster` on `<db>.$cmd`); use OP_MSG",
                    shown(q.full_collection_name)
                ),
            ));
        }
        check_database(db, "OP_QUERY namespace")?;
        // The wrapper key (`$query`/`query`) must not be repeated, and the wrapper may carry
        // only a read preference: `$queryOptions` (folded into the command by mongod up to
        // 7.x after the proxy looked) or any other modifier is never forwarded.
        first_field(q.query)?;
        if super::message::wrapped_command(q.query).is_some() {
            for item in q.query.iter() {
                let (key, _) = item.map_err(|e| super::doc::invalid("OP_QUERY query", e))?;
                if !OP_QUERY_WRAPPER_FIELDS.contains(&key) {
                    return Err(Error::new(
                        ResultCode::WireRefusedField,
                        format!(
                            "OP_QUERY wrapper field `{}` refused: only {OP_QUERY_WRAPPER_FIELDS:?} are relayed",
                            shown(key)
                        ),
                    ));
                }
            }
            unique_field(q.query, "$readPreference")?;
        }
        let command = q.command();
        match unique_field(command, "$db")? {
            None => {}
            Some(RawBsonRef::String(d)) if d == db => {}
            Some(_) => {
                return Err(bad(format!(
                    "OP_QUERY command on `{db}.$cmd` carries a different `$db`"
                )))
            }
        }
        let mut access = analyse_command(Cmd::plain(command), db)?;
        if !is_handshake(&access.command) && access.refused.is_none() {
            // As mongod 5.1+: only the handshake may come as OP_QUERY (code 352).
            access.refused = Some(Refusal {
                code: Some(ResultCode::WireRefusedQuery),
                reason: format!(
                    "legacy OP_QUERY command `{}` refused: only `hello`/`isMaster` may be sent as OP_QUERY; use OP_MSG",
                    shown(&access.command)
                ),
            });
        }
        Ok(access)
    } else {
        Err(Error::new(
            ResultCode::WireRefusedOpcode,
            format!("{} is not a command", op::name(message.op_code())),
        ))
    }
}

/// The top-level fields every command may carry: `generic_args_api_v1` of
/// `src/mongo/idl/generic_argument.idl` (mongodb/mongo). Of them only `$db`,
/// `$readPreference` and `$clusterTime` start with `$`.
pub const GENERIC_ARGUMENTS: &[&str] = &[
    "apiVersion",
    "apiStrict",
    "apiDeprecationErrors",
    "$db",
    "maxTimeMS",
    "readConcern",
    "writeConcern",
    "lsid",
    "clientOperationKey",
    "txnNumber",
    "autocommit",
    "startTransaction",
    "stmtId",
    "comment",
    "$readPreference",
    "$clusterTime",
];

/// The internal generic arguments (`generic_args_unstable_v1` of the same file): sent by
/// one server to another, never by a driver. Some re-target the command (`$tenant`,
/// `expectPrefix`), some are folded into it after the proxy looked (`$queryOptions`),
/// some bypass checks (`mayBypassWriteBlocking`): all are refused.
pub const INTERNAL_GENERIC_ARGUMENTS: &[&str] = &[
    "$audit",
    "$client",
    "$configServerState",
    "allowImplicitCollectionCreation",
    "$oplogQueryData",
    "$queryOptions",
    "$replData",
    "databaseVersion",
    "shardVersion",
    "tracking_info",
    "coordinator",
    "maxTimeMSOpOnly",
    "$configTime",
    "$topologyTime",
    "txnRetryCounter",
    "mayBypassWriteBlocking",
    "$tenant",
    "expectPrefix",
];

fn refused_field(msg: String) -> Error {
    Error::new(ResultCode::WireRefusedField, msg)
}

/// Every top-level field once; no `$`-field but the generic ones; no internal generic
/// argument. Linear in the number of fields.
fn check_top_level_fields(body: &RawDocument) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for item in body.iter() {
        let (key, _) = item.map_err(|e| super::doc::invalid("command document", e))?;
        if !seen.insert(key) {
            return Err(Error::new(
                ResultCode::WireDuplicateKey,
                format!("the field `{}` appears more than once; refused", shown(key)),
            ));
        }
        if INTERNAL_GENERIC_ARGUMENTS.contains(&key) {
            return Err(refused_field(format!(
                "the internal field `{key}` is refused: it is sent only between servers"
            )));
        }
        if key.starts_with('$') && !GENERIC_ARGUMENTS.contains(&key) && seen.len() > 1 {
            return Err(refused_field(format!(
                "the field `{}` is refused: it is not one of the generic command arguments",
                shown(key)
            )));
        }
    }
    Ok(())
}

fn analyse_command(cmd: Cmd<'_>, database: &str) -> Result<CommandAccess> {
    let (name, value) = first_field(cmd.body)?.ok_or_else(|| bad("empty command document"))?;
    check_top_level_fields(cmd.body)?;
    let row = commands::command(name).ok_or_else(|| {
        Error::new(
            ResultCode::WireUnknownCommand,
            format!(
                "unknown command `{}` refused: not in the command table of MongoDB 8.0 and DocumentDB",
                shown(name)
            ),
        )
    })?;
    if let Some(msg) = cmd.msg {
        for s in msg.sequences() {
            if !row.sequences.contains(&s.identifier) {
                return Err(refused_field(format!(
                    "a document sequence `{}` refused: `{name}` takes document sequences only for {:?}",
                    shown(s.identifier),
                    row.sequences
                )));
            }
        }
    }
    let class = match row.reach {
        Reach::Authentication => CommandClass::Auth,
        Reach::Connection => CommandClass::Connection,
        _ => CommandClass::Data,
    };
    let collection = if row.collection {
        match value {
            RawBsonRef::String(c) => Some(c),
            // A database-level aggregate (`aggregate: 1`, `$documents`, `$currentOp`...).
            RawBsonRef::Int32(1) | RawBsonRef::Int64(1) | RawBsonRef::Double(1.0)
                if name == "aggregate" =>
            {
                None
            }
            // A collection by UUID (the server resolves it to a namespace the proxy cannot
            // see) or by any other non-name: refused.
            _ => {
                return Err(invalid_namespace(format!(
                    "`{name}` must name its collection with a string; a UUID or another value names a namespace the proxy cannot judge"
                )))
            }
        }
    } else if name == "getMore" {
        cmd.get_str("collection")?
    } else {
        None
    };
    let mut a = Analysis {
        namespaces: Vec::with_capacity(2),
        unanalysable: None,
        refused: None,
    };
    let mut addressed = database.to_owned();
    match row.reach {
        Reach::ThisDatabase => a.add(database, collection)?,
        Reach::Named(targets) => {
            a.add(database, collection)?;
            reach(&mut a, cmd, name, value, database, targets)?;
        }
        Reach::NamedOnly(targets) => {
            reach(&mut a, cmd, name, value, database, targets)?;
            match a.namespaces.first() {
                Some(first) => addressed = first.database.clone(),
                None => a.add(database, None)?,
            }
        }
        Reach::AllDatabases => {
            a.add(database, collection)?;
            a.everything(format!(
                "`{name}` reaches every database or the whole server"
            ));
        }
        Reach::Connection => a.add(database, None)?,
        Reach::SharedPrincipal => {
            a.add(database, None)?;
            a.refuse(shared_principal_reason(name));
        }
        Reach::Authentication => {
            a.add(database, None)?;
            a.refuse(format!(
                "command {name} is refused: the proxy authenticates to the database itself with the db user's IAM identity; connect without credentials"
            ));
        }
        Reach::Never => {
            a.add(database, None)?;
            a.refuse(format!(
                "command `{name}` is never forwarded: it applies oplog entries, copies from another server, runs server-side JavaScript or is sent only between servers"
            ));
        }
    }
    if is_handshake(name) {
        for key in HANDSHAKE_AUTH_KEYS {
            if unique_field(cmd.body, key)?.is_some() {
                a.refuse(format!(
                    "{name} with `{key}` is refused: the proxy authenticates to the database itself; connect without credentials"
                ));
                break;
            }
        }
    }
    let speculative_authenticate =
        is_handshake(name) && unique_field(cmd.body, "speculativeAuthenticate")?.is_some();
    Ok(CommandAccess {
        command: name.to_owned(),
        database: addressed,
        collection: collection.map(str::to_owned),
        namespaces: a.namespaces,
        class,
        speculative_authenticate,
        unanalysable: a.unanalysable,
        refused: a.refused,
    })
}

/// Adds every namespace a data command reaches beyond `($db, collection)`, reading the fields
/// its table row names.
fn reach(
    a: &mut Analysis,
    cmd: Cmd<'_>,
    name: &str,
    value: RawBsonRef<'_>,
    db: &str,
    targets: Targets,
) -> Result<()> {
    match targets {
        Targets::Pipeline => {
            if let Some(items) = cmd.items("pipeline")? {
                pipeline(a, items, db)?;
            } else {
                return Err(bad(format!("{name} needs a `pipeline`")));
            }
        }
        Targets::MapReduceOut => match cmd.get("out")? {
            None => {}
            Some(RawBsonRef::String(coll)) => a.add(db, Some(coll))?,
            Some(RawBsonRef::Document(out)) => {
                let target = ["replace", "merge", "reduce"]
                    .iter()
                    .map(|k| unique_field(out, k))
                    .collect::<Result<Vec<_>>>()?;
                let coll = target.iter().flatten().find_map(|v| v.as_str());
                match unique_field(out, "db")? {
                    None => {
                        if let Some(c) = coll {
                            a.add(db, Some(c))?;
                        }
                    }
                    Some(RawBsonRef::String(d)) => {
                        check_database(d, "mapReduce `out.db`")?;
                        a.add(d, coll)?;
                    }
                    Some(_) => return Err(bad("mapReduce `out.db` must be a string")),
                }
            }
            Some(_) => return Err(bad("mapReduce `out` must be a string or a document")),
        },
        Targets::Explain => match value {
            RawBsonRef::Document(inner) => {
                // The explained command is judged with the same table, in the same database.
                match unique_field(inner, "$db")? {
                    None => {}
                    Some(RawBsonRef::String(d)) if d == db => {}
                    Some(_) => {
                        return Err(refused_field(
                            "explain of a command with its own `$db` different from the explain's is refused".to_owned(),
                        ))
                    }
                }
                let inner_access = analyse_command(Cmd::plain(inner), db)?;
                if inner_access.class != CommandClass::Data {
                    a.refuse(format!(
                        "explain of `{}` is refused: only data commands are explained",
                        inner_access.command
                    ));
                }
                for n in &inner_access.namespaces {
                    a.add(&n.database, n.collection.as_deref())?;
                }
                if let Some(reason) = inner_access.unanalysable {
                    a.everything(reason);
                }
                if let Some(refusal) = inner_access.refused {
                    a.refuse(refusal.reason);
                }
            }
            _ => return Err(bad("`explain` must be a command document")),
        },
        Targets::View => {
            if let Some(items) = cmd.items("pipeline")? {
                pipeline(a, items, db)?;
            }
            if let Some(view_on) = cmd.get_str("viewOn")? {
                a.add(db, Some(view_on))?;
            }
        }
        Targets::RenameTo => {
            let from = value
                .as_str()
                .ok_or_else(|| bad("renameCollection must name a namespace string"))?;
            a.add_namespace(from, "renameCollection")?;
            let to = cmd
                .get_str("to")?
                .ok_or_else(|| bad("renameCollection needs a `to` namespace"))?;
            a.add_namespace(to, "renameCollection `to`")?;
        }
        Targets::BulkWriteNsInfo => {
            let items = cmd
                .items("nsInfo")?
                .ok_or_else(|| bad("bulkWrite needs `nsInfo`"))?;
            for item in items {
                let entry = item?
                    .as_document()
                    .ok_or_else(|| bad("bulkWrite `nsInfo` entries must be documents"))?;
                let ns = unique_field(entry, "ns")?
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| bad("bulkWrite `nsInfo` entry needs an `ns` string"))?;
                a.add_namespace(ns, "bulkWrite nsInfo `ns`")?;
            }
        }
        Targets::UsersOrRoles => {
            let (kind, plural) = if name == "usersInfo" {
                ("user", "users")
            } else {
                ("role", "roles")
            };
            if cmd.get("forAllDBs")?.is_some_and(truthy) {
                a.everything(format!(
                    "{name} with forAllDBs lists {plural} of every database"
                ));
            }
            match value {
                RawBsonRef::Array(arr) => {
                    for item in arr {
                        user_or_role(a, item.map_err(|e| super::doc::invalid(name, e))?, kind)?;
                    }
                }
                other => user_or_role(a, other, kind)?,
            }
        }
        Targets::RolesAndPrivileges => {
            if let Some(items) = cmd.items("roles")? {
                for item in items {
                    user_or_role(a, item?, "role")?;
                }
            }
            if let Some(items) = cmd.items("privileges")? {
                for item in items {
                    privilege(a, item?)?;
                }
            }
        }
        Targets::FlushRouterConfig => match value {
            RawBsonRef::String(s) if s.contains('.') => a.add_namespace(s, name)?,
            RawBsonRef::String(s) => {
                check_database(s, name)?;
                a.add(s, None)?;
            }
            _ => a.everything(format!("{name} without a namespace flushes every database")),
        },
        Targets::NamespaceValue => {
            let ns = value
                .as_str()
                .ok_or_else(|| bad(format!("{name} must name a namespace string")))?;
            a.add_namespace(ns, name)?;
        }
        Targets::DatabaseValue => {
            let d = value
                .as_str()
                .ok_or_else(|| bad(format!("{name} must name a database string")))?;
            check_database(d, name)?;
            a.add(d, None)?;
        }
    }
    Ok(())
}

/// `usersInfo`/`rolesInfo` values and `roles` entries: `1`, a name in `db`, or
/// `{user|role, db}`.
fn user_or_role(a: &mut Analysis, value: RawBsonRef<'_>, kind: &str) -> Result<()> {
    match value {
        RawBsonRef::String(_)
        | RawBsonRef::Int32(_)
        | RawBsonRef::Int64(_)
        | RawBsonRef::Double(_) => {}
        RawBsonRef::Document(d) if unique_field(d, "forAllDBs")?.is_some_and(truthy) => {
            a.everything(format!("{kind}s of every database (`forAllDBs`)"));
        }
        RawBsonRef::Document(d) => match unique_field(d, "db")? {
            Some(RawBsonRef::String(other)) => {
                check_database(other, kind)?;
                a.add(other, None)?;
            }
            None => {}
            Some(_) => return Err(bad(format!("a {kind}'s `db` must be a string"))),
        },
        _ => return Err(bad(format!("a {kind} must be a name or a document"))),
    }
    Ok(())
}

/// A privilege `{resource: {db, collection} | {cluster: true} | {anyResource: true}, …}`.
fn privilege(a: &mut Analysis, value: RawBsonRef<'_>) -> Result<()> {
    let doc = value
        .as_document()
        .ok_or_else(|| bad("a privilege must be a document"))?;
    let resource = unique_field(doc, "resource")?
        .and_then(|r| r.as_document())
        .ok_or_else(|| bad("a privilege needs a `resource` document"))?;
    match unique_field(resource, "db")? {
        Some(RawBsonRef::String("")) => a.everything("a privilege on every database (`db: \"\"`)"),
        Some(RawBsonRef::String(d)) => {
            let coll = unique_field(resource, "collection")?.and_then(|c| c.as_str());
            a.add(d, coll.filter(|c| !c.is_empty()))?;
        }
        Some(_) => return Err(bad("a privilege resource's `db` must be a string")),
        None => a.everything("a cluster-wide privilege resource"),
    }
    Ok(())
}

/// A `from`/`into`/`$out` target: a collection name in `db`, or `{db, coll}`.
fn target<'a>(a: &mut Analysis, value: RawBsonRef<'a>, db: &'a str, what: &str) -> Result<&'a str> {
    match value {
        RawBsonRef::String(coll) => {
            a.add(db, Some(coll))?;
            Ok(db)
        }
        RawBsonRef::Document(d) => {
            let target_db = match unique_field(d, "db")? {
                Some(RawBsonRef::String(t)) => t,
                None => db,
                Some(_) => return Err(bad(format!("{what} `db` must be a string"))),
            };
            check_database(target_db, what)?;
            let coll = match unique_field(d, "coll")? {
                Some(RawBsonRef::String(c)) => Some(c),
                None => None,
                Some(_) => return Err(bad(format!("{what} `coll` must be a string"))),
            };
            a.add(target_db, coll)?;
            Ok(target_db)
        }
        _ => Err(bad(format!("{what} must be a string or a document"))),
    }
}

fn pipeline<'a>(
    a: &mut Analysis,
    items: impl Iterator<Item = Result<RawBsonRef<'a>>>,
    db: &str,
) -> Result<()> {
    for item in items {
        let stage = item?
            .as_document()
            .ok_or_else(|| bad("a pipeline stage must be a document"))?;
        let mut keys = stage.iter();
        let (name, spec) = keys
            .next()
            .ok_or_else(|| bad("a pipeline stage must have exactly one field"))?
            .map_err(|e| super::doc::invalid("pipeline stage", e))?;
        if keys.next().is_some() {
            return Err(bad(format!(
                "pipeline stage `{}` must have exactly one field",
                shown(name)
            )));
        }
        stage_reach(a, name, spec, db)?;
    }
    Ok(())
}

fn sub_pipeline(a: &mut Analysis, spec: &RawDocument, key: &str, db: &str) -> Result<()> {
    match unique_field(spec, key)? {
        None => Ok(()),
        Some(RawBsonRef::Array(arr)) => pipeline(
            a,
            arr.into_iter()
                .map(|r| r.map_err(|e| super::doc::invalid("pipeline", e))),
            db,
        ),
        Some(_) => Err(bad(format!("`{key}` must be a pipeline array"))),
    }
}

fn stage_reach(a: &mut Analysis, name: &str, spec: RawBsonRef<'_>, db: &str) -> Result<()> {
    match name {
        "$out" => {
            target(a, spec, db, "$out")?;
        }
        "$merge" => match spec {
            RawBsonRef::String(coll) => a.add(db, Some(coll))?,
            RawBsonRef::Document(d) => {
                let into = unique_field(d, "into")?.ok_or_else(|| bad("$merge needs `into`"))?;
                target(a, into, db, "$merge `into`")?;
                if let Some(RawBsonRef::Array(_)) = unique_field(d, "whenMatched")? {
                    sub_pipeline(a, d, "whenMatched", db)?;
                }
            }
            _ => return Err(bad("$merge must be a string or a document")),
        },
        "$lookup" | "$graphLookup" => {
            let d = spec
                .as_document()
                .ok_or_else(|| bad(format!("{name} must be a document")))?;
            let foreign_db = match unique_field(d, "from")? {
                Some(from) => target(a, from, db, &format!("{name} `from`"))?,
                None if name == "$graphLookup" => return Err(bad("$graphLookup needs `from`")),
                None => db,
            };
            // Some servers (Atlas) accept `db` beside a string `from`.
            let foreign_db = match unique_field(d, "db")? {
                Some(RawBsonRef::String(other)) => {
                    check_database(other, name)?;
                    let coll = unique_field(d, "from")?.and_then(|f| f.as_str());
                    a.add(other, coll)?;
                    other
                }
                Some(_) => return Err(bad(format!("{name} `db` must be a string"))),
                None => foreign_db,
            };
            if name == "$lookup" {
                sub_pipeline(a, d, "pipeline", foreign_db)?;
            }
        }
        "$unionWith" => match spec {
            RawBsonRef::String(coll) => a.add(db, Some(coll))?,
            RawBsonRef::Document(d) => {
                let union_db = match unique_field(d, "db")? {
                    Some(RawBsonRef::String(other)) => {
                        check_database(other, "$unionWith")?;
                        other
                    }
                    Some(_) => return Err(bad("$unionWith `db` must be a string")),
                    None => db,
                };
                match unique_field(d, "coll")? {
                    Some(RawBsonRef::String(c)) => a.add(union_db, Some(c))?,
                    None => a.add(union_db, None)?,
                    Some(_) => return Err(bad("$unionWith `coll` must be a string")),
                }
                sub_pipeline(a, d, "pipeline", union_db)?;
            }
            _ => return Err(bad("$unionWith must be a string or a document")),
        },
        "$facet" => {
            let d = spec
                .as_document()
                .ok_or_else(|| bad("$facet must be a document"))?;
            for item in d.iter() {
                let (_, sub) = item.map_err(|e| super::doc::invalid("$facet", e))?;
                let arr = sub
                    .as_array()
                    .ok_or_else(|| bad("each $facet must be a pipeline array"))?;
                pipeline(
                    a,
                    arr.into_iter()
                        .map(|r| r.map_err(|e| super::doc::invalid("pipeline", e))),
                    db,
                )?;
            }
        }
        "$changeStream" => {
            let d = spec
                .as_document()
                .ok_or_else(|| bad("$changeStream must be a document"))?;
            if unique_field(d, "allChangesForCluster")?.is_some_and(truthy) {
                a.everything("$changeStream with allChangesForCluster watches every database");
            }
        }
        n => match commands::stage(n) {
            Some(StageReach::ThisDatabase) => {}
            Some(StageReach::AllDatabases) => {
                a.everything(format!("stage `{n}` reaches every database"));
            }
            Some(StageReach::SharedPrincipal) => a.refuse(shared_principal_reason(n)),
            Some(StageReach::Targets) | None => {
                return Err(Error::new(
                    ResultCode::WireUnknownStage,
                    format!(
                        "unknown aggregation stage `{}` refused: not in the stage table",
                        shown(n)
                    ),
                ))
            }
        },
    }
    Ok(())
}
