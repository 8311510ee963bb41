// The example SPA: sign-up, sign-in, the two-factor step, profile, the
// session list and sign-out, on @portcullis/client (the account pages:
// account.ts). Plain TypeScript compiled by tsc; no bundler (the page's
// import map resolves the package).
//
// Query parameters: `api` (Portcullis base URL, default
// http://localhost:8080), `lockTimeout` (ms, default 5000).
//
// Open it on http://localhost:<port>, not 127.0.0.1: passkeys need a domain,
// and the server's relying party is `localhost`. The server must accept this
// page: `portcullis serve --dev` opens CORS to http://localhost:*; passkeys
// also need PORTCULLIS_WEBAUTHN_ORIGINS=http://localhost:<port>.
import {
  createClient,
  isNetworkError,
  isPortcullisError,
  isReauthenticationRequired,
  localStorageAdapter,
  type AuthEvent,
  type Session,
} from '@portcullis/client';
import { deviceName, setupAccount } from './account.js';

const params = new URLSearchParams(location.search);
const api = params.get('api') ?? 'http://localhost:8080';

/** Test hooks the browser tests set (see clients/js/test/browser). */
const testHooks = window as unknown as {
  __portcullisFreezeNextRefresh?: boolean;
  __portcullisEvents?: Array<{ event: AuthEvent; at: number }>;
};
testHooks.__portcullisEvents = [];

const client = createClient({
  url: api,
  storage: localStorageAdapter(),
  lockTimeoutMs: Number(params.get('lockTimeout') ?? 5000),
  // Step-up in one place: when a change needs a recent proof, the client
  // calls this, proves the password, and retries the change once.
  onReauthenticationRequired: async () => {
    const password = await askForPassword();
    return password === null ? null : { password };
  },
  hooks: {
    afterRefreshLock: async () => {
      if (!testHooks.__portcullisFreezeNextRefresh) return;
      testHooks.__portcullisFreezeNextRefresh = false;
      console.log('portcullis-test:lock-held');
      // The test freezes the tab during this pause (CDP), lock held.
      await new Promise((r) => setTimeout(r, 500));
    },
  },
});
(window as unknown as { portcullis: typeof client }).portcullis = client;

const $ = <T extends HTMLElement = HTMLElement>(sel: string) => document.querySelector(sel) as T;
const show = (id: string, on: boolean) => {
  $(id).hidden = !on;
};

function setError(e: unknown) {
  const el = $('#error');
  if (!e) {
    el.hidden = true;
    el.textContent = '';
    return;
  }
  let msg = String(e);
  if (isPortcullisError(e)) {
    msg = `${e.title}${e.detail ? `: ${e.detail}` : ''} (${e.type}, ${e.status})`;
    if (e.errors.length) msg += ' — ' + e.errors.map((f) => `${f.field}: ${f.detail}`).join('; ');
  } else if (isNetworkError(e)) {
    msg = `Network problem (${e.message}). Nothing was changed; try again.`;
  }
  el.textContent = msg;
  el.hidden = false;
}

async function guarded(fn: () => Promise<unknown>) {
  setError(null);
  try {
    await fn();
  } catch (e) {
    setError(e);
  }
}

function render(session: Session | null) {
  const status = $('#status');
  status.dataset['state'] = session ? 'signed-in' : client.mfaChallenge ? 'mfa' : 'signed-out';
  status.textContent = session ? `Signed in as ${session.user.email}` : client.mfaChallenge ? 'Two-factor step' : 'Signed out';
  show('#signed-in', !!session);
  show('#mfa', !session && !!client.mfaChallenge);
  show('#signed-out', !session && !client.mfaChallenge);
  if (session) {
    const u = session.user;
    $('#p-email').textContent = u.email;
    $('#p-name').textContent = u.displayName ?? '—';
    $('#p-id').textContent = u.id;
    $('#p-mfa').textContent = u.mfaEnabled ? 'on' : 'off';
    $('#totp-begin').hidden = !!u.mfaEnabled;
    $('#p-exp').textContent = new Date(session.expiresAt).toLocaleTimeString();
  }
  account.render(session);
}

async function loadSessions() {
  const tbody = $('#sessions tbody');
  const list = await client.listSessions();
  tbody.replaceChildren(
    ...list.map((s) => {
      const tr = document.createElement('tr');
      if (s.current) tr.className = 'current';
      const cells = [
        s.id.slice(0, 8) + (s.current ? ' (this one)' : ''),
        new Date(s.createdAt).toLocaleString(),
        s.amr.join(', '),
        deviceName(s.userAgent),
      ];
      for (const c of cells) {
        const td = document.createElement('td');
        td.textContent = c;
        tr.append(td);
      }
      const td = document.createElement('td');
      const b = document.createElement('button');
      b.textContent = 'Revoke';
      b.onclick = () => guarded(async () => {
        await client.revokeSession(s.id);
        if (!s.current) await loadSessions();
      });
      td.append(b);
      tr.append(td);
      return tr;
    }),
  );
}

// Passkeys, picture, email, activity, provider buttons: example/src/account.ts.
const account = setupAccount({ client, guarded, withStepUp });

client.onAuthStateChange((event, session) => {
  testHooks.__portcullisEvents!.push({ event, at: Date.now() });
  const li = document.createElement('li');
  li.textContent = `${new Date().toLocaleTimeString()} ${event}`;
  $('#events').prepend(li);
  render(session);
  if (session && (event === 'SIGNED_IN' || event === 'INITIAL_SESSION')) {
    void guarded(loadSessions);
    void guarded(account.load);
  }
});

