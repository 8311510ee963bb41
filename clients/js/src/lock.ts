/**
 * The refresh lock: one refresh at a time per session, within a tab (a
 * promise) and across tabs (Web Locks). Acquisition waits at most
 * `timeoutMs`; then the lock is stolen, so that a frozen or hung tab holding
 * it cannot block the others for longer than that. A holder whose lock was
 * stolen learns it through `lease.lost` and must not write its result over
 * newer state.
 */
export interface Lease {
  /** True once another holder stole the lock from this one. */
  readonly lost: boolean;
  /** True when the lock was obtained by stealing it. */
  readonly stolen: boolean;
}

export interface RefreshLock {
  /** Runs `fn` holding the lock named `name`. */
  run<T>(name: string, timeoutMs: number, fn: (lease: Lease) => Promise<T>): Promise<T>;
  readonly kind: string;
}

interface MutableLease {
  lost: boolean;
  stolen: boolean;
}

/**
 * The wait before stealing, with up to 25 % random extra: several tabs that
 * queued behind one frozen holder then do not all steal in the same
 * instant (the first thief usually finishes before the next one's wait ends).
 */
function jittered(timeoutMs: number): number {
  return Math.round(timeoutMs * (1 + Math.random() * 0.25));
}

// ---------------------------------------------------------------- in-process

interface Waiter {
  grant: (lease: MutableLease) => void;
}
interface NamedLock {
  holder: MutableLease | null;
  queue: Waiter[];
}
const processLocks = new Map<string, NamedLock>();

/**
 * A lock shared by every client in this JavaScript realm (one tab, one Node
 * process): the fallback where Web Locks are missing (Node, React Native,
 * old browsers).
 */
export function processLock(): RefreshLock {
  return {
    kind: 'process',
    async run<T>(name: string, timeoutMs: number, fn: (lease: Lease) => Promise<T>): Promise<T> {
      let lock = processLocks.get(name);
      if (!lock) {
        lock = { holder: null, queue: [] };
        processLocks.set(name, lock);
      }
      const l = lock;
      const lease: MutableLease = await new Promise<MutableLease>((resolve) => {
        if (!l.holder) {
          const mine = { lost: false, stolen: false };
          l.holder = mine;
          resolve(mine);
          return;
        }
        const waiter: Waiter = {
          grant: (granted) => {
            clearTimeout(timer);
            resolve(granted);
          },
        };
        const timer = setTimeout(() => {
          // Steal: the current holder loses the lock; we hold it at once.
          const i = l.queue.indexOf(waiter);
          if (i >= 0) l.queue.splice(i, 1);
          if (l.holder) l.holder.lost = true;
          const mine = { lost: false, stolen: true };
          l.holder = mine;
          resolve(mine);
        }, jittered(timeoutMs));
        l.queue.push(waiter);
      });
      try {
        return await fn(lease);
      } finally {
        if (l.holder === lease) {
          const next = l.queue.shift();
          if (next) {
            const granted = { lost: false, stolen: false };
            l.holder = granted;
            next.grant(granted);
          } else {
            l.holder = null;
            processLocks.delete(name);
          }
        }
      }
    },
  };
}

// ---------------------------------------------------------------- Web Locks

interface WebLockManager {
  request<T>(
    name: string,
    options: { mode?: 'exclusive' | 'shared'; signal?: AbortSignal; steal?: boolean; ifAvailable?: boolean },
    cb: (lock: unknown) => Promise<T>,
  ): Promise<T>;
}

export function webLocksAvailable(): boolean {
  const nav = (globalThis as { navigator?: { locks?: WebLockManager } }).navigator;
  return !!nav?.locks && typeof nav.locks.request === 'function';
}

/** Web Locks (`navigator.locks`): shared by every tab and worker of the origin. */
export function webLock(): RefreshLock {
  const locks = (globalThis as unknown as { navigator: { locks: WebLockManager } }).navigator.locks;
  return {
    kind: 'web-locks',
    run<T>(name: string, timeoutMs: number, fn: (lease: Lease) => Promise<T>): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        const lease: MutableLease = { lost: false, stolen: false };
        let started = false;
        let settled = false;
        const finish = (p: Promise<T>) => {
          p.then(
            (v) => {
              if (!settled) {
                settled = true;
                resolve(v);
              }
            },
            (e) => {
              if (!settled) {
                settled = true;
                reject(e);
              }
            },
          );
        };
        const body = () => {
          started = true;
          const p = fn(lease);
          finish(p);
          // The lock is held until `fn` settles (whether or not it was stolen).
          return p.then(
            () => undefined,
            () => undefined,
          );
        };
        const ctrl = typeof AbortController !== 'undefined' ? new AbortController() : undefined;
        const timer = setTimeout(() => ctrl?.abort(), jittered(timeoutMs));
        locks
          .request(name, { mode: 'exclusive', ...(ctrl ? { signal: ctrl.signal } : {}) }, () => {
            clearTimeout(timer);
            return body();
          })
          .catch((e: unknown) => {
            clearTimeout(timer);
            if (started) {
              // Our held lock was stolen by another tab; `fn` goes on and
              // settles the promise itself.
              lease.lost = true;
              return;
            }
            if (ctrl?.signal.aborted) {
              lease.stolen = true;
              locks
                .request(name, { steal: true }, () => body())
                .catch(() => {
                  if (started) lease.lost = true;
                  else if (!settled) {
                    settled = true;
                    reject(e);
                  }
                });
              return;
            }
            if (!settled) {
              settled = true;
              reject(e);
            }
          });
      });
    },
  };
}

/** Web Locks where present, else the in-process lock. */
export function defaultLock(): RefreshLock {
  return webLocksAvailable() ? webLock() : processLock();
}
