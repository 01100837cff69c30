//! `fieldlink opcua trust --config FILE [THUMBPRINT | CERTIFICATE-FILE]`: lists the OPC UA
//! server certificates the gateway rejected and trusts, and trusts one (see
//! [`fieldlink_opcua::pki`]).

use fieldlink_opcua::pki;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// `fieldlink opcua` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum OpcuaCommand {
    /// Trust an OPC UA server's certificate (move it from pki/rejected to pki/trusted);
    /// without an argument, list the rejected and trusted certificates and the gateway's own.
    Trust(TrustArgs),
}

/// `fieldlink opcua trust` arguments.
#[derive(Debug, clap::Args)]
pub struct TrustArgs {
    /// The agent's config file (its state directory holds the certificates).
    #[arg(long, short, default_value = "/etc/fieldlink/agent.toml")]
    pub config: PathBuf,
    /// The certificate to trust: its thumbprint (or at least 8 leading hex digits of it),
    /// its file name in pki/rejected, or the path of a certificate file (DER or PEM).
    pub certificate: Option<String>,
}

/// Why `fieldlink opcua trust` failed.
#[derive(Debug, thiserror::Error)]
pub enum TrustCommandError {
    /// The config file is invalid or unreadable.
    #[error(transparent)]
    Config(#[from] crate::config::LoadError),
    /// The certificate could not be found, read or moved.
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
}

/// Runs `fieldlink opcua ...`, printing to standard output.
pub fn run(command: OpcuaCommand) -> Result<(), TrustCommandError> {
    let OpcuaCommand::Trust(args) = command;
    let config = crate::config::load(&args.config)?;
    let dir = config.gateway.state_dir.join("pki");
    print!(
        "{}",
        trust(&dir, &args.config, args.certificate.as_deref())?
    );
    Ok(())
}

/// Trusts `certificate` in the PKI at `dir`, or lists the certificates when it is `None`;
/// returns what to print.
pub fn trust(
    dir: &Path,
    config: &Path,
    certificate: Option<&str>,
) -> Result<String, pki::PkiError> {
    let mut out = String::new();
    if let Some(wanted) = certificate {
        let path = pki::trust(dir, wanted)?;
        let _ = writeln!(out, "trusted: {}", path.display());
        let _ = writeln!(
            out,
            "the agent connects at its next attempt (within 30 s); no restart is needed"
        );
        return Ok(out);
    }
    let own = pki::own_certificate_path(dir);
    if own.exists() {
        let _ = writeln!(
            out,
            "this gateway's certificate (install it in the server's trust list if the server asks): {}",
            own.display()
        );
    }
    let listed = pki::list(dir)?;
    let rejected: Vec<_> = listed.iter().filter(|c| !c.trusted).collect();
    let trusted: Vec<_> = listed.iter().filter(|c| c.trusted).collect();
    let _ = writeln!(out, "rejected server certificates: {}", rejected.len());
    for c in &rejected {
        let _ = writeln!(
            out,
            "  {}  {}  (expires {})",
            c.thumbprint, c.subject, c.not_after
        );
    }
    let _ = writeln!(out, "trusted server certificates: {}", trusted.len());
    for c in &trusted {
        let _ = writeln!(
            out,
            "  {}  {}  (expires {})",
            c.thumbprint, c.subject, c.not_after
        );
    }
    if let Some(first) = rejected.first() {
        let _ = writeln!(
            out,
            "to trust one: fieldlink opcua trust --config {} {}",
            config.display(),
            first.thumbprint
        );
    }
    Ok(out)
}
