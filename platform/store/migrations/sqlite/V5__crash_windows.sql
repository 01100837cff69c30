-- Sequence numbers an agent reserved but never made durable before an unclean stop (its
-- status's `resumed_after_crash`): not missing batches. A gap never covers them, and the
-- completeness of a gateway's data does not count them.
CREATE TABLE crash_windows (
    gateway     TEXT NOT NULL,
    first_seq   INTEGER NOT NULL,
    last_seq    INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL,
    PRIMARY KEY (gateway, first_seq)
) WITHOUT ROWID;
