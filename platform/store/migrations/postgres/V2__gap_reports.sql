-- When a gap still open after the grace period was reported (logged once, by whichever
-- instance found it first); NULL until then.
ALTER TABLE gaps ADD COLUMN reported_at BIGINT;
CREATE INDEX gaps_unreported ON gaps (detected_at) WHERE reported_at IS NULL;
