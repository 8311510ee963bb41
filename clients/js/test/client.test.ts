import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  asyncStorageAdapter,
  createClient,
  memoryStorage,
  NetworkError,
  PortcullisError,
  ReauthenticationRequiredError,
  isReauthenticationRequired,
  processLock,
  type AuthEvent,
  type PortcullisClient,
  type StorageAdapter,
} from '../src/index.js';
import { FakeServer } from './fake-server.js';

const URL_ = 'http://portcullis.test';
const clock = { t: 1_700_000_000_000 };
let server: FakeServer;
let clients: PortcullisClient[] = [];
let keyN = 0;
let storageKey: string;

function client(storage: StorageAdapter, extra: Record<string, unknown> = {}) {
  const c = createClient({
    url: URL_,
    storage,
    storageKey,
    fetch: ((i: RequestInfo | URL, init?: RequestInit) => server.fetch(i, init)) as typeof fetch,
    lock: processLock(),
    now: () => clock.t,
    ...extra,
  });
  clients.push(c);
  return c;
}

function recorder(c: PortcullisClient) {
  const events: AuthEvent[] = [];
  c.onAuthStateChange((e) => {
    events.push(e);
  });
  return events;
}

const tick = () => new Promise((r) => setTimeout(r, 0));
const settle = async () => {
  for (let i = 0; i < 5; i++) await tick();
};

beforeEach(() => {
  server = new FakeServer();
  server.now = () => clock.t;
  server.addUser('ada@example.com', 'correct horse battery');
  storageKey = `test.session.${++keyN}`; // a fresh lock and channel name per test
});
afterEach(() => {
  for (const c of clients) c.close();
  clients = [];
});

