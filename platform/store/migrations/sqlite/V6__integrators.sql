-- Integrators (the service providers who install the gateways), the one each enterprise
-- is assigned to now with every assignment kept, and the enterprise's own choice to share
-- its sample values with the bureau (off until it says so).
CREATE TABLE integrators (
    credit_code   TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    contact       TEXT,
    registered_at INTEGER NOT NULL
);
CREATE TABLE assignments (
    enterprise  TEXT NOT NULL REFERENCES enterprises (credit_code),
    integrator  TEXT NOT NULL REFERENCES integrators (credit_code),
    assigned_at INTEGER NOT NULL
);
CREATE INDEX assignments_by_enterprise ON assignments (enterprise, assigned_at);
ALTER TABLE enterprises ADD COLUMN integrator TEXT REFERENCES integrators (credit_code);
ALTER TABLE enterprises ADD COLUMN assigned_at INTEGER;
ALTER TABLE enterprises ADD COLUMN share_data_with_bureau INTEGER NOT NULL DEFAULT 0;
CREATE INDEX enterprises_by_integrator ON enterprises (integrator);
