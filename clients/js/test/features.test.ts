// Auto refresh, the new events, step-up retry, setSession, getClaims and the
// stored-session migration, against the fake server (test/fake-server.ts).
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  createClient,
  memoryStorage,
  processLock,
  ReauthenticationRequiredError,
  type AuthEvent,
  type PortcullisClient,
  type StorageAdapter,
} from '../src/index.js';
import { FakeServer } from './fake-server.js';

const URL_ = 'http://portcullis.test';
const clock = { t: 1_700_000_000_000 };
let server: FakeServer;
let clients: PortcullisClient[] = [];
let n = 0;
let storageKey: string;

function client(storage: StorageAdapter = memoryStorage(), extra: Record<string, unknown> = {}) {
  const c = createClient({
    url: URL_,
    storage,
    storageKey,
    fetch: ((i: RequestInfo | URL, init?: RequestInit) => server.fetch(i, init)) as typeof fetch,
    lock: processLock(),
    now: () => clock.t,
    autoRefresh: false,
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
const settle = async () => {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
};

beforeEach(() => {
  server = new FakeServer();
  server.now = () => clock.t;
  server.addUser('ada@example.com', 'correct horse battery');
  storageKey = `features.${++n}`;
});
afterEach(() => {
  for (const c of clients) c.close();
  clients = [];
  vi.useRealTimers();
});

describe('auto refresh', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  });

  async function signedIn(extra: Record<string, unknown> = {}) {
    const c = client(memoryStorage(), { autoRefresh: true, ...extra });
    const events = recorder(c);
    await c.signIn({ email: 'ada@example.com', password: 'correct horse battery' });
    await settle();
    return { c, events };
  }
  /** Moves both clocks: the client's `now` and the timers. */
  async function advance(ms: number) {
    clock.t += ms;
    await vi.advanceTimersByTimeAsync(ms);
    await settle();
  }

  it('refreshes before expiry without any call (60 s token: at 40 s)', async () => {
    const { c, events } = await signedIn();
    expect(c.autoRefreshing).toBe(true);
    await advance(39_000);
    expect(server.refreshRotated).toBe(0);
    await advance(1_500);
    expect(server.refreshRotated).toBe(1);
    expect(events).toContain('TOKEN_REFRESHED');
    // And again one lifetime later: the timer follows the new session.
    await advance(40_500);
    expect(server.refreshRotated).toBe(2);
  });

  it('pauses while hidden, and refreshes at once when visible again if due', async () => {
    const { c } = await signedIn();
    c.setVisible(false);
    await advance(120_000);
    expect(server.refreshCalls).toBe(0);
    c.setVisible(true);
    await advance(1);
    expect(server.refreshRotated).toBe(1);
    expect((await c.getSession())!.expiresAt).toBeGreaterThan(clock.t);
  });

  it('follows document.visibilityState in browsers', async () => {
    const listeners: Array<() => void> = [];
    const doc = { visibilityState: 'visible', addEventListener: (_: string, f: () => void) => listeners.push(f), removeEventListener: () => {} };
    Object.defineProperty(globalThis, 'document', { value: doc, configurable: true });
    try {
      const c = client(memoryStorage(), { autoRefresh: undefined }); // defaults to on where there is a document
      await c.signIn({ email: 'ada@example.com', password: 'correct horse battery' });
      await settle();
      expect(c.autoRefreshing).toBe(true);
      doc.visibilityState = 'hidden';
      listeners.forEach((f) => f());
      await advance(120_000);
      expect(server.refreshCalls).toBe(0);
      doc.visibilityState = 'visible';
      listeners.forEach((f) => f());
      await advance(1);
      expect(server.refreshRotated).toBe(1);
    } finally {
      delete (globalThis as { document?: unknown }).document;
    }
  });

  it('a network error never signs out: retried with backoff until it works', async () => {
    const { c, events } = await signedIn();
    server.offline = true;
    await advance(41_000);
    await advance(1_500);
    await advance(3_000);
    expect(server.requests.filter((r) => r.path === '/v1/sessions/refresh').length).toBeGreaterThanOrEqual(2);
    expect(await c.getSession()).not.toBeNull();
    expect(events).not.toContain('SIGNED_OUT');
    server.offline = false;
    await advance(35_000);
    expect(server.refreshRotated).toBe(1);
    expect(events).toContain('TOKEN_REFRESHED');
  });

  it('a 5xx is retried too; a refused refresh token ends the session', async () => {
    const { c, events } = await signedIn();
    server.refreshFailStatus = 503;
    await advance(41_000);
    expect(await c.getSession()).not.toBeNull();
    server.refreshFailStatus = null;
    for (const f of server.families.values()) f.revoked = true;
    await advance(35_000);
    expect(await c.getSession()).toBeNull();
    expect(events.at(-1)).toBe('SIGNED_OUT');
  });

  it('stopAutoRefresh right after creating a browser client keeps it off', async () => {
    Object.defineProperty(globalThis, 'document', {
      value: { visibilityState: 'visible', addEventListener: () => {}, removeEventListener: () => {} },
      configurable: true,
    });
    try {
      const c = client(memoryStorage(), { autoRefresh: undefined });
      c.stopAutoRefresh();
      await c.signIn({ email: 'ada@example.com', password: 'correct horse battery' });
      await advance(100_000);
      expect(c.autoRefreshing).toBe(false);
      expect(server.refreshCalls).toBe(0);
    } finally {
      delete (globalThis as { document?: unknown }).document;
    }
  });

  it('stopAutoRefresh stops the timer; startAutoRefresh starts it (off by default outside browsers)', async () => {
    const c = client(memoryStorage());
    expect(c.autoRefreshing).toBe(false);
    await c.signIn({ email: 'ada@example.com', password: 'correct horse battery' });
    await advance(100_000);
    expect(server.refreshCalls).toBe(0);
    c.startAutoRefresh();
    await advance(1);
    expect(server.refreshRotated).toBe(1);
    c.stopAutoRefresh();
    await advance(100_000);
    expect(server.refreshRotated).toBe(1);
  });
});

