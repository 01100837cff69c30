//! The platform's leaves: what every layer of the platform uses and which uses nothing of
//! the platform's own. A crate of its own so that Cargo keeps them leaves.
//!
//! - [`catalog`]: the program's 8 industries and 17 districts and zones;
//! - [`credit_code`]: the unified social credit code (checked) and the gateway id made
//!   from it;
//! - [`profile`]: an enterprise's designated size, specialised class and digital-maturity
//!   level;
//! - [`role`]: the four roles (bureau, district, integrator, enterprise) and their scopes;
//! - [`clock`]: milliseconds since the epoch, days in the program's time zone, RFC 3339;
//! - [`secret`]: random tokens and passwords, SHA-256, mosquitto's password hashes,
//!   constant-time comparison;
//! - [`tls`]: the TLS client settings for an `mqtts://` broker and for PostgreSQL.

pub mod catalog;
pub mod clock;
pub mod credit_code;
pub mod profile;
pub mod role;
pub mod secret;
pub mod tls;
