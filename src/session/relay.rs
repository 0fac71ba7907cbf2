//! The relay: client messages are framed, analysed and judged; allowed ones are forwarded
//! to the database as the client's original bytes (only a `hello`/`isMaster` that carried
//! `speculativeAuthenticate`, `compression`, `saslSupportedMechs` or `client` metadata is
//! re-encoded without them: see [`wire::STRIPPED_HANDSHAKE_KEYS`]); denied ones are answered with a MongoDB error of the request's kind (code 13,
//! `responseTo` set) and the session goes on. Database replies are relayed back frame by
//! frame, each checked first: its framing ([`Message::parse_reply_framing`]) and that it
//! answers a request the client is still waiting for ([`OwedReplies`]). A database that
//! breaks either rule, closes with replies owed or sends an oversized message ends the
//! session, and every request still owed a reply is answered with the explanation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{watch, Mutex};

use super::audit::{AuditSink, DecidedBy, SessionFields};
use super::frames::{FrameError, FrameReader};
use super::judge::{Judge, Verdict};
use super::metrics::{CommandClass as Class, DenialKind, EndReason};
use super::stats::Counters;
use super::upstream::UpstreamStream;
use crate::wire::{self, CommandClass, Message, RequestInfo};
use crate::{Error, ResultCode};

/// Timeouts and limits of one relay.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RelayLimits {
    /// No message either way for this long ends the session. `None`: no idle timeout.
    pub idle_timeout: Option<Duration>,
    /// A client message must arrive whole within this time after its first byte.
    pub message_timeout: Duration,
    /// The largest message either side may send (the server's `maxMessageSizeBytes`).
    pub max_message_size: usize,
    /// A write to the client that makes no progress (not one byte accepted) for this long
    /// ends the session with `CLIENT_WRITE_TIMEOUT`.
    pub client_write_timeout: Duration,
}

/// How a relay ended without an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    ClientClosed,
    DatabaseClosed,
    IdleTimeout,
    ShutDown,
}

impl Ended {
    /// The end reason of the session's stats and audit event.
    pub(crate) fn text(self) -> &'static str {
        match self {
            Ended::ClientClosed => "client closed the connection",
            Ended::DatabaseClosed => "the database closed the connection",
            Ended::IdleTimeout => "idle timeout",
            Ended::ShutDown => "shut down by the host",
        }
    }

    pub(crate) fn reason(self) -> EndReason {
        match self {
            Ended::ClientClosed => EndReason::ClientClosed,
            Ended::DatabaseClosed => EndReason::DatabaseClosed,
            Ended::IdleTimeout => EndReason::IdleTimeout,
            Ended::ShutDown => EndReason::ShutDown,
        }
    }
}

/// The decision for one analysed message, and who made it (the audit event's `decided_by`).
/// A command the analysis refuses (client authentication, a handshake with credentials, a
/// legacy OP_QUERY command…) is never judged.
fn decide(judge: &dyn Judge, access: &wire::CommandAccess) -> (Verdict, DecidedBy) {
    if let Some(refusal) = &access.refused {
        return (
            Verdict::new(false, refusal.reason.clone()),
            DecidedBy::Analysis,
        );
    }
    // Connection commands too: the engine allows them without a database name, and a
    // reload that revokes the session's access applies to them as well.
    let verdict = judge.judge(access);
    let by = if verdict.identity.is_some() {
        DecidedBy::Policy
    } else {
        DecidedBy::Judge
    };
    (verdict, by)
}

static NEXT_REPLY_ID: AtomicU64 = AtomicU64::new(1);

fn reply_id() -> i32 {
    (NEXT_REPLY_ID.fetch_add(1, Ordering::Relaxed) & 0x3fff_ffff) as i32 | 0x4000_0000
}

fn session_io(side: &str, e: std::io::Error) -> Error {
    Error::new(ResultCode::SessionIo, format!("{side}: {e}"))
}

