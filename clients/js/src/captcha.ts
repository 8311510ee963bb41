/**
 * The server's proof-of-work CAPTCHA (ALTCHA v1): find `number` in
 * `0..=maxnumber` with `hex(sha256(salt + number)) === challenge`, then send
 * base64 of the JSON `{algorithm, challenge, number, salt, signature}` as
 * the `captcha` field of `signIn`, `signUp` or `forgotPassword`.
 *
 * No dependency: SHA-256 is the platform's WebCrypto digest, as in ALTCHA's
 * own widget. In a browser the search runs in a Web Worker built from this
 * code, so the page stays responsive; elsewhere (Node, React Native with a
 * WebCrypto polyfill) it runs in slices that yield to the event loop.
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
 * number, or -1. SHA-256 is the platform's (WebCrypto `crypto.subtle`, in
 * browsers, workers, Node ≥ 18; React Native needs a WebCrypto polyfill).
 * Self-contained: it is also the Web Worker's source.
 */
export async function searchNumber(
  salt: string,
  challenge: string,
  start: number,
  count: number,
  max: number,
): Promise<number> {
  const want = challenge.toLowerCase();
  const encoder = new TextEncoder();
  const end = Math.min(max, start + count - 1);
  for (let n = start; n <= end; n++) {
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', encoder.encode(salt + n)));
    let hex = '';
    for (const b of digest) hex += (b < 16 ? '0' : '') + b.toString(16);
    if (hex === want) return n;
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
    `onmessage = async (e) => { const d = e.data; postMessage(await searchNumber(d.salt, d.challenge, 0, d.max + 1, d.max)); };`;
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
    const n = await searchNumber(c.salt, c.challenge, start, SLICE, c.maxnumber);
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
