//! TLS to the database: rustls with the configured CA bundle (read when a session starts,
//! parsed once per runtime, file and modification time), webpki's verification, and errors
//! that name the fix (legacy-CN certificates, an unknown CA, a port without TLS).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use crate::operator_file::{read_bounded, MAX_OPERATOR_FILE_BYTES};
use crate::{Error, Result, ResultCode};

/// A runtime's TLS client configurations by CA bundle path: the ~100 certificates of
/// global-bundle.pem are parsed once per runtime, not per session. The lock is held for a
/// lookup or an insert, never while a file is read or parsed.
#[derive(Default)]
pub struct TlsConfigs(Mutex<HashMap<PathBuf, (std::time::SystemTime, Arc<rustls::ClientConfig>)>>);

impl TlsConfigs {
    fn get(
        &self,
        ca_file: &Path,
        modified: std::time::SystemTime,
    ) -> Option<Arc<rustls::ClientConfig>> {
        let cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(ca_file)
            .filter(|(when, _)| *when == modified)
            .map(|(_, config)| config.clone())
    }

    fn insert(
        &self,
        ca_file: &Path,
        modified: std::time::SystemTime,
        config: Arc<rustls::ClientConfig>,
    ) {
        let mut cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
        cache.insert(ca_file.to_path_buf(), (modified, config));
    }
}

/// The TLS client configuration verifying servers with the CA bundle `ca_file`.
pub(super) fn tls_config(ca_file: &Path, cache: &TlsConfigs) -> Result<Arc<rustls::ClientConfig>> {
    let bundle_error = |what: String| {
        Error::new(
            ResultCode::CaBundleInvalid,
            format!("CA bundle {}: {what}", ca_file.display()),
        )
    };
    let modified = std::fs::metadata(ca_file)
        .and_then(|m| m.modified())
        .map_err(|e| bundle_error(format!("cannot be read: {e}")))?;
    if let Some(config) = cache.get(ca_file, modified) {
        return Ok(config);
    }
    let pem =
        read_bounded(ca_file, MAX_OPERATOR_FILE_BYTES).map_err(|e| bundle_error(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    let mut count = 0usize;
    for cert in CertificateDer::pem_slice_iter(&pem) {
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
    cache.insert(ca_file, modified, config.clone());
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

pub(super) fn tls_error(address: &str, ca: &Path, e: std::io::Error) -> Error {
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
        Some(rustls::Error::InvalidCertificate(
            cert_error @ (CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. }),
        )) => Error::new(
            ResultCode::TlsHandshakeFailed,
            format!("TLS to the database at {address} failed: {cert_error}. The database's certificate is outside its validity dates: rotate it (for Amazon DocumentDB, modify the cluster to a current certificate authority such as rds-ca-rsa2048-g1 and reboot the instances), or correct this host's clock if the certificate is current"),
        ),
        Some(rustls::Error::InvalidCertificate(
            cert_error @ (CertificateError::NotValidForName
            | CertificateError::NotValidForNameContext { .. }),
        )) => Error::new(
            ResultCode::TlsHandshakeFailed,
            format!("TLS to the database at {address} failed: {cert_error}. The host in the database URI must be a name the certificate carries: for Amazon DocumentDB the cluster or instance endpoint (…docdb.amazonaws.com), not an IP address, a tunnel's localhost or a CNAME of your own"),
        ),
        Some(rustls::Error::InvalidCertificate(cert_error)) => Error::new(
            ResultCode::TlsHandshakeFailed,
            format!("TLS to the database at {address} failed: its certificate was refused: {cert_error}; check the host name in the database URI (it must be a name the certificate carries) and the certificate's validity dates"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_san_oid_is_found_in_der() {
        assert!(has_subject_alt_name(&[
            1, 2, 0x06, 0x03, 0x55, 0x1d, 0x11, 9
        ]));
        assert!(!has_subject_alt_name(&[0x06, 0x03, 0x55, 0x1d, 0x0f]));
    }

    #[test]
    fn a_ca_bundle_that_never_ends_is_refused_not_read_into_memory() {
        let e = tls_config(Path::new("/dev/zero"), &TlsConfigs::default()).unwrap_err();
        assert_eq!(e.code(), ResultCode::CaBundleInvalid);
        assert!(
            e.message().contains("/dev/zero") && e.message().contains("larger than the limit"),
            "{}",
            e.message()
        );
    }
}
