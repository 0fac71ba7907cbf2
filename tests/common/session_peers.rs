//! Test peers for the session tests: an in-process MongoDB-like OP_MSG server (plain TCP or
//! rustls with rcgen-generated certificates) doing the server side of MONGODB-AWS
//! structurally, and a blocking wire client.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bson::{doc, spec::BinarySubtype, Binary, Bson, Document};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub const OP_MSG: i32 = 2013;
pub const OP_QUERY: i32 = 2004;
pub const OP_REPLY: i32 = 1;

pub const TEST_AKID: &str = "AKIDSESSIONTEST";
pub const TEST_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYSESSIONKEY";

// ---------------------------------------------------------------- encoding

pub fn op_msg(request_id: i32, doc: &Document) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&request_id.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&OP_MSG.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.push(0);
    doc.to_writer(&mut out).unwrap();
    let len = out.len() as i32;
    out[0..4].copy_from_slice(&len.to_le_bytes());
    out
}

pub fn op_msg_reply(request_id: i32, response_to: i32, doc: &Document) -> Vec<u8> {
    let mut out = op_msg(request_id, doc);
    out[8..12].copy_from_slice(&response_to.to_le_bytes());
    out
}

pub fn op_query(request_id: i32, namespace: &str, doc: &Document) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&request_id.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&OP_QUERY.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(namespace.as_bytes());
    out.push(0);
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&(-1i32).to_le_bytes());
    doc.to_writer(&mut out).unwrap();
    let len = out.len() as i32;
    out[0..4].copy_from_slice(&len.to_le_bytes());
    out
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub request_id: i32,
    pub response_to: i32,
    pub op_code: i32,
    pub doc: Document,
}

pub fn parse_reply(frame: &[u8]) -> Reply {
    let word = |i: usize| i32::from_le_bytes(frame[i..i + 4].try_into().unwrap());
    let op_code = word(12);
    let doc = match op_code {
        OP_MSG => Document::from_reader(&frame[21..]).unwrap(),
        OP_REPLY => Document::from_reader(&frame[36..]).unwrap(),
        other => panic!("unexpected reply opcode {other}"),
    };
    Reply {
        request_id: word(4),
        response_to: word(8),
        op_code,
        doc,
    }
}

/// The query document of a client OP_QUERY.
fn query_doc(frame: &[u8]) -> Option<Document> {
    let rest = frame.get(20..)?;
    let nul = rest.iter().position(|b| *b == 0)?;
    Document::from_reader(rest.get(nul + 9..)?).ok()
}

pub fn op_reply(request_id: i32, response_to: i32, doc: &Document) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&request_id.to_le_bytes());
    out.extend_from_slice(&response_to.to_le_bytes());
    out.extend_from_slice(&OP_REPLY.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0i64.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&1i32.to_le_bytes());
    doc.to_writer(&mut out).unwrap();
    let len = out.len() as i32;
    out[0..4].copy_from_slice(&len.to_le_bytes());
    out
}

/// The body document of a client OP_MSG (single body section, no checksum).
fn msg_body(frame: &[u8]) -> Option<Document> {
    if frame.len() < 21 || frame[20] != 0 {
        return None;
    }
    Document::from_reader(&frame[21..]).ok()
}

// ---------------------------------------------------------------- blocking client

pub struct Client {
    pub stream: TcpStream,
    next_id: i32,
}

