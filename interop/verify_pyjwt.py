#!/usr/bin/env python3
"""Verify a Portcullis access token the way a Python resource server would.

Uses PyJWT's PyJWKClient and nothing but OpenID discovery: the key set comes
from the `jwks_uri` of `<discovery URL>` (or, with --jwks, straight from a
JWKS URL). No leeway: a token past `exp` is rejected.

    verify_pyjwt.py --discovery URL --token JWT --issuer ISS --audience AUD --alg ALG

Exit 0 and print `valid ...` when the token verifies, exit 1 and print
`rejected reason=<slug> ...` when it does not, exit 2 on a usage or setup
error (discovery unreachable, bad arguments).
"""

import argparse
import json
import sys
import urllib.request

import jwt
from jwt import PyJWKClient
from jwt.exceptions import (
    ExpiredSignatureError,
    ImmatureSignatureError,
    InvalidAlgorithmError,
    InvalidAudienceError,
    InvalidIssuerError,
    InvalidSignatureError,
    MissingRequiredClaimError,
    PyJWKClientConnectionError,
    PyJWKClientError,
    PyJWTError,
)

EXPECTED_TYP = "at+jwt"


def reject(reason, detail):
    print(f"pyjwt: rejected reason={reason} detail={detail}")
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--discovery", help="URL of /.well-known/openid-configuration")
    src.add_argument("--jwks", help="URL of a JWKS (skips discovery)")
    ap.add_argument("--token", required=True)
    ap.add_argument("--issuer", required=True)
    ap.add_argument("--audience", required=True)
    ap.add_argument("--alg", required=True, choices=["EdDSA", "ES256", "RS256"])
    args = ap.parse_args()

    jwks_uri = args.jwks
    if args.discovery:
        try:
            with urllib.request.urlopen(args.discovery, timeout=10) as resp:
                meta = json.load(resp)
        except Exception as exc:  # setup failure, not a verdict on the token
            print(f"pyjwt: error: discovery failed: {exc}", file=sys.stderr)
            sys.exit(2)
        if meta.get("issuer") != args.issuer:
            print(f"pyjwt: error: discovery issuer {meta.get('issuer')!r} != {args.issuer!r}", file=sys.stderr)
            sys.exit(2)
        jwks_uri = meta["jwks_uri"]

    client = PyJWKClient(jwks_uri, cache_keys=False, cache_jwk_set=False, timeout=10)
    try:
        header = jwt.get_unverified_header(args.token)
    except PyJWTError as exc:
        reject("malformed", exc)
    if header.get("alg") != args.alg:
        reject("alg", f"header alg {header.get('alg')!r}, expected {args.alg!r}")
    try:
        signing_key = client.get_signing_key_from_jwt(args.token)
    except PyJWKClientConnectionError as exc:
        print(f"pyjwt: error: JWKS fetch failed: {exc}", file=sys.stderr)
        sys.exit(2)
    except PyJWKClientError as exc:
        # "Unable to find a signing key that matches: ..." (kid not in the JWKS)
        reject("unknown-kid", f"kid={header.get('kid')!r}: {exc}")
    try:
        claims = jwt.decode(
            args.token,
            key=signing_key,
            algorithms=[args.alg],
            audience=args.audience,
            issuer=args.issuer,
            leeway=0,
            options={"require": ["exp", "iat", "iss", "aud", "sub"], "strict_aud": False},
        )
    except ExpiredSignatureError as exc:
        reject("expired", exc)
    except InvalidSignatureError as exc:
        reject("signature", exc)
    except InvalidIssuerError as exc:
        reject("issuer", exc)
    except InvalidAudienceError as exc:
        reject("audience", exc)
    except InvalidAlgorithmError as exc:
        reject("alg", exc)
    except ImmatureSignatureError as exc:
        reject("not-yet-valid", exc)
    except MissingRequiredClaimError as exc:
        reject("missing-claim", exc)
    except PyJWTError as exc:
        reject("invalid", f"{type(exc).__name__}: {exc}")
    # The header was covered by the signature just verified; now its type.
    if header.get("typ") != EXPECTED_TYP:
        reject("typ", f"typ {header.get('typ')!r}, expected {EXPECTED_TYP!r}")
    print(f"pyjwt: valid alg={header['alg']} kid={header.get('kid')} sub={claims['sub']} exp={claims['exp']}")
    sys.exit(0)


if __name__ == "__main__":
    main()
