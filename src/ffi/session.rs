//! C entry points of the proxied session: the host-owned runtime, sessions started from a
//! client socket's file descriptor, their shutdown/wait, and the audit callback.

use std::ffi::{c_char, c_int, c_void, CString};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;

use crate::ffi::boundary::{arg_ref, arg_str, free_boxed, Out};
use crate::ffi::credentials_provider::docauth_credentials_provider;
use crate::ffi::docauth_error;
use crate::ffi::policy::docauth_engine;
use crate::session::{
    AuditCallback, ProviderCredentials, Runtime, Session, SessionParams, SessionStats,
};
use crate::{Error, ResultCode};

/// A runtime for sessions: worker threads running every session's I/O, and ONE audit
/// dispatcher thread that calls the audit callbacks of all its sessions.
///
/// Ownership: created by `docauth_runtime_new`, owned by the host, freed with
/// `docauth_runtime_free` once no session needs it (freeing it cancels the sessions still
/// running: their connections are closed).
/// Threads: shareable; sessions may be started from any number of threads at once.
pub struct docauth_runtime {
    pub(crate) inner: Runtime,
}

/// One proxied session.
///
/// Ownership: created by `docauth_session_start`, owned by the host, freed with
/// `docauth_session_free` (which releases the handle only: the session runs on until it
/// ends; `docauth_runtime_free` cancels the sessions still running).
/// Threads: shareable; `docauth_session_shutdown`, `_wait`, `_is_finished` and
/// `_audit_dropped` may be called from any thread, at the same time.
pub struct docauth_session {
    inner: Session,
}

/// Counters of a finished session, filled by `docauth_session_wait`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct docauth_session_stats {
    /// Bytes of the messages the client sent.
    pub bytes_from_client: u64,
    /// Bytes sent to the client (database replies and the library's error replies).
    pub bytes_to_client: u64,
    pub messages_from_client: u64,
    pub messages_to_client: u64,
    /// Client messages refused (policy denials, unparsable messages, authentication commands).
    pub messages_denied: u64,
    pub duration_ms: u64,
    /// Audit events of this session dropped because the callback was too slow.
    pub audit_events_dropped: u64,
}

/// An audit callback: `event_json` is one NUL-terminated JSON object of `len` bytes (without
/// the NUL), valid only during the call. Called on the runtime's audit dispatcher thread,
/// one event at a time, never re-entrantly. It must not block for long: while it runs, the
/// runtime's other events wait in a bounded queue and are dropped (and counted) when it fills.
/// A blocking `docauth_*` call made from inside it returns
/// `DOCAUTH_RESULT_CALLED_FROM_AUDIT_CALLBACK` instead of deadlocking.
pub type docauth_audit_fn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, event_json: *const c_char, len: usize)>;

/// Frees the `user_data` of a callback; called exactly once, from any thread, when the
/// library no longer needs it.
pub type docauth_user_data_free_fn = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

struct CAudit {
    callback: docauth_audit_fn,
    user_data: *mut c_void,
    free: docauth_user_data_free_fn,
}

// SAFETY: the host's contract (header comments) is that `user_data` may be used by the
// callback on the dispatcher thread and freed by `user_data_free` from any thread; the
// library never dereferences it.
unsafe impl Send for CAudit {}
// SAFETY: as above; the callback is only ever called from the single dispatcher thread.
unsafe impl Sync for CAudit {}

impl AuditCallback for CAudit {
    fn event(&self, json: &str) {
        let Some(callback) = self.callback else {
            return;
        };
        // serde_json escapes NUL, so this cannot fail; skip the event if it ever did.
        let Ok(text) = CString::new(json) else { return };
        // SAFETY: the host gave this function pointer and user_data for exactly this call.
        unsafe { callback(self.user_data, text.as_ptr(), json.len()) };
    }
}

impl Drop for CAudit {
    fn drop(&mut self) {
        if let Some(free) = self.free {
            // SAFETY: called once, when the last reference goes, as documented.
            unsafe { free(self.user_data) };
        }
    }
}

