//! Trait templates in role values: `{{internal.db_users}}`, `{{external.team}}`,
//! `prefix-{{external.x}}-suffix`, `{{email.local(external.email)}}` and
//! `{{regexp.replace(external.x, "re", "repl")}}`, as Teleport's `lib/utils/parse` and
//! `services.ApplyValueTraits` interpret them.
//!
//! A value without `{{` is a literal. A template is parsed when the role is loaded (a
//! malformed one is a load-time error) and expanded per identity: every trait value gives one
//! result; a missing trait, an empty trait or an unsupported `internal.*` name gives no result
//! (the caller drops the entry, as Teleport does).

use std::collections::BTreeMap;

use regex::Regex;

/// The `internal.*` names Teleport's `ApplyValueTraits` accepts.
const INTERNAL_TRAITS: &[&str] = &[
    "logins",
    "windows_logins",
    "kubernetes_groups",
    "kubernetes_users",
    "db_names",
    "db_users",
    "aws_role_arns",
    "azure_identities",
    "gcp_service_accounts",
    "jwt",
];

/// Identity traits: name → values.
pub type Traits = BTreeMap<String, Vec<String>>;

#[derive(Debug, Clone)]
pub enum Transform {
    None,
    EmailLocal,
    RegexpReplace(Regex, String),
}

/// A role value: a literal or a trait template.
#[derive(Debug, Clone)]
pub enum Template {
    Literal(String),
    Trait {
        prefix: String,
        suffix: String,
        /// `internal` or `external`.
        namespace: String,
        name: String,
        transform: Transform,
        /// `internal.<name>` where Teleport does not support `<name>`: expands to nothing.
        unsupported: bool,
    },
}

impl Template {
    /// Parses a role value. `Err` names the problem (the caller adds role and field).
    pub fn parse(value: &str) -> Result<Template, String> {
        let Some(open) = value.find("{{") else {
            if value.contains("}}") {
                return Err(format!("{value:?} has `}}}}` without `{{{{`"));
            }
            return Ok(Template::Literal(value.to_string()));
        };
        let rest = &value[open + 2..];
        let Some(close) = rest.find("}}") else {
            return Err(format!("{value:?} has `{{{{` without `}}}}`"));
        };
        let prefix = value[..open].to_string();
        let suffix = rest[close + 2..].to_string();
        if suffix.contains("{{") || suffix.contains("}}") || prefix.contains("}}") {
            return Err(format!(
                "{value:?} has more than one `{{{{ }}}}` expression"
            ));
        }
        let body = rest[..close].trim();
        let (transform, var) = parse_call(body).map_err(|e| format!("{value:?}: {e}"))?;
        let (namespace, name) = parse_variable(var).map_err(|e| format!("{value:?}: {e}"))?;
        let unsupported = namespace == "internal" && !INTERNAL_TRAITS.contains(&name.as_str());
        Ok(Template::Trait {
            prefix: prefix.trim_start().to_string(),
            suffix: suffix.trim_end().to_string(),
            namespace,
            name,
            transform,
            unsupported,
        })
    }

    pub fn is_literal(&self) -> bool {
        matches!(self, Template::Literal(_))
    }

    /// The literal text, when this is not a template.
    pub fn literal(&self) -> Option<&str> {
        match self {
            Template::Literal(s) => Some(s),
            Template::Trait { .. } => None,
        }
    }

    /// Expands against `traits`, appending results to `out`. Returns false when the template
    /// produced nothing (missing or empty trait, unsupported variable, no transform result).
    pub fn expand_into(&self, traits: &Traits, out: &mut Vec<String>) -> bool {
        match self {
            Template::Literal(s) => {
                out.push(s.clone());
                true
            }
            Template::Trait {
                prefix,
                suffix,
                name,
                transform,
                unsupported,
                ..
            } => {
                if *unsupported {
                    return false;
                }
                let Some(values) = traits.get(name) else {
                    return false;
                };
                let before = out.len();
                for v in values {
                    let transformed = match transform {
                        Transform::None => Some(v.clone()),
                        Transform::EmailLocal => email_local(v),
                        Transform::RegexpReplace(re, replacement) => {
                            if re.is_match(v) {
                                Some(re.replace_all(v, replacement.as_str()).into_owned())
                            } else {
                                None
                            }
                        }
                    };
                    match transformed {
                        Some(t) if !t.is_empty() => out.push(format!("{prefix}{t}{suffix}")),
                        _ => {}
                    }
                }
                out.len() > before
            }
        }
    }
}

impl Template {
    /// True when some expansion of this template satisfies `pred`, without allocating for
    /// a literal or a plain `{{ns.name}}` template.
    pub fn any_expansion(&self, traits: &Traits, mut pred: impl FnMut(&str) -> bool) -> bool {
        match self {
            Template::Literal(s) => pred(s),
            Template::Trait {
                prefix,
                suffix,
                name,
                transform: Transform::None,
                unsupported: false,
                ..
            } if prefix.is_empty() && suffix.is_empty() => traits
                .get(name)
                .is_some_and(|values| values.iter().any(|v| !v.is_empty() && pred(v))),
            _ => {
                let mut out = Vec::new();
                self.expand_into(traits, &mut out);
                out.iter().any(|v| pred(v))
            }
        }
    }
}