/// Writes all of `bytes` to the client. Each write must move at least one byte within
/// `timeout`: a slow link is fine, a client that stopped reading is not (it would hold this
/// session's task, and through it the database connection, for ever).
pub(crate) async fn write_to_client<W: AsyncWrite + Unpin + ?Sized>(
    w: &mut W,
    bytes: &[u8],
    timeout: Duration,
) -> Result<(), Error> {
    let stuck = |written: usize| {
        Error::new(
            ResultCode::ClientWriteTimeout,
            format!(
                "the client accepted no data for {} ms ({written} of {} bytes of a reply written): it stopped reading; closing the session (client_write_timeout_ms)",
                timeout.as_millis(),
                bytes.len()
            ),
        )
    };
    let mut written = 0;
    while written < bytes.len() {
        match tokio::time::timeout(timeout, w.write(&bytes[written..])).await {
            Err(_) => return Err(stuck(written)),
            Ok(Ok(0)) => {
                return Err(session_io(
                    "writing to the client",
                    std::io::ErrorKind::WriteZero.into(),
                ))
            }
            Ok(Ok(n)) => written += n,
            Ok(Err(e)) => return Err(session_io("writing to the client", e)),
        }
    }
    match tokio::time::timeout(timeout, w.flush()).await {
        Err(_) => Err(stuck(written)),
        Ok(r) => r.map_err(|e| session_io("writing to the client", e)),
    }
}

