/**
 * A storage adapter over Expo SecureStore's interface (or anything with
 * `getItemAsync` / `setItemAsync` / `deleteItemAsync`), passed in by the
 * app: this package never imports `expo-secure-store`.
 *
 * SecureStore warns above 2048 bytes a value (and may refuse in later
 * SDKs); a session with its tokens and user is often larger. Values are
 * therefore split into chunks of at most `chunkBytes` UTF-8 bytes, kept
 * under `<key>.a.<i>` or `<key>.b.<i>` (two slots), and `<key>` itself holds
 * a small manifest `pcs1:<slot>:<chunks>:<bytes>:<hash>`.
 *
 * Writes never touch the slot the manifest names: the new value goes to
 * the other slot, then the manifest is switched (the commit), then the old
 * slot is cleared. A write cut short (the app killed, a keychain error)
 * therefore leaves the old value readable; a value whose chunks do not
 * match the manifest's length and hash (a chunk lost or changed behind our
 * back) reads as `null` (no session), never as a mix of two values. Chunks
 * are always written from 0 up and deleted from the top down, so a slot
 * holds a run `0..k` that can be found and removed without a key listing
 * (SecureStore has none): stale chunks of an interrupted write or removal
 * are removed by the next write or removal.
 */
import type { AsyncStorageAdapter } from '../storage.js';

/** The part of `expo-secure-store` used here (`import * as SecureStore from 'expo-secure-store'`). */
export interface SecureStoreLike<O = unknown> {
  getItemAsync(key: string, options?: O): Promise<string | null>;
  setItemAsync(key: string, value: string, options?: O): Promise<void>;
  deleteItemAsync(key: string, options?: O): Promise<void>;
}

export interface SecureStorageOptions<O = unknown> {
  /** Most UTF-8 bytes per stored value. Default 2000 (SecureStore's guidance is 2048). */
  chunkBytes?: number;
  /** Passed to every SecureStore call, e.g. `{ keychainAccessible: SecureStore.AFTER_FIRST_UNLOCK }`. */
  storeOptions?: O;
  /** Most chunks of one value (a bound for the probing of stale chunks). Default 64. */
  maxChunks?: number;
}

const MANIFEST = 'pcs1';
/** SecureStore's key rule: alphanumerics, `.`, `-` and `_`. */
const KEY_RE = /^[A-Za-z0-9._-]+$/;

interface Manifest {
  slot: 'a' | 'b';
  n: number;
  bytes: number;
  hash: string;
}

