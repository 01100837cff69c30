-- Integrators (the service providers who install the gateways), the one each enterprise
-- is assigned to now with every assignment kept, and the enterprise's own choice to share
-- its sample values with the bureau (off until it says so).
CREATE TABLE integrators (
    credit_code   TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    contact       TEXT,
    registered_at BIGINT NOT NULL
);
CREATE TABLE assignments (
    enterprise  TEXT NOT NULL REFERENCES enterprises (credit_code),
    integrator  TEXT NOT NULL REFERENCES integrators (credit_code),
    assigned_at BIGINT NOT NULL
);
CREATE INDEX assignments_by_enterprise ON assignments (enterprise, assigned_at);
ALTER TABLE enterprises ADD COLUMN integrator TEXT REFERENCES integrators (credit_code);
ALTER TABLE enterprises ADD COLUMN assigned_at BIGINT;
ALTER TABLE enterprises ADD COLUMN share_data_with_bureau BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX enterprises_by_integrator ON enterprises (integrator);

-- Four roles, each with its scope (bureau: none; district: its Chinese name; integrator
-- and enterprise: a credit code), instead of "an enterprise's credit code or the bureau";
-- and bearer tokens that act as their user.
ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'bureau';
ALTER TABLE users ADD COLUMN scope TEXT;
UPDATE users SET role = 'enterprise', scope = credit_code WHERE credit_code IS NOT NULL;
ALTER TABLE users DROP COLUMN credit_code;
CREATE TABLE api_tokens (
    token_sha256 TEXT PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT
);
