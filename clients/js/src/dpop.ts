/**
 * DPoP (RFC 9449): the client's key, its proofs, and the server nonce.
 *
 * With `dpop: true` the client holds one ES256 key pair per session key
 * (`storageKey`) and signs a proof for every request that needs one: the
 * token-issuing calls (sign-in, second factor, passkey, refresh) bind the
 * session to the key, and every call with the bound access token
 * (`Authorization: DPoP <token>`) carries a proof with `ath`.
 *
 * - Browsers: the private key is a non-extractable WebCrypto key, kept in
 *   IndexedDB (structured clone keeps it non-extractable), so it survives
 *   reloads and every tab of the origin uses the same key: the first tab to
 *   need one creates it with an `add` that fails if another tab was faster,
 *   and then reads the winner's. Script in the page can use the key but
 *   never read it: a token copied out of the page is useless elsewhere.
 * - React Native and other runtimes: pass your own `DpopSigner` (a key in the
 *   Keychain / Android Keystore behind a native module); without IndexedDB
 *   and without a signer the key lives in memory (one per client).
 */

/** A DPoP key: its public JWK and a signer of JWS signing inputs. */
export interface DpopKey {
  /** JOSE algorithm: `ES256` (P-256) or `EdDSA` (Ed25519). */
  alg: 'ES256' | 'EdDSA';
  /** The public key as a JWK (`kty`, `crv`, `x`, `y` for P-256). No private members. */
  publicJwk: Record<string, string>;
  /** Signs the JWS signing input; returns the raw JWS signature (r‖s for ES256). */
  sign(input: Uint8Array): Promise<Uint8Array>;
}

/** Where the key lives. `key()` loads it, creating it once if absent. */
export interface DpopSigner {
  key(): Promise<DpopKey>;
  /** Forgets the key (sign-out): the next session gets a new one. */
  reset?(): Promise<void>;
}

const enc = new TextEncoder();

function b64url(bytes: Uint8Array): string {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function subtle(): SubtleCrypto {
  const s = (globalThis as { crypto?: Crypto }).crypto?.subtle;
  if (!s) throw new Error('portcullis: DPoP needs WebCrypto (crypto.subtle) or a custom dpop.signer');
  return s;
}

async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await subtle().digest('SHA-256', enc.encode(text)));
}

/** RFC 7638 thumbprint (SHA-256, base64url) of a public EC or OKP JWK. */
export async function jwkThumbprint(jwk: Record<string, string>): Promise<string> {
  const canonical =
    jwk['kty'] === 'EC'
      ? `{"crv":"${jwk['crv']}","kty":"EC","x":"${jwk['x']}","y":"${jwk['y']}"}`
      : `{"crv":"${jwk['crv']}","kty":"${jwk['kty']}","x":"${jwk['x']}"}`;
  return b64url(await sha256(canonical));
}

/** `ath`: base64url SHA-256 of the access token. */
export async function accessTokenHash(token: string): Promise<string> {
  return b64url(await sha256(token));
}

async function webCryptoKey(pair: CryptoKeyPair): Promise<DpopKey> {
  const jwk = (await subtle().exportKey('jwk', pair.publicKey)) as JsonWebKey;
  const publicJwk = { kty: 'EC', crv: 'P-256', x: jwk.x ?? '', y: jwk.y ?? '' };
  return {
    alg: 'ES256',
    publicJwk,
    async sign(input: Uint8Array) {
      const sig = await subtle().sign({ name: 'ECDSA', hash: 'SHA-256' }, pair.privateKey, input as BufferSource);
      return new Uint8Array(sig);
    },
  };
}

function generatePair(): Promise<CryptoKeyPair> {
  // extractable: false — the private key can sign, never be exported.
  return subtle().generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']) as Promise<CryptoKeyPair>;
}

