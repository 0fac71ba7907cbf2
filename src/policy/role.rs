//! Teleport role documents (`kind: role`, `version: v3`…`v8`), as `tctl get roles` prints
//! them, reduced to what database access needs: `spec.allow` / `spec.deny` `db_labels`,
//! `db_users`, `db_names`. Every other field is ignored.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;

use super::labels::{LabelSelector, RoleLabels};
use super::template::{Template, Traits};

/// Label values: Teleport accepts a string or a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawRole {
    pub kind: Option<String>,
    pub version: Option<String>,
    pub metadata: Option<RawMetadata>,
    #[serde(default)]
    pub spec: RawSpec,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawMetadata {
    pub name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawSpec {
    pub allow: Option<RawCondition>,
    pub deny: Option<RawCondition>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawCondition {
    /// `None` when absent or `null` (Go's nil map); `Some(empty)` for `{}`.
    pub db_labels: Option<BTreeMap<String, OneOrMany>>,
    pub db_labels_expression: Option<String>,
    pub db_users: Option<Vec<String>>,
    pub db_names: Option<Vec<String>>,
}

/// One side (allow or deny) of a loaded role.
#[derive(Debug, Clone)]
pub struct Condition {
    pub labels: RoleLabels,
    pub db_users: Vec<Template>,
    pub db_names: Vec<Template>,
}

/// A role, validated and compiled at load time.
#[derive(Debug, Clone)]
pub struct Role {
    pub name: String,
    pub version: String,
    pub allow: Condition,
    pub deny: Condition,
    /// True when `db_users` and `db_names` do not depend on traits (the expansion is shared).
    pub is_static: bool,
}

/// A role's condition after trait expansion for one identity.
#[derive(Debug, Clone)]
pub struct ExpandedCondition {
    pub db_users: Vec<String>,
    pub db_names: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ExpandedRole {
    pub name: String,
    pub allow: ExpandedCondition,
    pub deny: ExpandedCondition,
}

const VERSIONS: &[&str] = &["v3", "v4", "v5", "v6", "v7", "v8"];

impl Role {
    /// Validates a parsed document. `Err` names the problem; the caller adds the file.
    pub(crate) fn from_raw(raw: RawRole) -> Result<Role, String> {
        match raw.kind.as_deref() {
            Some("role") => {}
            Some(other) => return Err(format!("kind is {other:?}, expected \"role\"")),
            None => return Err("missing `kind: role`".into()),
        }
        let name = raw
            .metadata
            .and_then(|m| m.name)
            .filter(|n| !n.is_empty())
            .ok_or("missing metadata.name")?;
        let version = raw.version.unwrap_or_default();
        if !VERSIONS.contains(&version.as_str()) {
            return Err(format!(
                "role {name:?}: unrecognized role version {version:?} (expected v3…v8)"
            ));
        }
        let ctx = |side: &str, e: String| format!("role {name:?} spec.{side}: {e}");
        let allow_raw = raw.spec.allow.unwrap_or_default();
        let deny_raw = raw.spec.deny.unwrap_or_default();
        if deny_raw.db_labels_expression.is_some() {
            // Ignoring a deny expression would widen access: refuse instead.
            return Err(ctx(
                "deny",
                "db_labels_expression is not supported; use db_labels".into(),
            ));
        }
        // api/types/role.go CheckAndSetDefaults: a v3 role without allow.db_labels (nil,
        // and no label expression) gets {'*': '*'}; v4+ roles keep "matches nothing".
        let allow_labels = match allow_raw.db_labels {
            None if version == "v3" && allow_raw.db_labels_expression.is_none() => {
                BTreeMap::from([("*".to_string(), vec!["*".to_string()])])
            }
            None => BTreeMap::new(),
            Some(m) => m.into_iter().map(|(k, v)| (k, v.into_vec())).collect(),
        };
        let deny_labels: BTreeMap<String, Vec<String>> = deny_raw
            .db_labels
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.into_vec()))
            .collect();
        let allow = Condition::new(allow_labels, allow_raw.db_users, allow_raw.db_names)
            .map_err(|e| ctx("allow", e))?;
        let deny = Condition::new(deny_labels, deny_raw.db_users, deny_raw.db_names)
            .map_err(|e| ctx("deny", e))?;
        let is_static = allow.is_static_lists() && deny.is_static_lists();
        Ok(Role {
            name,
            version,
            allow,
            deny,
            is_static,
        })
    }

    /// Expands trait templates for one identity.
    pub fn expand(&self, traits: &Traits) -> ExpandedRole {
        ExpandedRole {
            name: self.name.clone(),
            allow: self.allow.expand(traits),
            deny: self.deny.expand(traits),
        }
    }
}

impl Condition {
    fn new(
        labels: BTreeMap<String, Vec<String>>,
        db_users: Option<Vec<String>>,
        db_names: Option<Vec<String>>,
    ) -> Result<Condition, String> {
        let parse_all = |field: &str, values: Option<Vec<String>>| {
            values
                .unwrap_or_default()
                .iter()
                .map(|v| Template::parse(v).map_err(|e| format!("{field}: {e}")))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Condition {
            labels: RoleLabels::new(&labels).map_err(|e| format!("db_labels: {e}"))?,
            db_users: parse_all("db_users", db_users)?,
            db_names: parse_all("db_names", db_names)?,
        })
    }

    /// The label selector for an identity: borrowed when it has no templates. `Err` holds
    /// the message of a trait-expanded value that is not a valid regex.
    pub fn labels_for(&self, traits: &Traits) -> Result<Cow<'_, LabelSelector>, String> {
        match &self.labels {
            RoleLabels::Static(s) => Ok(Cow::Borrowed(s)),
            templated => templated.for_traits(traits).map(Cow::Owned),
        }
    }

    fn is_static_lists(&self) -> bool {
        self.db_users.iter().all(Template::is_literal)
            && self.db_names.iter().all(Template::is_literal)
    }

    fn expand(&self, traits: &Traits) -> ExpandedCondition {
        // services.applyValueTraitsSlice: an entry whose trait is missing is dropped.
        let expand_list = |templates: &[Template]| {
            let mut out = Vec::with_capacity(templates.len());
            for t in templates {
                t.expand_into(traits, &mut out);
            }
            out.dedup();
            out
        };
        ExpandedCondition {
            db_users: expand_list(&self.db_users),
            db_names: expand_list(&self.db_names),
        }
    }
}
