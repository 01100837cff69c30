//! The zstd dictionaries packed payloads are compressed with, shipped in the agent and the
//! platform alike. A frame names its dictionary by id in its own header, so every
//! dictionary ever shipped stays here, unchanged: a receiver must read what any sender
//! compressed. How they are made: `wire/dict/README.md`.

use std::sync::OnceLock;

/// A dictionary and its id (the one in its header and in the frames made with it).
pub struct Dictionary {
    /// The id.
    pub id: u32,
    /// The dictionary as `zstd --train` wrote it.
    pub bytes: &'static [u8],
    prepared: OnceLock<zstd::dict::DecoderDictionary<'static>>,
}

impl Dictionary {
    /// The dictionary digested for decompression, built on first use.
    pub(crate) fn prepared(&self) -> &zstd::dict::DecoderDictionary<'static> {
        self.prepared
            .get_or_init(|| zstd::dict::DecoderDictionary::copy(self.bytes))
    }
}

static PACKED_1: Dictionary = Dictionary {
    id: 0xF101,
    bytes: include_bytes!("../dict/packed-1.zdict"),
    prepared: OnceLock::new(),
};

/// Every dictionary shipped, oldest first; the last is the one new payloads use.
pub static ALL: [&Dictionary; 1] = [&PACKED_1];

/// The dictionary new packed payloads are compressed with.
pub fn current() -> &'static Dictionary {
    ALL[ALL.len() - 1]
}

/// The dictionary with `id`, if this build has it.
pub fn by_id(id: u32) -> Option<&'static Dictionary> {
    ALL.into_iter().find(|d| d.id == id)
}
