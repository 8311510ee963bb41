#!/usr/bin/env node
// Verify a Portcullis access token the way a Node.js resource server would:
// `jose` createRemoteJWKSet + jwtVerify, keys found only through OpenID
// discovery (`jwks_uri`), or straight from a JWKS URL with --jwks.
// No clock tolerance: a token past `exp` is rejected.
//
//   node verify_jose.mjs --discovery URL --token JWT --issuer ISS --audience AUD --alg ALG
//
// Exit 0 and print `valid ...` when the token verifies, exit 1 and print
// `rejected reason=<slug> ...` when it does not, exit 2 on a usage or setup
// error (discovery unreachable, bad arguments).
import { parseArgs } from 'node:util';
import { createRemoteJWKSet, jwtVerify, decodeProtectedHeader, errors } from 'jose';

const { values: a } = parseArgs({
  options: {
    discovery: { type: 'string' },
    jwks: { type: 'string' },
    token: { type: 'string' },
    issuer: { type: 'string' },
    audience: { type: 'string' },
    alg: { type: 'string' },
  },
});

function setupError(msg) {
  console.error(`jose: error: ${msg}`);
  process.exit(2);
}

function reject(reason, detail) {
  console.log(`jose: rejected reason=${reason} detail=${detail}`);
  process.exit(1);
}

if (!a.token || !a.issuer || !a.audience || !['EdDSA', 'ES256', 'RS256'].includes(a.alg)) {
  setupError('usage: --discovery URL|--jwks URL --token JWT --issuer ISS --audience AUD --alg EdDSA|ES256|RS256');
}
if (!a.discovery === !a.jwks) setupError('give exactly one of --discovery and --jwks');

let jwksUri = a.jwks;
if (a.discovery) {
  let meta;
  try {
    const res = await fetch(a.discovery, { signal: AbortSignal.timeout(10_000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    meta = await res.json();
  } catch (e) {
    setupError(`discovery failed: ${e.message}`);
  }
  if (meta.issuer !== a.issuer) setupError(`discovery issuer ${meta.issuer} != ${a.issuer}`);
  jwksUri = meta.jwks_uri;
}

const JWKS = createRemoteJWKSet(new URL(jwksUri), { timeoutDuration: 10_000, cooldownDuration: 0 });

try {
  const { payload, protectedHeader } = await jwtVerify(a.token, JWKS, {
    issuer: a.issuer,
    audience: a.audience,
    algorithms: [a.alg],
    typ: 'at+jwt',
    clockTolerance: 0,
    requiredClaims: ['exp', 'iat', 'sub'],
  });
  console.log(`jose: valid alg=${protectedHeader.alg} kid=${protectedHeader.kid} sub=${payload.sub} exp=${payload.exp}`);
  process.exit(0);
} catch (e) {
  let kid;
  try { kid = decodeProtectedHeader(a.token).kid; } catch { kid = undefined; }
  if (e instanceof errors.JWKSTimeout) setupError(`JWKS fetch timed out: ${e.message}`);
  if (e instanceof errors.JWTExpired) reject('expired', e.message);
  if (e instanceof errors.JWSSignatureVerificationFailed) reject('signature', e.message);
  if (e instanceof errors.JWKSNoMatchingKey) reject('unknown-kid', `kid=${kid}: ${e.message}`);
  if (e instanceof errors.JOSEAlgNotAllowed) reject('alg', e.message);
  if (e instanceof errors.JWTClaimValidationFailed) {
    const slug = { iss: 'issuer', aud: 'audience', typ: 'typ', nbf: 'not-yet-valid' }[e.claim] ?? 'missing-claim';
    reject(slug, `${e.claim}: ${e.message}`);
  }
  if (e instanceof errors.JOSEError) reject('invalid', `${e.code}: ${e.message}`);
  setupError(`${e.name}: ${e.message}`);
}
