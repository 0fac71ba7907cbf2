//! Audit events: Teleport-like JSON, delivered to the host from ONE dispatcher thread per
//! runtime through a bounded queue. A slow host never stalls a session: when the queue is
//! full, events are dropped and counted (per session and per runtime). The session's end
//! event is never dropped (it carries the count of the ones that were).
//!
//! Events never contain document values (only command names, databases, collections, the
//! identity's roles and traits) and never contain secrets. Their fields: `docs/audit.md`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use serde_json::{json, Value};

/// The host side of the audit stream: called on the dispatcher thread, one event at a time.
pub trait AuditCallback: Send + Sync {
    fn event(&self, json: &str);
}

/// How many events may wait for the host before new ones are dropped.
pub(crate) const DEFAULT_AUDIT_QUEUE: usize = 4096;
/// How many bytes of events may wait for the host before new ones are dropped: 16 MiB.
/// Events carry client-chosen names, so a bound in events alone is no bound on memory.
pub const AUDIT_QUEUE_MAX_BYTES: usize = 16 << 20;

struct Item {
    callback: Arc<dyn AuditCallback>,
    json: String,
}

struct State {
    items: VecDeque<Item>,
    /// Bytes of the JSON texts in `items`.
    bytes: usize,
    closed: bool,
}

struct Queue {
    state: Mutex<State>,
    ready: Condvar,
    capacity: usize,
    max_bytes: usize,
    dropped: AtomicU64,
    /// Events handed to a callback (for metrics).
    delivered: AtomicU64,
}

