#!/usr/bin/env python3
"""Does one slow webhook endpoint delay another endpoint's deliveries? (docs/benchmarks.md)

Starts `kassa serve` (SQLite, a throwaway directory), a fast receiver (answers 200 at
once) and a slow one (answers 200 after --sleep seconds), subscribes both to
order.created in one store, places --orders orders through the API as fast as one
client can, and prints how long each order.created took to reach the fast receiver
(from the event's timestamp), with and without the slow endpoint.
"""
import argparse, json, os, shutil, socket, subprocess, sys, tempfile, threading, time
import urllib.request
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

def receiver(sleep):
    got = []
    lock = threading.Lock()
    class H(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            now = time.time()
            if sleep:
                time.sleep(sleep)
            ev = json.loads(body)
            with lock:
                got.append((ev["id"], ev["timestamp"], now))
            self.send_response(200); self.end_headers()
        def log_message(self, *a): pass
    class S(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 1024
    srv = S(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, got

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def api(base, key, method, path, body=None):
    req = urllib.request.Request(base + path, method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"{}")

def run(kassa, orders, slow_sleep):
    d = tempfile.mkdtemp(prefix="kassa-slow-")
    env = dict(os.environ, KASSA_DATABASE_URL=f"sqlite://{d}/kassa.db",
               KASSA_SECRETS_KEY_FILE=f"{d}/secrets.key", KASSA_ALLOW_PRIVATE_NETWORK="true",
               KASSA_LISTEN=f"127.0.0.1:{free_port()}", RUST_LOG="warn",
               KASSA_RATE_LIMIT_ORDERS_PER_STORE="off", KASSA_RATE_LIMIT_ORDERS_PER_IP="off")
    base = "http://" + env["KASSA_LISTEN"]
    out = subprocess.run([kassa, "tenant", "create", "--slug", "exp", "--name", "Exp",
                          "--owner-email", "o@exp.test"], env=env, capture_output=True, text=True, check=True)
    key = json.loads(out.stdout)["test_api_key"]
    server = subprocess.Popen([kassa, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=open(f"{d}/log", "w"))
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(base + "/readyz", timeout=1); break
            except Exception:
                time.sleep(0.05)
        fast, fast_got = receiver(0)
        slow, slow_got = receiver(slow_sleep)
        api(base, key, "POST", "/api/v1/webhook-endpoints",
            {"url": f"http://127.0.0.1:{fast.server_address[1]}/fast", "event_types": ["order.created"]})
        if slow_sleep is not None:
            api(base, key, "POST", "/api/v1/webhook-endpoints",
                {"url": f"http://127.0.0.1:{slow.server_address[1]}/slow", "event_types": ["order.created"]})
        pool = api(base, key, "POST", "/api/v1/license-pools", {"name": "p"})["id"]
        prd = api(base, key, "POST", "/api/v1/products", {"name": "x", "prices": [{"currency": "USD", "amount": 100}],
                  "delivery": {"method": "license_pool", "pool_id": pool}})["id"]
        t0 = time.time()
        for _ in range(orders):
            api(base, key, "POST", "/api/v1/orders", {"lines": [{"product_id": prd, "quantity": 1}], "currency": "USD",
                "customer": {"email": "c@exp.test"}, "payment_method": "bank_transfer",
                "consents": {"terms": True, "personal_data": True}})
        placed = time.time() - t0
        deadline = time.time() + 600
        while len(fast_got) < orders and time.time() < deadline:
            time.sleep(0.1)
        lat = sorted(now - datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() for _, ts, now in fast_got)
        q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")
        label = "no slow endpoint" if slow_sleep is None else f"slow endpoint answering after {slow_sleep:g} s"
        fast_done = time.time() - t0
        slow_done = float("nan")
        if slow_sleep is not None:
            while len(slow_got) < orders and time.time() < deadline:
                time.sleep(0.1)
            slow_done = time.time() - t0
        print(f"{label:40} {orders} orders placed in {placed:5.1f} s; fast endpoint got {len(fast_got)}: "
              f"latency p50 {q(0.5):6.2f} s, p99 {q(0.99):6.2f} s, max {lat[-1] if lat else float('nan'):6.2f} s "
              f"(all in {fast_done:5.1f} s); slow endpoint got {len(slow_got)} (all in {slow_done:5.1f} s)")
        sys.stdout.flush()
    finally:
        server.terminate(); server.wait()
        shutil.rmtree(d, ignore_errors=True)

if __name__ == "__main__":
    a = argparse.ArgumentParser()
    a.add_argument("--kassa", default="target/debug/kassa")
    a.add_argument("--orders", type=int, default=600)
    a.add_argument("--sleep", type=float, default=5.0)
    args = a.parse_args()
    run(args.kassa, args.orders, None)
    run(args.kassa, args.orders, args.sleep)
