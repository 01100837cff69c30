-- Configurations pushed to gateways (`PUT /api/v1/gateways/{id}/config`), every version
-- kept: a rollback is a new version with an older one's text. `published_at` is set once
-- the ingest has handed the version to the broker as the gateway's retained `config`.
CREATE TABLE gateway_configs (
    gateway_id   TEXT NOT NULL REFERENCES gateways (id),
    version      BIGINT NOT NULL,
    toml         TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    created_by   TEXT NOT NULL,
    published_at BIGINT,
    PRIMARY KEY (gateway_id, version)
);
CREATE INDEX gateway_configs_unpublished ON gateway_configs (gateway_id) WHERE published_at IS NULL;
