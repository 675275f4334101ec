#!/usr/bin/env python3
"""A real SMTP server for Kassa's tests (aiosmtpd from PyPI). Every message it
receives is parsed with Python's email library and appended to --out as one JSON
object: envelope sender and recipients, From, To, Reply-To, Subject, and the text and
HTML parts.

    python3 tests/email/smtp_sink.py --out mails.jsonl [--port N]

Prints `listening on <port>` once ready (a free port when --port is not given).
"""

import argparse
import json
import socket
import time
from email import message_from_bytes, policy

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, out: str) -> None:
        self.out = out

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's naming)
        msg = message_from_bytes(envelope.original_content, policy=policy.default)
        text = msg.get_body(preferencelist=("plain",))
        html = msg.get_body(preferencelist=("html",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(msg.get("from", "")),
            "to": str(msg.get("to", "")),
            "reply_to": str(msg.get("reply-to", "")),
            "subject": str(msg.get("subject", "")),
            "text": text.get_content() if text else None,
            "html": html.get_content() if html else None,
        }
        with open(self.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        return "250 Message accepted"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    port = args.port or free_port()
    controller = Controller(Sink(args.out), hostname="127.0.0.1", port=port)
    controller.start()
    print(f"listening on {port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        controller.stop()


if __name__ == "__main__":
    main()
