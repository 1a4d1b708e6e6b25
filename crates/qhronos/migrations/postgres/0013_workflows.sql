-- Workflows: "when an occurrence of a matching event reaches one of these states, fire this".
-- `spec` is the validated definition (JSON: when, then, delay); `tags` the tags it concerns
-- (scoped tokens see a workflow whose tags their scope covers); `scope` the creator's scope
-- (JSON array, or NULL for an unscoped caller): matched events must lie within it.
CREATE TABLE workflows (
    id         TEXT COLLATE "C" PRIMARY KEY,
    name       TEXT NOT NULL,
    spec       TEXT NOT NULL,
    tags       TEXT NOT NULL,
    scope      TEXT,
    enabled    BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- A follow-up occurrence names what caused it (the workflow and the cause's occurrence), keeps
-- the cause as its templates see it (`cause`, JSON) and its depth in the chain (0: not caused).
-- One follow-up per (workflow, cause): the unique index makes a repeated write a no-op.
ALTER TABLE occurrences ADD COLUMN caused_by_workflow TEXT;
ALTER TABLE occurrences ADD COLUMN caused_by_occurrence TEXT;
ALTER TABLE occurrences ADD COLUMN cause TEXT;
ALTER TABLE occurrences ADD COLUMN depth BIGINT NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX occurrences_caused ON occurrences (caused_by_workflow, caused_by_occurrence);
CREATE INDEX occurrences_cause_of ON occurrences (caused_by_occurrence) WHERE caused_by_occurrence IS NOT NULL;
