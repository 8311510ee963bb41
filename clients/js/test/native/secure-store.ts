// An in-memory stand-in for expo-secure-store that holds it to its limits:
// values over 2048 UTF-8 bytes are refused, keys must be alphanumerics,
// '.', '-' and '_', and a write or delete can be made to fail ("the app was
// killed here") after a set number of successful ones.
import type { SecureStoreLike } from '../../src/native/index.js';

export const LIMIT = 2048;

export class FakeSecureStore implements SecureStoreLike {
  readonly map = new Map<string, string>();
  /** Mutations (set/delete) done so far. */
  mutations = 0;
  /** The mutation with this index (0-based) fails, and every one after it. */
  failFrom = Number.POSITIVE_INFINITY;
  largest = 0;

  private check(key: string): void {
    if (!/^[A-Za-z0-9._-]+$/.test(key)) throw new Error(`Invalid key provided to SecureStore: ${key}`);
  }

  private mutate(): void {
    if (this.mutations >= this.failFrom) throw new Error('killed');
    this.mutations++;
  }

  async getItemAsync(key: string): Promise<string | null> {
    this.check(key);
    return this.map.get(key) ?? null;
  }

  async setItemAsync(key: string, value: string): Promise<void> {
    this.check(key);
    const bytes = Buffer.byteLength(value, 'utf8');
    if (bytes > LIMIT) throw new Error(`value of ${bytes} bytes for ${key}: over SecureStore's ${LIMIT}`);
    this.mutate();
    this.largest = Math.max(this.largest, bytes);
    this.map.set(key, value);
  }

  async deleteItemAsync(key: string): Promise<void> {
    this.check(key);
    this.mutate();
    this.map.delete(key);
  }

  /** A copy (the same stored state, fresh counters). */
  clone(): FakeSecureStore {
    const c = new FakeSecureStore();
    for (const [k, v] of this.map) c.map.set(k, v);
    return c;
  }

  keys(): string[] {
    return [...this.map.keys()].sort();
  }
}
