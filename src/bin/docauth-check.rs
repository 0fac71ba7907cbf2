//! `docauth-check`: a policy dry run for operators, like `opa eval` or `tctl`'s access checks.
//!
//! ```text
//! docauth-check --config policy.yaml --user alice --roles access,no-admin \
//!     --traits '{"db_users": ["*"], "db_names": ["*"]}' \
//!     --db my-docdb --db-user teleport-docdb-user --db-name test [--command find] \
//!     [--namespace test.orders ...] [--explain]
//! ```
//!
//! `--roles`/`--traits` may be omitted when the config's `identities` has the user.
//! `--db-name` is required: a session is always judged with the database name the client
//! uses (a check with no name would ask about the database name "", which no role names).
//! Prints the decision and its reason. Exit status: 0 allowed, 1 denied, 2 error;
//! `--help` (usage on stdout) and `--version` exit 0.
//!
//! `docauth-check lint --config policy.yaml` prints, one line each
//! (`file:line: warning: ...`, or `file: warning: ...` when no line is known), what in the
//! configuration silently matches nothing (see `docauth::policy::lint`). Exit status: 0 clean,
//! 1 warnings, 2 usage error or a configuration that cannot be read or loaded.
//!
//! `docauth-check replay --config new.yaml audit.jsonl` decides every policy decision of an
//! audit log (the JSON lines the example proxies print) again under the configuration and
//! prints those that would change, then a summary line (see `docauth::policy::replay`).
//! `-` reads the log from stdin. Exit status: 0 nothing changes, 1 some decisions change, 2
//! usage error, a configuration that cannot be loaded, or an audit log that cannot be read
//! or replayed (the message names the line).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

use docauth::policy::{Identity, PolicyEngine, Request};

const USAGE: &str = "usage: docauth-check --config FILE --user NAME [--roles a,b] [--traits JSON] \
--db NAME --db-user USER --db-name NAME [--command CMD] [--namespace DB.COLL]... [--explain]
       docauth-check lint --config FILE
       docauth-check replay --config FILE AUDIT_LOG";

struct Args {
    config: String,
    user: String,
    roles: Option<Vec<String>>,
    traits: Option<BTreeMap<String, Vec<String>>>,
    db: String,
    db_user: String,
    db_name: String,
    command: Option<String>,
    namespaces: Vec<String>,
    explain: bool,
}

/// What the command line asks for.
enum Invocation {
    Check(Box<Args>),
    Lint(String),
    Replay { config: String, audit: String },
    Help,
    Version,
}

fn parse_lint_args(mut it: impl Iterator<Item = String>) -> Result<Invocation, String> {
    let mut config = None;
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "-h" | "--help" => return Ok(Invocation::Help),
            "--config" => {
                config = Some(
                    it.next()
                        .ok_or_else(|| format!("--config needs a value\n{USAGE}"))?,
                )
            }
            other => return Err(format!("lint: unknown option {other}\n{USAGE}")),
        }
    }
    config
        .map(Invocation::Lint)
        .ok_or_else(|| format!("lint: --config is required\n{USAGE}"))
}

fn parse_replay_args(mut it: impl Iterator<Item = String>) -> Result<Invocation, String> {
    let (mut config, mut audit) = (None, None);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Invocation::Help),
            "--config" => {
                config = Some(
                    it.next()
                        .ok_or_else(|| format!("--config needs a value\n{USAGE}"))?,
                )
            }
            other if other.starts_with('-') && other != "-" => {
                return Err(format!("replay: unknown option {other}\n{USAGE}"))
            }
            _ if audit.is_some() => {
                return Err(format!("replay: one audit log at a time\n{USAGE}"))
            }
            _ => audit = Some(arg),
        }
    }
    let config = config.ok_or_else(|| format!("replay: --config is required\n{USAGE}"))?;
    let audit = audit.ok_or_else(|| {
        format!("replay: the audit log (a file, or - for stdin) is required\n{USAGE}")
    })?;
    Ok(Invocation::Replay { config, audit })
}