/// `local@domain` → `local`; anything that is not a plain address gives nothing.
fn email_local(v: &str) -> Option<String> {
    let addr = match (v.find('<'), v.rfind('>')) {
        (Some(a), Some(b)) if a < b => &v[a + 1..b],
        _ => v.trim(),
    };
    let (local, domain) = addr.rsplit_once('@')?;
    if local.is_empty() || domain.is_empty() || local.contains(char::is_whitespace) {
        return None;
    }
    Some(local.to_string())
}

fn parse_call(body: &str) -> Result<(Transform, &str), String> {
    if let Some(args) = strip_call(body, "email.local") {
        return Ok((Transform::EmailLocal, args.trim()));
    }
    if let Some(args) = strip_call(body, "regexp.replace") {
        let (var, rest) = args
            .split_once(',')
            .ok_or("regexp.replace needs (variable, \"regex\", \"replacement\")")?;
        let (pattern, rest) = parse_quoted(rest.trim_start())?;
        let rest = rest
            .trim_start()
            .strip_prefix(',')
            .ok_or("regexp.replace needs (variable, \"regex\", \"replacement\")")?;
        let (replacement, rest) = parse_quoted(rest.trim_start())?;
        if !rest.trim().is_empty() {
            return Err("unexpected text after regexp.replace arguments".into());
        }
        let re = Regex::new(&pattern).map_err(|e| format!("invalid regexp {pattern:?}: {e}"))?;
        return Ok((Transform::RegexpReplace(re, replacement), var.trim()));
    }
    if body.contains('(') {
        return Err(format!("unsupported function in {body:?}"));
    }
    Ok((Transform::None, body))
}

fn strip_call<'a>(body: &'a str, func: &str) -> Option<&'a str> {
    body.strip_prefix(func)?
        .trim_start()
        .strip_prefix('(')?
        .strip_suffix(')')
}

/// A Go-style double-quoted string literal (`\"` and `\\` escapes) at the start of `s`.
fn parse_quoted(s: &str) -> Result<(String, &str), String> {
    let mut chars = s.char_indices();
    if !matches!(chars.next(), Some((_, '"'))) {
        return Err(format!("expected a quoted string at {s:?}"));
    }
    let mut out = String::new();
    let mut escaped = false;
    for (i, c) in chars {
        if escaped {
            match c {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                other => out.push(other),
            }
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            return Ok((out, &s[i + 1..]));
        } else {
            out.push(c);
        }
    }
    Err(format!("unterminated string in {s:?}"))
}

/// `internal.db_users`, `external.team` or `external["team"]`.
fn parse_variable(var: &str) -> Result<(String, String), String> {
    let (namespace, name) = if let Some((ns, rest)) = var.split_once('[') {
        let inner = rest
            .strip_suffix(']')
            .ok_or_else(|| format!("malformed variable {var:?}"))?;
        let (name, tail) = parse_quoted(inner.trim())?;
        if !tail.trim().is_empty() {
            return Err(format!("malformed variable {var:?}"));
        }
        (ns.trim().to_string(), name)
    } else {
        let (ns, name) = var.split_once('.').ok_or_else(|| {
            format!("variable {var:?} needs a namespace (internal. or external.)")
        })?;
        (ns.trim().to_string(), name.trim().to_string())
    };
    if namespace != "internal" && namespace != "external" {
        return Err(format!(
            "unknown namespace {namespace:?} (expected internal or external)"
        ));
    }
    if name.is_empty()
        || name.contains('.')
        || !name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == ':' || c == '/')
    {
        return Err(format!("invalid trait name {name:?}"));
    }
    Ok((namespace, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traits() -> Traits {
        let mut t = Traits::new();
        t.insert("db_users".into(), vec!["alice".into(), "bob".into()]);
        t.insert("email".into(), vec!["alice@example.com".into()]);
        t.insert("empty".into(), vec![]);
        t
    }

    fn expand(s: &str) -> Vec<String> {
        let mut out = vec![];
        Template::parse(s).unwrap().expand_into(&traits(), &mut out);
        out
    }

    #[test]
    fn expansions() {
        assert_eq!(expand("{{internal.db_users}}"), ["alice", "bob"]);
        assert_eq!(
            expand("u-{{external.db_users}}-x"),
            ["u-alice-x", "u-bob-x"]
        );
        assert_eq!(expand("{{external[\"db_users\"]}}"), ["alice", "bob"]);
        assert_eq!(expand("{{email.local(external.email)}}"), ["alice"]);
        assert_eq!(
            expand(r#"{{regexp.replace(external.db_users, "^a(.*)$", "A$1")}}"#),
            ["Alice"]
        );
        assert!(expand("{{external.missing}}").is_empty());
        assert!(expand("{{external.empty}}").is_empty());
        assert!(expand("{{internal.not_supported}}").is_empty());
        assert_eq!(expand("plain"), ["plain"]);
    }

    #[test]
    fn malformed() {
        for bad in [
            "{{internal.db_users",
            "{{foo}}",
            "{{other.x}}",
            "{{a.b}}{{c.d}}",
            r#"{{regexp.replace(external.x, "(", "y")}}"#,
            "{{unknown.fn(external.x)}}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }
}
