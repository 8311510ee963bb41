import { createHmac } from 'node:crypto';
// Shared helpers of the end-to-end tests: a real Portcullis binary on a free
// loopback port (fresh data and keys), the example's static server, metrics.
import { spawn, execFileSync } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, readFileSync, openSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const pkgRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const repoRoot = join(pkgRoot, '..', '..');
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitFor(url, child, what, ms = 20_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}`);
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (r.ok) return;
    } catch {}
    await sleep(100);
  }
  throw new Error(`${what} did not answer ${url} within ${ms} ms`);
}

/**
 * Starts Portcullis. `env` adds settings (e.g. PORTCULLIS_CORS_ORIGINS); a
 * function gets the port. `opts.admin: {email, password}` creates an
 * administrator (`portcullis admin create`) before the server starts.
 */
export async function startPortcullis(env = {}, opts = {}) {
  const bin = process.env.PORTCULLIS_BIN || join(repoRoot, 'target', 'debug', 'portcullis');
  try {
    accessSync(bin, constants.X_OK);
  } catch {
    throw new Error(`no portcullis binary at ${bin} (build it, or set PORTCULLIS_BIN)`);
  }
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-js-e2e-'));
  mkdirSync(join(dir, 'data'));
  mkdirSync(join(dir, 'keys'));
  const base = `http://127.0.0.1:${port}`;
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PORTCULLIS_')));
  const logPath = join(dir, 'server.log');
  const out = openSync(logPath, 'a');
  const fullEnv = {
      ...clean,
      PORTCULLIS_LISTEN: `127.0.0.1:${port}`,
      PORTCULLIS_PUBLIC_URL: base,
      PORTCULLIS_DATA_DIR: join(dir, 'data'),
      PORTCULLIS_KEYS_DIR: join(dir, 'keys'),
      PORTCULLIS_BCRYPT_COST: '4',
      PORTCULLIS_RATE_LIMIT: 'off',
      PORTCULLIS_CAPTCHA: 'off',
      PORTCULLIS_ACCESS_TTL: '2s',
      PORTCULLIS_LOG_FORMAT: 'json',
      ...(typeof env === 'function' ? env(port) : env),
  };
  if (opts.admin) {
    execFileSync(bin, ['admin', 'create', opts.admin.email], {
      cwd: dir,
      env: { ...fullEnv, PORTCULLIS_ADMIN_PASSWORD: opts.admin.password },
      stdio: ['ignore', 'ignore', 'ignore'],
    });
  }
  const child = spawn(bin, ['serve'], { cwd: dir, stdio: ['ignore', out, out], env: fullEnv });
  child.on('error', () => {});
  // Never outlive this process, whatever happens to it.
  const killOnExit = () => child.exitCode === null && child.kill('SIGKILL');
  process.on('exit', killOnExit);
  const stop = async () => {
    process.off('exit', killOnExit);
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      for (let i = 0; i < 50 && child.exitCode === null; i++) await sleep(100);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  };
  try {
    await waitFor(`${base}/healthz`, child, 'portcullis');
  } catch (e) {
    await stop();
    throw new Error(`${e.message}\n${readFileSync(logPath, 'utf8').slice(-3000)}`);
  }
  return {
    base,
    dir,
    /** The newest mail (.eml text, quoted-printable soft breaks and =3D undone) in the outbox to `to` (and containing `has`), or null. */
    mail: (to, has = '') => latestMail(join(dir, 'data', 'outbox'), to, has),
    log: () => readFileSync(logPath, 'utf8'),
    stop: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Starts the example's static server (example/serve.mjs). */
export async function startExampleServer() {
  const port = await freePort();
  const child = spawn(process.execPath, [join(pkgRoot, 'example', 'serve.mjs'), '--port', String(port)], { stdio: 'ignore' });
  const killOnExit = () => child.exitCode === null && child.kill('SIGKILL');
  process.on('exit', killOnExit);
  const base = `http://127.0.0.1:${port}`;
  await waitFor(`${base}/index.html`, child, 'example server');
  return {
    base,
    stop: async () => {
      process.off('exit', killOnExit);
      if (child.exitCode === null) child.kill('SIGTERM');
    },
  };
}

/** The value of a Prometheus counter (summed over label sets matching `labels`). */
export async function metric(base, name, labels = {}) {
  const text = await (await fetch(`${base}/metrics`)).text();
  let sum = 0;
  let seen = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const ls = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => ls.includes(`${k}="${v}"`))) {
      sum += Number(m[3]);
      seen = true;
    }
  }
  // A counter not yet incremented may be missing (the server registers it on
  // first use): that reads as 0. reuseControl() proves the counter is real.
  return seen ? sum : 0;
}

