-- Why a paused event was paused by the engine (a receiver answered 410 Gone); NULL when a
-- person paused it or it is not paused.
ALTER TABLE events ADD COLUMN paused_reason TEXT;
