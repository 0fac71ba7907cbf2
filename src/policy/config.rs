//! Engine configuration: roles (inline or files), databases, optional named identities and
//! operator Rego modules, in JSON or YAML.
//!
//! ```yaml
//! roles:
//!   - roles/access.yaml          # a file: one or more role documents (YAML `---` or a list)
//!   - file: roles/deny-admin.json
//!   - kind: role                 # or inline, as `tctl get roles` prints it
//!     version: v7
//!     metadata: {name: dev}
//!     spec: {allow: {db_labels: {env: dev}, db_users: ["*"], db_names: ["*"]}}
//! databases:
//!   - name: my-docdb
//!     protocol: mongodb
//!     uri: my-docdb.cluster-abcdefghijklm.us-east-1.docdb.amazonaws.com:27017
//!     labels: {env: dev}
//!     aws: {account_id: "123456789012", region: us-east-1}
//! identities:
//!   - {user: alice, roles: [access], traits: {db_users: ["*"], db_names: ["*"]}}
//! modules:
//!   - policies/no-drop.rego
//!   - {name: hours.rego, rego: "package docauth.operator\n..."}
//! ```
//!
//! Relative paths are resolved against the directory of the config file. Limits: every
//! document (the config and each file it names) at most 16 MiB, all of them together at most
//! 64 MiB, nesting at most 64 levels.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::model::{Database, IdentitySpec};
use super::role::{RawRole, Role};
use crate::operator_file::{read_text_bounded, FileError, MAX_OPERATOR_FILE_BYTES};
use crate::{Error, ResultCode};

/// Largest config or role/module file accepted.
pub(crate) const MAX_DOCUMENT_BYTES: usize = MAX_OPERATOR_FILE_BYTES;
/// Largest total of the config and every file it names.
pub(crate) const MAX_TOTAL_BYTES: usize = 64 * 1024 * 1024;
/// Deepest nesting of arrays/objects accepted in a config or role document.
pub(crate) const MAX_DEPTH: usize = 64;

/// A loaded, validated configuration (roles compiled, modules read but not yet compiled).
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub roles: Vec<Role>,
    pub databases: Vec<Database>,
    pub identities: Vec<IdentitySpec>,
    /// Operator Rego modules: (name, source).
    pub modules: Vec<(String, String)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    roles: Vec<serde_json::Value>,
    #[serde(default)]
    databases: Vec<Database>,
    #[serde(default)]
    identities: Vec<IdentitySpec>,
    #[serde(default)]
    modules: Vec<serde_json::Value>,
}

fn err(code: ResultCode, msg: String) -> Error {
    Error::new(code, msg)
}

pub(super) struct Loader {
    base: PathBuf,
    total: usize,
    /// Refuse every file the text names instead of opening it (see [`Config::parse_text`]).
    no_files: bool,
}

impl Loader {
    /// A loader resolving relative paths against `base`.
    pub(super) fn new(base: PathBuf) -> Loader {
        Loader {
            base,
            total: 0,
            no_files: false,
        }
    }

    pub(super) fn read(&mut self, path: &str, what: &str) -> Result<(String, String), Error> {
        if self.no_files {
            return Err(err(
                ResultCode::PolicyConfigUnreadable,
                format!("{what} {path}: files are not read here"),
            ));
        }
        let full = if Path::new(path).is_absolute() {
            PathBuf::from(path)
        } else {
            self.base.join(path)
        };
        let shown = full.display().to_string();
        let text = read_text_bounded(&full, MAX_DOCUMENT_BYTES).map_err(|e| {
            let code = match e {
                FileError::TooLarge { .. } => ResultCode::PolicyConfigTooLarge,
                FileError::Unreadable(_) => ResultCode::PolicyConfigUnreadable,
            };
            err(code, format!("{what} {shown}: {e}"))
        })?;
        self.account(&shown, text.len())?;
        Ok((shown, text))
    }

    fn account(&mut self, source: &str, len: usize) -> Result<(), Error> {
        self.total += len;
        if len > MAX_DOCUMENT_BYTES || self.total > MAX_TOTAL_BYTES {
            return Err(err(
                ResultCode::PolicyConfigTooLarge,
                format!(
                    "{source}: configuration is larger than the limit ({MAX_DOCUMENT_BYTES} bytes per document, {MAX_TOTAL_BYTES} in total)"
                ),
            ));
        }
        Ok(())
    }
}

fn looks_like_json(text: &str) -> bool {
    matches!(text.trim_start().chars().next(), Some('{') | Some('['))
}

