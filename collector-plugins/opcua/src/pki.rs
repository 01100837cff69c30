//! The gateway's OPC UA certificates, in async-opcua's PKI directory layout:
//!
//! ```text
//! state_dir/pki/
//!   own/cert.der          the application instance certificate (self-signed, RSA 2048)
//!   private/private.pem   its private key (mode 0600, in a 0700 directory)
//!   trusted/              server certificates the gateway trusts
//!   rejected/             server certificates seen and not trusted (yet)
//! ```
//!
//! [`ensure_application_certificate`] creates the application certificate on first start
//! and renews it [`RENEW_BEFORE`] its expiry (or when the gateway id changed); the gateway
//! id is in its subject and subjectAltName (`urn:fieldlink:<id>` and a DNS name).
//! [`check_server_certificate`] decides about a server's certificate before a session is
//! attempted; [`trust`] and [`list`] are `fieldlink opcua trust`.

use crate::device::Pki;
use opcua::crypto::{CertificateStore, X509, X509Data};
use opcua::types::ByteString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// How long before its expiry the application certificate is replaced.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long a new application certificate is valid.
const VALID_DAYS: u32 = 2 * 365;
/// RSA key size: the minimum of every current policy and the maximum of none.
const KEY_BITS: u32 = 2048;

/// Serialises certificate creation: several devices start at once on first start and must
/// not each write their own certificate.
static CREATE_LOCK: Mutex<()> = Mutex::new(());

/// A PKI operation failed; the text names the file.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file or directory could not be read or written: fix the state directory's
    /// permissions or free disk space.
    #[error("{path}: {error}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error (in the message, so not repeated as a cause).
        error: io::Error,
    },
    /// The certificate could not be created (RSA key generation or encoding failed).
    #[error("cannot create the application certificate: {0}")]
    Create(String),
    /// A certificate file is not a readable DER or PEM certificate.
    #[error("{0}: not a readable certificate (DER or PEM)")]
    Unreadable(PathBuf),
    /// `fieldlink opcua trust` was given something that names no certificate.
    #[error(
        "no certificate in {dir} matches {wanted:?}; `fieldlink opcua trust --config FILE` lists them"
    )]
    NotFound {
        /// The directory searched.
        dir: PathBuf,
        /// What was asked for.
        wanted: String,
    },
    /// More than one rejected certificate matches a thumbprint prefix.
    #[error("{wanted:?} matches several certificates ({matches}); give more of the thumbprint")]
    Ambiguous {
        /// What was asked for.
        wanted: String,
        /// The matching file names.
        matches: String,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> PkiError + '_ {
    move |error| PkiError::Io {
        path: path.to_owned(),
        error,
    }
}

/// The gateway's application URI: `urn:fieldlink:<gateway id>` (the host name before the
/// gateway is enrolled).
pub fn application_uri(pki: &Pki) -> String {
    format!("urn:fieldlink:{}", identity_name(pki))
}

/// The application name servers show for the gateway.
pub fn application_name(pki: &Pki) -> String {
    format!("fieldlink {}", identity_name(pki))
}

fn identity_name(pki: &Pki) -> String {
    pki.gateway_id.clone().unwrap_or_else(|| {
        X509Data::computer_hostnames()
            .into_iter()
            .next()
            .unwrap_or_else(|| "gateway".to_owned())
    })
}

/// What [`ensure_application_certificate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateAction {
    /// The existing certificate is valid for longer than [`RENEW_BEFORE`].
    Kept,
    /// There was none: a new one was created.
    Created,
    /// The old one was near its expiry, expired, unreadable or named another gateway: a
    /// new one replaced it. Servers that trusted the old one must trust the new one.
    Renewed(String),
}

/// The own certificate's path.
pub fn own_certificate_path(dir: &Path) -> PathBuf {
    dir.join("own").join("cert.der")
}

fn own_key_path(dir: &Path) -> PathBuf {
    dir.join("private").join("private.pem")
}

