# Usage: BIN=target/release/qhronosd DIR=/tmp/qhronos-status-10m python3 bench/status/status.py
# GET /status against the 10 M-occurrence store: the cold request (a full count), then
# sequential and concurrent requests served from the cache.
import http.client, json, os, subprocess, threading, time
env = dict(os.environ, QHRONOS_MASTER_TOKEN="measure-master-token-0123456789",
           QHRONOS_RATE_LIMIT__ENABLED="false", QHRONOS_LOG_LEVEL="warn")
p = subprocess.Popen([os.environ.get("BIN", "target/release/qhronosd"), "--data-dir", os.environ.get("DIR", "/tmp/qhronos-status-10m") + "/data", "--port", "18181"],
                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
def get(c, path="/status"):
    t = time.perf_counter(); c.request("GET", path); r = c.getresponse(); body = r.read()
    return (time.perf_counter() - t) * 1000, r.status, body
for _ in range(200):
    try:
        c = http.client.HTTPConnection("127.0.0.1", 18181); get(c, "/health"); break
    except Exception:
        time.sleep(0.1)
ms, st, body = get(c)
print(f"cold /status: {ms:.1f} ms, status {st}, occurrences {json.loads(body)['occurrences']}")
lat = []
t0 = time.time()
while time.time() - t0 < 10:
    lat.append(get(c)[0])
lat.sort()
q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))]
print(f"sequential /status for 10 s: {len(lat)} requests, p50 {q(0.5):.2f} ms, p99 {q(0.99):.2f} ms, max {lat[-1]:.1f} ms")
n = [0]; lk = threading.Lock(); worst = [0.0]
def worker():
    cc = http.client.HTTPConnection("127.0.0.1", 18181); end = time.time() + 10
    while time.time() < end:
        ms, _, _ = get(cc)
        with lk:
            n[0] += 1; worst[0] = max(worst[0], ms)
ts = [threading.Thread(target=worker) for _ in range(16)]
[t.start() for t in ts]; [t.join() for t in ts]
print(f"16 concurrent clients for 10 s: {n[0]} requests ({n[0]/10:.0f}/s), slowest {worst[0]:.1f} ms")
ms, _, _ = get(c, "/metrics")
print(f"/metrics: {ms:.1f} ms")
p.terminate(); p.wait()