describe('events and storage', () => {
  it('emits INITIAL_SESSION, SIGNED_IN, USER_UPDATED, SIGNED_OUT and keeps storage in step', async () => {
    const storage = memoryStorage();
    const c = client(storage);
    const events = recorder(c);
    await settle();
    expect(events).toEqual(['INITIAL_SESSION']);

    const r = await c.signIn({ email: 'ada@example.com', password: 'correct horse battery' });
    expect(r.status).toBe('signed_in');
    const stored = JSON.parse((await storage.getItem(storageKey))!);
    expect(stored.session.refreshToken).toBe(r.status === 'signed_in' && r.session.refreshToken);
    expect(stored.session.sessionId).toMatch(/^s\d+$/);

    const u = await c.updateUser({ displayName: 'Ada' });
    expect(u.displayName).toBe('Ada');
    expect((await c.getSession())!.user.displayName).toBe('Ada');

    await c.signOut();
    await settle();
    expect(events).toEqual(['INITIAL_SESSION', 'SIGNED_IN', 'USER_UPDATED', 'SIGNED_OUT']);
    expect(await storage.getItem(storageKey)).toBeNull();
    // The server revoked the family.
    expect([...server.families.values()].every((f) => f.revoked)).toBe(true);
  });

  it('a new client finds the stored session and reports it as INITIAL_SESSION', async () => {
    const storage = memoryStorage();
    await client(storage).signIn({ email: 'ada@example.com', password: 'correct horse battery' });
    const c2 = client(storage);
    let initial: unknown = 'unset';
    c2.onAuthStateChange((e, s) => {
      if (e === 'INITIAL_SESSION') initial = s?.user.email;
    });
    await settle();
    expect(initial).toBe('ada@example.com');
  });

  it('works with an async storage adapter (React Native secure storage shape)', async () => {
    const map = new Map<string, string>();
    const delay = () => new Promise((r) => setTimeout(r, 1));
    const storage = asyncStorageAdapter({
      getItem: async (k) => (await delay(), map.get(k) ?? null),
      setItem: async (k, v) => (await delay(), void map.set(k, v)),
      removeItem: async (k) => (await delay(), void map.delete(k)),
    });
    const c = client(storage);
    await c.signIn({ email: 'ada@example.com', password: 'correct horse battery' });
    expect(map.size).toBe(1);
    clock.t += 59_000; // within the refresh margin
    expect(await c.getAccessToken()).toBeTruthy();
    expect(server.refreshRotated).toBe(1);
    const s = JSON.parse(map.get(storageKey)!).session;
    expect(s.refreshToken).toBe((await c.getSession())!.refreshToken);
    await c.signOut();
    expect(map.size).toBe(0);
  });

  it('ignores garbage in storage', async () => {
    const c = client(memoryStorage({ [storageKey]: '{not json' }));
    expect(await c.getSession()).toBeNull();
  });

  it('MFA: signIn returns the step and emits MFA_REQUIRED; verifyMfa signs in', async () => {
    server.addUser('mfa@example.com', 'correct horse battery', { mfa: true });
    const c = client(memoryStorage());
    const events = recorder(c);
    const r = await c.signIn({ email: 'mfa@example.com', password: 'correct horse battery' });
    expect(r.status).toBe('mfa_required');
    if (r.status !== 'mfa_required') return;
    expect(r.mfa.methods).toContain('totp');
    expect(await c.getSession()).toBeNull();
    await expect(c.verifyMfa({ code: '000000' })).rejects.toMatchObject({ type: 'invalid-credentials', status: 401 });
    const s = await c.verifyMfa({ code: '123456' });
    expect(s.user.email).toBe('mfa@example.com');
    const sent = server.requests.filter((q) => q.path === '/v1/sessions/mfa');
    expect(sent).toHaveLength(2);
    await settle();
    expect(events).toEqual(['INITIAL_SESSION', 'MFA_REQUIRED', 'SIGNED_IN']);
  });

  it('a listener that throws or calls the client does not break or deadlock it', async () => {
    const c = client(memoryStorage());
    const err = vi.spyOn(console, 'error').mockImplementation(() => {});
    const seen: string[] = [];
    c.onAuthStateChange(() => {
      throw new Error('boom');
    });
    let reentered = false;
    c.onAuthStateChange(async (e) => {
      if (e === 'TOKEN_REFRESHED' && !reentered) {
        reentered = true;
        // Re-entering the client from a listener: must not wait on a lock we hold.
        seen.push((await c.getUser()).email);
        seen.push(String(!!(await c.refreshSession({ force: true }))));
      }
    });
    await c.signIn({ email: 'ada@example.com', password: 'correct horse battery' });
    await c.refreshSession({ force: true });
    await vi.waitFor(() => expect(seen).toEqual(['ada@example.com', 'true']), { timeout: 2000 });
    expect(err).toHaveBeenCalled();
    err.mockRestore();
  });
});

describe('error typing', () => {
  it('validation problems carry the slug, status and field errors', async () => {
    const c = client(memoryStorage());
    const e = await c.signUp({ email: 'x@example.com', password: 'short' }).catch((x) => x);
    expect(e).toBeInstanceOf(PortcullisError);
    expect(e.type).toBe('validation');
    expect(e.status).toBe(422);
    expect(e.fieldError('password')?.code).toBe('too_short');
  });

  it('a wrong password is invalid-credentials; a taken email is conflict', async () => {
    const c = client(memoryStorage());
    await expect(c.signIn({ email: 'ada@example.com', password: 'nope nope nope' })).rejects.toMatchObject({
      type: 'invalid-credentials',
      status: 401,
    });
    await expect(c.signUp({ email: 'ada@example.com', password: 'correct horse battery' })).rejects.toMatchObject({
      type: 'conflict',
      status: 409,
    });
  });

  it('a non-problem error body still becomes a PortcullisError; Retry-After is read', async () => {
    const c = createClient({
      url: URL_,
      storage: memoryStorage(),
      fetch: (async () => new Response('<html>bad gateway</html>', { status: 502, statusText: 'Bad Gateway' })) as typeof fetch,
    });
    clients.push(c);
    const e = await c.signIn({ email: 'a@b.c', password: 'x' }).catch((x) => x);
    expect(e).toBeInstanceOf(PortcullisError);
    expect(e.status).toBe(502);
    expect(e.type).toBe('unknown');
    const c2 = createClient({
      url: URL_,
      storage: memoryStorage(),
      fetch: (async () =>
        new Response(JSON.stringify({ type: 'https://x/problems/rate-limited', title: 'Too many', status: 429, detail: 'slow down' }), {
          status: 429,
          headers: { 'retry-after': '30', 'content-type': 'application/problem+json' },
        })) as typeof fetch,
    });
    clients.push(c2);
    await expect(c2.signIn({ email: 'a@b.c', password: 'x' })).rejects.toMatchObject({ type: 'rate-limited', retryAfter: 30 });
  });

  it('offline is a NetworkError', async () => {
    const c = client(memoryStorage());
    server.offline = true;
    await expect(c.signIn({ email: 'ada@example.com', password: 'correct horse battery' })).rejects.toBeInstanceOf(NetworkError);
  });
});

