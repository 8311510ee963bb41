// The resource-server check of docs/guides/dpop.md ("Node, with jose"),
// run by interop/dpop_client.mjs against real tokens and proofs: the code
// the guide shows is this code.
import { createRemoteJWKSet, jwtVerify, EmbeddedJWK, calculateJwkThumbprint, base64url } from 'jose';
import { createHash } from 'node:crypto';

export function dpopVerifier(ISSUER) {
  const JWKS = createRemoteJWKSet(new URL(`${ISSUER}/.well-known/jwks.json`));
  const seen = new Map(); // jti -> expiry; use a shared store with several replicas

  /** `publicUrl`: this API's own URL of the request (scheme, host, path), not from Host. */
  return async function verifyDpopRequest({ method, publicUrl, authorization, dpop }) {
    const [scheme, token] = (authorization ?? '').split(' ');
    const { payload: at } = await jwtVerify(token, JWKS, {
      issuer: ISSUER, audience: 'portcullis', typ: 'at+jwt', algorithms: ['EdDSA', 'ES256', 'RS256'],
    });
    if (!at.cnf?.jkt) {
      if (scheme !== 'Bearer') throw new Error('a bearer token must come as Bearer');
      return at;
    }
    if (scheme !== 'DPoP' || !dpop) throw new Error('a DPoP-bound token needs the DPoP scheme and a proof');
    // EmbeddedJWK verifies with the proof's own `jwk` and refuses private keys.
    const { payload: p, protectedHeader } = await jwtVerify(dpop, EmbeddedJWK, {
      typ: 'dpop+jwt', algorithms: ['ES256', 'EdDSA'], maxTokenAge: '60s', clockTolerance: 5,
    });
    if (await calculateJwkThumbprint(protectedHeader.jwk, 'sha256') !== at.cnf.jkt) throw new Error('proof by another key');
    const u = new URL(publicUrl);
    if (p.htm !== method || p.htu !== `${u.origin}${u.pathname}`) throw new Error('proof for another request');
    if (p.ath !== base64url.encode(createHash('sha256').update(token).digest())) throw new Error('proof for another token');
    const now = Date.now();
    if (typeof p.jti !== 'string' || (seen.get(p.jti) ?? 0) > now) throw new Error('proof replayed');
    seen.set(p.jti, now + 70_000);
    return at;
  };
}