impl Client {
    pub fn new(stream: TcpStream) -> Self {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Client {
            stream,
            next_id: 100,
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads one whole reply frame; `None` when the connection is closed.
    pub fn read_frame(&mut self) -> Option<Vec<u8>> {
        let mut head = [0u8; 16];
        if self.stream.read_exact(&mut head).is_err() {
            return None;
        }
        let len = i32::from_le_bytes(head[0..4].try_into().unwrap()) as usize;
        let mut frame = head.to_vec();
        frame.resize(len, 0);
        self.stream.read_exact(&mut frame[16..]).ok()?;
        Some(frame)
    }

    pub fn command(&mut self, doc: Document) -> (i32, Reply) {
        self.next_id += 1;
        let id = self.next_id;
        self.send_raw(&op_msg(id, &doc));
        let frame = self
            .read_frame()
            .expect("connection closed before the reply");
        (id, parse_reply(&frame))
    }

    /// True when the peer has closed (read returns 0 or an error other than a timeout).
    pub fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    }
}

// ---------------------------------------------------------------- PKI

pub struct Pki {
    pub dir: PathBuf,
    pub ca_file: PathBuf,
    pub ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

pub struct ServerCert {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!(
            "docauth-session-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("docauth test CA {name}"));
        let ca = params.self_signed(&ca_key).unwrap();
        let ca_file = dir.join("bundle.pem");
        // A bundle of several certificates, like DocumentDB's global-bundle.pem.
        let other = Pki::other_ca_pem();
        std::fs::write(&ca_file, format!("{other}{}", ca.pem())).unwrap();
        Pki {
            dir,
            ca_file,
            ca,
            ca_key,
        }
    }

    fn other_ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "unrelated CA in the bundle");
        params.self_signed(&key).unwrap().pem()
    }