describe('refresh and retry rules', () => {
  async function signedIn(storage = memoryStorage()) {
    const c = client(storage);
    await c.signIn({ email: 'ada@example.com', password: 'correct horse battery' });
    return c;
  }

  it('no refresh while the token is fresh; refresh ahead of expiry (margin min(60 s, ttl/3))', async () => {
    const c = await signedIn();
    clock.t += 30_000;
    expect((await c.fetch('/v1/me')).status).toBe(200);
    expect(server.refreshCalls).toBe(0);
    clock.t += 15_000; // 15 s left of 60 s: inside the 20 s margin
    expect((await c.fetch('/v1/me')).status).toBe(200);
    expect(server.refreshCalls).toBe(1);
  });

  it('concurrent callers in one client share one refresh', async () => {
    const c = await signedIn();
    const events = recorder(c);
    clock.t += 55_000;
    server.refreshDelayMs = 20;
    const res = await Promise.all(Array.from({ length: 20 }, () => c.fetch('/v1/me')));
    expect(res.every((r) => r.status === 200)).toBe(true);
    expect(server.refreshCalls).toBe(1);
    await settle();
    expect(events.filter((e) => e === 'TOKEN_REFRESHED')).toHaveLength(1);
  });

  it('clients sharing storage share one refresh (the second adopts the stored pair)', async () => {
    const storage = memoryStorage();
    const a = await signedIn(storage);
    const b = client(storage);
    clock.t += 55_000;
    server.refreshDelayMs = 20;
    const [ta, tb] = await Promise.all([a.getAccessToken(), b.getAccessToken()]);
    expect(ta).toBe(tb);
    expect(server.refreshCalls).toBe(1);
    expect(server.reuse).toBe(0);
  });

  it('a 401 from the API refreshes and retries once', async () => {
    const c = await signedIn();
    // The server stops accepting the first access token (as after a key rotation).
    const orig = server.fetch;
    let refused = 0;
    server.fetch = async (i, init) => {
      const req = i instanceof Request ? i : new Request(String(i), init);
      const auth = req.headers.get('authorization');
      if (new URL(req.url).pathname === '/v1/me' && auth) {
        const claims = JSON.parse(Buffer.from(auth.slice(7).split('.')[1]!, 'base64url').toString());
        if (claims.gen === 0) {
          refused++;
          return server.problem(401, 'token-invalid', 'expired');
        }
      }
      return orig(req);
    };
    const res = await c.fetch('/v1/me');
    expect(res.status).toBe(200);
    expect(refused).toBe(1);
    expect(server.refreshCalls).toBe(1);
  });

  it('retries only once: a second 401 reaches the caller', async () => {
    const c = await signedIn();
    const orig = server.fetch;
    let meCalls = 0;
    server.fetch = async (i, init) => {
      const req = i instanceof Request ? i : new Request(String(i), init);
      if (new URL(req.url).pathname === '/v1/me') {
        meCalls++;
        return server.problem(401, 'token-invalid', 'always');
      }
      return orig(req);
    };
    const res = await c.fetch('/v1/me');
    expect(res.status).toBe(401);
    expect(meCalls).toBe(2);
    expect(server.refreshCalls).toBe(1);
    expect(await c.getSession()).not.toBeNull(); // the refresh itself succeeded: still signed in
  });

  it('a network error during refresh never signs out; the valid token is still used', async () => {
    const c = await signedIn();
    const events = recorder(c);
    clock.t += 50_000; // inside the margin but not expired
    server.offline = true;
    await expect(c.fetch('/v1/me')).rejects.toBeInstanceOf(NetworkError);
    expect(await c.getSession()).not.toBeNull();
    server.offline = false;
    clock.t += 20_000; // now expired: the refresh happens when the network is back
    expect((await c.fetch('/v1/me')).status).toBe(200);
    await settle();
    expect(events).not.toContain('SIGNED_OUT');
  });

  it('an expired token with the network down throws NetworkError and keeps the session', async () => {
    const c = await signedIn();
    clock.t += 70_000;
    server.offline = true;
    await expect(c.getAccessToken()).rejects.toBeInstanceOf(NetworkError);
    expect(await c.getSession()).not.toBeNull();
  });

  it('a 5xx or 429 from refresh keeps the session; only a 401 signs out', async () => {
    const storage = memoryStorage();
    const c = await signedIn(storage);
    const events = recorder(c);
    clock.t += 70_000;
    server.refreshFailStatus = 503;
    await expect(c.refreshSession()).rejects.toMatchObject({ status: 503 });
    server.refreshFailStatus = 429;
    await expect(c.refreshSession()).rejects.toMatchObject({ status: 429 });
    expect(await c.getSession()).not.toBeNull();
    server.refreshFailStatus = null;
    for (const f of server.families.values()) f.revoked = true;
    expect(await c.refreshSession()).toBeNull();
    expect(await c.getSession()).toBeNull();
    expect(await storage.getItem(storageKey)).toBeNull();
    await settle();
    expect(events).toEqual(['INITIAL_SESSION', 'SIGNED_OUT']);
  });

  it('a 401 on refresh when storage already holds a newer pair adopts it instead of signing out', async () => {
    const storage = memoryStorage();
    const c = await signedIn(storage);
    const s0 = (await c.getSession())!;
    // Another process refreshed behind our back, and then our old token is refused.
    const newer = server.signInDirect('ada@example.com');
    const orig = server.fetch;
    server.fetch = async (i, init) => {
      const req = i instanceof Request ? i : new Request(String(i), init);
      if (new URL(req.url).pathname === '/v1/sessions/refresh') {
        await storage.setItem(storageKey, JSON.stringify({ v: 1, session: { ...s0, ...newer, expires_at: clock.t + 60_000 } }));
        return server.problem(401, 'token-invalid', 'reused');
      }
      return orig(req);
    };
    const s = await c.refreshSession({ force: true });
    expect(s?.refreshToken).toBe(newer.refresh_token);
  });

  it('a 401 on the API after another client already refreshed retries with the stored pair, no second refresh', async () => {
    const storage = memoryStorage();
    const a = await signedIn(storage);
    const b = client(storage);
    const oldToken = (await b.getSession())!.accessToken;
    await a.refreshSession({ force: true });
    expect(server.refreshCalls).toBe(1);
    // b still holds the old token in memory (no broadcast in this realm's test set-up delivered yet) and gets 401.
    const res = await b.refreshSession({ staleAccessToken: oldToken });
    expect(res!.accessToken).not.toBe(oldToken);
    expect(server.refreshCalls).toBe(1);
  });

  it('when storage lags behind the pair this client knows (cross-process localStorage), it presents the newer one', async () => {
    const storage = memoryStorage();
    const c = await signedIn(storage);
    const gen0 = (await storage.getItem(storageKey))!;
    await c.refreshSession({ force: true });
    expect((await c.getSession())!.generation).toBe(1);
    await storage.setItem(storageKey, gen0); // the other process's view has not caught up yet
    const s = await c.refreshSession({ force: true });
    expect(s!.generation).toBe(2);
    expect(server.refreshRotated).toBe(2);
    expect(server.refreshGrace).toBe(0);
    expect(server.reuse).toBe(0);
  });

  it('bearer only goes to Portcullis and tokenOrigins', async () => {
    const c = await signedIn();
    const seen: Array<string | null> = [];
    const orig = server.fetch;
    server.fetch = async (i, init) => {
      const req = i instanceof Request ? i : new Request(String(i), init);
      if (new URL(req.url).host !== 'portcullis.test') {
        seen.push(req.headers.get('authorization'));
        return new Response('ok');
      }
      return orig(req);
    };
    await c.fetch('https://evil.example/x');
    expect(seen).toEqual([null]);
    const c2 = client(memoryStorage(), { tokenOrigins: ['https://api.example'] });
    await c2.signIn({ email: 'ada@example.com', password: 'correct horse battery' });
    await c2.fetch('https://api.example/orders');
    expect(seen[1]).toMatch(/^Bearer /);
  });
});

