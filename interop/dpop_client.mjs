// DPoP (RFC 9449) with a standard OAuth client (oauth4webapi), configured by
// discovery only:
//
//   node dpop_client.mjs --issuer URL --refresh-token RT --introspection-token SECRET [--nonce]
//
// The refresh token is of a session signed in without a proof; the first
// refresh_token grant with a DPoP proof binds the session to the client's
// key (oauth4webapi's DPoP handle, an ES256 key it generated), then:
//  1. discovery lists ES256 in dpop_signing_alg_values_supported;
//  2. the grant answers token_type DPoP and the access token's cnf.jkt is the
//     key's thumbprint; a second grant with a proof rotates again;
//  3. userinfo and GET /v1/me with the DPoP scheme and a proof answer 200;
//  4. a grant without a proof is refused (invalid_grant), userinfo with the
//     token as a bearer token is refused (401), and the session still works;
//  5. introspection shows cnf.jkt and token_type DPoP;
//  6. the guide's jose resource-server check (verify_dpop_jose.mjs) accepts
//     the bound token with a proof by the key, and refuses a replay, another
//     key's proof, a proof for another URL and the token as a bearer token.
// With --nonce, the server asks for nonces: the first grant must fail with
// use_dpop_nonce (isDPoPNonceError), and the retry (the handle keeps the
// nonce) must pass; without it, no request needs a retry.
// Prints one "ok - ..." line per check; exit 0 when all pass, 1 otherwise.
import * as oauth from 'oauth4webapi';
import { calculateJwkThumbprint, exportJWK, SignJWT, base64url } from 'jose';
import { createHash, randomUUID } from 'node:crypto';
import { dpopVerifier } from './verify_dpop_jose.mjs';

const args = {};
for (let i = 2; i < process.argv.length; i++) {
  const k = process.argv[i].replace(/^--/, '');
  const v = process.argv[i + 1];
  if (v === undefined || v.startsWith('--')) args[k] = true;
  else {
    args[k] = v;
    i++;
  }
}
const nonceMode = args.nonce === true;
const issuer = new URL(args.issuer);
const insecure = { [oauth.allowInsecureRequests]: true }; // loopback http in tests
const client = { client_id: 'interop-dpop' };
const clientAuth = oauth.None();
const introspector = (_as, _client, _body, headers) => {
  headers.set('authorization', `Bearer ${args['introspection-token']}`);
};

let failed = 0;
const check = (name, cond, detail) => {
  if (cond) console.log(`ok - ${name}`);
  else {
    failed += 1;
    console.log(`FAIL - ${name}${detail ? `: ${detail}` : ''}`);
  }
};
const claims = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url'));

/** Runs `fn`; on a nonce challenge, once more (the handle has the nonce now). */
let retries = 0;
async function withNonceRetry(fn) {
  try {
    return await fn();
  } catch (e) {
    if (!oauth.isDPoPNonceError(e)) throw e;
    retries += 1;
    return fn();
  }
}

