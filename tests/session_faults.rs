//! Failures that must say what to fix (TLS legacy CN, unknown CA, expired certificate,
//! certificate for another host, black-holed port, server closing mid-handshake, STS
//! answering 500, Throttling, garbage or nothing), malformed client traffic (error reply or
//! close, never a panic, never a forwarded message, never a hang of other sessions) and a
//! misbehaving database (closing mid-reply, a wrong `responseTo`, an oversized or malformed
//! reply, a reply to a `moreToCome` message: the waiting client gets the explanation, the
//! audit too, both connections close and other sessions go on).

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::doc;
use common::*;
use docauth::session::{Runtime, Session, SessionParams};
use docauth::ResultCode;

fn start(runtime: &Runtime, p: SessionParams, audit: Arc<Collected>) -> (Client, Session) {
    let (client, proxy_side) = socket_pair();
    let session = Session::start(
        runtime,
        tokio_stream(runtime, proxy_side),
        p,
        engine(&["test"]),
        static_credentials(),
        Some(audit),
    )
    .unwrap();
    (Client::new(client), session)
}

fn tls_failure(with_sans: bool, trusted: bool) -> docauth::Error {
    let pki = Pki::new("fault");
    let other = Pki::new("other");
    let cert = if trusted {
        pki.server_cert(with_sans)
    } else {
        other.server_cert(with_sans)
    };
    tls_failure_with(&pki, cert)
}

/// The error of a session towards a TLS server presenting `cert`, the database URI naming
/// `localhost` and `pki`'s CA trusted; checks the client's error reply and the audit.
fn tls_failure_with(pki: &Pki, cert: ServerCert) -> docauth::Error {
    let server = TestServer::start(ServerOptions {
        tls: Some(TestServer::tls_config(cert)),
        ..Default::default()
    });
    let runtime = Runtime::new(1).unwrap();
    let audit = Arc::new(Collected::default());
    let uri = format!("mongodb://localhost:{}/?tls=true", server.addr.port());
    let (mut client, session) = start(&runtime, params(&uri, Some(&pki.ca_file)), audit.clone());
    // The waiting client's hello gets the explanation as a MongoDB error.
    let (id, reply) = client.command(doc! {"hello": 1, "$db": "admin"});
    assert_eq!(reply.response_to, id);
    assert_eq!(reply.doc.get_f64("ok").unwrap(), 0.0);
    assert!(reply
        .doc
        .get_str("errmsg")
        .unwrap()
        .starts_with("libdocauth: TLS"));
    let e = session.wait().unwrap_err();
    let start = audit.wait_for("db.session.start");
    assert_eq!(start["success"], false);
    assert_eq!(start["error_code"], e.code().name());
    assert!(!server
        .seen
        .authenticated
        .load(std::sync::atomic::Ordering::SeqCst));
    e
}

#[test]
fn a_certificate_without_sans_gets_the_legacy_common_name_explanation() {
    let e = tls_failure(false, true);
    assert_eq!(e.code(), ResultCode::TlsLegacyCommonName);
    assert!(
        e.message()
            .contains("certificate relies on legacy Common Name field, use SANs instead"),
        "{}",
        e.message()
    );
    assert!(e.message().contains("rotate"), "{}", e.message());
}

#[test]
fn an_unknown_ca_names_the_bundle() {
    let e = tls_failure(true, false);
    assert_eq!(e.code(), ResultCode::TlsUnknownCa);
    assert!(e.message().contains("bundle.pem"), "{}", e.message());
    assert!(e.message().contains("global-bundle.pem"), "{}", e.message());
}

#[test]
fn an_expired_certificate_says_so_and_how_to_rotate_it() {
    let pki = Pki::new("expired");
    let e = tls_failure_with(&pki, pki.server_cert_for(&["localhost"], true));
    assert_eq!(e.code(), ResultCode::TlsHandshakeFailed);
    assert!(
        e.message().contains("certificate expired"),
        "{}",
        e.message()
    );
    assert!(e.message().contains("validity dates"), "{}", e.message());
    assert!(e.message().contains("rds-ca-rsa2048-g1"), "{}", e.message());
}

