-- The plan's classes of an enterprise (DESIGN.md, "The bureau's cockpit"): above or below
-- designated size and its "specialised and new" class, NULL until recorded (so the rows
-- of enterprises registered before them stay valid and count in no class); and its
-- digital-maturity assessments, every one kept, the newest by `assessed_at` also on the
-- enterprise's row (as the current integrator is beside `assignments`).
ALTER TABLE enterprises ADD COLUMN size TEXT CHECK (size IN ('above', 'below'));
ALTER TABLE enterprises ADD COLUMN specialised TEXT
    CHECK (specialised IN ('none', 'provincial', 'little_giant'));
ALTER TABLE enterprises ADD COLUMN maturity_level INTEGER CHECK (maturity_level BETWEEN 1 AND 4);
ALTER TABLE enterprises ADD COLUMN maturity_assessed_at INTEGER;
CREATE TABLE maturity_assessments (
    id          INTEGER PRIMARY KEY,
    credit_code TEXT NOT NULL REFERENCES enterprises (credit_code),
    level       INTEGER NOT NULL CHECK (level BETWEEN 1 AND 4),
    assessed_at INTEGER NOT NULL,
    assessor    TEXT NOT NULL,
    recorded_at INTEGER NOT NULL
);
CREATE INDEX maturity_assessments_by_enterprise ON maturity_assessments (credit_code, assessed_at);
