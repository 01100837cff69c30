//! `fieldlink browse opcua`: walks a server's address space and lists its variables with
//! NodeId, browse path, data type and access level, and renders ready `[[device.point]]`
//! blocks, so an integrator can write a config without a GUI client.
//!
//! The walk follows hierarchical references forward from the start node (Objects by
//! default, whose `Server` object, the server's own diagnostics, is skipped), breadth
//! first, to a depth limit; properties of variables (EURange, EngineeringUnits...) are
//! metadata and not listed. NodeIds are printed with their namespace URI (`nsu=`), which
//! survives a server that renumbers its namespaces.

use crate::device::OpcuaDevice;
use crate::node::{Namespace, NodeAddress};
use crate::session::{self, ConnectError};
use crate::value::status_name;
use fieldlink_collector_api::plugin::toml_string;
use opcua::client::Session;
use opcua::types::{
    AttributeId, BrowseDescription, BrowseDirection, ByteString, DataTypeId, NamespaceMap,
    NodeClass, NodeId, ObjectId, ReadValueId, ReferenceTypeId, TimestampsToReturn, Variant,
};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::time::Duration;

/// Nodes browsed, and attributes read, per request.
const PER_REQUEST: usize = 100;
/// The most nodes a walk visits: a runaway walk of a huge server stops here.
pub const MAX_NODES: usize = 20_000;

/// Why browsing failed.
#[derive(Debug, thiserror::Error)]
pub enum BrowseError {
    /// The server could not be reached or refused the session.
    #[error("cannot connect: {0}")]
    Connect(#[from] ConnectError),
    /// A Browse or Read request failed.
    #[error("{service} failed: {status}")]
    Service {
        /// The service.
        service: &'static str,
        /// The status name.
        status: String,
    },
}

fn service_error(service: &'static str) -> impl Fn(opcua::types::Error) -> BrowseError {
    move |e| BrowseError::Service {
        service,
        status: status_name(e.status()).to_owned(),
    }
}

/// One variable found.
#[derive(Debug, Clone, PartialEq)]
pub struct BrowsedVariable {
    /// Its NodeId as the config writes it (`nsu=...;s=...`, or `i=...` in namespace 0).
    pub node: String,
    /// Its browse path from the start node, browse names joined by `/`.
    pub path: String,
    /// Its data type's name (`Double`, `String`, a custom type's browse name).
    pub data_type: String,
    /// `r`, `w`, `rw` or `-`, plus `h` when history is readable.
    pub access: String,
    /// False for arrays and matrices.
    pub scalar: bool,
    /// Why fieldlink cannot read it, if it cannot.
    pub unsupported: Option<String>,
}

/// What to browse.
#[derive(Debug, Clone)]
pub struct BrowseOptions {
    /// The server and how to connect (its points are ignored).
    pub device: OpcuaDevice,
    /// Where to start (default: the Objects folder).
    pub start: Option<NodeAddress>,
    /// How many levels below the start to descend.
    pub depth: u32,
}

/// Connects, walks the address space and closes the session.
pub async fn browse(options: &BrowseOptions) -> Result<Vec<BrowsedVariable>, BrowseError> {
    let connection = session::connect(&options.device).await?;
    let result = walk(&connection.session, options).await;
    connection.close(Duration::from_secs(2)).await;
    result
}

async fn walk(
    session: &Session,
    options: &BrowseOptions,
) -> Result<Vec<BrowsedVariable>, BrowseError> {
    let namespaces = session
        .read_namespace_array()
        .await
        .map_err(service_error("reading the namespace array"))?;
    let start = match &options.start {
        None => NodeId::from(ObjectId::ObjectsFolder),
        Some(address) => address
            .resolve(&namespaces)
            .map_err(|e| BrowseError::Service {
                service: "resolving --node",
                status: e.to_string(),
            })?,
    };
    let skip_server = options.start.is_none();

    // (node, path, depth, is a variable)
    let mut queue: VecDeque<(NodeId, String, u32, bool)> = VecDeque::new();
    queue.push_back((start.clone(), String::new(), 0, false));
    let mut seen: HashSet<NodeId> = HashSet::from([start.clone()]);
    let mut variables: Vec<(NodeId, String)> = Vec::new();
    // The start node itself may be a variable.
    if let Some(class) = read_node_class(session, &start).await?
        && class == NodeClass::Variable
    {
        variables.push((start.clone(), String::new()));
    }

    while !queue.is_empty() && seen.len() < MAX_NODES {
        let batch: Vec<_> = (0..PER_REQUEST).map_while(|_| queue.pop_front()).collect();
        let descriptions: Vec<BrowseDescription> = batch
            .iter()
            .map(|(node, ..)| BrowseDescription {
                node_id: node.clone(),
                browse_direction: BrowseDirection::Forward,
                reference_type_id: ReferenceTypeId::HierarchicalReferences.into(),
                include_subtypes: true,
                node_class_mask: NodeClass::Object as u32 | NodeClass::Variable as u32,
                // BrowseName, NodeClass and ReferenceType are all this walk needs.
                result_mask: 0x3f,
            })
            .collect();
        let mut results = session
            .browse(&descriptions, 1000, None)
            .await
            .map_err(service_error("Browse"))?;
        // Continuation points: fetch the rest of each node's references.
        let mut pending: Vec<(usize, ByteString)> = results
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.continuation_point.is_null_or_empty())
            .map(|(i, r)| (i, r.continuation_point.clone()))
            .collect();
        while !pending.is_empty() {
            let points: Vec<ByteString> = pending.iter().map(|(_, c)| c.clone()).collect();
            let more = session
                .browse_next(false, &points)
                .await
                .map_err(service_error("BrowseNext"))?;
            let mut next = Vec::new();
            for ((i, _), r) in pending.iter().zip(more) {
                if let Some(refs) = r.references {
                    results[*i]
                        .references
                        .get_or_insert_with(Vec::new)
                        .extend(refs);
                }
                if !r.continuation_point.is_null_or_empty() {
                    next.push((*i, r.continuation_point));
                }
            }
            pending = next;
        }

        for ((_, path, depth, parent_is_variable), result) in batch.iter().zip(results) {
            for reference in result.references.into_iter().flatten() {
                if *parent_is_variable
                    && reference.reference_type_id == ReferenceTypeId::HasProperty
                {
                    continue;
                }
                // Nodes on other servers are out of reach of this session.
                if reference.node_id.server_index != 0 {
                    continue;
                }
                let node = reference.node_id.node_id.clone();
                if skip_server && node == ObjectId::Server {
                    continue;
                }
                if !seen.insert(node.clone()) {
                    continue;
                }
                let name = reference.browse_name.name.as_ref().to_owned();
                let child_path = if path.is_empty() {
                    name
                } else {
                    format!("{path}/{name}")
                };
                let is_variable = reference.node_class == NodeClass::Variable;
                if is_variable {
                    variables.push((node.clone(), child_path.clone()));
                }
                if depth + 1 < options.depth {
                    queue.push_back((node, child_path, depth + 1, is_variable));
                }
            }
        }
    }