/**
 * The CAPTCHA step: runs `call` without a CAPTCHA; when the server answers
 * `captcha-required` (after failed sign-ins, or with PORTCULLIS_CAPTCHA=always)
 * solves one with `client.solveCaptcha()` (a Web Worker, a second or a few)
 * and runs `call` again with it.
 */
async function withCaptcha<T>(call: (captcha?: string) => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    if (!isPortcullisError(e) || e.type.split('/').pop() !== 'captcha-required') throw e;
    show('#captcha-status', true);
    try {
      const captcha = await client.solveCaptcha();
      return await call(captcha);
    } finally {
      show('#captcha-status', false);
    }
  }
}

$('#signin-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target as HTMLFormElement);
  void guarded(async () => {
    const email = String(f.get('email'));
    const password = String(f.get('password'));
    const r = await withCaptcha((captcha) => client.signIn({ email, password, ...(captcha ? { captcha } : {}) }));
    if (r.status === 'mfa_required') render(null);
  });
});

$('#signup-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target as HTMLFormElement);
  const email = String(f.get('email'));
  const password = String(f.get('password'));
  const name = String(f.get('display_name') ?? '').trim();
  void guarded(async () => {
    const r = await withCaptcha((captcha) =>
      client.signUp({ email, password, ...(name ? { displayName: name } : {}), ...(captcha ? { captcha } : {}) }),
    );
    if (r.status === 'verification_sent') {
      setError('Check your inbox to verify your email, then sign in.');
      return;
    }
    const s = await withCaptcha((captcha) => client.signIn({ email, password, ...(captcha ? { captcha } : {}) }));
    if (s.status === 'mfa_required') render(null);
  });
});

$('#mfa-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target as HTMLFormElement);
  const code = String(f.get('code') ?? '').trim();
  const rc = String(f.get('recovery_code') ?? '').trim();
  void guarded(() => client.verifyMfa(code ? { code } : { recoveryCode: rc }));
});
$('#mfa-cancel').addEventListener('click', () => location.reload());

$('#passkey-signin').addEventListener('click', () => void guarded(() => client.signInWithPasskey()));

$('#profile-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target as HTMLFormElement);
  const name = String(f.get('display_name') ?? '').trim();
  void guarded(() => client.updateUser({ displayName: name || null }));
});

/**
 * The "confirm it's you" step: shows the password prompt and resolves with
 * what was typed (null when cancelled).
 */
function askForPassword(): Promise<string | null> {
  const form = $<HTMLFormElement>('#confirm-form');
  form.hidden = false;
  form.querySelector('input')?.focus();
  return new Promise((resolve) => {
    const done = (value: string | null) => {
      form.hidden = true;
      form.reset();
      form.removeEventListener('submit', onSubmit);
      $('#confirm-cancel').removeEventListener('click', onCancel);
      resolve(value);
    };
    const onSubmit = (ev: Event) => {
      ev.preventDefault();
      done(String(new FormData(form).get('password') ?? ''));
    };
    const onCancel = () => done(null);
    form.addEventListener('submit', onSubmit);
    $('#confirm-cancel').addEventListener('click', onCancel);
  });
}

/**
 * Runs a change that may need a recent proof of identity (step-up). The
 * client asks for it (`onReauthenticationRequired` above: the password
 * prompt) and retries; when the prompt is cancelled the change ends here,
 * quietly (undefined).
 */
async function withStepUp<T>(change: () => Promise<T>): Promise<T | undefined> {
  try {
    return await change();
  } catch (e) {
    if (isReauthenticationRequired(e)) return undefined;
    throw e;
  }
}

$('#add-passkey').addEventListener('click', () => void guarded(async () => {
  const added = await withStepUp(() => client.registerPasskey());
  if (added) setError(`Passkey "${added.name}" added.`);
  await account.reloadPasskeys();
}));

$('#reload-sessions').addEventListener('click', () => void guarded(loadSessions));
$('#signout').addEventListener('click', () => void guarded(() => client.signOut()));
$('#signout-others').addEventListener('click', () => void guarded(async () => {
  await client.signOut({ scope: 'others' });
  await loadSessions();
}));
$('#signout-global').addEventListener('click', () => void guarded(() => client.signOut({ scope: 'global' })));

$('#totp-begin').addEventListener('click', () => void guarded(async () => {
  const enrolment = await withStepUp(() => client.mfa.enrollTotp());
  if (!enrolment) return;
  // As an image, not as markup: nothing in it can run.
  $<HTMLImageElement>('#totp-qr').src = `data:image/svg+xml;base64,${btoa(enrolment.qrSvg)}`;
  $('#totp-secret').textContent = enrolment.secret;
  show('#totp-setup', true);
  show('#totp-done', false);
}));

$('#totp-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const form = ev.target as HTMLFormElement;
  const code = String(new FormData(form).get('code') ?? '').trim();
  void guarded(async () => {
    const activated = await withStepUp(() => client.mfa.activateTotp({ code }));
    if (!activated) return;
    const { recoveryCodes } = activated;
    $('#recovery-codes').replaceChildren(
      ...recoveryCodes.map((c) => {
        const li = document.createElement('li');
        li.textContent = c;
        return li;
      }),
    );
    form.reset();
    show('#totp-setup', false);
    show('#totp-done', true);
    await client.getUser();
    render(await client.getSession());
  });
});
