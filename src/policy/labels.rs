//! `db_labels` selectors, as Teleport's `services.MatchLabelGetter` and
//! `utils.SliceMatchesRegex` evaluate them:
//!
//! - an empty selector matches nothing;
//! - `'*': '*'` (the key `*` with exactly the one value `*`) matches every database;
//! - otherwise every selector key must exist on the database, and the value must match one of
//!   the selector's values: `*` matches any value; a value that starts with `^` and ends with
//!   `$` is a regular expression; anything else is a glob (`*` = any run of characters),
//!   anchored at both ends. Matching is case-sensitive.
//!
//! Selectors without trait templates are compiled once, when the role is loaded.

use std::collections::BTreeMap;

use regex::Regex;

use super::template::{Template, Traits};

/// One compiled selector value.
#[derive(Debug, Clone)]
pub enum ValueMatcher {
    /// `*`.
    Any,
    /// A glob without `*`: plain string equality.
    Exact(String),
    /// A glob with `*`, or a `^…$` regular expression.
    Regex(Regex),
}

impl ValueMatcher {
    /// Compiles a selector value. `Err` is the regex compiler's message.
    pub fn compile(value: &str) -> Result<ValueMatcher, String> {
        if value == "*" {
            return Ok(ValueMatcher::Any);
        }
        if value.starts_with('^') && value.ends_with('$') {
            return Regex::new(value)
                .map(ValueMatcher::Regex)
                .map_err(|e| format!("invalid regular expression {value:?}: {e}"));
        }
        if !value.contains('*') {
            return Ok(ValueMatcher::Exact(value.to_string()));
        }
        let pattern = format!(
            "^{}$",
            value
                .split('*')
                .map(regex::escape)
                .collect::<Vec<_>>()
                .join("(.*)")
        );
        Regex::new(&pattern)
            .map(ValueMatcher::Regex)
            .map_err(|e| format!("invalid glob {value:?}: {e}"))
    }

    pub fn matches(&self, target: &str) -> bool {
        match self {
            ValueMatcher::Any => true,
            ValueMatcher::Exact(s) => s == target,
            ValueMatcher::Regex(re) => re.is_match(target),
        }
    }
}

/// A compiled selector.
#[derive(Debug, Clone)]
pub enum LabelSelector {
    /// Empty selector: matches nothing.
    Nothing,
    /// `'*': '*'`: matches everything, even a database without labels.
    All,
    /// Every key must exist and match one of its values.
    Keys(Vec<(String, Vec<ValueMatcher>)>),
}

impl LabelSelector {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            LabelSelector::Nothing => false,
            LabelSelector::All => true,
            LabelSelector::Keys(keys) => keys.iter().all(|(key, values)| {
                labels
                    .get(key)
                    .is_some_and(|target| values.iter().any(|m| m.matches(target)))
            }),
        }
    }

    /// Compiles literal (already expanded) selector entries.
    pub fn compile(entries: &[(String, Vec<String>)]) -> Result<LabelSelector, String> {
        if entries.is_empty() {
            return Ok(LabelSelector::Nothing);
        }
        if let Some((_, values)) = entries.iter().find(|(k, _)| k == "*") {
            if values.len() == 1 && values[0] == "*" {
                return Ok(LabelSelector::All);
            }
        }
        let mut keys = Vec::with_capacity(entries.len());
        for (key, values) in entries {
            let mut matchers = Vec::with_capacity(values.len());
            for v in values {
                matchers.push(ValueMatcher::compile(v)?);
            }
            keys.push((key.clone(), matchers));
        }
        Ok(LabelSelector::Keys(keys))
    }
}

/// A selector as written in the role: compiled now when it has no templates, else kept as
/// templates and compiled per identity.
#[derive(Debug, Clone)]
pub enum RoleLabels {
    Static(LabelSelector),
    Templated(Vec<(Template, Vec<Template>)>),
}

impl RoleLabels {
    /// Parses and, when possible, compiles. `Err` names the problem.
    pub fn new(raw: &BTreeMap<String, Vec<String>>) -> Result<RoleLabels, String> {
        let mut templated = Vec::with_capacity(raw.len());
        let mut any_template = false;
        for (key, values) in raw {
            let k = Template::parse(key)?;
            any_template |= !k.is_literal();
            let mut vs = Vec::with_capacity(values.len());
            for v in values {
                let t = Template::parse(v)?;
                any_template |= !t.is_literal();
                if let Template::Literal(lit) = &t {
                    // Reject an invalid regex or glob now, not at decision time.
                    ValueMatcher::compile(lit)?;
                }
                vs.push(t);
            }
            templated.push((k, vs));
        }
        if any_template {
            return Ok(RoleLabels::Templated(templated));
        }
        let entries: Vec<(String, Vec<String>)> =
            raw.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        LabelSelector::compile(&entries).map(RoleLabels::Static)
    }

    /// The selector for one identity. As Teleport's `applyLabelsTraits`: a key or value whose
    /// template expands to nothing becomes the empty string (which matches nothing useful);
    /// a key expanding to several values uses the first. `Err` when an expanded value is an
    /// invalid regular expression.
    pub fn for_traits(&self, traits: &Traits) -> Result<LabelSelector, String> {
        match self {
            RoleLabels::Static(s) => Ok(s.clone()),
            RoleLabels::Templated(entries) => {
                let mut expanded: Vec<(String, Vec<String>)> = Vec::new();
                for (k, vs) in entries {
                    let mut keys = Vec::new();
                    if !k.expand_into(traits, &mut keys) {
                        keys = vec![String::new()];
                    }
                    let mut values = Vec::new();
                    for v in vs {
                        if !v.expand_into(traits, &mut values) {
                            values.push(String::new());
                        }
                    }
                    values.dedup();
                    let key = keys.swap_remove(0);
                    // Two template keys may expand to the same key: the later one wins, as a
                    // Go map assignment does.
                    expanded.retain(|(existing, _)| existing != &key);
                    expanded.push((key, values));
                }
                LabelSelector::compile(&expanded)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(entries: &[(&str, &[&str])]) -> LabelSelector {
        let e: Vec<(String, Vec<String>)> = entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
            .collect();
        LabelSelector::compile(&e).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn globs_regexes_and_wildcards() {
        let db = labels(&[("env", "dev"), ("team", "payments")]);
        assert!(sel(&[("env", &["dev"])]).matches(&db));
        assert!(!sel(&[("env", &["Dev"])]).matches(&db));
        assert!(sel(&[("env", &["d*"])]).matches(&db));
        assert!(!sel(&[("env", &["^d$"])]).matches(&db));
        assert!(sel(&[("env", &["^(dev|prod)$"])]).matches(&db));
        // Starts with ^ but no $: a glob, so `^dev` is literal.
        assert!(!sel(&[("env", &["^dev"])]).matches(&db));
        assert!(sel(&[("*", &["*"])]).matches(&labels(&[])));
        assert!(!sel(&[]).matches(&db));
        assert!(!sel(&[("env", &["dev"]), ("region", &["*"])]).matches(&db));
        assert!(sel(&[("env", &["prod", "dev"])]).matches(&db));
        // A glob's regex characters are literal.
        assert!(!sel(&[("env", &["d.v"])]).matches(&db));
    }

    #[test]
    fn invalid_regex_is_an_error() {
        assert!(ValueMatcher::compile("^(unclosed$").is_err());
    }
}
