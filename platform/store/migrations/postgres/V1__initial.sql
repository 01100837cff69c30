-- fieldlink-platform on PostgreSQL, schema version 1: the same model as the SQLite
-- backend (platform/src/store/sqlite.rs), in PostgreSQL's types, with the samples
-- partitioned by day and the web UI's accounts and sessions in the same database.
-- Times are milliseconds since the Unix epoch (BIGINT), as on the wire.

CREATE TABLE enterprises (
    credit_code    TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    industry       TEXT NOT NULL,
    district       TEXT NOT NULL,
    in_program     BOOLEAN NOT NULL,
    registered_at  BIGINT NOT NULL,
    first_batch_at BIGINT,
    last_batch_at  BIGINT
);

CREATE TABLE enrollment_tokens (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    credit_code  TEXT NOT NULL REFERENCES enterprises (credit_code),
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    max_gateways INTEGER NOT NULL
);

CREATE TABLE gateways (
    id                    TEXT PRIMARY KEY,
    credit_code           TEXT NOT NULL REFERENCES enterprises (credit_code),
    name                  TEXT NOT NULL,
    token_id              BIGINT NOT NULL REFERENCES enrollment_tokens (id),
    password_hash         TEXT NOT NULL,
    hostname              TEXT,
    agent_version         TEXT,
    enrolled_at           BIGINT NOT NULL,
    credentials_issued_at BIGINT NOT NULL,
    first_batch_at        BIGINT,
    last_batch_at         BIGINT,
    max_seq               BIGINT,
    batches               BIGINT NOT NULL DEFAULT 0,
    samples               BIGINT NOT NULL DEFAULT 0,
    status                TEXT,
    status_at             BIGINT,
    meta                  TEXT,
    meta_at               BIGINT
);
CREATE INDEX gateways_by_enterprise ON gateways (credit_code);
CREATE INDEX gateways_by_token ON gateways (token_id);

-- The dedup record: one row per stored batch. Its primary key is what makes a batch
-- stored exactly once, whichever ingest instance the broker hands it to.
CREATE TABLE batches (
    gateway     TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    samples     BIGINT NOT NULL,
    PRIMARY KEY (gateway, seq)
);
CREATE INDEX batches_by_received_at ON batches (received_at);

CREATE TABLE gaps (
    gateway     TEXT NOT NULL,
    first_seq   BIGINT NOT NULL,
    last_seq    BIGINT NOT NULL,
    detected_at BIGINT NOT NULL,
    PRIMARY KEY (gateway, first_seq)
);

-- kind: 0 none, 1 bool, 2 int, 3 uint, 4 float, 5 text; bool and int in *_int, uint
-- (exact, may exceed BIGINT) and text in *_text, float in *_float.
-- quality: 0 good, 1 bad (with error), 2 uncertain.
CREATE TABLE points (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    gateway        TEXT NOT NULL,
    device         TEXT NOT NULL,
    point          TEXT NOT NULL,
    latest_ts      BIGINT,
    latest_kind    SMALLINT,
    latest_int     BIGINT,
    latest_float   DOUBLE PRECISION,
    latest_text    TEXT,
    latest_quality SMALLINT,
    latest_error   TEXT,
    UNIQUE (gateway, device, point)
);

-- One partition per UTC day (samples_dNNNNN, NNNNN = days since the epoch), created by
-- the platform ahead of time and on demand; pruning drops whole partitions. Samples
-- whose day has no partition (a gateway clock far off) land in samples_default.
CREATE TABLE samples (
    point_id    BIGINT NOT NULL,
    ts          BIGINT NOT NULL,
    kind        SMALLINT NOT NULL,
    value_int   BIGINT,
    value_float DOUBLE PRECISION,
    value_text  TEXT,
    quality     SMALLINT NOT NULL,
    error       TEXT
) PARTITION BY RANGE (ts);
CREATE INDEX samples_by_point_ts ON samples (point_id, ts);
CREATE TABLE samples_default PARTITION OF samples DEFAULT;

-- Numeric samples per point and minute, so charts of long windows read a row a minute.
CREATE TABLE sample_minutes (
    point_id BIGINT NOT NULL,
    minute   BIGINT NOT NULL,
    min      DOUBLE PRECISION NOT NULL,
    max      DOUBLE PRECISION NOT NULL,
    sum      DOUBLE PRECISION NOT NULL,
    count    BIGINT NOT NULL,
    PRIMARY KEY (point_id, minute)
);

CREATE TABLE enterprise_days (
    credit_code TEXT NOT NULL,
    day         BIGINT NOT NULL,
    PRIMARY KEY (credit_code, day)
);

-- The web UI's accounts and sessions (platform/src/ui/accounts.rs).
CREATE TABLE users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    credit_code   TEXT,
    created_at    BIGINT NOT NULL
);
CREATE TABLE sessions (
    token_sha256 TEXT PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf         TEXT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE TABLE login_failures (
    username TEXT NOT NULL,
    at       BIGINT NOT NULL
);
CREATE INDEX login_failures_by_user ON login_failures (username, at);