    /// A server certificate with the subjectAltNames `sans`, expired since 2021 when
    /// `expired` (otherwise rcgen's default validity, which covers today).
    pub fn server_cert_for(&self, sans: &[&str], expired: bool) -> ServerCert {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        ServerCert {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    }

    /// A server certificate for `localhost`: with SANs, or (legacy) with the CN only.
    pub fn server_cert(&self, with_sans: bool) -> ServerCert {
        let key = rcgen::KeyPair::generate().unwrap();
        let sans = if with_sans {
            vec!["localhost".to_string(), "127.0.0.1".to_string()]
        } else {
            vec![]
        };
        let mut params = rcgen::CertificateParams::new(sans).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        ServerCert {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------- server

/// How the test server behaves.
#[derive(Clone, Default)]
pub struct ServerOptions {
    /// Refuse the MONGODB-AWS saslContinue (as DocumentDB does for an unknown $external user).
    pub refuse_auth: bool,
    /// Answer data commands without authentication (for the plain byte-relay baseline).
    pub no_auth_required: bool,
    /// Accept a signature made with any access key id (temporary credentials from STS),
    /// not only TEST_AKID.
    pub any_access_key: bool,
    /// Do not keep the commands received (load tests: memory must stay flat).
    pub forget_commands: bool,
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// What the server saw.
#[derive(Default)]
pub struct Seen {
    /// Every command document received, in order, per connection.
    pub commands: Mutex<Vec<Document>>,
    /// Client-final documents received in saslContinue.
    pub client_finals: Mutex<Vec<Document>>,
    pub authenticated: AtomicBool,
    /// Connections accepted and not yet closed (by either side).
    pub open_connections: AtomicUsize,
}

impl Seen {
    /// Waits (up to 10 s) until every connection to the server is closed; false if one
    /// stays open.
    pub fn all_connections_closed(&self) -> bool {
        for _ in 0..1000 {
            if self.open_connections.load(Ordering::SeqCst) == 0 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    pub fn command_names(&self) -> Vec<String> {
        self.commands
            .lock()
            .unwrap()
            .iter()
            .filter_map(|d| d.keys().next().cloned())
            .collect()
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    pub fn start(options: ServerOptions) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                while !stop2.load(Ordering::SeqCst) {
                    let accepted =
                        tokio::time::timeout(Duration::from_millis(50), listener.accept()).await;
                    let Ok(Ok((tcp, _))) = accepted else { continue };
                    let seen = seen2.clone();
                    let options = options.clone();
                    seen.open_connections.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(async move {
                        let open = seen.clone();
                        match options.tls.clone() {
                            None => serve(tcp, seen, options).await,
                            Some(cfg) => {
                                let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
                                if let Ok(tls) = acceptor.accept(tcp).await {
                                    serve(tls, seen, options).await
                                }
                            }
                        }
                        open.open_connections.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            });
        });
        TestServer {
            addr,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    pub fn tls_config(cert: ServerCert) -> Arc<rustls::ServerConfig> {
        Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(cert.chain, cert.key)
            .unwrap(),
        )
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    seen: Arc<Seen>,
    options: ServerOptions,
) {
    let mut authenticated = false;
    // mongod finalizes a connection's client metadata at its first hello, with or without a
    // `client` document (`ClientMetadata::tryFinalize`, src/mongo/db/repl/replication_info.cpp).
    let mut said_hello = false;
    let mut nonce: Vec<u8> = Vec::new();
    let mut next_id = 1;
    let mut stray_reply: Option<Vec<u8>> = None;
    loop {
        let mut head = [0u8; 16];
        if s.read_exact(&mut head).await.is_err() {
            return;
        }
        let len = i32::from_le_bytes(head[0..4].try_into().unwrap()) as usize;
        let request_id = i32::from_le_bytes(head[4..8].try_into().unwrap());
        let op_code = i32::from_le_bytes(head[12..16].try_into().unwrap());
        if !(17..=48_000_000).contains(&len) {
            return;
        }
        let mut frame = head.to_vec();
        frame.resize(len, 0);
        if s.read_exact(&mut frame[16..]).await.is_err() {
            return;
        }
        let legacy = op_code == OP_QUERY;
        let cmd = match op_code {
            OP_MSG => msg_body(&frame),
            OP_QUERY => query_doc(&frame),
            _ => None,
        };
        let Some(cmd) = cmd else { return };
        if !options.forget_commands {
            seen.commands.lock().unwrap().push(cmd.clone());
        }
        let name = cmd.keys().next().cloned().unwrap_or_default();
        let handshake = matches!(name.as_str(), "hello" | "isMaster" | "ismaster");
        let metadata_again = handshake && said_hello && cmd.contains_key("client");
        said_hello |= handshake;
        let reply = match name.as_str() {
            // mongod 5.1+ runs only the handshake (and a few deprecated commands) over OP_QUERY
            // (checkAllowedOpQueryCommand, src/mongo/rpc/check_allowed_op_query_cmd.cpp).
            _ if legacy
                && !matches!(
                    name.as_str(),
                    "hello"
                        | "isMaster"
                        | "ismaster"
                        | "buildinfo"
                        | "buildInfo"
                        | "saslStart"
                        | "saslContinue"
                ) =>
            {
                doc! {"ok": 0.0, "code": 352, "codeName": "UnsupportedOpQueryCommand",
                "errmsg": format!("Unsupported OP_QUERY command: {name}. The client driver may require an upgrade.")}
            }
            _ if metadata_again => doc! {
                "ok": 0.0, "code": 186, "codeName": "ClientMetadataCannotBeMutated",
                "errmsg": "The client metadata document may only be sent in the first hello",
            },
            "hello" | "isMaster" | "ismaster" => doc! {
                "isWritablePrimary": true, "ismaster": true, "maxBsonObjectSize": 16_777_216,
                "maxMessageSizeBytes": 48_000_000, "maxWireVersion": 13, "minWireVersion": 0, "ok": 1.0,
            },
            "saslStart" => {
                let payload = match cmd.get("payload") {
                    Some(Bson::Binary(b)) => b.bytes.clone(),
                    _ => vec![],
                };
                let first = Document::from_reader(payload.as_slice()).unwrap_or_default();
                let r = match first.get("r") {
                    Some(Bson::Binary(b)) if b.bytes.len() == 32 => b.bytes.clone(),
                    _ => vec![],
                };
                if r.is_empty() || cmd.get_str("mechanism").ok() != Some("MONGODB-AWS") {
                    doc! {"ok": 0.0, "code": 18, "codeName": "AuthenticationFailed", "errmsg": "bad saslStart"}
                } else {
                    nonce = r.clone();
                    nonce.extend((0..32u8).map(|i| i.wrapping_mul(7)));
                    let server_first = doc! {
                        "s": Binary { subtype: BinarySubtype::Generic, bytes: nonce.clone() },
                        "h": "sts.amazonaws.com",
                    };
                    let mut bytes = Vec::new();
                    server_first.to_writer(&mut bytes).unwrap();
                    doc! {"conversationId": 1, "done": false, "payload": Binary { subtype: BinarySubtype::Generic, bytes }, "ok": 1.0}
                }
            }
            "saslContinue" => {
                let payload = match cmd.get("payload") {
                    Some(Bson::Binary(b)) => b.bytes.clone(),
                    _ => vec![],
                };
                let fin = Document::from_reader(payload.as_slice()).unwrap_or_default();
                seen.client_finals.lock().unwrap().push(fin.clone());
                let a = fin.get_str("a").unwrap_or("");
                let ok = !options.refuse_auth
                    && !nonce.is_empty()
                    && (a.starts_with(&format!("AWS4-HMAC-SHA256 Credential={TEST_AKID}/"))
                        || (options.any_access_key
                            && a.starts_with("AWS4-HMAC-SHA256 Credential=A")))
                    && a.contains("x-mongodb-server-nonce")
                    && fin.get_str("d").is_ok();
                if ok {
                    authenticated = true;
                    seen.authenticated.store(true, Ordering::SeqCst);
                    doc! {"conversationId": 1, "done": true, "payload": Binary { subtype: BinarySubtype::Generic, bytes: vec![] }, "ok": 1.0}
                } else {
                    doc! {"ok": 0.0, "code": 18, "codeName": "AuthenticationFailed", "errmsg": "Authentication failed."}
                }
            }
            _ if !authenticated && !options.no_auth_required => {
                doc! {"ok": 0.0, "code": 13, "codeName": "Unauthorized", "errmsg": format!("command {name} requires authentication")}
            }
            "ping" => doc! {"ok": 1.0},
            _ => doc! {"ok": 1.0, "echo": cmd.clone()},
        };
        next_id += 1;
        let bytes = if legacy {
            op_reply(next_id, request_id, &reply)
        } else if (authenticated || options.no_auth_required)
            && cmd.get_str("find") == Ok(BIG_REPLY_COLLECTION)
        {
            big_reply(next_id, request_id)
        } else {
            op_msg_reply(next_id, request_id, &reply)
        };
        let fault = authenticated.then(|| ReplyFault::named(&cmd)).flatten();
        // mongod sends no reply to an OP_MSG with moreToCome (the OP_MSG specification).
        let more_to_come = op_code == OP_MSG && frame.get(16..20).is_some_and(|f| f[0] & 2 != 0);
        if more_to_come {
            if fault == Some(ReplyFault::ReplyToMoreToCome) {
                // Sent just before the next reply, so that the client surely waits for one.
                stray_reply = Some(bytes);
            }
            continue;
        }
        if let Some(stray) = stray_reply.take() {
            if s.write_all(&stray).await.is_err() {
                return;
            }
        }
        let bytes = match fault {
            None | Some(ReplyFault::ReplyToMoreToCome) => bytes,
            Some(ReplyFault::CloseMidReply) => {
                let _ = s.write_all(&bytes[..bytes.len() / 2]).await;
                return;
            }
            Some(ReplyFault::WrongResponseTo) => op_msg_reply(next_id, request_id + 1000, &reply),
            Some(ReplyFault::Oversized) => {
                let mut huge = bytes.clone();
                huge[0..4].copy_from_slice(&60_000_000i32.to_le_bytes());
                huge
            }
            Some(ReplyFault::Malformed) => {
                let mut bad = bytes.clone();
                bad[20] = 9; // a section kind that does not exist
                bad
            }
        };
        if s.write_all(&bytes).await.is_err() {
            return;
        }
    }
}

/// The collection whose `find` the test server answers with a reply of about
/// [`BIG_REPLY_BYTES`] (one document holding a binary): the relay bench's 16 MB case.
pub const BIG_REPLY_COLLECTION: &str = "bench_big_reply";
pub const BIG_REPLY_BYTES: usize = 16_000_000;

/// The big reply, encoded once and copied per request with its ids patched, so that the
/// server's cost per reply is a copy rather than a BSON encoding.
fn big_reply(request_id: i32, response_to: i32) -> Vec<u8> {
    static ENCODED: OnceLock<Vec<u8>> = OnceLock::new();
    let mut bytes = ENCODED
        .get_or_init(|| {
            let blob = Binary {
                subtype: BinarySubtype::Generic,
                bytes: vec![0x5a; BIG_REPLY_BYTES - 200],
            };
            let batch = vec![Bson::Document(doc! {"_id": 1, "blob": blob})];
            op_msg_reply(0, 0, &doc! {
                "cursor": {"firstBatch": batch, "id": 0i64, "ns": format!("test.{BIG_REPLY_COLLECTION}")},
                "ok": 1.0,
            })
        })
        .clone();
    bytes[4..8].copy_from_slice(&request_id.to_le_bytes());
    bytes[8..12].copy_from_slice(&response_to.to_le_bytes());
    bytes
}

/// How the test server misbehaves for one command, chosen by the collection it names
/// (`{find: "fault_close_mid_reply"}`, `{insert: "fault_reply_to_more_to_come"}`, ...), once
/// the connection is authenticated; every other command is served normally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyFault {
    /// Half of the reply, then the connection closes.
    CloseMidReply,
    /// The reply's `responseTo` names a request that was never sent.
    WrongResponseTo,
    /// The reply's header claims 60,000,000 bytes (over `maxMessageSizeBytes`).
    Oversized,
    /// The reply's first section has kind 9 (only 0 and 1 exist).
    Malformed,
    /// A reply is sent to a `moreToCome` message (mongod sends none), just before the reply
    /// to the next command.
    ReplyToMoreToCome,
}

impl ReplyFault {
    pub const ALL: [ReplyFault; 5] = [
        ReplyFault::CloseMidReply,
        ReplyFault::WrongResponseTo,
        ReplyFault::Oversized,
        ReplyFault::Malformed,
        ReplyFault::ReplyToMoreToCome,
    ];

    /// The collection that triggers it.
    pub fn collection(self) -> &'static str {
        match self {
            ReplyFault::CloseMidReply => "fault_close_mid_reply",
            ReplyFault::WrongResponseTo => "fault_wrong_response_to",
            ReplyFault::Oversized => "fault_oversized",
            ReplyFault::Malformed => "fault_malformed",
            ReplyFault::ReplyToMoreToCome => "fault_reply_to_more_to_come",
        }
    }

    fn named(cmd: &Document) -> Option<ReplyFault> {
        let collection = cmd
            .get_str("find")
            .or_else(|_| cmd.get_str("insert"))
            .ok()?;
        Self::ALL.into_iter().find(|f| f.collection() == collection)
    }
}

// ---------------------------------------------------------------- audit collector

#[derive(Default)]
pub struct Collected {
    pub events: Mutex<Vec<serde_json::Value>>,
    pub raw: Mutex<Vec<String>>,
}

impl docauth::session::AuditCallback for Collected {
    fn event(&self, json: &str) {
        self.raw.lock().unwrap().push(json.to_string());
        self.events
            .lock()
            .unwrap()
            .push(serde_json::from_str(json).unwrap());
    }
}

impl Collected {
    pub fn of_kind(&self, kind: &str) -> Vec<serde_json::Value> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["event"] == kind)
            .cloned()
            .collect()
    }

    /// Waits (up to 10 s) until an event of `kind` has arrived.
    pub fn wait_for(&self, kind: &str) -> serde_json::Value {
        for _ in 0..1000 {
            if let Some(e) = self.of_kind(kind).pop() {
                return e;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no {kind} event arrived");
    }
}

// ---------------------------------------------------------------- session helpers

/// A connected (client, proxy side) pair of loopback sockets.
pub fn socket_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (proxy_side, _) = listener.accept().unwrap();
    (client, proxy_side)
}

pub fn tokio_stream(runtime: &docauth::session::Runtime, s: TcpStream) -> tokio::net::TcpStream {
    s.set_nonblocking(true).unwrap();
    s.set_nodelay(true).unwrap();
    let _enter = runtime.handle().enter();
    tokio::net::TcpStream::from_std(s).unwrap()
}

/// The database name the session tests use in the engine configuration.
pub const TEST_DATABASE: &str = "my-docdb";

/// An engine configuration: role `docdb-access` allows every db user on `my-docdb` and the
/// logical databases `allow` (`*` = all), plus `extra` YAML appended to the role list
/// (more roles); the configured identity `alice` holds `docdb-access`.
pub fn engine_config(allow: &[&str], extra_roles: &str) -> String {
    let names: Vec<String> = allow.iter().map(|n| format!("'{n}'")).collect();
    format!(
        "roles:\n  - {{kind: role, version: v7, metadata: {{name: docdb-access}}, spec: {{allow: {{db_labels: {{'*': '*'}}, db_users: ['*'], db_names: [{}]}}}}}}\n{extra_roles}databases:\n  - {{name: {TEST_DATABASE}, labels: {{env: test}}, aws: {{account_id: '123456789012', region: us-east-1}}}}\nidentities:\n  - {{user: alice, roles: [docdb-access]}}\n",
        names.join(", ")
    )
}

/// A policy engine whose role allows the logical databases `allow` (`*` = all).
pub fn engine(allow: &[&str]) -> Arc<docauth::policy::PolicyEngine> {
    Arc::new(
        docauth::policy::PolicyEngine::from_config_str(
            "session-test.yaml",
            &engine_config(allow, ""),
            None,
        )
        .unwrap(),
    )
}

pub fn params(uri: &str, ca_file: Option<&std::path::Path>) -> docauth::session::SessionParams {
    let mut v = serde_json::json!({
        "identity": {"user": "alice", "roles": ["docdb-access"]},
        "database": TEST_DATABASE,
        "database_uri": uri,
        "db_user": "teleport-docdb-user",
        "db_name": "test",
        "connect_timeout_ms": 2000,
        "handshake_timeout_ms": 5000,
        "message_timeout_ms": 3000,
    });
    if let Some(ca) = ca_file {
        v["ca_file"] = serde_json::json!(ca.to_str().unwrap());
    }
    docauth::session::SessionParams::from_json(&v.to_string()).unwrap()
}

pub fn static_credentials() -> Arc<docauth::session::StaticCredentials> {
    Arc::new(docauth::session::StaticCredentials(
        docauth::aws::Credentials::new(TEST_AKID, TEST_SECRET, None).unwrap(),
    ))
}

/// Starts a session judged by `engine`, on one end of a fresh socket pair; returns a client
/// on the other end.
pub fn start_session_with(
    runtime: &docauth::session::Runtime,
    p: docauth::session::SessionParams,
    engine: Arc<docauth::policy::PolicyEngine>,
    audit: Arc<Collected>,
) -> (Client, docauth::session::Session) {
    let (client, proxy_side) = socket_pair();
    let session = docauth::session::Session::start(
        runtime,
        tokio_stream(runtime, proxy_side),
        p,
        engine,
        static_credentials(),
        Some(audit),
    )
    .unwrap();
    (Client::new(client), session)
}

/// Starts a session whose role allows the logical databases `allow`, on one end of a fresh
/// socket pair; returns a client on the other end.
pub fn start_session(
    runtime: &docauth::session::Runtime,
    uri: &str,
    ca: Option<&std::path::Path>,
    allow: &[&str],
    audit: Arc<Collected>,
) -> (Client, docauth::session::Session) {
    start_session_with(runtime, params(uri, ca), engine(allow), audit)
}

/// For a session left running beside faulty ones: it still relays, it ends when asked, and
/// then nothing is left open (no connection to `server`, no session on `runtime`): the
/// faulty sessions closed both their connections.
pub fn assert_undisturbed_then_nothing_left_open(
    runtime: &docauth::session::Runtime,
    server: &TestServer,
    client: &mut Client,
    session: docauth::session::Session,
) {
    let (_, reply) = client.command(doc! {"find": "c", "$db": "test"});
    assert_eq!(reply.doc.get_f64("ok").unwrap(), 1.0);
    session.shutdown();
    session.wait().unwrap();
    assert!(server.seen.all_connections_closed());
    assert_eq!(runtime.running_sessions(), 0);
}