describe('cross-client lock', () => {
  it('times out and steals from a holder that never finishes; the stolen holder learns it', async () => {
    const lock = processLock();
    let leaseA: { lost: boolean } | undefined;
    let releaseA!: () => void;
    const a = lock.run('x', 100, async (lease) => {
      leaseA = lease;
      await new Promise<void>((r) => (releaseA = r));
      return 'a';
    });
    await tick();
    const t0 = Date.now();
    const b = await lock.run('x', 100, async (lease) => (lease.stolen ? 'b-stole' : 'b'));
    const waited = Date.now() - t0;
    expect(b).toBe('b-stole');
    expect(waited).toBeGreaterThanOrEqual(90);
    expect(waited).toBeLessThan(1000);
    expect(leaseA!.lost).toBe(true);
    releaseA();
    expect(await a).toBe('a');
    // The lock is free again afterwards.
    expect(await lock.run('x', 100, async (l) => (l.stolen ? 'stolen' : 'clean'))).toBe('clean');
  });

  it('a client whose refresh hangs holding the lock does not block another past the lock timeout, and causes no reuse', async () => {
    const storage = memoryStorage();
    let hang: (() => void) | null = null;
    const a = client(storage, {
      lockTimeoutMs: 200,
      hooks: {
        afterRefreshLock: () =>
          hang === null ? new Promise<void>((r) => (hang = r)) : undefined,
      },
    });
    await a.signIn({ email: 'ada@example.com', password: 'correct horse battery' });
    const b = client(storage, { lockTimeoutMs: 200 });
    clock.t += 55_000;
    const pa = a.getAccessToken(); // takes the lock and hangs ("frozen")
    await tick();
    const t0 = Date.now();
    const tb = await b.getAccessToken();
    const waited = Date.now() - t0;
    expect(tb).toBeTruthy();
    expect(waited).toBeLessThan(200 + 300);
    expect(server.refreshRotated).toBe(1);
    // A wakes up: it must see the newer pair in storage and not present its old token.
    hang!();
    expect(await pa).toBe(tb);
    expect(server.refreshCalls).toBe(1);
    expect(server.reuse).toBe(0);
  });
});

