// nativePasskeys: a native module's WebAuthn JSON reaches the server in the
// form it reads. The "native module" here is a software authenticator (an
// ES256 key made with node:crypto, "none" attestation, real CBOR and
// signatures) that answers in standard base64 as some modules do; a real
// Portcullis registers the passkey and signs in with it.
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, memoryStorage, processLock } from '../../src/index.js';
import { installNativePasskeys, nativePasskeys, normaliseCredential, toJsonForm, type NativePasskeyModule } from '../../src/native/index.js';
// @ts-ignore: a plain ES module of the end-to-end harness
import { startPortcullis } from '../e2e/harness.mjs';

type Json = Record<string, any>;

// ---- a minimal CBOR encoder (unsigned/negative ints, bytes, text, maps)
function head(major: number, n: number): Buffer {
  if (n < 24) return Buffer.from([(major << 5) | n]);
  if (n < 256) return Buffer.from([(major << 5) | 24, n]);
  return Buffer.from([(major << 5) | 25, n >> 8, n & 0xff]);
}
function cbor(v: unknown): Buffer {
  if (typeof v === 'number') return v >= 0 ? head(0, v) : head(1, -1 - v);
  if (Buffer.isBuffer(v)) return Buffer.concat([head(2, v.length), v]);
  if (typeof v === 'string') return Buffer.concat([head(3, Buffer.byteLength(v)), Buffer.from(v)]);
  if (v instanceof Map) {
    const parts = [head(5, v.size)];
    for (const [k, x] of v) parts.push(cbor(k), cbor(x));
    return Buffer.concat(parts);
  }
  throw new Error(`cbor: ${typeof v}`);
}

const b64 = (b: Buffer) => b.toString('base64'); // standard, padded: the adapter must fix it
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest();

/** A platform authenticator in software, behind a react-native-passkey-like interface. */
function softwareAuthenticator(origin: string): NativePasskeyModule & { calls: number } {
  const creds = new Map<string, { key: KeyObject; userHandle: string; rpId: string; count: number }>();
  const m = {
    calls: 0,
    async create(o: Json): Promise<Json> {
      m.calls++;
      const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const jwk = publicKey.export({ format: 'jwk' });
      // Bytes whose base64 has '+' and '/': the adapter must turn it into base64url.
      const id = Buffer.concat([Buffer.from([0xfb, 0xff, 0xfe]), randomBytes(29)]);
      const cose = cbor(new Map<number, unknown>([[1, 2], [3, -7], [-1, 1], [-2, Buffer.from(jwk.x!, 'base64url')], [-3, Buffer.from(jwk.y!, 'base64url')]]));
      const rpId = o.rp.id as string;
      const authData = Buffer.concat([
        sha256(rpId), Buffer.from([0x45]), Buffer.alloc(4), Buffer.alloc(16),
        Buffer.from([id.length >> 8, id.length & 0xff]), id, cose,
      ]);
      const clientData = Buffer.from(JSON.stringify({ type: 'webauthn.create', challenge: o.challenge, origin, crossOrigin: false }));
      creds.set(id.toString('base64url'), { key: privateKey, userHandle: o.user.id, rpId, count: 0 });
      return {
        id: b64(id),
        type: 'public-key',
        response: {
          clientDataJSON: b64(clientData),
          attestationObject: b64(cbor(new Map<string, unknown>([['fmt', 'none'], ['attStmt', new Map()], ['authData', authData]]))),
          transports: ['internal'],
        },
        authenticatorAttachment: 'platform',
      };
    },
    async get(o: Json): Promise<Json> {
      m.calls++;
      const [id, c] = [...creds.entries()][0] ?? [];
      if (!id || !c) throw new Error('no passkey');
      c.count++;
      const authData = Buffer.concat([sha256(c.rpId), Buffer.from([0x05]), Buffer.from([0, 0, 0, c.count])]);
      const clientData = Buffer.from(JSON.stringify({ type: 'webauthn.get', challenge: o.challenge, origin, crossOrigin: false }));
      const signature = sign('sha256', Buffer.concat([authData, sha256(clientData)]), c.key);
      return {
        id,
        rawId: b64(Buffer.from(id, 'base64url')),
        type: 'public-key',
        response: {
          clientDataJSON: b64(clientData),
          authenticatorData: b64(authData),
          signature: b64(signature),
          userHandle: c.userHandle,
        },
      };
    },
  };
  return m;
}