describe('PASSWORD_RECOVERY', () => {
  it('a reset link the app was opened with: the event (also for late listeners), and resetPassword uses its token', async () => {
    Object.defineProperty(globalThis, 'location', {
      value: { href: 'https://app.test/account/reset-password?token=reset-token', origin: 'https://app.test' },
      configurable: true,
    });
    try {
      const c = client();
      const early = recorder(c);
      await settle();
      const late = recorder(c);
      await settle();
      expect(early).toEqual(['INITIAL_SESSION', 'PASSWORD_RECOVERY']);
      expect(late).toEqual(['INITIAL_SESSION', 'PASSWORD_RECOVERY']);
      expect(c.passwordRecoveryToken).toBe('reset-token');
      await c.resetPassword({ newPassword: 'a new good passphrase' });
      expect(server.resets).toEqual([{ token: 'reset-token', new_password: 'a new good passphrase' }]);
      expect(c.passwordRecoveryToken).toBeNull();
    } finally {
      delete (globalThis as { location?: unknown }).location;
    }
  });

  it('handleRecoveryUrl (React Native deep links); other URLs are ignored', async () => {
    const c = client();
    const events = recorder(c);
    expect(c.handleRecoveryUrl('myapp://verify-email?token=x')).toBe(false);
    expect(c.handleRecoveryUrl('https://reset-password.example.com/?token=x')).toBe(false);
    expect(c.handleRecoveryUrl('myapp://reset-password')).toBe(false);
    expect(c.handleRecoveryUrl('myapp://reset-password?token=t1')).toBe(true);
    expect(c.passwordRecoveryToken).toBe('t1');
    await settle();
    expect(events).toEqual(['INITIAL_SESSION', 'PASSWORD_RECOVERY']);
    const later = recorder(c);
    await settle();
    expect(later).toEqual(['INITIAL_SESSION', 'PASSWORD_RECOVERY']);
    expect(events).toEqual(['INITIAL_SESSION', 'PASSWORD_RECOVERY']);
  });
});

