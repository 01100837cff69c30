//! Which database holds the platform's data, as `--database` names it.

use std::path::PathBuf;

/// Where the platform's data lives.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// SQLite files in the data directory (the embedded default: one instance).
    Sqlite,
    /// A PostgreSQL server, shared by any number of instances (city scale).
    Postgres {
        /// A `postgres://user:password@host:port/dbname?sslmode=...` URL.
        url: String,
        /// PEM CA certificates to verify the server with when the URL asks for TLS
        /// (`sslmode=require`), instead of the system's roots.
        ca_file: Option<PathBuf>,
    },
}

impl Database {
    /// Parses `--database`: a `postgres://` or `postgresql://` URL, or `sqlite` (the default).
    pub fn parse(url: &str, ca_file: Option<PathBuf>) -> Result<Database, DatabaseUrlError> {
        if url == "sqlite" {
            return Ok(Database::Sqlite);
        }
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(DatabaseUrlError::Invalid(redact_password(url)));
        }
        Ok(Database::Postgres {
            url: url.to_owned(),
            ca_file,
        })
    }
}

/// The URL with any password replaced by `***`, for messages and logs.
pub fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

// The URL can carry a password: never print it.
impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite => f.write_str("Sqlite"),
            Database::Postgres { url, ca_file } => f
                .debug_struct("Postgres")
                .field("url", &redact_password(url))
                .field("ca_file", ca_file)
                .finish(),
        }
    }
}

/// Why a `--database` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatabaseUrlError {
    /// The URL is not one this setting takes: correct it.
    #[error("{0:?} is not a URL this setting takes")]
    Invalid(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_and_redaction() {
        assert_eq!(Database::parse("sqlite", None).unwrap(), Database::Sqlite);
        let pg = Database::parse("postgres://fl:s3cret@db:5432/fieldlink", None).unwrap();
        assert!(!format!("{pg:?}").contains("s3cret"), "{pg:?}");
        assert!(format!("{pg:?}").contains("fl:***@db:5432/fieldlink"));
        assert!(Database::parse("postgresql://db/fieldlink", None).is_ok());
        let refused = Database::parse("mysql://u:pw@h/db", None).unwrap_err();
        assert!(!refused.to_string().contains("pw@"), "{refused}");
        assert_eq!(redact_password("postgres://u@h/d"), "postgres://u@h/d");
        assert_eq!(
            redact_password("postgres://u:p@ss@h/d"),
            "postgres://u:***@h/d"
        );
    }
}
