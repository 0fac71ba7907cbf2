//! The connection to the database: TCP connect with a timeout, TLS ([`tls`], with the
//! configured CA bundle, SNI from the host), the MongoDB handshake (`hello` without
//! speculative authentication or compression) and MONGODB-AWS authentication on `$external`.
//! The URI is parsed in [`uri`].
//!
//! Every failure is an [`Error`] whose message says what to fix (the troubleshooting section
//! of the Teleport DocumentDB guide).

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bson::{doc, spec::BinarySubtype, Binary, Document, RawDocument};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

mod tls;
mod uri;

pub use self::tls::TlsConfigs;
use self::tls::{tls_config, tls_error};
use self::uri::uri_error;
pub use self::uri::DatabaseUri;
use super::credentials::CredentialSource;
use super::frames::{FrameError, FrameReader};
use super::metrics::{Phase, SessionMetrics, UpstreamFailure};
use crate::aws::ClientConversation;
use crate::wire::{self, Message, DEFAULT_MAX_MESSAGE_SIZE};
use crate::{Error, Result, ResultCode};

/// The database connection: TLS or (only when the URI says `tls=false`) plain TCP.
pub enum UpstreamStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_flush(cx),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// An authenticated database connection, ready to relay.
pub struct Upstream {
    pub(crate) stream: FrameReader<UpstreamStream>,
    /// The server's `maxMessageSizeBytes` (48,000,000 when it did not say).
    pub max_message_size: usize,
    pub address: String,
}

/// What [`connect`] needs, all read and checked when the session starts.
#[derive(Clone)]
pub struct UpstreamConfig {
    pub uri: DatabaseUri,
    /// TLS to the database with the CA bundle that verifies it; `None` for `tls=false`.
    pub tls: Option<UpstreamTls>,
    pub db_user: String,
    /// The session's user: the STS role session name of the db user's credentials.
    pub session_user: String,
    pub connect_timeout: Duration,
    /// Limit for TLS + hello + authentication, after the TCP connect.
    pub handshake_timeout: Duration,
}

/// The TLS client configuration of a database, and the CA bundle it was made from (named in
/// verification errors).
#[derive(Clone)]
pub struct UpstreamTls {
    pub config: Arc<rustls::ClientConfig>,
    pub ca_file: PathBuf,
}

impl UpstreamTls {
    /// For `uri` with TLS: the CA bundle `ca_file` (it overrides the URI's `tlsCAFile`),
    /// read and parsed now (through the runtime's `cache`), so that a missing or bad bundle is
    /// the start's error. `None` when the URI says `tls=false`.
    pub fn for_uri(
        uri: &DatabaseUri,
        ca_file: Option<&Path>,
        cache: &TlsConfigs,
    ) -> Result<Option<UpstreamTls>> {
        if !uri.tls {
            return Ok(None);
        }
        let ca_file = ca_file.or(uri.ca_file.as_deref()).ok_or_else(|| {
            Error::new(
                ResultCode::CaBundleInvalid,
                format!("no CA bundle is configured for {}: set ca_file (for Amazon DocumentDB, the RDS global-bundle.pem from https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem)", uri.address()),
            )
        })?;
        Ok(Some(UpstreamTls {
            config: tls_config(ca_file, cache)?,
            ca_file: ca_file.to_path_buf(),
        }))
    }
}

/// Connects, verifies TLS, says hello and authenticates as `db_user` with MONGODB-AWS;
/// `metrics` gets the time of each phase, or the kind of failure.
pub(crate) async fn connect(
    config: &UpstreamConfig,
    credentials: &dyn CredentialSource,
    metrics: &SessionMetrics,
) -> Result<Upstream> {
    let outcome = connect_timed(config, credentials, metrics).await;
    if let Err(e) = &outcome {
        if let Some(kind) = UpstreamFailure::of(e.code()) {
            metrics.upstream_failures.inc(kind);
        }
    }
    outcome
}