type Server = { base: string; stop: () => Promise<void> };

async function call(base: string, method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; json: Json }> {
  const r = await fetch(`${base}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : {} };
}

describe('nativePasskeys against a real Portcullis', () => {
  let server: Server;
  let origin: string;
  beforeAll(async () => {
    server = await startPortcullis((port: number) => ({
      PORTCULLIS_PUBLIC_URL: `http://localhost:${port}`,
      PORTCULLIS_WEBAUTHN_ORIGINS: `http://localhost:${port}`,
      PORTCULLIS_ACCESS_TTL: '60s',
    }));
    origin = server.base.replace('127.0.0.1', 'localhost');
  }, 30_000);
  afterAll(async () => {
    await server?.stop();
  });

  it('registers a passkey and signs in with it through the adapter', async () => {
    const auth = softwareAuthenticator(origin);
    const passkeys = nativePasskeys(auth);
    const email = `passkey-${Math.random().toString(36).slice(2)}@example.com`;
    const password = 'correct horse battery staple 42';
    expect((await call(server.base, 'POST', '/v1/users', { email, password })).status).toBe(201);
    const token = (await call(server.base, 'POST', '/v1/sessions', { email, password })).json.access_token as string;

    const reg = await call(server.base, 'POST', '/v1/me/passkeys/options', undefined, token);
    expect(reg.status).toBe(200);
    const credential = await passkeys.create(reg.json.public_key);
    expect(credential.id).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(credential.rawId).toBe(credential.id);
    const added = await call(server.base, 'POST', '/v1/me/passkeys', { challenge_id: reg.json.challenge_id, credential, name: 'Phone' }, token);
    expect(added.status, JSON.stringify(added.json)).toBe(201);

    const opts = await call(server.base, 'POST', '/v1/sessions/passkey/options', {});
    const assertion = await passkeys.get(opts.json.public_key, { mediation: 'optional' });
    const signedIn = await call(server.base, 'POST', '/v1/sessions/passkey', { challenge_id: opts.json.challenge_id, credential: assertion });
    expect(signedIn.status, JSON.stringify(signedIn.json)).toBe(200);
    expect(signedIn.json.user.email).toBe(email);
  });

  it('installNativePasskeys: the client\'s own registerPasskey and signInWithPasskey go through the module', async () => {
    const auth = softwareAuthenticator(origin);
    const make = () => createClient({ url: server.base, storage: memoryStorage(), lock: processLock(), broadcast: false });
    const c = make();
    const email = `passkey-client-${Math.random().toString(36).slice(2)}@example.com`;
    const password = 'correct horse battery staple 42';
    await c.signUp({ email, password });
    await c.signIn({ email, password });
    const g = globalThis as { navigator?: { credentials?: unknown } };
    const before = g.navigator?.credentials;
    const uninstall = installNativePasskeys(auth);
    try {
      const added = await c.registerPasskey({ name: 'Phone' });
      expect(added.name).toBe('Phone');
      expect((await c.listPasskeys()).map((p) => p.id)).toContain(added.id);
      await c.signOut();
      const session = await make().signInWithPasskey();
      expect(session.user.email).toBe(email);
      expect(auth.calls).toBe(2);
    } finally {
      uninstall();
    }
    expect(g.navigator?.credentials).toBe(before);
  });

  it('the passkeys option: registerPasskey, the passkey second factor and signInWithPasskey go through the module, navigator untouched', async () => {
    const auth = softwareAuthenticator(origin);
    const make = () =>
      createClient({ url: server.base, storage: memoryStorage(), lock: processLock(), broadcast: false, passkeys: nativePasskeys(auth) });
    const g = globalThis as { navigator?: { credentials?: unknown } };
    expect(g.navigator?.credentials).toBeUndefined();
    const c = make();
    const email = `passkey-option-${Math.random().toString(36).slice(2)}@example.com`;
    const password = 'correct horse battery staple 42';
    await c.signUp({ email, password });
    await c.signIn({ email, password });
    const added = await c.registerPasskey({ name: 'Phone' });
    expect((await c.listPasskeys()).map((p) => p.id)).toContain(added.id);
    await c.signOut();
    const session = await make().signInWithPasskey({ email });
    expect(session.user.email).toBe(email);
    expect(auth.calls).toBe(2);
    expect(g.navigator?.credentials).toBeUndefined();
  });

  it('without the adapter\'s base64url fix the server refuses the same answer (control)', async () => {
    const auth = softwareAuthenticator(origin);
    const email = `passkey-raw-${Math.random().toString(36).slice(2)}@example.com`;
    const password = 'correct horse battery staple 42';
    await call(server.base, 'POST', '/v1/users', { email, password });
    const token = (await call(server.base, 'POST', '/v1/sessions', { email, password })).json.access_token as string;
    const reg = await call(server.base, 'POST', '/v1/me/passkeys/options', undefined, token);
    const inner = reg.json.public_key.publicKey ?? reg.json.public_key;
    const raw = await auth.create(inner);
    const refused = await call(server.base, 'POST', '/v1/me/passkeys', { challenge_id: reg.json.challenge_id, credential: raw }, token);
    expect(refused.status).toBeGreaterThanOrEqual(400);
    expect(refused.status).toBeLessThan(500);
  });
});

