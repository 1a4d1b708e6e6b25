-- Analytics rows become one per (subject, grain, bucket start) instead of one per bin (issue 14
-- part 5, its 50 ms goal): the counters are columns and the two sketches (`lateness`,
-- `duration`) JSON objects of bin → count, kept as text. A write adds counters and merges
-- sketches bin by bin; a 30-day hourly query reads 720 rows a subject instead of one per bin.
-- The rows there are carried over.
CREATE TABLE analytics_cells (
    subject         TEXT COLLATE "C" NOT NULL,
    grain           BIGINT NOT NULL,
    start           BIGINT NOT NULL,
    due             BIGINT NOT NULL DEFAULT 0,
    delivered       BIGINT NOT NULL DEFAULT 0,
    failed_attempts BIGINT NOT NULL DEFAULT 0,
    retried         BIGINT NOT NULL DEFAULT 0,
    failed          BIGINT NOT NULL DEFAULT 0,
    missed          BIGINT NOT NULL DEFAULT 0,
    lateness        TEXT NOT NULL DEFAULT '{}',
    duration        TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (subject, grain, start)
);

INSERT INTO analytics_cells
SELECT subject, grain, start,
       COALESCE(SUM(n) FILTER (WHERE metric = 'due'), 0),
       COALESCE(SUM(n) FILTER (WHERE metric = 'delivered'), 0),
       COALESCE(SUM(n) FILTER (WHERE metric = 'failed_attempts'), 0),
       COALESCE(SUM(n) FILTER (WHERE metric = 'retried'), 0),
       COALESCE(SUM(n) FILTER (WHERE metric = 'failed'), 0),
       COALESCE(SUM(n) FILTER (WHERE metric = 'missed'), 0),
       COALESCE((jsonb_object_agg(bin, n) FILTER (WHERE metric = 'lateness'))::text, '{}'),
       COALESCE((jsonb_object_agg(bin, n) FILTER (WHERE metric = 'duration'))::text, '{}')
FROM analytics
GROUP BY subject, grain, start;

DROP TABLE analytics;
ALTER TABLE analytics_cells RENAME TO analytics;
ALTER TABLE analytics RENAME CONSTRAINT analytics_cells_pkey TO analytics_pkey;
-- Retention deletes by age.
CREATE INDEX analytics_start ON analytics (start);

-- Failed attempts by target are also kept for every event (event_id ''), so the unfiltered
-- query's top failing targets read one subject's rows instead of every event's.
INSERT INTO analytics_targets (event_id, start, target, failed, last_error, last_at)
SELECT '', t.start, t.target, SUM(t.failed),
       (SELECT l.last_error FROM analytics_targets l
        WHERE l.start = t.start AND l.target = t.target AND l.event_id <> ''
        ORDER BY l.last_at DESC LIMIT 1),
       MAX(t.last_at)
FROM analytics_targets t
WHERE t.event_id <> ''
GROUP BY t.start, t.target;
