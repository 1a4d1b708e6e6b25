-- Issue 18 (time-partitioned occurrences on PostgreSQL): the statements both stores share
-- write an attempt's `scheduled_at` (PostgreSQL's partition key) and record one follow-up per
-- (workflow, cause) in `follow_ups` (a unique index across PostgreSQL's partitions cannot do it).
-- SQLite stays unpartitioned; it gets the same column and table so that the SQL is one text.
ALTER TABLE attempts ADD COLUMN scheduled_at INTEGER;
UPDATE attempts SET scheduled_at = (SELECT o.scheduled_at FROM occurrences o WHERE o.id = attempts.occurrence_id);

CREATE TABLE follow_ups (
    workflow_id TEXT NOT NULL,
    cause_id    TEXT NOT NULL REFERENCES occurrences (id) ON DELETE CASCADE,
    cause_at    INTEGER NOT NULL,
    PRIMARY KEY (workflow_id, cause_id)
);
CREATE INDEX follow_ups_cause ON follow_ups (cause_id);
INSERT OR IGNORE INTO follow_ups (workflow_id, cause_id, cause_at)
    SELECT f.caused_by_workflow, f.caused_by_occurrence, c.scheduled_at
    FROM occurrences f JOIN occurrences c ON c.id = f.caused_by_occurrence
    WHERE f.caused_by_workflow IS NOT NULL;
