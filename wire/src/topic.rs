//! Topic names of the MQTT contract, version 1.

/// The prefix of every fieldlink topic.
pub const PREFIX: &str = "fieldlink/v1";

/// The filter of every gateway's `data` topic: what the platform's ingest subscribes to
/// (QoS 1), directly or as `$share/GROUP/fieldlink/v1/+/data`.
pub const DATA_FILTER: &str = "fieldlink/v1/+/data";
/// The filter of every gateway's retained `status` topic.
pub const STATUS_FILTER: &str = "fieldlink/v1/+/status";
/// The filter of every gateway's retained `meta` topic.
pub const META_FILTER: &str = "fieldlink/v1/+/meta";

/// The topics of one gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// `fieldlink/v1/{gateway}/data`: batches, QoS 1, not retained.
    pub data: String,
    /// `fieldlink/v1/{gateway}/status`: retained birth and will.
    pub status: String,
    /// `fieldlink/v1/{gateway}/meta`: retained device and point catalogue.
    pub meta: String,
    /// `fieldlink/v1/{gateway}/ack`: the platform's retained acknowledgement of what it
    /// stored ([`crate::Ack`]); written by the platform only.
    pub ack: String,
    /// `fieldlink/v1/{gateway}/config`: the configuration the platform pushes
    /// ([`crate::ConfigMessage`]), retained, QoS 1; written by the platform only.
    pub config: String,
}

impl Topics {
    /// The topics of the gateway `gateway`.
    pub fn new(gateway: &str) -> Self {
        Topics {
            data: format!("{PREFIX}/{gateway}/data"),
            status: format!("{PREFIX}/{gateway}/status"),
            meta: format!("{PREFIX}/{gateway}/meta"),
            ack: format!("{PREFIX}/{gateway}/ack"),
            config: format!("{PREFIX}/{gateway}/config"),
        }
    }
}

/// Which of a gateway's topics a received topic name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind {
    /// The `data` topic.
    Data,
    /// The `status` topic.
    Status,
    /// The `meta` topic.
    Meta,
    /// The `ack` topic.
    Ack,
    /// The `config` topic.
    Config,
}

/// Splits a received topic into the gateway id and the kind; `None` if it is not ours.
pub fn parse(topic: &str) -> Option<(&str, TopicKind)> {
    let rest = topic.strip_prefix(PREFIX)?.strip_prefix('/')?;
    let (gateway, kind) = rest.split_once('/')?;
    if gateway.is_empty() || gateway.contains(['+', '#']) {
        return None;
    }
    let kind = match kind {
        "data" => TopicKind::Data,
        "status" => TopicKind::Status,
        "meta" => TopicKind::Meta,
        "ack" => TopicKind::Ack,
        "config" => TopicKind::Config,
        _ => return None,
    };
    Some((gateway, kind))
}

/// True if `id` can be a gateway id: it must be one topic level (no `/`, `+`, `#`),
/// non-empty, at most 64 bytes of letters, digits, `-`, `_` and `.`.
pub fn is_valid_gateway_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}
