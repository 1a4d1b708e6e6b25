-- Archive before delete: what retention removes from the hot tables is copied here in the same
-- transaction, and kept for retention.archive_for (counted from archived_at). Never a secret:
-- an event's snapshot has no hmac secrets and its apicall header values are masked.

-- The last snapshot of each event with archived rows (taken when its occurrences or the event
-- itself were archived); removed_at is set once the event itself left the hot tables.
CREATE TABLE archived_events (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    tags        TEXT NOT NULL,             -- JSON array
    status      TEXT NOT NULL,
    snapshot    TEXT NOT NULL,             -- JSON: the event as responses show it, masked
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    archived_at INTEGER NOT NULL,
    removed_at  INTEGER
);
CREATE INDEX archived_events_at ON archived_events (archived_at);

-- Tag filters and scopes on archived rows, as event_tags does for live ones.
CREATE TABLE archived_event_tags (
    tag      TEXT NOT NULL,
    event_id TEXT NOT NULL REFERENCES archived_events (id) ON DELETE CASCADE,
    PRIMARY KEY (tag, event_id)
);

CREATE TABLE archived_occurrences (
    id           TEXT PRIMARY KEY,
    event_id     TEXT NOT NULL,
    scheduled_at INTEGER NOT NULL,
    status       TEXT NOT NULL,
    attempts     INTEGER NOT NULL,
    last_error   TEXT,
    cancelled_by TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    completed_at INTEGER,
    archived_at  INTEGER NOT NULL
);
CREATE INDEX archived_occurrences_by_time ON archived_occurrences (scheduled_at, id);
CREATE INDEX archived_occurrences_event ON archived_occurrences (event_id, scheduled_at);
CREATE INDEX archived_occurrences_at ON archived_occurrences (archived_at);

CREATE TABLE archived_attempts (
    occurrence_id TEXT NOT NULL REFERENCES archived_occurrences (id) ON DELETE CASCADE,
    attempt       INTEGER NOT NULL,
    started_at    INTEGER NOT NULL,
    duration_ms   INTEGER NOT NULL,
    status_code   INTEGER,
    error         TEXT,
    response      TEXT,
    PRIMARY KEY (occurrence_id, attempt)
);
