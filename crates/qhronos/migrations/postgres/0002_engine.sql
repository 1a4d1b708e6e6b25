-- Why the engine paused an event (a receiver answered 410 Gone); NULL otherwise.
ALTER TABLE events ADD COLUMN paused_reason TEXT;
