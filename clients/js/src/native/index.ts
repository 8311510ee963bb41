/**
 * `@portcullis/client/native`: React Native helpers. Nothing here imports
 * `react-native` or `expo-*`: the app passes its modules in.
 *
 * ```ts
 * import * as SecureStore from 'expo-secure-store';
 * import { AppState } from 'react-native';
 * import { createClient } from '@portcullis/client';
 * import { secureStoreAdapter, autoRefreshWithAppState } from '@portcullis/client/native';
 *
 * const auth = createClient({ url, storage: secureStoreAdapter(SecureStore) });
 * autoRefreshWithAppState(auth, AppState);
 * ```
 */
export {
  secureStoreAdapter,
  splitUtf8,
  utf8Bytes,
  type SecureStoreLike,
  type SecureStorageOptions,
} from './secure-storage.js';
export { autoRefreshWithAppState, type AppStateLike, type AutoRefreshClient } from './app-state.js';
export {
  nativePasskeys,
  installNativePasskeys,
  toJsonForm,
  normaliseCredential,
  toBase64url,
  type NativePasskeyModule,
  type PasskeyAdapter,
} from './passkeys.js';