#[test]
fn a_certificate_for_another_host_names_both_hosts() {
    let pki = Pki::new("otherhost");
    let e = tls_failure_with(&pki, pki.server_cert_for(&["docdb.example.com"], false));
    assert_eq!(e.code(), ResultCode::TlsHandshakeFailed);
    assert!(
        e.message().contains("not valid for name \"localhost\""),
        "{}",
        e.message()
    );
    assert!(e.message().contains("docdb.example.com"), "{}", e.message());
    assert!(
        e.message()
            .contains("must be a name the certificate carries"),
        "{}",
        e.message()
    );
}

#[test]
fn a_server_closing_during_the_tls_handshake_is_named() {
    // A listener that accepts and closes at once.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let closer = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        drop(s);
    });
    let pki = Pki::new("closer");
    let runtime = Runtime::new(1).unwrap();
    let audit = Arc::new(Collected::default());
    let uri = format!("mongodb://localhost:{port}/?tls=true");
    let (_client, session) = start(&runtime, params(&uri, Some(&pki.ca_file)), audit);
    let e = session.wait().unwrap_err();
    closer.join().unwrap();
    assert_eq!(e.code(), ResultCode::UpstreamClosed, "{e:?}");
    assert!(
        e.message().contains("during the TLS handshake"),
        "{}",
        e.message()
    );
}

/// A loopback listener whose accept queue is full: further SYNs are dropped, so a connect
/// hangs exactly like a black-holed port (security group dropping packets).
fn black_hole() -> (i32, u16, Vec<std::net::TcpStream>) {
    // SAFETY: plain socket syscalls on a descriptor we own; closed by the caller.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        addr.sin_port = 0;
        assert_eq!(
            libc::bind(
                fd,
                (&addr as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as u32
            ),
            0
        );
        assert_eq!(libc::listen(fd, 0), 0);
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        libc::getsockname(fd, (&mut addr as *mut libc::sockaddr_in).cast(), &mut len);
        let port = u16::from_be(addr.sin_port);
        let target: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        let mut fillers = Vec::new();
        for _ in 0..16 {
            match std::net::TcpStream::connect_timeout(&target, Duration::from_millis(300)) {
                Ok(s) => fillers.push(s),
                Err(_) => return (fd, port, fillers), // the queue is full
            }
        }
        panic!("could not fill the accept queue of a backlog-0 listener");
    }
}

#[test]
fn a_black_holed_port_fails_with_the_timeout_explanation_within_the_timeout() {
    let (fd, port, _fillers) = black_hole();
    let runtime = Runtime::new(1).unwrap();
    let audit = Arc::new(Collected::default());
    let mut p = params(&format!("mongodb://127.0.0.1:{port}/?tls=false"), None);
    p.connect_timeout_ms = 700;
    let started = Instant::now();
    let (_client, session) = start(&runtime, p, audit);
    let e = session.wait().unwrap_err();
    let elapsed = started.elapsed();
    // SAFETY: closing the listener we opened.
    unsafe { libc::close(fd) };
    assert_eq!(e.code(), ResultCode::ConnectTimeout, "{e:?}");
    assert!(
        e.message().contains(&format!("127.0.0.1:{port}")),
        "{}",
        e.message()
    );
    assert!(e.message().contains("security group"), "{}", e.message());
    assert!(elapsed >= Duration::from_millis(700), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(700 + 5_000), "{elapsed:?}");
}

