//! An in-process OPC UA server for tests and benchmarks (feature `test-server`): a real
//! async-opcua server on loopback with a variable of every supported type and an analog
//! variable with an EURange, optional secure endpoints with user-name or X.509 login and a
//! client trust list, that can be stopped and started again on the same port. Test code:
//! it panics on setup failures.

use opcua::crypto::{CertificateStore, SecurityPolicy, X509Data};
use opcua::server::address_space::{AccessLevel, Variable, VariableBuilder};
use opcua::server::diagnostics::NamespaceMetadata;
use opcua::server::node_manager::memory::{SimpleNodeManager, simple_node_manager};
use opcua::server::{ANONYMOUS_USER_TOKEN_ID, ServerBuilder, ServerHandle, ServerUserToken};
use opcua::types::{
    DataTypeId, DataValue, DateTime, ExtensionObject, Guid, LocalizedText, MessageSecurityMode,
    NodeId, ObjectId, Range, StatusCode, VariableId, VariableTypeId, Variant,
};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The test namespace's URI.
pub const NAMESPACE: &str = "urn:fieldlink:test";
/// The folder under Objects that holds the variables.
pub const FOLDER: &str = "Machine";

/// The user name of the login the secure test server accepts.
pub const USER: &str = "operator";
/// Its password.
pub const PASSWORD: &str = "opc-secret";

/// A Double variable under the folder with an `EURange` property (percent deadbands need
/// one); not among [`every_type`].
pub const ANALOG: &str = "Analog";
/// The analog variable's initial value.
pub const ANALOG_INITIAL: f64 = 100.0;
/// The analog variable's EURange, (low, high).
pub const EU_RANGE: (f64, f64) = (0.0, 200.0);

/// How the test server is set up.
#[derive(Debug, Clone)]
pub struct TestServerOptions {
    /// Where the server keeps its certificate; reuse it to keep the certificate across a
    /// restart.
    pub pki_dir: PathBuf,
    /// The port to listen on (0: any free one).
    pub port: u16,
    /// Only secure endpoints (Basic256Sha256 and Aes128Sha256RsaOaep, sign-and-encrypt, and
    /// Basic256Sha256 sign) with user-name login; otherwise one endpoint without
    /// security, anonymous.
    pub secure: bool,
    /// Extra Double variables `Bulk.0` ... (for load tests).
    pub bulk: usize,
    /// A second namespace registered before the test namespace, so its index moves.
    pub shift_namespace: bool,
    /// With `secure`: the X.509 user certificate (DER or PEM file) the endpoints also
    /// accept as a login.
    pub user_certificate: Option<PathBuf>,
    /// Trust every client's application certificate (the default); otherwise only those
    /// in `pki_dir/trusted` (see [`TestServerOptions::trust_only_clients`]) are accepted,
    /// checked at each connect, and unknown ones are stored in `pki_dir/rejected`.
    pub trust_any_client: bool,
}

impl TestServerOptions {
    /// An anonymous server without security on any free port, its PKI under `pki_dir`.
    pub fn new(pki_dir: &Path) -> Self {
        TestServerOptions {
            pki_dir: pki_dir.to_owned(),
            port: 0,
            secure: false,
            bulk: 0,
            shift_namespace: false,
            user_certificate: None,
            trust_any_client: true,
        }
    }

    /// Makes `certificates` (files, DER or PEM) the only client application certificates
    /// in the server's trust list; takes effect at the next connect, also while it runs.
    pub fn trust_only_clients(&self, certificates: &[&Path]) {
        let trusted = self.pki_dir.join("trusted");
        let _ = std::fs::remove_dir_all(&trusted);
        std::fs::create_dir_all(&trusted).expect("create the server's trusted directory");
        for path in certificates {
            let cert = CertificateStore::read_cert(path).expect("a client certificate");
            let der = cert.to_der().expect("encode a client certificate");
            std::fs::write(trusted.join(CertificateStore::cert_file_name(&cert)), der)
                .expect("write a trusted client certificate");
        }
    }

