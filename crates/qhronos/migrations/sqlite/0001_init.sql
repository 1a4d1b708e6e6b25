-- Instants are INTEGER milliseconds since the Unix epoch (UTC). JSON columns hold TEXT.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE events (
    id              TEXT PRIMARY KEY,          -- UUID v7: sorts by creation
    name            TEXT NOT NULL,
    description     TEXT,
    start_time      INTEGER NOT NULL,
    timezone        TEXT NOT NULL,
    schedule        TEXT,                      -- canonical RRULE, NULL for one-time events
    exdates         TEXT NOT NULL,             -- JSON array of ms
    rdates          TEXT NOT NULL,
    action          TEXT NOT NULL,             -- JSON {type, params}
    tags            TEXT NOT NULL,             -- JSON array
    metadata        TEXT NOT NULL,             -- JSON object
    hmac_secret     TEXT,
    retry           TEXT NOT NULL,             -- JSON, fields as given
    misfire         TEXT NOT NULL,
    status          TEXT NOT NULL,             -- active | paused | inactive | deleted
    next_fire_at    INTEGER,                   -- next instance not yet materialised; NULL: none
    idempotency_key TEXT UNIQUE,
    request_hash    TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
-- The expander reads only events whose next instance falls inside the look-ahead window.
CREATE INDEX events_expand ON events (next_fire_at) WHERE status = 'active' AND next_fire_at IS NOT NULL;

CREATE TABLE event_tags (
    tag      TEXT NOT NULL,
    event_id TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    PRIMARY KEY (tag, event_id)
);

CREATE TABLE occurrences (
    id               TEXT PRIMARY KEY,
    event_id         TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    scheduled_at     INTEGER NOT NULL,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    attempt_limit    INTEGER NOT NULL,
    next_attempt_at  INTEGER,                  -- due time of the next attempt while pending
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    last_error       TEXT,
    cancelled_by     TEXT,                     -- pause | delete | user
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    completed_at     INTEGER,
    UNIQUE (event_id, scheduled_at)
);
-- Claims: due pending work in time order; a partial index stays small however long history grows.
CREATE INDEX occurrences_due ON occurrences (next_attempt_at) WHERE status = 'pending';
CREATE INDEX occurrences_leased ON occurrences (lease_expires_at) WHERE status = 'scheduled';
CREATE INDEX occurrences_by_time ON occurrences (scheduled_at, id);
CREATE INDEX occurrences_by_status ON occurrences (status, scheduled_at);

CREATE TABLE attempts (
    occurrence_id TEXT NOT NULL REFERENCES occurrences (id) ON DELETE CASCADE,
    attempt       INTEGER NOT NULL,
    started_at    INTEGER NOT NULL,
    duration_ms   INTEGER NOT NULL,
    status_code   INTEGER,
    error         TEXT,
    response      TEXT,
    PRIMARY KEY (occurrence_id, attempt)
);
