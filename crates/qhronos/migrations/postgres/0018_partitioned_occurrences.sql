-- Time-partitioned occurrences (issue 18; docs/scaling.md, "Time-partitioned occurrences").
--
-- `occurrences` and `attempts` become `PARTITION BY RANGE (scheduled_at)` with the same bounds,
-- so that retention drops a whole old partition (and its attempts) instead of deleting rows.
-- Partitions here: `_p_min` [MINVALUE, start of this UTC week) for every row made so far, one
-- per week for the next 8 weeks, and `_p_max` [then, MAXVALUE) for rows further out. The
-- partition upkeep (`partitioning.*`, src/store/postgres/partitions.rs) keeps weeks created
-- ahead from then on by splitting `_p_max`.
--
-- The rows are copied into the new tables (not attached in place): attaching the old table as
-- the first partition would need its primary key rebuilt as (id, scheduled_at) and its future
-- rows moved out anyway, for little gain over one `INSERT … SELECT`; docs/scaling.md has the
-- measured cost per 10 M rows.

ALTER TABLE attempts RENAME TO attempts_unpartitioned;
ALTER TABLE occurrences RENAME TO occurrences_unpartitioned;
-- The old tables' index and constraint names must be free for the new ones.
ALTER INDEX occurrences_pkey RENAME TO occurrences_unpartitioned_pkey;
ALTER INDEX occurrences_due RENAME TO occurrences_unpartitioned_due;
ALTER INDEX occurrences_leased RENAME TO occurrences_unpartitioned_leased;
ALTER INDEX occurrences_claimed RENAME TO occurrences_unpartitioned_claimed;
ALTER INDEX occurrences_by_time RENAME TO occurrences_unpartitioned_by_time;
ALTER INDEX occurrences_by_status RENAME TO occurrences_unpartitioned_by_status;
ALTER INDEX occurrences_event_status RENAME TO occurrences_unpartitioned_event_status;
ALTER INDEX occurrences_done RENAME TO occurrences_unpartitioned_done;
ALTER INDEX occurrences_cause_of RENAME TO occurrences_unpartitioned_cause_of;
ALTER INDEX attempts_pkey RENAME TO attempts_unpartitioned_pkey;
ALTER TABLE occurrences_unpartitioned
    RENAME CONSTRAINT occurrences_event_id_scheduled_at_key TO occurrences_unpartitioned_event_key;
ALTER TABLE occurrences_unpartitioned
    RENAME CONSTRAINT occurrences_event_id_fkey TO occurrences_unpartitioned_event_fkey;
ALTER TABLE attempts_unpartitioned
    RENAME CONSTRAINT attempts_occurrence_id_fkey TO attempts_unpartitioned_occurrence_fkey;