    /// The server's own certificate file (created on its first start).
    pub fn certificate_path(&self) -> PathBuf {
        self.pki_dir.join("own").join("cert.der")
    }
}

/// Creates a self-signed certificate (`dir/NAME.der`) and its private key (`dir/NAME.pem`)
/// whose application URI is `uri`: an X.509 user identity, or a replacement application
/// certificate. Returns (certificate, key).
pub fn create_certificate(dir: &Path, name: &str, uri: &str) -> (PathBuf, PathBuf) {
    let data = X509Data {
        key_size: 2048,
        common_name: name.to_owned(),
        organization: "fieldlink tests".to_owned(),
        organizational_unit: String::new(),
        country: String::new(),
        state: String::new(),
        alt_host_names: X509Data::alt_host_names(uri, None, false, true, false),
        // Longer than the agent's renewal margin, or it would replace the certificate.
        certificate_duration_days: 365,
    };
    let (cert, key) = (
        dir.join(format!("{name}.der")),
        dir.join(format!("{name}.pem")),
    );
    CertificateStore::create_certificate_and_key(&data, true, &cert, &key)
        .expect("create a test certificate");
    (cert, key)
}

/// The variables of every type, with their initial values: (name, value).
pub fn every_type() -> Vec<(&'static str, Variant)> {
    vec![
        ("Boolean", Variant::Boolean(true)),
        ("SByte", Variant::SByte(-8)),
        ("Byte", Variant::Byte(200)),
        ("Int16", Variant::Int16(-300)),
        ("UInt16", Variant::UInt16(60000)),
        ("Int32", Variant::Int32(-70000)),
        ("UInt32", Variant::UInt32(4_000_000_000)),
        ("Int64", Variant::Int64(-5_000_000_000_000)),
        ("UInt64", Variant::UInt64(u64::MAX)),
        ("Float", Variant::Float(0.1)),
        ("Double", Variant::Double(2.25)),
        ("String", Variant::String("späne".into())),
        (
            "LocalizedText",
            Variant::LocalizedText(Box::new(LocalizedText::new("de", "Ein"))),
        ),
        (
            "DateTime",
            Variant::DateTime(Box::new(DateTime::ymd_hms(2025, 11, 27, 0, 0, 0))),
        ),
        (
            "StatusCode",
            Variant::StatusCode(StatusCode::BadSensorFailure),
        ),
        // Not mappable: a clear error for that point.
        ("Guid", Variant::Guid(Box::new(Guid::null()))),
        // Changes on request, for subscription tests.
        ("Counter", Variant::Int32(0)),
    ]
}

/// A running test server.
pub struct TestServer {
    handle: ServerHandle,
    manager: Arc<SimpleNodeManager>,
    namespace: u16,
    addr: SocketAddr,
    task: JoinHandle<()>,
    options: TestServerOptions,
}

