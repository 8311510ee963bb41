#!/usr/bin/env python3
"""A software passkey (WebAuthn authenticator) for curl walkthroughs.

    curl … /v1/me/passkeys/options | python3 scripts/passkey.py create http://localhost:8080
    curl … /v1/sessions/passkey/options | python3 scripts/passkey.py get http://localhost:8080

Reads Portcullis's options answer (`{challenge_id, public_key}`) on stdin
and prints the JSON body of the next call: `{challenge_id, credential}`,
with `credential` in the WebAuthn Level 3 JSON form a browser's
`credential.toJSON()` gives. `create` makes an ES256 (P-256) key pair with
user verification and "none" attestation; `get` signs an assertion with a
key it made for that RP id (one listed in `allowCredentials`, or any, as a
discoverable credential, with its user handle). The origin argument is the
page's origin: for the built-in defaults, the public URL.

The keys are kept in `$PORTCULLIS_DATA_DIR/softpasskeys.json` (default
`./data/softpasskeys.json`) or `--keys FILE`: this is a test tool, not a
place for real credentials. Python 3 standard library only (P-256 ECDSA and
the little CBOR it needs are written out below).
"""

import base64
import hashlib
import json
import os
import secrets
import struct
import sys

# NIST P-256.
P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
A = P - 3
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
G = (
    0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
)


def add(p1, p2):
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    (x1, y1), (x2, y2) = p1, p2
    if x1 == x2 and (y1 + y2) % P == 0:
        return None
    if p1 == p2:
        m = (3 * x1 * x1 + A) * pow(2 * y1, -1, P) % P
    else:
        m = (y2 - y1) * pow(x2 - x1, -1, P) % P
    x3 = (m * m - x1 - x2) % P
    return x3, (m * (x1 - x3) - y1) % P


def mul(k, point):
    result = None
    while k:
        if k & 1:
            result = add(result, point)
        point = add(point, point)
        k >>= 1
    return result


def sign(d: int, message: bytes) -> bytes:
    """ECDSA P-256 / SHA-256, DER-encoded (as WebAuthn sends it)."""
    z = int.from_bytes(hashlib.sha256(message).digest(), "big")
    while True:
        k = secrets.randbelow(N - 1) + 1
        r = mul(k, G)[0] % N
        s = pow(k, -1, N) * (z + r * d) % N
        if r and s:
            break

    def der_int(v: int) -> bytes:
        b = v.to_bytes(32, "big").lstrip(b"\0")
        if b[0] & 0x80:
            b = b"\0" + b
        return b"\x02" + bytes([len(b)]) + b

    body = der_int(r) + der_int(s)
    return b"\x30" + bytes([len(body)]) + body


def cbor(v) -> bytes:
    """The CBOR subset an attestation object needs: ints, bytes, text, maps."""

    def head(major: int, n: int) -> bytes:
        if n < 24:
            return bytes([major << 5 | n])
        if n < 256:
            return bytes([major << 5 | 24, n])
        return bytes([major << 5 | 25]) + struct.pack(">H", n)

    if isinstance(v, int):
        return head(0, v) if v >= 0 else head(1, -1 - v)
    if isinstance(v, bytes):
        return head(2, len(v)) + v
    if isinstance(v, str):
        return head(3, len(v.encode())) + v.encode()
    if isinstance(v, dict):
        return head(5, len(v)) + b"".join(cbor(k) + cbor(x) for k, x in v.items())
    raise TypeError(type(v))


def b64u(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def unb64u(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def client_data(kind: str, challenge: str, origin: str) -> bytes:
    return json.dumps(
        {"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False},
        separators=(",", ":"),
    ).encode()


def main(argv) -> int:
    keys_file = os.path.join(os.environ.get("PORTCULLIS_DATA_DIR", "./data"), "softpasskeys.json")
    if "--keys" in argv:
        i = argv.index("--keys")
        keys_file = argv[i + 1]
        argv = argv[:i] + argv[i + 2 :]
    if len(argv) != 2 or argv[0] not in ("create", "get"):
        print(__doc__, file=sys.stderr)
        return 2
    action, origin = argv
    options = json.load(sys.stdin)
    pk = options["public_key"]
    pk = pk.get("publicKey", pk)
    keys = json.load(open(keys_file)) if os.path.exists(keys_file) else []
    if action == "create":
        rp_id = pk["rp"]["id"]
        d = secrets.randbelow(N - 1) + 1
        x, y = mul(d, G)
        cred_id = secrets.token_bytes(16)
        cose = cbor({1: 2, 3: -7, -1: 1, -2: x.to_bytes(32, "big"), -3: y.to_bytes(32, "big")})
        auth_data = (
            hashlib.sha256(rp_id.encode()).digest()
            + bytes([0x45])  # user present, user verified, attested credential data
            + struct.pack(">I", 0)
            + bytes(16)  # AAGUID
            + struct.pack(">H", len(cred_id))
            + cred_id
            + cose
        )
        att = cbor({"fmt": "none", "attStmt": {}, "authData": auth_data})
        cdj = client_data("webauthn.create", pk["challenge"], origin)
        keys.append({"rp_id": rp_id, "id": b64u(cred_id), "d": hex(d), "user_handle": pk["user"]["id"]})
        os.makedirs(os.path.dirname(os.path.abspath(keys_file)), exist_ok=True)
        json.dump(keys, open(keys_file, "w"))
        credential = {
            "id": b64u(cred_id),
            "rawId": b64u(cred_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64u(cdj),
                "attestationObject": b64u(att),
                "transports": ["internal"],
            },
        }
    else:
        rp_id = pk.get("rpId") or origin.split("//", 1)[1].split(":")[0]
        allowed = [c["id"] for c in pk.get("allowCredentials") or []]
        mine = [k for k in keys if k["rp_id"] == rp_id and (not allowed or k["id"] in allowed)]
        if not mine:
            print(f"passkey.py: no passkey for {rp_id} in {keys_file}", file=sys.stderr)
            return 1
        key = mine[-1]
        auth_data = hashlib.sha256(rp_id.encode()).digest() + bytes([0x05]) + struct.pack(">I", 0)
        cdj = client_data("webauthn.get", pk["challenge"], origin)
        sig = sign(int(key["d"], 16), auth_data + hashlib.sha256(cdj).digest())
        credential = {
            "id": key["id"],
            "rawId": key["id"],
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64u(cdj),
                "authenticatorData": b64u(auth_data),
                "signature": b64u(sig),
                "userHandle": key["user_handle"],
            },
        }
    print(json.dumps({"challenge_id": options["challenge_id"], "credential": credential}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
