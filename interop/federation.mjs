// Federated sign-in against a certified OpenID provider: panva's
// oidc-provider (pinned in package-lock.json), run here as three issuers at
// once on loopback, each with scriptable accounts:
//   - "google": query response mode, client_secret_basic, email_verified true;
//   - "apple": Apple-like: response_mode=form_post, a private-relay address
//     with email_verified as the string "true", and Apple's client secret:
//     a front proxy checks that Portcullis sent an ES256 JWT signed by the
//     .p8 key (iss team id, sub client id, aud issuer) before handing the
//     request to oidc-provider with the client's static secret;
//   - "acme": generic, with an unverified email (-> provider-email-unverified).
// The script drives each redirect like a browser (cookies kept per host):
// Portcullis authorize -> the provider's /auth -> an interaction that logs
// the scripted account in -> back to Portcullis' callback (GET, or the
// form_post page's form) -> the SPA URL with a one-time code -> the code
// exchange with the client's PKCE verifier.
//
// Usage: node interop/federation.mjs /path/to/portcullis
// Prints "ok   - ..." / "FAIL - ..." lines; exits 1 on any failure.

import { spawn } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createServer as netServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Provider from 'oidc-provider';
import * as jose from 'jose';

const BIN = process.argv[2];
const SPA = 'https://spa.example/callback';
export const SECRET = 'interop-client-secret';
let failures = 0;
const ok = (name) => console.log(`ok   - ${name}`);
const fail = (name, why) => {
  failures += 1;
  console.log(`FAIL - ${name}`);
  if (why) console.log(`       ${String(why).split('\n').join('\n       ')}`);
};

export const freePort = () =>
  new Promise((resolve) => {
    const s = netServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

const readBody = (req) =>
  new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });

// oidc-provider takes its clients at construction; build the issuers once
// the Portcullis port (hence the callback URLs) is known.
export async function startIssuerWithClient(opts, callbackUrl) {
  const port = await freePort();
  const host = opts.host ?? '127.0.0.1';
  const issuer = `http://${host}:${port}`;
  const state = { account: null, secretsSeen: [] };
  const accounts = new Map();
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: 'web-client',
        client_secret: SECRET,
        redirect_uris: [callbackUrl(opts.name)],
        response_types: ['code'],
        grant_types: ['authorization_code'],
        token_endpoint_auth_method: opts.authMethod,
      },
    ],
    findAccount: async (_ctx, sub) => ({
      accountId: sub,
      claims: async () => ({ sub, ...(accounts.get(sub) ?? {}) }),
    }),
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    scopes: ['openid', 'email', 'profile', 'name'],
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    cookies: { keys: [randomBytes(16).toString('hex')] },
    pkce: { required: () => true },
  });
  const callback = provider.callback();
  const server = http.createServer(async (req, res) => {
    try {
      if (req.url.startsWith('/interaction/')) {
        const details = await provider.interactionDetails(req, res);
        const { sub, ...claims } = state.account;
        accounts.set(sub, claims);
        const grant = new provider.Grant({ accountId: sub, clientId: details.params.client_id });
        grant.addOIDCScope(details.params.scope);
        const grantId = await grant.save();
        await provider.interactionFinished(
          req,
          res,
          { login: { accountId: sub }, consent: { grantId } },
          { mergeWithLastSubmission: false },
        );
        return;
      }
      if (opts.appleKey && req.method === 'POST' && req.url.startsWith('/token')) {
        const body = new URLSearchParams((await readBody(req)).toString());
        const secret = body.get('client_secret') ?? '';
        state.secretsSeen.push(secret);
        try {
          const { payload, protectedHeader } = await jose.jwtVerify(secret, opts.appleKey.publicKey, {
            algorithms: ['ES256'],
            issuer: 'TEAM123456',
            audience: issuer,
            subject: 'web-client',
          });
          if (protectedHeader.kid !== 'KEY1234567' || payload.exp - payload.iat > 180 * 86400) {
            throw new Error('bad kid or lifetime');
          }
        } catch (e) {
          res.writeHead(401, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: 'invalid_client', error_description: String(e) }));
          return;
        }
        body.set('client_secret', SECRET);
        const forwarded = body.toString();
        const resp = await fetch(`http://127.0.0.1:${opts.innerPort}${req.url}`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
          body: forwarded,
        });
        res.writeHead(resp.status, { 'content-type': resp.headers.get('content-type') ?? 'application/json' });
        res.end(await resp.text());
        return;
      }
      callback(req, res);
    } catch (e) {
      res.writeHead(500);
      res.end(String(e?.stack ?? e));
    }
  });
  await new Promise((r) => server.listen(port, host, r));
  let inner = null;
  if (opts.appleKey) {
    // The provider itself, reachable only by the checking front above.
    inner = http.createServer(callback);
    await new Promise((r) => inner.listen(opts.innerPort, '127.0.0.1', r));
  }
  return { name: opts.name, issuer, state, close: () => (server.close(), inner?.close()) };
}

