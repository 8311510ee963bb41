// A software passkey authenticator for Node (which has no
// navigator.credentials): ES256 keys from WebCrypto, `none` attestation,
// user presence and verification flags set, resident credentials, the
// WebAuthn JSON forms the client sends. Only for the live-server tests:
// the server (webauthn-rs) checks everything a browser's credential would
// be checked for (challenge, origin, RP id hash, signature, counter).
import { createHash, webcrypto } from 'node:crypto';

const subtle = webcrypto.subtle;
const b64u = (buf) => Buffer.from(buf).toString('base64url');
const sha256 = (data) => createHash('sha256').update(data).digest();

// Minimal CBOR (RFC 8949) encoder: unsigned/negative ints, byte and text strings, maps.
function head(major, n) {
  if (n < 24) return Buffer.from([(major << 5) | n]);
  if (n < 256) return Buffer.from([(major << 5) | 24, n]);
  if (n < 65536) return Buffer.from([(major << 5) | 25, n >> 8, n & 255]);
  const b = Buffer.alloc(5);
  b[0] = (major << 5) | 26;
  b.writeUInt32BE(n, 1);
  return b;
}
function cbor(v) {
  if (typeof v === 'number') return v >= 0 ? head(0, v) : head(1, -1 - v);
  if (typeof v === 'string') return Buffer.concat([head(3, Buffer.byteLength(v)), Buffer.from(v)]);
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return Buffer.concat([head(2, v.length), Buffer.from(v)]);
  if (v instanceof Map) return Buffer.concat([head(5, v.size), ...[...v].flatMap(([k, x]) => [cbor(k), cbor(x)])]);
  throw new Error(`cbor: unsupported ${typeof v}`);
}

/** Raw r||s (WebCrypto) -> DER ECDSA signature (WebAuthn's form). */
function der(raw) {
  const int = (b) => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    b = b.subarray(i);
    return b[0] & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b;
  };
  const r = int(Buffer.from(raw.subarray(0, 32)));
  const s = int(Buffer.from(raw.subarray(32)));
  return Buffer.concat([Buffer.from([0x30, 4 + r.length + s.length, 2, r.length]), r, Buffer.from([2, s.length]), s]);
}

/** `navigator.credentials` for pages at `origin`. */
export function softAuthenticator(origin) {
  const creds = new Map(); // id (b64u) -> { key, rpId, userHandle, count }
  const clientData = (type, challenge) =>
    Buffer.from(JSON.stringify({ type, challenge: b64u(challenge), origin, crossOrigin: false }));
  return {
    credentials: {
      async create({ publicKey: o }) {
        const rpId = o.rp.id ?? new URL(origin).hostname;
        const key = await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
        const jwk = await subtle.exportKey('jwk', key.publicKey);
        const id = webcrypto.getRandomValues(new Uint8Array(16));
        const cose = cbor(new Map([[1, 2], [3, -7], [-1, 1], [-2, Buffer.from(jwk.x, 'base64url')], [-3, Buffer.from(jwk.y, 'base64url')]]));
        const authData = Buffer.concat([
          sha256(rpId),
          Buffer.from([0x45]), // UP | UV | AT
          Buffer.alloc(4),
          Buffer.alloc(16), // AAGUID
          Buffer.from([0, id.length]),
          Buffer.from(id),
          cose,
        ]);
        creds.set(b64u(id), { key, rpId, userHandle: Buffer.from(o.user.id), count: 0 });
        const json = {
          id: b64u(id),
          rawId: b64u(id),
          type: 'public-key',
          response: {
            clientDataJSON: b64u(clientData('webauthn.create', o.challenge)),
            attestationObject: b64u(cbor(new Map([['fmt', 'none'], ['attStmt', new Map()], ['authData', authData]]))),
            transports: ['internal'],
          },
          clientExtensionResults: {},
          authenticatorAttachment: 'platform',
        };
        return { id: json.id, toJSON: () => json };
      },
      async get({ publicKey: o }) {
        const allowed = (o.allowCredentials ?? []).map((d) => b64u(d.id));
        const rpId = o.rpId ?? new URL(origin).hostname;
        const pick = [...creds].find(([id, c]) => c.rpId === rpId && (allowed.length === 0 || allowed.includes(id)));
        if (!pick) throw Object.assign(new Error('no credential for this request'), { name: 'NotAllowedError' });
        const [id, c] = pick;
        c.count++;
        const count = Buffer.alloc(4);
        count.writeUInt32BE(c.count);
        const authData = Buffer.concat([sha256(rpId), Buffer.from([0x05]), count]); // UP | UV
        const cd = clientData('webauthn.get', o.challenge);
        const sig = new Uint8Array(await subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, c.key.privateKey, Buffer.concat([authData, sha256(cd)])));
        const json = {
          id,
          rawId: id,
          type: 'public-key',
          response: {
            clientDataJSON: b64u(cd),
            authenticatorData: b64u(authData),
            signature: b64u(der(sig)),
            userHandle: b64u(c.userHandle),
          },
          clientExtensionResults: {},
          authenticatorAttachment: 'platform',
        };
        return { id, toJSON: () => json };
      },
    },
  };
}