async fn connect_timed(
    config: &UpstreamConfig,
    credentials: &dyn CredentialSource,
    metrics: &SessionMetrics,
) -> Result<Upstream> {
    let address = config.uri.address();
    let connecting = std::time::Instant::now();
    let tcp = match tokio::time::timeout(
        config.connect_timeout,
        TcpStream::connect((config.uri.host.as_str(), config.uri.port)),
    )
    .await
    {
        Err(_) => return Err(connect_timeout(&address, config.connect_timeout)),
        Ok(Err(e)) => return Err(connect_failed(&address, &e)),
        Ok(Ok(tcp)) => tcp,
    };
    metrics.phase(Phase::Connect, connecting.elapsed());
    let _ = tcp.set_nodelay(true);
    let handshake = async {
        let stream = match &config.tls {
            None => UpstreamStream::Plain(tcp),
            Some(tls) => {
                let name = ServerName::try_from(config.uri.host.clone()).map_err(|_| {
                    uri_error(format!(
                        "{:?} is not a valid host name for TLS",
                        config.uri.host
                    ))
                })?;
                let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
                let handshaking = std::time::Instant::now();
                let stream = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| tls_error(&address, &tls.ca_file, e))?;
                metrics.phase(Phase::Tls, handshaking.elapsed());
                UpstreamStream::Tls(Box::new(stream))
            }
        };
        let mut stream = FrameReader::new(stream, 16 * 1024);
        let max_message_size = hello(&mut stream, &address).await?;
        let authenticating = std::time::Instant::now();
        authenticate(&mut stream, &address, config, credentials).await?;
        metrics.phase(Phase::Auth, authenticating.elapsed());
        Ok(Upstream {
            stream,
            max_message_size,
            address: address.clone(),
        })
    };
    match tokio::time::timeout(config.handshake_timeout, handshake).await {
        Ok(result) => result,
        Err(_) => Err(Error::new(
            ResultCode::ConnectTimeout,
            format!(
                "the database at {address} accepted the TCP connection but did not finish the TLS/MongoDB handshake within {} ms; check that this is the database port and that TLS is enabled on it",
                config.handshake_timeout.as_millis()
            ),
        )),
    }
}

fn connect_timeout(address: &str, timeout: Duration) -> Error {
    Error::new(
        ResultCode::ConnectTimeout,
        format!(
            "timed out after {} ms connecting to the database at {address}: the proxy needs network access to the database endpoint — check that the database's security group allows inbound traffic from this host on that port, and the VPC routing / peering if it runs in another VPC (verify with: nc -zv {})",
            timeout.as_millis(),
            address.replace(':', " ").replace(['[', ']'], "")
        ),
    )
}

fn connect_failed(address: &str, e: &std::io::Error) -> Error {
    Error::new(
        ResultCode::ConnectFailed,
        format!(
            "could not connect to the database at {address}: {e}; check the host and port in the database URI, DNS, the database's security group and the VPC routing"
        ),
    )
}

static NEXT_REQUEST_ID: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(1);

/// Sends one command on `$db` and returns the reply's body document.
async fn command<S>(
    stream: &mut FrameReader<S>,
    address: &str,
    step: &str,
    cmd: Document,
) -> Result<Document>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request_id =
        NEXT_REQUEST_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed) & 0x7fff_ffff;
    let raw = bson::RawDocumentBuf::from_document(&cmd)
        .map_err(|e| protocol(address, step, &format!("cannot encode the command: {e}")))?;
    let frame = wire::encode_op_msg(request_id, 0, 0, &raw, &[])?;
    let io_error = |e: std::io::Error| {
        Error::new(
            ResultCode::UpstreamClosed,
            format!("the database at {address} closed the connection during {step}: {e}"),
        )
    };
    stream.get_mut().write_all(&frame).await.map_err(io_error)?;
    stream.get_mut().flush().await.map_err(io_error)?;
    let frame = match stream.next(DEFAULT_MAX_MESSAGE_SIZE).await {
        Ok(Some(f)) => f,
        Ok(None) | Err(FrameError::Truncated) => {
            return Err(Error::new(
                ResultCode::UpstreamClosed,
                format!("the database at {address} closed the connection during {step}"),
            ))
        }
        Err(FrameError::Io(e)) => return Err(io_error(e)),
        Err(e @ FrameError::Bad { .. }) => return Err(protocol(address, step, &e.to_string())),
    };
    if frame.header().response_to != request_id {
        return Err(protocol(address, step, "the reply answers another request"));
    }
    let message = Message::parse(frame, DEFAULT_MAX_MESSAGE_SIZE)
        .map_err(|e| protocol(address, step, e.message()))?;
    let body: &RawDocument = match (message.op_msg(), message.op_reply()) {
        (Some(m), _) => m.body(),
        (_, Some(r)) => r
            .documents()
            .next()
            .and_then(|d| d.ok())
            .ok_or_else(|| protocol(address, step, "OP_REPLY without a document"))?,
        _ => {
            return Err(protocol(
                address,
                step,
                "the reply is neither OP_MSG nor OP_REPLY",
            ))
        }
    };
    Document::try_from(body).map_err(|e| protocol(address, step, &e.to_string()))
}

fn protocol(address: &str, step: &str, what: &str) -> Error {
    Error::new(
        ResultCode::UpstreamProtocol,
        format!("the database at {address} sent an invalid reply during {step}: {what}"),
    )
}

fn is_ok(reply: &Document) -> bool {
    match reply.get("ok") {
        Some(bson::Bson::Double(v)) => *v == 1.0,
        Some(bson::Bson::Int32(v)) => *v == 1,
        Some(bson::Bson::Int64(v)) => *v == 1,
        Some(bson::Bson::Boolean(v)) => *v,
        _ => false,
    }
}