fn parse_args() -> Result<Invocation, String> {
    let mut it = std::env::args().skip(1).peekable();
    if it.peek().is_some_and(|a| a == "lint") {
        it.next();
        return parse_lint_args(it);
    }
    if it.peek().is_some_and(|a| a == "replay") {
        it.next();
        return parse_replay_args(it);
    }
    let (mut config, mut user, mut db, mut db_user, mut db_name) = (None, None, None, None, None);
    let mut args = Args {
        config: String::new(),
        user: String::new(),
        roles: None,
        traits: None,
        db: String::new(),
        db_user: String::new(),
        db_name: String::new(),
        command: None,
        namespaces: Vec::new(),
        explain: false,
    };
    while let Some(flag) = it.next() {
        if flag == "--explain" {
            args.explain = true;
            continue;
        }
        if flag == "-h" || flag == "--help" {
            return Ok(Invocation::Help);
        }
        if flag == "-V" || flag == "--version" {
            return Ok(Invocation::Version);
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--config" => config = Some(value),
            "--user" => user = Some(value),
            "--roles" => {
                args.roles = Some(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect(),
                )
            }
            "--traits" => {
                args.traits = Some(
                    serde_json::from_str(&value)
                        .map_err(|e| format!("--traits: not a JSON object of string lists: {e}"))?,
                )
            }
            "--db" => db = Some(value),
            "--db-user" => db_user = Some(value),
            "--db-name" => db_name = Some(value),
            "--command" => args.command = Some(value),
            "--namespace" => args.namespaces.push(value),
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    let need =
        |v: Option<String>, name: &str| v.ok_or_else(|| format!("{name} is required\n{USAGE}"));
    args.config = need(config, "--config")?;
    args.user = need(user, "--user")?;
    args.db = need(db, "--db")?;
    args.db_user = need(db_user, "--db-user")?;
    args.db_name = need(db_name, "--db-name")?;
    Ok(Invocation::Check(Box::new(args)))
}

/// `docauth-check lint`: 0 clean, 1 warnings, 2 when the configuration cannot be loaded.
fn lint(config: &str) -> ExitCode {
    match docauth::policy::lint::lint_file(config) {
        Ok(warnings) if warnings.is_empty() => ExitCode::SUCCESS,
        Ok(warnings) => {
            for w in &warnings {
                println!("{w}");
            }
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("docauth-check: {} ({})", e.message(), e.code().name());
            ExitCode::from(2)
        }
    }
}

/// `docauth-check replay`: 0 nothing changes, 1 changes, 2 when the configuration or the
/// audit log cannot be used.
fn replay(config: &str, audit: &str) -> ExitCode {
    let engine = match PolicyEngine::from_file(config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("docauth-check: {} ({})", e.message(), e.code().name());
            return ExitCode::from(2);
        }
    };
    let replayed = if audit == "-" {
        docauth::policy::replay::replay(&engine, std::io::stdin().lock())
    } else {
        match std::fs::File::open(audit) {
            Ok(f) => docauth::policy::replay::replay(&engine, std::io::BufReader::new(f)),
            Err(e) => {
                eprintln!("docauth-check: audit log {audit}: {e}");
                return ExitCode::from(2);
            }
        }
    };
    match replayed {
        Ok(report) => {
            print!("{}", report.render(audit));
            if report.changed() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("docauth-check: audit log {audit}: {e}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Invocation::Check(a)) => *a,
        Ok(Invocation::Lint(config)) => return lint(&config),
        Ok(Invocation::Replay { config, audit }) => return replay(&config, &audit),
        Ok(Invocation::Help) => {
            println!("{USAGE}\n\nDecides one request against a policy configuration, as the library would.\nExit status: 0 allowed, 1 denied, 2 error.\n`lint` prints what in the configuration silently matches nothing, one `file:line: warning:` line each.\nExit status: 0 clean, 1 warnings, 2 error.\n`replay` decides every policy decision of an audit log (JSON lines; - for stdin) again under the configuration\nand prints those that would change, then a summary line.\nExit status: 0 no change, 1 changes, 2 error.");
            return ExitCode::SUCCESS;
        }
        Ok(Invocation::Version) => {
            println!("docauth-check {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("docauth-check: {e}");
            return ExitCode::from(2);
        }
    };
    let engine = match PolicyEngine::from_file(&args.config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("docauth-check: {} ({})", e.message(), e.code().name());
            return ExitCode::from(2);
        }
    };
    let identity = match (&args.roles, engine.identity(&args.user)) {
        (None, Some(configured)) => match &args.traits {
            None => configured,
            Some(t) => Arc::new(Identity::new(
                args.user.clone(),
                configured.roles().to_vec(),
                t.clone(),
            )),
        },
        (Some(roles), configured) => Arc::new(Identity::new(
            args.user.clone(),
            roles.clone(),
            args.traits
                .clone()
                .or_else(|| configured.map(|c| c.traits().clone()))
                .unwrap_or_default(),
        )),
        (None, None) => {
            eprintln!(
                "docauth-check: user {:?} is not in the config's identities; pass --roles (and --traits)",
                args.user
            );
            return ExitCode::from(2);
        }
    };
    let mut request = Request::new(identity, args.db, args.db_user, args.db_name)
        .with_namespaces(args.namespaces);
    if let Some(c) = args.command {
        request = request.with_command(c);
    }
    if args.explain {
        println!("input: {}", engine.input_json(&request));
    }
    let decision = engine.decide(&request);
    println!(
        "{}: {}",
        if decision.allowed { "ALLOW" } else { "DENY" },
        decision.reason
    );
    if !decision.matched_roles.is_empty() {
        println!("roles: {}", decision.matched_roles.join(", "));
    }
    if decision.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
