-- Search (issue 14, part 3), made fast on large tables: the FTS5 table again, with
-- - prefix indexes for 2- and 3-character prefixes. Every query term is a prefix (`"ba"*`);
--   without them FTS5 merges, on each query, the doclists of every indexed word that starts with
--   it (hundreds for a short prefix). Longer prefixes match few words and need none.
-- - the event's id as an unindexed column, so that a search ranks its matches, filters them by
--   tag and cuts the page before it reads any `events` row (it reads only the page's).
-- The triggers are made again to fill the new column.
DROP TRIGGER events_fts_insert;
DROP TRIGGER events_fts_update;
DROP TRIGGER events_fts_delete;
DROP TABLE events_fts;
CREATE VIRTUAL TABLE events_fts USING fts5 (
    id UNINDEXED, name, description, tags, meta,
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '2 3'
);
INSERT INTO events_fts (rowid, id, name, description, tags, meta)
SELECT e.rowid, e.id, e.name, coalesce(e.description, ''),
       coalesce((SELECT group_concat(j.value, ' ') FROM json_each(e.tags) j), ''),
       coalesce((SELECT group_concat(j.atom, ' ') FROM json_tree(e.metadata) j WHERE j.atom IS NOT NULL), '')
FROM events e WHERE e.status != 'deleted';

CREATE TRIGGER events_fts_insert AFTER INSERT ON events WHEN new.status != 'deleted' BEGIN
    INSERT INTO events_fts (rowid, id, name, description, tags, meta) VALUES (
        new.rowid, new.id, new.name, coalesce(new.description, ''),
        coalesce((SELECT group_concat(j.value, ' ') FROM json_each(new.tags) j), ''),
        coalesce((SELECT group_concat(j.atom, ' ') FROM json_tree(new.metadata) j WHERE j.atom IS NOT NULL), ''));
END;
CREATE TRIGGER events_fts_update AFTER UPDATE OF name, description, tags, metadata, status ON events BEGIN
    DELETE FROM events_fts WHERE rowid = old.rowid;
    INSERT INTO events_fts (rowid, id, name, description, tags, meta)
    SELECT new.rowid, new.id, new.name, coalesce(new.description, ''),
        coalesce((SELECT group_concat(j.value, ' ') FROM json_each(new.tags) j), ''),
        coalesce((SELECT group_concat(j.atom, ' ') FROM json_tree(new.metadata) j WHERE j.atom IS NOT NULL), '')
    WHERE new.status != 'deleted';
END;
CREATE TRIGGER events_fts_delete AFTER DELETE ON events BEGIN
    DELETE FROM events_fts WHERE rowid = old.rowid;
END;
