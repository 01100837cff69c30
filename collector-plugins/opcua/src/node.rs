//! Point addresses: NodeIds as written in the configuration, with the namespace given by
//! index (`ns=2;s=Motor.Speed`) or by URI (`nsu=urn:acme:plc;i=1001`), resolved to a
//! [`NodeId`] against the server's namespace array after each connect.

use opcua::types::{Identifier, NamespaceMap, NodeId};
use std::fmt;
use std::str::FromStr;

/// Where a node's namespace comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Namespace {
    /// A fixed index into the server's namespace array (`ns=2`; absent means 0).
    Index(u16),
    /// A namespace URI (`nsu=...`), looked up in the namespace array after each connect,
    /// so that a server that reorders its namespaces on restart breaks nothing.
    Uri(String),
}

/// A configured NodeId, parsed once at load time.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeAddress {
    /// The namespace, by index or by URI.
    pub namespace: Namespace,
    /// The identifier within the namespace (`i=`, `s=`, `g=` or `b=`).
    pub identifier: Identifier,
}

/// Why a NodeId string could not be parsed; the text says what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeIdError {
    /// The text does not have the form `[ns=N;|nsu=URI;]TYPE=VALUE`.
    #[error(
        "must look like \"ns=2;s=Machine.Speed\", \"ns=3;i=1001\", \"nsu=urn:vendor:plc;s=Speed\" or \"i=2258\""
    )]
    Syntax,
    /// `ns=` is not a number from 0 to 65535.
    #[error("`ns=` must be a namespace index from 0 to 65535")]
    Index,
    /// `nsu=` has an empty URI.
    #[error("`nsu=` needs a namespace URI")]
    EmptyUri,
    /// The identifier after the namespace is not `i=`, `s=`, `g=` or `b=` with a valid value.
    #[error("the identifier must be i=NUMBER, s=TEXT, g=GUID or b=BASE64 (found {0:?})")]
    Identifier(String),
}

/// The namespace URI was not in the server's namespace array.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("namespace {0:?} is not in the server's namespace array")]
pub struct UnknownNamespace(pub String);

impl NodeAddress {
    /// The NodeId on a server whose namespace array is `namespaces`.
    pub fn resolve(&self, namespaces: &NamespaceMap) -> Result<NodeId, UnknownNamespace> {
        let index = match &self.namespace {
            Namespace::Index(i) => *i,
            Namespace::Uri(uri) => namespaces
                .get_index(uri)
                .ok_or_else(|| UnknownNamespace(uri.clone()))?,
        };
        Ok(NodeId::new(index, self.identifier.clone()))
    }

    /// The address of a NodeId as the server names it (by index).
    pub fn from_node_id(node: &NodeId) -> Self {
        NodeAddress {
            namespace: Namespace::Index(node.namespace),
            identifier: node.identifier.clone(),
        }
    }
}

impl FromStr for NodeAddress {
    type Err = NodeIdError;

    fn from_str(text: &str) -> Result<Self, NodeIdError> {
        let text = text.trim();
        let (namespace, rest) = if let Some(rest) = text.strip_prefix("nsu=") {
            // The URI runs to the last `;` before the identifier: URIs may hold `;` escaped as
            // %3b (Part 6, 5.3.1.11), and identifiers may hold `;` themselves, so split at the
            // first `;` that is followed by an identifier prefix.
            let split = find_identifier_start(rest).ok_or(NodeIdError::Syntax)?;
            let uri = rest[..split - 1].replace("%3b", ";").replace("%25", "%");
            if uri.is_empty() {
                return Err(NodeIdError::EmptyUri);
            }
            (Namespace::Uri(uri), &rest[split..])
        } else if let Some(rest) = text.strip_prefix("ns=") {
            let (index, rest) = rest.split_once(';').ok_or(NodeIdError::Syntax)?;
            let index = index.parse::<u16>().map_err(|_| NodeIdError::Index)?;
            (Namespace::Index(index), rest)
        } else {
            (Namespace::Index(0), text)
        };
        let identifier = parse_identifier(rest)?;
        Ok(NodeAddress {
            namespace,
            identifier,
        })
    }
}

