//! The connection to the database: URI, TCP connect with a timeout, TLS with the configured
//! CA bundle (rustls, SNI from the host), the MongoDB handshake (`hello` without
//! speculative authentication or compression) and MONGODB-AWS authentication on `$external`.
//!
//! Every failure is an [`Error`] whose message says what to fix (the troubleshooting section
//! of the Teleport DocumentDB guide).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bson::{doc, spec::BinarySubtype, Binary, Document, RawDocument};
use once_cell::sync::Lazy;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::frames::{FrameError, FrameReader};
use super::CredentialSource;
use crate::aws::ClientConversation;
use crate::wire::{self, Message, DEFAULT_MAX_MESSAGE_SIZE};
use crate::{Error, Result, ResultCode};

/// Where the database is and how to reach it, from a `mongodb://` URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseUri {
    pub host: String,
    pub port: u16,
    /// TLS is on unless the URI says `tls=false` (or `ssl=false`) explicitly.
    pub tls: bool,
    /// `tlsCAFile` from the URI, if any.
    pub ca_file: Option<PathBuf>,
}

fn uri_error(msg: impl Into<String>) -> Error {
    Error::new(ResultCode::DatabaseUriInvalid, msg)
}

impl DatabaseUri {
    /// Parses `mongodb://host[:port][/db][?options]`. Credentials in the URI, several hosts
    /// and `mongodb+srv://` are refused: the library authenticates with IAM itself and
    /// connects to one endpoint (a DocumentDB cluster endpoint).
    pub fn parse(uri: &str) -> Result<Self> {
        let rest = uri.strip_prefix("mongodb://").ok_or_else(|| {
            uri_error(format!(
                "the database URI must start with mongodb:// (got {:?}); mongodb+srv:// is not supported",
                uri.split("://").next().unwrap_or("")
            ))
        })?;
        let (authority, tail) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(uri_error(
                "the database URI must not contain credentials: the library authenticates as the db user with MONGODB-AWS",
            ));
        }
        if authority.contains(',') {
            return Err(uri_error(
                "the database URI names several hosts; give the one cluster endpoint",
            ));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| uri_error("unterminated [IPv6] host in the database URI"))?;
            (h, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(uri_error("the database URI has no host"));
        }
        let port = match port {
            None => 27017,
            Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
                uri_error(format!("the database URI's port {p:?} is not 1-65535"))
            })?,
        };
        let mut out = DatabaseUri {
            host: host.to_string(),
            port,
            tls: true,
            ca_file: None,
        };
        if let Some((_, query)) = tail.split_once('?') {
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                let value = percent_decode(value);
                match key.to_ascii_lowercase().as_str() {
                    "tls" | "ssl" => {
                        out.tls = match value.as_str() {
                            "true" => true,
                            "false" => false,
                            v => {
                                return Err(uri_error(format!(
                                    "{key}={v} is neither true nor false"
                                )))
                            }
                        }
                    }
                    "tlscafile" | "sslcafile" => out.ca_file = Some(PathBuf::from(value)),
                    "tlsinsecure" | "tlsallowinvalidcertificates" | "tlsallowinvalidhostnames"
                        if value == "true" =>
                    {
                        return Err(uri_error(format!(
                            "{key}=true is refused: the database's certificate is always verified"
                        )))
                    }
                    _ => {} // options for drivers (replicaSet, retryWrites, …) do not apply here
                }
            }
        }
        Ok(out)
    }

    /// `host:port` as operators write it.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

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

/// What [`connect`] needs.
#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    pub uri: DatabaseUri,
    /// The CA bundle (PEM, one or many certificates) that verifies the database; overrides
    /// the URI's `tlsCAFile`.
    pub ca_file: Option<PathBuf>,
    pub db_user: String,
    pub connect_timeout: Duration,
    /// Limit for TLS + hello + authentication, after the TCP connect.
    pub handshake_timeout: Duration,
}

