//! Test support: moto's server on a free loopback port, set up as the DocumentDB guide
//! sets up AWS, with request signature checking on.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// What `tests/moto/credentials_setup.py` created.
#[derive(Clone, Debug, Deserialize)]
pub struct Setup {
    pub account: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub user_arn: String,
    pub db_user_role_arn: String,
    pub assume_role_arn: String,
    pub external_id: String,
    pub web_identity_role_arn: String,
    pub untrusted_role_arn: String,
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn python() -> String {
    std::env::var("DOCAUTH_TEST_PYTHON")
        .unwrap_or_else(|_| repo().join(".venv/bin/python").display().to_string())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A moto server child process, killed when dropped.
pub struct Moto {
    child: Child,
    pub port: u16,
    pub url: String,
}

impl Moto {
    /// Starts moto, runs the guide's setup, and turns signature checking on with
    /// `free_requests` unauthenticated requests left (0 for all tests but web identity,
    /// whose AssumeRoleWithWebIdentity call AWS serves unsigned).
    pub fn start(free_requests: u32) -> (Moto, Setup) {
        let port = free_port();
        let child = Command::new(python())
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start moto with {} (set DOCAUTH_TEST_PYTHON or create .venv with moto[server]): {e}",
                    python()
                )
            });
        let moto = Moto {
            child,
            port,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, _)) = moto.http("GET", "/moto-api/data.json", "") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "moto did not start on {}",
                moto.url
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let out = Command::new(python())
            .arg(repo().join("tests/moto/credentials_setup.py"))
            .arg(&moto.url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "setup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let setup: Setup = serde_json::from_slice(&out.stdout).unwrap();
        moto.reset_auth(free_requests);
        (moto, setup)
    }

    /// `POST /moto-api/reset-auth`: signature checking on after `free` more requests.
    pub fn reset_auth(&self, free: u32) {
        let (status, body) = self
            .http("POST", "/moto-api/reset-auth", &free.to_string())
            .unwrap();
        assert_eq!(status, 200, "{body}");
    }

    /// How many times moto's STS handed out credentials for `role_arn` (AssumeRole and
    /// AssumeRoleWithWebIdentity), with the external id each call carried.
    pub fn assumed(&self, role_arn: &str) -> Vec<Option<String>> {
        let (status, body) = self.http("GET", "/moto-api/data.json", "").unwrap();
        assert_eq!(status, 200);
        let data: serde_json::Value = serde_json::from_str(&body).unwrap();
        data["sts"]["AssumedRole"]
            .as_array()
            .map(|roles| {
                roles
                    .iter()
                    .filter(|r| r["role_arn"] == role_arn)
                    .map(|r| r["external_id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Minimal HTTP/1.1 client for moto's own API (loopback only).
    pub fn http(&self, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
        let host = format!("127.0.0.1:{}", self.port);
        self.request(
            method,
            path,
            &[("Host", &host), ("Content-Type", "text/plain")],
            body,
        )
    }

    /// An HTTP/1.1 request to moto with exactly these headers (plus Content-Length and
    /// Connection: close).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> std::io::Result<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut head = format!("{method} {path} HTTP/1.1\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ));
        s.write_all(head.as_bytes())?;
        s.write_all(body.as_bytes())?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Panics when `text` contains any of `secrets`.
pub fn assert_no_secret(text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!s.is_empty());
        assert!(!text.contains(s), "a secret leaked into: {text}");
    }
}

/// GetCallerIdentity through aws-sdk-sts against moto with `credentials`: the ARN.
pub async fn caller_arn(url: &str, credentials: &docauth::aws::Credentials) -> String {
    let aws: aws_credential_types::Credentials = credentials.into();
    let config = aws_sdk_sts::Config::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_types::region::Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(aws)
        .build();
    aws_sdk_sts::Client::from_conf(config)
        .get_caller_identity()
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned()
}
