-- The version of the gateways' broker credentials: raised in the transaction of every
-- enrollment, and written into mosquitto's password file, so that no platform instance
-- installs a file made from an older read over one made from a newer (mosquitto.rs).
CREATE TABLE credentials_version (
    id      SMALLINT PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO credentials_version (id, version) VALUES (1, 0);
