#!/usr/bin/env node
// 50 concurrent clients in one Node process share one session through one
// memoryStorage(): they must form exactly one refresh chain (every refresh
// presents the token the previous refresh returned, each token once), never
// trip reuse detection (portcullis_refresh_reuse_total stays 0, no grace
// answers needed), and no 401 reaches the callers. Half of them also run
// the auto-refresh timer (all timers fire at the same moment: still one chain).
//   node test/e2e/fifty-clients.mjs [--seconds 12]
import { parseArgs } from 'node:util';
import { createClient, memoryStorage } from '../../dist/index.js';
import { checks, countLogEvents, metric, register, reuseControl, sleep, startPortcullis } from './harness.mjs';

const { values: a } = parseArgs({ options: { seconds: { type: 'string', default: '12' }, clients: { type: 'string', default: '50' } } });
const seconds = Number(a.seconds);
const n = Number(a.clients);
const t = checks('fifty-clients');
const srv = await startPortcullis();
let rc = 1;
try {
  const email = 'fifty@example.com';
  const password = 'correct horse battery staple 42';
  await register(srv.base, email, password);

  // Every refresh exchange as seen on the wire, in order of completion.
  const chain = [];
  const wire = async (input, init) => {
    const req = new Request(input, init);
    if (!req.url.endsWith('/v1/sessions/refresh')) return fetch(req);
    const presented = JSON.parse(await req.clone().text()).refresh_token;
    const res = await fetch(req);
    const body = res.ok ? await res.clone().json() : null;
    chain.push({ presented, returned: body?.refresh_token ?? null, status: res.status });
    return res;
  };

  const storage = memoryStorage();
  let made = 0;
  const mk = () =>
    createClient({ url: srv.base, storage, storageKey: 'fifty', fetch: wire, broadcast: false, autoRefresh: made++ % 2 === 0 });
  const first = mk();
  const r = await first.signIn({ email, password });
  t.check(r.status === 'signed_in', 'signed in once');
  const initialRefresh = (await first.getSession()).refreshToken;
  const clients = [first, ...Array.from({ length: n - 1 }, mk)];

  // Let the access token come within the refresh margin, then start all at once:
  // 50 callers that all need a refresh in the same instant.
  const s0 = await first.getSession();
  await sleep(Math.max(0, s0.expiresAt - Date.now() - 400));
  const statuses = new Map();
  let errors = 0;
  const end = Date.now() + seconds * 1000;
  await Promise.all(
    clients.map(async (c) => {
      while (Date.now() < end) {
        try {
          const res = await c.fetch('/v1/me');
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          await res.arrayBuffer();
        } catch (e) {
          errors++;
          console.error(`fifty-clients: ${e}`);
        }
        await sleep(20 + Math.random() * 80);
      }
    }),
  );

  const calls = [...statuses.values()].reduce((x, y) => x + y, 0);
  console.log(`fifty-clients: ${n} clients, ${seconds}s, ${calls} API calls, statuses ${JSON.stringify(Object.fromEntries(statuses))}, ${chain.length} refreshes`);
  t.check(calls > n * 10, `the clients made calls (${calls})`);
  t.check((statuses.get(200) ?? 0) === calls && errors === 0, `every call answered 200 (401s reaching callers: ${statuses.get(401) ?? 0}, errors: ${errors})`);
  // One chain: refresh i presents what refresh i-1 returned; the first presents the sign-in token.
  let linked = chain.length > 0 && chain[0].presented === initialRefresh;
  for (let i = 1; i < chain.length; i++) linked &&= chain[i].presented === chain[i - 1].returned;
  const presentedOnce = new Set(chain.map((c) => c.presented)).size === chain.length;
  t.check(chain.every((c) => c.status === 200), 'every refresh answered 200');
  t.check(linked && presentedOnce, `exactly one refresh chain of ${chain.length} links, each token presented once`);
  const expected = seconds / 2; // a 2 s access token
  t.check(chain.length >= expected * 0.5 && chain.length <= expected * 3, `refresh count ${chain.length} fits a 2 s token over ${seconds} s (not one per client)`);
  const reuse = await metric(srv.base, 'portcullis_refresh_reuse_total');
  t.check(reuse === 0, `portcullis_refresh_reuse_total = ${reuse}`);
  const grace = countLogEvents(srv.log(), 'session.refresh_grace');
  t.check(grace === 0, `no refresh needed the server's grace window (${grace})`);
  const ctl = await reuseControl(srv.base, email, password);
  t.check(ctl.status === 401 && ctl.after === ctl.before + 1, `control: a deliberate reuse is refused (${ctl.status}) and counted (${ctl.before} -> ${ctl.after})`);
  for (const c of clients) c.close();
  rc = t.done();
} catch (e) {
  console.error(e);
  t.check(false, `error: ${e.message}`);
  rc = 1;
} finally {
  await srv.stop();
}
process.exit(rc);