thread_local! {
    static ON_DISPATCHER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// True on an audit dispatcher thread, i.e. inside an audit callback. Blocking library calls
/// check it and refuse instead of deadlocking.
pub fn on_audit_dispatcher() -> bool {
    ON_DISPATCHER.with(|f| f.get())
}

/// The dispatcher: its queue and its thread. Dropping it delivers what is queued, then
/// stops the thread.
pub struct AuditDispatcher {
    queue: Arc<Queue>,
    thread: Option<JoinHandle<()>>,
}

impl AuditDispatcher {
    pub fn new(capacity: usize) -> std::io::Result<Self> {
        Self::with_max_bytes(capacity, AUDIT_QUEUE_MAX_BYTES)
    }

    /// As [`AuditDispatcher::new`], with a bound in bytes other than
    /// [`AUDIT_QUEUE_MAX_BYTES`].
    pub fn with_max_bytes(capacity: usize, max_bytes: usize) -> std::io::Result<Self> {
        let queue = Arc::new(Queue {
            state: Mutex::new(State {
                items: VecDeque::new(),
                bytes: 0,
                closed: false,
            }),
            ready: Condvar::new(),
            max_bytes,
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
        });
        let worker = queue.clone();
        let thread = std::thread::Builder::new()
            .name("docauth-audit".into())
            .spawn(move || {
                ON_DISPATCHER.with(|f| f.set(true));
                loop {
                    let item = {
                        let mut state = worker.state.lock().unwrap_or_else(|p| p.into_inner());
                        loop {
                            if let Some(item) = state.items.pop_front() {
                                state.bytes -= item.json.len();
                                break Some(item);
                            }
                            if state.closed {
                                break None;
                            }
                            state = worker.ready.wait(state).unwrap_or_else(|p| p.into_inner());
                        }
                    };
                    let Some(item) = item else { return };
                    // A panicking host callback must not kill the dispatcher.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        item.callback.event(&item.json)
                    }));
                    worker.delivered.fetch_add(1, Ordering::Relaxed);
                }
            })?;
        Ok(AuditDispatcher {
            queue,
            thread: Some(thread),
        })
    }

    /// A sink for one session, delivering to `callback` (or nowhere when `None`).
    pub fn sink(&self, callback: Option<Arc<dyn AuditCallback>>) -> AuditSink {
        AuditSink {
            queue: self.queue.clone(),
            callback,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Events dropped by all sessions of this dispatcher because the host was too slow.
    pub fn dropped(&self) -> u64 {
        self.queue.dropped.load(Ordering::Relaxed)
    }

    /// Events handed to the callbacks of this dispatcher's sessions so far.
    pub fn delivered(&self) -> u64 {
        self.queue.delivered.load(Ordering::Relaxed)
    }
}

impl Drop for AuditDispatcher {
    fn drop(&mut self) {
        {
            let mut state = self.queue.state.lock().unwrap_or_else(|p| p.into_inner());
            state.closed = true;
        }
        self.queue.ready.notify_all();
        if let Some(thread) = self.thread.take() {
            // Never join ourselves (a runtime dropped from inside a callback).
            if !on_audit_dispatcher() {
                let _ = thread.join();
            }
        }
    }
}

/// One session's way into the audit queue. Cheap to clone.
#[derive(Clone)]
pub struct AuditSink {
    queue: Arc<Queue>,
    callback: Option<Arc<dyn AuditCallback>>,
    dropped: Arc<AtomicU64>,
}

impl AuditSink {
    /// Queues an event unless the queue is full (then it is counted as dropped).
    pub fn emit(&self, event: &Value) {
        self.push(event, false)
    }

    /// Queues an event even when the queue is full (the session end event).
    pub fn emit_always(&self, event: &Value) {
        self.push(event, true)
    }

    fn push(&self, event: &Value, always: bool) {
        let Some(callback) = &self.callback else {
            return;
        };
        let json = event.to_string();
        {
            let mut state = self.queue.state.lock().unwrap_or_else(|p| p.into_inner());
            if state.closed {
                return;
            }
            let full = state.items.len() >= self.queue.capacity
                || state.bytes + json.len() > self.queue.max_bytes;
            if !always && full {
                drop(state);
                self.dropped.fetch_add(1, Ordering::Relaxed);
                self.queue.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            state.bytes += json.len();
            state.items.push_back(Item {
                callback: callback.clone(),
                json,
            });
        }
        self.queue.ready.notify_one();
    }

    /// Whether anyone listens (no event needs to be built otherwise).
    pub fn enabled(&self) -> bool {
        self.callback.is_some()
    }

    /// Events of this session dropped because the host was too slow.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Teleport's event codes for database sessions.
pub mod codes {
    pub const SESSION_START: &str = "TDB00I";
    pub const SESSION_START_FAILURE: &str = "TDB00W";
    pub const SESSION_END: &str = "TDB01I";
    pub const SESSION_QUERY: &str = "TDB02I";
    pub const SESSION_QUERY_FAILED: &str = "TDB02W";
}

/// Who decided a client message: the audit event's `decided_by`. Only `policy` decisions
/// depend on the policy (and are re-decided by `docauth-check replay`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecidedBy {
    /// The policy engine (the session's [`EngineJudge`](super::EngineJudge)).
    Policy,
    /// A judge without a policy engine ([`Session::start_with_judge`](super::Session::start_with_judge)).
    Judge,
    /// The wire analysis refused the command whatever the policy says (client
    /// authentication, a legacy OP_QUERY command, a handshake carrying credentials…).
    Analysis,
    /// The policy allowed a handshake that could not be rewritten without its
    /// authentication and compression fields.
    Handshake,
    /// The message could not be read or parsed.
    Protocol,
}

impl DecidedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            DecidedBy::Policy => "policy",
            DecidedBy::Judge => "judge",
            DecidedBy::Analysis => "analysis",
            DecidedBy::Handshake => "handshake",
            DecidedBy::Protocol => "protocol",
        }
    }
}