/// Connects, verifies TLS, says hello and authenticates as `db_user` with MONGODB-AWS.
pub async fn connect(
    config: &UpstreamConfig,
    credentials: &dyn CredentialSource,
) -> Result<Upstream> {
    let address = config.uri.address();
    let tls = if config.uri.tls {
        let ca = config
            .ca_file
            .as_deref()
            .or(config.uri.ca_file.as_deref())
            .ok_or_else(|| {
                Error::new(
                    ResultCode::CaBundleInvalid,
                    format!("no CA bundle is configured for {address}: set ca_file (for Amazon DocumentDB, the RDS global-bundle.pem from https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem)"),
                )
            })?;
        Some((tls_config(ca)?, ca.to_path_buf()))
    } else {
        None
    };
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
    let _ = tcp.set_nodelay(true);
    let handshake = async {
        let stream = match tls {
            None => UpstreamStream::Plain(tcp),
            Some((tls_config, ca)) => {
                let name = ServerName::try_from(config.uri.host.clone()).map_err(|_| {
                    uri_error(format!(
                        "{:?} is not a valid host name for TLS",
                        config.uri.host
                    ))
                })?;
                let connector = tokio_rustls::TlsConnector::from(tls_config);
                let stream = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| tls_error(&address, &ca, e))?;
                UpstreamStream::Tls(Box::new(stream))
            }
        };
        let mut stream = FrameReader::new(stream, 16 * 1024);
        let max_message_size = hello(&mut stream, &address).await?;
        authenticate(&mut stream, &address, &config.db_user, credentials).await?;
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

/// TLS client configurations by CA bundle path: parsing the ~100 certificates of
/// global-bundle.pem once, not per session.
type TlsConfigCache = HashMap<PathBuf, (std::time::SystemTime, Arc<rustls::ClientConfig>)>;
static TLS_CONFIGS: Lazy<Mutex<TlsConfigCache>> = Lazy::new(|| Mutex::new(HashMap::new()));

fn tls_config(ca_file: &Path) -> Result<Arc<rustls::ClientConfig>> {
    let bundle_error = |what: String| {
        Error::new(
            ResultCode::CaBundleInvalid,
            format!("CA bundle {}: {what}", ca_file.display()),
        )
    };
    let modified = std::fs::metadata(ca_file)
        .and_then(|m| m.modified())
        .map_err(|e| bundle_error(format!("cannot be read: {e}")))?;
    let mut cache = TLS_CONFIGS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((when, config)) = cache.get(ca_file) {
        if *when == modified {
            return Ok(config.clone());
        }
    }
    let mut roots = rustls::RootCertStore::empty();
    let mut count = 0usize;
    for cert in CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| bundle_error(format!("cannot be read: {e}")))?
    {
        let cert = cert.map_err(|e| bundle_error(format!("is not valid PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| bundle_error(format!("holds a certificate rustls cannot use: {e}")))?;
        count += 1;
    }
    if count == 0 {
        return Err(bundle_error("holds no PEM certificate".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| bundle_error(format!("cannot verify servers: {e}")))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bundle_error(format!("no TLS version available: {e}")))?
        .dangerous() // only to wrap webpki's verifier and name the legacy-CN case; it still decides
        .with_custom_certificate_verifier(Arc::new(LegacyCnAware { webpki }))
        .with_no_client_auth();
    let config = Arc::new(config);
    cache.insert(ca_file.to_path_buf(), (modified, config.clone()));
    Ok(config)
}

/// webpki's verifier, unchanged in every decision; when it refuses a certificate for the
/// host name and that certificate has no subjectAltName extension at all, the error says so
/// (the DocumentDB/RDS certificates issued before July 2020 name the host only in the CN).
#[derive(Debug)]
struct LegacyCnAware {
    webpki: Arc<WebPkiServerVerifier>,
}

#[derive(Debug)]
struct NoSubjectAltName;

impl std::fmt::Display for NoSubjectAltName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("certificate relies on legacy Common Name field, use SANs instead")
    }
}

impl std::error::Error for NoSubjectAltName {}

/// DER of the subjectAltName extension's OID, 2.5.29.17.
const SAN_OID_DER: [u8; 5] = [0x06, 0x03, 0x55, 0x1d, 0x11];

fn has_subject_alt_name(cert: &[u8]) -> bool {
    cert.windows(SAN_OID_DER.len()).any(|w| w == SAN_OID_DER)
}

impl ServerCertVerifier for LegacyCnAware {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        self.webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|e| match e {
                rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                ) if !has_subject_alt_name(end_entity) => rustls::Error::InvalidCertificate(
                    CertificateError::Other(rustls::OtherError(Arc::new(NoSubjectAltName))),
                ),
                other => other,
            })
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

fn tls_error(address: &str, ca: &Path, e: std::io::Error) -> Error {
    let rustls_error = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .cloned();
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(CertificateError::Other(other)))
            if other.0.downcast_ref::<NoSubjectAltName>().is_some() =>
        {
            Error::new(
                ResultCode::TlsLegacyCommonName,
                format!(
                    "TLS to the database at {address} failed: x509: certificate relies on legacy Common Name field, use SANs instead. The database presents a certificate without subjectAltName (RDS/DocumentDB clusters created before July 28, 2020 do): rotate the cluster's SSL/TLS certificate to a current CA (e.g. rds-ca-rsa2048-g1) as AWS documents, then reboot the instances"
                ),
            )
        }
        Some(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        )) => Error::new(
            ResultCode::TlsUnknownCa,
            format!(
                "TLS to the database at {address} failed: its certificate was not issued by a CA in the bundle {} — for Amazon DocumentDB use the RDS global-bundle.pem (https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem); otherwise add the database's CA to that file",
                ca.display()
            ),
        ),
        Some(rustls::Error::InvalidCertificate(cert_error)) => Error::new(
            ResultCode::TlsHandshakeFailed,
            format!("TLS to the database at {address} failed: its certificate was refused: {cert_error:?}; check the host name in the database URI (it must be a name the certificate carries) and the certificate's validity dates"),
        ),
        Some(other) => Error::new(
            ResultCode::TlsHandshakeFailed,
            format!("TLS to the database at {address} failed: {other}"),
        ),
        None if matches!(
            e.kind(),
            std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::BrokenPipe
        ) =>
        {
            Error::new(
                ResultCode::UpstreamClosed,
                format!("the database at {address} closed the connection during the TLS handshake ({e}); check that TLS is enabled on that port and that it is the database's port"),
            )
        }
        None => Error::new(
            ResultCode::TlsHandshakeFailed,
            format!("TLS to the database at {address} failed: {e}"),
        ),
    }
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
    db_user: &str,
    credentials: &dyn CredentialSource,
) -> Result<()> {
    let credentials = credentials.credentials(db_user).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_parse_as_docdb_writes_them() {
        let u = DatabaseUri::parse("mongodb://docdb.cluster-abc.us-east-1.docdb.amazonaws.com:27017/?tls=true&tlsCAFile=%2Ftmp%2Fglobal-bundle.pem&retryWrites=false").unwrap();
        assert_eq!(u.host, "docdb.cluster-abc.us-east-1.docdb.amazonaws.com");
        assert_eq!(u.port, 27017);
        assert!(u.tls);
        assert_eq!(
            u.ca_file.as_deref(),
            Some(Path::new("/tmp/global-bundle.pem"))
        );
        let u = DatabaseUri::parse("mongodb://127.0.0.1:5000/test?tls=false").unwrap();
        assert!(!u.tls);
        assert_eq!(u.address(), "127.0.0.1:5000");
        let u = DatabaseUri::parse("mongodb://[::1]:5000").unwrap();
        assert_eq!(u.address(), "[::1]:5000");
        assert_eq!(DatabaseUri::parse("mongodb://h").unwrap().port, 27017);
        for bad in [
            "mongodb+srv://h",
            "mongodb://u:p@h",
            "mongodb://a,b",
            "mongodb://h:0",
            "mongodb://h:x",
            "mongodb://",
            "mongodb://h/?tlsInsecure=true",
            "mongodb://h/?tls=maybe",
        ] {
            assert_eq!(
                DatabaseUri::parse(bad).unwrap_err().code(),
                ResultCode::DatabaseUriInvalid,
                "{bad}"
            );
        }
    }

    #[test]
    fn the_san_oid_is_found_in_der() {
        assert!(has_subject_alt_name(&[
            1, 2, 0x06, 0x03, 0x55, 0x1d, 0x11, 9
        ]));
        assert!(!has_subject_alt_name(&[0x06, 0x03, 0x55, 0x1d, 0x0f]));
    }
}
