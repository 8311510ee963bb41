// The example's account pages: passkeys (list, add, remove), two-step
// sign-in housekeeping (new recovery codes, turn off), avatar, email change,
// security activity, and the federated sign-in buttons of the providers the
// server has. main.ts wires it in with `setupAccount(...)`.
import type { Passkey, PortcullisClient, SecurityEvent, Session } from '@portcullis/client';

export interface AccountDeps {
  client: PortcullisClient;
  /** Runs `fn`, showing a thrown error. */
  guarded: (fn: () => Promise<unknown>) => Promise<void>;
  /** Runs a change that may need a recent proof (asks for the password). Undefined when cancelled. */
  withStepUp: <T>(change: () => Promise<T>) => Promise<T | undefined>;
}

export interface Account {
  /** Called on every session change. */
  render(session: Session | null): void;
  /** Loads the lists (on sign-in and when the page opens signed in). */
  load(): Promise<void>;
  reloadPasskeys(): Promise<void>;
}

const $ = <T extends HTMLElement = HTMLElement>(sel: string) => document.querySelector(sel) as T;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, text?: string, cls?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

const when = (iso: string | null | undefined) => (iso ? new Date(iso).toLocaleString() : '—');
const day = (iso: string | null | undefined) => (iso ? new Date(iso).toLocaleDateString() : '—');

/** Shows a confirmation (not an error) for a few seconds. */
export function notify(msg: string): void {
  const n = $('#notice');
  n.textContent = msg;
  n.hidden = false;
  window.clearTimeout(Number(n.dataset['timer'] ?? 0));
  n.dataset['timer'] = String(window.setTimeout(() => (n.hidden = true), 8000));
}

/** Human words for the activity log's event types. */
const EVENT_NAMES: Record<string, string> = {
  'user.registered': 'Account created',
  'login.succeeded': 'Signed in',
  'login.failed': 'Failed sign-in',
  logout: 'Signed out',
  'token.refreshed': 'Session refreshed',
  'token.reuse_detected': 'Old session token replayed',
  'password.changed': 'Password changed',
  'password.reset_requested': 'Password reset requested',
  'password.reset': 'Password reset',
  'email.verified': 'Email verified',
  'email.changed': 'Email changed',
  'mfa.enabled': 'Two-step sign-in turned on',
  'mfa.disabled': 'Two-step sign-in turned off',
  'mfa.failed': 'Wrong two-step code',
  'mfa.recovery_code_used': 'Recovery code used',
  'mfa.recovery_codes_regenerated': 'New recovery codes',
  'passkey.added': 'Passkey added',
  'passkey.removed': 'Passkey removed',
  'identity.linked': 'Sign-in provider linked',
  'identity.unlinked': 'Sign-in provider unlinked',
};

/** "Chrome 120 on Linux" from a User-Agent header. */
export function deviceName(ua: string | null | undefined): string {
  if (!ua) return '—';
  const browser =
    /Edg\/(\d+)/.exec(ua)?.[1] !== undefined ? `Edge ${/Edg\/(\d+)/.exec(ua)![1]}`
    : /Firefox\/(\d+)/.test(ua) ? `Firefox ${/Firefox\/(\d+)/.exec(ua)![1]}`
    : /Chrom(e|ium)\/(\d+)/.test(ua) ? `${/Headless/.test(ua) ? 'Headless Chrome' : 'Chrome'} ${/Chrom(?:e|ium)\/(\d+)/.exec(ua)![1]}`
    : /Version\/(\d+).*Safari\//.test(ua) ? `Safari ${/Version\/(\d+)/.exec(ua)![1]}`
    : ua.split(/[ /]/)[0] || 'Unknown browser';
  const os = /Android/.test(ua) ? 'Android'
    : /iPhone|iPad/.test(ua) ? 'iOS'
    : /Windows/.test(ua) ? 'Windows'
    : /Mac OS X/.test(ua) ? 'macOS'
    : /Linux/.test(ua) ? 'Linux'
    : '';
  return os ? `${browser} on ${os}` : browser;
}

