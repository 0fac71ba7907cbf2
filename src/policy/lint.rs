//! `docauth-check lint`: what in a configuration silently matches nothing.
//!
//! - unknown fields in a role document (its top level, `spec`, `spec.allow`, `spec.deny`), with
//!   the nearest known field by edit distance (`db_user` → `db_users`); Teleport's own fields
//!   that docauth ignores on purpose (`logins`, `node_labels`, `rules`, …) are not warned about;
//! - unknown top-level keys of the configuration (which the loader refuses);
//! - a role whose `allow` side matches no configured database (static labels, or for each
//!   identity holding it when its labels are templates), or that allows `db_users`/`db_names`
//!   with no `db_labels` at all;
//! - an identity naming a role that is not loaded;
//! - a role file that cannot be read, reported at the config line that names it.
//!
//! Documents are read with the loader's own parser ([`super::config`]); roles are compiled
//! as the engine compiles them. Line numbers are found by searching the document's text for
//! the key (or value) named, so a warning without a line has none.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::config::{parse_documents, role_from_value, Loader};
use super::labels::RoleLabels;
use super::model::{Database, IdentitySpec};
use super::role::Role;
use super::{Config, PolicyEngine};
use crate::{Error, ResultCode};

/// One lint finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The file the finding is in (as the loader names it).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Warning {
    /// `file:line: warning: message`, or `file: warning: message` without a line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: warning: {}", self.file, self.message),
            None => write!(f, "{}: warning: {}", self.file, self.message),
        }
    }
}

const CONFIG_KEYS: &[&str] = &["roles", "databases", "identities", "modules"];
const ROLE_KEYS: &[&str] = &["kind", "version", "metadata", "spec"];
const SPEC_KEYS: &[&str] = &["allow", "deny", "options"];
/// The condition fields docauth reads.
const CONDITION_KEYS: &[&str] = &["db_labels", "db_labels_expression", "db_users", "db_names"];
/// Teleport role condition fields that docauth ignores on purpose (`tctl get roles` prints
/// them); never warned about, but offered as a did-you-mean.
const TELEPORT_CONDITION_KEYS: &[&str] = &[
    "logins",
    "node_labels",
    "node_labels_expression",
    "windows_desktop_logins",
    "windows_desktop_labels",
    "windows_desktop_labels_expression",
    "kubernetes_groups",
    "kubernetes_users",
    "kubernetes_labels",
    "kubernetes_labels_expression",
    "kubernetes_resources",
    "app_labels",
    "app_labels_expression",
    "cluster_labels",
    "cluster_labels_expression",
    "db_service_labels",
    "db_service_labels_expression",
    "db_roles",
    "db_permissions",
    "aws_role_arns",
    "azure_identities",
    "gcp_service_accounts",
    "rules",
    "request",
    "review_requests",
    "impersonate",
    "join_sessions",
    "host_groups",
    "host_sudoers",
    "desktop_groups",
    "require_session_join",
    "group_labels",
    "group_labels_expression",
    "spiffe",
    "account_assignments",
    "github_permissions",
    "workload_identity_labels",
    "workload_identity_labels_expression",
];

/// Levenshtein distance (on chars).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The known name nearest to `key`, when it is close enough to be a typo.
fn did_you_mean<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    let limit = match key.chars().count() {
        0..=3 => 1,
        4..=8 => 2,
        _ => 3,
    };
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// The first line at or after `from` (1-based) where `key` appears as a mapping key
/// (`key:`, `"key":`, `'key':`), and, when given, `value` appears after it on that line or
/// on one of the next two lines. A heuristic for messages; `None` when not found.
fn key_line(text: &str, from: usize, key: &str, value: Option<&str>) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate().skip(from.saturating_sub(1)) {
        let mut search = 0;
        while let Some(pos) = line[search..].find(key) {
            let start = search + pos;
            let end = start + key.len();
            search = end;
            let before = line[..start].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let rest = line[end..].trim_start_matches(['"', '\'']).trim_start();
            if !rest.starts_with(':') {
                continue;
            }
            match value {
                None => return Some(i + 1),
                Some(v) => {
                    let tail = std::iter::once(&line[end..])
                        .chain(lines.iter().skip(i + 1).take(2).copied());
                    if tail.into_iter().any(|t| t.contains(v)) {
                        return Some(i + 1);
                    }
                }
            }
        }
    }
    None
}

/// The first line containing `needle`.
fn text_line(text: &str, needle: &str) -> Option<usize> {
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1)
}

