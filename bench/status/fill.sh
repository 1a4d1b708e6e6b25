#!/bin/bash
# Builds a SQLite store with 10 M occurrences (for status.py): one event through the API, then
# 10 M finished occurrences of it written straight into the file with sqlite3.
# Usage: BIN=target/release/qhronosd DIR=/tmp/qhronos-status-10m bench/status/fill.sh
set -e
BIN=${BIN:-target/release/qhronosd}
DIR=${DIR:-/tmp/qhronos-status-10m}
mkdir -p "$DIR"
export QHRONOS_MASTER_TOKEN=measure-master-token-0123456789
export QHRONOS_DELIVERY__ALLOWED_NETWORKS='[127.0.0.0/8]'
"$BIN" --data-dir "$DIR/data" --port 18181 > "$DIR/fill.log" 2>&1 &
PID=$!
for i in $(seq 50); do curl -sf localhost:18181/health >/dev/null && break; sleep 0.2; done
EV=$(curl -s -X POST localhost:18181/events -H "Authorization: Bearer $QHRONOS_MASTER_TOKEN" -H 'content-type: application/json' \
  -d '{"name":"m","start_time":"2099-01-01T00:00:00Z","webhook":"http://127.0.0.1:9/h"}' | python3 -c 'import sys,json;print(json.load(sys.stdin)["id"])')
kill $PID; wait $PID || true
NOW=$(date +%s%3N)
time sqlite3 "$DIR/data/qhronos.db" <<SQL
PRAGMA journal_mode=WAL;
PRAGMA synchronous=OFF;
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 10000000)
INSERT INTO occurrences (id, event_id, scheduled_at, status, attempts, attempt_limit, created_at, updated_at, completed_at)
SELECT printf('00000000-0000-7000-8000-%012d', i), '$EV', i, CASE WHEN i % 10 = 0 THEN 'failed' WHEN i % 7 = 0 THEN 'cancelled' ELSE 'completed' END, 1, 8, $NOW, $NOW, $NOW FROM n;
COMMIT;
SELECT status, count(*) FROM occurrences GROUP BY status;
SQL
echo "event $EV"