export function setupAccount({ client, guarded, withStepUp }: AccountDeps): Account {
  let activityCursor: string | null = null;
  /** The address a confirmation link was sent to, until it is the account's. */
  let pendingEmail: string | null = null;

  // ---------------------------------------------------------------- passkeys
  async function reloadPasskeys(): Promise<void> {
    const list = await client.listPasskeys();
    const tbody = $('#passkeys tbody');
    tbody.replaceChildren(...list.map(passkeyRow));
    $('#passkeys-empty').hidden = list.length > 0;
    $('#passkeys').hidden = list.length === 0;
  }

  function passkeyRow(p: Passkey): HTMLTableRowElement {
    const tr = el('tr');
    tr.dataset['id'] = p.id;
    tr.append(
      el('td', p.name || 'Passkey'),
      el('td', day(p.createdAt)),
      el('td', day(p.lastUsedAt)),
      el('td', p.backedUp ? 'synced' : p.backupEligible ? 'can sync' : 'this device'),
    );
    const td = el('td');
    const b = el('button', 'Remove');
    b.type = 'button';
    b.onclick = () =>
      void guarded(async () => {
        if (!confirm(`Remove the passkey "${p.name}"? You can no longer sign in with it.`)) return;
        const done = await withStepUp(async () => {
          await client.deletePasskey(p.id);
          return true;
        });
        if (done) notify(`Passkey "${p.name}" removed.`);
        await reloadPasskeys();
      });
    td.append(b);
    tr.append(td);
    return tr;
  }

  // ---------------------------------------------------------------- two-step sign-in
  function showRecoveryCodes(codes: string[]): void {
    $('#recovery-codes').replaceChildren(...codes.map((c) => el('li', c)));
    $('#totp-done').hidden = false;
  }

  $('#recovery-new').addEventListener('click', () =>
    void guarded(async () => {
      const r = await withStepUp(() => client.mfa.regenerateRecoveryCodes());
      if (!r) return;
      showRecoveryCodes(r.recoveryCodes);
      notify('New recovery codes: the old ones no longer work.');
    }),
  );
  $('#totp-off').addEventListener('click', () =>
    void guarded(async () => {
      if (!confirm('Turn off two-step sign-in? Your recovery codes stop working.')) return;
      const done = await withStepUp(async () => {
        await client.mfa.disableTotp();
        return true;
      });
      if (!done) return;
      $('#totp-done').hidden = true;
      notify('Two-step sign-in is off.');
    }),
  );

  // ---------------------------------------------------------------- avatar
  $('#avatar-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = $<HTMLInputElement>('#avatar-file');
    const file = input.files?.[0];
    if (!file) return;
    void guarded(async () => {
      await client.uploadAvatar(file);
      input.value = '';
      notify('Picture saved.');
    });
  });
  $('#avatar-remove').addEventListener('click', () =>
    void guarded(async () => {
      await client.deleteAvatar();
      notify('Picture removed.');
    }),
  );

  // ---------------------------------------------------------------- email
  $('#email-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const form = ev.target as HTMLFormElement;
    const newEmail = String(new FormData(form).get('email') ?? '').trim();
    void guarded(async () => {
      const done = await withStepUp(async () => {
        await client.changeEmail({ newEmail });
        return true;
      });
      if (!done) return;
      form.reset();
      pendingEmail = newEmail;
      $('#email-pending').textContent = `We sent a link to ${newEmail}. Your address changes when you open it.`;
      $('#email-pending').hidden = false;
      $('#email-reload').hidden = false;
    });
  });
  $('#email-resend').addEventListener('click', () =>
    void guarded(async () => {
      await client.resendVerification();
      notify('Verification mail sent.');
    }),
  );
  $('#email-reload').addEventListener('click', () => void guarded(() => client.getUser()));

  // ---------------------------------------------------------------- activity
  function activityRow(e: SecurityEvent): HTMLTableRowElement {
    const tr = el('tr', undefined, e.outcome === 'success' ? '' : 'failed');
    tr.dataset['type'] = e.type;
    const what = e.details['step_up'] === 'true' ? `Confirmed it was you (${e.details['method'] ?? 'password'})` : EVENT_NAMES[e.type] ?? e.type;
    tr.append(el('td', when(e.at)), el('td', what), el('td', e.outcome), el('td', e.ip ?? '—'), el('td', deviceName(e.userAgent)));
    return tr;
  }

  async function loadActivity(more = false): Promise<void> {
    const page = await client.listActivity({ limit: 8, ...(more && activityCursor ? { cursor: activityCursor } : {}) });
    const rows = page.events.map(activityRow);
    if (more) $('#activity tbody').append(...rows);
    else $('#activity tbody').replaceChildren(...rows);
    activityCursor = page.nextCursor ?? null;
    $('#activity-more').hidden = !activityCursor;
  }
  $('#activity-reload').addEventListener('click', () => void guarded(() => loadActivity()));
  $('#activity-more').addEventListener('click', () => void guarded(() => loadActivity(true)));

  // ---------------------------------------------------------------- federated sign-in
  async function loadProviders(): Promise<void> {
    const providers = await client.listProviders().catch(() => []);
    const box = $('#providers');
    box.replaceChildren(
      ...providers.map((p) => {
        const b = el('button', `Continue with ${p.name}`, `provider provider-${p.kind}`);
        b.type = 'button';
        b.dataset['provider'] = p.id;
        b.onclick = () =>
          // Back to this page, with its query (the `api` parameter); the
          // server must list it in PORTCULLIS_REDIRECT_URLS (a trailing *
          // matches any query).
          void guarded(() => client.signInWithProvider(p.id, { redirectTo: location.href.split('#')[0]! }));
        return b;
      }),
    );
    $('#federated').hidden = providers.length === 0;
  }
  /** Back from a provider: `?code=` (or `?error=`) on this page. */
  async function completeProviderSignIn(): Promise<void> {
    const q = new URLSearchParams(location.search);
    if (!q.has('code') && !q.has('error')) return;
    const here = location.href;
    // The code works once: take it out of the address bar first.
    q.delete('code');
    q.delete('error');
    q.delete('error_description');
    q.delete('link_token');
    history.replaceState(null, '', `${location.pathname}?${q}`);
    await client.completeSignInWithProvider(here);
  }
  void guarded(loadProviders);
  void guarded(completeProviderSignIn);

  return {
    render(session) {
      if (!session) return;
      const u = session.user;
      $('#totp-manage').hidden = !u.mfaEnabled;
      const img = $<HTMLImageElement>('#avatar-img');
      if (u.avatarUrl) {
        // A new URL after each upload (the user's updatedAt) defeats the cache.
        img.src = `${client.avatarUrl(u.id)}?v=${encodeURIComponent(u.updatedAt)}`;
        img.hidden = false;
        $('#avatar-none').hidden = true;
      } else {
        img.removeAttribute('src');
        img.hidden = true;
        $('#avatar-none').hidden = false;
        $('#avatar-none').textContent = (u.displayName ?? u.email).slice(0, 1).toUpperCase();
      }
      $('#avatar-remove').hidden = !u.avatarUrl;
      $('#email-current').textContent = u.email;
      if (pendingEmail && pendingEmail.toLowerCase() === u.email.toLowerCase()) {
        pendingEmail = null;
        notify(`Your email is now ${u.email}.`);
      }
      $('#email-pending').hidden = !pendingEmail;
      $('#email-reload').hidden = !pendingEmail;
      $('#email-verified').textContent = u.emailVerified ? 'verified' : 'not verified';
      $('#email-verified').className = u.emailVerified ? 'badge ok' : 'badge warn';
      $('#email-resend').hidden = u.emailVerified;
    },
    async load() {
      await Promise.all([reloadPasskeys(), loadActivity()]);
    },
    reloadPasskeys,
  };
}
