// The drift test and one unit test per method: every operation of
// openapi/openapi.json has a method (or a reason in NOT_CALLS), every
// method of the client has an operation (or is local), and each method,
// called against the answers a live server gave (test/recorded/answers.json,
// written by `node test/e2e/all-methods.mjs --record ...`), hits its route
// and hands back camelCase.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createClient, memoryStorage, PortcullisClient } from '../src/index.js';
import { camelKey, OPAQUE_KEYS, snakeKey } from '../src/case.js';
// @ts-expect-error plain JS module shared with the end-to-end runner
import { LOCAL_METHODS, NOT_CALLS, OPERATIONS } from './operations.mjs';
// @ts-expect-error plain JS module shared with the end-to-end runner
import { matchOperation, operationsOf } from './spec-ops.mjs';

const ops = OPERATIONS as Record<string, string>;
const notCalls = NOT_CALLS as Record<string, string>;
const local = LOCAL_METHODS as Record<string, string>;
const root = join(__dirname, '..');
const spec = JSON.parse(readFileSync(join(root, '..', '..', 'openapi', 'openapi.json'), 'utf8'));
const specOps = operationsOf(spec) as Array<{ id: string; method: string; path: string; browser: boolean }>;
const recorded = JSON.parse(readFileSync(join(root, 'test', 'recorded', 'answers.json'), 'utf8')) as Record<
  string,
  { status: number; contentType: string; body: unknown }
>;

describe('drift: the spec and the client', () => {
  it('every operation of the spec has a method or a reason, and nothing else is listed', () => {
    const ids = new Set(specOps.map((o) => o.id));
    const uncovered = [...ids].filter((id) => !(id in ops) && !(id in notCalls));
    expect(uncovered, 'operations of openapi.json with no client method').toEqual([]);
    const stale = [...Object.keys(ops), ...Object.keys(notCalls)].filter((id) => !ids.has(id));
    expect(stale, 'table entries the spec no longer has').toEqual([]);
    const both = Object.keys(ops).filter((id) => id in notCalls);
    expect(both).toEqual([]);
  });

  it('the x-browser-route operations are exactly the browser pages excluded', () => {
    const browser = specOps.filter((o) => o.browser).map((o) => o.id);
    for (const id of browser) expect(notCalls[id], id).toMatch(/x-browser-route/);
  });

  it('every listed method exists, and every public method is listed', () => {
    const c = createClient({ url: 'http://x.test', storage: memoryStorage(), autoRefresh: false });
    const listed = new Set([...Object.values(ops), ...Object.keys(local)]);
    for (const m of listed) {
      const [ns, name] = m.includes('.') ? m.split('.') : [null, m];
      const owner = ns ? (c as unknown as Record<string, Record<string, unknown>>)[ns]! : (c as unknown as Record<string, unknown>);
      const v = owner[name!] ?? Object.getOwnPropertyDescriptor(Object.getPrototypeOf(c), name!)?.get;
      expect(v === undefined ? m : typeof v === 'function' || typeof v === 'object' ? 'ok' : m).toBe('ok');
    }
    const publicOf = (o: object, prefix: string) => {
      const names: string[] = [];
      for (let p = Object.getPrototypeOf(o); p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
        for (const [k, d] of Object.entries(Object.getOwnPropertyDescriptors(p))) {
          if (k !== 'constructor' && typeof d.value === 'function') names.push(prefix + k);
        }
      }
      return names;
    };
    // Protected helpers are not part of the API (TypeScript hides them; they are listed here).
    const internal = new Set([
      'signedInOrMfa', 'pkceKey', 'proofBody', 'assuranceLevels', 'refreshAfterChange', 'raw', 'readRecoveryUrl',
      'callListener', 'emit', 'emitAll', 'readStorage', 'writeStorage', 'post', 'onChannelMessage', 'onStorageChanged',
      'withLock', 'toSession', 'marginFor', 'isFresh', 'isExpired', 'doRefresh', 'saveSession', 'clearSession',
      'storeUser', 'resolve', 'send', 'sendOnce', 'request', 'mayCarryToken', 'schemeOf', 'authed', 'anon', 'parse',
    ]);
    const methods = [
      ...publicOf(c, ''),
      ...publicOf(c.mfa, 'mfa.'),
      ...publicOf(c.admin, 'admin.'),
      ...publicOf(c.oauth, 'oauth.'),
    ].filter((m) => !internal.has(m));
    const unlisted = methods.filter((m) => !listed.has(m));
    expect(unlisted, 'public methods with no operation and not marked local').toEqual([]);
    c.close();
  });
});

