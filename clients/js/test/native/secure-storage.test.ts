// secureStoreAdapter: values over SecureStore's 2048 bytes split into
// chunks, read back whole; a write or removal cut short at any step reads
// back as the old value, the new one, or no session — never a mix; stale
// chunks go on the next write. Then the real client on it, against a real
// Portcullis.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, processLock } from '../../src/index.js';
import { secureStoreAdapter, splitUtf8, utf8Bytes } from '../../src/native/index.js';
import { FakeSecureStore, LIMIT } from './secure-store.js';
// @ts-ignore: a plain ES module of the end-to-end harness
import { startPortcullis } from '../e2e/harness.mjs';

const KEY = 'portcullis.session';

/** A text of about `bytes` UTF-8 bytes with 1-, 2-, 3- and 4-byte characters. */
function value(bytes: number, seed = 'v'): string {
  const alphabet = ['a', 'é', '中', '😀', '"', '\\'];
  let s = `${seed}:`;
  for (let i = 0; Buffer.byteLength(s, 'utf8') < bytes - 4; i++) s += alphabet[i % alphabet.length];
  return s;
}

describe('splitUtf8', () => {
  it('keeps every piece within the limit, never splits a character, and joins back', () => {
    for (const max of [4, 5, 7, 100, 2000, 2048]) {
      const s = value(9000, `m${max}`);
      const parts = splitUtf8(s, max);
      expect(parts.join('')).toBe(s);
      for (const p of parts) {
        expect(Buffer.byteLength(p, 'utf8')).toBeLessThanOrEqual(max);
        expect(/[\uD800-\uDBFF]$|^[\uDC00-\uDFFF]/.test(p)).toBe(false);
      }
      expect(utf8Bytes(s)).toBe(Buffer.byteLength(s, 'utf8'));
    }
  });
});