-- Same columns in the same order (so `SELECT *` copies), defaults and NOT NULLs.
CREATE TABLE occurrences (LIKE occurrences_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    PARTITION BY RANGE (scheduled_at);
-- A unique index of a partitioned table must hold the partition key: ids (UUID v7, made by the
-- service) are unique by construction, and (id, scheduled_at) is what the engine's statements
-- name to reach one partition.
ALTER TABLE occurrences ADD PRIMARY KEY (id, scheduled_at);
ALTER TABLE occurrences ADD UNIQUE (event_id, scheduled_at);
ALTER TABLE occurrences ADD FOREIGN KEY (event_id) REFERENCES events (id) ON DELETE CASCADE;
CREATE INDEX occurrences_due ON occurrences (next_attempt_at) WHERE status = 'pending';
CREATE INDEX occurrences_leased ON occurrences (lease_expires_at) WHERE status = 'scheduled';
CREATE INDEX occurrences_claimed ON occurrences (lease_expires_at) WHERE status = 'dispatched';
CREATE INDEX occurrences_by_time ON occurrences (scheduled_at, id);
CREATE INDEX occurrences_by_status ON occurrences (status, scheduled_at);
CREATE INDEX occurrences_event_status ON occurrences (event_id, status);
CREATE INDEX occurrences_done ON occurrences (updated_at) WHERE status IN ('completed', 'missed', 'cancelled', 'failed');
CREATE INDEX occurrences_cause_of ON occurrences (caused_by_occurrence) WHERE caused_by_occurrence IS NOT NULL;
-- `occurrences_caused` (unique per workflow and cause) cannot be unique across partitions: see
-- `follow_ups` below.

-- An attempt carries its occurrence's `scheduled_at`: the partition key, so that its partition
-- is dropped with its occurrence's.
CREATE TABLE attempts (
    occurrence_id TEXT COLLATE "C" NOT NULL,
    attempt       BIGINT NOT NULL,
    started_at    BIGINT NOT NULL,
    duration_ms   BIGINT NOT NULL,
    status_code   BIGINT,
    error         TEXT,
    response      TEXT,
    scheduled_at  BIGINT NOT NULL,
    PRIMARY KEY (occurrence_id, attempt, scheduled_at),
    FOREIGN KEY (occurrence_id, scheduled_at) REFERENCES occurrences (id, scheduled_at) ON DELETE CASCADE
) PARTITION BY RANGE (scheduled_at);

DO $$
DECLARE
    week  CONSTANT BIGINT := 7 * 86400000;
    start BIGINT := (extract(epoch FROM date_trunc('week', now() AT TIME ZONE 'UTC')) * 1000)::BIGINT;
    lo    BIGINT;
    name  TEXT;
BEGIN
    EXECUTE format('CREATE TABLE occurrences_p_min PARTITION OF occurrences FOR VALUES FROM (MINVALUE) TO (%s)', start);
    EXECUTE format('CREATE TABLE attempts_p_min PARTITION OF attempts FOR VALUES FROM (MINVALUE) TO (%s)', start);
    FOR i IN 0..7 LOOP
        lo := start + i * week;
        name := to_char(to_timestamp(lo / 1000) AT TIME ZONE 'UTC', 'YYYYMMDD');
        EXECUTE format('CREATE TABLE occurrences_p%s PARTITION OF occurrences FOR VALUES FROM (%s) TO (%s)', name, lo, lo + week);
        EXECUTE format('CREATE TABLE attempts_p%s PARTITION OF attempts FOR VALUES FROM (%s) TO (%s)', name, lo, lo + week);
    END LOOP;
    EXECUTE format('CREATE TABLE occurrences_p_max PARTITION OF occurrences FOR VALUES FROM (%s) TO (MAXVALUE)', start + 8 * week);
    EXECUTE format('CREATE TABLE attempts_p_max PARTITION OF attempts FOR VALUES FROM (%s) TO (MAXVALUE)', start + 8 * week);
END $$;

INSERT INTO occurrences SELECT * FROM occurrences_unpartitioned;
INSERT INTO attempts (occurrence_id, attempt, started_at, duration_ms, status_code, error, response, scheduled_at)
    SELECT a.occurrence_id, a.attempt, a.started_at, a.duration_ms, a.status_code, a.error, a.response, o.scheduled_at
    FROM attempts_unpartitioned a JOIN occurrences_unpartitioned o ON o.id = a.occurrence_id;

-- One follow-up per (workflow, cause): written in the follow-up's transaction with
-- `ON CONFLICT DO NOTHING` before the follow-up itself; gone with its cause.
CREATE TABLE follow_ups (
    workflow_id TEXT COLLATE "C" NOT NULL,
    cause_id    TEXT COLLATE "C" NOT NULL,
    cause_at    BIGINT NOT NULL,
    PRIMARY KEY (workflow_id, cause_id),
    FOREIGN KEY (cause_id, cause_at) REFERENCES occurrences (id, scheduled_at) ON DELETE CASCADE
);
CREATE INDEX follow_ups_cause ON follow_ups (cause_id, cause_at);
INSERT INTO follow_ups (workflow_id, cause_id, cause_at)
    SELECT f.caused_by_workflow, f.caused_by_occurrence, c.scheduled_at
    FROM occurrences_unpartitioned f JOIN occurrences_unpartitioned c ON c.id = f.caused_by_occurrence
    WHERE f.caused_by_workflow IS NOT NULL
    ON CONFLICT DO NOTHING;

DROP TABLE attempts_unpartitioned;
DROP TABLE occurrences_unpartitioned;
ANALYZE occurrences;
ANALYZE attempts;