fn relay_session(runtime: &Runtime, server: &TestServer) -> (Client, Session, Arc<Collected>) {
    let audit = Arc::new(Collected::default());
    let mut p = params(
        &format!("mongodb://127.0.0.1:{}/?tls=false", server.addr.port()),
        None,
    );
    p.message_timeout_ms = 1_500;
    let (mut client, session) = start(runtime, p, audit.clone());
    let (_, reply) = client.command(doc! {"ping": 1, "$db": "admin"});
    assert_eq!(reply.doc.get_f64("ok").unwrap(), 1.0);
    (client, session, audit)
}

fn header(len: i32, request_id: i32, op_code: i32) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&len.to_le_bytes());
    h.extend_from_slice(&request_id.to_le_bytes());
    h.extend_from_slice(&0i32.to_le_bytes());
    h.extend_from_slice(&op_code.to_le_bytes());
    h
}

#[test]
fn malformed_client_traffic_gets_an_error_or_a_close_and_other_sessions_go_on() {
    let server = TestServer::start(ServerOptions::default());
    let runtime = Runtime::new(2).unwrap();
    // A well-behaved session running beside the bad ones the whole time.
    let (mut good, good_session, _) = relay_session(&runtime, &server);
    let forwarded_before = || server.seen.command_names().len();

    // 1. A length smaller than a header: an error reply answering it, then close.
    let (mut c, s, audit) = relay_session(&runtime, &server);
    let n = forwarded_before();
    c.send_raw(&header(5, 9, 2013));
    let reply = parse_reply(&c.read_frame().unwrap());
    assert_eq!(reply.response_to, 9);
    assert_eq!(reply.doc.get_i32("code").unwrap(), 9);
    assert!(c.read_frame().is_none());
    assert_eq!(s.wait().unwrap_err().code(), ResultCode::ClientProtocol);
    assert_eq!(audit.wait_for("db.session.query.failed")["allowed"], false);
    assert_eq!(forwarded_before(), n);

    // 2. A 100 MB length claim: an error reply answering it, then close.
    let (mut c, s, _) = relay_session(&runtime, &server);
    c.send_raw(&header(100_000_000, 77, 2013));
    let reply = parse_reply(&c.read_frame().unwrap());
    assert_eq!(reply.response_to, 77);
    assert_eq!(reply.doc.get_i32("code").unwrap(), 10334);
    assert!(c.read_frame().is_none());
    assert_eq!(s.wait().unwrap_err().code(), ResultCode::ClientProtocol);

    // 3. Invalid BSON in a well-framed OP_MSG: FailedToParse, and the session goes on.
    let (mut c, s, _) = relay_session(&runtime, &server);
    let n = forwarded_before();
    let mut bad = op_msg(88, &doc! {"find": "c", "$db": "test"});
    bad[21..25].copy_from_slice(&1000i32.to_le_bytes()); // document length beyond the frame
    c.send_raw(&bad);
    let reply = parse_reply(&c.read_frame().unwrap());
    assert_eq!(reply.response_to, 88);
    assert_eq!(reply.doc.get_i32("code").unwrap(), 9);
    let mut bad = op_msg(89, &doc! {"find": "c", "$db": "test"});
    let last = bad.len() - 2;
    bad[last] = 0x7f; // an element type that does not exist
    c.send_raw(&bad);
    let reply = parse_reply(&c.read_frame().unwrap());
    assert_eq!(reply.response_to, 89);
    assert_eq!(forwarded_before(), n);
    let (_, reply) = c.command(doc! {"ping": 1, "$db": "admin"});
    assert_eq!(reply.doc.get_f64("ok").unwrap(), 1.0);
    // A duplicated $db is refused, not resolved either way.
    let mut dup = op_msg(90, &doc! {"find": "c", "$db": "test", "$dbx": "other"});
    let pos = dup.windows(5).position(|w| w == b"$dbx\0").unwrap();
    dup.remove(pos + 3); // "$dbx\0" -> "$db\0" (one byte shorter): fix the lengths
    let total = dup.len() as i32;
    dup[0..4].copy_from_slice(&total.to_le_bytes());
    let doc_len = (dup.len() - 21) as i32;
    dup[21..25].copy_from_slice(&doc_len.to_le_bytes());
    c.send_raw(&dup);
    let reply = parse_reply(&c.read_frame().unwrap());
    assert_eq!(reply.response_to, 90);
    assert_ne!(reply.doc.get_f64("ok").unwrap(), 1.0);
    assert_eq!(forwarded_before(), n + 1); // only the ping
    drop(c);
    s.wait().unwrap();

    // 4. An unknown opcode: an error reply, then closed; nothing forwarded.
    let (mut c, s, _) = relay_session(&runtime, &server);
    let n = forwarded_before();
    let mut frame = header(20, 5, 4242);
    frame.extend_from_slice(&[0, 0, 0, 0]);
    c.send_raw(&frame);
    let reply = parse_reply(&c.read_frame().unwrap());
    assert_eq!(reply.response_to, 5);
    assert_ne!(reply.doc.get_f64("ok").unwrap(), 1.0);
    assert!(c.read_frame().is_none());
    assert_eq!(s.wait().unwrap_err().code(), ResultCode::ClientProtocol);
    assert_eq!(forwarded_before(), n);

    // 5. One byte a second: closed when the message timeout (1.5 s) runs out.
    let (c, s, _) = relay_session(&runtime, &server);
    let n = forwarded_before();
    let frame = op_msg(6, &doc! {"find": "c", "$db": "test"});
    let mut stream = c.stream.try_clone().unwrap();
    let slow = std::thread::spawn(move || {
        for b in frame {
            if stream.write_all(&[b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    let e = s.wait().unwrap_err();
    assert_eq!(e.code(), ResultCode::ClientProtocol);
    assert!(e.message().contains("whole message"), "{}", e.message());
    assert_eq!(forwarded_before(), n);
    let _ = c.stream.shutdown(std::net::Shutdown::Both);
    slow.join().unwrap();

    // The good session was never disturbed.
    let (_, reply) = good.command(doc! {"find": "c", "$db": "test"});
    assert_eq!(reply.doc.get_f64("ok").unwrap(), 1.0);
    good_session.shutdown();
    good_session.wait().unwrap();
    let _ = good.stream.as_raw_fd();
}

/// `doc` as an OP_MSG with moreToCome (flag bit 1): the client expects no reply.
fn op_msg_more_to_come(request_id: i32, doc: &bson::Document) -> Vec<u8> {
    let mut m = op_msg(request_id, doc);
    m[16] |= 2;
    m
}

#[test]
fn a_misbehaving_database_gets_the_waiting_client_a_clear_error_and_ends_only_its_session() {
    let server = TestServer::start(ServerOptions::default());
    let runtime = Runtime::new(2).unwrap();
    // A well-behaved session beside the faulty ones the whole time.
    let (mut good, good_session, _) = relay_session(&runtime, &server);

    for fault in ReplyFault::ALL {
        let (mut c, s, audit) = relay_session(&runtime, &server);
        let (code, explanation) = match fault {
            ReplyFault::CloseMidReply => (
                ResultCode::UpstreamClosed,
                "closed the connection in the middle of a reply",
            ),
            ReplyFault::WrongResponseTo | ReplyFault::ReplyToMoreToCome => (
                ResultCode::UpstreamProtocol,
                "which the client is not waiting for",
            ),
            ReplyFault::Oversized => (ResultCode::UpstreamProtocol, "over the 48000000-byte limit"),
            ReplyFault::Malformed => (ResultCode::UpstreamProtocol, "malformed reply"),
        };
        if fault == ReplyFault::ReplyToMoreToCome {
            // An unacknowledged write: the stand-in answers it anyway, before the next reply.
            let w0 = doc! {"insert": fault.collection(), "documents": [{"a": 1}], "writeConcern": {"w": 0}, "$db": "test"};
            c.send_raw(&op_msg_more_to_come(600, &w0));
        }
        c.send_raw(&op_msg(
            601,
            &doc! {"find": fault.collection(), "$db": "test"},
        ));
        let reply = parse_reply(&c.read_frame().unwrap());
        assert_eq!(reply.response_to, 601, "{fault:?}");
        assert_eq!(reply.doc.get_f64("ok").unwrap(), 0.0, "{fault:?}");
        assert_eq!(reply.doc.get_i32("code").unwrap(), 6, "{fault:?}");
        let errmsg = reply.doc.get_str("errmsg").unwrap();
        assert!(errmsg.starts_with("libdocauth: "), "{fault:?}: {errmsg}");
        assert!(errmsg.contains(explanation), "{fault:?}: {errmsg}");
        assert!(
            c.read_frame().is_none(),
            "{fault:?}: nothing after the error"
        );

        let e = s.wait().unwrap_err();
        assert_eq!(e.code(), code, "{fault:?}: {e:?}");
        assert!(e.message().contains(explanation), "{fault:?}: {e:?}");
        let end = audit.wait_for("db.session.end");
        assert_eq!(end["error_code"], code.name(), "{fault:?}");
        assert!(
            end["error"].as_str().unwrap().contains(explanation),
            "{fault:?}: {end}"
        );
    }

    // The good session was never disturbed; once it ends, nothing is left open on either
    // side (every faulty session closed its database connection and its client).
    assert_undisturbed_then_nothing_left_open(&runtime, &server, &mut good, good_session);
}

#[test]
fn an_unacknowledged_write_gets_no_reply_and_the_session_goes_on() {
    // The stand-in follows mongod: no reply to moreToCome. The relay owes the client none
    // either, so the next reply is matched to the next request.
    let server = TestServer::start(ServerOptions::default());
    let runtime = Runtime::new(1).unwrap();
    let (mut c, s, _) = relay_session(&runtime, &server);
    let w0 = doc! {"insert": "c", "documents": [{"a": 1}], "writeConcern": {"w": 0}, "$db": "test"};
    c.send_raw(&op_msg_more_to_come(700, &w0));
    let (id, reply) = c.command(doc! {"find": "c", "$db": "test"});
    assert_eq!(reply.response_to, id);
    assert_eq!(reply.doc.get_f64("ok").unwrap(), 1.0);
    assert!(server.seen.command_names().contains(&"insert".to_string()));
    s.shutdown();
    s.wait().unwrap();
}

/// How the loopback STS fault injector answers every request.
#[derive(Clone, Copy, Debug)]
enum StsFault {
    /// HTTP 500 with STS's InternalFailure error document.
    InternalError,
    /// HTTP 400 with STS's Throttling error document (what a rate-limited caller gets).
    Throttling,
    /// HTTP 200 with a body that is not XML.
    GarbageXml,
    /// Reads the request and never answers.
    Hangs,
}

/// A loopback HTTP server standing in for a failing STS: a fault injector for answers moto
/// cannot be made to give (moto serves the success paths, signatures checked). Every
/// connection is answered per `fault`; returns the endpoint URL.
fn failing_sts(fault: StsFault) -> String {
    use std::io::Read;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                // Read the request head and its body (Content-Length) before answering.
                let mut request = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&chunk[..n]),
                    }
                    if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                        break at + 4;
                    }
                };
                let head = String::from_utf8_lossy(&request[..head_end]).to_lowercase();
                let body_len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while request.len() < head_end + body_len {
                    match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&chunk[..n]),
                    }
                }
                let (status, body) = match fault {
                    StsFault::InternalError => ("500 Internal Server Error", "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Receiver</Type><Code>InternalFailure</Code><Message>An internal error occurred</Message></Error><RequestId>fault-500</RequestId></ErrorResponse>"),
                    StsFault::Throttling => ("400 Bad Request", "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>fault-throttle</RequestId></ErrorResponse>"),
                    StsFault::GarbageXml => ("200 OK", "this is not <xml at all"),
                    StsFault::Hangs => {
                        // Hold the connection open, silent, until the client gives up.
                        let _ = stream.read(&mut chunk);
                        return;
                    }
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes());
            });
        }
    });
    url
}

