/**
 * The options of `createClient` / `new PortcullisClient`, apart from the
 * client itself so that `client.ts` stays under the 800-line limit.
 */
import type { DpopSigner } from './dpop.js';
import type { PasskeyAdapter } from './passkeys.js';
import type { RefreshLock } from './lock.js';
import type { StorageAdapter } from './storage.js';
import type { ReauthProof } from './types.js';

export interface ClientOptions {
  /** Base URL of Portcullis, e.g. `https://id.example.com`. */
  url: string;
  /** Where the session is kept. Default: localStorage in browsers, memory elsewhere. */
  storage?: StorageAdapter;
  /** Storage key (and lock / channel name). Default `portcullis.session`. */
  storageKey?: string;
  /** The fetch to use (default: global fetch). */
  fetch?: typeof fetch;
  /** The refresh lock. Default: Web Locks where present, else an in-process lock. */
  lock?: RefreshLock;
  /**
   * Longest wait for the refresh lock before stealing it from its holder (a
   * frozen or hung tab). Keep it well under the server's refresh grace
   * (10 s by default). Default 5000 ms.
   */
  lockTimeoutMs?: number;
  /**
   * Refresh this long before the access token expires (capped at a third of
   * the token's lifetime). Default 60000 ms.
   */
  refreshMarginMs?: number;
  /**
   * After storing a refreshed pair, keep the cross-tab lock this much longer,
   * so that the write reaches the other tabs' view of localStorage (Chromium
   * propagates it between renderer processes asynchronously) before the next
   * tab in line reads it. Default 30 ms with Web Locks, 0 otherwise.
   */
  lockSettleMs?: number;
  /** Time limit of each HTTP request the client makes. Default 15000 ms. */
  requestTimeoutMs?: number;
  /** Share refreshed pairs and sign-outs with other tabs (BroadcastChannel). Default true. */
  broadcast?: boolean;
  /**
   * Origins (besides Portcullis's own) to which `client.fetch` may send the
   * access token. Default: the page's own origin. `'*'` sends it anywhere.
   */
  tokenOrigins?: string[] | '*';
  /**
   * Sender-constrained tokens (DPoP, RFC 9449): `true` keeps a
   * non-extractable ES256 key in IndexedDB (one for all tabs; in memory
   * where there is no IndexedDB), signs a proof for every call that needs
   * one, and retries once on `use_dpop_nonce`. `{ signer }` brings your own
   * key store (React Native: Keychain / Keystore). Default off.
   */
  dpop?: boolean | { signer: DpopSigner };
  /**
   * Refresh the session on a timer before the access token expires, paused
   * while the page is hidden (or, in React Native, while
   * `client.setVisible(false)` says the app is in the background). Default:
   * on where there is a `document` (browsers), off elsewhere: call
   * `client.startAutoRefresh()` in React Native and long-running Node
   * processes. See also `startAutoRefresh()` / `stopAutoRefresh()`.
   */
  autoRefresh?: boolean;
  /**
   * Step-up in one place: when a call is refused with 401
   * `reauthentication-required`, the client emits
   * `REAUTHENTICATION_REQUIRED`, calls this with the proofs the account
   * can give (`password`, `totp`, `passkey`), proves the answer
   * (`reauthenticate`) and retries the refused call once. Return `null` to
   * give up: the call then throws `ReauthenticationRequiredError`.
   */
  onReauthenticationRequired?: (methods: string[]) => Promise<ReauthProof | null> | ReauthProof | null;
  /**
   * Read a password-reset link (`…/reset-password?token=`) from the URL the
   * page was opened with: the token is kept for `resetPassword({ newPassword })`
   * and `PASSWORD_RECOVERY` is emitted. Default true in browsers. React
   * Native: pass the deep link to `client.handleRecoveryUrl(url)`.
   */
  detectRecoveryInUrl?: boolean;
  /**
   * How passkey calls reach an authenticator. Default: the browser's
   * `navigator.credentials`. React Native: `nativePasskeys(module)` from
   * `@portcullis/client/native`.
   */
  passkeys?: PasskeyAdapter;
  /** The clock (ms since the epoch). Tests set it. */
  now?: () => number;
  /** @internal Test hooks. */
  hooks?: {
    /** Called while holding the refresh lock, before storage is read. */
    afterRefreshLock?: () => void | Promise<void>;
  };
}
