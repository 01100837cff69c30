-- Industry monitoring (DESIGN.md, "The bureau's cockpit"), kept at ingest: each point's
-- role from its gateway's latest catalogue (1 running, 2 energy_kwh, 3 output_count,
-- 4 fault) and the oldest and newest readings monitoring processed of it; the version of
-- a gateway's roles; each machine's (gateway and device) figures per local day, and each
-- enterprise's, which the monitoring statistics read.
ALTER TABLE points ADD COLUMN role INTEGER;
ALTER TABLE points ADD COLUMN monitored_first_ts INTEGER;
ALTER TABLE points ADD COLUMN monitored_ts INTEGER;
ALTER TABLE points ADD COLUMN monitored_value REAL;
ALTER TABLE gateways ADD COLUMN roles_version INTEGER NOT NULL DEFAULT 0;
CREATE TABLE monitoring_machine_days (
    gateway     TEXT NOT NULL,
    device      TEXT NOT NULL,
    day         INTEGER NOT NULL,
    samples     INTEGER NOT NULL,
    running_ms  INTEGER NOT NULL,
    observed_ms INTEGER NOT NULL,
    energy_kwh  REAL NOT NULL,
    output      REAL NOT NULL,
    PRIMARY KEY (gateway, device, day)
) WITHOUT ROWID;
CREATE TABLE monitoring_enterprise_days (
    day         INTEGER NOT NULL,
    credit_code TEXT NOT NULL,
    machines    INTEGER NOT NULL,
    running_ms  INTEGER NOT NULL,
    observed_ms INTEGER NOT NULL,
    energy_kwh  REAL NOT NULL,
    output      REAL NOT NULL,
    PRIMARY KEY (day, credit_code)
) WITHOUT ROWID;