/** A key in memory (runtimes without IndexedDB; lost with the process). */
export function memoryDpopSigner(): DpopSigner {
  let pair: Promise<CryptoKeyPair> | null = null;
  return {
    async key() {
      pair ??= generatePair();
      return webCryptoKey(await pair);
    },
    async reset() {
      pair = null;
    },
  };
}

const DB_NAME = 'portcullis-dpop';
const STORE = 'keys';

function idb(): IDBFactory | undefined {
  return (globalThis as { indexedDB?: IDBFactory }).indexedDB;
}

function openDb(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = idb()!.open(DB_NAME, 1);
    req.onupgradeneeded = () => {
      if (!req.result.objectStoreNames.contains(STORE)) req.result.createObjectStore(STORE);
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function tx<T>(db: IDBDatabase, mode: IDBTransactionMode, run: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = db.transaction(STORE, mode);
    const req = run(t.objectStore(STORE));
    let result: T;
    req.onsuccess = () => {
      result = req.result;
    };
    t.oncomplete = () => resolve(result);
    t.onerror = () => reject(req.error ?? t.error);
    t.onabort = () => reject(req.error ?? t.error);
  });
}

/**
 * The browser's key store: a non-extractable ES256 key pair in IndexedDB
 * (database `portcullis-dpop`, one entry per `name`), shared by every tab.
 */
export function indexedDbDpopSigner(name: string): DpopSigner {
  return {
    async key() {
      const db = await openDb();
      try {
        const found = await tx<CryptoKeyPair | undefined>(db, 'readonly', (s) => s.get(name));
        if (found?.privateKey) return webCryptoKey(found);
        const pair = await generatePair();
        try {
          await tx(db, 'readwrite', (s) => s.add(pair, name));
          return webCryptoKey(pair);
        } catch {
          // Another tab added its key first: everyone uses that one.
          const winner = await tx<CryptoKeyPair | undefined>(db, 'readonly', (s) => s.get(name));
          if (!winner?.privateKey) throw new Error('portcullis: DPoP key store failed');
          return webCryptoKey(winner);
        }
      } finally {
        db.close();
      }
    },
    async reset() {
      const db = await openDb();
      try {
        await tx(db, 'readwrite', (s) => s.delete(name));
      } finally {
        db.close();
      }
    },
  };
}

/** The default signer: IndexedDB where there is one, else memory. */
export function defaultDpopSigner(name: string): DpopSigner {
  return idb() ? indexedDbDpopSigner(name) : memoryDpopSigner();
}

/** Whether a request to Portcullis issues tokens (and so binds them). */
export function issuesTokens(method: string, path: string): boolean {
  if (method.toUpperCase() !== 'POST') return false;
  if (path === '/oauth/token' || path === '/v1/sessions') return true;
  return path.startsWith('/v1/sessions/') && !path.endsWith('/options') && path !== '/v1/sessions/email';
}

/**
 * Proofs for one client: the key (cached, reloaded when a token names
 * another one), and the last server nonce per origin.
 */
export class DpopProofs {
  private cached: Promise<{ key: DpopKey; jkt: string }> | null = null;
  private readonly nonces = new Map<string, string>();

  constructor(private readonly signer: DpopSigner) {}

  private load(fresh: boolean): Promise<{ key: DpopKey; jkt: string }> {
    if (fresh || !this.cached) {
      const p = this.signer.key().then(async (key) => ({ key, jkt: await jwkThumbprint(key.publicJwk) }));
      this.cached = p;
      p.catch(() => {
        if (this.cached === p) this.cached = null;
      });
    }
    return this.cached;
  }

  /** The thumbprint of the current key (creating it if needed). */
  async thumbprint(): Promise<string> {
    return (await this.load(false)).jkt;
  }