// ---------------------------------------------------------------- per method

const far = Math.floor(Date.now() / 1000) + 3600;
const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const accessToken = `${b64({ alg: 'EdDSA' })}.${b64({ sub: 'u1', sid: 's1', exp: far, amr: ['pwd'], roles: ['user'] })}.sig`;
const user = (recorded['getMe']!.body as Record<string, unknown>);
const seeded = () =>
  memoryStorage({
    'unit.session': JSON.stringify({
      v: 2,
      session: {
        accessToken,
        refreshToken: 'rt-1',
        tokenType: 'Bearer',
        expiresIn: 3600,
        expiresAt: Date.now() + 3_600_000,
        sessionId: 's1',
        generation: 0,
        user: { id: user['id'], email: user['email'], emailVerified: false, mfaEnabled: false, passkeys: 0, roles: ['user'], createdAt: '', updatedAt: '', isAnonymous: false },
      },
    }),
  });

/** Answers for operations the live run could only call with refused values. */
const FALLBACK: Record<string, { status: number; body: unknown }> = {
  notMe: { status: 204, body: null },
  unlinkIdentity: { status: 204, body: null },
  revokeConsent: { status: 204, body: null },
  signInWithIdToken: { status: 200, body: recorded['login']!.body },
  signInWithFederationCode: { status: 200, body: recorded['login']!.body },
  linkIdentity: {
    status: 201,
    body: { id: 'i1', provider: 'google', email: 'a@example.com', created_at: '2026-01-01T00:00:00Z', last_used_at: null },
  },
};

let hits: string[];
let clients: PortcullisClient[];
function unitClient(extra: Record<string, unknown> = {}) {
  const c = createClient({
    url: 'http://portcullis.test',
    storage: seeded(),
    storageKey: 'unit.session',
    autoRefresh: false,
    broadcast: false,
    fetch: (async (input: RequestInfo | URL, init?: RequestInit) => {
      const req = input instanceof Request ? input : new Request(String(input), init);
      const op = matchOperation(spec, req.method, req.url) as string | null;
      hits.push(op ?? `${req.method} ${req.url}`);
      const rec = (op && recorded[op]) || (op && FALLBACK[op]);
      if (!rec) return new Response(JSON.stringify({ type: '/problems/not-found', title: 'no recording', status: 404 }), { status: 404 });
      const body = rec.status === 204 || rec.body === null ? null : typeof rec.body === 'string' ? rec.body : JSON.stringify(rec.body);
      return new Response(op === 'getAvatar' ? new Uint8Array([137, 80, 78, 71]) : body, {
        status: rec.status,
        headers: { 'content-type': op === 'getAvatar' ? 'image/png' : 'application/json' },
      });
    }) as typeof fetch,
    ...extra,
  });
  clients.push(c);
  return c;
}

/** A WebAuthn stand-in: the options must arrive decoded, a credential goes back as JSON. */
function stubCredentials() {
  const fake = {
    create: async (o: { publicKey: { challenge: ArrayBuffer } }) => {
      expect(o.publicKey.challenge).toBeInstanceOf(ArrayBuffer);
      return { toJSON: () => ({ id: 'cred-1', type: 'public-key', response: { clientDataJSON: 'e30' } }) };
    },
    get: async (o: { publicKey: { challenge: ArrayBuffer } }) => {
      expect(o.publicKey.challenge).toBeInstanceOf(ArrayBuffer);
      return { toJSON: () => ({ id: 'cred-1', type: 'public-key', response: { clientDataJSON: 'e30' } }) };
    },
  };
  Object.defineProperty(globalThis, 'navigator', { value: { credentials: fake }, configurable: true });
}

