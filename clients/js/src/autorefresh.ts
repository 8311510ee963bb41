/**
 * Auto refresh: one timer per client that refreshes the session shortly
 * before its access token expires (the client's refresh margin), so that
 * the token a page reads is always good, even when it makes no calls.
 *
 * - Paused while the page is hidden (`document.visibilityState`) or the
 *   React Native app is in the background (`client.setVisible(false)`);
 *   when it comes back the timer is set again, and a refresh that fell due
 *   meanwhile happens at once.
 * - A failed refresh (offline, 5xx, 429) never signs out: it is retried
 *   with exponential backoff (1 s doubling, at most 30 s, with jitter) until
 *   it works or the server refuses the refresh token (then the session ends
 *   as with any refresh).
 * - Tabs share the work through the refresh itself (Web Locks,
 *   BroadcastChannel): a tab whose timer fires after another tab refreshed
 *   takes the stored pair without a request.
 */
import type { Session } from './types.js';

export interface AutoRefreshHost {
  /** The session as kept, without waiting. */
  current(): Session | null;
  /** Milliseconds before expiry at which `s` should be refreshed. */
  marginFor(s: Session): number;
  now(): number;
  /** Refreshes when due; resolves to the new session or null (signed out). */
  refresh(): Promise<Session | null>;
}

const MAX_BACKOFF_MS = 30_000;

export class AutoRefresher {
  private running = false;
  private visible = true;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private failures = 0;
  private inFlight = false;
  private readonly onVisibility: (() => void) | null = null;

  constructor(private readonly host: AutoRefreshHost) {
    const doc = (globalThis as { document?: Document }).document;
    if (doc && typeof doc.addEventListener === 'function') {
      this.visible = doc.visibilityState !== 'hidden';
      this.onVisibility = () => this.setVisible(doc.visibilityState !== 'hidden');
      doc.addEventListener('visibilitychange', this.onVisibility);
    }
  }

  get isRunning(): boolean {
    return this.running;
  }

  start(): void {
    this.running = true;
    this.schedule();
  }

  stop(): void {
    this.running = false;
    this.clear();
  }

  /** Foreground (`true`) or background (`false`); coming back refreshes at once when due. */
  setVisible(visible: boolean): void {
    if (this.visible === visible) return;
    this.visible = visible;
    if (!visible) this.clear();
    else {
      this.failures = 0;
      this.schedule();
    }
  }

  dispose(): void {
    this.stop();
    if (this.onVisibility) {
      (globalThis as { document?: Document }).document?.removeEventListener('visibilitychange', this.onVisibility);
    }
  }

  /** (Re)arms the timer for the kept session; called on every session change. */
  schedule(delayMs?: number): void {
    this.clear();
    if (!this.running || !this.visible || this.inFlight) return;
    const s = this.host.current();
    if (!s) return;
    const due = delayMs ?? Math.max(0, s.expiresAt - this.host.marginFor(s) - this.host.now());
    this.timer = setTimeout(() => void this.tick(), due);
    (this.timer as unknown as { unref?: () => void }).unref?.();
  }

  private clear(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private async tick(): Promise<void> {
    this.timer = null;
    if (!this.running || !this.visible) return;
    this.inFlight = true;
    let retryIn: number | undefined;
    try {
      await this.host.refresh();
      this.failures = 0;
    } catch {
      // Offline, timed out, 5xx, 429: keep the session, try again later.
      this.failures++;
      const base = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (this.failures - 1));
      retryIn = Math.round(base * (0.75 + Math.random() * 0.5));
    } finally {
      this.inFlight = false;
    }
    this.schedule(retryIn);
  }
}
