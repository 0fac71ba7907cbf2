//! The one list of result codes and the crate's error type.
//!
//! `ResultCode` is exported to C as `docauth_result`. Numbers are part of the ABI: never
//! renumber, never reuse a retired one. Groups: 0–98 general, 99 panic, 100–199 the
//! MONGODB-AWS conversation, 200–299 policy, 300–399 AWS credentials, 400–499 wire and
//! session.

use std::fmt;

/// Outcome of every fallible C call. Stable numbers; see the group table in `error.rs`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResultCode {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullParameter = 1,
    /// A string argument was not valid UTF-8.
    InvalidUtf8 = 2,
    /// A configuration document could not be used.
    InvalidConfig = 3,
    /// An argument had a value the function cannot accept.
    InvalidArgument = 4,
    /// The object was used in an order it does not allow (e.g. a step called twice).
    InvalidState = 5,
    /// Rust code panicked inside the call; the library state touched by the call is unknown.
    Panic = 99,

    /// AWS credentials were unusable (empty access key id or secret key).
    AwsInvalidCredentials = 100,
    /// The server-first SASL message was not the BSON document `{s: BinData, h: string}`.
    SaslMalformedServerFirst = 101,
    /// The server nonce `s` was not exactly 64 bytes long.
    SaslServerNonceLength = 102,
    /// The server nonce `s` did not start with the client nonce.
    SaslServerNonceMismatch = 103,
    /// The STS host `h` was empty or longer than 255 bytes.
    SaslHostLength = 104,
    /// The STS host `h` had an empty label (e.g. `a..b`).
    SaslHostEmptyLabel = 105,
    /// The STS host `h` started or ended with a dot.
    SaslHostEdgeDot = 106,
    /// aws-sigv4 refused to sign the STS request.
    SigningFailed = 107,

    /// A policy config, role or request document is not well-formed JSON/YAML (the message names the file, line and problem).
    PolicyConfigSyntax = 200,
    /// A role document is not a valid Teleport role (unknown version, bad template or regex, duplicate name).
    PolicyRoleInvalid = 201,
    /// A Rego module does not parse or compile, or operator modules lack `package docauth.operator`.
    PolicyRegoInvalid = 202,
    /// A policy config or a file it names is larger than the limit (16 MiB each, 64 MiB total).
    PolicyConfigTooLarge = 203,
    /// A policy config or role document nests deeper than the limit (64 levels).
    PolicyConfigTooDeep = 204,
    /// A file named by the policy config could not be read.
    PolicyConfigUnreadable = 205,
    /// A decision request document is malformed (not a decision: the request could not be understood).
    PolicyRequestInvalid = 206,
    /// No AWS credentials were found in any source; the message lists the sources tried.
    AwsNoCredentials = 300,
    /// STS refused AssumeRole (AccessDenied): the trust policy or the caller's permissions.
    AwsAssumeRoleDenied = 301,
    /// STS could not be reached or did not answer in time.
    AwsStsUnreachable = 302,
    /// STS rejected the credentials: expired or invalid token, unknown key, bad signature.
    AwsInvalidToken = 303,
    /// A db user or `assume_role_arn` is not a usable IAM role (name or ARN).
    AwsInvalidRoleArn = 304,
    /// STS answered with another error.
    AwsStsError = 305,
    /// A credentials source (profile, web identity, container, IMDS) failed.
    AwsCredentialsSourceFailed = 306,
    /// A wire message's header length was below the minimum for its opcode or malformed.
    WireBadLength = 400,
    /// A wire message's length exceeded the size limit (48,000,000 or the server's `maxMessageSizeBytes`).
    WireTooLarge = 401,
    /// A wire message used an opcode the proxy refuses (legacy OP_INSERT/OP_UPDATE/OP_DELETE/OP_GET_MORE/OP_KILL_CURSORS, or unknown).
    WireRefusedOpcode = 402,
    /// A wire message's structure was invalid (truncated or extra bytes, bad section kind, missing or repeated body section).
    WireMalformed = 403,
    /// A document inside a wire message was not valid BSON (or nested too deeply).
    WireInvalidBson = 404,
    /// An OP_MSG carried a CRC-32C checksum that did not match its bytes.
    WireChecksumMismatch = 405,
    /// An OP_MSG set a required flag bit (0–15) this library does not know.
    WireUnknownRequiredFlag = 406,
    /// An OP_COMPRESSED message could not be decompressed within its declared size (unknown compressor, corrupt data, size lie, nested compression).
    WireDecompressionFailed = 407,
    /// A key that an access decision reads (`$db`, the command name, a namespace field) appeared more than once.
    WireDuplicateKey = 408,
    /// A command could not be analysed because a field it needs was missing or had the wrong type.
    WireMalformedCommand = 409,
    /// A legacy OP_QUERY addressed something other than `<db>.$cmd` (legacy find or a pseudo-command).
    WireRefusedQuery = 410,
    /// A database, collection or namespace name breaks the server's naming rules (empty, too long, a forbidden character); the client gets code 73 InvalidNamespace.
    WireInvalidNamespace = 411,
    /// A command this library does not know (not in its command table) was refused; the client gets code 59 CommandNotFound.
    WireUnknownCommand = 412,
    /// An aggregation stage this library does not know was refused; the client gets code 40324.
    WireUnknownStage = 413,
    /// A top-level field that is not one of the generic arguments (an unknown `$`-field, `$tenant`, `expectPrefix`, `$queryOptions`), a field the command does not take, or a document sequence the command does not accept, was refused; the client gets code 40415.
    WireRefusedField = 414,
    /// A legacy OP_QUERY addressed a collection instead of `<db>.$cmd` (legacy find, removed in MongoDB 5.1); the client gets an OP_REPLY QueryFailure with code 5739101.
    WireQueryNotCommand = 415,
    /// The database URI could not be used (scheme, host, port or an option).
    DatabaseUriInvalid = 440,
    /// The CA bundle file could not be read or held no PEM certificate.
    CaBundleInvalid = 441,
    /// The database did not accept the TCP connection within the connect timeout.
    ConnectTimeout = 442,
    /// The TCP connection to the database failed (refused, unreachable, name not resolved).
    ConnectFailed = 443,
    /// The database's certificate names its host only in the legacy Common Name, without SANs.
    TlsLegacyCommonName = 444,
    /// The database's certificate was not issued by a CA in the configured bundle.
    TlsUnknownCa = 445,
    /// The TLS handshake with the database failed for another reason (expired, wrong name, protocol).
    TlsHandshakeFailed = 446,
    /// The database closed the connection during the TLS or MongoDB handshake.
    UpstreamClosed = 447,
    /// The database refused the MONGODB-AWS authentication of the db user.
    UpstreamAuthFailed = 448,
    /// The database answered with something that is not the expected MongoDB reply.
    UpstreamProtocol = 449,
    /// The client sent traffic that is not a valid MongoDB message; the session was closed.
    ClientProtocol = 450,
    /// A read or write on the client or database connection failed during the session.
    SessionIo = 451,
    /// A blocking call was made from inside an audit callback, where it would deadlock.
    CalledFromAuditCallback = 452,
    /// The policy engine denied the session at connection level (the identity may not reach
    /// the database as the db user for the db name); no database connection was made.
    SessionAccessDenied = 453,
    /// The runtime already ran as many sessions as its cap (`docauth_runtime_set_max_sessions`,
    /// default 10,000); the client's first message was answered with an error naming the cap and
    /// no database connection was made.
    SessionLimit = 454,
    /// The client accepted no byte of a reply for `client_write_timeout_ms` (it stopped
    /// reading); the session was ended so that the database side is not held by it.
    ClientWriteTimeout = 455,
}

