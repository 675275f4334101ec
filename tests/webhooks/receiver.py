#!/usr/bin/env python3
"""A webhook receiver for Kassa's tests: verifies every request with the official
Standard Webhooks library (`standardwebhooks` from PyPI), unchanged, and logs it.

    python3 tests/webhooks/receiver.py --secret whsec_... --log deliveries.jsonl \
        [--plan 500,500,200] [--port 0] [--hold-first SECONDS] [--licenses]

Prints `listening on <port>` once ready. Answers each request with the next status
of --plan (200 once the plan is used up); a request whose signature does not verify is
answered 400. Each request is appended to --log as one JSON object: the webhook
headers, whether the signature verified, the event, and the status answered.
--hold-first keeps the first request waiting that long before answering (to test a
server killed mid-delivery). --licenses makes it a license web service.
"""

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--secret", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--plan", default="")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--hold-first", type=float, default=0.0)
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="accept unsigned requests (a plugin calling its own license service)",
    )
    parser.add_argument(
        "--licenses",
        action="store_true",
        help="act as a license web service: answer 2xx with {\"licenses\": [...]}, one per unit",
    )
    args = parser.parse_args()

    plan = [int(s) for s in args.plan.split(",") if s.strip()]
    lock = threading.Lock()
    state = {"count": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                if args.no_verify:
                    event = json.loads(body)
                    verified = True
                else:
                    event = Webhook(args.secret).verify(body, headers)
                    verified = True
            except (WebhookVerificationError, ValueError) as e:
                event = {"error": str(e)}
                verified = False
            with lock:
                n = state["count"]
                state["count"] += 1
            if n == 0 and args.hold_first > 0:
                time.sleep(args.hold_first)
            status = (plan[n] if n < len(plan) else 200) if verified else 400
            record = {
                "n": n,
                "webhook_id": headers.get("webhook-id"),
                "webhook_timestamp": headers.get("webhook-timestamp"),
                "signatures": headers.get("webhook-signature", "").count("v1,"),
                "verified": verified,
                "type": event.get("type") if isinstance(event, dict) else None,
                "event": event,
                "answered": status,
                "authorization": headers.get("authorization"),
            }
            with lock, open(args.log, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            try:
                self.answer(status, event, n)
            except (BrokenPipeError, ConnectionResetError):
                # The sender went away (a test killed it mid-delivery): nothing to answer.
                pass

        def answer(self, status: int, event, n: int) -> None:
            self.send_response(status)
            if args.licenses and 200 <= status < 300:
                key = event.get("idempotency_key", "")
                count = int(event.get("quantity", 1))
                answer = {"licenses": [f"SVC-{key}-{i}" for i in range(1, count + 1)]}
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps(answer).encode())
                return
            self.send_header("content-type", "text/plain")
            self.end_headers()
            self.wfile.write(f"answer {status} to request {n}".encode())

        def log_message(self, *_args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"listening on {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
