#!/usr/bin/env python3
"""Read the newest unread mail of the outbox, for local development.

Without `PORTCULLIS_SMTP_URL`, Portcullis writes each mail as an `.eml` file
under `<data dir>/outbox/`. Those files are MIME (the text is
quoted-printable, so `grep token=` finds a broken token). This prints the
newest unread mail to an address as shell assignments:

    $ python3 scripts/mail.py ada@example.com
    MAIL_SUBJECT='Reset your password'
    MAIL_LINK='http://localhost:8080/reset-password?token=AZKx...'
    MAIL_TOKEN='AZKx...'
    MAIL_CODE='48213377'

so `eval "$(python3 scripts/mail.py ada@example.com)"` sets them in a shell.
It waits up to 10 seconds for a mail (sending is off the request path), and
marks what it printed as read (`<outbox>/.read`), like an inbox, so the next
call waits for the next mail. `--subject WORD` picks mails whose subject
holds WORD. The outbox is `$PORTCULLIS_DATA_DIR/outbox` (default
`./data/outbox`) or `--outbox DIR`. Python 3 standard library only.
"""

import argparse
import email
import email.policy
import os
import re
import shlex
import sys
import time


def parse(path):
    with open(path, "rb") as f:
        msg = email.message_from_binary_file(f, policy=email.policy.default)
    body = msg.get_body(preferencelist=("plain", "html"))
    text = body.get_content() if body is not None else ""
    return msg, text


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("to", help="recipient address (as registered)")
    ap.add_argument("--subject", default="", help="only mails whose subject holds this (any case)")
    ap.add_argument("--outbox", default=None)
    ap.add_argument("--wait", type=float, default=10.0, help="seconds to wait for a mail")
    args = ap.parse_args()
    outbox = args.outbox or os.path.join(os.environ.get("PORTCULLIS_DATA_DIR", "./data"), "outbox")
    read_log = os.path.join(outbox, ".read")
    deadline = time.monotonic() + args.wait
    while True:
        seen = set()
        if os.path.exists(read_log):
            with open(read_log) as f:
                seen = {line.strip() for line in f}
        names = sorted(n for n in os.listdir(outbox) if n.endswith(".eml")) if os.path.isdir(outbox) else []
        # Mail ids are UUIDv7: name order is sending order; newest first.
        for name in reversed(names):
            if name in seen:
                continue
            msg, text = parse(os.path.join(outbox, name))
            if args.to.lower() not in str(msg.get("To", "")).lower():
                continue
            subject = str(msg.get("Subject", ""))
            if args.subject.lower() not in subject.lower():
                continue
            link = re.search(r"https?://\S+[?&]token=([A-Za-z0-9_.~-]+)", text)
            code = re.search(r"Code:\s*(\d+)", text)
            with open(read_log, "a") as f:
                f.write(name + "\n")
            print(f"MAIL_SUBJECT={shlex.quote(subject)}")
            print(f"MAIL_LINK={shlex.quote(link.group(0) if link else '')}")
            print(f"MAIL_TOKEN={shlex.quote(link.group(1) if link else '')}")
            print(f"MAIL_CODE={shlex.quote(code.group(1) if code else '')}")
            return 0
        if time.monotonic() > deadline:
            print(f"mail.py: no unread mail to {args.to} in {outbox}", file=sys.stderr)
            return 1
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())
