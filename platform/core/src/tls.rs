//! TLS for the ingest's connections to an external `mqtts://` broker, and for PostgreSQL:
//! the server's certificate is verified against a CA file (PEM) or, without one, the
//! system's roots.
//! Built once at start, so a missing or empty CA file stops the platform with a clear
//! error instead of a reconnect loop.

use fieldlink_wire::MqttUrl;
use rustls::pki_types::CertificateDer;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why the ingest's TLS configuration could not be built; the platform does not start.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A CA file was given for a plain `mqtt://` broker: use `mqtts://` or drop the file.
    #[error("a broker CA file ({0}) needs an mqtts:// broker URL")]
    CaFileWithoutTls(PathBuf),
    /// The CA file could not be read.
    #[error("cannot read the CA file {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error (in the message, so not repeated as a cause).
        error: std::io::Error,
    },
    /// The CA file holds no PEM certificate: point it at the CA's certificate.
    #[error("the CA file {0} holds no PEM certificate")]
    NoCertificate(PathBuf),
    /// No trusted roots at all (no CA file, no system certificates): give a CA file or
    /// install the system's CA bundle.
    #[error("no trusted CA certificates: pass a CA file or install the system CA bundle")]
    NoRoots,
    /// rustls refused a certificate or the configuration.
    #[error("TLS configuration refused: {0}")]
    Rustls(rustls::Error),
}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> Self {
        TlsError::Rustls(e)
    }
}

/// The client configuration for `url`: `None` for a plain `mqtt://` broker.
pub fn client_config(
    url: &MqttUrl,
    ca_file: Option<&Path>,
) -> Result<Option<Arc<rustls::ClientConfig>>, TlsError> {
    if !url.tls {
        return match ca_file {
            Some(path) => Err(TlsError::CaFileWithoutTls(path.to_owned())),
            None => Ok(None),
        };
    }
    verifying_config(ca_file, true).map(Some)
}

/// A client configuration that verifies servers against `ca_file`'s certificates or,
/// without one, the system's roots. With `require_roots` false an empty set of roots is
/// accepted (for a connection that uses TLS only if the server offers it: every
/// certificate is then refused, never trusted blindly).
pub fn verifying_config(
    ca_file: Option<&Path>,
    require_roots: bool,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in read_certificates(path)? {
                roots.add(cert)?;
            }
        }
        None => {
            // Unreadable entries in the system bundle are skipped, as browsers do.
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
    }
    if roots.is_empty() && require_roots {
        return Err(TlsError::NoRoots);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read = |error| TlsError::Read {
        path: path.to_owned(),
        error,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(file))
        .collect::<Result<Vec<_>, _>>()
        .map_err(read)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_needs_mqtts_and_a_certificate() {
        let plain = MqttUrl::parse("mqtt://127.0.0.1:1883").unwrap();
        assert!(client_config(&plain, None).unwrap().is_none());
        assert!(matches!(
            client_config(&plain, Some(Path::new("/ca.pem"))),
            Err(TlsError::CaFileWithoutTls(_))
        ));
        let tls = MqttUrl::parse("mqtts://127.0.0.1").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        assert!(matches!(
            client_config(&tls, Some(&missing)),
            Err(TlsError::Read { .. })
        ));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        assert!(matches!(
            client_config(&tls, Some(&empty)),
            Err(TlsError::NoCertificate(_))
        ));
    }
}