  /**
   * Signs a proof for `method` `url` (query and fragment dropped), with
   * `ath` of `accessToken` and the origin's last nonce. `expectJkt`: the key
   * the token is bound to; another cached key is reloaded (another tab
   * signed in with a new key).
   */
  async proof(method: string, url: string, accessToken?: string, expectJkt?: string, fresh = false): Promise<string> {
    let k = await this.load(fresh);
    if (expectJkt && k.jkt !== expectJkt) k = await this.load(true);
    const u = new URL(url);
    const header = { typ: 'dpop+jwt', alg: k.key.alg, jwk: k.key.publicJwk };
    const payload: Record<string, unknown> = {
      jti: randomJti(),
      htm: method.toUpperCase(),
      htu: `${u.origin}${u.pathname}`,
      iat: Math.floor(Date.now() / 1000),
    };
    if (accessToken) payload['ath'] = await accessTokenHash(accessToken);
    const nonce = this.nonces.get(u.origin);
    if (nonce) payload['nonce'] = nonce;
    const input = `${b64url(enc.encode(JSON.stringify(header)))}.${b64url(enc.encode(JSON.stringify(payload)))}`;
    const sig = await k.key.sign(enc.encode(input));
    return `${input}.${b64url(sig)}`;
  }

  /** Keeps the `DPoP-Nonce` of a response for the next proof to its origin. */
  remember(url: string, res: Response): void {
    const n = res.headers.get('dpop-nonce');
    if (n) this.nonces.set(new URL(url).origin, n);
  }

  /** Whether `res` asks for a proof with the server nonce (RFC 9449 §8, §9). */
  async isNonceChallenge(res: Response): Promise<boolean> {
    if (!res.headers.get('dpop-nonce')) return false;
    if (res.status === 401) return /use_dpop_nonce/.test(res.headers.get('www-authenticate') ?? '');
    if (res.status === 400) {
      try {
        const body = (await res.clone().json()) as { error?: string };
        return body?.error === 'use_dpop_nonce';
      } catch {
        return false;
      }
    }
    return false;
  }

  /** Forgets the key (sign-out). */
  async reset(): Promise<void> {
    this.cached = null;
    await this.signer.reset?.();
  }
}

/** The key a token is bound to (`cnf.jkt`), read without verification. */
export function boundJkt(token: string): string | undefined {
  try {
    const part = token.split('.')[1] ?? '';
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (part.length % 4)) % 4));
    const jkt = (JSON.parse(json) as { cnf?: { jkt?: unknown } }).cnf?.jkt;
    return typeof jkt === 'string' ? jkt : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Sends `req` with a proof when it needs one (it issues tokens at
 * Portcullis `base`, or carries `Authorization: DPoP`), keeps the server's
 * nonce, and retries once on `use_dpop_nonce` with a new proof.
 */
export async function sendWithProof(
  dpop: DpopProofs,
  base: string,
  req: Request,
  sendOnce: (r: Request) => Promise<Response>,
): Promise<Response> {
  const auth = req.headers.get('authorization') ?? '';
  const token = /^DPoP /i.test(auth) ? auth.slice(5).trim() : undefined;
  const url = new URL(req.url);
  const issuing = url.origin === new URL(base).origin && issuesTokens(req.method, url.pathname);
  if (!token && !issuing) return sendOnce(req);
  const jkt = token ? boundJkt(token) : undefined;
  const retry = req.clone();
  const sign = async (r: Request) => {
    r.headers.set('dpop', await dpop.proof(r.method, r.url, token, jkt, issuing));
    return r;
  };
  const res = await sendOnce(await sign(req));
  dpop.remember(req.url, res);
  if (!(await dpop.isNonceChallenge(res))) return res;
  await res.body?.cancel().catch(() => undefined);
  const again = await sendOnce(await sign(retry));
  dpop.remember(req.url, again);
  return again;
}

function randomJti(): string {
  const c = (globalThis as { crypto?: Crypto }).crypto;
  if (c?.randomUUID) return c.randomUUID();
  const bytes = new Uint8Array(16);
  c?.getRandomValues(bytes);
  return b64url(bytes);
}
