//! An in-process OPC UA server for tests and benchmarks (feature `test-server`): a real
//! async-opcua server on loopback with a variable of every supported type, optional
//! secure endpoints and user login, that can be stopped and started again on the same
//! port. Test code: it panics on setup failures.

use opcua::crypto::{CertificateStore, SecurityPolicy};
use opcua::server::address_space::{AccessLevel, Variable};
use opcua::server::diagnostics::NamespaceMetadata;
use opcua::server::node_manager::memory::{SimpleNodeManager, simple_node_manager};
use opcua::server::{ANONYMOUS_USER_TOKEN_ID, ServerBuilder, ServerHandle, ServerUserToken};
use opcua::types::{
    DataTypeId, DataValue, DateTime, Guid, LocalizedText, MessageSecurityMode, NodeId, ObjectId,
    StatusCode, VariableId, Variant,
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
        }
    }
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
            .trust_client_certs(true)
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
            let tokens: &[&str] = &["operator"];
            builder
                .add_user_token("operator", ServerUserToken::user_pass(USER, PASSWORD))
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

    /// The server certificate's thumbprint (as `fieldlink opcua trust` takes it).
    pub fn certificate_thumbprint(&self) -> String {
        let cert = CertificateStore::read_cert(&self.options.pki_dir.join("own").join("cert.der"))
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
