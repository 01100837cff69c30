//! The fieldlink MQTT contract (version 1: topics under `fieldlink/v1`; `data` payloads of
//! versions 1 and 2), shared by the agent and the platform.
//!
//! Parts:
//! - [`sample`]: one reading ([`Sample`], [`Value`], [`Quality`]);
//! - [`batch`]: what goes out on the `data` topic ([`Batch`]);
//! - [`topic`]: the topic names under `fieldlink/v1/{gateway}`;
//! - [`message`]: the retained `status` (with each device's health) and `meta` payloads,
//!   and the platform's `ack`;
//! - [`config`]: the configuration the platform pushes to a gateway ([`ConfigMessage`]);
//! - [`mqtt_url`]: the broker URL that enrollment hands out and the agent connects to;
//! - [`enroll`]: the enrollment call of the platform's HTTP API, request and answer
//!   ([`EnrollRequest`], [`Enrollment`]), and the API's error body;
//! - [`backoff`]: the reconnect policy both ends of the MQTT link follow ([`Backoff`]);
//! - [`codec`]: bytes on the wire ([`Compression`]): UTF-8 JSON or one zstd frame holding it
//!   (payload version 1), or the packed layout in a zstd frame (version 2); the decoder
//!   reads every version, told apart by their first bytes;
//! - [`packed`]: the packed layout, a batch as columns;
//! - `zstd_frame` (private): zstd frames, compressed with a context kept per thread and
//!   decompressed into a bounded buffer;
//! - [`dictionary`]: the zstd dictionaries packed payloads are compressed with.
//!
//! Invariants: the JSON produced here is exactly the shape of `DESIGN.md` (field names and
//! order are pinned by golden tests), and every payload version decodes to the batch that
//! was encoded (golden bytes pin each version); this crate does no I/O and has no async.

pub mod backoff;
pub mod batch;
pub mod codec;
pub mod config;
pub mod dictionary;
pub mod enroll;
pub mod message;
pub mod mqtt_url;
pub mod packed;
mod pool;
pub mod sample;
pub mod topic;
mod zstd_frame;

pub use backoff::Backoff;
pub use batch::Batch;
pub use codec::{
    Compression, DecodeError, Framing, decode_batch, encode_batch, encode_batch_into,
    encode_batch_with, payload_json,
};
pub use config::{ConfigMessage, ConfigMessageError};
pub use enroll::{EnrollRequest, Enrollment};
pub use message::{
    Ack, AckState, ConfigState, DeviceHealth, DeviceMeta, GatewayState, Meta, PointMeta, PointRole,
    ResumedAfterCrash, Status,
};
pub use mqtt_url::{MqttUrl, MqttUrlError};
pub use sample::{Quality, Sample, Value};
pub use topic::Topics;
