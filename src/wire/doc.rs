//! BSON helpers over borrowed bytes: full validation and duplicate-refusing field reads.

use bson::raw::{RawBsonRef, RawDocument};

use crate::{Error, Result, ResultCode};

/// Deepest document nesting accepted (MongoDB's own default limit is 200 levels).
pub const MAX_BSON_DEPTH: usize = 200;

pub(crate) fn invalid(what: &str, err: impl std::fmt::Display) -> Error {
    Error::new(
        ResultCode::WireInvalidBson,
        format!("{what} is not valid BSON: {err}"),
    )
}

/// Reads a document from the front of `bytes` by its length prefix; returns it and its length.
/// Only the prefix and the trailing NUL are checked; call [`validate`] for the rest.
pub(crate) fn doc_prefix<'a>(bytes: &'a [u8], what: &str) -> Result<(&'a RawDocument, usize)> {
    let len = bytes
        .get(..4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| invalid(what, "truncated length prefix"))?;
    let len = usize::try_from(len)
        .ok()
        .filter(|l| *l >= 5)
        .ok_or_else(|| invalid(what, format!("bad document length {len}")))?;
    let slice = bytes.get(..len).ok_or_else(|| {
        invalid(
            what,
            format!("document of {len} bytes overruns its section"),
        )
    })?;
    let doc = RawDocument::from_bytes(slice).map_err(|e| invalid(what, e))?;
    Ok((doc, len))
}

/// Walks every element of `doc` (and of every nested document, array and code-with-scope),
/// so that any malformed byte is found before the message is judged or forwarded.
/// No allocation except on the error path; recursion is bounded by [`MAX_BSON_DEPTH`].
pub fn validate(doc: &RawDocument, what: &str) -> Result<()> {
    validate_at(doc, what, 1)
}

fn validate_at(doc: &RawDocument, what: &str, depth: usize) -> Result<()> {
    if depth > MAX_BSON_DEPTH {
        return Err(invalid(
            what,
            format!("nested deeper than {MAX_BSON_DEPTH} levels"),
        ));
    }
    for item in doc.iter() {
        let (_, value) = item.map_err(|e| invalid(what, e))?;
        validate_value(value, what, depth)?;
    }
    Ok(())
}

fn validate_value(value: RawBsonRef<'_>, what: &str, depth: usize) -> Result<()> {
    match value {
        RawBsonRef::Document(d) => validate_at(d, what, depth + 1),
        RawBsonRef::Array(a) => {
            if depth + 1 > MAX_BSON_DEPTH {
                return Err(invalid(
                    what,
                    format!("nested deeper than {MAX_BSON_DEPTH} levels"),
                ));
            }
            for item in a {
                validate_value(item.map_err(|e| invalid(what, e))?, what, depth + 1)?;
            }
            Ok(())
        }
        RawBsonRef::JavaScriptCodeWithScope(c) => validate_at(c.scope, what, depth + 1),
        _ => Ok(()),
    }
}

/// A field read for a decision: `Ok(None)` when absent, an error when the key appears more
/// than once (bson's `Document` would silently keep the last one; the server may not).
pub fn unique_field<'a>(doc: &'a RawDocument, key: &str) -> Result<Option<RawBsonRef<'a>>> {
    let mut found = None;
    for item in doc.iter() {
        let (k, v) = item.map_err(|e| invalid("command document", e))?;
        if k == key {
            if found.is_some() {
                return Err(Error::new(
                    ResultCode::WireDuplicateKey,
                    format!("the key `{key}` appears more than once; refused"),
                ));
            }
            found = Some(v);
        }
    }
    Ok(found)
}

/// The first key and value of `doc` (the command name for a command document), checking
/// that the key does not appear again.
pub fn first_field(doc: &RawDocument) -> Result<Option<(&str, RawBsonRef<'_>)>> {
    let mut iter = doc.iter();
    let Some(first) = iter.next() else {
        return Ok(None);
    };
    let (key, value) = first.map_err(|e| invalid("command document", e))?;
    for item in iter {
        let (k, _) = item.map_err(|e| invalid("command document", e))?;
        if k == key {
            return Err(Error::new(
                ResultCode::WireDuplicateKey,
                format!(
                    "the command name `{}` appears more than once; refused",
                    shown(key)
                ),
            ));
        }
    }
    Ok(Some((key, value)))
}

/// True if `doc` has the key at its top level.
pub fn has_key(doc: &RawDocument, key: &str) -> bool {
    doc.iter().flatten().any(|(k, _)| k == key)
}

/// Truthiness the way the server reads a flag: booleans, and non-zero numbers.
pub fn truthy(value: RawBsonRef<'_>) -> bool {
    match value {
        RawBsonRef::Boolean(b) => b,
        RawBsonRef::Int32(i) => i != 0,
        RawBsonRef::Int64(i) => i != 0,
        RawBsonRef::Double(d) => d != 0.0,
        RawBsonRef::Null | RawBsonRef::Undefined => false,
        _ => true,
    }
}

/// A client-supplied name as shown in an error or reason: at most 64 bytes (cut at a
/// character boundary, with "…"), so a huge key never ends up in a message or a log.
pub(crate) fn shown(s: &str) -> std::borrow::Cow<'_, str> {
    const MAX: usize = 64;
    if s.len() <= MAX {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}…", &s[..end]))
}