describe('other tabs (BroadcastChannel)', () => {
  it('a sign-out in one tab signs out the others; a refresh is shared', async () => {
    // Two "tabs": separate memory storages, same storage key, channel delivers.
    const sA = memoryStorage();
    const a = client(sA);
    await a.signIn({ email: 'ada@example.com', password: 'correct horse battery' });
    const sB = memoryStorage({ [storageKey]: (await sA.getItem(storageKey))! });
    const b = client(sB);
    const eventsB = recorder(b);
    await settle();
    await a.refreshSession({ force: true });
    await vi.waitFor(async () => expect((await b.getSession())!.refreshToken).toBe((await a.getSession())!.refreshToken));
    expect(JSON.parse((await sB.getItem(storageKey))!).session.refreshToken).toBe((await a.getSession())!.refreshToken);
    await a.signOut();
    await vi.waitFor(async () => expect(await b.getSession()).toBeNull());
    expect(await sB.getItem(storageKey)).toBeNull();
    expect(eventsB).toEqual(['INITIAL_SESSION', 'TOKEN_REFRESHED', 'SIGNED_OUT']);
  });
});

describe('password reset and passkeys (the documented request bodies)', () => {
  it('forgotPassword and resetPassword send the contract bodies; a bad code is typed', async () => {
    const c = client(memoryStorage());
    await c.forgotPassword({ email: 'ada@example.com' });
    expect(server.forgot).toEqual(['ada@example.com']);
    await c.resetPassword({ token: 'reset-token', newPassword: 'another good passphrase' });
    await c.resetPassword({ email: 'ada@example.com', emailCode: '123456', newPassword: 'another good passphrase' });
    expect(server.resets).toHaveLength(2);
    await expect(c.resetPassword({ token: 'nope', newPassword: 'x' })).rejects.toMatchObject({
      type: 'token-invalid-or-expired',
      status: 400,
    });
    expect(await c.getSession()).toBeNull(); // reset never signs in
  });

  it('registerPasskey decodes the creation options and posts the credential JSON', async () => {
    const c = client(memoryStorage());
    await c.signIn({ email: 'ada@example.com', password: 'correct horse battery' });
    let seen: any;
    vi.stubGlobal('navigator', {
      credentials: {
        create: async (opts: any) => {
          seen = opts.publicKey;
          return { toJSON: () => ({ id: 'cred-1', rawId: 'cred-1', type: 'public-key', response: { attestationObject: 'xx' } }) };
        },
      },
    });
    try {
      const pk = await c.registerPasskey({ name: 'Laptop' });
      expect(pk.id).toBe('pk-1');
    } finally {
      vi.unstubAllGlobals();
    }
    expect(new Uint8Array(seen.challenge)).toEqual(new Uint8Array([1, 2, 3]));
    expect(new TextDecoder().decode(seen.user.id)).toBe('user');
    expect(new Uint8Array(seen.excludeCredentials[0].id)).toEqual(new Uint8Array([4, 5, 6]));
    expect(server.passkeyRegistrations[0]).toEqual({
      challenge_id: 'ch-create',
      credential: { id: 'cred-1', rawId: 'cred-1', type: 'public-key', response: { attestationObject: 'xx' } },
      name: 'Laptop',
    });
  });

  it('step-up: without a recent proof registerPasskey throws ReauthenticationRequiredError (no refresh); reauthenticate then retry works', async () => {
    const c = client(memoryStorage());
    await c.signIn({ email: 'ada@example.com', password: 'correct horse battery' });
    vi.stubGlobal('navigator', {
      credentials: {
        create: async () => ({ toJSON: () => ({ id: 'cred-2', rawId: 'cred-2', type: 'public-key', response: {} }) }),
      },
    });
    try {
      clock.t += 301_000; // past the server's window (and the access token's life)
      expect(await c.getAccessToken()).toBeTruthy(); // refreshed ahead: a refresh keeps the old proof time
      const refreshes = server.refreshCalls;
      const err = await c.registerPasskey().catch((e: unknown) => e);
      expect(isReauthenticationRequired(err)).toBe(true);
      expect(err).toBeInstanceOf(ReauthenticationRequiredError);
      expect(err).toBeInstanceOf(PortcullisError);
      const e = err as ReauthenticationRequiredError;
      expect(e.type).toBe('reauthentication-required');
      expect(e.status).toBe(401);
      expect(e.methods).toEqual(['password']);
      expect(server.refreshCalls).toBe(refreshes); // a 401 of this kind is not a stale token
      expect(await c.getSession()).not.toBeNull(); // and never a sign-out

      const wrong = await c.reauthenticate({ password: 'not it' }).catch((x: unknown) => x);
      expect((wrong as PortcullisError).type).toBe('invalid-credentials');
      await c.reauthenticate({ password: 'correct horse battery' });
      const pk = await c.registerPasskey();
      expect(pk.id).toBe('pk-1');
      expect(server.requests.some((r) => r.method === 'POST' && r.path === '/v1/me/reauthenticate')).toBe(true);
    } finally {
      vi.unstubAllGlobals();
    }
  });

  it('signInWithPasskey signs in and emits SIGNED_IN; without a browser it fails clearly', async () => {
    const c = client(memoryStorage());
    const events = recorder(c);
    await expect(c.signInWithPasskey()).rejects.toThrow(/navigator\.credentials/);
    vi.stubGlobal('navigator', {
      credentials: {
        get: async (opts: any) => {
          expect(new Uint8Array(opts.publicKey.allowCredentials[0].id)).toEqual(new Uint8Array([4, 5, 6]));
          return { toJSON: () => ({ id: 'cred-1', type: 'public-key', response: { signature: 'sig' } }) };
        },
      },
    });
    try {
      const s = await c.signInWithPasskey({ email: 'ada@example.com' });
      expect(s.user.email).toBe('ada@example.com');
    } finally {
      vi.unstubAllGlobals();
    }
    expect(server.passkeyOptionBodies.at(-1)).toEqual({ email: 'ada@example.com' });
    expect(server.passkeyAssertions.at(-1).challenge_id).toBe('ch-get');
    await settle();
    expect(events).toEqual(['INITIAL_SESSION', 'SIGNED_IN']);
  });

  it('base64url round-trips every byte value', async () => {
    const { base64urlToBuffer, bufferToBase64url } = await import('../src/index.js');
    const bytes = new Uint8Array(256).map((_, i) => i);
    const s = bufferToBase64url(bytes);
    expect(s).not.toMatch(/[+/=]/);
    expect(new Uint8Array(base64urlToBuffer(s))).toEqual(bytes);
  });
});