/** A fetch that keeps cookies per host and never follows redirects. */
function browser() {
  const jar = new Map();
  return async (url, init = {}) => {
    const u = new URL(url);
    const cookies = jar.get(u.host) ?? new Map();
    const headers = { ...(init.headers ?? {}) };
    if (cookies.size) headers.cookie = [...cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair.indexOf('=');
      cookies.set(pair.slice(0, i).trim(), pair.slice(i + 1).trim());
    }
    jar.set(u.host, cookies);
    return res;
  };
}

const pkce = () => {
  const verifier = randomBytes(48).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
};

/** Runs a redirect flow like a browser; returns the URL Portcullis sent back to. */
async function redirectFlow(base, provider, challenge, seen = {}) {
  const go = browser();
  const q = new URLSearchParams({ redirect_to: SPA, code_challenge: challenge, code_challenge_method: 'S256' });
  let res = await go(`${base}/v1/federation/${provider}/authorize?${q}`);
  if (res.status !== 302) throw new Error(`authorize: ${res.status} ${await res.text()}`);
  let url = res.headers.get('location');
  for (let hop = 0; hop < 12; hop += 1) {
    if (url.startsWith(SPA)) return url;
    res = await go(url);
    if (res.status >= 300 && res.status < 400) {
      url = new URL(res.headers.get('location'), url).toString();
      continue;
    }
    const html = await res.text();
    const form = /<form[^>]*action="([^"]+)"/i.exec(html);
    if (res.status === 200 && form) {
      // form_post: the page's form, posted as the browser would.
      seen.formPost = true;
      const fields = new URLSearchParams();
      for (const m of html.matchAll(/<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"/gi)) {
        fields.set(m[1], m[2].replace(/&quot;/g, '"').replace(/&amp;/g, '&'));
      }
      res = await go(form[1].replace(/&amp;/g, '&'), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: fields.toString(),
      });
      if (res.status !== 302) throw new Error(`form_post callback: ${res.status} ${await res.text()}`);
      url = res.headers.get('location');
      continue;
    }
    throw new Error(`unexpected ${res.status} at ${url}: ${html.slice(0, 300)}`);
  }
  throw new Error('too many redirects');
}

const claimsOf = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());