describe('nativePasskeys', () => {
  it('an aborted signal rejects with AbortError before the module is asked', async () => {
    const auth = softwareAuthenticator('http://localhost');
    const ctrl = new AbortController();
    ctrl.abort();
    await expect(nativePasskeys(auth).get({ challenge: 'x' }, { signal: ctrl.signal })).rejects.toMatchObject({ name: 'AbortError' });
    expect(auth.calls).toBe(0);
  });

  it('toJsonForm turns the ArrayBuffers of browser options back into base64url', () => {
    const bytes = new Uint8Array([0xfb, 0xff, 0xfe, 0x00, 0x01]);
    expect(toJsonForm({ challenge: bytes.buffer, user: { id: bytes.subarray(1, 3), name: 'n' }, list: [{ id: bytes }], skip: undefined })).toEqual({
      challenge: Buffer.from(bytes).toString('base64url'),
      user: { id: Buffer.from(bytes.subarray(1, 3)).toString('base64url'), name: 'n' },
      list: [{ id: Buffer.from(bytes).toString('base64url') }],
    });
    for (let n = 0; n < 40; n++) {
      const b = randomBytes(n);
      expect(toJsonForm(b.buffer.slice(b.byteOffset, b.byteOffset + n))).toBe(b.toString('base64url'));
    }
  });

  it('installNativePasskeys refuses to replace a real navigator.credentials unless forced', () => {
    const g = globalThis as { navigator?: { credentials?: unknown } };
    const undo1 = installNativePasskeys(softwareAuthenticator('http://localhost'));
    expect(() => installNativePasskeys(softwareAuthenticator('http://localhost'))).toThrow(/exists already/);
    const undo2 = installNativePasskeys(softwareAuthenticator('http://localhost'), { force: true });
    undo2();
    expect(g.navigator?.credentials).toBeDefined();
    undo1();
    expect(g.navigator?.credentials).toBeUndefined();
  });

  it('normalises base64 to base64url and fills rawId, type and clientExtensionResults', () => {
    const out = normaliseCredential({ id: 'a+b/c==', response: { clientDataJSON: 'x+y/z=', userHandle: null } });
    expect(out).toEqual({
      id: 'a-b_c',
      rawId: 'a-b_c',
      type: 'public-key',
      response: { clientDataJSON: 'x-y_z', userHandle: null },
      clientExtensionResults: {},
    });
    expect(() => normaliseCredential({ response: {} })).toThrow(/without id/);
  });
});
