-- The expander's fence and its count watermark (issue 12, items 1 and 13).
-- plan_gen: bumped by every re-planning update, pause and resume; the expander writes its work
-- only if the generation it read is still the event's, so a stale plan never revives instants
-- a re-plan cancelled nor restores an old watermark.
-- mark_at / mark_index: the rule has mark_index instances up to and including mark_at (unix ms);
-- a COUNT rule resumes its numbering there instead of counting again from start_time.
ALTER TABLE events ADD COLUMN plan_gen BIGINT NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN mark_at BIGINT;
ALTER TABLE events ADD COLUMN mark_index BIGINT;