function utf8Length(cp: number): number {
  return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

/** Total UTF-8 length of `s` (lone surrogates count as 3, as encoders replace them). */
export function utf8Bytes(s: string): number {
  let n = 0;
  for (const ch of s) n += utf8Length(ch.codePointAt(0) ?? 0);
  return n;
}

/** Splits `s` into pieces of at most `max` UTF-8 bytes, never inside a character. */
export function splitUtf8(s: string, max: number): string[] {
  const out: string[] = [];
  let cur = '';
  let curBytes = 0;
  for (const ch of s) {
    const b = utf8Length(ch.codePointAt(0) ?? 0);
    if (curBytes + b > max && cur) {
      out.push(cur);
      cur = '';
      curBytes = 0;
    }
    cur += ch;
    curBytes += b;
  }
  if (cur || out.length === 0) out.push(cur);
  return out;
}

/** FNV-1a (32 bits) over UTF-16 code units: detects a chunk from another value. */
function fnv1a(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

function parseManifest(raw: string): Manifest | null {
  const m = /^pcs1:([ab]):(\d{1,4}):(\d{1,9}):([0-9a-f]{8})$/.exec(raw);
  if (!m) return null;
  return { slot: m[1] as 'a' | 'b', n: Number(m[2]), bytes: Number(m[3]), hash: m[4]! };
}

/**
 * The session storage for React Native on Expo SecureStore:
 *
 * ```ts
 * import * as SecureStore from 'expo-secure-store';
 * createClient({ url, storage: secureStoreAdapter(SecureStore), storageKey: 'portcullis.session' });
 * ```
 *
 * Calls on one adapter run one at a time (a read never sees half a
 * write). A value stored earlier without chunks (by `asyncStorageAdapter`)
 * is still read, so an app can switch without signing its users out.
 */
export function secureStoreAdapter<O = unknown>(
  store: SecureStoreLike<O>,
  options: SecureStorageOptions<O> = {},
): AsyncStorageAdapter {
  const chunkBytes = options.chunkBytes ?? 2000;
  const maxChunks = options.maxChunks ?? 64;
  if (!(chunkBytes >= 4)) throw new Error('secureStoreAdapter: chunkBytes must be at least 4');
  const so = options.storeOptions;
  const get = (k: string) => (so === undefined ? store.getItemAsync(k) : store.getItemAsync(k, so));
  const set = (k: string, v: string) => (so === undefined ? store.setItemAsync(k, v) : store.setItemAsync(k, v, so));
  const del = (k: string) => (so === undefined ? store.deleteItemAsync(k) : store.deleteItemAsync(k, so));
  const chunkKey = (key: string, slot: 'a' | 'b', i: number) => `${key}.${slot}.${i}`;

  let tail: Promise<unknown> = Promise.resolve();
  /** One operation at a time, whatever happened to the one before. */
  function serial<T>(op: () => Promise<T>): Promise<T> {
    const run = tail.then(op, op);
    tail = run.catch(() => undefined);
    return run;
  }

  function checkKey(key: string): void {
    if (!KEY_RE.test(key)) {
      throw new Error(`secureStoreAdapter: SecureStore keys may only hold letters, digits, '.', '-' and '_' (got ${JSON.stringify(key)})`);
    }
  }

  /** Removes the run `0..k` of a slot, top down. */
  async function clearSlot(key: string, slot: 'a' | 'b', known = 0): Promise<void> {
    let n = known;
    while (n < maxChunks && (await get(chunkKey(key, slot, n))) !== null) n++;
    for (let i = n - 1; i >= 0; i--) await del(chunkKey(key, slot, i));
  }

  async function read(key: string): Promise<string | null> {
    const raw = await get(key);
    if (raw === null || raw === undefined) return null;
    if (!raw.startsWith(`${MANIFEST}:`)) return raw; // stored whole, before chunking
    const m = parseManifest(raw);
    if (!m || m.n < 1 || m.n > maxChunks) return null;
    const parts: string[] = [];
    for (let i = 0; i < m.n; i++) {
      const part = await get(chunkKey(key, m.slot, i));
      if (part === null || part === undefined) return null;
      parts.push(part);
    }
    const value = parts.join('');
    if (utf8Bytes(value) !== m.bytes || fnv1a(value) !== m.hash) return null;
    return value;
  }

  async function write(key: string, value: string): Promise<void> {
    const chunks = splitUtf8(value, chunkBytes);
    if (chunks.length > maxChunks) {
      throw new Error(`secureStoreAdapter: value of ${utf8Bytes(value)} bytes needs more than ${maxChunks} chunks`);
    }
    const raw = await get(key);
    const cur = raw ? parseManifest(raw) : null;
    const slot: 'a' | 'b' = cur?.slot === 'a' ? 'b' : 'a';
    const other: 'a' | 'b' = slot === 'a' ? 'b' : 'a';
    await clearSlot(key, slot);
    for (let i = 0; i < chunks.length; i++) await set(chunkKey(key, slot, i), chunks[i]!);
    await set(key, `${MANIFEST}:${slot}:${chunks.length}:${utf8Bytes(value)}:${fnv1a(value)}`);
    await clearSlot(key, other, cur?.slot === other ? cur.n : 0);
  }

  async function remove(key: string): Promise<void> {
    const raw = await get(key);
    const cur = raw ? parseManifest(raw) : null;
    if (raw !== null && raw !== undefined) await del(key);
    await clearSlot(key, 'a', cur?.slot === 'a' ? cur.n : 0);
    await clearSlot(key, 'b', cur?.slot === 'b' ? cur.n : 0);
  }

  return {
    sharedAcrossTabs: false,
    getItem: async (key) => {
      checkKey(key);
      return serial(() => read(key));
    },
    setItem: async (key, value) => {
      checkKey(key);
      return serial(() => write(key, value));
    },
    removeItem: async (key) => {
      checkKey(key);
      return serial(() => remove(key));
    },
  };
}
