/**
 * Where the session (access token, refresh token, user) is kept. Methods may
 * be synchronous (Web Storage) or return promises (React Native secure
 * storage, IndexedDB wrappers). Values are strings.
 */
export interface StorageAdapter {
  getItem(key: string): string | null | Promise<string | null>;
  setItem(key: string, value: string): void | Promise<void>;
  removeItem(key: string): void | Promise<void>;
  /**
   * True when every tab of the origin sees the same values (localStorage).
   * The client then listens to `storage` events as a second channel besides
   * BroadcastChannel. Default false.
   */
  readonly sharedAcrossTabs?: boolean;
}

/** The asynchronous shape, e.g. expo-secure-store or react-native-keychain wrappers. */
export interface AsyncStorageAdapter extends StorageAdapter {
  getItem(key: string): Promise<string | null>;
  setItem(key: string, value: string): Promise<void>;
  removeItem(key: string): Promise<void>;
}

function webStorage(get: () => Storage | undefined, shared: boolean): StorageAdapter {
  return {
    sharedAcrossTabs: shared,
    getItem: (k) => get()?.getItem(k) ?? null,
    setItem: (k, v) => {
      get()?.setItem(k, v);
    },
    removeItem: (k) => {
      get()?.removeItem(k);
    },
  };
}

/** `window.localStorage`: shared by every tab of the origin, survives restarts. */
export function localStorageAdapter(): StorageAdapter {
  return webStorage(() => (globalThis as { localStorage?: Storage }).localStorage, true);
}

/** `window.sessionStorage`: one tab only, gone when the tab closes. */
export function sessionStorageAdapter(): StorageAdapter {
  return webStorage(() => (globalThis as { sessionStorage?: Storage }).sessionStorage, false);
}

/**
 * In-memory storage. Several clients given the same instance share one
 * session (and, in one JavaScript realm, one refresh lock): useful on a
 * server, in tests, and for apps that must not persist tokens.
 */
export function memoryStorage(initial?: Record<string, string>): StorageAdapter {
  const map = new Map<string, string>(Object.entries(initial ?? {}));
  return {
    sharedAcrossTabs: false,
    getItem: (k) => map.get(k) ?? null,
    setItem: (k, v) => {
      map.set(k, v);
    },
    removeItem: (k) => {
      map.delete(k);
    },
  };
}

/**
 * Wraps any promise-based key/value store (React Native `expo-secure-store`:
 * `asyncStorageAdapter({ getItem: SecureStore.getItemAsync, setItem:
 * SecureStore.setItemAsync, removeItem: SecureStore.deleteItemAsync })`).
 */
export function asyncStorageAdapter(store: {
  getItem(key: string): Promise<string | null | undefined>;
  setItem(key: string, value: string): Promise<unknown>;
  removeItem(key: string): Promise<unknown>;
}): AsyncStorageAdapter {
  return {
    sharedAcrossTabs: false,
    getItem: async (k) => (await store.getItem(k)) ?? null,
    setItem: async (k, v) => {
      await store.setItem(k, v);
    },
    removeItem: async (k) => {
      await store.removeItem(k);
    },
  };
}

/** localStorage when present and usable, else memory. */
export function defaultStorage(): StorageAdapter {
  try {
    const ls = (globalThis as { localStorage?: Storage }).localStorage;
    if (ls) {
      const probe = '__portcullis_probe__';
      ls.setItem(probe, '1');
      ls.removeItem(probe);
      return localStorageAdapter();
    }
  } catch {
    // Safari private mode, sandboxed iframes, ...
  }
  return memoryStorage();
}