/// Makes sure `pki.dir` holds a valid application certificate for this gateway, creating
/// or renewing it as needed. Blocking (RSA key generation): call it from
/// `spawn_blocking`.
pub fn ensure_application_certificate(pki: &Pki) -> Result<CertificateAction, PkiError> {
    let _guard = CREATE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    create_dirs(&pki.dir)?;
    let uri = application_uri(pki);
    let cert_path = own_certificate_path(&pki.dir);
    let key_path = own_key_path(&pki.dir);
    let why_new = match (
        CertificateStore::read_cert(&cert_path),
        CertificateStore::read_pkey(&key_path),
    ) {
        (Ok(cert), Ok(_)) => match renewal_reason(&cert, &uri) {
            None => return Ok(CertificateAction::Kept),
            Some(reason) => Some(reason),
        },
        _ if !cert_path.exists() && !key_path.exists() => None,
        _ => Some("the certificate or its key could not be read".to_owned()),
    };
    create_certificate(pki, &uri, &cert_path, &key_path)?;
    Ok(match why_new {
        None => CertificateAction::Created,
        Some(reason) => CertificateAction::Renewed(reason),
    })
}

/// Why `cert` must be replaced, if it must.
fn renewal_reason(cert: &X509, uri: &str) -> Option<String> {
    if cert.is_application_uri_valid(uri).is_err() {
        return Some(format!("it does not name {uri}"));
    }
    let Ok(not_after) = cert.not_after() else {
        return Some("its expiry date cannot be read".to_owned());
    };
    let renew_before = i64::try_from(RENEW_BEFORE.as_secs()).unwrap_or(i64::MAX);
    let now = opcua::types::DateTime::now().as_chrono().timestamp();
    (now >= not_after.timestamp().saturating_sub(renew_before))
        .then(|| format!("it expires at {}", not_after.to_rfc3339()))
}

/// Creates `trusted/`, `rejected/`, `own/` and a private `private/`.
fn create_dirs(dir: &Path) -> Result<(), PkiError> {
    for sub in ["own", "trusted", "rejected"] {
        let path = dir.join(sub);
        fs::create_dir_all(&path).map_err(io_error(&path))?;
    }
    let private = dir.join("private");
    fs::create_dir_all(&private).map_err(io_error(&private))?;
    set_mode(&private, 0o700)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<(), PkiError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_error(path))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<(), PkiError> {
    Ok(())
}

fn create_certificate(
    pki: &Pki,
    uri: &str,
    cert_path: &Path,
    key_path: &Path,
) -> Result<(), PkiError> {
    let name = identity_name(pki);
    let mut alt_names = X509Data::alt_host_names(uri, None, false, true, false);
    // The gateway id as a DNS name too, so a server's trust list shows which gateway it is.
    if pki.gateway_id.is_some() {
        alt_names.add_dns(&name);
    }
    let data = X509Data {
        key_size: KEY_BITS,
        common_name: format!("fieldlink {name}"),
        organization: "fieldlink".to_owned(),
        organizational_unit: name.clone(),
        country: String::new(),
        state: String::new(),
        alt_host_names: alt_names,
        certificate_duration_days: VALID_DAYS,
    };
    // Written beside the final files, then renamed: a crash never leaves half a
    // certificate, and a key never sits without its certificate.
    let cert_tmp = cert_path.with_extension("der.new");
    let key_tmp = key_path.with_extension("pem.new");
    CertificateStore::create_certificate_and_key(&data, true, &cert_tmp, &key_tmp)
        .map_err(PkiError::Create)?;
    set_mode(&key_tmp, 0o600)?;
    fs::rename(&key_tmp, key_path).map_err(io_error(key_path))?;
    fs::rename(&cert_tmp, cert_path).map_err(io_error(cert_path))?;
    Ok(())
}

