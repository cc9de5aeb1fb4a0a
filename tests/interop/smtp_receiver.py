"""A real SMTP server for the mail tests (tests/api/mail.rs), with the PyPI
`aiosmtpd` library: every message it accepts is written, as received, to a file
of its own in --dir (`<n>.eml`), beside what Python's own `email` package reads
in it (`<n>.json`: envelope, headers, and each part decoded with its type); each
file is written whole under another name, then renamed, so that a reader never
sees half a message.

  --dir D     where the messages go
  --port P    listen on 127.0.0.1:P (0: a port the system picks)

Prints `PORT <n>` once listening."""

import argparse
import email
import email.policy
import itertools
import json
import os
import sys
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP


class Keep:
    def __init__(self, directory: Path):
        self.directory = directory
        self.counter = itertools.count(len(list(directory.glob("*.eml"))) + 1)

    async def handle_DATA(self, server, session, envelope):
        n = next(self.counter)
        raw = envelope.original_content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        parts = [
            {"type": p.get_content_type(), "content": p.get_content()}
            for p in message.walk()
            if not p.is_multipart()
        ]
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_to": envelope.rcpt_tos,
            "from": str(message["From"]),
            "to": str(message["To"]),
            "subject": str(message["Subject"]),
            "message_id": str(message["Message-ID"]),
            "content_type": message.get_content_type(),
            "parts": parts,
        }
        for name, data in ((f"{n:06}.eml", raw), (f"{n:06}.json", json.dumps(record).encode())):
            part = self.directory / f".{name}.part"
            part.write_bytes(data)
            os.replace(part, self.directory / name)
        return "250 OK"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    directory = Path(args.dir)
    directory.mkdir(parents=True, exist_ok=True)
    controller = Controller(Keep(directory), hostname="127.0.0.1", port=args.port)
    if args.port == 0:
        # aiosmtpd has no port 0 of its own: pick one, then hand it over.
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            controller.port = s.getsockname()[1]
    controller.start()
    print(f"PORT {controller.port}", flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
