-- Alarms (DESIGN.md, "Alarms"): an enterprise's notification channels and rules, each
-- rule's evaluation state, the events it raised (kept: raised -> acknowledged -> cleared)
-- and the notifications to deliver, a persistent queue claimed by one instance at a time.
CREATE TABLE alarm_channels (
    id          BIGSERIAL PRIMARY KEY,
    credit_code TEXT NOT NULL REFERENCES enterprises (credit_code),
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    url         TEXT NOT NULL,
    secret      TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX alarm_channels_by_enterprise ON alarm_channels (credit_code);
CREATE TABLE alarm_rules (
    id          BIGSERIAL PRIMARY KEY,
    credit_code TEXT NOT NULL REFERENCES enterprises (credit_code),
    name        TEXT NOT NULL,
    gateway_id  TEXT NOT NULL REFERENCES gateways (id),
    device      TEXT,
    point       TEXT,
    kind        TEXT NOT NULL,
    threshold   DOUBLE PRECISION,
    hysteresis  DOUBLE PRECISION NOT NULL DEFAULT 0,
    for_seconds BIGINT NOT NULL DEFAULT 0,
    severity    TEXT NOT NULL,
    channels    TEXT NOT NULL,
    enabled     BOOLEAN NOT NULL DEFAULT TRUE,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    -- Evaluation state: since when the condition holds (for `for_seconds`), the newest
    -- sample time evaluated, the event in force and whether its raise was notified.
    pending_since   BIGINT,
    last_ts         BIGINT,
    active_event    BIGINT,
    raise_notified  BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX alarm_rules_by_gateway ON alarm_rules (gateway_id) WHERE enabled;
CREATE INDEX alarm_rules_by_enterprise ON alarm_rules (credit_code);
CREATE TABLE alarm_events (
    id              BIGSERIAL PRIMARY KEY,
    rule_id         BIGINT NOT NULL REFERENCES alarm_rules (id),
    credit_code     TEXT NOT NULL,
    state           TEXT NOT NULL,
    raised_at       BIGINT NOT NULL,
    raised_value    TEXT,
    recorded_at     BIGINT NOT NULL,
    acknowledged_at BIGINT,
    acknowledged_by TEXT,
    cleared_at      BIGINT,
    cleared_value   TEXT
);
CREATE INDEX alarm_events_by_enterprise ON alarm_events (credit_code, state);
CREATE TABLE alarm_notifications (
    id            BIGSERIAL PRIMARY KEY,
    event_id      BIGINT NOT NULL REFERENCES alarm_events (id),
    transition    TEXT NOT NULL,
    channel_id    BIGINT NOT NULL REFERENCES alarm_channels (id),
    created_at    BIGINT NOT NULL,
    due_at        BIGINT NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    claimed_by    TEXT,
    claimed_until BIGINT,
    delivered_at  BIGINT,
    failed_at     BIGINT,
    last_error    TEXT,
    UNIQUE (event_id, transition, channel_id)
);
CREATE INDEX alarm_notifications_due ON alarm_notifications (due_at) WHERE delivered_at IS NULL AND failed_at IS NULL;
-- The instance that runs the alarm timers (stale, offline, device down, for_seconds), a
-- lease renewed while it lives and taken over when it lapses.
CREATE TABLE alarm_leader (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL,
    until  BIGINT NOT NULL
);
