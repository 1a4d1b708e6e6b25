-- Calendars (issue 16). An event may last (`duration_ms`; for an all-day event whole days),
-- be all-day (`all_day`, JSON {start_date, fire_time}: the local date it was given and the
-- local time it fires at), belong to a calendar (`calendar_id`) and keep the identity it has
-- in an iCalendar file (`external_id`, the UID). Occurrences carry their end (`ends_at`,
-- written when they are materialised, moved with them).
ALTER TABLE events ADD COLUMN duration_ms BIGINT;
ALTER TABLE events ADD COLUMN all_day TEXT;
ALTER TABLE events ADD COLUMN calendar_id TEXT COLLATE "C";
ALTER TABLE events ADD COLUMN external_id TEXT;
ALTER TABLE occurrences ADD COLUMN ends_at BIGINT;
-- The instant a moved occurrence had first (its RECURRENCE-ID when the series is exported).
ALTER TABLE occurrences ADD COLUMN moved_from BIGINT;
-- An import finds the events of one calendar by UID.
CREATE INDEX events_calendar ON events (calendar_id, external_id) WHERE calendar_id IS NOT NULL;

-- A calendar: a name, the defaults its imported events take (JSON: action, tags, retry,
-- misfire), its conflict mode (`free` or `auto_plan`), and for a subscription the feed URL,
-- how often it is fetched and what the last fetch did.
CREATE TABLE calendars (
    id            TEXT COLLATE "C" PRIMARY KEY,
    name          TEXT NOT NULL,
    mode          TEXT NOT NULL,
    defaults      TEXT NOT NULL,
    tags          TEXT NOT NULL,
    url           TEXT,
    refresh_ms    BIGINT,
    etag          TEXT,
    last_modified TEXT,
    last_fetch_at BIGINT,
    last_result   TEXT,
    next_fetch_at BIGINT,
    counts        TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX calendars_due ON calendars (next_fetch_at) WHERE url IS NOT NULL;