/// Creates a runtime with `threads` worker threads (0 = one per CPU, at most 1024) and its
/// audit dispatcher thread. It runs at most 10,000 sessions at once until
/// `docauth_runtime_set_max_sessions` sets another cap.
///
/// On success `*out` receives a runtime to free with `docauth_runtime_free`. Errors:
/// `DOCAUTH_RESULT_NULL_PARAMETER` (out), `DOCAUTH_RESULT_INVALID_ARGUMENT` (`threads` above
/// 1024), `DOCAUTH_RESULT_SESSION_IO` (the threads could not be started).
///
/// # Safety
/// `out` and `err` are NULL or writable storage for one pointer.
#[no_mangle]
pub unsafe extern "C" fn docauth_runtime_new(
    threads: u32,
    out: *mut *mut docauth_runtime,
    err: *mut *mut docauth_error,
) -> ResultCode {
    ffi_boundary!(err, "docauth_runtime_new", {
        // SAFETY: `out` is NULL or writable, per the contract.
        let out = unsafe { Out::new(out, "out") }?;
        if threads > 1024 {
            return Err(Error::new(
                ResultCode::InvalidArgument,
                format!("`threads` is {threads}; use 0 (one per CPU) to 1024"),
            ));
        }
        let inner = Runtime::new(threads as usize)?;
        out.set_boxed(docauth_runtime { inner });
        Ok(())
    })
}

/// Frees a runtime: cancels its sessions still running (closing their connections), waits
/// up to 5 s for its threads, delivers the audit events already queued, then stops the
/// dispatcher. `NULL` is a no-op.
///
/// Called from inside an audit callback it cannot wait for the dispatcher (its own thread):
/// the freeing then completes on a helper thread after the callback returns.
/// Do not use the runtime, nor start sessions on it, once this is called. A panic while
/// freeing (a bug) is contained: the call returns, the runtime may leak.
///
/// # Safety
/// `runtime` is NULL or a runtime from this library, not freed before.
#[no_mangle]
pub unsafe extern "C" fn docauth_runtime_free(runtime: *mut docauth_runtime) {
    ffi_boundary!(default: (), "docauth_runtime_free", {
        if runtime.is_null() {
            return;
        }
        // SAFETY: non-NULL, from docauth_runtime_new, not freed before (the contract).
        let boxed = unsafe { Box::from_raw(runtime) };
        if crate::session::audit::on_audit_dispatcher() {
            let _ = std::thread::Builder::new()
                .name("docauth-runtime-free".into())
                .spawn(move || drop(boxed));
        } else {
            drop(boxed);
        }
    })
}

/// Caps the sessions `runtime` runs at once to `max_sessions` (default 10,000, at least 1).
/// A session started past the cap is not an error of `docauth_session_start`: it ends at
/// once with `DOCAUTH_RESULT_SESSION_LIMIT` from `docauth_session_wait`, its client's first
/// message is answered with a MongoDB error naming the cap (code 6, HostUnreachable, which
/// drivers retry), its audit has a failed `db.session.start` and a `db.session.end`, and no
/// database connection is made. A session counts from `docauth_session_start` until it ends
/// (freeing its handle does not end it); refused sessions do not count.
///
/// Applies to sessions started after the call; running sessions are never cut. May be
/// called at any time, from any thread, also from an audit callback. A separate setter (not a
/// parameter of `docauth_runtime_new`) keeps the existing `docauth_runtime_new` signature, so
/// that hosts built against an earlier header keep linking and running.
///
/// Errors: `DOCAUTH_RESULT_NULL_PARAMETER` (runtime), `DOCAUTH_RESULT_INVALID_ARGUMENT`
/// (`max_sessions` 0).
///
/// # Safety
/// `runtime` is NULL or a live runtime; `err` is NULL or writable storage for one pointer.
#[no_mangle]
pub unsafe extern "C" fn docauth_runtime_set_max_sessions(
    runtime: *const docauth_runtime,
    max_sessions: u32,
    err: *mut *mut docauth_error,
) -> ResultCode {
    ffi_boundary!(err, "docauth_runtime_set_max_sessions", {
        // SAFETY: `runtime` is NULL or a live runtime (the contract).
        let runtime = unsafe { arg_ref(runtime, "runtime") }?;
        runtime.inner.set_max_sessions(max_sessions as usize)
    })
}

/// Audit events dropped by all sessions of this runtime because callbacks were too slow.
/// Returns 0 for NULL (and if the library panicked, a bug).
///
/// # Safety
/// `runtime` is NULL or a live runtime.
#[no_mangle]
pub unsafe extern "C" fn docauth_runtime_audit_dropped(runtime: *const docauth_runtime) -> u64 {
    ffi_boundary!(default: 0, "docauth_runtime_audit_dropped", {
        // SAFETY: NULL or a live runtime.
        unsafe { runtime.as_ref() }.map_or(0, |r| r.inner.audit_dropped())
    })
}

