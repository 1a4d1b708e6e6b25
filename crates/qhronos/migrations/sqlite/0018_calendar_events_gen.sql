-- Issue 16: a calendar's conflict index is kept in memory between checks. Every write to an
-- event of the calendar (create, update, delete, an event moving in or out) moves this counter
-- in its transaction, so that any node sees that an index it built before is stale.
ALTER TABLE calendars ADD COLUMN events_gen INTEGER NOT NULL DEFAULT 0;
