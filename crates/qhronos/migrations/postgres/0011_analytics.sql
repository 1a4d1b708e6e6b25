-- Delivery analytics, written with the outcomes (issue 14 part 5). One row per
-- (subject, grain, bucket start, metric, bin): `subject` is an event id, or '' for every event;
-- `grain` the bucket width in ms (60000: minute, 3600000: hour); `metric` a counter (`due`,
-- `delivered`, `failed_attempts`, `retried`, `failed`, `missed`, bin 0) or a histogram
-- (`lateness`, `duration`: bin = log-scale bucket of the value in ms). Writes add to `n`, so
-- rows merge by addition; reads sum them. A query reads one range of the key.
CREATE TABLE analytics (
    subject TEXT COLLATE "C" NOT NULL,
    grain   BIGINT NOT NULL,
    start   BIGINT NOT NULL,
    metric  TEXT COLLATE "C" NOT NULL,
    bin     BIGINT NOT NULL,
    n       BIGINT NOT NULL,
    PRIMARY KEY (subject, grain, start, metric, bin)
);
-- Retention deletes by age.
CREATE INDEX analytics_start ON analytics (start);

-- Failed attempts by target (URL host and path, email domain, WebSocket client, queue), per
-- event and hour, with the last error seen.
CREATE TABLE analytics_targets (
    event_id   TEXT COLLATE "C" NOT NULL,
    start      BIGINT NOT NULL,
    target     TEXT NOT NULL,
    failed     BIGINT NOT NULL,
    last_error TEXT,
    last_at    BIGINT NOT NULL,
    PRIMARY KEY (event_id, start, target)
);
CREATE INDEX analytics_targets_start ON analytics_targets (start);