/// A certificate's hex SHA-1 thumbprint, the name `fieldlink opcua trust` takes.
pub fn thumbprint(cert: &X509) -> String {
    cert.thumbprint().as_hex_string()
}

/// What the gateway thinks of a server's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerCertificate {
    /// It is in `trusted/`.
    Trusted,
    /// It is unknown or was rejected before: it is (now) in `rejected/`.
    Rejected {
        /// Its thumbprint.
        thumbprint: String,
        /// Its subject.
        subject: String,
        /// Where it is stored.
        stored: PathBuf,
    },
}

/// Checks a server's certificate (DER, as its endpoint announces it) against the trust
/// lists; an unknown one is stored in `rejected/`. With `trust_any`, an unknown one is
/// stored in `trusted/` instead.
pub fn check_server_certificate(
    dir: &Path,
    der: &ByteString,
    trust_any: bool,
) -> Result<ServerCertificate, PkiError> {
    let cert = X509::from_byte_string(der)
        .map_err(|_| PkiError::Unreadable(PathBuf::from("<server certificate>")))?;
    let file = CertificateStore::cert_file_name(&cert);
    let trusted = dir.join("trusted").join(&file);
    let rejected = dir.join("rejected").join(&file);
    if trusted.exists() && !rejected.exists() {
        return Ok(ServerCertificate::Trusted);
    }
    let der_bytes = cert
        .to_der()
        .map_err(|_| PkiError::Unreadable(PathBuf::from("<server certificate>")))?;
    if trust_any {
        write_file(&trusted, &der_bytes)?;
        if rejected.exists() {
            fs::remove_file(&rejected).map_err(io_error(&rejected))?;
        }
        return Ok(ServerCertificate::Trusted);
    }
    if !rejected.exists() {
        write_file(&rejected, &der_bytes)?;
    }
    Ok(ServerCertificate::Rejected {
        thumbprint: thumbprint(&cert),
        subject: cert.subject_name(),
        stored: rejected,
    })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), PkiError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_error(parent))?;
    }
    fs::write(path, bytes).map_err(io_error(path))
}

/// One certificate in the trust lists, for `fieldlink opcua trust`'s listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedCertificate {
    /// `true` in `trusted/`, `false` in `rejected/`.
    pub trusted: bool,
    /// The file.
    pub path: PathBuf,
    /// Its thumbprint.
    pub thumbprint: String,
    /// Its subject.
    pub subject: String,
    /// Its expiry, RFC 3339.
    pub not_after: String,
}

/// The certificates in `trusted/` and `rejected/`, rejected first.
pub fn list(dir: &Path) -> Result<Vec<ListedCertificate>, PkiError> {
    let mut out = Vec::new();
    for (sub, trusted) in [("rejected", false), ("trusted", true)] {
        let sub_dir = dir.join(sub);
        let entries = match fs::read_dir(&sub_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error(&sub_dir)(e)),
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "der" || x == "pem"))
            .collect();
        files.sort();
        for path in files {
            let Ok(cert) = CertificateStore::read_cert(&path) else {
                continue;
            };
            out.push(ListedCertificate {
                trusted,
                thumbprint: thumbprint(&cert),
                subject: cert.subject_name(),
                not_after: cert.not_after().map(|t| t.to_rfc3339()).unwrap_or_default(),
                path,
            });
        }
    }
    Ok(out)
}