describe('secureStoreAdapter', () => {
  it('round-trips values of every size under the 2048-byte limit per stored value', async () => {
    const store = new FakeSecureStore();
    const a = secureStoreAdapter(store);
    for (const n of [0, 1, 1999, 2000, 2001, 2048, 4000, 4001, 12_345, 60_000]) {
      const v = n === 0 ? '' : value(n, String(n));
      await a.setItem(KEY, v);
      expect(await a.getItem(KEY)).toBe(v);
      // A new adapter (the app restarted) reads the same.
      expect(await secureStoreAdapter(store).getItem(KEY)).toBe(v);
      expect(store.keys().filter((k) => k !== KEY).length).toBe(Math.max(1, splitUtf8(v, 2000).length));
    }
    expect(store.largest).toBeLessThanOrEqual(LIMIT);
    const full = secureStoreAdapter(store, { chunkBytes: 2048 });
    await full.setItem(KEY, value(10_000));
    expect(await full.getItem(KEY)).toBe(value(10_000));
    expect(store.largest).toBeLessThanOrEqual(LIMIT);
  });

  it('a whole value over the limit is what the stand-in refuses (control)', async () => {
    await expect(new FakeSecureStore().setItemAsync(KEY, value(3000))).rejects.toThrow(/over SecureStore/);
  });

  it('overwrites leave only the manifest and the new chunks; removal leaves nothing', async () => {
    const store = new FakeSecureStore();
    const a = secureStoreAdapter(store);
    await a.setItem(KEY, value(9000, 'big'));
    await a.setItem(KEY, value(2500, 'small'));
    expect(store.keys()).toEqual([KEY, `${KEY}.b.0`, `${KEY}.b.1`]);
    await a.setItem(KEY, value(100, 'tiny'));
    expect(store.keys()).toEqual([KEY, `${KEY}.a.0`]);
    await a.removeItem(KEY);
    expect(store.keys()).toEqual([]);
    expect(await a.getItem(KEY)).toBeNull();
  });

  it('an overwrite killed at any step reads back as the old or the new value, and the next write cleans up', async () => {
    for (const [oldSize, newSize] of [
      [6000, 9000],
      [9000, 2500],
      [2500, 2500],
      [100, 7000],
    ] as const) {
      const base = new FakeSecureStore();
      const oldV = value(oldSize, 'old');
      const newV = value(newSize, 'new');
      await secureStoreAdapter(base).setItem(KEY, oldV);
      // How many mutations a whole overwrite takes.
      const probe = base.clone();
      await secureStoreAdapter(probe).setItem(KEY, newV);
      const total = probe.mutations;
      const seen = new Set<string>();
      for (let k = 0; k <= total; k++) {
        const store = base.clone();
        store.failFrom = k;
        const failed = await secureStoreAdapter(store).setItem(KEY, newV).then(() => false, () => true);
        expect(failed).toBe(k < total);
        store.failFrom = Number.POSITIVE_INFINITY;
        const got = await secureStoreAdapter(store).getItem(KEY);
        expect([oldV, newV]).toContain(got);
        seen.add(got === oldV ? 'old' : 'new');
        // The next successful write and removal leave no stale chunk.
        const next = value(3000, `next${k}`);
        await secureStoreAdapter(store).setItem(KEY, next);
        expect(await secureStoreAdapter(store).getItem(KEY)).toBe(next);
        expect(store.keys().length).toBe(1 + splitUtf8(next, 2000).length);
        await secureStoreAdapter(store).removeItem(KEY);
        expect(store.keys()).toEqual([]);
      }
      expect([...seen].sort()).toEqual(['new', 'old']);
    }
  });

  it('a removal killed at any step reads back as no session or the old value; the next removal cleans up', async () => {
    const base = new FakeSecureStore();
    const oldV = value(7000, 'old');
    await secureStoreAdapter(base).setItem(KEY, oldV);
    const probe = base.clone();
    await secureStoreAdapter(probe).removeItem(KEY);
    for (let k = 0; k <= probe.mutations; k++) {
      const store = base.clone();
      store.failFrom = k;
      await secureStoreAdapter(store).removeItem(KEY).catch(() => undefined);
      store.failFrom = Number.POSITIVE_INFINITY;
      const got = await secureStoreAdapter(store).getItem(KEY);
      expect(k === 0 ? got === oldV : got === null).toBe(true);
      await secureStoreAdapter(store).removeItem(KEY);
      expect(store.keys()).toEqual([]);
    }
  });

  it('a chunk lost or swapped behind its back reads as no session, never as garbage', async () => {
    const store = new FakeSecureStore();
    const a = secureStoreAdapter(store);
    const v1 = value(5000, 'one');
    await a.setItem(KEY, v1);
    const slot = store.map.get(KEY)!.split(':')[1];
    const missing = store.clone();
    missing.map.delete(`${KEY}.${slot}.1`);
    expect(await secureStoreAdapter(missing).getItem(KEY)).toBeNull();

    const other = new FakeSecureStore();
    await secureStoreAdapter(other).setItem(KEY, value(5000, 'second'));
    expect(other.map.get(`${KEY}.a.1`)).not.toBe(store.map.get(`${KEY}.${slot}.1`));
    const swapped = store.clone();
    swapped.map.set(`${KEY}.${slot}.1`, other.map.get(`${KEY}.a.1`)!);
    expect(await secureStoreAdapter(swapped).getItem(KEY)).toBeNull();

    const shortened = store.clone();
    shortened.map.set(`${KEY}.${slot}.2`, store.map.get(`${KEY}.${slot}.2`)!.slice(1));
    expect(await secureStoreAdapter(shortened).getItem(KEY)).toBeNull();

    for (const bad of ['pcs1:', 'pcs1:c:1:1:00000000', 'pcs1:a:0:0:811c9dc5', 'pcs1:a:99999:1:00000000']) {
      const s = store.clone();
      s.map.set(KEY, bad);
      expect(await secureStoreAdapter(s).getItem(KEY)).toBeNull();
    }
    expect(await a.getItem(KEY)).toBe(v1);
  });

  it('reads a value stored whole before (asyncStorageAdapter), and chunks it on the next write', async () => {
    const store = new FakeSecureStore();
    store.map.set(KEY, '{"v":1}');
    const a = secureStoreAdapter(store);
    expect(await a.getItem(KEY)).toBe('{"v":1}');
    await a.setItem(KEY, '{"v":2}');
    expect(store.map.get(KEY)).toMatch(/^pcs1:a:1:/);
    expect(await a.getItem(KEY)).toBe('{"v":2}');
  });

  it('refuses a key SecureStore would refuse, before touching the store', async () => {
    const store = new FakeSecureStore();
    await expect(secureStoreAdapter(store).setItem('portcullis:session', 'x')).rejects.toThrow(/letters, digits/);
    expect(store.mutations).toBe(0);
  });

  it('calls on one adapter do not interleave: concurrent reads see whole values', async () => {
    const store = new FakeSecureStore();
    const a = secureStoreAdapter(store);
    const vs = Array.from({ length: 8 }, (_, i) => value(3000 + i * 700, `c${i}`));
    await a.setItem(KEY, vs[0]!);
    const ops: Array<Promise<unknown>> = [];
    const reads: Array<Promise<string | null>> = [];
    for (const v of vs) {
      ops.push(a.setItem(KEY, v));
      reads.push(a.getItem(KEY));
    }
    await Promise.all(ops);
    for (const [i, r] of (await Promise.all(reads)).entries()) expect(r).toBe(vs[i]);
  });
});

describe('the client on secureStoreAdapter (real Portcullis)', () => {
  type Server = { base: string; stop: () => Promise<void> };
  let server: Server;
  beforeAll(async () => {
    server = await startPortcullis({ PORTCULLIS_ACCESS_TTL: '60s' });
  }, 30_000);
  afterAll(async () => {
    await server?.stop();
  });

  it('a session over 2048 bytes is kept in chunks, restored by a new client, and gone after sign-out', async () => {
    const store = new FakeSecureStore();
    const make = () =>
      createClient({ url: server.base, storage: secureStoreAdapter(store), lock: processLock(), broadcast: false });
    const c = make();
    const email = `native-${Math.random().toString(36).slice(2)}@example.com`;
    const password = 'correct horse battery staple 42';
    await c.signUp({ email, password });
    await c.signIn({ email, password });
    const bio = 'Ünïcödé 中文 😀 '.repeat(120);
    await c.updateUser({ metadata: { bio } });
    expect(store.keys().filter((k) => k.startsWith(`${KEY}.`)).length).toBeGreaterThan(1);
    expect(store.largest).toBeLessThanOrEqual(LIMIT);

    const again = make(); // the app restarted
    const s = await again.getSession();
    expect(s?.user.email).toBe(email);
    expect((s?.user.metadata as { bio?: string } | null | undefined)?.bio).toBe(bio);
    expect((await again.getUser()).email).toBe(email);

    await again.signOut();
    expect(store.keys()).toEqual([]);
    expect(await make().getSession()).toBeNull();
  });
});
