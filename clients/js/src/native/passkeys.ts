/**
 * Passkeys in React Native through a native module (e.g.
 * `react-native-passkey`, `react-native-passkeys`, or your own Credential
 * Manager / ASAuthorization bridge) instead of `navigator.credentials`.
 *
 * Portcullis sends WebAuthn options in their JSON form (binary fields
 * base64url) and takes the credential back in the same form; native
 * modules speak that form too. The adapter unwraps the options, hands them
 * to the module, and normalises the answer: base64 (with `+/=`) becomes
 * base64url, `rawId` and `type` are filled in, unknown fields are kept.
 */

import type { PasskeyAdapter } from '../passkeys.js';

export type { PasskeyAdapter };

type Json = Record<string, unknown>;

/** A native module's two calls, WebAuthn JSON in and out. */
export interface NativePasskeyModule {
  /** Registration: `PublicKeyCredentialCreationOptionsJSON` -> `RegistrationResponseJSON`. */
  create(options: Json): Promise<Json>;
  /** Sign-in: `PublicKeyCredentialRequestOptionsJSON` -> `AuthenticationResponseJSON`. */
  get(options: Json): Promise<Json>;
}

/** webauthn-rs wraps options as `{publicKey: {...}}`; the native modules want the inner object. */
function unwrap(options: Json): Json {
  const inner = options['publicKey'];
  return inner && typeof inner === 'object' ? (inner as Json) : options;
}

/** base64 or base64url (padded or not) -> unpadded base64url; other values unchanged. */
export function toBase64url(v: unknown): unknown {
  return typeof v === 'string' ? v.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '') : v;
}

const RESPONSE_BINARY = ['clientDataJSON', 'attestationObject', 'authenticatorData', 'signature', 'userHandle', 'publicKey'];

/** A module's answer in the exact JSON form the server reads. */
export function normaliseCredential(cred: Json): Json {
  if (!cred || typeof cred !== 'object') throw new TypeError('the passkey module returned no credential');
  const response = { ...((cred['response'] ?? {}) as Json) };
  for (const k of RESPONSE_BINARY) if (k in response && response[k] !== null) response[k] = toBase64url(response[k]);
  const id = toBase64url(cred['id'] ?? cred['rawId']);
  if (typeof id !== 'string' || !id) throw new TypeError('the passkey module returned a credential without id');
  return {
    ...cred,
    id,
    rawId: toBase64url(cred['rawId'] ?? id),
    type: cred['type'] ?? 'public-key',
    response,
    clientExtensionResults: cred['clientExtensionResults'] ?? {},
  };
}

function abortError(): Error {
  const e = new Error('The operation was aborted.');
  e.name = 'AbortError';
  return e;
}

/** Runs `p`, rejecting early when `signal` aborts (the native sheet may stay up; its answer is dropped). */
function withSignal<T>(p: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p();
  if (signal.aborted) return Promise.reject(abortError());
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortError());
    signal.addEventListener('abort', onAbort, { once: true });
    p().then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/**
 * A {@link PasskeyAdapter} over a native module:
 *
 * ```ts
 * import { Passkey } from 'react-native-passkey';
 * createClient({ url, passkeys: nativePasskeys({ create: (o) => Passkey.create(o), get: (o) => Passkey.get(o) }) });
 * ```
 */
export function nativePasskeys(module: NativePasskeyModule): PasskeyAdapter {
  return {
    create: (publicKey, opts = {}) =>
      withSignal(async () => normaliseCredential(await module.create(unwrap(publicKey))), opts.signal),
    // `mediation` (conditional UI) is a browser notion: native sheets ignore it.
    get: (publicKey, opts = {}) =>
      withSignal(async () => normaliseCredential(await module.get(unwrap(publicKey))), opts.signal),
  };
}

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** Bytes -> unpadded base64url, without `btoa` (not in every JavaScript engine). */
function bytesToBase64url(b: Uint8Array): string {
  let out = '';
  for (let i = 0; i < b.length; i += 3) {
    const n = (b[i]! << 16) | ((b[i + 1] ?? 0) << 8) | (b[i + 2] ?? 0);
    out += B64URL[(n >> 18) & 63]! + B64URL[(n >> 12) & 63]!;
    if (i + 1 < b.length) out += B64URL[(n >> 6) & 63]!;
    if (i + 2 < b.length) out += B64URL[n & 63]!;
  }
  return out;
}

/** WebAuthn options as a browser takes them (ArrayBuffers) -> their JSON form. */
export function toJsonForm(v: unknown): unknown {
  if (v instanceof ArrayBuffer) return bytesToBase64url(new Uint8Array(v));
  if (ArrayBuffer.isView(v)) return bytesToBase64url(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  if (Array.isArray(v)) return v.map(toJsonForm);
  if (v && typeof v === 'object') {
    const out: Json = {};
    for (const [k, x] of Object.entries(v as Json)) if (x !== undefined) out[k] = toJsonForm(x);
    return out;
  }
  return v;
}

interface CredentialRequest {
  publicKey?: unknown;
  signal?: AbortSignal;
  mediation?: CredentialMediationRequirement;
}

/**
 * Makes the client's passkey calls (`registerPasskey`, `signInWithPasskey`,
 * the passkey second factor, `reauthenticate({passkey: true})`) go through
 * a native module: installs a `navigator.credentials` whose `create`/`get`
 * hand the options to the module in their JSON form and return its answer
 * (which the client sends as is). Only where there is no
 * `navigator.credentials` (React Native), unless `force`. Returns the
 * function that uninstalls it.
 *
 * ```ts
 * import { Passkey } from 'react-native-passkey';
 * installNativePasskeys({ create: (o) => Passkey.create(o), get: (o) => Passkey.get(o) });
 * ```
 */
export function installNativePasskeys(module: NativePasskeyModule, opts: { force?: boolean } = {}): () => void {
  const adapter = nativePasskeys(module);
  const g = globalThis as { navigator?: { credentials?: unknown } };
  const nav = g.navigator ?? {};
  if (nav.credentials && !opts.force) {
    throw new Error('installNativePasskeys: navigator.credentials exists already (pass {force: true} to replace it)');
  }
  const asCredential = (json: Json) => ({ ...json, toJSON: () => json });
  const container = {
    async create(req: CredentialRequest = {}) {
      const json = await adapter.create(toJsonForm(req.publicKey ?? {}) as Json, req.signal ? { signal: req.signal } : {});
      return asCredential(json);
    },
    async get(req: CredentialRequest = {}) {
      const json = await adapter.get(toJsonForm(req.publicKey ?? {}) as Json, {
        ...(req.signal ? { signal: req.signal } : {}),
        ...(req.mediation ? { mediation: req.mediation } : {}),
      });
      return asCredential(json);
    },
  };
  const hadNavigator = !!g.navigator;
  const previous = Object.getOwnPropertyDescriptor(nav, 'credentials');
  Object.defineProperty(nav, 'credentials', { value: container, configurable: true, writable: true });
  if (!hadNavigator) g.navigator = nav;
  return () => {
    if (previous) Object.defineProperty(nav, 'credentials', previous);
    else delete (nav as { credentials?: unknown }).credentials;
    if (!hadNavigator) delete g.navigator;
  };
}
