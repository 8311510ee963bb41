#!/usr/bin/env python3
"""Print a tampered copy of a JWT: one claim changed, header and signature kept.

    tamper.py TOKEN

Sets `roles` to ["admin"] (or, when the token has no `roles`, changes `sub`),
re-encodes the payload as base64url and keeps the original signature, so a
verifier that checks the signature must reject it. Standard library only.
"""

import base64
import json
import sys


def b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def main() -> None:
    header, payload, signature = sys.argv[1].strip().split(".")
    claims = json.loads(b64url_decode(payload))
    if "roles" in claims:
        claims["roles"] = ["admin"]
    else:
        claims["sub"] = claims.get("sub", "") + "x"
    forged = b64url_encode(json.dumps(claims, separators=(",", ":")).encode())
    if forged == payload:
        sys.exit("tamper.py: payload did not change")
    print(f"{header}.{forged}.{signature}")


if __name__ == "__main__":
    main()
