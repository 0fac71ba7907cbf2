//! The Rego side: the built-in policy (`builtin.rego`, shipped inside the library) and the
//! operator modules, each in its own `regorus` engine so that an operator module cannot
//! change, shadow or extend a built-in rule. Operators contribute only to
//! `data.docauth.operator.deny`.
//!
//! The hot `allow` query runs on regorus' compiled VM (RVM); deny reasons are asked only for
//! a deny, from the interpreter. Engines are per thread: a prepared engine is cloned once per thread (and, for operator
//! modules, once per engine generation) and then reused, so a decision does not pay for
//! parsing or cloning.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Mutex;

use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::vm::RegoVM;
use regorus::Value;

use crate::{Error, ResultCode};

/// The built-in policy source.
pub const BUILTIN_REGO: &str = include_str!("builtin.rego");
const ALLOW_RULE: &str = "data.docauth.builtin.allow";
const DENY_REASONS_RULE: &str = "data.docauth.builtin.deny_reasons";
/// The only rule read from operator modules.
pub const OPERATOR_PACKAGE: &str = "data.docauth.operator";
const OPERATOR_RULE: &str = "data.docauth.operator.deny";

thread_local! {
    static BUILTIN: RefCell<Option<regorus::Engine>> = const { RefCell::new(None) };
    static BUILTIN_VM: RefCell<Option<RegoVM>> = const { RefCell::new(None) };
    static OPERATOR: RefCell<Option<(u64, regorus::Engine)>> = const { RefCell::new(None) };
}

fn new_builtin_engine() -> Result<regorus::Engine, Error> {
    let mut engine = regorus::Engine::new();
    engine.set_rego_v0(false);
    engine
        .add_policy("builtin.rego".to_string(), BUILTIN_REGO.to_string())
        .map_err(|e| {
            Error::new(
                ResultCode::PolicyRegoInvalid,
                format!("built-in policy: {e}"),
            )
        })?;
    Ok(engine)
}

/// Checks once, at engine construction, that the built-in policy compiles for both the
/// interpreter and the VM.
pub(crate) fn check_builtin() -> Result<(), Error> {
    let invalid = |err: String| {
        Error::new(
            ResultCode::PolicyRegoInvalid,
            format!("built-in policy: {err}"),
        )
    };
    BUILTIN_VM.with(|cell| -> Result<(), Error> {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(new_builtin_vm().map_err(invalid)?);
        }
        Ok(())
    })?;
    let mut e = new_builtin_engine()?;
    e.set_input(Value::new_object());
    e.eval_rule(DENY_REASONS_RULE.to_string())
        .map_err(|err| invalid(err.to_string()))?;
    Ok(())
}

/// The built-in policy compiled to regorus' VM (RVM) for the hot `allow` query.
fn new_builtin_vm() -> Result<RegoVM, String> {
    let mut engine = new_builtin_engine().map_err(|e| e.message().to_string())?;
    let entry: regorus::Rc<str> = regorus::Rc::from(ALLOW_RULE);
    let compiled = engine
        .compile_with_entrypoint(&entry)
        .map_err(|e| e.to_string())?;
    let program =
        Compiler::compile_from_policy(&compiled, &[ALLOW_RULE]).map_err(|e| e.to_string())?;
    let mut vm = RegoVM::new_with_policy(compiled);
    vm.load_program(program);
    vm.set_data(Value::new_object())
        .map_err(|e| e.to_string())?;
    Ok(vm)
}

/// `data.docauth.builtin.allow` for `input`, on this thread's VM.
pub(crate) fn eval_allow(input: Value) -> Result<bool, String> {
    BUILTIN_VM.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(new_builtin_vm()?);
        }
        let vm = slot.as_mut().ok_or("no VM")?;
        vm.set_input(input);
        let v = vm
            .execute_entry_point_by_name(ALLOW_RULE)
            .map_err(|e| e.to_string())?;
        Ok(v == Value::Bool(true))
    })
}

/// `data.docauth.builtin.deny_reasons` for `input` (only asked when `allow` is false), on
/// this thread's interpreter.
pub(crate) fn eval_deny_reasons(input: Value) -> Result<Vec<String>, String> {
    BUILTIN.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(new_builtin_engine().map_err(|e| e.message().to_string())?);
        }
        let engine = slot.as_mut().ok_or("no engine")?;
        engine.set_input(input);
        let v = engine
            .eval_rule(DENY_REASONS_RULE.to_string())
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        if let Ok(set) = v.as_set() {
            out.extend(
                set.iter()
                    .filter_map(|s| s.as_string().ok().map(|s| s.to_string())),
            );
        }
        Ok(out)
    })
}

/// A prepared engine holding the operator modules of one generation.
pub(crate) struct OperatorModules {
    generation: u64,
    template: Mutex<regorus::Engine>,
}

