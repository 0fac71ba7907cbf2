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

use bson::raw::RawBsonRef;

use super::access::{
    bad, check_database, invalid_namespace, Analysis, CommandAccess, CommandClass, Refusal,
};
use super::commands::{self, shared_principal_reason, Reach, Targets};
use super::doc::{first_field, shown, truthy, unique_field};
use super::fields::{check_top_level_fields, duplicate, refused_field, Cmd};
use super::frame::op;
use super::message::Message;
use super::pipeline::pipeline;
use crate::{Error, Result, ResultCode};

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
        if super::views::wrapped_command(q.query).is_some() {
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
        reach: row.reach,
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
