//! The relay: client messages are framed, analysed and judged; allowed ones are forwarded
//! to the database as the client's original bytes (only a `hello`/`isMaster` that carried
//! `speculativeAuthenticate`, `compression` or `saslSupportedMechs` is re-encoded without
//! them); denied ones are answered with a MongoDB error of the request's kind (code 13,
//! `responseTo` set) and the session goes on. Database replies are relayed back frame by
//! frame.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{watch, Mutex};

use super::audit::{AuditSink, SessionFields};
use super::frames::{read_frame, wait_readable, FrameError};
use super::upstream::UpstreamStream;
use super::wire_shim::{self, Header, RequestKind, OP_MSG, OP_QUERY};
use super::{CommandAccess, Judge};
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
}

/// Byte and message counters, both ways.
#[derive(Default, Debug)]
pub(crate) struct Counters {
    pub bytes_from_client: AtomicU64,
    pub bytes_to_client: AtomicU64,
    pub messages_from_client: AtomicU64,
    pub messages_to_client: AtomicU64,
    pub denied: AtomicU64,
}

/// Commands a client may not send: authentication is the library's job, with the db user's
/// IAM identity. Compared case-insensitively.
const REFUSED_COMMANDS: [&str; 6] = [
    "saslstart",
    "saslcontinue",
    "authenticate",
    "logout",
    "copydbsaslstart",
    "copydbgetnonce",
];

/// Commands that only concern the connection: allowed whatever database they name, so that
/// `admin` need not be in `db_names` (a Teleport wart).
const CONNECTION_COMMANDS: [&str; 8] = [
    "hello",
    "ismaster",
    "ping",
    "buildinfo",
    "endsessions",
    "whatsmyuri",
    "getlasterror",
    "connectionstatus",
];

fn is_handshake(command: &str) -> bool {
    command.eq_ignore_ascii_case("hello") || command.eq_ignore_ascii_case("ismaster")
}

/// The decision for one analysed message: `(allowed, reason)`.
fn decide(
    judge: &dyn Judge,
    command: &str,
    databases: &[String],
    collection: Option<&str>,
) -> (bool, String) {
    let lower = command.to_ascii_lowercase();
    if REFUSED_COMMANDS.contains(&lower.as_str()) {
        return (
            false,
            format!("command {command} is refused: the proxy authenticates to the database itself with the db user's IAM identity; connect without credentials"),
        );
    }
    if CONNECTION_COMMANDS.contains(&lower.as_str()) {
        return (true, "connection command".to_string());
    }
    let verdict = judge.judge(&CommandAccess {
        command,
        databases,
        collection,
    });
    (verdict.allowed, verdict.reason)
}

static NEXT_REPLY_ID: AtomicU64 = AtomicU64::new(1);

fn reply_id() -> i32 {
    (NEXT_REPLY_ID.fetch_add(1, Ordering::Relaxed) & 0x3fff_ffff) as i32 | 0x4000_0000
}

fn kind_of(header: &Header) -> RequestKind {
    if header.op_code == OP_QUERY {
        RequestKind::Query
    } else {
        RequestKind::Msg {
            more_to_come: false,
        }
    }
}

fn session_io(side: &str, e: std::io::Error) -> Error {
    Error::new(ResultCode::SessionIo, format!("{side}: {e}"))
}

