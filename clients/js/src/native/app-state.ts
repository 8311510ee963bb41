/**
 * React Native's `AppState` and the client's auto refresh: refresh on a
 * timer while the app is in the foreground, pause in the background (no
 * timers that iOS would freeze or Android kill mid-request), and on return
 * refresh at once when it fell due meanwhile.
 */

/** The part of React Native's `AppState` used here (`import { AppState } from 'react-native'`). */
export interface AppStateLike {
  /** `'active' | 'background' | 'inactive' | 'unknown' | 'extension'`. */
  readonly currentState?: string | null;
  addEventListener(type: 'change', listener: (state: string) => void): { remove(): void } | undefined | void;
  /** Older React Native (< 0.65) only. */
  removeEventListener?(type: 'change', listener: (state: string) => void): void;
}

/** What of the client this needs: `PortcullisClient` has all of it. */
export interface AutoRefreshClient {
  startAutoRefresh(): void;
  stopAutoRefresh(): void;
  /** Foreground (`true`) or background (`false`); when present it is used instead of start/stop. */
  setVisible?(visible: boolean): void;
}

/**
 * Starts the client's auto refresh and pauses it whenever the app leaves
 * the foreground (`AppState` other than `active`). Returns a function that
 * removes the listener and stops the auto refresh.
 *
 * ```ts
 * import { AppState } from 'react-native';
 * const off = autoRefreshWithAppState(client, AppState);
 * ```
 */
export function autoRefreshWithAppState(client: AutoRefreshClient, appState: AppStateLike): () => void {
  const apply = (state: string | null | undefined) => {
    // No state yet (before the first report) counts as the foreground.
    const active = state === 'active' || state === null || state === undefined || state === 'unknown';
    if (client.setVisible) client.setVisible(active);
    else if (active) client.startAutoRefresh();
    else client.stopAutoRefresh();
  };
  const listener = (state: string) => apply(state);
  const sub = appState.addEventListener('change', listener);
  if (client.setVisible) {
    apply(appState.currentState);
    client.startAutoRefresh();
  } else {
    apply(appState.currentState);
  }
  let done = false;
  return () => {
    if (done) return;
    done = true;
    if (sub && typeof sub.remove === 'function') sub.remove();
    else appState.removeEventListener?.('change', listener);
    client.stopAutoRefresh();
  };
}