struct Doc {
    source: String,
    text: String,
}

struct Linter {
    warnings: Vec<Warning>,
}

impl Linter {
    fn warn(&mut self, file: &str, line: Option<usize>, message: String) {
        self.warnings.push(Warning {
            file: file.to_string(),
            line,
            message,
        });
    }

    fn unknown_keys(
        &mut self,
        doc: &Doc,
        from: usize,
        obj: &serde_json::Map<String, Value>,
        what: &str,
        known: &[&str],
        ignored: &[&str],
    ) {
        for key in obj.keys() {
            if known.contains(&key.as_str()) || ignored.contains(&key.as_str()) {
                continue;
            }
            let all: Vec<&str> = known.iter().chain(ignored).copied().collect();
            let hint = match did_you_mean(key, &all) {
                Some(k) => format!("; did you mean `{k}`?"),
                None => String::new(),
            };
            let line = key_line(&doc.text, from, key, None);
            self.warn(
                &doc.source,
                line,
                format!("unknown field `{key}` in {what} (ignored){hint}"),
            );
        }
    }

    /// Unknown fields of one role document starting at `line`.
    fn role_fields(&mut self, doc: &Doc, line: usize, v: &Value) {
        let Some(role) = v.as_object() else { return };
        let name = role
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("?");
        // Start searching at the role's name when it can be found (several roles in a list).
        let from = key_line(&doc.text, line, "name", Some(name))
            .map(|l| l.saturating_sub(3).max(line))
            .unwrap_or(line);
        let what = format!("role {name:?}");
        self.unknown_keys(doc, from, role, &what, ROLE_KEYS, &[]);
        let Some(spec) = role.get("spec").and_then(Value::as_object) else {
            return;
        };
        self.unknown_keys(doc, from, spec, &format!("{what} spec"), SPEC_KEYS, &[]);
        for side in ["allow", "deny"] {
            if let Some(cond) = spec.get(side).and_then(Value::as_object) {
                self.unknown_keys(
                    doc,
                    from,
                    cond,
                    &format!("{what} spec.{side}"),
                    CONDITION_KEYS,
                    TELEPORT_CONDITION_KEYS,
                );
            }
        }
    }
}

