/**
 * The server's proof-of-work CAPTCHA (ALTCHA v1): find `number` in
 * `0..=maxnumber` with `hex(sha256(salt + number)) === challenge`, then send
 * base64 of the JSON `{algorithm, challenge, number, salt, signature}` as
 * the `captcha` field of `signIn`, `signUp` or `forgotPassword`.
 *
 * No dependency: SHA-256 is computed here synchronously (WebCrypto's digest
 * is one promise per attempt, far slower for a million short inputs). In a
 * browser the search runs in a Web Worker built from this code, so the page
 * stays responsive; elsewhere (Node, React Native) it runs in slices that
 * yield to the event loop.
 */
import type { CaptchaChallenge } from './types.js';

/** Options of {@link solveCaptcha}. */
export interface SolveCaptchaOptions {
  /** Stops the search: the promise rejects with an `AbortError`. */
  signal?: AbortSignal;
  /** `false` keeps the search on this thread even where Web Workers exist. */
  worker?: boolean;
}

/**
 * Searches `0..=max` for the number whose SHA-256 with `salt` is
 * `challenge` (hex), from `start`, for at most `count` numbers. Returns the
 * number, or -1. Self-contained: it is also the Web Worker's source.
 */
export function searchNumber(salt: string, challenge: string, start: number, count: number, max: number): number {
  const K = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
    0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
    0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
    0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
  ]);
  const target = new Uint32Array(8);
  for (let i = 0; i < 8; i++) target[i] = parseInt(challenge.slice(i * 8, i * 8 + 8), 16) >>> 0;
  const prefix = new TextEncoder().encode(salt);
  const W = new Uint32Array(64);
  const H = new Uint32Array(8);
  let buf = new Uint8Array(128);
  const end = Math.min(max, start + count - 1);
  for (let n = start; n <= end; n++) {
    const digits = String(n);
    const len = prefix.length + digits.length;
    const blocks = Math.ceil((len + 9) / 64);
    if (buf.length < blocks * 64) buf = new Uint8Array(blocks * 64);
    buf.fill(0);
    buf.set(prefix, 0);
    for (let i = 0; i < digits.length; i++) buf[prefix.length + i] = digits.charCodeAt(i);
    buf[len] = 0x80;
    const bits = len * 8;
    const last = blocks * 64;
    buf[last - 4] = (bits >>> 24) & 0xff;
    buf[last - 3] = (bits >>> 16) & 0xff;
    buf[last - 2] = (bits >>> 8) & 0xff;
    buf[last - 1] = bits & 0xff;
    H[0] = 0x6a09e667; H[1] = 0xbb67ae85; H[2] = 0x3c6ef372; H[3] = 0xa54ff53a;
    H[4] = 0x510e527f; H[5] = 0x9b05688c; H[6] = 0x1f83d9ab; H[7] = 0x5be0cd19;
    for (let b = 0; b < blocks; b++) {
      const o = b * 64;
      for (let i = 0; i < 16; i++) {
        const j = o + i * 4;
        W[i] = ((buf[j]! << 24) | (buf[j + 1]! << 16) | (buf[j + 2]! << 8) | buf[j + 3]!) >>> 0;
      }
      for (let i = 16; i < 64; i++) {
        const w15 = W[i - 15]!;
        const w2 = W[i - 2]!;
        const s0 = ((w15 >>> 7) | (w15 << 25)) ^ ((w15 >>> 18) | (w15 << 14)) ^ (w15 >>> 3);
        const s1 = ((w2 >>> 17) | (w2 << 15)) ^ ((w2 >>> 19) | (w2 << 13)) ^ (w2 >>> 10);
        W[i] = (W[i - 16]! + s0 + W[i - 7]! + s1) >>> 0;
      }
      let a: number = H[0]!, bb: number = H[1]!, c: number = H[2]!, d: number = H[3]!;
      let e: number = H[4]!, f: number = H[5]!, g: number = H[6]!, h: number = H[7]!;
      for (let i = 0; i < 64; i++) {
        const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
        const ch = (e & f) ^ (~e & g);
        const t1 = (h + S1 + ch + K[i]! + W[i]!) >>> 0;
        const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
        const maj = (a & bb) ^ (a & c) ^ (bb & c);
        const t2 = (S0 + maj) >>> 0;
        h = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = bb; bb = a; a = (t1 + t2) >>> 0;
      }
      H[0] = (H[0]! + a) >>> 0; H[1] = (H[1]! + bb) >>> 0; H[2] = (H[2]! + c) >>> 0; H[3] = (H[3]! + d) >>> 0;
      H[4] = (H[4]! + e) >>> 0; H[5] = (H[5]! + f) >>> 0; H[6] = (H[6]! + g) >>> 0; H[7] = (H[7]! + h) >>> 0;
    }
    if (H[0] === target[0] && H[1] === target[1] && H[2] === target[2] && H[3] === target[3] &&
        H[4] === target[4] && H[5] === target[5] && H[6] === target[6] && H[7] === target[7]) {
      return n;
    }
  }
  return -1;
}

