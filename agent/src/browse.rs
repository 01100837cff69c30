//! `fieldlink browse opcua opc.tcp://HOST:PORT [--node NODEID] [--depth N]`: lists a
//! server's variables and prints ready `[[device.point]]` blocks (see
//! [`fieldlink_opcua::browse`]).

use fieldlink_opcua::browse::{self, BrowseError, BrowseOptions};
use fieldlink_opcua::{
    Identity, Mode, NodeAddress, OpcuaDevice, Pki, PolicyChoice, Security, SecurityMode,
    ServerTrust,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What to browse.
#[derive(Debug, clap::Subcommand)]
pub enum BrowseTarget {
    /// An OPC UA server: list its variables (NodeId, data type, access, browse path) and
    /// print [[device.point]] blocks for them.
    Opcua(OpcuaBrowseArgs),
}

/// `fieldlink browse opcua` arguments.
#[derive(Debug, clap::Args)]
pub struct OpcuaBrowseArgs {
    /// The server's endpoint URL, e.g. opc.tcp://192.168.1.20:4840
    pub endpoint: String,
    /// Start at this node instead of the Objects folder (e.g. "ns=2;s=Line1").
    #[arg(long)]
    pub node: Option<String>,
    /// How many levels below the start node to descend.
    #[arg(long, default_value_t = 4)]
    pub depth: u32,
    /// The agent's config file: its state directory's OPC UA certificates and its gateway
    /// id are used (needed with --security sign or sign-and-encrypt).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Message security: none, sign or sign-and-encrypt.
    #[arg(long, default_value = "none")]
    pub security: String,
    /// Security policy: auto (the strongest offered) or a policy name such as Basic256Sha256.
    #[arg(long, default_value = "auto")]
    pub policy: String,
    /// Log in with this user name (with --password).
    #[arg(long)]
    pub username: Option<String>,
    /// The user's password.
    #[arg(long)]
    pub password: Option<String>,
    /// Accept the server's certificate without it being trusted first.
    #[arg(long)]
    pub trust_any: bool,
    /// How long one request may take, e.g. 5s.
    #[arg(long, default_value = "5s")]
    pub timeout: String,
}

/// Why `fieldlink browse` failed.
#[derive(Debug, thiserror::Error)]
pub enum BrowseCommandError {
    /// An argument is invalid; the text says which and what is expected.
    #[error("{0}")]
    Usage(String),
    /// The config file named by --config is invalid or unreadable.
    #[error(transparent)]
    Config(#[from] crate::config::LoadError),
    /// Browsing failed (connection or service error).
    #[error(transparent)]
    Browse(#[from] BrowseError),
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// Runs `fieldlink browse`, printing to standard output.
pub fn run(target: BrowseTarget) -> Result<(), BrowseCommandError> {
    let BrowseTarget::Opcua(args) = target;
    let options = options(&args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(BrowseCommandError::Runtime)?;
    let variables = runtime.block_on(browse::browse(&options))?;
    print!("{}", browse::render(&args.endpoint, &variables));
    Ok(())
}

/// The browse options for `args`.
pub fn options(args: &OpcuaBrowseArgs) -> Result<BrowseOptions, BrowseCommandError> {
    let usage = |m: String| BrowseCommandError::Usage(m);
    if !args.endpoint.starts_with("opc.tcp://") {
        return Err(usage(format!(
            "the endpoint must look like opc.tcp://HOST:PORT, found {:?}",
            args.endpoint
        )));
    }
    let mode: SecurityMode = args.security.parse().map_err(|()| {
        usage(format!(
            "--security must be one of {}, found {:?}",
            SecurityMode::NAMES,
            args.security
        ))
    })?;
    let policy: PolicyChoice = args.policy.parse().map_err(|()| {
        usage(format!(
            "--policy must be one of {}, found {:?}",
            fieldlink_opcua::Policy::NAMES,
            args.policy
        ))
    })?;
    let identity = match (&args.username, &args.password) {
        (None, None) => Identity::Anonymous,
        (Some(user), Some(password)) => Identity::UserName {
            user: user.clone(),
            password: password.clone(),
        },
        _ => {
            return Err(usage("--username and --password go together".to_owned()));
        }
    };
    let start = args
        .node
        .as_deref()
        .map(|n| {
            n.parse::<NodeAddress>()
                .map_err(|e| usage(format!("--node {e}, found {n:?}")))
        })
        .transpose()?;
    let timeout = crate::config::units::parse_duration(&args.timeout)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            usage(format!(
                "--timeout must be a duration like 5s, found {:?}",
                args.timeout
            ))
        })?;
    let pki = match &args.config {
        Some(path) => {
            let config = crate::config::load(path)?;
            Pki::new(
                &config.gateway.state_dir,
                config.gateway.id.clone(),
                &path.display().to_string(),
            )
        }
        None if mode != SecurityMode::None => {
            return Err(usage(
                "--security sign or sign-and-encrypt needs --config FILE: the gateway's certificate lives in its state directory".to_owned(),
            ));
        }
        // Without security no certificate is used; keep the throwaway PKI out of the way.
        None => Pki::new(&std::env::temp_dir().join("fieldlink-browse"), None, "FILE"),
    };
    let device = OpcuaDevice {
        name: Arc::from("browse"),
        endpoint: args.endpoint.clone(),
        mode: Mode::Poll {
            period: Duration::from_secs(1),
        },
        timeout,
        security: Security { mode, policy },
        identity,
        trust: if args.trust_any {
            ServerTrust::Any
        } else {
            ServerTrust::TrustedOnly
        },
        pki,
        points: Vec::new(),
    };
    Ok(BrowseOptions {
        device,
        start,
        depth: args.depth.max(1),
    })
}