/// Lints the configuration file at `path`. `Err` when the configuration itself cannot be
/// read or parsed (or, with every role file present, when the engine refuses it).
pub fn lint_file(path: impl AsRef<Path>) -> Result<Vec<Warning>, Error> {
    let path = path.as_ref();
    let base = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut loader = Loader::new(PathBuf::from("."));
    let (source, text) = loader.read(&path.display().to_string(), "config")?;
    let mut loader = Loader::new(base);
    let config_doc = Doc { source, text };
    let docs = parse_documents(&config_doc.source, &config_doc.text)?;
    let top = match docs.into_iter().next() {
        Some((_, Value::Object(o))) => o,
        _ => {
            return Err(Error::new(
                ResultCode::PolicyConfigSyntax,
                format!("{}: the configuration is not a mapping", config_doc.source),
            ))
        }
    };
    let mut lint = Linter {
        warnings: Vec::new(),
    };
    lint.unknown_keys(&config_doc, 1, &top, "the configuration", CONFIG_KEYS, &[]);

    // Roles: each file read with the loader, each document checked and compiled.
    let mut roles: Vec<(String, String, usize, Role)> = Vec::new(); // (file, text, line, role)
    let mut missing_files = false;
    let entries = top
        .get("roles")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, entry) in entries.into_iter().enumerate() {
        let file = match &entry {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) if o.len() == 1 && o.contains_key("file") => {
                o.get("file").and_then(Value::as_str).map(str::to_string)
            }
            _ => None,
        };
        match file {
            Some(file) => match loader.read(&file, "role file") {
                Ok((shown, text)) => {
                    let doc = Doc {
                        source: shown,
                        text,
                    };
                    for (line, v) in parse_documents(&doc.source, &doc.text)? {
                        let items = match v {
                            Value::Array(items) => items,
                            other => vec![other],
                        };
                        for item in items {
                            lint.role_fields(&doc, line, &item);
                            let role = role_from_value(&doc.source, line, item)?;
                            roles.push((doc.source.clone(), doc.text.clone(), line, role));
                        }
                    }
                }
                Err(e) if e.code() == ResultCode::PolicyConfigUnreadable => {
                    missing_files = true;
                    lint.warn(
                        &config_doc.source,
                        text_line(&config_doc.text, &file),
                        format!("roles[{i}]: {} (no roles loaded from it)", e.message()),
                    );
                }
                Err(e) => return Err(e),
            },
            None => {
                lint.role_fields(&config_doc, 1, &entry);
                let role = role_from_value(&config_doc.source, 1, entry)
                    .map_err(|e| Error::new(e.code(), format!("{} (roles[{i}])", e.message())))?;
                roles.push((config_doc.source.clone(), config_doc.text.clone(), 1, role));
            }
        }
    }

    // Databases and identities as the engine reads them: with every role file present the
    // real engine is built (modules, validation); otherwise from the same serde types.
    let (databases, identities): (Vec<Database>, Vec<IdentitySpec>) = if missing_files {
        let field = |k: &str| top.get(k).cloned().unwrap_or(Value::Array(Vec::new()));
        let syntax = |e: serde_json::Error| {
            Error::new(
                ResultCode::PolicyConfigSyntax,
                format!("{}: {e}", config_doc.source),
            )
        };
        (
            serde_json::from_value(field("databases")).map_err(syntax)?,
            serde_json::from_value(field("identities")).map_err(syntax)?,
        )
    } else {
        let config = Config::from_file(path)?;
        PolicyEngine::new(config.clone())?;
        (config.databases, config.identities)
    };

    let role_names: BTreeSet<&str> = roles.iter().map(|(_, _, _, r)| r.name.as_str()).collect();
    for id in &identities {
        for r in &id.roles {
            if !role_names.contains(r.as_str()) {
                let line = key_line(&config_doc.text, 1, "user", Some(&id.user));
                lint.warn(
                    &config_doc.source,
                    line,
                    format!(
                        "identity {:?} names role {r:?}, which is not loaded (it grants nothing)",
                        id.user
                    ),
                );
            }
        }
    }

    for (file, text, line, role) in &roles {
        let at = key_line(text, *line, "name", Some(&role.name));
        let allow = &role.allow;
        let grants = !allow.db_users.is_empty() || !allow.db_names.is_empty();
        let empty_static = matches!(
            &allow.labels,
            RoleLabels::Static(super::labels::LabelSelector::Nothing)
        );
        if empty_static {
            if grants {
                lint.warn(
                    file,
                    at,
                    format!(
                        "role {:?} allows db_users/db_names but has no allow.db_labels: it matches no database",
                        role.name
                    ),
                );
            }
            continue;
        }
        if databases.is_empty() {
            continue;
        }
        let matches_some = match &allow.labels {
            RoleLabels::Static(sel) => databases.iter().any(|d| sel.matches(&d.labels)),
            templated => {
                let holders: Vec<&IdentitySpec> = identities
                    .iter()
                    .filter(|i| i.roles.iter().any(|r| r == &role.name))
                    .collect();
                // Without an identity to expand the templates for, nothing can be said.
                holders.is_empty()
                    || holders.iter().any(|i| {
                        templated
                            .for_traits(&i.traits)
                            .is_ok_and(|sel| databases.iter().any(|d| sel.matches(&d.labels)))
                    })
            }
        };
        if !matches_some {
            let labels: BTreeMap<&str, &BTreeMap<String, String>> = databases
                .iter()
                .map(|d| (d.name.as_str(), &d.labels))
                .collect();
            lint.warn(
                file,
                at,
                format!(
                    "role {:?}: allow.db_labels match no configured database (databases' labels: {})",
                    role.name,
                    serde_json::to_string(&labels).unwrap_or_default()
                ),
            );
        }
    }
    Ok(lint.warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_and_suggestions() {
        assert_eq!(edit_distance("db_user", "db_users"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(did_you_mean("db_user", CONDITION_KEYS), Some("db_users"));
        assert_eq!(did_you_mean("db_lables", CONDITION_KEYS), Some("db_labels"));
        assert_eq!(did_you_mean("colour", CONDITION_KEYS), None);
    }

    #[test]
    fn key_lines() {
        let text = "a: 1\nroles:\n  - {user: alice}\n    db_user: [x]\n\"db_users\": 2\n";
        assert_eq!(key_line(text, 1, "db_user", None), Some(4));
        assert_eq!(key_line(text, 1, "db_users", None), Some(5));
        assert_eq!(key_line(text, 1, "user", Some("alice")), Some(3));
        assert_eq!(key_line(text, 1, "missing", None), None);
    }
}
