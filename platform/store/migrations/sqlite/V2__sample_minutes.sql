CREATE TABLE sample_minutes (
    point_id INTEGER NOT NULL,
    minute   INTEGER NOT NULL,
    min      REAL NOT NULL,
    max      REAL NOT NULL,
    sum      REAL NOT NULL,
    count    INTEGER NOT NULL,
    PRIMARY KEY (point_id, minute)
) WITHOUT ROWID;
INSERT INTO sample_minutes (point_id, minute, min, max, sum, count)
SELECT point_id, ts / 60000, MIN(CAST(value AS REAL)), MAX(CAST(value AS REAL)),
       SUM(CAST(value AS REAL)), COUNT(*)
FROM samples WHERE kind IN (1, 2, 3, 4) AND value IS NOT NULL GROUP BY point_id, ts / 60000;