const CALLS: Record<string, (c: PortcullisClient) => Promise<unknown>> = {
  signUp: (c) => c.signUp({ email: 'a@example.com', password: 'long enough pass', displayName: 'A' }),
  getUser: (c) => c.getUser(),
  updateUser: (c) => c.updateUser({ displayName: 'B', metadata: { keep_this: { and_this: 1 } } }),
  deleteUser: (c) => c.deleteUser({ password: 'x' }),
  reauthenticate: (c) => c.reauthenticate({ password: 'x' }),
  signIn: (c) => c.signIn({ email: 'a@example.com', password: 'x' }),
  signOut: (c) => c.signOut(),
  listSessions: (c) => c.listSessions(),
  refreshSession: (c) => c.refreshSession({ force: true }),
  revokeSession: (c) => c.revokeSession('s2'),
  changePassword: (c) => c.changePassword({ currentPassword: 'x', newPassword: 'y' }),
  verifyMfa: (c) => c.verifyMfa({ code: '123456', mfaToken: 'm' }),
  'mfa.enrollTotp': (c) => c.mfa.enrollTotp(),
  'mfa.disableTotp': (c) => c.mfa.disableTotp({ code: '123456' }),
  'mfa.activateTotp': (c) => c.mfa.activateTotp({ code: '123456' }),
  'mfa.regenerateRecoveryCodes': (c) => c.mfa.regenerateRecoveryCodes({ password: 'x' }),
  getCaptcha: (c) => c.getCaptcha(),
  getJwks: (c) => c.getJwks(),
  getOpenIdConfiguration: (c) => c.getOpenIdConfiguration(),
  checkHealth: (c) => c.checkHealth(),
  checkReady: (c) => c.checkReady(),
  uploadAvatar: (c) => c.uploadAvatar(new Blob([new Uint8Array([137, 80, 78, 71])], { type: 'image/png' })),
  deleteAvatar: (c) => c.deleteAvatar(),
  getAvatar: (c) => c.getAvatar('u1'),
  'admin.listUsers': (c) => c.admin.listUsers({ emailPrefix: 'a', limit: 5 }),
  'admin.getUser': (c) => c.admin.getUser('u1'),
  'admin.updateUser': (c) => c.admin.updateUser('u1', { roles: ['user'] }),
  'admin.deleteUser': (c) => c.admin.deleteUser('u1'),
  'admin.signOutUser': (c) => c.admin.signOutUser('u1'),
  listActivity: (c) => c.listActivity({ limit: 5 }),
  'admin.listAuditEvents': (c) => c.admin.listAuditEvents({ userId: 'u1' }),
  reportNotMe: (c) => c.reportNotMe('t'),
  forgotPassword: (c) => c.forgotPassword({ email: 'a@example.com' }),
  resetPassword: (c) => c.resetPassword({ token: 't', newPassword: 'y' }),
  verifyEmail: (c) => c.verifyEmail({ token: 't' }),
  changeEmail: (c) => c.changeEmail({ newEmail: 'b@example.com' }, { password: 'x' }),
  resendVerification: (c) => c.resendVerification(),
  registerPasskey: (c) => c.registerPasskey({ name: 'k' }),
  listPasskeys: (c) => c.listPasskeys(),
  deletePasskey: (c) => c.deletePasskey('p1'),
  signInWithPasskey: (c) => c.signInWithPasskey({ email: 'a@example.com' }),
  getAppleAppSiteAssociation: (c) => c.getAppleAppSiteAssociation(),
  getAssetLinks: (c) => c.getAssetLinks(),
  'oauth.token': (c) => c.oauth.token({ grantType: 'refresh_token', refreshToken: 'r' }),
  'oauth.revoke': (c) => c.oauth.revoke({ token: 'r' }),
  'oauth.userinfo': async (c) => [await c.oauth.userinfo(), await c.oauth.userinfo({ method: 'POST' })],
  'oauth.introspect': (c) => c.oauth.introspect({ token: 't', introspectionToken: 'i' }),
  signInWithEmail: (c) => c.signInWithEmail({ email: 'a@example.com' }),
  verifyEmailSignIn: (c) => c.verifyEmailSignIn({ token: 't' }),
  signInAnonymously: (c) => c.signInAnonymously(),
  upgrade: (c) => c.upgrade({ email: 'a@example.com', password: 'long enough pass' }),
  listProviders: (c) => c.listProviders(),
  getFederationNonce: (c) => c.getFederationNonce(),
  signInWithIdToken: (c) => c.signInWithIdToken({ provider: 'google', idToken: 'x', nonce: 'n' }),
  signInWithProvider: (c) => c.signInWithProvider('google', { redirectTo: 'http://app.test/cb', navigate: false }),
  completeSignInWithProvider: async (c) => {
    await c.signInWithProvider('google', { redirectTo: 'http://app.test/cb', navigate: false });
    return c.completeSignInWithProvider('http://app.test/cb?code=abc');
  },
  listIdentities: (c) => c.listIdentities(),
  linkIdentity: (c) => c.linkIdentity({ linkToken: 'l' }),
  unlinkIdentity: (c) => c.unlinkIdentity('i1'),
  'admin.listClients': (c) => c.admin.listClients(),
  'admin.createClient': (c) =>
    c.admin.createClient({ name: 'n', redirectUris: ['https://a.test/cb'], postLogoutRedirectUris: null, firstParty: false }),
  'admin.getClient': (c) => c.admin.getClient('c1'),
  'admin.updateClient': (c) => c.admin.updateClient('c1', { name: 'm' }),
  'admin.deleteClient': (c) => c.admin.deleteClient('c1'),
  listConsents: (c) => c.listConsents(),
  revokeConsent: (c) => c.revokeConsent('c1'),
};

