-- The write path of a fire (issue 18), measured on a burst of 100,000 due at one instant.
--
-- The claim skips occurrences of pull-queue and paused events with
-- `NOT EXISTS (SELECT 1 FROM events e WHERE e.id = o.event_id AND (e.queue IS NOT NULL OR
-- e.status = 'paused'))`. With no index that matches, PostgreSQL planned it as one sequential
-- scan of `events` per claim (25 ms at 100,000 events, and growing with the table: seconds at
-- 10 M). This index holds only such events (usually none), so the check is one probe of an
-- almost empty index per row.
CREATE INDEX events_held ON events (id) WHERE queue IS NOT NULL OR status = 'paused';

-- Only workflow follow-ups have a cause; the other rows (nearly all) need no entry. Every claim
-- and outcome update of an occurrence writes a new entry in each of its indexes (the status
-- changes, so the update cannot be HOT): this one was a wasted insert per write. Uniqueness is
-- unchanged (NULLs never conflicted), and `ON CONFLICT DO NOTHING` still sees it.
DROP INDEX occurrences_caused;
CREATE UNIQUE INDEX occurrences_caused ON occurrences (caused_by_workflow, caused_by_occurrence)
    WHERE caused_by_workflow IS NOT NULL;