/// The fields every event of one session carries.
#[derive(Clone, Debug)]
pub struct SessionFields {
    pub session_id: String,
    pub user: String,
    pub db_service: String,
    pub db_uri: String,
    pub db_user: String,
    pub db_name: String,
    pub client_addr: String,
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn uid() -> String {
    let mut b = [0u8; 16];
    let _ = getrandom::getrandom(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = |r: std::ops::Range<usize>| b[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!(
        "{}-{}-{}-{}-{}",
        h(0..4),
        h(4..6),
        h(6..8),
        h(8..10),
        h(10..16)
    )
}

/// A new random session id (UUID v4 text).
pub fn new_session_id() -> String {
    uid()
}

impl SessionFields {
    fn base(&self, event: &str, code: &str) -> Value {
        json!({
            "event": event,
            "code": code,
            "time": now_rfc3339(),
            "uid": uid(),
            "sid": self.session_id,
            "user": self.user,
            "db_service": self.db_service,
            "db_protocol": "mongodb",
            "db_uri": self.db_uri,
            "db_user": self.db_user,
            "db_name": self.db_name,
            "client_addr": self.client_addr,
        })
    }

    pub fn start(&self, error: Option<&crate::Error>) -> Value {
        let mut v = match error {
            None => self.base("db.session.start", codes::SESSION_START),
            Some(_) => self.base("db.session.start", codes::SESSION_START_FAILURE),
        };
        v["success"] = json!(error.is_none());
        if let Some(e) = error {
            v["error"] = json!(e.message());
            v["error_code"] = json!(e.code().name());
        }
        v
    }

    /// One judged client message: the command, every database and namespace it reaches,
    /// the decision, who made it and, when the policy engine did, whom it decided for (what
    /// `docauth-check replay` needs to decide it again; see `docs/audit.md`).
    /// `verdict.allowed == false` is a `db.session.query.failed`.
    pub fn query(
        &self,
        access: &crate::wire::CommandAccess,
        verdict: &super::judge::Verdict,
        decided_by: DecidedBy,
    ) -> Value {
        let mut v = self.query_base(verdict.allowed, &verdict.reason, decided_by);
        v["command"] = json!(access.command);
        v["database"] = json!(access.database);
        v["databases"] = json!(access.databases());
        v["collection"] = json!(access.collection);
        v["namespaces"] = json!(access.request_namespaces());
        v["reaches_unlisted"] = json!(access.unanalysable);
        v["matched_roles"] = json!(verdict.matched_roles);
        if let Some(judged) = &verdict.identity {
            v["user_roles"] = json!(judged.identity.roles());
            v["user_traits"] = json!(judged.identity.traits());
            v["identity_source"] = json!(if judged.from_config {
                "config"
            } else {
                "session"
            });
        }
        v
    }

    /// A client message that could not be read or parsed (so no command and no database):
    /// always a `db.session.query.failed`, `decided_by` `protocol`.
    pub fn unreadable_query(&self, reason: &str) -> Value {
        let mut v = self.query_base(false, reason, DecidedBy::Protocol);
        v["command"] = json!("");
        v["database"] = Value::Null;
        v["databases"] = json!([]);
        v["collection"] = Value::Null;
        v
    }

    fn query_base(&self, allowed: bool, reason: &str, decided_by: DecidedBy) -> Value {
        let mut v = if allowed {
            self.base("db.session.query", codes::SESSION_QUERY)
        } else {
            self.base("db.session.query.failed", codes::SESSION_QUERY_FAILED)
        };
        v["allowed"] = json!(allowed);
        v["reason"] = json!(reason);
        v["decided_by"] = json!(decided_by.as_str());
        if !allowed {
            v["error"] = json!(reason);
        }
        v
    }

    /// The session's end: `reason` is `stats.end_reason`; a session ended by an error
    /// (`error`) also carries `error` (its message) and `error_code` (its result code's name,
    /// e.g. `DOCAUTH_RESULT_PANIC`).
    pub fn end(
        &self,
        stats: &super::stats::SessionStats,
        error: Option<&crate::Error>,
        dropped: u64,
    ) -> Value {
        let mut v = self.base("db.session.end", codes::SESSION_END);
        v["reason"] = json!(stats.end_reason);
        if let Some(e) = error {
            v["error"] = json!(e.message());
            v["error_code"] = json!(e.code().name());
        }
        v["bytes_from_client"] = json!(stats.bytes_from_client);
        v["bytes_to_client"] = json!(stats.bytes_to_client);
        v["messages_from_client"] = json!(stats.messages_from_client);
        v["messages_to_client"] = json!(stats.messages_to_client);
        v["duration_ms"] = json!(stats.duration.as_millis() as u64);
        v["audit_events_dropped"] = json!(dropped);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    struct Slow {
        gate: Arc<(Mutex<bool>, Condvar)>,
        seen: Mutex<Vec<String>>,
        inside: AtomicBool,
    }

    impl AuditCallback for Slow {
        fn event(&self, json: &str) {
            self.inside.store(on_audit_dispatcher(), Ordering::SeqCst);
            let (lock, cv) = &*self.gate;
            let mut open = lock.lock().unwrap();
            while !*open {
                open = cv.wait(open).unwrap();
            }
            self.seen.lock().unwrap().push(json.to_string());
        }
    }

    #[test]
    fn a_stuck_host_makes_events_drop_not_block_and_the_end_event_still_arrives() {
        let dispatcher = AuditDispatcher::new(4).unwrap();
        let slow = Arc::new(Slow {
            gate: Arc::new((Mutex::new(false), Condvar::new())),
            seen: Mutex::new(Vec::new()),
            inside: AtomicBool::new(false),
        });
        let sink = dispatcher.sink(Some(slow.clone()));
        for i in 0..100 {
            sink.emit(&json!({"n": i}));
        }
        sink.emit_always(&json!({"end": true}));
        // At most 1 in the callback + 4 queued were kept.
        assert!(sink.dropped() >= 95, "{}", sink.dropped());
        assert_eq!(dispatcher.dropped(), sink.dropped());
        {
            let (lock, cv) = &*slow.gate;
            *lock.lock().unwrap() = true;
            cv.notify_all();
        }
        drop(dispatcher); // delivers the rest, joins
        let seen = slow.seen.lock().unwrap();
        assert_eq!(seen.len() as u64, 101 - sink.dropped());
        assert_eq!(seen.last().unwrap(), r#"{"end":true}"#);
        assert!(slow.inside.load(Ordering::SeqCst));
        assert!(!on_audit_dispatcher());
        let _ = Duration::ZERO;
    }

    #[test]
    fn large_events_are_bounded_in_bytes_not_only_in_count() {
        // Room for 4,096 events but only 1 MiB: 100 KB events past ~10 are dropped.
        let dispatcher = AuditDispatcher::with_max_bytes(4096, 1 << 20).unwrap();
        let slow = Arc::new(Slow {
            gate: Arc::new((Mutex::new(false), Condvar::new())),
            seen: Mutex::new(Vec::new()),
            inside: AtomicBool::new(false),
        });
        let sink = dispatcher.sink(Some(slow.clone()));
        let name = "n".repeat(100_000);
        for i in 0..200 {
            sink.emit(&json!({"i": i, "collection": name}));
            let queued = dispatcher.queue.state.lock().unwrap().bytes;
            assert!(queued <= 1 << 20, "{queued} bytes queued");
        }
        // At most 1 in the callback + ~10 queued were kept; the rest are counted.
        assert!(sink.dropped() >= 185, "{}", sink.dropped());
        sink.emit_always(&json!({"end": true}));
        {
            let (lock, cv) = &*slow.gate;
            *lock.lock().unwrap() = true;
            cv.notify_all();
        }
        drop(dispatcher);
        let seen = slow.seen.lock().unwrap();
        assert_eq!(seen.len() as u64, 201 - sink.dropped());
        assert_eq!(seen.last().unwrap(), r#"{"end":true}"#);
    }
}
