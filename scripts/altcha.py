#!/usr/bin/env python3
"""Solve a Portcullis CAPTCHA (ALTCHA v1 proof of work) for curl walkthroughs.

    curl -s $B/v1/captcha | python3 scripts/altcha.py    # prints the `captcha` value

Reads the challenge `{algorithm, challenge, maxnumber, salt, signature}` on
stdin, finds `number` with `hex(sha256(salt + decimal(number))) == challenge`,
and prints base64 of the JSON `{algorithm, challenge, number, salt,
signature}`: what a sign-in or registration sends as `captcha`. A browser
app uses an ALTCHA widget or the TypeScript client instead (see the book,
"Limits and CAPTCHA"). Python 3 standard library only.
"""

import base64
import hashlib
import json
import sys


def main() -> int:
    c = json.load(sys.stdin)
    salt = c["salt"].encode()
    for n in range(int(c["maxnumber"]) + 1):
        if hashlib.sha256(salt + str(n).encode()).hexdigest() == c["challenge"]:
            answer = {k: c[k] for k in ("algorithm", "challenge", "salt", "signature")}
            answer["number"] = n
            print(base64.b64encode(json.dumps(answer).encode()).decode())
            return 0
    print("altcha.py: no solution within maxnumber", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