describe('step-up: REAUTHENTICATION_REQUIRED and the automatic retry', () => {
  const creds = {
    create: async () => ({ toJSON: () => ({ id: 'new-cred', type: 'public-key', response: {} }) }),
    get: async () => ({ toJSON: () => ({ id: 'cred-1', type: 'public-key', response: {} }) }),
  };
  beforeEach(() => {
    Object.defineProperty(globalThis, 'navigator', { value: { credentials: creds }, configurable: true });
    server.reauthWindowMs = 1000;
  });

  it('without a handler: the event, then ReauthenticationRequiredError with the methods', async () => {
    const c = client();
    const events = recorder(c);
    await c.signIn({ email: 'ada@example.com', password: 'correct horse battery' });
    clock.t += 2000;
    const e = await c.registerPasskey().catch((x) => x);
    expect(e).toBeInstanceOf(ReauthenticationRequiredError);
    expect(e.methods).toEqual(['password']);
    await settle();
    expect(events).toContain('REAUTHENTICATION_REQUIRED');
  });

  it('with onReauthenticationRequired: asked once, proved, the call retried and done', async () => {
    const asked: string[][] = [];
    const c = client(memoryStorage(), {
      onReauthenticationRequired: (methods: string[]) => {
        asked.push(methods);
        return { password: 'correct horse battery' };
      },
    });
    await c.signIn({ email: 'ada@example.com', password: 'correct horse battery' });
    clock.t += 2000;
    const pk = await c.registerPasskey({ name: 'laptop' });
    expect(pk.name).toBe('laptop');
    expect(asked).toEqual([['password']]);
    const paths = server.requests.map((r) => `${r.method} ${r.path}`);
    expect(paths.filter((p) => p === 'POST /v1/me/passkeys/options')).toHaveLength(2);
    expect(paths).toContain('POST /v1/me/reauthenticate');
  });

  it('retries once only; null from the handler gives up', async () => {
    server.reauthWindowMs = 0; // every proof is already stale
    let asked = 0;
    const c = client(memoryStorage(), {
      onReauthenticationRequired: () => (++asked === 1 ? { password: 'correct horse battery' } : null),
    });
    await c.signIn({ email: 'ada@example.com', password: 'correct horse battery' });
    await expect(c.registerPasskey()).rejects.toBeInstanceOf(ReauthenticationRequiredError);
    expect(asked).toBe(1);
    await expect(c.registerPasskey()).rejects.toBeInstanceOf(ReauthenticationRequiredError);
    expect(asked).toBe(2);
    expect(await c.getSession()).not.toBeNull();
  });
});