    // Listed by browse path, so related variables stand together.
    variables.sort_by(|a, b| a.1.cmp(&b.1));
    describe(session, &namespaces, variables).await
}

async fn read_node_class(
    session: &Session,
    node: &NodeId,
) -> Result<Option<NodeClass>, BrowseError> {
    let read = ReadValueId {
        node_id: node.clone(),
        attribute_id: AttributeId::NodeClass as u32,
        ..ReadValueId::default()
    };
    let values = session
        .read(&[read], TimestampsToReturn::Neither, 0.0)
        .await
        .map_err(service_error("Read"))?;
    Ok(match values.first().and_then(|v| v.value.as_ref()) {
        Some(Variant::Int32(c)) => NodeClass::try_from(*c).ok(),
        _ => None,
    })
}

/// Reads data type, value rank and access level of every variable and names the types.
async fn describe(
    session: &Session,
    namespaces: &NamespaceMap,
    variables: Vec<(NodeId, String)>,
) -> Result<Vec<BrowsedVariable>, BrowseError> {
    const ATTRIBUTES: [AttributeId; 3] = [
        AttributeId::DataType,
        AttributeId::ValueRank,
        AttributeId::AccessLevel,
    ];
    let mut attributes: Vec<Variant> = Vec::with_capacity(variables.len() * 3);
    for chunk in variables.chunks(PER_REQUEST) {
        let reads: Vec<ReadValueId> = chunk
            .iter()
            .flat_map(|(node, _)| {
                ATTRIBUTES.iter().map(move |a| ReadValueId {
                    node_id: node.clone(),
                    attribute_id: *a as u32,
                    ..ReadValueId::default()
                })
            })
            .collect();
        let values = session
            .read(&reads, TimestampsToReturn::Neither, 0.0)
            .await
            .map_err(service_error("Read"))?;
        let mut values: Vec<Variant> = values
            .into_iter()
            .map(|v| v.value.unwrap_or_default())
            .collect();
        values.resize(reads.len(), Variant::Empty);
        attributes.extend(values);
    }

    // Names of the data types outside namespace 0, read from their BrowseName.
    let mut custom: Vec<NodeId> = attributes
        .iter()
        .step_by(3)
        .filter_map(|v| match v {
            Variant::NodeId(id) if standard_type(id).is_none() => Some((**id).clone()),
            _ => None,
        })
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    custom.sort_by_key(|id| id.to_string());
    let mut custom_names: HashMap<NodeId, String> = HashMap::new();
    for chunk in custom.chunks(PER_REQUEST) {
        let reads: Vec<ReadValueId> = chunk
            .iter()
            .map(|id| ReadValueId {
                node_id: id.clone(),
                attribute_id: AttributeId::BrowseName as u32,
                ..ReadValueId::default()
            })
            .collect();
        let values = session
            .read(&reads, TimestampsToReturn::Neither, 0.0)
            .await
            .map_err(service_error("Read"))?;
        for (id, value) in chunk.iter().zip(values) {
            if let Some(Variant::QualifiedName(q)) = value.value {
                custom_names.insert(id.clone(), q.name.as_ref().to_owned());
            }
        }
    }

    let mut out = Vec::with_capacity(variables.len());
    for ((node, path), attrs) in variables.into_iter().zip(attributes.chunks(3)) {
        let (data_type, type_support) = match &attrs[0] {
            Variant::NodeId(id) => match standard_type(id) {
                Some((name, supported)) => (name.to_owned(), supported),
                None => (
                    custom_names
                        .get(id)
                        .cloned()
                        .unwrap_or_else(|| id.to_string()),
                    TypeSupport::Custom,
                ),
            },
            _ => ("?".to_owned(), TypeSupport::Custom),
        };
        let scalar = matches!(attrs[1], Variant::Int32(-1) | Variant::Empty);
        let access_bits = match attrs[2] {
            Variant::Byte(b) => b,
            _ => 0,
        };
        let access = access_text(access_bits);
        let unsupported = if access_bits & 0x01 == 0 {
            Some("not readable".to_owned())
        } else if !scalar {
            Some("an array: fieldlink reads scalars".to_owned())
        } else {
            match type_support {
                TypeSupport::Yes => None,
                TypeSupport::No => Some(format!("type {data_type} is not mapped")),
                TypeSupport::Custom => Some(format!(
                    "custom type {data_type}: enumerations read as integers, structures are not mapped"
                )),
            }
        };
        out.push(BrowsedVariable {
            node: node_text(&node, namespaces),
            path,
            data_type,
            access,
            scalar,
            unsupported,
        });
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TypeSupport {
    Yes,
    No,
    Custom,
}

/// The name of a namespace-0 data type and whether fieldlink maps it.
fn standard_type(id: &NodeId) -> Option<(&'static str, TypeSupport)> {
    use TypeSupport::{No, Yes};
    if id.namespace != 0 {
        return None;
    }
    let opcua::types::Identifier::Numeric(n) = id.identifier else {
        return None;
    };
    let id = DataTypeId::try_from(n).ok()?;
    Some(match id {
        DataTypeId::Boolean => ("Boolean", Yes),
        DataTypeId::SByte => ("SByte", Yes),
        DataTypeId::Byte => ("Byte", Yes),
        DataTypeId::Int16 => ("Int16", Yes),
        DataTypeId::UInt16 => ("UInt16", Yes),
        DataTypeId::Int32 => ("Int32", Yes),
        DataTypeId::UInt32 => ("UInt32", Yes),
        DataTypeId::Int64 => ("Int64", Yes),
        DataTypeId::UInt64 => ("UInt64", Yes),
        DataTypeId::Float => ("Float", Yes),
        DataTypeId::Double => ("Double", Yes),
        DataTypeId::String => ("String", Yes),
        DataTypeId::DateTime => ("DateTime", Yes),
        DataTypeId::StatusCode => ("StatusCode", Yes),
        DataTypeId::LocalizedText => ("LocalizedText", Yes),
        DataTypeId::Duration => ("Duration", Yes),
        DataTypeId::UtcTime => ("UtcTime", Yes),
        DataTypeId::LocaleId => ("LocaleId", Yes),
        DataTypeId::Number => ("Number", Yes),
        DataTypeId::Integer => ("Integer", Yes),
        DataTypeId::UInteger => ("UInteger", Yes),
        DataTypeId::Enumeration => ("Enumeration", Yes),
        DataTypeId::BaseDataType => ("BaseDataType", Yes),
        DataTypeId::VersionTime => ("VersionTime", Yes),
        DataTypeId::Counter => ("Counter", Yes),
        DataTypeId::IntegerId => ("IntegerId", Yes),
        DataTypeId::NumericRange => ("NumericRange", Yes),
        DataTypeId::Guid => ("Guid", No),
        DataTypeId::ByteString => ("ByteString", No),
        DataTypeId::XmlElement => ("XmlElement", No),
        DataTypeId::NodeId => ("NodeId", No),
        DataTypeId::ExpandedNodeId => ("ExpandedNodeId", No),
        DataTypeId::QualifiedName => ("QualifiedName", No),
        DataTypeId::Structure => ("Structure", No),
        _ => return None,
    })
}

fn access_text(bits: u8) -> String {
    let mut s = String::new();
    if bits & 0x01 != 0 {
        s.push('r');
    }
    if bits & 0x02 != 0 {
        s.push('w');
    }
    if s.is_empty() {
        s.push('-');
    }
    if bits & 0x04 != 0 {
        s.push('h');
    }
    s
}

/// A NodeId as the config should write it: by namespace URI outside namespace 0.
fn node_text(node: &NodeId, namespaces: &NamespaceMap) -> String {
    let uri = namespaces
        .known_namespaces()
        .iter()
        .find(|(_, i)| **i == node.namespace)
        .map(|(uri, _)| uri.clone());
    let address = match uri {
        Some(uri) if node.namespace != 0 => NodeAddress {
            namespace: Namespace::Uri(uri),
            identifier: node.identifier.clone(),
        },
        _ => NodeAddress::from_node_id(node),
    };
    address.to_string()
}

/// The listing and the `[[device.point]]` blocks, as `fieldlink browse` prints them.
pub fn render(endpoint: &str, variables: &[BrowsedVariable]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {} variables on {endpoint}", variables.len());
    let width = variables
        .iter()
        .map(|v| v.node.len())
        .max()
        .unwrap_or(0)
        .min(60);
    let type_width = variables
        .iter()
        .map(|v| v.data_type.len())
        .max()
        .unwrap_or(0)
        .min(24);
    let _ = writeln!(
        out,
        "# {:<width$}  {:<type_width$}  {:<6} PATH",
        "NODE", "TYPE", "ACCESS"
    );
    for v in variables {
        let _ = writeln!(
            out,
            "# {:<width$}  {:<type_width$}  {:<6} {}",
            v.node, v.data_type, v.access, v.path
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "[[device]]");
    let _ = writeln!(out, "name = \"CHANGE-ME\"");
    let _ = writeln!(out, "protocol = \"opcua\"");
    let _ = writeln!(out, "endpoint = {}", toml_string(endpoint));
    let mut names = HashSet::new();
    for v in variables {
        let base = if v.path.is_empty() {
            v.node.clone()
        } else {
            v.path.replace('/', ".")
        };
        let mut name = base.clone();
        let mut n = 2;
        while !names.insert(name.clone()) {
            name = format!("{base}_{n}");
            n += 1;
        }
        let _ = writeln!(out);
        let prefix = if v.unsupported.is_some() { "# " } else { "" };
        if let Some(why) = &v.unsupported {
            let _ = writeln!(out, "# skipped: {why}");
        }
        let _ = writeln!(out, "{prefix}[[device.point]]");
        let _ = writeln!(out, "{prefix}name = {}", toml_string(&name));
        let _ = writeln!(
            out,
            "{prefix}node = {}  # {} {}",
            toml_string(&v.node),
            v.data_type,
            v.access
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_levels_read_as_letters() {
        assert_eq!(access_text(0x01), "r");
        assert_eq!(access_text(0x03), "rw");
        assert_eq!(access_text(0x05), "rh");
        assert_eq!(access_text(0), "-");
    }

    #[test]
    fn node_ids_are_written_with_their_namespace_uri() {
        let mut map = NamespaceMap::new();
        map.add_namespace("urn:plant");
        assert_eq!(
            node_text(&NodeId::new(1, "Speed"), &map),
            "nsu=urn:plant;s=Speed"
        );
        assert_eq!(node_text(&NodeId::new(0, 2258u32), &map), "i=2258");
        assert_eq!(node_text(&NodeId::new(7, 5u32), &map), "ns=7;i=5");
    }

    #[test]
    fn rendered_blocks_are_valid_toml_points_and_skip_what_cannot_be_read() {
        let vars = vec![
            BrowsedVariable {
                node: "nsu=urn:plant;s=Line \"1\".Speed".into(),
                path: "Line1/Speed".into(),
                data_type: "Double".into(),
                access: "rw".into(),
                scalar: true,
                unsupported: None,
            },
            BrowsedVariable {
                node: "nsu=urn:plant;s=Raw".into(),
                path: "Line1/Raw".into(),
                data_type: "ByteString".into(),
                access: "r".into(),
                scalar: true,
                unsupported: Some("type ByteString is not mapped".into()),
            },
        ];
        let text = render("opc.tcp://plc:4840", &vars);
        assert!(text.contains("[[device.point]]\nname = \"Line1.Speed\"\nnode = \"nsu=urn:plant;s=Line \\\"1\\\".Speed\"  # Double rw"), "{text}");
        assert!(
            text.contains("# skipped: type ByteString is not mapped\n# [[device.point]]"),
            "{text}"
        );
    }
}
