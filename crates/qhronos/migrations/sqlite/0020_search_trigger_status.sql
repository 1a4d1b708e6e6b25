-- The search index follows an event's text, and whether it is deleted; not its other status
-- changes (issue 18). The trigger of 0011 re-indexed the row on every status change, so every
-- one-time event that finished (active → inactive, in the outcome writer's transaction) deleted
-- and re-inserted its FTS5 row and prefix entries for nothing.
DROP TRIGGER events_fts_update;
CREATE TRIGGER events_fts_update AFTER UPDATE OF name, description, tags, metadata, status ON events
WHEN old.name IS NOT new.name OR old.description IS NOT new.description
    OR old.tags IS NOT new.tags OR old.metadata IS NOT new.metadata
    OR (old.status = 'deleted') IS NOT (new.status = 'deleted')
BEGIN
    DELETE FROM events_fts WHERE rowid = old.rowid;
    INSERT INTO events_fts (rowid, name, description, tags, meta)
    SELECT new.rowid, new.name, coalesce(new.description, ''),
        coalesce((SELECT group_concat(j.value, ' ') FROM json_each(new.tags) j), ''),
        coalesce((SELECT group_concat(j.atom, ' ') FROM json_tree(new.metadata) j WHERE j.atom IS NOT NULL), '')
    WHERE new.status != 'deleted';
END;