/** The `captcha` field for a solved challenge: base64 of the solution JSON. */
export function encodeCaptchaSolution(challenge: CaptchaChallenge, number: number): string {
  const json = JSON.stringify({
    algorithm: challenge.algorithm,
    challenge: challenge.challenge,
    number,
    salt: challenge.salt,
    signature: challenge.signature,
  });
  const bytes = new TextEncoder().encode(json);
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

const SLICE = 20_000;

function abortError(): Error {
  const e = new Error('The CAPTCHA search was aborted.');
  e.name = 'AbortError';
  return e;
}

function workersAvailable(): boolean {
  return (
    typeof Worker !== 'undefined' &&
    typeof Blob !== 'undefined' &&
    typeof URL !== 'undefined' &&
    typeof URL.createObjectURL === 'function'
  );
}

function solveInWorker(c: CaptchaChallenge, signal?: AbortSignal): Promise<number> {
  const source =
    `const searchNumber = ${searchNumber.toString()};\n` +
    `onmessage = (e) => { const d = e.data; postMessage(searchNumber(d.salt, d.challenge, 0, d.max + 1, d.max)); };`;
  const url = URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
  const worker = new Worker(url);
  return new Promise<number>((resolve, reject) => {
    const done = () => {
      worker.terminate();
      URL.revokeObjectURL(url);
      signal?.removeEventListener('abort', onAbort);
    };
    const onAbort = () => {
      done();
      reject(abortError());
    };
    signal?.addEventListener('abort', onAbort);
    worker.onmessage = (e: MessageEvent<number>) => {
      done();
      resolve(e.data);
    };
    worker.onerror = (e) => {
      done();
      reject(new Error(`CAPTCHA worker failed: ${e.message}`));
    };
    worker.postMessage({ salt: c.salt, challenge: c.challenge, max: c.maxnumber });
  });
}

async function solveHere(c: CaptchaChallenge, signal?: AbortSignal): Promise<number> {
  for (let start = 0; start <= c.maxnumber; start += SLICE) {
    if (signal?.aborted) throw abortError();
    const n = searchNumber(c.salt, c.challenge, start, SLICE, c.maxnumber);
    if (n >= 0) return n;
    await new Promise((r) => setTimeout(r, 0));
  }
  return -1;
}

/**
 * Solves an ALTCHA v1 challenge from `GET /v1/captcha` and returns the
 * value of the `captcha` field. Rejects when the challenge has no solution
 * (not one of this server's) or is not SHA-256.
 */
export async function solveCaptcha(challenge: CaptchaChallenge, options: SolveCaptchaOptions = {}): Promise<string> {
  if (challenge.algorithm.toUpperCase() !== 'SHA-256') {
    throw new Error(`unsupported CAPTCHA algorithm ${challenge.algorithm}`);
  }
  if (!/^[0-9a-f]{64}$/i.test(challenge.challenge)) throw new Error('malformed CAPTCHA challenge');
  if (options.signal?.aborted) throw abortError();
  const useWorker = options.worker !== false && workersAvailable();
  const number = useWorker ? await solveInWorker(challenge, options.signal) : await solveHere(challenge, options.signal);
  if (number < 0) throw new Error('the CAPTCHA challenge has no solution');
  return encodeCaptchaSolution(challenge, number);
}
