#!/usr/bin/env python3
"""Print the current TOTP code of a secret, standing in for an authenticator app.

    python3 scripts/totp.py JBSWY3DPEHPK3PXP          # the current code
    python3 scripts/totp.py --next JBSWY3DPEHPK3PXP   # waits for the next 30 s step

RFC 6238 with the defaults Portcullis uses (SHA-1, 6 digits, 30-second
steps). A code works once: a sign-in right after turning two-factor on, in
the same step as the activation code, needs the next code (`--next`).
Python 3 standard library only.
"""

import base64
import hashlib
import hmac
import struct
import sys
import time


def code(secret: str, step: int) -> str:
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    off = mac[-1] & 0x0F
    n = struct.unpack(">I", mac[off : off + 4])[0] & 0x7FFFFFFF
    return f"{n % 1_000_000:06d}"


def main() -> int:
    args = sys.argv[1:]
    wait = "--next" in args
    args = [a for a in args if a != "--next"]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    step = int(time.time()) // 30
    if wait:
        time.sleep((step + 1) * 30 - time.time() + 0.5)
        step += 1
    print(code(args[0], step))
    return 0


if __name__ == "__main__":
    sys.exit(main())
