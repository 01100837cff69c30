CREATE TABLE enterprises (
    credit_code    TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    industry       TEXT NOT NULL,
    district       TEXT NOT NULL,
    in_program     INTEGER NOT NULL,
    registered_at  INTEGER NOT NULL,
    first_batch_at INTEGER,
    last_batch_at  INTEGER
);
CREATE TABLE enrollment_tokens (
    id           INTEGER PRIMARY KEY,
    credit_code  TEXT NOT NULL REFERENCES enterprises (credit_code),
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    max_gateways INTEGER NOT NULL
);
CREATE TABLE gateways (
    id                    TEXT PRIMARY KEY,
    credit_code           TEXT NOT NULL REFERENCES enterprises (credit_code),
    name                  TEXT NOT NULL,
    token_id              INTEGER NOT NULL REFERENCES enrollment_tokens (id),
    password_hash         TEXT NOT NULL,
    hostname              TEXT,
    agent_version         TEXT,
    enrolled_at           INTEGER NOT NULL,
    credentials_issued_at INTEGER NOT NULL,
    first_batch_at        INTEGER,
    last_batch_at         INTEGER,
    max_seq               INTEGER,
    batches               INTEGER NOT NULL DEFAULT 0,
    samples               INTEGER NOT NULL DEFAULT 0,
    status                TEXT,
    status_at             INTEGER,
    meta                  TEXT,
    meta_at               INTEGER
);
CREATE INDEX gateways_by_enterprise ON gateways (credit_code);
CREATE INDEX gateways_by_token ON gateways (token_id);
CREATE TABLE batches (
    gateway     TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    samples     INTEGER NOT NULL,
    PRIMARY KEY (gateway, seq)
) WITHOUT ROWID;
CREATE TABLE gaps (
    gateway     TEXT NOT NULL,
    first_seq   INTEGER NOT NULL,
    last_seq    INTEGER NOT NULL,
    detected_at INTEGER NOT NULL,
    PRIMARY KEY (gateway, first_seq)
) WITHOUT ROWID;
CREATE TABLE points (
    id             INTEGER PRIMARY KEY,
    gateway        TEXT NOT NULL,
    device         TEXT NOT NULL,
    point          TEXT NOT NULL,
    latest_ts      INTEGER,
    latest_kind    INTEGER,
    latest_value,
    latest_quality INTEGER,
    latest_error   TEXT,
    UNIQUE (gateway, device, point)
);
CREATE TABLE samples (
    point_id INTEGER NOT NULL,
    ts       INTEGER NOT NULL,
    kind     INTEGER NOT NULL,
    value,
    quality  INTEGER NOT NULL,
    error    TEXT
);
CREATE INDEX samples_by_point_ts ON samples (point_id, ts);
CREATE TABLE enterprise_days (
    credit_code TEXT NOT NULL,
    day         INTEGER NOT NULL,
    PRIMARY KEY (credit_code, day)
) WITHOUT ROWID;
