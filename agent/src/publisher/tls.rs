//! The rustls client configuration for `mqtts://`: system roots or `ca_file`, and an
//! optional client certificate for mutual TLS.

use crate::config::PlatformConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a TLS configuration could not be built; the agent refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// A PEM file could not be read.
    #[error("cannot read {what} {path}: {error}")]
    Read {
        /// Which file (CA file, client certificate, client key).
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The I/O error (in the message, so not repeated as a cause).
        error: std::io::Error,
    },
    /// A PEM file holds nothing usable.
    #[error("{what} {path} holds no {expected}")]
    Empty {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What was looked for.
        expected: &'static str,
    },
    /// No trusted roots at all (no `ca_file` and no system certificates).
    #[error("no trusted CA certificates: set [platform] ca_file or install the system CA bundle")]
    NoRoots,
    /// rustls refused the configuration (a bad key, say).
    #[error("TLS configuration refused: {0}")]
    Rustls(rustls::Error),
}

impl From<rustls::Error> for TlsSetupError {
    fn from(e: rustls::Error) -> Self {
        TlsSetupError::Rustls(e)
    }
}

fn read_pem(what: &'static str, path: &Path) -> Result<BufReader<File>, TlsSetupError> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|error| TlsSetupError::Read {
            what,
            path: path.to_owned(),
            error,
        })
}

fn read_certs(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let certs = rustls_pemfile::certs(&mut read_pem(what, path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsSetupError::Read {
            what,
            path: path.to_owned(),
            error,
        })?;
    if certs.is_empty() {
        return Err(TlsSetupError::Empty {
            what,
            path: path.to_owned(),
            expected: "PEM certificate",
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    const WHAT: &str = "client key";
    rustls_pemfile::private_key(&mut read_pem(WHAT, path)?)
        .map_err(|error| TlsSetupError::Read {
            what: WHAT,
            path: path.to_owned(),
            error,
        })?
        .ok_or_else(|| TlsSetupError::Empty {
            what: WHAT,
            path: path.to_owned(),
            expected: "PEM private key",
        })
}

/// Builds the client configuration for the broker described by `platform`.
pub fn client_config(
    platform: &PlatformConfig,
) -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    match &platform.ca_file {
        Some(ca_file) => {
            for cert in read_certs("CA file", ca_file)? {
                roots.add(cert)?;
            }
        }
        None => {
            // Unreadable entries in the system bundle are skipped, as browsers do.
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
    }
    if roots.is_empty() {
        return Err(TlsSetupError::NoRoots);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match (&platform.client_cert, &platform.client_key) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(read_certs("client certificate", cert)?, read_key(key)?)?,
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}