/// The byte offset, in the text after `nsu=`, where the identifier begins: just after the
/// first `;` followed by `i=`, `s=`, `g=` or `b=`.
fn find_identifier_start(rest: &str) -> Option<usize> {
    rest.match_indices(';').map(|(i, _)| i + 1).find(|&start| {
        let tail = rest.as_bytes().get(start..start + 2);
        matches!(tail, Some([b'i' | b's' | b'g' | b'b', b'=']))
    })
}

/// Parses `i=`, `s=`, `g=` or `b=` followed by the value.
fn parse_identifier(text: &str) -> Result<Identifier, NodeIdError> {
    let bad = || NodeIdError::Identifier(text.to_owned());
    let bytes = text.as_bytes();
    // Checked here: opcua's parser slices the first two bytes, which must be ASCII.
    if bytes.len() < 3 || !matches!(bytes, [b'i' | b's' | b'g' | b'b', b'=', ..]) {
        return Err(bad());
    }
    Identifier::from_str(text).map_err(|()| bad())
}

impl fmt::Display for NodeAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Namespace::Index(0) => {}
            Namespace::Index(i) => write!(f, "ns={i};")?,
            Namespace::Uri(uri) => {
                write!(f, "nsu={};", uri.replace('%', "%25").replace(';', "%3b"))?
            }
        }
        match &self.identifier {
            // opcua prints a Guid with its Debug form; the spec's text form is the plain one.
            Identifier::Guid(g) => write!(f, "g={g}"),
            other => write!(f, "{other}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NodeAddress, NodeIdError> {
        text.parse()
    }

    #[test]
    fn index_string_and_numeric_forms_parse() {
        let a = parse("ns=2;s=Line1.Press.Speed").unwrap();
        assert_eq!(a.namespace, Namespace::Index(2));
        assert_eq!(a.identifier, Identifier::from("Line1.Press.Speed"));
        let a = parse("ns=3;i=1001").unwrap();
        assert_eq!(
            (a.namespace, a.identifier),
            (Namespace::Index(3), Identifier::Numeric(1001))
        );
        let a = parse("i=2258").unwrap();
        assert_eq!(a.namespace, Namespace::Index(0));
        assert_eq!(a.to_string(), "i=2258");
    }

    #[test]
    fn namespace_uris_parse_and_resolve_against_the_namespace_array() {
        let a = parse("nsu=urn:acme:plc;s=Speed;Raw").unwrap();
        assert_eq!(a.namespace, Namespace::Uri("urn:acme:plc".into()));
        assert_eq!(a.identifier, Identifier::from("Speed;Raw"));
        let mut map = NamespaceMap::new();
        map.add_namespace("urn:other");
        map.add_namespace("urn:acme:plc");
        assert_eq!(a.resolve(&map).unwrap(), NodeId::new(2, "Speed;Raw"));
        let missing = parse("nsu=urn:gone;i=5").unwrap();
        assert_eq!(
            missing.resolve(&map),
            Err(UnknownNamespace("urn:gone".into()))
        );
    }

    #[test]
    fn uris_with_escaped_semicolons_round_trip() {
        let a = parse("nsu=urn:a%3bb;i=7").unwrap();
        assert_eq!(a.namespace, Namespace::Uri("urn:a;b".into()));
        assert_eq!(a.to_string(), "nsu=urn:a%3bb;i=7");
    }

    #[test]
    fn malformed_node_ids_are_refused_without_panicking() {
        assert_eq!(parse("ns=x;i=1"), Err(NodeIdError::Index));
        assert_eq!(parse("ns=70000;i=1"), Err(NodeIdError::Index));
        assert_eq!(parse("nsu=;i=1"), Err(NodeIdError::EmptyUri));
        assert_eq!(parse("nsu=urn:x"), Err(NodeIdError::Syntax));
        assert!(matches!(parse("ns=2;x=1"), Err(NodeIdError::Identifier(_))));
        assert!(matches!(
            parse("ns=2;i=abc"),
            Err(NodeIdError::Identifier(_))
        ));
        assert!(matches!(parse("中文"), Err(NodeIdError::Identifier(_))));
        assert!(matches!(
            parse("ns=2;中=1"),
            Err(NodeIdError::Identifier(_))
        ));
        assert!(matches!(parse(""), Err(NodeIdError::Identifier(_))));
    }
}
