//! Aggregation pipelines: every stage looked up in the stage table, and the databases and
//! collections the stages that name them (`$out`, `$merge`, `$lookup`, `$graphLookup`,
//! `$unionWith`, `$facet`, `$changeStream`) reach, sub-pipelines included.

use bson::raw::{RawBsonRef, RawDocument};

use super::access::{bad, check_database, Analysis};
use super::commands::{self, shared_principal_reason, StageReach};
use super::doc::{shown, truthy, unique_field};
use crate::{Error, Result, ResultCode};

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

pub(super) fn pipeline<'a>(
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