fn errmsg(reply: &Document) -> String {
    let msg = reply.get_str("errmsg").unwrap_or("no errmsg");
    match reply.get("code") {
        Some(code) => format!("{msg} (code {code})"),
        None => msg.to_string(),
    }
}

/// `hello` (falling back to `isMaster` for servers without it), with no
/// `speculativeAuthenticate` and no `compression`: returns `maxMessageSizeBytes`.
async fn hello<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut FrameReader<S>,
    address: &str,
) -> Result<usize> {
    let client = doc! {
        "driver": {"name": "libdocauth", "version": crate::version()},
        "os": {"type": std::env::consts::OS},
    };
    let mut reply = command(
        stream,
        address,
        "the MongoDB handshake (hello)",
        doc! {"hello": 1, "client": client.clone(), "$db": "admin"},
    )
    .await?;
    if !is_ok(&reply) {
        reply = command(
            stream,
            address,
            "the MongoDB handshake (isMaster)",
            doc! {"isMaster": 1, "client": client, "$db": "admin"},
        )
        .await?;
    }
    if !is_ok(&reply) {
        return Err(Error::new(
            ResultCode::UpstreamProtocol,
            format!(
                "the database at {address} refused the MongoDB handshake: {}",
                errmsg(&reply)
            ),
        ));
    }
    let max = match reply.get("maxMessageSizeBytes") {
        Some(bson::Bson::Int32(v)) => i64::from(*v),
        Some(bson::Bson::Int64(v)) => *v,
        Some(bson::Bson::Double(v)) => *v as i64,
        _ => DEFAULT_MAX_MESSAGE_SIZE as i64,
    };
    // Anything smaller than a 16 MiB document plus overhead, or absurdly large, is not a
    // real server's limit: keep the default.
    Ok(if (16 * 1024 * 1024..=256 * 1024 * 1024).contains(&max) {
        max as usize
    } else {
        DEFAULT_MAX_MESSAGE_SIZE
    })
}

fn auth_failed(address: &str, db_user: &str, detail: &str) -> Error {
    Error::new(
        ResultCode::UpstreamAuthFailed,
        format!(
            "unable to authenticate using mechanism \"MONGODB-AWS\" as db user {db_user:?} at {address}: {detail}. Make sure the IAM role exists as a user in the \"$external\" database of the target cluster and is configured with the MONGODB-AWS mechanism, e.g. db.getSiblingDB(\"$external\").createUser({{user: \"<role ARN>\", mechanisms: [\"MONGODB-AWS\"], roles: [...]}}), and that the credentials used are the ones of that role"
        ),
    )
}

fn binary_payload(reply: &Document) -> Option<&[u8]> {
    match reply.get("payload") {
        Some(bson::Bson::Binary(b)) => Some(&b.bytes),
        _ => None,
    }
}

async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut FrameReader<S>,
    address: &str,
    config: &UpstreamConfig,
    credentials: &dyn CredentialSource,
) -> Result<()> {
    let db_user = config.db_user.as_str();
    let credentials = credentials
        .credentials(db_user, &config.session_user)
        .await?;
    let mut conversation = ClientConversation::new(credentials)?;
    let first = conversation.client_first()?;
    let step = "MONGODB-AWS authentication (saslStart)";
    let reply = command(
        stream,
        address,
        step,
        doc! {
            "saslStart": 1,
            "mechanism": "MONGODB-AWS",
            "payload": Binary { subtype: BinarySubtype::Generic, bytes: first },
            "$db": "$external",
        },
    )
    .await?;
    if !is_ok(&reply) {
        return Err(auth_failed(address, db_user, &errmsg(&reply)));
    }
    let server_first = binary_payload(&reply)
        .ok_or_else(|| protocol(address, step, "saslStart reply has no binary payload"))?;
    let conversation_id = reply
        .get("conversationId")
        .cloned()
        .ok_or_else(|| protocol(address, step, "saslStart reply has no conversationId"))?;
    let last = conversation.client_final(server_first)?;
    let step = "MONGODB-AWS authentication (saslContinue)";
    let mut payload = last;
    // MONGODB-AWS is two round trips; a server may want one more empty step to say done.
    for _ in 0..2 {
        let reply = command(
            stream,
            address,
            step,
            doc! {
                "saslContinue": 1,
                "conversationId": conversation_id.clone(),
                "payload": Binary { subtype: BinarySubtype::Generic, bytes: std::mem::take(&mut payload) },
                "$db": "$external",
            },
        )
        .await?;
        if !is_ok(&reply) {
            return Err(auth_failed(address, db_user, &errmsg(&reply)));
        }
        if reply.get_bool("done").unwrap_or(false) {
            return Ok(());
        }
    }
    Err(protocol(
        address,
        step,
        "the SASL conversation did not finish",
    ))
}