impl TestServer {
    /// Starts a server with `options`.
    pub async fn start(options: TestServerOptions) -> TestServer {
        let listener = TcpListener::bind(("127.0.0.1", options.port))
            .await
            .expect("bind the test server");
        let addr = listener.local_addr().expect("local address");
        let url = format!("opc.tcp://127.0.0.1:{}/", addr.port());

        let mut builder = ServerBuilder::new()
            .application_name("fieldlink test server")
            .application_uri("urn:fieldlink:test-server")
            .product_uri("urn:fieldlink:test-server")
            .create_sample_keypair(true)
            .pki_dir(&options.pki_dir)
            .host("127.0.0.1")
            .port(addr.port())
            .discovery_urls(vec![url])
            .trust_client_certs(options.trust_any_client)
            .diagnostics_enabled(true)
            .max_session_timeout_ms(120_000);
        if options.shift_namespace {
            builder = builder.with_node_manager(simple_node_manager(
                NamespaceMetadata {
                    namespace_uri: "urn:fieldlink:test:shifted".to_owned(),
                    ..Default::default()
                },
                "shift",
            ));
        }
        builder = builder.with_node_manager(simple_node_manager(
            NamespaceMetadata {
                namespace_uri: NAMESPACE.to_owned(),
                ..Default::default()
            },
            "fieldlink-test",
        ));
        builder = if options.secure {
            let mut tokens = vec!["operator"];
            builder =
                builder.add_user_token("operator", ServerUserToken::user_pass(USER, PASSWORD));
            if let Some(cert) = &options.user_certificate {
                tokens.push("x509-user");
                builder =
                    builder.add_user_token("x509-user", ServerUserToken::x509("x509-user", cert));
            }
            let tokens = tokens.as_slice();
            builder
                .add_endpoint(
                    "basic256sha256_sign_encrypt",
                    (
                        "/",
                        SecurityPolicy::Basic256Sha256,
                        MessageSecurityMode::SignAndEncrypt,
                        tokens,
                    ),
                )
                .add_endpoint(
                    "basic256sha256_sign",
                    (
                        "/",
                        SecurityPolicy::Basic256Sha256,
                        MessageSecurityMode::Sign,
                        tokens,
                    ),
                )
                .add_endpoint(
                    "aes128_sign_encrypt",
                    (
                        "/",
                        SecurityPolicy::Aes128Sha256RsaOaep,
                        MessageSecurityMode::SignAndEncrypt,
                        tokens,
                    ),
                )
        } else {
            let tokens: &[&str] = &[ANONYMOUS_USER_TOKEN_ID];
            builder.add_endpoint(
                "none",
                ("/", SecurityPolicy::None, MessageSecurityMode::None, tokens),
            )
        };
        let limits = builder.limits_mut();
        // Room for the load tests' 10,000 monitored items.
        limits.subscriptions.max_monitored_items_per_sub = 100_000;
        limits.subscriptions.max_queued_notifications = 100_000;
        limits.operational.max_monitored_items_per_call = 10_000;
        limits.operational.max_nodes_per_read = 10_000;

        let (server, handle) = builder.build().expect("build the test server");
        let manager = handle
            .node_managers()
            .iter()
            .find_map(|m| {
                let m: Arc<SimpleNodeManager> = m.clone().into_any_arc().downcast().ok()?;
                m.namespaces()
                    .values()
                    .any(|uri| uri == NAMESPACE)
                    .then_some(m)
            })
            .expect("the test node manager");
        let task = tokio::spawn(async move {
            if let Err(e) = server.run_with(listener).await {
                eprintln!("test server stopped: {e}");
            }
        });
        let namespace = handle
            .get_namespace_index(NAMESPACE)
            .expect("the test namespace is registered");
        let server = TestServer {
            handle,
            manager,
            namespace,
            addr,
            task,
            options,
        };
        server.populate();
        server
    }

