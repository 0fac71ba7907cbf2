//! The STS host named by the server (`h` in server-first): its validation and the signing
//! region derived from it, as the MONGODB-AWS specification's "Region Calculation" says.

use crate::{Error, ResultCode};

/// RFC 1035: a host name is at most 255 bytes.
/// cbindgen:ignore
pub const MAX_HOST_LEN: usize = 255;

/// The region for `sts.amazonaws.com` and for single-label hosts.
/// cbindgen:ignore
pub const DEFAULT_REGION: &str = "us-east-1";

/// A validated STS host and the region to sign for, both borrowed from the host string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StsHost<'a> {
    host: &'a str,
    region: &'a str,
}

impl<'a> StsHost<'a> {
    /// Validates `host` as the specification demands and derives the region:
    ///
    /// - 1 to 255 bytes, else `SASL_HOST_LENGTH`;
    /// - no leading or trailing `.`, else `SASL_HOST_EDGE_DOT`;
    /// - no empty label (`a..b`), else `SASL_HOST_EMPTY_LABEL`;
    /// - only visible ASCII (`!`..`~`), else `SASL_MALFORMED_SERVER_FIRST`: the host is sent
    ///   as the HTTP `Host` header and signed verbatim, so a space, a control character or a
    ///   non-ASCII byte could only produce a request that is ambiguous or that a verifier
    ///   canonicalises differently (the specification has no rule for it; we refuse it).
    ///
    /// Region: `sts.amazonaws.com` and hosts without a dot → `us-east-1`; otherwise the
    /// second label (`sts.cn-north-1.amazonaws.com.cn` → `cn-north-1`).
    pub fn parse(host: &'a str) -> Result<Self, Error> {
        if host.is_empty() || host.len() > MAX_HOST_LEN {
            return Err(Error::new(
                ResultCode::SaslHostLength,
                format!(
                    "the server named an STS host of {} bytes; a host name must be 1 to {MAX_HOST_LEN} bytes long",
                    host.len()
                ),
            ));
        }
        // One pass: characters, label boundaries, and where the second label is.
        let bytes = host.as_bytes();
        let mut empty_label = false;
        let mut first_dot = None;
        let mut second_dot = None;
        for (offset, &b) in bytes.iter().enumerate() {
            if !b.is_ascii_graphic() {
                return Err(Error::new(
                    ResultCode::SaslMalformedServerFirst,
                    format!(
                        "the server named an STS host containing byte 0x{b:02x} at offset {offset}; only visible ASCII characters can be signed as a Host header"
                    ),
                ));
            }
            if b == b'.' {
                if offset > 0 && bytes[offset - 1] == b'.' {
                    empty_label = true;
                }
                if first_dot.is_none() {
                    first_dot = Some(offset);
                } else if second_dot.is_none() {
                    second_dot = Some(offset);
                }
            }
        }
        if host.starts_with('.') || host.ends_with('.') {
            return Err(Error::new(
                ResultCode::SaslHostEdgeDot,
                format!("the server named the STS host {host:?}, which starts or ends with a dot"),
            ));
        }
        if empty_label {
            return Err(Error::new(
                ResultCode::SaslHostEmptyLabel,
                format!("the server named the STS host {host:?}, which has an empty label"),
            ));
        }
        let region = match first_dot {
            _ if host == "sts.amazonaws.com" => DEFAULT_REGION,
            None => DEFAULT_REGION,
            // Labels are non-empty now, so the second label is between the first two dots
            // (or runs to the end).
            Some(first) => host
                .get(first + 1..second_dot.unwrap_or(host.len()))
                .unwrap_or(DEFAULT_REGION),
        };
        Ok(StsHost { host, region })
    }

    /// The host, as sent in the `Host` header.
    pub fn host(&self) -> &'a str {
        self.host
    }

    /// The SigV4 signing region derived from the host.
    pub fn region(&self) -> &'a str {
        self.region
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(host: &str) -> Result<&str, ResultCode> {
        StsHost::parse(host)
            .map(|h| h.region())
            .map_err(|e| e.code())
    }

    #[test]
    fn the_specification_table() {
        assert_eq!(region("sts.amazonaws.com"), Ok("us-east-1"));
        assert_eq!(region("sts.us-west-2.amazonaws.com"), Ok("us-west-2"));
        assert_eq!(region("sts.us-west-2.amazonaws.com.ch"), Ok("us-west-2"));
        assert_eq!(region("example.com"), Ok("com"));
        assert_eq!(region("localhost"), Ok("us-east-1"));
        assert_eq!(region("sts..com"), Err(ResultCode::SaslHostEmptyLabel));
        assert_eq!(region(".amazonaws.com"), Err(ResultCode::SaslHostEdgeDot));
        assert_eq!(region("sts.amazonaws."), Err(ResultCode::SaslHostEdgeDot));
        assert_eq!(region(""), Err(ResultCode::SaslHostLength));
        assert_eq!(
            region(&"a".repeat(256)),
            Err(ResultCode::SaslHostLength),
            "longer than 255 bytes"
        );
    }

    #[test]
    fn partitions_and_edges() {
        assert_eq!(region("sts.cn-north-1.amazonaws.com.cn"), Ok("cn-north-1"));
        assert_eq!(
            region("sts.us-gov-west-1.amazonaws.com"),
            Ok("us-gov-west-1")
        );
        assert_eq!(region("sts.eu-west-1.amazonaws.com"), Ok("eu-west-1"));
        assert_eq!(region("127.0.0.1:4566"), Ok("0"));
        assert_eq!(region(&"a".repeat(255)), Ok("us-east-1"));
        assert_eq!(region("."), Err(ResultCode::SaslHostEdgeDot));
        assert_eq!(region("a.b..c"), Err(ResultCode::SaslHostEmptyLabel));
        assert_eq!(
            region("sts.amazonaws.com\r\nX-Evil: 1"),
            Err(ResultCode::SaslMalformedServerFirst)
        );
        assert_eq!(
            region("sts amazonaws.com"),
            Err(ResultCode::SaslMalformedServerFirst)
        );
        assert_eq!(
            region("stś.amazonaws.com"),
            Err(ResultCode::SaslMalformedServerFirst)
        );
        // Length counts bytes: 128 two-byte characters are 256 bytes.
        assert_eq!(region(&"é".repeat(128)), Err(ResultCode::SaslHostLength));
    }

    #[test]
    fn region_is_the_second_label_like_split_says() {
        for host in ["a.b", "a.bc.d", "sts.x.y.z", "a-1.b_2.c", "x.y"] {
            assert_eq!(region(host), Ok(host.split('.').nth(1).unwrap()), "{host}");
        }
    }

    #[test]
    fn messages_name_the_problem() {
        let e = StsHost::parse("").unwrap_err();
        assert!(e.message().contains("0 bytes"), "{}", e.message());
        let e = StsHost::parse("a..b").unwrap_err();
        assert!(e.message().contains("empty label"), "{}", e.message());
        let e = StsHost::parse("a.b.").unwrap_err();
        assert!(e.message().contains("starts or ends with a dot"));
    }
}