try {
  const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, insecure));
  check('discovery lists ES256 for DPoP proofs', (as.dpop_signing_alg_values_supported ?? []).includes('ES256'),
    JSON.stringify(as.dpop_signing_alg_values_supported));

  const keyPair = await oauth.generateKeyPair('ES256');
  const jkt = await calculateJwkThumbprint(await exportJWK(keyPair.publicKey), 'sha256');
  const DPoP = oauth.DPoP(client, keyPair);

  const grant = (rt, opts = { DPoP }) =>
    withNonceRetry(async () =>
      oauth.processRefreshTokenResponse(as, client,
        await oauth.refreshTokenGrantRequest(as, client, clientAuth, rt, { ...insecure, ...opts })));

  const first = await grant(args['refresh-token']);
  check('a refresh_token grant with a proof binds the session: token_type DPoP',
    first.token_type === 'dpop', JSON.stringify(first.token_type));
  check('the access token is bound to the key (cnf.jkt)', claims(first.access_token).cnf?.jkt === jkt,
    JSON.stringify(claims(first.access_token).cnf));
  if (nonceMode) check('nonce mode: the first grant asked for a nonce and the retry passed', retries === 1, `retries ${retries}`);
  else check('no nonce mode: no retry needed', retries === 0, `retries ${retries}`);

  let refused = '';
  try {
    await oauth.processRefreshTokenResponse(as, client,
      await oauth.refreshTokenGrantRequest(as, client, clientAuth, first.refresh_token, insecure));
  } catch (e) {
    refused = e instanceof oauth.ResponseBodyError ? e.error : String(e);
  }
  check('the bound refresh token without a proof is refused (invalid_grant)', refused === 'invalid_grant', refused);

  const second = await grant(first.refresh_token);
  check('...and the family goes on: a grant with a proof rotates again',
    second.token_type === 'dpop' && second.refresh_token !== first.refresh_token);

  const sub = claims(second.access_token).sub;
  const info = await withNonceRetry(async () =>
    oauth.processUserInfoResponse(as, client, sub,
      await oauth.userInfoRequest(as, client, second.access_token, { ...insecure, DPoP })));
  check('userinfo with the DPoP scheme and a proof', info.sub === sub && info.email, JSON.stringify(info));

  const me = await withNonceRetry(() =>
    oauth.protectedResourceRequest(second.access_token, 'GET', new URL('/v1/me', issuer), new Headers(), null,
      { ...insecure, DPoP }));
  check('GET /v1/me with the DPoP scheme and a proof (ath)', me.status === 200, String(me.status));

  const bearer = await fetch(as.userinfo_endpoint, { headers: { authorization: `Bearer ${second.access_token}` } });
  check('the bound token as a bearer token is refused (401, DPoP challenge)',
    bearer.status === 401 && /^DPoP /.test(bearer.headers.get('www-authenticate') ?? ''),
    `${bearer.status} ${bearer.headers.get('www-authenticate')}`);

  const other = oauth.DPoP(client, await oauth.generateKeyPair('ES256'));
  let otherStatus = 0;
  try {
    const r = await withNonceRetry(() =>
      oauth.protectedResourceRequest(second.access_token, 'GET', new URL('/v1/me', issuer), new Headers(), null,
        { ...insecure, DPoP: other }));
    otherStatus = r.status;
  } catch (e) {
    otherStatus = e?.response?.status ?? e?.status ?? -1;
  }
  check('a proof by another key is refused (401)', otherStatus === 401, String(otherStatus));

  const intro = await oauth.processIntrospectionResponse(as, client,
    await oauth.introspectionRequest(as, client, introspector, second.access_token, insecure));
  check('introspection: active, token_type DPoP, cnf.jkt', intro.active === true && intro.token_type === 'DPoP'
    && intro.cnf?.jkt === jkt, JSON.stringify(intro));

  // The guide's resource server (jose), on an API of its own URL.
  const verify = dpopVerifier(as.issuer);
  const api = 'https://api.example.com/orders';
  const proofBy = async (kp, url = api) => new SignJWT({
    jti: randomUUID(), htm: 'GET', htu: url,
    ath: base64url.encode(createHash('sha256').update(second.access_token).digest()),
  })
    .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: await exportJWK(kp.publicKey) })
    .setIssuedAt()
    .sign(kp.privateKey);
  const req = (dpop, scheme = 'DPoP') => ({ method: 'GET', publicUrl: api, authorization: `${scheme} ${second.access_token}`, dpop });
  const good = await proofBy(keyPair);
  let rs = await verify(req(good)).then((at) => at.sub === sub, (e) => e.message);
  check('jose resource server (the guide): bound token with a proof by its key', rs === true, rs);
  const refusedBy = async (r) => verify(r).then(() => 'accepted', (e) => e.message);
  const replay = await refusedBy(req(good));
  check('jose resource server: a replayed proof is refused', replay === 'proof replayed', replay);
  const otherKey = await refusedBy(req(await proofBy(await oauth.generateKeyPair('ES256'))));
  check('jose resource server: another key\'s proof is refused', otherKey === 'proof by another key', otherKey);
  const elsewhere = await refusedBy(req(await proofBy(keyPair, 'https://api.example.com/admin')));
  check('jose resource server: a proof for another URL is refused', elsewhere === 'proof for another request', elsewhere);
  const asBearer = await refusedBy(req(undefined, 'Bearer'));
  check('jose resource server: the bound token as bearer is refused', asBearer.includes('DPoP scheme'), asBearer);
} catch (e) {
  failed += 1;
  console.log(`FAIL - unexpected error: ${e?.constructor?.name} ${e?.message} ${JSON.stringify(e?.cause ?? '')}`);
}
process.exit(failed ? 1 : 0);
