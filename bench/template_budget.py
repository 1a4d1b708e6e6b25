"""Template budget figures against a running binary: python3 bench/template_budget.py target/debug/qhronosd

Starts the binary on port 18093 with a temporary data dir, then times: one action of 30,000
`{{ event.name }}`, one of 20,000 loops of 2,000 turns, /health while 4 such creates are in
flight, and a batch of 1,000 items of 30,000 instructions each. Needs `pip install requests`."""
import json, os, subprocess, sys, tempfile, threading, time
import requests

BIN, PORT, TOKEN = sys.argv[1], 18093, "measure-master-token-0123456789"
URL = f"http://127.0.0.1:{PORT}"
H = {"Authorization": f"Bearer {TOKEN}"}
d = tempfile.mkdtemp()
env = dict(os.environ, QHRONOS_MASTER_TOKEN=TOKEN, QHRONOS_RATE_LIMIT__ENABLED="false")
p = subprocess.Popen([BIN, "--port", str(PORT), "--data-dir", d, "--log-level", "error"], env=env)
try:
    for _ in range(100):
        try:
            requests.get(URL + "/health", timeout=1); break
        except Exception:
            time.sleep(0.1)
    def ev(body):
        return {"name": "t", "start_time": "2030-01-01T00:00:00Z",
                "action": {"type": "webhook", "params": {"url": "https://example.com/", "body": body}}}
    small = ev({"items": ["{{ event.name }}"] * 30000})
    loops = ev({"items": ["{% for i in range(2000) %}{% endfor %}"] * 20000})
    for name, body in [("30,000 x {{ event.name }}", small), ("20,000 x range(2000) loop", loops)]:
        t = time.perf_counter()
        r = requests.post(URL + "/events", json=body, headers=H, timeout=600)
        print(f"POST /events {name}: {r.status_code} in {1000*(time.perf_counter()-t):.0f} ms: {r.text[:100]}")
    # /health while 4 heavy creates are in flight.
    lat, done = [], []
    def heavy():
        requests.post(URL + "/events", json=loops, headers=H, timeout=600); done.append(1)
    ths = [threading.Thread(target=heavy) for _ in range(4)]
    t0 = time.perf_counter()
    for th in ths: th.start()
    while len(done) < 4:
        t = time.perf_counter(); requests.get(URL + "/health", timeout=600); lat.append(time.perf_counter() - t)
    for th in ths: th.join()
    print(f"4 concurrent heavy creates: all answered in {1000*(time.perf_counter()-t0):.0f} ms; /health during them: {len(lat)} requests, max {1000*max(lat):.1f} ms")
    item = ev("{% for i in range(10000) %}{% endfor %}")
    t = time.perf_counter()
    r = requests.post(URL + "/events/batch", json={"events": [item] * 1000}, headers=H, timeout=600)
    print(f"POST /events/batch 1,000 x range(10000): {r.status_code} in {1000*(time.perf_counter()-t):.0f} ms: {r.text[:160]}")
finally:
    p.terminate(); p.wait()