/// Runs the relay until a side closes, the idle timeout, a fatal client protocol error, or
/// `shutdown`. `Ok(reason)` for a normal end.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn relay<C>(
    client: C,
    upstream: BufReader<UpstreamStream>,
    limits: RelayLimits,
    judge: &dyn Judge,
    audit: &AuditSink,
    fields: &SessionFields,
    counters: &Counters,
    mut shutdown: watch::Receiver<bool>,
) -> Result<&'static str, Error>
where
    C: AsyncRead + AsyncWrite + Unpin + Send,
{
    let started = Instant::now();
    let last_activity_ms = AtomicU64::new(0);
    let touch = || last_activity_ms.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
    let (client_read, client_write) = tokio::io::split(client);
    let mut client_read = BufReader::with_capacity(16 * 1024, client_read);
    let client_write = Mutex::new(client_write);
    if !upstream.buffer().is_empty() {
        return Err(Error::new(
            ResultCode::UpstreamProtocol,
            "the database sent unsolicited data right after authentication",
        ));
    }
    let (upstream_read, mut upstream_write) = tokio::io::split(upstream.into_inner());
    let mut upstream_read = BufReader::with_capacity(16 * 1024, upstream_read);
    let audit_on = audit.enabled();

    let client_to_server = async {
        let mut buf = Vec::with_capacity(4096);
        loop {
            // Wait for the first byte of the next message, within the idle timeout.
            let readable = match limits.idle_timeout {
                None => wait_readable(&mut client_read).await,
                Some(idle) => loop {
                    match tokio::time::timeout(idle, wait_readable(&mut client_read)).await {
                        Ok(r) => break r,
                        Err(_) => {
                            let last =
                                Duration::from_millis(last_activity_ms.load(Ordering::Relaxed));
                            if started.elapsed().saturating_sub(last) >= idle {
                                return Ok("idle timeout");
                            }
                        }
                    }
                },
            };
            match readable {
                Ok(true) => {}
                Ok(false) => return Ok("client closed the connection"),
                Err(e) => return Err(session_io("reading from the client", e)),
            }
            let header = match tokio::time::timeout(
                limits.message_timeout,
                read_frame(&mut client_read, &mut buf, limits.max_message_size),
            )
            .await
            {
                Err(_) => {
                    return Err(Error::new(
                        ResultCode::ClientProtocol,
                        format!(
                            "the client did not send a whole message within {} ms of its first byte; closing",
                            limits.message_timeout.as_millis()
                        ),
                    ))
                }
                Ok(Ok(Some(header))) => header,
                Ok(Ok(None)) | Ok(Err(FrameError::Truncated)) => {
                    return Ok("client closed the connection")
                }
                Ok(Err(FrameError::Io(e))) => return Err(session_io("reading from the client", e)),
                Ok(Err(FrameError::BadLength { header, limit })) => {
                    let why = format!(
                        "message length {} is outside 17..={limit} bytes; closing the connection",
                        header.length
                    );
                    if audit_on {
                        audit.emit(&fields.query("", &[], None, false, &why));
                    }
                    let (code, code_name) = if header.length > 0 && header.length as usize > limit {
                        (10334, "BSONObjectTooLarge")
                    } else {
                        (9, "FailedToParse")
                    };
                    if header.op_code == OP_MSG || header.op_code == OP_QUERY {
                        let reply = wire_shim::error_reply(
                            kind_of(&header),
                            reply_id(),
                            header.request_id,
                            code,
                            code_name,
                            &format!("libdocauth: {why}"),
                        );
                        let mut w = client_write.lock().await;
                        let _ = w.write_all(&reply).await;
                        let _ = w.flush().await;
                    }
                    return Err(Error::new(ResultCode::ClientProtocol, why));
                }
            };
            touch();
            counters
                .messages_from_client
                .fetch_add(1, Ordering::Relaxed);
            counters
                .bytes_from_client
                .fetch_add(buf.len() as u64, Ordering::Relaxed);
            let analysis = match wire_shim::analyse(&buf) {
                Ok(a) => a,
                Err(why) => {
                    counters.denied.fetch_add(1, Ordering::Relaxed);
                    if audit_on {
                        audit.emit(&fields.query("", &[], None, false, &why));
                    }
                    if header.op_code == OP_MSG || header.op_code == OP_QUERY {
                        let reply = wire_shim::error_reply(
                            kind_of(&header),
                            reply_id(),
                            header.request_id,
                            9,
                            "FailedToParse",
                            &format!("libdocauth refused the message: {why}"),
                        );
                        let mut w = client_write.lock().await;
                        w.write_all(&reply)
                            .await
                            .map_err(|e| session_io("writing to the client", e))?;
                        w.flush()
                            .await
                            .map_err(|e| session_io("writing to the client", e))?;
                        counters.messages_to_client.fetch_add(1, Ordering::Relaxed);
                        counters
                            .bytes_to_client
                            .fetch_add(reply.len() as u64, Ordering::Relaxed);
                        continue;
                    }
                    return Err(Error::new(ResultCode::ClientProtocol, why));
                }
            };
            let (allowed, reason) = decide(
                judge,
                &analysis.command,
                &analysis.databases,
                analysis.collection.as_deref(),
            );
            if audit_on {
                audit.emit(&fields.query(
                    &analysis.command,
                    &analysis.databases,
                    analysis.collection.as_deref(),
                    allowed,
                    &reason,
                ));
            }
            if allowed {
                let stripped = if is_handshake(&analysis.command) {
                    wire_shim::strip_handshake(&buf).unwrap_or(None)
                } else {
                    None
                };
                let bytes = stripped.as_deref().unwrap_or(&buf);
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
            counters.denied.fetch_add(1, Ordering::Relaxed);
            if let RequestKind::Msg { more_to_come: true } = analysis.kind {
                continue; // the client expects no reply
            }
            let databases = analysis.databases.join(", ");
            let reply = wire_shim::error_reply(
                analysis.kind,
                reply_id(),
                header.request_id,
                13,
                "Unauthorized",
                &format!(
                    "access denied to database {databases} (command {}): {reason}",
                    analysis.command
                ),
            );
            let mut w = client_write.lock().await;
            w.write_all(&reply)
                .await
                .map_err(|e| session_io("writing to the client", e))?;
            w.flush()
                .await
                .map_err(|e| session_io("writing to the client", e))?;
            counters.messages_to_client.fetch_add(1, Ordering::Relaxed);
            counters
                .bytes_to_client
                .fetch_add(reply.len() as u64, Ordering::Relaxed);
        }
    };

    let server_to_client = async {
        let mut buf = Vec::with_capacity(4096);
        loop {
            match read_frame(&mut upstream_read, &mut buf, limits.max_message_size).await {
                Ok(Some(_)) => {}
                Ok(None) | Err(FrameError::Truncated) => {
                    return Ok("the database closed the connection")
                }
                Err(FrameError::Io(e)) => return Err(session_io("reading from the database", e)),
                Err(e @ FrameError::BadLength { .. }) => {
                    return Err(Error::new(
                        ResultCode::UpstreamProtocol,
                        format!("the database sent an invalid message: {e}"),
                    ))
                }
            }
            touch();
            let mut w = client_write.lock().await;
            w.write_all(&buf)
                .await
                .map_err(|e| session_io("writing to the client", e))?;
            w.flush()
                .await
                .map_err(|e| session_io("writing to the client", e))?;
            drop(w);
            counters.messages_to_client.fetch_add(1, Ordering::Relaxed);
            counters
                .bytes_to_client
                .fetch_add(buf.len() as u64, Ordering::Relaxed);
        }
    };

    tokio::select! {
        r = client_to_server => r,
        r = server_to_client => r,
        _ = shutdown.wait_for(|stop| *stop) => Ok("shut down by the host"),
    }
}
