ALTER TABLE gaps ADD COLUMN reported_at INTEGER;
CREATE INDEX gaps_unreported ON gaps (detected_at) WHERE reported_at IS NULL;
