//! zstd frames: compressing with a reused context, and decompressing into a bounded buffer
//! with the dictionary the frame's header names.
//!
//! Contexts are reused because creating one costs more than compressing a small batch.
//! Compression contexts are pooled (as many as compressions ever ran at once: one in the
//! agent, whose outbox encodes one batch at a time); decompression contexts, which the
//! platform's ingest uses, are kept per thread, and the dictionary's tables built once
//! per process.

use crate::dictionary;
use crate::pool::Pool;
use std::cell::RefCell;
use std::io::Read;
use std::ops::RangeInclusive;

/// The zstd levels a sender may choose: 1 (fastest) to 19 (smallest).
pub const ZSTD_LEVELS: RangeInclusive<i32> = 1..=19;

/// Why a frame could not be decompressed (the codec's [`crate::DecodeError`] says it to
/// receivers).
#[derive(Debug)]
pub(crate) enum FrameError {
    /// Not a valid zstd frame: truncated or corrupted.
    Invalid(String),
    /// It would decompress to more than `limit` bytes.
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// It names a dictionary this build does not have.
    UnknownDictionary(u32),
}

/// Which dictionary a frame is compressed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WithDictionary {
    /// None: a plain zstd frame (payload version 1's compressed JSON).
    No,
    /// The newest dictionary for packed content ([`dictionary::current`]).
    Packed,
}

/// A compression context and what it is set up for.
struct Compressor {
    level: i32,
    dictionary: WithDictionary,
    context: zstd::bulk::Compressor<'static>,
}

/// Compression contexts between uses.
static COMPRESSORS: Pool<Option<Compressor>> = Pool::new();

#[derive(Default)]
struct Contexts {
    /// A decompression context without a dictionary, and one per dictionary id used.
    plain: Option<zstd::bulk::Decompressor<'static>>,
    with_dictionary: Vec<(u32, zstd::bulk::Decompressor<'static>)>,
}

thread_local! {
    static CONTEXTS: RefCell<Contexts> = RefCell::new(Contexts::default());
}

/// Appends one zstd frame holding `data` to `out`, with its content size in the header (so
/// that a receiver allocates exactly once). False if zstd fails, which it does only when it
/// cannot allocate; `out` is then as it was.
pub(crate) fn compress(
    data: &[u8],
    level: i32,
    dictionary: WithDictionary,
    out: &mut Vec<u8>,
) -> bool {
    let level = level.clamp(*ZSTD_LEVELS.start(), *ZSTD_LEVELS.end());
    COMPRESSORS.with(
        || None,
        |slot| {
            let compressor = match slot {
                Some(c) if c.level == level && c.dictionary == dictionary => c,
                slot => {
                    *slot = None;
                    let context = match dictionary {
                        WithDictionary::No => zstd::bulk::Compressor::new(level),
                        WithDictionary::Packed => zstd::bulk::Compressor::with_dictionary(
                            level,
                            dictionary::current().bytes,
                        ),
                    };
                    let Ok(context) = context else {
                        return false;
                    };
                    slot.insert(Compressor {
                        level,
                        dictionary,
                        context,
                    })
                }
            };
            let start = out.len();
            out.reserve(zstd::zstd_safe::compress_bound(data.len()));
            // The frame goes after what `out` already holds.
            let mut cursor = std::io::Cursor::new(&mut *out);
            cursor.set_position(start as u64);
            let written = compressor.context.compress_to_buffer(data, &mut cursor);
            if written.is_err() {
                out.truncate(start);
            }
            written.is_ok()
        },
    )
}

/// Decompresses one zstd frame into at most `limit` bytes, with the dictionary its header
/// names (none if it names none).
pub(crate) fn decompress(frame: &[u8], limit: usize) -> Result<Vec<u8>, FrameError> {
    let dictionary = match zstd::zstd_safe::get_dict_id_from_frame(frame) {
        None => None,
        Some(id) => {
            Some(dictionary::by_id(id.get()).ok_or(FrameError::UnknownDictionary(id.get()))?)
        }
    };
    let invalid = |e: std::io::Error| FrameError::Invalid(e.to_string());
    match zstd::zstd_safe::get_frame_content_size(frame) {
        // The frame states its size (our encoders always write it): allocate exactly that;
        // zstd refuses to write past it if the header lies.
        Ok(Some(size)) => {
            let size = usize::try_from(size)
                .ok()
                .filter(|&s| s <= limit)
                .ok_or(FrameError::TooLarge { limit })?;
            CONTEXTS.with_borrow_mut(|contexts| {
                let context = match dictionary {
                    None => match &mut contexts.plain {
                        Some(context) => context,
                        slot => slot.insert(zstd::bulk::Decompressor::new().map_err(invalid)?),
                    },
                    Some(dictionary) => {
                        let at = match contexts
                            .with_dictionary
                            .iter()
                            .position(|(id, _)| *id == dictionary.id)
                        {
                            Some(at) => at,
                            None => {
                                let context = zstd::bulk::Decompressor::with_prepared_dictionary(
                                    dictionary.prepared(),
                                )
                                .map_err(invalid)?;
                                contexts.with_dictionary.push((dictionary.id, context));
                                contexts.with_dictionary.len() - 1
                            }
                        };
                        &mut contexts.with_dictionary[at].1
                    }
                };
                context.decompress(frame, size).map_err(invalid)
            })
        }
        // A streaming frame of unknown size (another encoder's): read it, stopping one
        // byte past the limit.
        Ok(None) => {
            let reader = std::io::BufReader::new(frame);
            let decoder = match dictionary {
                None => zstd::stream::read::Decoder::with_buffer(reader),
                Some(dictionary) => zstd::stream::read::Decoder::with_prepared_dictionary(
                    reader,
                    dictionary.prepared(),
                ),
            }
            .map_err(invalid)?;
            let mut out = Vec::new();
            decoder
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(invalid)?;
            if out.len() > limit {
                return Err(FrameError::TooLarge { limit });
            }
            Ok(out)
        }
        Err(_) => Err(FrameError::Invalid(
            "the frame header cannot be read".to_owned(),
        )),
    }
}