/// Trusts a server certificate: `wanted` is a thumbprint (or a unique prefix of at least 8
/// hex digits) or file name of a certificate in `rejected/`, which is moved to
/// `trusted/`; or the path of a certificate file (DER or PEM), which is copied there.
/// Returns the trusted file's path.
pub fn trust(dir: &Path, wanted: &str) -> Result<PathBuf, PkiError> {
    let as_path = Path::new(wanted);
    if as_path.is_file() {
        let cert = CertificateStore::read_cert(as_path)
            .map_err(|_| PkiError::Unreadable(as_path.to_owned()))?;
        let der = cert
            .to_der()
            .map_err(|_| PkiError::Unreadable(as_path.to_owned()))?;
        let file = CertificateStore::cert_file_name(&cert);
        let target = dir.join("trusted").join(&file);
        write_file(&target, &der)?;
        let rejected = dir.join("rejected").join(&file);
        if rejected.exists() {
            fs::remove_file(&rejected).map_err(io_error(&rejected))?;
        }
        return Ok(target);
    }
    let rejected: Vec<ListedCertificate> = list(dir)?.into_iter().filter(|c| !c.trusted).collect();
    let key = wanted.trim().to_ascii_uppercase();
    let matches: Vec<&ListedCertificate> = rejected
        .iter()
        .filter(|c| {
            let file_name = c.path.file_name().and_then(|f| f.to_str()).unwrap_or("");
            file_name == wanted
                || c.thumbprint.eq_ignore_ascii_case(&key)
                || (key.len() >= 8 && c.thumbprint.to_ascii_uppercase().starts_with(&key))
        })
        .collect();
    let found = match matches.as_slice() {
        [one] => *one,
        [] => {
            return Err(PkiError::NotFound {
                dir: dir.join("rejected"),
                wanted: wanted.to_owned(),
            });
        }
        many => {
            return Err(PkiError::Ambiguous {
                wanted: wanted.to_owned(),
                matches: many
                    .iter()
                    .map(|c| c.path.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    };
    let file = found
        .path
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_default();
    let target = dir.join("trusted").join(file);
    let trusted_dir = dir.join("trusted");
    fs::create_dir_all(&trusted_dir).map_err(io_error(&trusted_dir))?;
    fs::rename(&found.path, &target).map_err(io_error(&target))?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pki(dir: &Path, id: &str) -> Pki {
        Pki::new(dir, Some(id.to_owned()), "agent.toml")
    }

    #[test]
    fn the_application_certificate_is_created_once_and_names_the_gateway() {
        let tmp = tempfile::tempdir().unwrap();
        let p = pki(tmp.path(), "gw-cert-1");
        assert_eq!(
            ensure_application_certificate(&p).unwrap(),
            CertificateAction::Created
        );
        assert_eq!(
            ensure_application_certificate(&p).unwrap(),
            CertificateAction::Kept
        );
        let cert = CertificateStore::read_cert(&own_certificate_path(&p.dir)).unwrap();
        assert!(
            cert.subject_name().contains("gw-cert-1"),
            "{}",
            cert.subject_name()
        );
        assert!(
            cert.is_application_uri_valid("urn:fieldlink:gw-cert-1")
                .is_ok()
        );
        assert!(cert.is_hostname_valid("gw-cert-1").is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(own_key_path(&p.dir))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "the private key is readable by others");
        }
    }

    #[test]
    fn a_new_gateway_id_renews_the_certificate() {
        let tmp = tempfile::tempdir().unwrap();
        ensure_application_certificate(&pki(tmp.path(), "gw-a")).unwrap();
        let action = ensure_application_certificate(&pki(tmp.path(), "gw-b")).unwrap();
        assert!(
            matches!(action, CertificateAction::Renewed(_)),
            "{action:?}"
        );
    }

    #[test]
    fn a_certificate_near_its_expiry_is_renewed() {
        let cert_uri = "urn:fieldlink:gw-old";
        let data = X509Data {
            key_size: 2048,
            common_name: "old".into(),
            organization: String::new(),
            organizational_unit: String::new(),
            country: String::new(),
            state: String::new(),
            alt_host_names: X509Data::alt_host_names(cert_uri, None, false, false, false),
            certificate_duration_days: 10,
        };
        let (cert, _) = X509::cert_and_pkey(&data).unwrap();
        let reason = renewal_reason(&cert, cert_uri);
        assert!(reason.is_some_and(|r| r.starts_with("it expires at")));
    }
}
