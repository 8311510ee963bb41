// A small OpenID provider for the end-to-end tests: discovery, a JWKS with
// one ES256 key, an authorization endpoint that approves at once (it
// redirects back with a code, state kept), and a token endpoint that checks
// the client's secret (basic or post), the code and its redirect_uri, and
// returns a signed ID token with the request's nonce. Enough for
// Portcullis's `oidc` kind of provider; not a real IdP.
import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { createServer } from 'node:http';

const b64url = (b) => Buffer.from(b).toString('base64url');

/** `user`: the claims of the one person who signs in (`sub`, `email`, `name`). */
export async function startFakeIdp({ clientId, clientSecret, user }) {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'fake-1', alg: 'ES256', use: 'sig' };
  const codes = new Map();
  const seen = { authorize: 0, token: 0 };
  let issuer = '';

  const idToken = (nonce) => {
    const now = Math.floor(Date.now() / 1000);
    const header = b64url(JSON.stringify({ alg: 'ES256', kid: jwk.kid, typ: 'JWT' }));
    const payload = b64url(
      JSON.stringify({ iss: issuer, aud: clientId, iat: now, exp: now + 300, nonce, email_verified: true, ...user }),
    );
    const sig = sign('sha256', Buffer.from(`${header}.${payload}`), { key: privateKey, dsaEncoding: 'ieee-p1363' });
    return `${header}.${payload}.${b64url(sig)}`;
  };

  const server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', issuer);
    const json = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(body));
    };
    if (u.pathname === '/.well-known/openid-configuration') {
      return json(200, {
        issuer,
        authorization_endpoint: `${issuer}/authorize`,
        token_endpoint: `${issuer}/token`,
        jwks_uri: `${issuer}/jwks`,
        response_types_supported: ['code'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['ES256'],
        token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
        code_challenge_methods_supported: ['S256'],
      });
    }
    if (u.pathname === '/jwks') return json(200, { keys: [jwk] });
    if (u.pathname === '/authorize') {
      seen.authorize++;
      const q = u.searchParams;
      const redirect = q.get('redirect_uri');
      if (q.get('client_id') !== clientId || !redirect || q.get('response_type') !== 'code') {
        res.writeHead(400, { 'content-type': 'text/plain' });
        return res.end('bad authorization request');
      }
      const code = b64url(randomBytes(16));
      codes.set(code, { nonce: q.get('nonce'), redirect, challenge: q.get('code_challenge') });
      const back = new URL(redirect);
      back.searchParams.set('code', code);
      if (q.get('state')) back.searchParams.set('state', q.get('state'));
      res.writeHead(302, { location: back.toString() });
      return res.end();
    }
    if (u.pathname === '/token' && req.method === 'POST') {
      seen.token++;
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        const f = new URLSearchParams(body);
        let [id, secret] = [f.get('client_id'), f.get('client_secret')];
        const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '');
        if (basic) [id, secret] = Buffer.from(basic[1], 'base64').toString().split(':').map(decodeURIComponent);
        if (id !== clientId || secret !== clientSecret) return json(401, { error: 'invalid_client' });
        const c = codes.get(f.get('code'));
        codes.delete(f.get('code'));
        if (!c || c.redirect !== f.get('redirect_uri')) return json(400, { error: 'invalid_grant' });
        const verifier = f.get('code_verifier');
        if (c.challenge && createHash('sha256').update(verifier ?? '').digest('base64url') !== c.challenge) {
          return json(400, { error: 'invalid_grant', error_description: 'PKCE' });
        }
        json(200, { access_token: b64url(randomBytes(16)), token_type: 'Bearer', expires_in: 300, id_token: idToken(c.nonce) });
      });
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found');
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  issuer = `http://127.0.0.1:${server.address().port}`;
  return { issuer, seen, stop: () => new Promise((r) => server.close(() => r())) };
}