impl OperatorModules {
    /// Parses operator modules `(name, source)`. Errors name the module, line and problem.
    pub(crate) fn new(
        generation: u64,
        modules: &[(String, String)],
    ) -> Result<OperatorModules, Error> {
        let mut engine = regorus::Engine::new();
        engine.set_rego_v0(false);
        for (name, source) in modules {
            engine
                .add_policy(name.clone(), source.clone())
                .map_err(|e| {
                    Error::new(
                        ResultCode::PolicyRegoInvalid,
                        format!("Rego module {name}: {e}"),
                    )
                })?;
        }
        let packages = engine
            .get_packages()
            .map_err(|e| Error::new(ResultCode::PolicyRegoInvalid, format!("Rego modules: {e}")))?;
        if !packages.iter().any(|p| p == OPERATOR_PACKAGE) {
            return Err(Error::new(
                ResultCode::PolicyRegoInvalid,
                format!(
                    "operator Rego modules ({}) must declare `package docauth.operator` with \
                     `deny contains reason if {{ ... }}` rules; found packages {packages:?}",
                    modules
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        // Compile now: a reference to an undefined rule or function fails here, not at
        // decision time.
        engine.set_input(Value::new_object());
        if let Err(e) = engine.eval_rule(OPERATOR_RULE.to_string()) {
            let msg = e.to_string();
            if !msg.contains("undefined") || msg.contains("not a valid rule path") {
                return Err(Error::new(
                    ResultCode::PolicyRegoInvalid,
                    format!("operator Rego modules: {msg}"),
                ));
            }
        }
        Ok(OperatorModules {
            generation,
            template: Mutex::new(engine),
        })
    }

    /// The deny reasons operator rules add for `input`. An evaluation error is reported as
    /// a deny reason (fail closed).
    pub(crate) fn deny_reasons(&self, input: Value) -> Vec<String> {
        OPERATOR.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.as_ref().map(|(g, _)| *g) != Some(self.generation) {
                let engine = self
                    .template
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                *slot = Some((self.generation, engine));
            }
            let Some((_, engine)) = slot.as_mut() else {
                return vec!["operator policy unavailable".to_string()];
            };
            engine.set_input(input);
            match engine.eval_rule(OPERATOR_RULE.to_string()) {
                Ok(Value::Undefined) => Vec::new(),
                Ok(v) => {
                    let items: Vec<Value> = if let Ok(set) = v.as_set() {
                        set.iter().cloned().collect()
                    } else if let Ok(arr) = v.as_array() {
                        arr.to_vec()
                    } else if v == Value::Bool(false) || v == Value::Null {
                        Vec::new()
                    } else {
                        vec![v.clone()]
                    };
                    items
                        .into_iter()
                        .map(|item| match item.as_string() {
                            Ok(s) => format!("operator policy: {s}"),
                            Err(_) => format!(
                                "operator policy: {}",
                                item.to_json_str().unwrap_or_else(|_| "deny".into())
                            ),
                        })
                        .collect()
                }
                Err(e) => vec![format!("operator policy failed to evaluate: {e}")],
            }
        })
    }
}

// ---- building the input document -------------------------------------------------------

pub(crate) fn obj<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    let mut m = BTreeMap::new();
    for (k, v) in pairs {
        m.insert(Value::from(k), v);
    }
    Value::from(m)
}

pub(crate) fn str_list<S: AsRef<str>>(items: &[S]) -> Value {
    Value::from(
        items
            .iter()
            .map(|s| Value::from(s.as_ref()))
            .collect::<Vec<_>>(),
    )
}

pub(crate) fn str_map(map: &BTreeMap<String, String>) -> Value {
    let mut m = BTreeMap::new();
    for (k, v) in map {
        m.insert(Value::from(k.as_str()), Value::from(v.as_str()));
    }
    Value::from(m)
}

pub(crate) fn traits_value(traits: &BTreeMap<String, Vec<String>>) -> Value {
    let mut m = BTreeMap::new();
    for (k, v) in traits {
        m.insert(Value::from(k.as_str()), str_list(v));
    }
    Value::from(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The VM answers `allow` exactly as the interpreter does (regorus' VM had an `every`
    /// bug with this policy's first draft; the Rust facts cross-check guards the rest).
    #[test]
    fn vm_and_interpreter_agree_on_allow() {
        let names = |v: &[&str]| str_list(v);
        let mut cases = Vec::new();
        for deny in [false, true] {
            for connect in [false, true] {
                for (databases, allowed_names) in [
                    (vec![], vec![]),
                    (vec!["test"], vec!["test"]),
                    (vec!["test", "reports"], vec!["test"]),
                    (vec!["test", "reports"], vec!["test", "reports"]),
                    (vec!["test"], vec![]),
                ] {
                    for unknown in [false, true] {
                        let mut allow = BTreeMap::new();
                        for n in &databases {
                            let roles: Vec<&str> = if allowed_names.contains(n) {
                                vec!["r"]
                            } else {
                                vec![]
                            };
                            allow.insert(Value::from(*n), names(&roles));
                        }
                        let deny_list = if deny {
                            Value::from(vec![obj([
                                ("role", Value::from("d")),
                                ("rule", Value::from("db_names")),
                                ("value", Value::from("test")),
                            ])])
                        } else {
                            Value::from(Vec::<Value>::new())
                        };
                        cases.push(obj([
                            ("identity", obj([("user", Value::from("alice"))])),
                            ("database", obj([("name", Value::from("db"))])),
                            (
                                "request",
                                obj([
                                    ("db_user", Value::from("u")),
                                    ("databases", names(&databases)),
                                ]),
                            ),
                            (
                                "rbac",
                                obj([
                                    ("deny", deny_list),
                                    ("connect_roles", names(if connect { &["r"] } else { &[] })),
                                    ("allow", Value::from(allow)),
                                    (
                                        "unknown_roles",
                                        names(if unknown { &["ghost"] } else { &[] }),
                                    ),
                                    ("errors", names(&[])),
                                ]),
                            ),
                        ]));
                    }
                }
            }
        }
        let mut interpreter = new_builtin_engine().unwrap();
        let mut allowed_seen = 0;
        for input in cases {
            interpreter.set_input(input.clone());
            let expected =
                interpreter.eval_rule(ALLOW_RULE.to_string()).unwrap() == Value::Bool(true);
            assert_eq!(eval_allow(input.clone()).unwrap(), expected, "{input:?}");
            if expected {
                allowed_seen += 1;
                assert!(eval_deny_reasons(input).unwrap().is_empty());
            } else {
                assert!(!eval_deny_reasons(input).unwrap().is_empty());
            }
        }
        assert_eq!(allowed_seen, 3);
    }
}
