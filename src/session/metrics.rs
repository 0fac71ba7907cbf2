//! The metrics of a runtime's sessions: started, running and ended (by why), client
//! messages judged (by verdict and the command's reach class) and denied (by kind), the
//! database connection's latency per phase and its failures, bytes relayed, audit events
//! delivered and dropped. Kept by the [`Runtime`](super::Runtime); rendered by
//! [`crate::metrics::render`] through [`RuntimeMetrics`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Unit;

use crate::metrics::{label, micros, Counter, CounterBy, CounterBy2, Families, Histogram, Label};
use crate::wire::Reach;
use crate::{Error, ResultCode};

label! {
    /// Why a session ended.
    pub(crate) enum EndReason: "reason" {
        ClientClosed => "client_closed",
        DatabaseClosed => "database_closed",
        IdleTimeout => "idle_timeout",
        ShutDown => "shut_down",
        /// The policy refused the connection before the database was contacted.
        AccessDenied => "access_denied",
        /// The runtime's cap on running sessions.
        SessionLimit => "session_limit",
        /// The database could not be reached, verified or authenticated to.
        UpstreamFailed => "upstream_failed",
        ClientProtocol => "client_protocol",
        ClientWriteTimeout => "client_write_timeout",
        /// The database broke the protocol or closed with replies owed, during the relay.
        DatabaseFault => "database_fault",
        IoError => "io_error",
        Panic => "panic",
    }
}

impl EndReason {
    /// The reason of a session that ended with `error`.
    pub(crate) fn of_error(error: &Error) -> EndReason {
        match error.code() {
            ResultCode::SessionAccessDenied => EndReason::AccessDenied,
            ResultCode::SessionLimit => EndReason::SessionLimit,
            ResultCode::ClientProtocol => EndReason::ClientProtocol,
            ResultCode::ClientWriteTimeout => EndReason::ClientWriteTimeout,
            ResultCode::SessionIo => EndReason::IoError,
            ResultCode::Panic => EndReason::Panic,
            code if UpstreamFailure::of(code).is_some() => EndReason::UpstreamFailed,
            _ => EndReason::IoError,
        }
    }
}

label! {
    /// What became of a client message.
    pub(crate) enum Verdict: "verdict" {
        Allowed => "allowed",
        Denied => "denied",
    }
}

label! {
    /// A command's reach class in the command table (`src/wire/commands.rs`); `unparsed`
    /// for a message that could not be read as a known command.
    pub(crate) enum CommandClass: "class" {
        ThisDatabase => "this_db",
        NamedDatabases => "named_dbs",
        AllDatabases => "all_dbs",
        Connection => "connection",
        SharedPrincipal => "shared_principal",
        Authentication => "authentication",
        Never => "never",
        Unparsed => "unparsed",
    }
}

impl CommandClass {
    pub(crate) fn of(reach: Reach) -> CommandClass {
        match reach {
            Reach::ThisDatabase => CommandClass::ThisDatabase,
            Reach::Named(_) | Reach::NamedOnly(_) => CommandClass::NamedDatabases,
            Reach::AllDatabases => CommandClass::AllDatabases,
            Reach::Connection => CommandClass::Connection,
            Reach::SharedPrincipal => CommandClass::SharedPrincipal,
            Reach::Authentication => CommandClass::Authentication,
            Reach::Never => CommandClass::Never,
        }
    }
}

label! {
    /// Why a client message was denied.
    pub(crate) enum DenialKind: "kind" {
        /// The policy engine's decision.
        Policy => "policy",
        /// The analysis refuses the command whatever the policy (client authentication, a
        /// legacy command, an unknown command or stage or field, a shared-principal command).
        Refused => "refused",
        /// The message could not be parsed (framing, BSON, checksum, compression, a name).
        Malformed => "malformed",
        /// A handshake that could not be rewritten without its credentials.
        Handshake => "handshake",
    }
}

label! {
    /// A phase of the database connection.
    pub(crate) enum Phase: "phase" {
        /// The TCP connection.
        Connect => "connect",
        /// The TLS handshake.
        Tls => "tls",
        /// The MONGODB-AWS authentication, getting the db user's credentials included.
        Auth => "auth",
    }
}

label! {
    /// Why the database connection failed.
    pub(crate) enum UpstreamFailure: "kind" {
        ConnectTimeout => "connect_timeout",
        ConnectFailed => "connect_failed",
        /// The CA bundle, or the certificate the database showed.
        Tls => "tls",
        /// The database refused the MONGODB-AWS authentication.
        AuthRejected => "auth_rejected",
        /// The db user's AWS credentials could not be had (STS, the credentials source).
        Credentials => "credentials",
        /// The database closed the connection or broke the protocol during the handshake.
        Protocol => "protocol",
        /// The database URI could not be used.
        Config => "config",
    }
}

