// DPoP against the real server (the debug binary, or PORTCULLIS_BIN): the
// client binds its session, sends proofs on every call, retries once on
// use_dpop_nonce, and a custom signer (React Native's seam) works.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, memoryStorage, processLock, type DpopSigner, type PortcullisClient } from '../src/index.js';
// @ts-ignore: a plain ES module of the end-to-end harness
import { startPortcullis } from './e2e/harness.mjs';

type Server = { base: string; stop: () => Promise<void> };
const PASSWORD = 'correct horse battery staple 42';

const claims = (t: string) => JSON.parse(Buffer.from(t.split('.')[1] ?? '', 'base64url').toString()) as Record<string, any>;

interface Seen {
  method: string;
  path: string;
  status: number;
  dpop: boolean;
  auth: string;
}

function client(server: Server, seen: Seen[], extra: Record<string, unknown> = {}): PortcullisClient {
  const fetchImpl = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const req = input instanceof Request ? input : new Request(input, init);
    const snapshot = { method: req.method, path: new URL(req.url).pathname, dpop: req.headers.has('dpop'), auth: req.headers.get('authorization') ?? '' };
    const res = await fetch(req, init);
    seen.push({ ...snapshot, status: res.status });
    return res;
  }) as typeof fetch;
  return createClient({
    url: server.base,
    storage: memoryStorage(),
    storageKey: `dpop.${Math.random()}`,
    fetch: fetchImpl,
    lock: processLock(),
    broadcast: false,
    dpop: true,
    ...extra,
  });
}

async function signUpAndIn(c: PortcullisClient) {
  const email = `dpop-${Math.random().toString(36).slice(2)}@example.com`;
  await c.signUp({ email, password: PASSWORD });
  const r = await c.signIn({ email, password: PASSWORD });
  expect(r.status).toBe('signed_in');
  return email;
}

describe('DPoP', () => {
  let plain: Server;
  let nonce: Server;
  beforeAll(async () => {
    plain = await startPortcullis({ PORTCULLIS_ACCESS_TTL: '60s' });
    nonce = await startPortcullis({ PORTCULLIS_ACCESS_TTL: '60s', PORTCULLIS_DPOP_NONCE: 'true' });
  }, 30_000);
  afterAll(async () => {
    await plain?.stop();
    await nonce?.stop();
  });

  it('binds the session to the key and proves every call', async () => {
    const seen: Seen[] = [];
    const c = client(plain, seen);
    await signUpAndIn(c);
    const s = (await c.getSession())!;
    expect(s.tokenType).toBe('DPoP');
    expect(claims(s.accessToken)['cnf']['jkt']).toBe(await c.dpopThumbprint());
    const login = seen.find((x) => x.path === '/v1/sessions')!;
    expect(login.dpop).toBe(true);
    // The sign-up issues no token: no proof spent on it.
    expect(seen.find((x) => x.path === '/v1/users')!.dpop).toBe(false);
    const me = await c.getUser();
    expect(me.email).toMatch(/^dpop-/);
    const call = seen.at(-1)!;
    expect(call).toMatchObject({ path: '/v1/me', status: 200, dpop: true });
    expect(call.auth.startsWith('DPoP ')).toBe(true);
    // Refresh with a proof by the same key.
    const next = (await c.refreshSession({ force: true }))!;
    expect(next.accessToken).not.toBe(s.accessToken);
    expect(seen.at(-1)).toMatchObject({ path: '/v1/sessions/refresh', status: 200, dpop: true });
    await c.getUser();
    // The tokens alone are useless: no proof, bearer, refresh without proof.
    const t = next.accessToken;
    expect((await fetch(`${plain.base}/v1/me`, { headers: { authorization: `Bearer ${t}` } })).status).toBe(401);
    expect((await fetch(`${plain.base}/v1/me`, { headers: { authorization: `DPoP ${t}` } })).status).toBe(401);
    const r = await fetch(`${plain.base}/v1/sessions/refresh`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ refresh_token: next.refreshToken }),
    });
    expect(r.status).toBe(401);
    // ...and did not end the session.
    await c.getUser();
    c.close();
  });

  it('retries once with the server nonce', async () => {
    const seen: Seen[] = [];
    const c = client(nonce, seen);
    await signUpAndIn(c);
    const logins = seen.filter((x) => x.path === '/v1/sessions');
    expect(logins.map((x) => x.status)).toEqual([401, 200]);
    // The nonce is kept: the next calls need no retry.
    await c.getUser();
    await c.getUser();
    expect(seen.filter((x) => x.path === '/v1/me').map((x) => x.status)).toEqual([200, 200]);
    await c.refreshSession({ force: true });
    expect(seen.at(-1)).toMatchObject({ path: '/v1/sessions/refresh', status: 200 });
    c.close();
  });

  it('takes a custom signer (the React Native seam)', async () => {
    let signed = 0;
    const subtle = globalThis.crypto.subtle;
    const pair = (await subtle.generateKey({ name: 'Ed25519' } as unknown as EcKeyGenParams, false, ['sign', 'verify'])) as CryptoKeyPair;
    const pub = (await subtle.exportKey('jwk', pair.publicKey)) as JsonWebKey;
    const signer: DpopSigner = {
      async key() {
        return {
          alg: 'EdDSA',
          publicJwk: { kty: 'OKP', crv: 'Ed25519', x: pub.x! },
          async sign(input: Uint8Array) {
            signed++;
            return new Uint8Array(await subtle.sign({ name: 'Ed25519' }, pair.privateKey, input as BufferSource));
          },
        };
      },
    };
    const seen: Seen[] = [];
    const c = client(plain, seen, { dpop: { signer } });
    await signUpAndIn(c);
    expect((await c.getSession())!.tokenType).toBe('DPoP');
    await c.getUser();
    expect(signed).toBe(2);
    c.close();
  });

  it('stays bearer without dpop', async () => {
    const seen: Seen[] = [];
    const c = client(plain, seen, { dpop: false });
    await signUpAndIn(c);
    expect((await c.getSession())!.tokenType).toBe('Bearer');
    await c.getUser();
    expect(seen.some((x) => x.dpop)).toBe(false);
    c.close();
  });
});