#[test]
fn sts_faults_reach_the_waiting_client_and_the_audit_and_other_sessions_go_on() {
    use docauth::aws::{CredentialsProvider, ProviderSettings};
    use docauth::session::ProviderCredentials;
    let server = TestServer::start(ServerOptions::default());
    let runtime = Runtime::new(2).unwrap();
    let (mut good, good_session, _) = relay_session(&runtime, &server);

    for (fault, code, explanation) in [
        (
            StsFault::InternalError,
            ResultCode::AwsStsError,
            "InternalFailure: An internal error occurred",
        ),
        (
            StsFault::Throttling,
            ResultCode::AwsStsError,
            "Throttling: Rate exceeded",
        ),
        (
            StsFault::GarbageXml,
            ResultCode::AwsStsError,
            "STS AssumeRole",
        ),
        (
            StsFault::Hangs,
            ResultCode::AwsStsUnreachable,
            "did not answer within 1000 ms",
        ),
    ] {
        let endpoint = failing_sts(fault);
        // Only the hanging STS must meet the timeout; the others answer at once, but a loaded
        // machine (make test runs test binaries side by side) may take over a second to
        // sign, send and read, which would turn their answer into a timeout.
        let timeout_ms = if matches!(fault, StsFault::Hangs) {
            1000
        } else {
            15_000
        };
        let settings: ProviderSettings = serde_json::from_value(serde_json::json!({
            "source": {"type": "static", "access_key_id": TEST_AKID, "secret_access_key": TEST_SECRET},
            "region": "us-east-1",
            "sts_endpoint": endpoint,
            "connect_timeout_ms": timeout_ms,
            "operation_timeout_ms": timeout_ms,
        }))
        .unwrap();
        let provider = runtime
            .handle()
            .block_on(CredentialsProvider::new(settings))
            .unwrap();
        let audit = Arc::new(Collected::default());
        let (client, proxy_side) = socket_pair();
        let session = Session::start(
            &runtime,
            tokio_stream(&runtime, proxy_side),
            params(
                &format!("mongodb://127.0.0.1:{}/?tls=false", server.addr.port()),
                None,
            ),
            engine(&["test"]),
            Arc::new(
                ProviderCredentials::new(Arc::new(provider), &engine(&["test"]), TEST_DATABASE)
                    .unwrap(),
            ),
            Some(audit.clone()),
        )
        .unwrap();
        let mut client = Client::new(client);
        let (id, reply) = client.command(doc! {"hello": 1, "$db": "admin"});
        assert_eq!(reply.response_to, id, "{fault:?}");
        assert_eq!(reply.doc.get_f64("ok").unwrap(), 0.0, "{fault:?}");
        let errmsg = reply.doc.get_str("errmsg").unwrap();
        assert!(errmsg.contains(explanation), "{fault:?}: {errmsg}");
        assert!(errmsg.contains(&endpoint), "{fault:?}: {errmsg}");
        assert!(!errmsg.contains(TEST_SECRET), "{fault:?}: {errmsg}");
        let e = session.wait().unwrap_err();
        assert_eq!(e.code(), code, "{fault:?}: {e:?}");
        let start = audit.wait_for("db.session.start");
        assert_eq!(start["success"], false, "{fault:?}");
        assert_eq!(start["error_code"], code.name(), "{fault:?}");
        assert!(
            audit.wait_for("db.session.end")["error"]
                .as_str()
                .unwrap()
                .contains(explanation),
            "{fault:?}"
        );
        assert!(client.is_closed(), "{fault:?}");
    }

    assert_undisturbed_then_nothing_left_open(&runtime, &server, &mut good, good_session);
}
