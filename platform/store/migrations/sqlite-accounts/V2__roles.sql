-- Four roles, each with its scope (bureau: none; district: its Chinese name; integrator
-- and enterprise: a credit code), instead of "an enterprise's credit code or the bureau";
-- and bearer tokens that act as their user.
ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'bureau';
ALTER TABLE users ADD COLUMN scope TEXT;
UPDATE users SET role = 'enterprise', scope = credit_code WHERE credit_code IS NOT NULL;
ALTER TABLE users DROP COLUMN credit_code;
CREATE TABLE api_tokens (
    token_sha256 TEXT PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER
) WITHOUT ROWID;
