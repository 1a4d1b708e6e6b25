-- Named templates (issue 14, part 2): one row per template and one per version of it. A PUT
-- adds a version; `templates.version` is the newest. Versions are never changed.
CREATE TABLE templates (
    name       TEXT COLLATE "C" PRIMARY KEY,
    kind       TEXT NOT NULL,
    version    BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE template_versions (
    name       TEXT COLLATE "C" NOT NULL REFERENCES templates (name) ON DELETE CASCADE,
    version    BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    subject    TEXT,
    text       TEXT,
    html       TEXT,
    body       TEXT,
    sample     TEXT,
    created_at BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    PRIMARY KEY (name, version)
);

-- Full-text search over events (issue 14, part 3): a weighted tsvector of the name (A), tags
-- (B), description (C) and the string and number values of metadata (D), set by a trigger on
-- every write, under a GIN index. The 'simple' configuration: no stemming, no stop words
-- (names are not prose), prefixes match through `:*`.
ALTER TABLE events ADD COLUMN search tsvector;

CREATE FUNCTION events_search_vector(name TEXT, description TEXT, tags TEXT, metadata TEXT)
RETURNS tsvector LANGUAGE sql IMMUTABLE AS $$
    SELECT setweight(to_tsvector('simple', coalesce(name, '')), 'A')
        || setweight(jsonb_to_tsvector('simple', coalesce(tags, '[]')::jsonb, '["string"]'), 'B')
        || setweight(to_tsvector('simple', coalesce(description, '')), 'C')
        || setweight(jsonb_to_tsvector('simple', coalesce(metadata, '{}')::jsonb, '["string", "numeric", "boolean"]'), 'D')
$$;

CREATE FUNCTION events_search_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.search := events_search_vector(NEW.name, NEW.description, NEW.tags, NEW.metadata);
    RETURN NEW;
END
$$;

CREATE TRIGGER events_search BEFORE INSERT OR UPDATE OF name, description, tags, metadata ON events
    FOR EACH ROW EXECUTE FUNCTION events_search_trigger();

UPDATE events SET search = events_search_vector(name, description, tags, metadata);
CREATE INDEX events_search_idx ON events USING GIN (search);