/// Sends `reply` (if any) to the client and counts it.
async fn answer<W: AsyncWrite + Unpin>(
    client_write: &Mutex<W>,
    counters: &Counters,
    reply: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<(), Error> {
    let Some(reply) = reply else { return Ok(()) };
    let mut w = client_write.lock().await;
    write_to_client(&mut *w, &reply, timeout).await?;
    counters.sent_to_client(reply.len());
    Ok(())
}

/// The replies the client is waiting for, in the order the requests went to the database:
/// every forwarded request without `moreToCome` is owed one reply carrying its `requestID` as
/// `responseTo`. A database reply that answers none of them (a wrong `responseTo`, a reply to
/// a `moreToCome` message, one reply too many) is never relayed: it would answer a request the
/// client did not make, or desynchronise it. At most one entry per request in flight (the
/// database reads no more than its socket buffer holds), so no bound of its own.
#[derive(Default)]
struct OwedReplies(std::sync::Mutex<std::collections::VecDeque<RequestInfo>>);

impl OwedReplies {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::VecDeque<RequestInfo>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `request` went to the database; it is owed a reply unless it is `moreToCome`.
    fn expect(&self, request: RequestInfo) {
        if !request.more_to_come {
            self.lock().push_back(request);
        }
    }

    /// Takes the request `reply` answers (replies come in order, so it is nearly always the
    /// first). An exhaust reply (`moreToCome` set) is followed by another whose `responseTo`
    /// is this reply's `requestID` (mongod's `makeExhaustMessage`,
    /// src/mongo/transport/session_workflow.cpp), so the request stays owed under that id.
    /// `false` when no request awaits it.
    fn answered(&self, reply: &Message) -> bool {
        let header = reply.header();
        let mut owed = self.lock();
        let Some(at) = owed.iter().position(|r| r.request_id == header.response_to) else {
            return false;
        };
        if reply.op_msg().is_some_and(|m| m.more_to_come()) {
            owed[at].request_id = header.request_id;
        } else {
            owed.remove(at);
        }
        true
    }

    fn take_all(&self) -> Vec<RequestInfo> {
        self.lock().drain(..).collect()
    }
}

/// Answers every request still owed a reply with the error that ended the database side,
/// so that the client sees why instead of a bare closed connection. Best effort: the
/// session is ending either way.
async fn tell_owed<W: AsyncWrite + Unpin>(
    client_write: &Mutex<W>,
    counters: &Counters,
    owed: &OwedReplies,
    error: &Error,
    timeout: Duration,
) {
    for request in owed.take_all() {
        let reply = wire::error_reply(
            &request,
            reply_id(),
            6,
            "HostUnreachable",
            &format!("libdocauth: {}", error.message()),
        );
        if answer(client_write, counters, reply, timeout)
            .await
            .is_err()
        {
            return;
        }
    }
}

/// The denial kind of a message the library could not parse ([`DenialKind::Malformed`]) or
/// whose command the analysis refuses (unknown command, stage or field, a legacy opcode).
fn refusal_kind(code: ResultCode) -> DenialKind {
    match code {
        ResultCode::WireRefusedOpcode
        | ResultCode::WireRefusedQuery
        | ResultCode::WireUnknownCommand
        | ResultCode::WireUnknownStage
        | ResultCode::WireRefusedField
        | ResultCode::WireQueryNotCommand => DenialKind::Refused,
        _ => DenialKind::Malformed,
    }
}

/// MongoDB's code for a request the library could not parse or refuses to parse.
fn parse_error_code(code: ResultCode) -> (i32, &'static str) {
    match code {
        ResultCode::WireTooLarge => (10334, "BSONObjectTooLarge"),
        ResultCode::WireRefusedOpcode | ResultCode::WireRefusedQuery => {
            (352, "UnsupportedOpQueryCommand")
        }
        ResultCode::WireInvalidNamespace => (73, "InvalidNamespace"),
        ResultCode::WireUnknownCommand => (59, "CommandNotFound"),
        // mongod's "Unrecognized pipeline stage name" (`DocumentSource::parse`).
        ResultCode::WireUnknownStage => (40324, "Location40324"),
        // mongod's "unknown field" for an IDL-parsed command (`IDLParserContext`).
        ResultCode::WireRefusedField => (40415, "Location40415"),
        ResultCode::WireQueryNotCommand => (5739101, "Location5739101"),
        _ => (9, "FailedToParse"),
    }
}

/// The error reply for a refused request: an OP_QUERY that is not a command gets an
/// OP_REPLY with QueryFailure and `$err` (as mongod 5.1+ answers a legacy find).
fn refusal_reply(info: &RequestInfo, code: ResultCode, errmsg: &str) -> Option<Vec<u8>> {
    let (number, name) = parse_error_code(code);
    if code == ResultCode::WireQueryNotCommand && info.op_code == wire::op::OP_QUERY {
        return wire::query_failure_reply(info, reply_id(), number, name, errmsg);
    }
    wire::error_reply(info, reply_id(), number, name, errmsg)
}

/// Runs the relay until a side closes, the idle timeout, a client that stops reading, a
/// fatal client protocol error, or `shutdown`. `Ok(reason)` for a normal end.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn relay<C>(
    client: C,
    upstream: FrameReader<UpstreamStream>,
    limits: RelayLimits,
    judge: &dyn Judge,
    audit: &AuditSink,
    fields: &SessionFields,
    counters: &Counters,
    mut shutdown: watch::Receiver<bool>,
) -> Result<Ended, Error>
where
    C: AsyncRead + AsyncWrite + Unpin + Send,
{
    let started = Instant::now();
    let last_activity_ms = AtomicU64::new(0);
    let touch = || last_activity_ms.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
    let (client_read, client_write) = tokio::io::split(client);
    let mut client_read = FrameReader::new(client_read, 8 * 1024);
    let client_write = Mutex::new(client_write);
    let (upstream, leftover) = upstream.into_parts();
    let (upstream_read, mut upstream_write) = tokio::io::split(upstream);
    let mut upstream_read = FrameReader::from_parts(upstream_read, leftover);
    let audit_on = audit.enabled();
    let owed = OwedReplies::default();
    // Set when the database side failed: the requests still owed a reply get this error.
    let database_fault: std::sync::Mutex<Option<Error>> = std::sync::Mutex::new(None);
    let database_failed = |e: Error| {
        *database_fault.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.clone());
        e
    };

    let client_to_server = async {
        loop {
            // Wait for the first byte of the next message (the idle timeout is `idle_watch`'s).
            match client_read.wait_readable().await {
                Ok(true) => {}
                Ok(false) => return Ok(Ended::ClientClosed),
                Err(e) => return Err(session_io("reading from the client", e)),
            }
            let next = match client_read.buffered(limits.max_message_size) {
                Some(frame) => Ok(Ok(Some(frame))),
                None => {
                    tokio::time::timeout(
                        limits.message_timeout,
                        client_read.next(limits.max_message_size),
                    )
                    .await
                }
            };
            let frame = match next {
                Err(_) => {
                    return Err(Error::new(
                        ResultCode::ClientProtocol,
                        format!(
                            "the client did not send a whole message within {} ms of its first byte; closing",
                            limits.message_timeout.as_millis()
                        ),
                    ))
                }
                Ok(Ok(Some(frame))) => frame,
                Ok(Ok(None)) | Ok(Err(FrameError::Truncated)) => {
                    return Ok(Ended::ClientClosed)
                }
                Ok(Err(FrameError::Io(e))) => {
                    return Err(session_io("reading from the client", e))
                }
                Ok(Err(FrameError::Bad { error, request })) => {
                    counters.metrics.message_judged(Class::Unparsed, Some(DenialKind::Malformed));
                    let why = format!("{}; closing the connection", error.message());
                    if audit_on {
                        audit.emit(&fields.unreadable_query(&why));
                    }
                    if let Some(request) = request {
                        let (code, name) = parse_error_code(error.code());
                        let reply = wire::error_reply(
                            &request,
                            reply_id(),
                            code,
                            name,
                            &format!("libdocauth: {why}"),
                        );
                        let _ = answer(&client_write, counters, reply, limits.client_write_timeout)
                            .await;
                    }
                    return Err(Error::new(ResultCode::ClientProtocol, why));
                }
            };
            touch();
            counters.received_from_client(frame.bytes().len());
            // The reply (or its absence, for moreToCome) follows the message as parsed: for
            // OP_COMPRESSED the inner message's flags, which the frame header cannot show.
            let compressed =
                (frame.header().op_code == wire::op::OP_COMPRESSED).then(|| frame.clone());
            let mut info: Option<RequestInfo> = Some(frame.request_info());
            let mut parsed_ok = false;
            let parsed = Message::parse_request(frame, limits.max_message_size).and_then(|m| {
                info = Some(m.request_info());
                parsed_ok = true;
                wire::analyse(&m).map(|a| (m, a))
            });
            if parsed.is_err() && !parsed_ok {
                if let Some(frame) = &compressed {
                    info = Message::request_info_of(frame, limits.max_message_size);
                }
            }
            let (message, access) = match parsed {
                Ok(ok) => ok,
                Err(error) if info.is_none() => {
                    // An OP_COMPRESSED message that could not be decompressed and parsed: its
                    // moreToCome flag is unknown, and a reply to a moreToCome message would
                    // desynchronise the client. No reply; the session ends.
                    counters.deny(Class::Unparsed, refusal_kind(error.code()));
                    let why = format!(
                        "{}; an OP_COMPRESSED message that cannot be read is not answered (its flags are unknown); closing the connection",
                        error.message()
                    );
                    if audit_on {
                        audit.emit(&fields.unreadable_query(&why));
                    }
                    return Err(Error::new(ResultCode::ClientProtocol, why));
                }
                Err(error) => {
                    // (Always `Some` here: the arm above took `None`.)
                    let info = info.unwrap_or(RequestInfo {
                        request_id: 0,
                        op_code: wire::op::OP_MSG,
                        more_to_come: true,
                    });
                    counters.deny(Class::Unparsed, refusal_kind(error.code()));
                    if audit_on {
                        audit.emit(&fields.unreadable_query(error.message()));
                    }
                    let reply = refusal_reply(
                        &info,
                        error.code(),
                        &format!("libdocauth refused the message: {}", error.message()),
                    );
                    answer(&client_write, counters, reply, limits.client_write_timeout).await?;
                    // A legacy OP_GET_MORE got its QueryFailure reply and the session goes on.
                    if error.code() == ResultCode::WireRefusedOpcode
                        && info.op_code != wire::op::OP_GET_MORE
                    {
                        // Legacy writes expect no reply: going on would lose them silently.
                        return Err(Error::new(ResultCode::ClientProtocol, error.message()));
                    }
                    continue;
                }
            };
            let (mut verdict, mut decided_by) = decide(judge, &access);
            let class = Class::of(access.reach);
            let mut denial = (!verdict.allowed).then_some(if access.refused.is_some() {
                DenialKind::Refused
            } else {
                DenialKind::Policy
            });
            // A handshake goes upstream only without the client's authentication and
            // compression fields; if it cannot be rewritten it is refused, never forwarded as is.
            let mut stripped = None;
            if verdict.allowed
                && access.class == CommandClass::Connection
                && wire::HANDSHAKE_COMMANDS.contains(&access.command.as_str())
            {
                match wire::strip_handshake(&message) {
                    Ok(m) => stripped = Some(m),
                    Err(e) => {
                        denial = Some(DenialKind::Handshake);
                        verdict = Verdict::new(
                            false,
                            format!(
                                "the handshake could not be rewritten without its authentication and compression fields: {}",
                                e.message()
                            ),
                        );
                        decided_by = DecidedBy::Handshake;
                    }
                }
            }
            if audit_on {
                audit.emit(&fields.query(&access, &verdict, decided_by));
            }
            let reason = &verdict.reason;
            if verdict.allowed {
                counters.metrics.message_judged(class, None);
                // Owed before it is written: the reply may come back before `write_all` returns.
                owed.expect(message.request_info());
                let bytes = stripped.as_ref().unwrap_or(&message).bytes();
                upstream_write
                    .write_all(bytes)
                    .await
                    .map_err(|e| session_io("writing to the database", e))?;
                upstream_write
                    .flush()
                    .await
                    .map_err(|e| session_io("writing to the database", e))?;
                continue;
            }
            counters.deny(class, denial.unwrap_or(DenialKind::Policy));
            let info = message.request_info();
            let reply = match access.refused.as_ref().and_then(|r| r.code) {
                Some(code) => refusal_reply(
                    &info,
                    code,
                    &format!("libdocauth refused the message: {reason}"),
                ),
                None => wire::unauthorized_reply(
                    &info,
                    reply_id(),
                    &format!(
                        "access denied to database {} (command {}): {reason}",
                        match access.databases() {
                            databases if databases.is_empty() => access.database.clone(),
                            databases => databases.join(", "),
                        },
                        access.command
                    ),
                ),
            };
            answer(&client_write, counters, reply, limits.client_write_timeout).await?;
        }
    };

    let server_to_client = async {
        loop {
            let frame = match upstream_read.next(limits.max_message_size).await {
                Ok(Some(frame)) => frame,
                Ok(None) => {
                    let waiting = owed.lock().len();
                    if waiting == 0 {
                        return Ok(Ended::DatabaseClosed);
                    }
                    return Err(database_failed(Error::new(
                        ResultCode::UpstreamClosed,
                        format!("the database closed the connection while {waiting} request(s) of the client waited for a reply"),
                    )));
                }
                Err(FrameError::Truncated) => {
                    return Err(database_failed(Error::new(
                        ResultCode::UpstreamClosed,
                        "the database closed the connection in the middle of a reply",
                    )))
                }
                Err(FrameError::Io(e)) => {
                    return Err(database_failed(session_io("reading from the database", e)))
                }
                Err(e @ FrameError::Bad { .. }) => {
                    return Err(database_failed(Error::new(
                        ResultCode::UpstreamProtocol,
                        format!("the database sent an invalid message: {e}"),
                    )))
                }
            };
            touch();
            let reply = Message::parse_reply_framing(frame).map_err(|e| {
                database_failed(Error::new(
                    ResultCode::UpstreamProtocol,
                    format!("the database sent a malformed reply: {}", e.message()),
                ))
            })?;
            if !owed.answered(&reply) {
                return Err(database_failed(Error::new(
                    ResultCode::UpstreamProtocol,
                    format!(
                        "the database sent a reply to request {}, which the client is not waiting for (a wrong responseTo, or a reply to a moreToCome message); the connection cannot be trusted to stay in step",
                        reply.header().response_to
                    ),
                )));
            }
            let bytes = reply.bytes();
            let mut w = client_write.lock().await;
            write_to_client(&mut *w, bytes, limits.client_write_timeout).await?;
            drop(w);
            touch();
            counters.sent_to_client(bytes.len());
        }
    };

    // Its own arm, so that the idle timeout also ends a session whose other arms are stuck
    // in a write (a client or database that stopped reading), not only one waiting for the
    // client's next message.
    let idle_watch = async {
        let Some(idle) = limits.idle_timeout else {
            return std::future::pending().await;
        };
        loop {
            let last = Duration::from_millis(last_activity_ms.load(Ordering::Relaxed));
            let quiet = started.elapsed().saturating_sub(last);
            if quiet >= idle {
                return Ok(Ended::IdleTimeout);
            }
            tokio::time::sleep(idle - quiet).await;
        }
    };

    let outcome = tokio::select! {
        r = client_to_server => r,
        r = server_to_client => r,
        r = idle_watch => r,
        _ = shutdown.wait_for(|stop| *stop) => Ok(Ended::ShutDown),
    };
    let fault = database_fault
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some(fault) = fault {
        tell_owed(
            &client_write,
            counters,
            &owed,
            &fault,
            limits.client_write_timeout,
        )
        .await;
    }
    outcome
}
