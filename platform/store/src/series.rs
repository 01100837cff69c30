//! Which rows a chart's series reads: the per-minute aggregates when the window and the
//! bucket are whole minutes (one row a minute a point, however many samples), else the
//! samples themselves. Decided here once; each backend has the two statements.

use crate::columns::MINUTE_MS;

/// The table a series reads, with its bounds in that table's unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeriesTable {
    /// `sample_minutes`: minutes `first..end`, `per_bucket` minutes a bucket.
    Minutes {
        /// The first minute.
        first: i64,
        /// The minute after the last.
        end: i64,
        /// Minutes per bucket.
        per_bucket: i64,
    },
    /// `samples`: times `from..to`, `bucket_ms` a bucket.
    Samples,
}

/// A series query: `from..to` in buckets of `bucket_ms`, from `table`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SeriesPlan {
    /// The window's start (ms since the epoch): bucket 0 starts here.
    pub from: i64,
    /// The window's end (excluded).
    pub to: i64,
    /// The bucket's width, at least 1 ms.
    pub bucket_ms: i64,
    /// The rows to read.
    pub table: SeriesTable,
}

impl SeriesPlan {
    /// The plan for `from..to` in buckets of `bucket_ms`.
    pub(crate) fn new(from: i64, to: i64, bucket_ms: i64) -> SeriesPlan {
        let bucket_ms = bucket_ms.max(1);
        let whole_minutes =
            from % MINUTE_MS == 0 && to % MINUTE_MS == 0 && bucket_ms % MINUTE_MS == 0;
        let table = if whole_minutes {
            SeriesTable::Minutes {
                first: from / MINUTE_MS,
                end: to / MINUTE_MS,
                per_bucket: bucket_ms / MINUTE_MS,
            }
        } else {
            SeriesTable::Samples
        };
        SeriesPlan {
            from,
            to,
            bucket_ms,
            table,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_minutes_read_the_minute_rows() {
        let plan = SeriesPlan::new(120_000, 600_000, 120_000);
        assert_eq!(
            plan.table,
            SeriesTable::Minutes {
                first: 2,
                end: 10,
                per_bucket: 2
            }
        );
        assert_eq!(
            SeriesPlan::new(120_000, 600_001, 60_000).table,
            SeriesTable::Samples
        );
        assert_eq!(SeriesPlan::new(0, 10, 0).bucket_ms, 1);
    }
}
