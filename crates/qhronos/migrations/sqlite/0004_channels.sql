-- Pull queues: an event's queue (NULL unless its action is `pull`). The dispatcher never claims
-- occurrences of such events; clients claim them with POST /queues/{queue}/claim.
ALTER TABLE events ADD COLUMN queue TEXT;
CREATE INDEX events_queue ON events (queue) WHERE queue IS NOT NULL;
-- Pull claims: `dispatched` rows leased to 'queue:<name>' until their visibility timeout.
CREATE INDEX occurrences_claimed ON occurrences (lease_expires_at) WHERE status = 'dispatched';
