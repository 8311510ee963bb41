#!/usr/bin/env node
// The CAPTCHA for humans, against a real Portcullis with PORTCULLIS_CAPTCHA=always:
// without `captcha` sign-up and sign-in throw `captcha-required`; with
// `await auth.solveCaptcha()` (the one call an app makes) they work; a
// solution works once.
//   node test/e2e/captcha.mjs
import { createClient, memoryStorage, isPortcullisError } from '../../dist/index.js';
import { checks, startPortcullis } from './harness.mjs';

const t = checks('captcha');
// The default difficulty (1,000,000), as a real deployment has it.
const srv = await startPortcullis({ PORTCULLIS_CAPTCHA: 'always' });
let rc = 1;
try {
  const auth = createClient({ url: srv.base, storage: memoryStorage() });
  const email = 'captcha@example.com';
  const password = 'correct horse battery staple 42';
  const slugOf = async (p) => {
    try {
      await p;
      return 'ok';
    } catch (e) {
      return isPortcullisError(e) ? e.type.split('/').pop() : String(e);
    }
  };
  t.check((await slugOf(auth.signUp({ email, password }))) === 'captcha-required', 'sign-up without captcha: captcha-required');
  const t0 = Date.now();
  const captcha = await auth.solveCaptcha();
  const ms = Date.now() - t0;
  t.check(typeof captcha === 'string' && captcha.length > 0, `solveCaptcha() solved the server's challenge in ${ms} ms`);
  t.check((await slugOf(auth.signUp({ email, password, captcha }))) === 'ok', 'sign-up with the solution');
  await auth.signOut().catch(() => {});
  t.check(
    (await slugOf(auth.signIn({ email, password, captcha }))) === 'captcha-required',
    'the same solution a second time: captcha-required',
  );
  const result = await auth.signIn({ email, password, captcha: await auth.solveCaptcha() });
  t.check(result.status === 'signed_in', 'sign-in with a fresh solution');
  rc = t.done();
} catch (e) {
  console.error(e);
  rc = 1;
} finally {
  await srv.stop();
}
process.exit(rc);
