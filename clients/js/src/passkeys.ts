/**
 * WebAuthn JSON <-> browser objects. The server sends options in their JSON
 * form (binary fields base64url-encoded) and expects the credential back in
 * the same form (`PublicKeyCredential.toJSON()`).
 */

export function base64urlToBuffer(s: string): ArrayBuffer {
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4);
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out.buffer;
}

export function bufferToBase64url(buf: ArrayBuffer | ArrayBufferView): string {
  const bytes = buf instanceof ArrayBuffer ? new Uint8Array(buf) : new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  let bin = '';
  for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]!);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

type Json = Record<string, unknown>;

/** webauthn-rs wraps options as `{publicKey: {...}}`; accept both shapes. */
function unwrap(options: Json): Json {
  const inner = options['publicKey'];
  return inner && typeof inner === 'object' ? (inner as Json) : options;
}

function decodeDescriptors(list: unknown): unknown {
  if (!Array.isArray(list)) return list;
  return list.map((d: Json) => ({ ...d, id: typeof d['id'] === 'string' ? base64urlToBuffer(d['id']) : d['id'] }));
}

/** JSON creation options -> `PublicKeyCredentialCreationOptions`. */
export function decodeCreationOptions(options: Json): PublicKeyCredentialCreationOptions {
  const o = unwrap(options);
  const user = (o['user'] ?? {}) as Json;
  return {
    ...o,
    challenge: base64urlToBuffer(String(o['challenge'])),
    user: { ...user, id: base64urlToBuffer(String(user['id'])) },
    excludeCredentials: decodeDescriptors(o['excludeCredentials']),
  } as unknown as PublicKeyCredentialCreationOptions;
}

/** JSON request options -> `PublicKeyCredentialRequestOptions`. */
export function decodeRequestOptions(options: Json): PublicKeyCredentialRequestOptions {
  const o = unwrap(options);
  return {
    ...o,
    challenge: base64urlToBuffer(String(o['challenge'])),
    allowCredentials: decodeDescriptors(o['allowCredentials']),
  } as unknown as PublicKeyCredentialRequestOptions;
}

/** A `PublicKeyCredential` -> its JSON form. */
export function encodeCredential(cred: PublicKeyCredential): Json {
  const withJson = cred as PublicKeyCredential & { toJSON?: () => Json };
  if (typeof withJson.toJSON === 'function') return withJson.toJSON();
  const r = cred.response as AuthenticatorResponse & {
    attestationObject?: ArrayBuffer;
    authenticatorData?: ArrayBuffer;
    signature?: ArrayBuffer;
    userHandle?: ArrayBuffer | null;
    getTransports?: () => string[];
  };
  const response: Json = { clientDataJSON: bufferToBase64url(r.clientDataJSON) };
  if (r.attestationObject) {
    response['attestationObject'] = bufferToBase64url(r.attestationObject);
    if (typeof r.getTransports === 'function') response['transports'] = r.getTransports();
  }
  if (r.authenticatorData) response['authenticatorData'] = bufferToBase64url(r.authenticatorData);
  if (r.signature) response['signature'] = bufferToBase64url(r.signature);
  if (r.userHandle) response['userHandle'] = bufferToBase64url(r.userHandle);
  return {
    id: cred.id,
    rawId: bufferToBase64url(cred.rawId),
    type: cred.type,
    response,
    clientExtensionResults: cred.getClientExtensionResults?.() ?? {},
    authenticatorAttachment: (cred as { authenticatorAttachment?: string | null }).authenticatorAttachment ?? null,
  };
}

function credentials(): CredentialsContainer {
  const c = (globalThis as { navigator?: { credentials?: CredentialsContainer } }).navigator?.credentials;
  if (!c) throw new Error('passkeys need navigator.credentials (a browser with WebAuthn, over HTTPS or localhost)');
  return c;
}

export async function createPasskeyCredential(options: Json, signal?: AbortSignal): Promise<Json> {
  const cred = (await credentials().create({
    publicKey: decodeCreationOptions(options),
    ...(signal ? { signal } : {}),
  })) as PublicKeyCredential | null;
  if (!cred) throw new Error('no passkey was created');
  return encodeCredential(cred);
}

export async function getPasskeyCredential(
  options: Json,
  opts: { signal?: AbortSignal; mediation?: CredentialMediationRequirement } = {},
): Promise<Json> {
  const cred = (await credentials().get({
    publicKey: decodeRequestOptions(options),
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.mediation ? { mediation: opts.mediation } : {}),
  })) as PublicKeyCredential | null;
  if (!cred) throw new Error('no passkey was chosen');
  return encodeCredential(cred);
}

/**
 * What the client's passkey calls (`registerPasskey`, `signInWithPasskey`,
 * the passkey second factor, `reauthenticate({passkey})`) use to talk to an
 * authenticator: the server's options in (WebAuthn JSON form, base64url
 * buffers), the credential's JSON form out. The default is the browser's
 * `navigator.credentials`; React Native passes `nativePasskeys(module)`
 * from `@portcullis/client/native` as the `passkeys` option.
 */
export interface PasskeyAdapter {
  create(publicKey: Json, opts?: { signal?: AbortSignal }): Promise<Json>;
  get(publicKey: Json, opts?: { signal?: AbortSignal; mediation?: CredentialMediationRequirement }): Promise<Json>;
}

/** The default {@link PasskeyAdapter}: `navigator.credentials`. */
export const browserPasskeys: PasskeyAdapter = {
  create: (publicKey, opts = {}) => createPasskeyCredential(publicKey, opts.signal),
  get: (publicKey, opts = {}) => getPasskeyCredential(publicKey, opts),
};