fn client_socket(fd: OwnedFd, runtime: &Runtime) -> crate::Result<ClientSocket> {
    let bad = |e: std::io::Error| {
        Error::new(
            ResultCode::InvalidArgument,
            format!("`client_fd` is not a usable connected socket: {e}"),
        )
    };
    use std::os::fd::AsRawFd;
    // SAFETY: sockaddr_storage is plain old data: all zero bytes is a valid value.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `fd` is an open descriptor we own; getsockname writes at most `len` bytes into
    // `addr`, which is that large, and updates `len`.
    let named = unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            (&mut addr as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if named != 0 {
        return Err(bad(std::io::Error::last_os_error()));
    }
    let family = addr.ss_family as c_int;
    let _enter = runtime.handle().enter();
    match family {
        libc::AF_UNIX => {
            let s = std::os::unix::net::UnixStream::from(fd);
            s.set_nonblocking(true).map_err(bad)?;
            Ok(ClientSocket::Unix(
                tokio::net::UnixStream::from_std(s).map_err(bad)?,
            ))
        }
        libc::AF_INET | libc::AF_INET6 => {
            let s = std::net::TcpStream::from(fd);
            s.set_nonblocking(true).map_err(bad)?;
            let _ = s.set_nodelay(true);
            Ok(ClientSocket::Tcp(
                tokio::net::TcpStream::from_std(s).map_err(bad)?,
            ))
        }
        other => Err(Error::new(
            ResultCode::InvalidArgument,
            format!("`client_fd` is a socket of address family {other}; only TCP and Unix sockets are supported"),
        )),
    }
}

enum ClientSocket {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

/// Starts a proxied session for the connected client socket `client_fd` (TCP or Unix) and
/// returns at once; the connection-level decision, the database connection and its
/// authentication happen on the runtime.
///
/// - `runtime`: the runtime the session runs on (required).
/// - `client_fd`: the library owns it from this call on, whatever the result (on failure it
///   is closed); the host must not use or close it afterwards.
/// - `params_json`: the session parameters, a JSON object (unknown fields are refused):
///   `identity` (required: an object `{"user": "alice", "roles": [...], "traits": {...}}`,
///   or the user name of one of the engine configuration's `identities`),
///   `database` (required: a database name of the engine configuration; named in audit),
///   `db_user` (required: IAM role name or ARN the session authenticates as),
///   `db_name` (the logical database the client asked for; checked at connection level),
///   `database_uri` (default: from the engine database's `uri`, `host:port` →
///   `mongodb://host:port/?tls=true`, a `mongodb://` URI as is),
///   `ca_file` (PEM bundle, e.g. DocumentDB's global-bundle.pem; overrides `tlsCAFile`),
///   `client_addr` (for audit), `connect_timeout_ms` (10000), `handshake_timeout_ms`
///   (15000), `idle_timeout_ms` (1800000 = 30 minutes without a message either way ends the
///   session, also while a write is stuck; 0 = none), `message_timeout_ms` (30000: a client
///   message must arrive whole within it), `client_write_timeout_ms` (30000, at least 1: a
///   write to the client that moves no byte for this long ends the session with
///   `DOCAUTH_RESULT_CLIENT_WRITE_TIMEOUT` and a `db.session.end` event naming it, so that a
///   client that stops reading never holds the database connection).
/// - `engine` (required): judges the session at connection level and every client message
///   (cached decisions). The session keeps its own reference: the engine may be freed after
///   this call; `docauth_engine_reload` applies to the running session from its next message.
/// - `credentials` (required): gives the db user's AWS credentials (STS AssumeRole, the
///   identity's user as role session name). The database's AWS settings (`account_id`,
///   `region`, `assume_role_arn`, `external_id`) are those of its entry in the engine
///   configuration (`databases[].aws`), not the provider's: a provider whose own `database`
///   block sets one of them to another value is refused (INVALID_CONFIG naming both values).
///   The session keeps its own reference: the provider may be freed after this call. When the
///   database rejects the MONGODB-AWS authentication, the db user's cached credentials are
///   dropped from the provider.
/// - `audit`: the audit callback (NULL = no events), `user_data` is passed back to it as is;
///   `user_data_free` (may be NULL) is called exactly once when the library no longer needs
///   `user_data` — also when this call fails.
///
/// On success `*out` receives a session to free with `docauth_session_free`. Errors:
/// `DOCAUTH_RESULT_NULL_PARAMETER` (runtime, params_json, engine, credentials, out),
/// `DOCAUTH_RESULT_INVALID_CONFIG` (bad parameters; a `database` or named `identity` the
/// engine does not know; a database without URI; a provider `database` block that
/// contradicts the engine's entry), `DOCAUTH_RESULT_AWS_INVALID_ROLE_ARN` (the engine entry's
/// `aws.assume_role_arn`), `DOCAUTH_RESULT_DATABASE_URI_INVALID`,
/// `DOCAUTH_RESULT_CA_BUNDLE_INVALID` (TLS to the database without a CA bundle, or one that
/// cannot be read or holds no usable certificate: it is read during this call, on the
/// caller's thread, and parsed once per runtime and file version),
/// `DOCAUTH_RESULT_INVALID_ARGUMENT` (a `client_fd` that is not a connected TCP/Unix socket).
/// A connection-level deny is not an error of this call: the session ends with
/// `DOCAUTH_RESULT_SESSION_ACCESS_DENIED` from `docauth_session_wait`, a failed
/// `db.session.start` audit event, and the client's first message answered with code 13
/// (Unauthorized) naming the reason; no database connection is made. Failures reaching the
/// database also come from `docauth_session_wait` and the audit events.
/// Threads: callable from any thread, concurrently, on the same runtime, engine and provider.
///
/// # Safety
/// `runtime`, `engine` and `credentials` are NULL or live handles; `params_json` is NULL or
/// a NUL-terminated string; `out` and `err` are NULL or writable storage for one pointer;
/// `client_fd` is a descriptor the caller owns and hands over; `audit`, `user_data` and
/// `user_data_free` follow the callback rules above.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn docauth_session_start(
    runtime: *const docauth_runtime,
    client_fd: c_int,
    params_json: *const c_char,
    engine: *const docauth_engine,
    credentials: *const docauth_credentials_provider,
    audit: docauth_audit_fn,
    user_data: *mut c_void,
    user_data_free: docauth_user_data_free_fn,
    out: *mut *mut docauth_session,
    err: *mut *mut docauth_error,
) -> ResultCode {
    ffi_boundary!(err, "docauth_session_start", {
        // Take ownership of the fd and of user_data before anything can fail: whatever
        // happens next (an error, a panic), dropping them closes the fd and frees user_data.
        let fd = (client_fd >= 0).then(|| {
            // SAFETY: the host hands the descriptor over to the library with this call.
            unsafe { OwnedFd::from_raw_fd(client_fd) }
        });
        let callback = Arc::new(CAudit {
            callback: audit,
            user_data,
            free: user_data_free,
        });
        // SAFETY: `out` is NULL or writable storage for one pointer (the contract).
        let out = unsafe { Out::new(out, "out") }?;
        // SAFETY: `runtime` is NULL or a live runtime (the contract).
        let runtime = unsafe { arg_ref(runtime, "runtime") }?;
        // SAFETY: `engine` is NULL or a live engine (the contract).
        let engine = unsafe { arg_ref(engine, "engine") }?;
        // SAFETY: `credentials` is NULL or a live provider (the contract).
        let provider = unsafe { arg_ref(credentials, "credentials") }?;
        // SAFETY: `params_json` is NULL or a NUL-terminated string (the contract).
        let params = unsafe { arg_str(params_json, "params_json") }?;
        let fd = fd.ok_or_else(|| {
            Error::new(
                ResultCode::InvalidArgument,
                format!("`client_fd` is {client_fd}, not a file descriptor"),
            )
        })?;
        let params = SessionParams::from_json(params)?;
        // The database's AWS settings come from the engine's entry for it.
        let creds = Arc::new(ProviderCredentials::new(
            Arc::clone(&provider.inner),
            &engine.inner,
            &params.database,
        )?);
        let engine = Arc::clone(&engine.inner);
        let callback: Option<Arc<dyn AuditCallback>> = audit
            .is_some()
            .then(|| callback.clone() as Arc<dyn AuditCallback>);
        let session = match client_socket(fd, &runtime.inner)? {
            ClientSocket::Tcp(s) => {
                Session::start(&runtime.inner, s, params, engine, creds, callback)?
            }
            ClientSocket::Unix(s) => {
                Session::start(&runtime.inner, s, params, engine, creds, callback)?
            }
        };
        out.set_boxed(docauth_session { inner: session });
        Ok(())
    })
}

/// Asks the session to end (both connections close soon after). Never blocks; callable
/// from any thread, any number of times, also from an audit callback. NULL is a no-op (as
/// is a panic inside the library, a bug).
///
/// # Safety
/// `session` is NULL or a live session.
#[no_mangle]
pub unsafe extern "C" fn docauth_session_shutdown(session: *const docauth_session) {
    ffi_boundary!(default: (), "docauth_session_shutdown", {
        // SAFETY: NULL or a live session.
        if let Some(s) = unsafe { session.as_ref() } {
            s.inner.shutdown();
        }
    })
}

/// Whether the session has ended. False for NULL (and if the library panicked, a bug).
/// Never blocks.
///
/// # Safety
/// `session` is NULL or a live session.
#[no_mangle]
pub unsafe extern "C" fn docauth_session_is_finished(session: *const docauth_session) -> bool {
    ffi_boundary!(default: false, "docauth_session_is_finished", {
        // SAFETY: NULL or a live session.
        unsafe { session.as_ref() }.is_some_and(|s| s.inner.is_finished())
    })
}

/// Blocks until the session ends. `DOCAUTH_RESULT_OK` when it ended normally (a side closed,
/// idle timeout, shutdown), with its counters in `*stats` when `stats` is not NULL;
/// otherwise the error that ended it, with the explanation of what to fix (connect timeout,
/// TLS legacy CN / unknown CA, MONGODB-AWS authentication failed, …).
/// `DOCAUTH_RESULT_PANIC` when the session's task panicked (a bug: that session's
/// connections are closed, its `db.session.end` audit event carries the error, and the
/// runtime's other sessions go on).
///
/// Called from inside an audit callback it returns
/// `DOCAUTH_RESULT_CALLED_FROM_AUDIT_CALLBACK` at once (it would deadlock).
///
/// # Safety
/// `session` is NULL or a live session; `stats` is NULL or writable storage for one
/// `docauth_session_stats`; `err` is NULL or writable storage for one pointer.
#[no_mangle]
pub unsafe extern "C" fn docauth_session_wait(
    session: *const docauth_session,
    stats: *mut docauth_session_stats,
    err: *mut *mut docauth_error,
) -> ResultCode {
    ffi_boundary!(err, "docauth_session_wait", {
        // SAFETY: NULL or a live session.
        let session = unsafe { arg_ref(session, "session") }?;
        let outcome: SessionStats = session.inner.wait()?;
        if !stats.is_null() {
            let value = docauth_session_stats {
                bytes_from_client: outcome.bytes_from_client,
                bytes_to_client: outcome.bytes_to_client,
                messages_from_client: outcome.messages_from_client,
                messages_to_client: outcome.messages_to_client,
                messages_denied: outcome.denied,
                duration_ms: outcome.duration.as_millis() as u64,
                audit_events_dropped: session.inner.audit_dropped(),
            };
            // SAFETY: non-NULL and writable per the contract.
            unsafe { stats.write(value) };
        }
        Ok(())
    })
}

/// Audit events of this session dropped because the callback was too slow. 0 for NULL (and
/// if the library panicked, a bug).
///
/// # Safety
/// `session` is NULL or a live session.
#[no_mangle]
pub unsafe extern "C" fn docauth_session_audit_dropped(session: *const docauth_session) -> u64 {
    ffi_boundary!(default: 0, "docauth_session_audit_dropped", {
        // SAFETY: NULL or a live session.
        unsafe { session.as_ref() }.map_or(0, |s| s.inner.audit_dropped())
    })
}

/// Releases the handle. The session itself runs on until it ends (a side closes, idle
/// timeout, `docauth_session_shutdown` before this call, or `docauth_runtime_free`), so an
/// accept loop may start a session and free its handle at once. Never blocks. NULL is a
/// no-op. A panic while freeing (a bug) is contained: the call returns, the handle may leak.
///
/// # Safety
/// `session` is NULL or a session from this library, not freed before.
#[no_mangle]
pub unsafe extern "C" fn docauth_session_free(session: *mut docauth_session) {
    ffi_boundary!(default: (), "docauth_session_free", {
        // SAFETY: NULL or a live session not freed before.
        unsafe { free_boxed(session) };
    })
}
