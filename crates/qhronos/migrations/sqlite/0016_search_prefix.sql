-- Search (issue 14, part 3), made fast on large tables: the FTS5 table again, with
-- - prefix indexes for 2- and 3-character prefixes. Every query term is a prefix (`"ba"*`);
--   without them FTS5 merges, on each query, the doclists of every indexed word that starts with
--   it (hundreds for a short prefix). Longer prefixes match few words and need none.
-- The triggers of 0011 write to `events_fts` by name and carry over.
DROP TABLE events_fts;
CREATE VIRTUAL TABLE events_fts USING fts5 (
    name, description, tags, meta,
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '2 3'
);
INSERT INTO events_fts (rowid, name, description, tags, meta)
SELECT e.rowid, e.name, coalesce(e.description, ''),
       coalesce((SELECT group_concat(j.value, ' ') FROM json_each(e.tags) j), ''),
       coalesce((SELECT group_concat(j.atom, ' ') FROM json_tree(e.metadata) j WHERE j.atom IS NOT NULL), '')
FROM events e WHERE e.status != 'deleted';