    fn populate(&self) {
        let folder = self.node(FOLDER);
        let mut space = self.manager.address_space().write();
        space.add_folder(&folder, FOLDER, FOLDER, &ObjectId::ObjectsFolder.into());
        let mut variables: Vec<Variable> = every_type()
            .into_iter()
            .map(|(name, value)| {
                let id = self.node(&format!("{FOLDER}.{name}"));
                let data_type = match &value {
                    Variant::Guid(_) => DataTypeId::Guid,
                    _ => value
                        .data_type()
                        .and_then(|t| t.node_id.as_data_type_id().ok())
                        .unwrap_or(DataTypeId::BaseDataType),
                };
                let mut v = Variable::new_data_value(&id, name, name, data_type, None, None, value);
                v.set_access_level(AccessLevel::CURRENT_READ | AccessLevel::CURRENT_WRITE);
                v.set_user_access_level(AccessLevel::CURRENT_READ | AccessLevel::CURRENT_WRITE);
                v
            })
            .collect();
        let analog = self.node(&format!("{FOLDER}.{ANALOG}"));
        variables.push(Variable::new(&analog, ANALOG, ANALOG, ANALOG_INITIAL));
        for i in 0..self.options.bulk {
            let id = self.node(&format!("Bulk.{i}"));
            variables.push(Variable::new(
                &id,
                format!("Bulk{i}"),
                format!("Bulk{i}"),
                0.0f64,
            ));
        }
        space.add_variables(variables, &folder);
        // The property the server reads to turn a percent deadband into an absolute one.
        VariableBuilder::new(
            &self.node(&format!("{FOLDER}.{ANALOG}.EURange")),
            "EURange",
            "EURange",
        )
        .data_type(DataTypeId::Range)
        .value(ExtensionObject::from_message(Range {
            low: EU_RANGE.0,
            high: EU_RANGE.1,
        }))
        .has_type_definition(VariableTypeId::PropertyType)
        .property_of(analog)
        .insert(&mut *space);
    }

    /// The NodeId of `name` (e.g. `Machine.Double`) in the test namespace.
    pub fn node(&self, name: &str) -> NodeId {
        NodeId::new(self.namespace, name)
    }

    /// The config's form of that NodeId, by namespace URI.
    pub fn node_text(name: &str) -> String {
        format!("nsu={NAMESPACE};s={name}")
    }

    /// The endpoint URL, `opc.tcp://127.0.0.1:PORT/`.
    pub fn endpoint(&self) -> String {
        format!("opc.tcp://127.0.0.1:{}/", self.addr.port())
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Sets a variable's value, with a source timestamp of now, notifying subscriptions.
    pub fn set(&self, name: &str, value: Variant) {
        self.set_data_value(name, DataValue::new_now(value));
    }

    /// Sets a variable's whole data value (status, timestamps).
    pub fn set_data_value(&self, name: &str, value: DataValue) {
        let id = self.node(name);
        self.manager
            .set_value(self.handle.subscriptions(), &id, None, value)
            .expect("set a test variable");
    }

    /// Sets many Double variables at once (for load tests).
    pub fn set_many(&self, values: &[(NodeId, f64)]) {
        let now = DateTime::now();
        let values: Vec<(NodeId, DataValue)> = values
            .iter()
            .map(|(id, v)| {
                let dv = DataValue {
                    value: Some(Variant::Double(*v)),
                    status: Some(StatusCode::Good),
                    source_timestamp: Some(now),
                    server_timestamp: Some(now),
                    ..DataValue::default()
                };
                (id.clone(), dv)
            })
            .collect();
        self.manager
            .set_values(
                self.handle.subscriptions(),
                values.iter().map(|(id, dv)| (id, None, dv.clone())),
            )
            .expect("set test variables");
    }

    /// The server's certificate file.
    pub fn certificate_path(&self) -> PathBuf {
        self.options.certificate_path()
    }

    /// The server certificate's thumbprint (as `fieldlink opcua trust` takes it).
    pub fn certificate_thumbprint(&self) -> String {
        let cert = CertificateStore::read_cert(&self.certificate_path())
            .expect("the test server's certificate");
        cert.thumbprint().as_hex_string()
    }

    /// The number of sessions the server holds.
    pub fn session_count(&self) -> u32 {
        let id = VariableId::Server_ServerDiagnostics_ServerDiagnosticsSummary_CurrentSessionCount;
        match self.handle.info().diagnostics.get(id).and_then(|v| v.value) {
            Some(Variant::UInt32(n)) => n,
            _ => 0,
        }
    }

    /// Stops the server (its port is free again when this returns).
    pub async fn stop(self) -> TestServerOptions {
        self.handle.cancel();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.task).await;
        let mut options = self.options;
        options.port = self.addr.port();
        options
    }
}