async function main() {
  const work = mkdtempSync(join(tmpdir(), 'portcullis-fed-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const callbackUrl = (id) => `${base}/v1/federation/${id}/callback`;
  const appleKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const p8 = join(work, 'AuthKey.p8');
  writeFileSync(p8, appleKey.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const google = await startIssuerWithClient({ name: 'google', authMethod: 'client_secret_basic' }, callbackUrl);
  const apple = await startIssuerWithClient(
    { name: 'apple', authMethod: 'client_secret_post', appleKey, innerPort: await freePort() },
    callbackUrl,
  );
  const acme = await startIssuerWithClient({ name: 'acme', authMethod: 'client_secret_basic' }, callbackUrl);

  const env = {
    PATH: process.env.PATH,
    PORTCULLIS_LISTEN: `127.0.0.1:${port}`,
    PORTCULLIS_PUBLIC_URL: base,
    PORTCULLIS_DATA_DIR: join(work, 'data'),
    PORTCULLIS_KEYS_DIR: join(work, 'keys'),
    PORTCULLIS_BCRYPT_COST: '4',
    PORTCULLIS_RATE_LIMIT: 'off',
    PORTCULLIS_LOG_FORMAT: 'json',
    PORTCULLIS_PROVIDERS: 'google,apple,acme',
    PORTCULLIS_REDIRECT_URLS: SPA,
    PORTCULLIS_PROVIDER_GOOGLE_ISSUER: google.issuer,
    PORTCULLIS_PROVIDER_GOOGLE_CLIENT_ID: 'web-client',
    PORTCULLIS_PROVIDER_GOOGLE_CLIENT_SECRET: SECRET,
    PORTCULLIS_PROVIDER_APPLE_ISSUER: apple.issuer,
    PORTCULLIS_PROVIDER_APPLE_CLIENT_ID: 'web-client',
    PORTCULLIS_PROVIDER_APPLE_TEAM_ID: 'TEAM123456',
    PORTCULLIS_PROVIDER_APPLE_KEY_ID: 'KEY1234567',
    PORTCULLIS_PROVIDER_APPLE_PRIVATE_KEY_FILE: p8,
    PORTCULLIS_PROVIDER_ACME_ISSUER: acme.issuer,
    PORTCULLIS_PROVIDER_ACME_CLIENT_ID: 'web-client',
    PORTCULLIS_PROVIDER_ACME_CLIENT_SECRET: SECRET,
  };
  const child = spawn(BIN, ['serve'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  try {
    for (let i = 0; i < 100; i += 1) {
      try {
        if ((await fetch(`${base}/readyz`)).ok) break;
      } catch {}
      await new Promise((r) => setTimeout(r, 100));
    }

    const exchange = async (back, verifier) => {
      const code = new URL(back).searchParams.get('code');
      if (!code) throw new Error(`no code in ${back}`);
      const r = await fetch(`${base}/v1/sessions/federation`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ code, code_verifier: verifier }),
      });
      const body = await r.json();
      if (r.status !== 200) throw new Error(`exchange: ${r.status} ${JSON.stringify(body)}`);
      return body;
    };

    // Google-like: query response, client_secret_basic.
    try {
      const email = `g-${randomBytes(6).toString('hex')}@example.com`;
      google.state.account = { sub: `google-${randomBytes(6).toString('hex')}`, email, email_verified: true, name: 'Gabe Google' };
      const { verifier, challenge } = pkce();
      const back = await redirectFlow(base, 'google', challenge);
      const body = await exchange(back, verifier);
      const claims = claimsOf(body.access_token);
      if (body.user.email !== email || claims.idp !== 'google' || JSON.stringify(claims.amr) !== '["fed"]') {
        throw new Error(JSON.stringify({ user: body.user, claims }));
      }
      if (body.user.display_name !== 'Gabe Google') throw new Error(`display_name ${body.user.display_name}`);
      ok('federation: google-like redirect (query, client_secret_basic, PKCE) signs up and in');
    } catch (e) {
      fail('federation: google-like redirect', e?.stack ?? e);
    }

    // Apple-like: form_post, minted client secret, private relay, "true".
    try {
      const relay = `${randomBytes(6).toString('hex')}@privaterelay.appleid.com`;
      apple.state.account = { sub: `apple-${randomBytes(6).toString('hex')}`, email: relay, email_verified: 'true' };
      const { verifier, challenge } = pkce();
      const seen = {};
      const back = await redirectFlow(base, 'apple', challenge, seen);
      if (!seen.formPost) throw new Error('the provider did not answer with form_post');
      const body = await exchange(back, verifier);
      if (body.user.email !== relay) throw new Error(JSON.stringify(body.user));
      if (apple.state.secretsSeen.length !== 1) throw new Error('the token endpoint saw no minted secret');
      ok('federation: apple-like form_post with a minted ES256 client secret and a private-relay "true" email');
    } catch (e) {
      fail('federation: apple-like form_post', e?.stack ?? e);
    }

    // Generic with an unverified email: back to the SPA with the slug.
    try {
      acme.state.account = { sub: `acme-${randomBytes(6).toString('hex')}`, email: 'x@example.com', email_verified: false };
      const { challenge } = pkce();
      const back = await redirectFlow(base, 'acme', challenge);
      const error = new URL(back).searchParams.get('error');
      if (error !== 'provider-email-unverified') throw new Error(`got ${back}`);
      ok('federation: generic provider with an unverified email returns error=provider-email-unverified');
    } catch (e) {
      fail('federation: generic unverified email', e?.stack ?? e);
    }
  } finally {
    child.kill('SIGTERM');
    google.close();
    apple.close();
    acme.close();
    rmSync(work, { recursive: true, force: true });
    if (failures) console.log(stderr.split('\n').slice(-20).join('\n'));
  }
  process.exit(failures ? 1 : 0);
}

import { pathToFileURL } from 'node:url';
if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (!BIN) {
    console.error('usage: node federation.mjs PORTCULLIS_BIN');
    process.exit(2);
  }
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
