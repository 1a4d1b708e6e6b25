#!/usr/bin/env python3
"""Indicative search figure on SQLite: applies crates/qhronos/migrations/sqlite/*.sql to a fresh
file, fills `events` with N rows by multi-row inserts (the FTS triggers index each), then times
the statement `SearchStore::search_events` sends for a one-word prefix query (LIMIT 51, as
GET /events?q=…&limit=50 asks). Runs on the SQLite of this Python, not the service's bundled one.

    python3 bench/search_fts.py --events 1000000 --queries 300
"""
import argparse, glob, json, os, random, sqlite3, tempfile, time, uuid

ap = argparse.ArgumentParser()
ap.add_argument("--events", type=int, default=1_000_000)
ap.add_argument("--queries", type=int, default=300)
a = ap.parse_args()

WORDS = [f"w{i:04d}" for i in range(5000)] + ["nightly", "backup", "report", "deploy", "sync", "billing", "invoice", "cleanup"]
rnd = random.Random(7)
path = os.path.join(tempfile.mkdtemp(), "bench.db")
db = sqlite3.connect(path)
db.execute("PRAGMA journal_mode=WAL")
for f in sorted(glob.glob(os.path.join(os.path.dirname(__file__), "../crates/qhronos/migrations/sqlite/*.sql"))):
    db.executescript(open(f).read())
cols = "id, name, description, start_time, timezone, schedule, exdates, rdates, action, tags, metadata, retry, misfire, status, created_at, updated_at"
t0 = time.time()
batch = []
act = json.dumps({"type": "webhook", "params": {"url": "https://example.com/"}})
for i in range(a.events):
    name = " ".join(rnd.choice(WORDS) for _ in range(3))
    desc = " ".join(rnd.choice(WORDS) for _ in range(6))
    tags = json.dumps([rnd.choice(WORDS)])
    meta = json.dumps({"owner": rnd.choice(WORDS), "n": i})
    batch.append((str(uuid.UUID(int=i)), name, desc, 0, "UTC", None, "[]", "[]", act, tags, meta, "{}", "{}", "active", i, i))
    if len(batch) == 2000:
        db.executemany(f"INSERT INTO events ({cols}) VALUES ({','.join('?' * 16)})", batch)
        batch = []
if batch:
    db.executemany(f"INSERT INTO events ({cols}) VALUES ({','.join('?' * 16)})", batch)
db.commit()
fill = time.time() - t0
sql = ("SELECT id, name, description, start_time, timezone, schedule, exdates, rdates, action, tags, metadata, "
       "hmac_secret, previous_hmac_secret, previous_secret_until, retry, misfire, status, next_fire_at, paused_reason, "
       "created_at, updated_at, score FROM (SELECT ev.*, -bm25(events_fts, 10.0, 2.0, 5.0, 1.0) AS score FROM events_fts "
       "JOIN events ev ON ev.rowid = events_fts.rowid WHERE events_fts MATCH ?) AS e WHERE status != 'deleted' "
       "ORDER BY score DESC, id DESC LIMIT 51")
lat, hits = [], []
for q in range(a.queries):
    w = rnd.choice(WORDS)[: rnd.choice([3, 4, 5])]
    s = time.perf_counter()
    rows = db.execute(sql, (f'"{w}"*',)).fetchall()
    lat.append((time.perf_counter() - s) * 1000)
    hits.append(len(rows))
lat.sort()
pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
print(json.dumps({"events": a.events, "sqlite": sqlite3.sqlite_version, "fill_s": round(fill, 1),
                  "queries": a.queries, "p50_ms": round(pct(0.50), 2), "p99_ms": round(pct(0.99), 2),
                  "max_ms": round(lat[-1], 2), "db_mb": round(os.path.getsize(path) / 1e6)}))
