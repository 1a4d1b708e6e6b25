-- Named templates (issue 14, part 2): one row per template and one per version of it. A PUT
-- adds a version; `templates.version` is the newest. Versions are never changed.
CREATE TABLE templates (
    name       TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,                 -- body | email
    version    INTEGER NOT NULL,              -- the newest version
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE template_versions (
    name       TEXT NOT NULL REFERENCES templates (name) ON DELETE CASCADE,
    version    INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    subject    TEXT,
    text       TEXT,
    html       TEXT,
    body       TEXT,                          -- JSON
    sample     TEXT,                          -- JSON
    created_at INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    PRIMARY KEY (name, version)
);

-- Full-text search over events (issue 14, part 3): name, description, tags and the scalar
-- values of metadata, kept in step with every write by the triggers below. Deleted events
-- leave the index. The FTS table keeps its own copy of the text (rowid = events.rowid).
CREATE VIRTUAL TABLE events_fts USING fts5 (
    name, description, tags, meta,
    tokenize = 'unicode61 remove_diacritics 2'
);
INSERT INTO events_fts (rowid, name, description, tags, meta)
SELECT e.rowid, e.name, coalesce(e.description, ''),
       coalesce((SELECT group_concat(j.value, ' ') FROM json_each(e.tags) j), ''),
       coalesce((SELECT group_concat(j.atom, ' ') FROM json_tree(e.metadata) j WHERE j.atom IS NOT NULL), '')
FROM events e WHERE e.status != 'deleted';

CREATE TRIGGER events_fts_insert AFTER INSERT ON events WHEN new.status != 'deleted' BEGIN
    INSERT INTO events_fts (rowid, name, description, tags, meta) VALUES (
        new.rowid, new.name, coalesce(new.description, ''),
        coalesce((SELECT group_concat(j.value, ' ') FROM json_each(new.tags) j), ''),
        coalesce((SELECT group_concat(j.atom, ' ') FROM json_tree(new.metadata) j WHERE j.atom IS NOT NULL), ''));
END;
CREATE TRIGGER events_fts_update AFTER UPDATE OF name, description, tags, metadata, status ON events BEGIN
    DELETE FROM events_fts WHERE rowid = old.rowid;
    INSERT INTO events_fts (rowid, name, description, tags, meta)
    SELECT new.rowid, new.name, coalesce(new.description, ''),
        coalesce((SELECT group_concat(j.value, ' ') FROM json_each(new.tags) j), ''),
        coalesce((SELECT group_concat(j.atom, ' ') FROM json_tree(new.metadata) j WHERE j.atom IS NOT NULL), '')
    WHERE new.status != 'deleted';
END;
CREATE TRIGGER events_fts_delete AFTER DELETE ON events BEGIN
    DELETE FROM events_fts WHERE rowid = old.rowid;
END;