/// Rejects flow-style nesting deeper than [`MAX_DEPTH`] before any parser recurses into it
/// (brackets inside quoted strings and comments are skipped).
fn check_flow_depth(source: &str, text: &str, json: bool) -> Result<(), Error> {
    let mut depth = 0usize;
    let mut line = 1usize;
    let mut in_double = false;
    let mut in_single = false;
    let mut escaped = false;
    let mut in_comment = false;
    for c in text.chars() {
        if c == '\n' {
            line += 1;
            in_comment = false;
            if !json {
                // YAML single-quoted and plain scalars do not span our bracket counting.
                in_single = false;
            }
            continue;
        }
        if in_comment {
            continue;
        }
        if in_double {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_double = false;
            }
            continue;
        }
        if in_single {
            if c == '\'' {
                in_single = false;
            }
            continue;
        }
        match c {
            '"' => in_double = true,
            '\'' if !json => in_single = true,
            '#' if !json => in_comment = true,
            '[' | '{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(err(
                        ResultCode::PolicyConfigTooDeep,
                        format!(
                            "{source}: line {line}: nesting deeper than the limit of {MAX_DEPTH} levels"
                        ),
                    ));
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn value_depth(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(a) => 1 + a.iter().map(value_depth).max().unwrap_or(0),
        serde_json::Value::Object(o) => 1 + o.values().map(value_depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn check_value_depth(source: &str, v: &serde_json::Value) -> Result<(), Error> {
    if value_depth(v) > MAX_DEPTH {
        return Err(err(
            ResultCode::PolicyConfigTooDeep,
            format!("{source}: nesting deeper than the limit of {MAX_DEPTH} levels"),
        ));
    }
    Ok(())
}

fn yaml_error(source: &str, e: &serde_norway::Error) -> String {
    match e.location() {
        Some(loc) => format!(
            "{source}: line {} column {}: {}",
            loc.line(),
            loc.column(),
            strip_location(&e.to_string())
        ),
        None => format!("{source}: {e}"),
    }
}

/// serde_norway appends " at line L column C" to its messages; we print the location first.
fn strip_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

fn json_error(source: &str, e: &serde_json::Error) -> String {
    if e.line() == 0 {
        return format!("{source}: {e}");
    }
    let msg = e.to_string();
    let msg = match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg,
    };
    format!("{source}: line {} column {}: {msg}", e.line(), e.column())
}

/// Parses one JSON or YAML document (YAML: possibly several `---` documents) into values,
/// each with the line it starts on.
pub(super) fn parse_documents(
    source: &str,
    text: &str,
) -> Result<Vec<(usize, serde_json::Value)>, Error> {
    let json = looks_like_json(text);
    check_flow_depth(source, text, json)?;
    if json {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| err(ResultCode::PolicyConfigSyntax, json_error(source, &e)))?;
        check_value_depth(source, &v)?;
        return Ok(vec![(1, v)]);
    }
    // Start lines of YAML documents, for messages about a document's content.
    let mut starts = vec![1usize];
    for (i, line) in text.lines().enumerate() {
        if i > 0 && line.starts_with("---") {
            starts.push(i + 2);
        }
    }
    let mut out = Vec::new();
    for (n, doc) in serde_norway::Deserializer::from_str(text).enumerate() {
        let v = serde_json::Value::deserialize(doc)
            .map_err(|e| err(ResultCode::PolicyConfigSyntax, yaml_error(source, &e)))?;
        check_value_depth(source, &v)?;
        if v.is_null() {
            continue; // an empty document (e.g. a trailing `---`)
        }
        let start = starts.get(n).copied().unwrap_or(1);
        out.push((start, v));
    }
    Ok(out)
}

pub(super) fn role_from_value(
    source: &str,
    line: usize,
    v: serde_json::Value,
) -> Result<Role, Error> {
    let raw: RawRole = serde_json::from_value(v).map_err(|e| {
        err(
            ResultCode::PolicyRoleInvalid,
            format!("{source}: role document at line {line}: {e}"),
        )
    })?;
    Role::from_raw(raw).map_err(|e| {
        err(
            ResultCode::PolicyRoleInvalid,
            format!("{source}: role document at line {line}: {e}"),
        )
    })
}

/// Loads role documents from one file's text: a role, a list of roles, or several YAML
/// documents.
pub fn roles_from_text(source: &str, text: &str) -> Result<Vec<Role>, Error> {
    let mut roles = Vec::new();
    for (line, v) in parse_documents(source, text)? {
        match v {
            serde_json::Value::Array(items) => {
                for item in items {
                    roles.push(role_from_value(source, line, item)?);
                }
            }
            other => roles.push(role_from_value(source, line, other)?),
        }
    }
    Ok(roles)
}

