//! Secrets: random tokens and passwords from the operating system's RNG, SHA-256 digests
//! for lookups, and mosquitto's `$7$` password hashes (PBKDF2-SHA512).
//!
//! Nothing here logs; callers must not log what these functions return either.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256, Sha512};

/// Random bytes in an enrollment token or bureau token (256 bits).
pub const TOKEN_BYTES: usize = 32;
/// Random bytes in a gateway's MQTT password (192 bits).
pub const PASSWORD_BYTES: usize = 24;
/// mosquitto 2.x's default PBKDF2 iteration count (`PW_DEFAULT_ITERATIONS`). The
/// passwords are random (192 bits), so the count only has to match what mosquitto reads.
pub const MOSQUITTO_ITERATIONS: u32 = 101;
/// mosquitto's salt length in bytes (`SALT_LEN`).
const MOSQUITTO_SALT_BYTES: usize = 12;

/// The operating system's random number generator failed (no entropy source): the
/// platform cannot issue secrets; fix the host.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomError(String);

/// `N` random bytes from the OS RNG.
fn random_bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| RandomError(e.to_string()))?;
    Ok(buf)
}

/// A new random token (URL-safe base64 of [`TOKEN_BYTES`] bytes, 43 characters).
pub fn new_token() -> Result<String, RandomError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<TOKEN_BYTES>()?))
}

/// A new random MQTT password (URL-safe base64 of [`PASSWORD_BYTES`] bytes, 32 characters).
pub fn new_password() -> Result<String, RandomError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<PASSWORD_BYTES>()?))
}

/// The lower-case hex SHA-256 digest of `secret`: how tokens are stored and looked up.
pub fn sha256_hex(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Hashes `password` as mosquitto 2.x's password file holds it:
/// `$7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512>` (standard base64 with
/// padding, a 12-byte salt and a 64-byte hash, as `mosquitto_passwd` writes).
pub fn mosquitto_hash(password: &str) -> Result<String, RandomError> {
    let salt = random_bytes::<MOSQUITTO_SALT_BYTES>()?;
    Ok(mosquitto_hash_with(password, &salt, MOSQUITTO_ITERATIONS))
}

fn mosquitto_hash_with(password: &str, salt: &[u8], iterations: u32) -> String {
    let mut hash = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), salt, iterations, &mut hash);
    format!(
        "$7${iterations}${}${}",
        STANDARD.encode(salt),
        STANDARD.encode(hash)
    )
}

/// True if `password` matches a `$7$` hash made by [`mosquitto_hash`] or `mosquitto_passwd`.
pub fn verify_mosquitto_hash(password: &str, hash: &str) -> bool {
    let mut parts = hash.split('$');
    let (Some(""), Some("7"), Some(iterations), Some(salt), Some(_), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let (Ok(iterations), Ok(salt)) = (iterations.parse::<u32>(), STANDARD.decode(salt)) else {
        return false;
    };
    if iterations == 0 || iterations > 1_000_000 {
        return false;
    }
    constant_time_eq(
        mosquitto_hash_with(password, &salt, iterations).as_bytes(),
        hash.as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mosquitto_hashes_verify() {
        let hash = mosquitto_hash("s3cret").unwrap();
        assert!(hash.starts_with("$7$101$"));
        assert!(verify_mosquitto_hash("s3cret", &hash));
        assert!(!verify_mosquitto_hash("s3cre", &hash));
        assert!(!verify_mosquitto_hash("s3cret", "$6$x$y"));
    }

    #[test]
    fn tokens_are_long_and_distinct() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert_eq!(sha256_hex("abc").len(), 64);
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