impl ResultCode {
    /// Every code, in number order. A test checks it against the enum and the C header.
    pub const fn all() -> &'static [ResultCode] {
        &[
            ResultCode::Ok,
            ResultCode::NullParameter,
            ResultCode::InvalidUtf8,
            ResultCode::InvalidConfig,
            ResultCode::InvalidArgument,
            ResultCode::InvalidState,
            ResultCode::Panic,
            ResultCode::AwsInvalidCredentials,
            ResultCode::SaslMalformedServerFirst,
            ResultCode::SaslServerNonceLength,
            ResultCode::SaslServerNonceMismatch,
            ResultCode::SaslHostLength,
            ResultCode::SaslHostEmptyLabel,
            ResultCode::SaslHostEdgeDot,
            ResultCode::SigningFailed,
            ResultCode::PolicyConfigSyntax,
            ResultCode::PolicyRoleInvalid,
            ResultCode::PolicyRegoInvalid,
            ResultCode::PolicyConfigTooLarge,
            ResultCode::PolicyConfigTooDeep,
            ResultCode::PolicyConfigUnreadable,
            ResultCode::PolicyRequestInvalid,
            ResultCode::AwsNoCredentials,
            ResultCode::AwsAssumeRoleDenied,
            ResultCode::AwsStsUnreachable,
            ResultCode::AwsInvalidToken,
            ResultCode::AwsInvalidRoleArn,
            ResultCode::AwsStsError,
            ResultCode::AwsCredentialsSourceFailed,
            ResultCode::WireBadLength,
            ResultCode::WireTooLarge,
            ResultCode::WireRefusedOpcode,
            ResultCode::WireMalformed,
            ResultCode::WireInvalidBson,
            ResultCode::WireChecksumMismatch,
            ResultCode::WireUnknownRequiredFlag,
            ResultCode::WireDecompressionFailed,
            ResultCode::WireDuplicateKey,
            ResultCode::WireMalformedCommand,
            ResultCode::WireRefusedQuery,
            ResultCode::WireInvalidNamespace,
            ResultCode::WireUnknownCommand,
            ResultCode::WireUnknownStage,
            ResultCode::WireRefusedField,
            ResultCode::WireQueryNotCommand,
            ResultCode::DatabaseUriInvalid,
            ResultCode::CaBundleInvalid,
            ResultCode::ConnectTimeout,
            ResultCode::ConnectFailed,
            ResultCode::TlsLegacyCommonName,
            ResultCode::TlsUnknownCa,
            ResultCode::TlsHandshakeFailed,
            ResultCode::UpstreamClosed,
            ResultCode::UpstreamAuthFailed,
            ResultCode::UpstreamProtocol,
            ResultCode::ClientProtocol,
            ResultCode::SessionIo,
            ResultCode::CalledFromAuditCallback,
            ResultCode::SessionAccessDenied,
            ResultCode::SessionLimit,
            ResultCode::ClientWriteTimeout,
        ]
    }

    /// The code with this number, if the library defines one.
    pub fn from_number(number: u32) -> Option<ResultCode> {
        Self::all()
            .iter()
            .copied()
            .find(|code| *code as u32 == number)
    }

    /// The C constant's name, e.g. `DOCAUTH_RESULT_NULL_PARAMETER`.
    pub fn name(self) -> &'static str {
        self.c_name().to_str().unwrap_or("DOCAUTH_RESULT_UNKNOWN")
    }

    pub(crate) fn c_name(self) -> &'static std::ffi::CStr {
        match self {
            ResultCode::Ok => c"DOCAUTH_RESULT_OK",
            ResultCode::NullParameter => c"DOCAUTH_RESULT_NULL_PARAMETER",
            ResultCode::InvalidUtf8 => c"DOCAUTH_RESULT_INVALID_UTF8",
            ResultCode::InvalidConfig => c"DOCAUTH_RESULT_INVALID_CONFIG",
            ResultCode::InvalidArgument => c"DOCAUTH_RESULT_INVALID_ARGUMENT",
            ResultCode::InvalidState => c"DOCAUTH_RESULT_INVALID_STATE",
            ResultCode::Panic => c"DOCAUTH_RESULT_PANIC",
            ResultCode::AwsInvalidCredentials => c"DOCAUTH_RESULT_AWS_INVALID_CREDENTIALS",
            ResultCode::SaslMalformedServerFirst => c"DOCAUTH_RESULT_SASL_MALFORMED_SERVER_FIRST",
            ResultCode::SaslServerNonceLength => c"DOCAUTH_RESULT_SASL_SERVER_NONCE_LENGTH",
            ResultCode::SaslServerNonceMismatch => c"DOCAUTH_RESULT_SASL_SERVER_NONCE_MISMATCH",
            ResultCode::SaslHostLength => c"DOCAUTH_RESULT_SASL_HOST_LENGTH",
            ResultCode::SaslHostEmptyLabel => c"DOCAUTH_RESULT_SASL_HOST_EMPTY_LABEL",
            ResultCode::SaslHostEdgeDot => c"DOCAUTH_RESULT_SASL_HOST_EDGE_DOT",
            ResultCode::SigningFailed => c"DOCAUTH_RESULT_SIGNING_FAILED",
            ResultCode::PolicyConfigSyntax => c"DOCAUTH_RESULT_POLICY_CONFIG_SYNTAX",
            ResultCode::PolicyRoleInvalid => c"DOCAUTH_RESULT_POLICY_ROLE_INVALID",
            ResultCode::PolicyRegoInvalid => c"DOCAUTH_RESULT_POLICY_REGO_INVALID",
            ResultCode::PolicyConfigTooLarge => c"DOCAUTH_RESULT_POLICY_CONFIG_TOO_LARGE",
            ResultCode::PolicyConfigTooDeep => c"DOCAUTH_RESULT_POLICY_CONFIG_TOO_DEEP",
            ResultCode::PolicyConfigUnreadable => c"DOCAUTH_RESULT_POLICY_CONFIG_UNREADABLE",
            ResultCode::PolicyRequestInvalid => c"DOCAUTH_RESULT_POLICY_REQUEST_INVALID",
            ResultCode::AwsNoCredentials => c"DOCAUTH_RESULT_AWS_NO_CREDENTIALS",
            ResultCode::AwsAssumeRoleDenied => c"DOCAUTH_RESULT_AWS_ASSUME_ROLE_DENIED",
            ResultCode::AwsStsUnreachable => c"DOCAUTH_RESULT_AWS_STS_UNREACHABLE",
            ResultCode::AwsInvalidToken => c"DOCAUTH_RESULT_AWS_INVALID_TOKEN",
            ResultCode::AwsInvalidRoleArn => c"DOCAUTH_RESULT_AWS_INVALID_ROLE_ARN",
            ResultCode::AwsStsError => c"DOCAUTH_RESULT_AWS_STS_ERROR",
            ResultCode::AwsCredentialsSourceFailed => {
                c"DOCAUTH_RESULT_AWS_CREDENTIALS_SOURCE_FAILED"
            }
            ResultCode::WireBadLength => c"DOCAUTH_RESULT_WIRE_BAD_LENGTH",
            ResultCode::WireTooLarge => c"DOCAUTH_RESULT_WIRE_TOO_LARGE",
            ResultCode::WireRefusedOpcode => c"DOCAUTH_RESULT_WIRE_REFUSED_OPCODE",
            ResultCode::WireMalformed => c"DOCAUTH_RESULT_WIRE_MALFORMED",
            ResultCode::WireInvalidBson => c"DOCAUTH_RESULT_WIRE_INVALID_BSON",
            ResultCode::WireChecksumMismatch => c"DOCAUTH_RESULT_WIRE_CHECKSUM_MISMATCH",
            ResultCode::WireUnknownRequiredFlag => c"DOCAUTH_RESULT_WIRE_UNKNOWN_REQUIRED_FLAG",
            ResultCode::WireDecompressionFailed => c"DOCAUTH_RESULT_WIRE_DECOMPRESSION_FAILED",
            ResultCode::WireDuplicateKey => c"DOCAUTH_RESULT_WIRE_DUPLICATE_KEY",
            ResultCode::WireMalformedCommand => c"DOCAUTH_RESULT_WIRE_MALFORMED_COMMAND",
            ResultCode::WireRefusedQuery => c"DOCAUTH_RESULT_WIRE_REFUSED_QUERY",
            ResultCode::WireInvalidNamespace => c"DOCAUTH_RESULT_WIRE_INVALID_NAMESPACE",
            ResultCode::WireUnknownCommand => c"DOCAUTH_RESULT_WIRE_UNKNOWN_COMMAND",
            ResultCode::WireUnknownStage => c"DOCAUTH_RESULT_WIRE_UNKNOWN_STAGE",
            ResultCode::WireRefusedField => c"DOCAUTH_RESULT_WIRE_REFUSED_FIELD",
            ResultCode::WireQueryNotCommand => c"DOCAUTH_RESULT_WIRE_QUERY_NOT_COMMAND",
            ResultCode::DatabaseUriInvalid => c"DOCAUTH_RESULT_DATABASE_URI_INVALID",
            ResultCode::CaBundleInvalid => c"DOCAUTH_RESULT_CA_BUNDLE_INVALID",
            ResultCode::ConnectTimeout => c"DOCAUTH_RESULT_CONNECT_TIMEOUT",
            ResultCode::ConnectFailed => c"DOCAUTH_RESULT_CONNECT_FAILED",
            ResultCode::TlsLegacyCommonName => c"DOCAUTH_RESULT_TLS_LEGACY_COMMON_NAME",
            ResultCode::TlsUnknownCa => c"DOCAUTH_RESULT_TLS_UNKNOWN_CA",
            ResultCode::TlsHandshakeFailed => c"DOCAUTH_RESULT_TLS_HANDSHAKE_FAILED",
            ResultCode::UpstreamClosed => c"DOCAUTH_RESULT_UPSTREAM_CLOSED",
            ResultCode::UpstreamAuthFailed => c"DOCAUTH_RESULT_UPSTREAM_AUTH_FAILED",
            ResultCode::UpstreamProtocol => c"DOCAUTH_RESULT_UPSTREAM_PROTOCOL",
            ResultCode::ClientProtocol => c"DOCAUTH_RESULT_CLIENT_PROTOCOL",
            ResultCode::SessionIo => c"DOCAUTH_RESULT_SESSION_IO",
            ResultCode::CalledFromAuditCallback => c"DOCAUTH_RESULT_CALLED_FROM_AUDIT_CALLBACK",
            ResultCode::SessionAccessDenied => c"DOCAUTH_RESULT_SESSION_ACCESS_DENIED",
            ResultCode::SessionLimit => c"DOCAUTH_RESULT_SESSION_LIMIT",
            ResultCode::ClientWriteTimeout => c"DOCAUTH_RESULT_CLIENT_WRITE_TIMEOUT",
        }
    }
}

/// The crate's error: a stable code and a message for a human operator.
///
/// Messages never contain secret keys or session tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    code: ResultCode,
    message: String,
}

impl Error {
    pub fn new(code: ResultCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
        }
    }

    pub fn code(&self) -> ResultCode {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.name(), self.message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::ResultCode;

    #[test]
    fn names_follow_the_variants_and_numbers_are_unique() {
        let mut numbers = std::collections::HashSet::new();
        for code in ResultCode::all() {
            assert!(numbers.insert(*code as u32), "{code:?} reuses a number");
            let mut expected = String::from("DOCAUTH_RESULT");
            for ch in format!("{code:?}").chars() {
                if ch.is_ascii_uppercase() {
                    expected.push('_');
                }
                expected.push(ch.to_ascii_uppercase());
            }
            assert_eq!(code.name(), expected);
            assert_eq!(ResultCode::from_number(*code as u32), Some(*code));
        }
        assert_eq!(ResultCode::from_number(98), None);
    }
}