impl Config {
    /// Reads a config file; relative paths inside it are resolved against its directory.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, Error> {
        let path = path.as_ref();
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let mut loader = Loader::new(PathBuf::from("."));
        let (shown, text) = loader.read(&path.display().to_string(), "config")?;
        loader.base = base;
        Config::parse(&mut loader, &shown, &text)
    }

    /// Parses config text (JSON or YAML). `source` names it in errors; relative paths are
    /// resolved against `base_dir` (the current directory when `None`).
    pub fn from_str(source: &str, text: &str, base_dir: Option<&Path>) -> Result<Config, Error> {
        let mut loader = Loader::new(
            base_dir
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
        );
        loader.account(source, text.len())?;
        Config::parse(&mut loader, source, text)
    }

    /// As [`Config::from_str`], but a role file or Rego module named by path is refused
    /// (`PolicyConfigUnreadable`) instead of opened: the parser alone, for the fuzz target
    /// and replay test of the policy config, which must never read the machine's files.
    #[doc(hidden)]
    pub fn parse_text(source: &str, text: &str) -> Result<Config, Error> {
        let mut loader = Loader::new(PathBuf::from("."));
        loader.no_files = true;
        loader.account(source, text.len())?;
        Config::parse(&mut loader, source, text)
    }

    fn parse(loader: &mut Loader, source: &str, text: &str) -> Result<Config, Error> {
        let json = looks_like_json(text);
        check_flow_depth(source, text, json)?;
        let raw: RawConfig = if json {
            serde_json::from_str(text)
                .map_err(|e| err(ResultCode::PolicyConfigSyntax, json_error(source, &e)))?
        } else {
            if text.trim().is_empty() {
                return Err(err(
                    ResultCode::PolicyConfigSyntax,
                    format!("{source}: the configuration is empty"),
                ));
            }
            serde_norway::from_str(text)
                .map_err(|e| err(ResultCode::PolicyConfigSyntax, yaml_error(source, &e)))?
        };
        for v in raw.roles.iter().chain(raw.modules.iter()) {
            check_value_depth(source, v)?;
        }
        let mut config = Config {
            databases: raw.databases,
            identities: raw.identities,
            ..Config::default()
        };
        for (i, entry) in raw.roles.into_iter().enumerate() {
            let file = match &entry {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Object(o) if o.len() == 1 && o.contains_key("file") => {
                    o.get("file").and_then(|f| f.as_str()).map(str::to_string)
                }
                _ => None,
            };
            match file {
                Some(path) => {
                    let (shown, text) = loader.read(&path, "role file")?;
                    config.roles.extend(roles_from_text(&shown, &text)?);
                }
                None => {
                    let raw: RawRole = serde_json::from_value(entry).map_err(|e| {
                        err(
                            ResultCode::PolicyRoleInvalid,
                            format!("{source}: roles[{i}]: {e}"),
                        )
                    })?;
                    config.roles.push(Role::from_raw(raw).map_err(|e| {
                        err(
                            ResultCode::PolicyRoleInvalid,
                            format!("{source}: roles[{i}]: {e}"),
                        )
                    })?);
                }
            }
        }
        for (i, entry) in raw.modules.into_iter().enumerate() {
            match entry {
                serde_json::Value::String(path) => {
                    let (shown, text) = loader.read(&path, "Rego module")?;
                    config.modules.push((shown, text));
                }
                serde_json::Value::Object(o) => {
                    if let Some(path) = o.get("file").and_then(|f| f.as_str()) {
                        let (shown, text) = loader.read(path, "Rego module")?;
                        config.modules.push((shown, text));
                    } else {
                        let rego = o.get("rego").and_then(|r| r.as_str()).ok_or_else(|| {
                            err(
                                ResultCode::InvalidConfig,
                                format!("{source}: modules[{i}]: needs `file` or `rego`"),
                            )
                        })?;
                        let name = o
                            .get("name")
                            .and_then(|n| n.as_str())
                            .map(str::to_string)
                            .unwrap_or_else(|| format!("modules[{i}].rego"));
                        loader.account(&name, rego.len())?;
                        config.modules.push((name, rego.to_string()));
                    }
                }
                _ => {
                    return Err(err(
                        ResultCode::InvalidConfig,
                        format!("{source}: modules[{i}]: expected a path or {{file|rego}}"),
                    ))
                }
            }
        }
        config.validate(source)?;
        Ok(config)
    }

    fn validate(&self, source: &str) -> Result<(), Error> {
        let mut seen = std::collections::HashSet::new();
        for r in &self.roles {
            if !seen.insert(r.name.as_str()) {
                return Err(err(
                    ResultCode::PolicyRoleInvalid,
                    format!("{source}: role {:?} is defined more than once", r.name),
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for d in &self.databases {
            if d.name.is_empty() || !seen.insert(d.name.as_str()) {
                return Err(err(
                    ResultCode::InvalidConfig,
                    format!(
                        "{source}: database name {:?} is empty or defined more than once",
                        d.name
                    ),
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for i in &self.identities {
            if i.user.is_empty() || !seen.insert(i.user.as_str()) {
                return Err(err(
                    ResultCode::InvalidConfig,
                    format!(
                        "{source}: identity {:?} is empty or defined more than once",
                        i.user
                    ),
                ));
            }
        }
        Ok(())
    }
}