impl UpstreamFailure {
    /// The failure kind of a connection error; `None` for an error that is not one.
    pub(crate) fn of(code: ResultCode) -> Option<UpstreamFailure> {
        Some(match code {
            ResultCode::ConnectTimeout => UpstreamFailure::ConnectTimeout,
            ResultCode::ConnectFailed => UpstreamFailure::ConnectFailed,
            ResultCode::CaBundleInvalid
            | ResultCode::TlsLegacyCommonName
            | ResultCode::TlsUnknownCa
            | ResultCode::TlsHandshakeFailed => UpstreamFailure::Tls,
            ResultCode::UpstreamAuthFailed => UpstreamFailure::AuthRejected,
            ResultCode::AwsInvalidCredentials
            | ResultCode::AwsNoCredentials
            | ResultCode::AwsAssumeRoleDenied
            | ResultCode::AwsStsUnreachable
            | ResultCode::AwsInvalidToken
            | ResultCode::AwsInvalidRoleArn
            | ResultCode::AwsStsError
            | ResultCode::AwsCredentialsSourceFailed
            | ResultCode::SigningFailed
            | ResultCode::SaslMalformedServerFirst
            | ResultCode::SaslServerNonceLength
            | ResultCode::SaslServerNonceMismatch
            | ResultCode::SaslHostLength
            | ResultCode::SaslHostEmptyLabel
            | ResultCode::SaslHostEdgeDot => UpstreamFailure::Credentials,
            ResultCode::UpstreamClosed | ResultCode::UpstreamProtocol => UpstreamFailure::Protocol,
            ResultCode::DatabaseUriInvalid => UpstreamFailure::Config,
            _ => return None,
        })
    }
}

label! {
    /// Which way bytes went.
    pub(crate) enum Direction: "direction" {
        /// Client messages, as received (denied ones included).
        FromClient => "from_client",
        /// Database replies and the library's own error replies.
        ToClient => "to_client",
    }
}

/// Upstream phases: 1 ms to 10 s.
const PHASE_BOUNDS: [u64; 13] = micros([
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000,
]);

/// The counters of one runtime's sessions. Relaxed atomics only (see [`crate::metrics`]).
#[derive(Debug)]
pub(crate) struct SessionMetrics {
    pub(crate) started: Counter,
    pub(crate) ended: CounterBy<EndReason>,
    pub(crate) judged: CounterBy2<Verdict, CommandClass>,
    pub(crate) denied: CounterBy<DenialKind>,
    /// One per [`Phase`], in `Phase::ALL` order.
    phases: [Histogram; 3],
    pub(crate) upstream_failures: CounterBy<UpstreamFailure>,
    pub(crate) bytes: CounterBy<Direction>,
}

impl Default for SessionMetrics {
    fn default() -> Self {
        SessionMetrics {
            started: Counter::default(),
            ended: CounterBy::default(),
            judged: CounterBy2::default(),
            denied: CounterBy::default(),
            phases: [
                Histogram::new(&PHASE_BOUNDS),
                Histogram::new(&PHASE_BOUNDS),
                Histogram::new(&PHASE_BOUNDS),
            ],
            upstream_failures: CounterBy::default(),
            bytes: CounterBy::default(),
        }
    }
}

impl SessionMetrics {
    pub(crate) fn phase(&self, phase: Phase, took: Duration) {
        if let Some(h) = self.phases.get(phase.index()) {
            h.observe(took);
        }
    }

    /// A client message, judged: allowed, or denied for `denial`.
    #[inline]
    pub(crate) fn message_judged(&self, class: CommandClass, denial: Option<DenialKind>) {
        match denial {
            None => self.judged.inc(Verdict::Allowed, class),
            Some(kind) => {
                self.judged.inc(Verdict::Denied, class);
                self.denied.inc(kind);
            }
        }
    }
}

/// What [`crate::metrics::render`] shows of a runtime: its counters, and the values read
/// from the runtime when rendering (sessions running, audit delivery).
#[derive(Debug)]
pub struct RuntimeMetrics {
    pub(crate) metrics: Arc<SessionMetrics>,
    pub(crate) running: u64,
    pub(crate) audit_delivered: u64,
    pub(crate) audit_dropped: u64,
}

impl Collector for RuntimeMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let m = &*self.metrics;
        let mut f = Families::new(&mut encoder);
        f.counter(
            "sessions_started",
            "Sessions started on the runtime (refused ones included)",
            None,
            m.started.get(),
        )?;
        f.gauge(
            "sessions_active",
            "Sessions running now (counted against the runtime's cap)",
            i64::try_from(self.running).unwrap_or(i64::MAX),
        )?;
        f.counter_by::<EndReason>("sessions_ended", "Sessions ended, by why", None, |r| {
            m.ended.get(r)
        })?;
        f.counter_by2::<Verdict, CommandClass>(
            "messages_judged",
            "Client messages judged, by verdict and the command's reach class",
            |v, c| m.judged.get(v, c),
        )?;
        f.counter_by::<DenialKind>(
            "messages_denied",
            "Client messages denied, by kind of reason",
            None,
            |k| m.denied.get(k),
        )?;
        f.histogram_by::<Phase>(
            "upstream_phase_duration",
            "Time of each phase of the database connection (auth includes getting the db user's AWS credentials)",
            &m.phases,
        )?;
        f.counter_by::<UpstreamFailure>(
            "upstream_failures",
            "Database connections that failed, by kind",
            None,
            |k| m.upstream_failures.get(k),
        )?;
        f.counter_by::<Direction>(
            "relayed",
            "Bytes of client messages received and of replies sent to clients",
            Some(&Unit::Bytes),
            |d| m.bytes.get(d),
        )?;
        f.counter(
            "audit_events_delivered",
            "Audit events handed to the host's callback",
            None,
            self.audit_delivered,
        )?;
        f.counter(
            "audit_events_dropped",
            "Audit events dropped because the host's callback was too slow",
            None,
            self.audit_dropped,
        )
    }
}
