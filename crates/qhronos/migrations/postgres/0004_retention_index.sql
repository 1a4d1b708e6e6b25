-- Retention looks for finished events by age; without this it read every event (10 s with 10
-- million pending one-time events in the table).
CREATE INDEX events_finished ON events (updated_at) WHERE status IN ('inactive', 'deleted');