describe('web storage adapters', () => {
  it('localStorage and sessionStorage adapters read and write the global stores', async () => {
    const mk = () => {
      const m = new Map<string, string>();
      return { getItem: (k: string) => m.get(k) ?? null, setItem: (k: string, v: string) => void m.set(k, v), removeItem: (k: string) => void m.delete(k), m };
    };
    const ls = mk();
    const ss = mk();
    vi.stubGlobal('localStorage', ls);
    vi.stubGlobal('sessionStorage', ss);
    try {
      const { localStorageAdapter, sessionStorageAdapter, defaultStorage } = await import('../src/index.js');
      const c = client(localStorageAdapter());
      await c.signIn({ email: 'ada@example.com', password: 'correct horse battery' });
      expect(ls.m.has(storageKey)).toBe(true);
      expect(localStorageAdapter().sharedAcrossTabs).toBe(true);
      expect(sessionStorageAdapter().sharedAcrossTabs).toBe(false);
      sessionStorageAdapter().setItem('k', 'v');
      expect(ss.m.get('k')).toBe('v');
      expect(defaultStorage().sharedAcrossTabs).toBe(true); // localStorage when usable
    } finally {
      vi.unstubAllGlobals();
    }
  });
});

describe('passwordless and anonymous', () => {
  it('signInWithEmail asks for a mail; verifyEmailSignIn signs in with the link or the code', async () => {
    const c = client(memoryStorage());
    const events = recorder(c);
    await c.signInWithEmail({ email: 'ada@example.com' });
    expect(server.emailSignIns).toEqual([{ email: 'ada@example.com' }]);
    const byLink = await c.verifyEmailSignIn({ token: 'link:ada@example.com' });
    expect(byLink.status).toBe('signed_in');
    if (byLink.status !== 'signed_in') throw new Error('unreachable');
    expect(byLink.user.email).toBe('ada@example.com');
    expect(await c.getAccessToken()).toBe(byLink.session.accessToken);
    await c.signOut();
    const byCode = await c.verifyEmailSignIn({ email: 'ada@example.com', code: '12345678' });
    expect(byCode.status).toBe('signed_in');
    expect(server.requests.filter((r) => r.path === '/v1/sessions/email/verify')).toHaveLength(2);
    await settle();
    expect(events.filter((e) => e === 'SIGNED_IN')).toHaveLength(2);
    // A wrong code is the problem's slug; nothing is kept.
    await c.signOut();
    const err = await c.verifyEmailSignIn({ email: 'ada@example.com', code: '00000000' }).catch((e) => e);
    expect(err).toBeInstanceOf(PortcullisError);
    expect((err as PortcullisError).type).toBe('token-invalid-or-expired');
    expect(await c.getSession()).toBeNull();
  });

  it('verifyEmailSignIn on a two-factor account returns the step; verifyMfa finishes it', async () => {
    server.addUser('mfa@example.com', 'correct horse battery', { mfa: true });
    const c = client(memoryStorage());
    const r = await c.verifyEmailSignIn({ email: 'mfa@example.com', code: '12345678' });
    expect(r.status).toBe('mfa_required');
    expect(c.mfaChallenge?.mfaToken).toBe('mfa:mfa@example.com');
    expect(await c.getSession()).toBeNull();
    const s = await c.verifyMfa({ code: '123456' });
    expect(s.user.email).toBe('mfa@example.com');
  });

  it('signInAnonymously makes a guest; upgrade keeps the id and refreshes away the claim', async () => {
    const c = client(memoryStorage());
    const guest = await c.signInAnonymously();
    expect(guest.user.isAnonymous).toBe(true);
    const claims = JSON.parse(Buffer.from(guest.accessToken.split('.')[1]!, 'base64url').toString());
    expect(claims.is_anonymous).toBe(true);
    const refreshesBefore = server.refreshCalls;
    const up = await c.upgrade({ email: 'grace@example.com', password: 'a long passphrase' });
    expect(up.status).toBe('upgraded');
    if (up.status !== 'upgraded') throw new Error('unreachable');
    expect(up.user.id).toBe(guest.user.id);
    expect(server.refreshCalls).toBe(refreshesBefore + 1);
    const after = (await c.getSession())!;
    expect(after.sessionId).toBe(guest.sessionId);
    expect(after.user.isAnonymous).toBe(false);
    expect(after.user.email).toBe('grace@example.com');
    const fresh = JSON.parse(Buffer.from(after.accessToken.split('.')[1]!, 'base64url').toString());
    expect(fresh.is_anonymous).toBeUndefined();
    // A second upgrade, or a taken address, is a conflict.
    const err = await c.upgrade({ email: 'ada@example.com', password: 'a long passphrase' }).catch((e) => e);
    expect((err as PortcullisError).type).toBe('conflict');
  });

  it('signInAnonymously where guests are off is the anonymous-disabled problem', async () => {
    server.anonymousOn = false;
    const c = client(memoryStorage());
    const err = await c.signInAnonymously().catch((e) => e);
    expect(err).toBeInstanceOf(PortcullisError);
    expect((err as PortcullisError).type).toBe('anonymous-disabled');
    expect((err as PortcullisError).status).toBe(403);
    await expect(c.upgrade({ email: 'x@example.com', password: 'pw pw pw pw' })).rejects.toThrow();
  });
});
