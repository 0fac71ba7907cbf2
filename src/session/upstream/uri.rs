//! The database URI: `mongodb://host[:port][/db][?options]`, one endpoint, no credentials.

use std::path::PathBuf;

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

pub(super) fn uri_error(msg: impl Into<String>) -> Error {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

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
}
