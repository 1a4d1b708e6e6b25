-- Event history: one row per change of an event (create, update, restore, pause, resume,
-- delete, the engine's 410 pause), written in the transaction of the change. `snapshot` is the
-- event as the API shows it, never a secret (see domain/history.rs). Rows go with their event
-- when retention removes it.
CREATE TABLE event_versions (
    event_id      TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    version       INTEGER NOT NULL,
    at            INTEGER NOT NULL,
    actor         TEXT NOT NULL,                 -- master | sub:<token subject> | system
    change        TEXT NOT NULL,
    restored_from INTEGER,
    snapshot      TEXT NOT NULL,                 -- JSON
    PRIMARY KEY (event_id, version)
);