export async function register(base, email, password, display_name) {
  const r = await fetch(`${base}/v1/users`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password, ...(display_name ? { display_name } : {}) }),
  });
  if (r.status !== 201) throw new Error(`register ${email}: ${r.status} ${await r.text()}`);
  return r.json();
}

/** Counts log lines of one `event` in the server's JSON log. */
export function countLogEvents(log, event) {
  return log.split('\n').filter((l) => l.includes(`"${event}"`)).length;
}

/** Collects PASS/FAIL checks; exit code 1 on any failure. */
export function checks(prefix) {
  let failed = 0;
  let passed = 0;
  return {
    check(ok, what) {
      if (ok) passed++;
      else failed++;
      console.log(`${ok ? 'ok  ' : 'FAIL'} - ${prefix}: ${what}`);
      return ok;
    },
    done() {
      console.log(`${prefix}: ${passed} passed, ${failed} failed`);
      return failed === 0 ? 0 : 1;
    },
  };
}

/**
 * Control for the reuse counter: on a fresh session of `email`, rotate A->B,
 * B->C, then present A again (neither current nor just-retired): the server
 * must count one reuse. Proves a 0 read earlier was not a missing metric.
 */
export async function reuseControl(base, email, password) {
  const before = await metric(base, 'portcullis_refresh_reuse_total');
  const post = (path, body) =>
    fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const a = (await (await post('/v1/sessions', { email, password })).json()).refresh_token;
  const b = (await (await post('/v1/sessions/refresh', { refresh_token: a })).json()).refresh_token;
  await post('/v1/sessions/refresh', { refresh_token: b });
  const again = await post('/v1/sessions/refresh', { refresh_token: a });
  const after = await metric(base, 'portcullis_refresh_reuse_total');
  return { status: again.status, before, after };
}

function latestMail(outbox, to, has) {
  let files;
  try {
    files = readdirSync(outbox, { recursive: true }).filter((f) => String(f).endsWith('.eml'));
  } catch {
    return null;
  }
  const mails = files
    .map((f) => join(outbox, String(f)))
    .map((f) => ({ f, t: statSync(f).mtimeMs, text: readFileSync(f, 'utf8').replace(/=\r?\n/g, '').replace(/=3D/g, '=') }))
    .filter((m) => new RegExp(`^To:.*${to.replace(/[.+]/g, '\\$&')}`, 'mi').test(m.text) && m.text.includes(has))
    .sort((a, b) => a.t - b.t || a.f.localeCompare(b.f));
  return mails.at(-1)?.text ?? null;
}

function base32(s) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of s.replace(/=+$/, '').toUpperCase()) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const out = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) out.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(out);
}
/** The current RFC 6238 code (SHA-1, 30 s, 6 digits) of a base32 secret: what an authenticator app shows. */
export function totp(secret, at = Date.now()) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 1000 / 30)));
  const h = createHmac('sha1', base32(secret)).update(counter).digest();
  const o = h[h.length - 1] & 0xf;
  const n = ((h[o] & 0x7f) << 24) | (h[o + 1] << 16) | (h[o + 2] << 8) | h[o + 3];
  return String(n % 1_000_000).padStart(6, '0');
}
