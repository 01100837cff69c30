-- Industry monitoring (DESIGN.md, "The bureau's cockpit"), kept at ingest: each point's
-- role from its gateway's latest catalogue (1 running, 2 energy_kwh, 3 output_count,
-- 4 fault) and the oldest and newest readings monitoring processed of it; the version of
-- a gateway's roles; each machine's (gateway and device) figures per local day, and each
-- enterprise's, which the monitoring statistics read. No index on the new point columns,
-- so the ingest's updates of points stay HOT (V3).
ALTER TABLE points ADD COLUMN role SMALLINT;
ALTER TABLE points ADD COLUMN monitored_first_ts BIGINT;
ALTER TABLE points ADD COLUMN monitored_ts BIGINT;
ALTER TABLE points ADD COLUMN monitored_value DOUBLE PRECISION;
ALTER TABLE gateways ADD COLUMN roles_version BIGINT NOT NULL DEFAULT 0;
CREATE TABLE monitoring_machine_days (
    gateway     TEXT NOT NULL,
    device      TEXT NOT NULL,
    day         BIGINT NOT NULL,
    samples     BIGINT NOT NULL,
    running_ms  BIGINT NOT NULL,
    observed_ms BIGINT NOT NULL,
    energy_kwh  DOUBLE PRECISION NOT NULL,
    output      DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (gateway, device, day)
) WITH (fillfactor = 70);
CREATE TABLE monitoring_enterprise_days (
    day         BIGINT NOT NULL,
    credit_code TEXT NOT NULL,
    machines    BIGINT NOT NULL,
    running_ms  BIGINT NOT NULL,
    observed_ms BIGINT NOT NULL,
    energy_kwh  DOUBLE PRECISION NOT NULL,
    output      DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (day, credit_code)
) WITH (fillfactor = 70);