describe('setSession, claims, stored sessions', () => {
  it('setSession adopts a valid pair (user read with it), or refreshes an expired one', async () => {
    const t = server.signInDirect('ada@example.com');
    const c = client();
    const events = recorder(c);
    const s = await c.setSession({ accessToken: t.access_token, refreshToken: t.refresh_token });
    expect(s.user.email).toBe('ada@example.com');
    expect(server.requests.at(-1)).toMatchObject({ method: 'GET', path: '/v1/me' });
    await settle();
    expect(events).toContain('SIGNED_IN');

    const t2 = server.signInDirect('ada@example.com');
    const expired = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sid: 'x', exp: 1 })).toString('base64url')}.sig`;
    const c2 = client(memoryStorage());
    const s2 = await c2.setSession({ accessToken: expired, refreshToken: t2.refresh_token });
    expect(server.requests.at(-1)).toMatchObject({ method: 'POST', path: '/v1/sessions/refresh' });
    expect(s2.refreshToken).not.toBe(t2.refresh_token);
  });

  it('getClaims verifies against the JWKS (kept; refetched for a new kid), hasRole, amr, assurance', async () => {
    const k1 = await generateKeyPair('EdDSA', { extractable: true });
    const k2 = await generateKeyPair('EdDSA', { extractable: true });
    const jwk = async (k: CryptoKey, kid: string) => ({ ...(await exportJWK(k)), kid, alg: 'EdDSA', use: 'sig' });
    let keys = [await jwk(k1.publicKey, 'k1')];
    let jwksFetches = 0;
    const now = Math.floor(Date.now() / 1000);
    const sign = (key: CryptoKey, kid: string, claims: Record<string, unknown>) =>
      new SignJWT({ sid: 's1', ...claims }).setProtectedHeader({ alg: 'EdDSA', kid }).setSubject('u1').setExpirationTime(now + 600).sign(key);
    const seed = (token: string) =>
      memoryStorage({
        [storageKey]: JSON.stringify({
          v: 2,
          session: { accessToken: token, refreshToken: 'r', tokenType: 'Bearer', expiresIn: 600, expiresAt: Date.now() + 600_000, sessionId: 's1', user: { id: 'u1' } },
        }),
      });
    const fetchJwks = (async (i: RequestInfo | URL) => {
      const url = String(i instanceof Request ? i.url : i);
      if (url.endsWith('/.well-known/jwks.json')) {
        jwksFetches++;
        return new Response(JSON.stringify({ keys }), { headers: { 'content-type': 'application/json' } });
      }
      return new Response('{}', { status: 404 });
    }) as typeof fetch;
    const opts = { fetch: fetchJwks, now: () => Date.now() };

    const token = await sign(k1.privateKey, 'k1', { roles: ['user', 'admin'], amr: ['pwd', 'otp'] });
    const c = client(seed(token), opts);
    expect((await c.getClaims())!.sub).toBe('u1');
    expect(await c.hasRole('admin')).toBe(true);
    expect(await c.hasRole('owner')).toBe(false);
    expect(jwksFetches).toBe(1);
    expect(c.amr).toEqual(['pwd', 'otp']);
    expect(c.assuranceLevel).toBe('aal2');

    // A rotated key: the set is fetched again.
    keys = [...keys, await jwk(k2.publicKey, 'k2')];
    const c2 = client(seed(await sign(k2.privateKey, 'k2', { amr: ['pwd'] })), opts);
    expect((await c2.getClaims())!.amr).toEqual(['pwd']);
    expect(c2.assuranceLevel).toBe('aal1');

    // A token signed by a key the server never published is refused.
    const rogue = await generateKeyPair('EdDSA');
    const c3 = client(seed(await sign(rogue.privateKey, 'k1', { roles: ['admin'] })), opts);
    await expect(c3.getClaims()).rejects.toThrow();
    await expect(c3.hasRole('admin')).rejects.toThrow();
  });

  it('a session stored by 0.1 (snake_case, v1) is read and kept signed in', async () => {
    const t = server.signInDirect('ada@example.com');
    const storage = memoryStorage({
      [storageKey]: JSON.stringify({
        v: 1,
        session: { ...t, expires_at: clock.t + 60_000, session_id: 's-old', generation: 0 },
      }),
    });
    const c = client(storage);
    const s = (await c.getSession())!;
    expect(s.refreshToken).toBe(t.refresh_token);
    expect(s.sessionId).toBe('s-old');
    expect(s.user.email).toBe('ada@example.com');
    expect((await c.getUser()).email).toBe('ada@example.com');
  });
});

describe('auto refresh from a stored session', () => {
  it('startAutoRefresh before storage was read arms the timer for the stored session', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const t = server.signInDirect('ada@example.com');
    const sid = JSON.parse(Buffer.from(t.refresh_token.split('.')[1]!, 'base64url').toString()).sid;
    const storage = memoryStorage({
      [storageKey]: JSON.stringify({
        v: 2,
        session: { accessToken: t.access_token, refreshToken: t.refresh_token, tokenType: 'Bearer', expiresIn: 60, expiresAt: clock.t + 60_000, sessionId: sid, generation: 0, user: { id: 'u1', email: 'ada@example.com' } },
      }),
    });
    const c = client(storage);
    c.startAutoRefresh();
    clock.t += 41_000;
    await vi.advanceTimersByTimeAsync(41_000);
    await settle();
    expect(server.refreshRotated).toBe(1);
    expect(c.autoRefreshing).toBe(true);
  });
});
