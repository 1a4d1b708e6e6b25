-- The tags an audit entry concerns (the event's tags, or the token's scope), as a JSON array, so
-- that an admin token with a scope reads only the entries inside it. NULL: the entry concerns
-- no tag (a backup, an older entry whose subject is gone) and only unscoped admins see it.
ALTER TABLE audit ADD COLUMN tags TEXT;

UPDATE audit SET tags = (SELECT e.tags FROM events e WHERE e.id = audit.target)
    WHERE action LIKE 'event.%';
UPDATE audit SET tags = (SELECT e.tags FROM occurrences o JOIN events e ON e.id = o.event_id
                         WHERE o.id = audit.target)
    WHERE action LIKE 'occurrence.%';
UPDATE audit SET tags = (SELECT t.scope FROM tokens t WHERE t.jti = audit.target)
    WHERE action LIKE 'token.%';