/** Verbatim standard documents: their keys stay as their RFCs spell them. */
const VERBATIM = new Set(['getJwks', 'getOpenIdConfiguration', 'getAppleAppSiteAssociation', 'getAssetLinks']);

function snakeKeys(v: unknown, path = ''): string[] {
  if (Array.isArray(v)) return v.flatMap((x, i) => snakeKeys(x, `${path}[${i}]`));
  if (!v || typeof v !== 'object' || v instanceof Blob) return [];
  return Object.entries(v).flatMap(([k, x]) =>
    OPAQUE_KEYS.has(k) ? [] : [...(/_/.test(k) ? [`${path}.${k}`] : []), ...snakeKeys(x, `${path}.${k}`)],
  );
}

describe('each method hits its route (recorded server answers)', () => {
  beforeEach(() => {
    hits = [];
    clients = [];
    stubCredentials();
  });
  afterEach(() => {
    for (const c of clients) c.close();
  });

  it('has a call for every method of the table, and no other', () => {
    expect(Object.keys(CALLS).sort()).toEqual([...new Set(Object.values(ops))].sort());
  });

  for (const method of [...new Set(Object.values(ops))]) {
    const want = Object.entries(ops).filter(([, m]) => m === method).map(([id]) => id);
    it(`${method} -> ${want.join(', ')}`, async () => {
      const c = unitClient();
      const result = await CALLS[method]!(c);
      if (method === 'signInWithProvider') {
        // A navigation: the URL is the operation's.
        const url = (result as { url: string }).url;
        expect(matchOperation(spec, 'GET', url)).toBe('federationAuthorize');
        expect(new URL(url).searchParams.get('code_challenge_method')).toBe('S256');
        return;
      }
      for (const id of want) if (id !== 'federationAuthorize') expect(hits, `${method} did not call ${id}`).toContain(id);
      if (!VERBATIM.has(method)) expect(snakeKeys(result), `${method} returned snake_case keys`).toEqual([]);
    });
  }
});

describe('the wire stays snake_case, free-form maps stay as given', () => {
  it('every property and parameter name of the spec survives camelCase and back', () => {
    const names = new Set<string>();
    const walk = (x: unknown): void => {
      if (Array.isArray(x)) x.forEach(walk);
      else if (x && typeof x === 'object') {
        const o = x as Record<string, unknown>;
        if (o['properties'] && typeof o['properties'] === 'object') Object.keys(o['properties']).forEach((k) => names.add(k));
        if (typeof o['name'] === 'string' && (o['in'] === 'query' || o['in'] === 'path')) names.add(o['name']);
        Object.values(o).forEach(walk);
      }
    };
    walk(spec);
    expect(names.size).toBeGreaterThan(100);
    expect([...names].filter((n) => snakeKey(camelKey(n)) !== n)).toEqual([]);
  });

  it('updateUser sends display_name and metadata untouched, returns camelCase', async () => {
    hits = [];
    clients = [];
    let sent: unknown;
    const c = unitClient({
      fetch: (async (input: RequestInfo | URL, init?: RequestInit) => {
        const req = input instanceof Request ? input : new Request(String(input), init);
        sent = await req.json();
        return new Response(JSON.stringify({ ...user, display_name: 'B', metadata: { keep_this: { and_this: 1 } } }), {
          status: 200,
          headers: { 'content-type': 'application/json' },
        });
      }) as typeof fetch,
    });
    const u = await c.updateUser({ displayName: 'B', metadata: { keep_this: { and_this: 1 } } });
    expect(sent).toEqual({ display_name: 'B', metadata: { keep_this: { and_this: 1 } } });
    expect(u.displayName).toBe('B');
    expect(u.metadata).toEqual({ keep_this: { and_this: 1 } });
    expect(u.emailVerified).toBe(user['email_verified']);
    c.close();
  });
});
