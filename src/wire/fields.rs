//! Reading a command document's fields: the top-level fields a command may carry (the generic
//! arguments), each read once, and the OP_MSG document sequences that stand for array fields.

use bson::raw::{RawBsonRef, RawDocument};

use super::access::bad;
use super::doc::{shown, unique_field};
use super::views::{Documents, OpMsg};
use crate::{Error, Result, ResultCode};

pub(super) fn duplicate(key: &str) -> Error {
    Error::new(
        ResultCode::WireDuplicateKey,
        format!(
            "the field `{}` is given both in the body and as a document sequence; refused",
            shown(key)
        ),
    )
}

/// A command document, with the OP_MSG document sequences that stand for its array fields.
#[derive(Clone, Copy)]
pub(super) struct Cmd<'a> {
    pub(super) body: &'a RawDocument,
    pub(super) msg: Option<OpMsg<'a>>,
}

/// An array-like field: a BSON array or an OP_MSG document sequence.
pub(super) enum Items<'a> {
    Array(bson::raw::RawArrayIter<'a>),
    Sequence(Documents<'a>),
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
    pub(super) fn plain(body: &'a RawDocument) -> Self {
        Cmd { body, msg: None }
    }

    /// A scalar/document field: refused when duplicated or also sent as a sequence.
    pub(super) fn get(&self, key: &str) -> Result<Option<RawBsonRef<'a>>> {
        let value = unique_field(self.body, key)?;
        if self.msg.and_then(|m| m.sequence(key)).is_some() {
            return Err(duplicate(key));
        }
        Ok(value)
    }

    /// An array field, from the body or from the document sequence with that identifier.
    pub(super) fn items(&self, key: &str) -> Result<Option<Items<'a>>> {
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

    pub(super) fn get_str(&self, key: &str) -> Result<Option<&'a str>> {
        match self.get(key)? {
            None => Ok(None),
            Some(RawBsonRef::String(s)) => Ok(Some(s)),
            Some(_) => Err(bad(format!("`{key}` must be a string"))),
        }
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

pub(super) fn refused_field(msg: String) -> Error {
    Error::new(ResultCode::WireRefusedField, msg)
}

/// Every top-level field once; no `$`-field but the generic ones; no internal generic
/// argument. Linear in the number of fields.
pub(super) fn check_top_level_fields(body: &RawDocument) -> Result<()> {
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
