//! Reading the log back through a map of its segments to their slots: frame headers one after
//! the other (recovery, loading a segment's entries) and whole records (reads).

use crate::error::Fault;
use crate::file::LogFile;
use crate::frame::{self, Header, Kind};
use crate::geometry::Geometry;
use crate::index::{Entry, Span};

/// Which slot each segment of a stretch of the log is in.
#[derive(Debug, Clone)]
pub(crate) struct SlotMap {
    geometry: Geometry,
    first: u64,
    slots: Vec<u16>,
}

impl SlotMap {
    /// Segments `first`, `first + 1`, ... are in `slots`.
    pub(crate) fn new(geometry: Geometry, first: u64, slots: Vec<u16>) -> Self {
        SlotMap {
            geometry,
            first,
            slots,
        }
    }

    /// The file offset of log position `lsn`, and the bytes left in its segment.
    fn locate(&self, lsn: u64) -> Option<(u64, u64)> {
        let seg = self.geometry.segment;
        let id = lsn / seg;
        let slot = *self
            .slots
            .get(usize::try_from(id.checked_sub(self.first)?).ok()?)?;
        let within = lsn - id * seg;
        Some((self.geometry.slot_offset(slot) + within, seg - within))
    }
}

/// Reads stretches of the log, through a buffer of `chunk` bytes for small reads.
pub(crate) struct LogReader<'a> {
    file: &'a LogFile,
    map: &'a SlotMap,
    buf: Vec<u8>,
    buf_lsn: u64,
    chunk: usize,
}

impl<'a> LogReader<'a> {
    /// A reader of `file` through `map`.
    pub(crate) fn new(file: &'a LogFile, map: &'a SlotMap, chunk: usize) -> Self {
        LogReader {
            file,
            map,
            buf: Vec::new(),
            buf_lsn: 0,
            chunk,
        }
    }

    /// Reads the log from `lsn` into `out`.
    pub(crate) fn read(&mut self, lsn: u64, out: &mut [u8]) -> Result<(), Fault> {
        let mut done = 0usize;
        while done < out.len() {
            let at = lsn + done as u64;
            if at >= self.buf_lsn && at < self.buf_lsn + self.buf.len() as u64 {
                let from = (at - self.buf_lsn) as usize;
                let n = (self.buf.len() - from).min(out.len() - done);
                out[done..done + n].copy_from_slice(&self.buf[from..from + n]);
                done += n;
                continue;
            }
            let (offset, left) = self.map.locate(at).ok_or_else(|| {
                Fault::Corrupted(format!(
                    "log position {at} is in no segment of the slot map"
                ))
            })?;
            let rest = out.len() - done;
            if rest >= self.chunk {
                let n = rest.min(usize::try_from(left).unwrap_or(usize::MAX));
                self.file.read_at(&mut out[done..done + n], offset)?;
                done += n;
                continue;
            }
            let n = self.chunk.min(usize::try_from(left).unwrap_or(usize::MAX));
            self.buf.resize(n, 0);
            let got = self.file.read_some_at(&mut self.buf, offset)?;
            if got == 0 {
                return Err(Fault::Corrupted(format!(
                    "the file ends before log position {at} (it was truncated)"
                )));
            }
            self.buf.truncate(got);
            self.buf_lsn = at;
        }
        Ok(())
    }

    /// The frame header at `lsn`, if a valid one is there.
    pub(crate) fn header(&mut self, lsn: u64) -> Result<Option<Header>, Fault> {
        let mut b = [0u8; frame::HEADER as usize];
        self.read(lsn, &mut b)?;
        Ok(Header::decode(&b, lsn))
    }

    /// The frame at `lsn` and its payload, if the frame there is valid and whole.
    pub(crate) fn frame(&mut self, lsn: u64) -> Result<Option<(Header, Vec<u8>)>, Fault> {
        let Some(header) = self.header(lsn)? else {
            return Ok(None);
        };
        let mut payload = vec![0u8; header.payload_len as usize];
        self.read(lsn + frame::HEADER, &mut payload)?;
        Ok(header
            .payload_matches(&payload)
            .then_some((header, payload)))
    }

    /// The entries of the records that start in the segment `span` describes, in order; checks
    /// each record's `seq` against `seqs`.
    pub(crate) fn entries(
        &mut self,
        span: &Span,
        mut seqs: impl Iterator<Item = u64>,
    ) -> Result<Vec<Entry>, Fault> {
        let mut entries = Vec::with_capacity(span.count as usize);
        let mut lsn = span.first_frame;
        while entries.len() < span.count as usize {
            let header = self
                .header(lsn)?
                .ok_or_else(|| Fault::Corrupted(format!("no valid frame at log position {lsn}")))?;
            if header.kind == Kind::Record {
                let expected = seqs.next();
                if expected != Some(header.seq) {
                    return Err(Fault::Corrupted(format!(
                        "the record at log position {lsn} is seq {}, the index expects {expected:?}",
                        header.seq
                    )));
                }
                entries.push(Entry {
                    lsn,
                    at_ms: header.appended_at_ms,
                    len: header.payload_len,
                    samples: header.samples,
                });
            }
            lsn += header.frame_len();
        }
        Ok(entries)
    }
}
