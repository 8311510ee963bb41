export { createClient, PortcullisClient, type ClientOptions } from './client.js';
export {
  PortcullisError,
  ReauthenticationRequiredError,
  NetworkError,
  NotSignedInError,
  isPortcullisError,
  isNetworkError,
  isReauthenticationRequired,
  problemSlug,
  type Problem,
  type FieldError,
} from './errors.js';
export {
  localStorageAdapter,
  sessionStorageAdapter,
  memoryStorage,
  asyncStorageAdapter,
  defaultStorage,
  type StorageAdapter,
  type AsyncStorageAdapter,
} from './storage.js';
export { processLock, webLock, defaultLock, webLocksAvailable, type RefreshLock, type Lease } from './lock.js';
export {
  base64urlToBuffer,
  bufferToBase64url,
  decodeCreationOptions,
  decodeRequestOptions,
  encodeCredential,
} from './passkeys.js';
export { solveCaptcha, encodeCaptchaSolution, type SolveCaptchaOptions } from './captcha.js';
export type * from './types.js';
export type { paths, components, operations } from './generated/openapi.js';
export {
  createPkce,
  readProviderCallback,
  type Identity,
  type Provider,
  type LinkOffer,
  type ProviderCallback,
} from './federation.js';
export {
  indexedDbDpopSigner,
  memoryDpopSigner,
  defaultDpopSigner,
  jwkThumbprint,
  accessTokenHash,
  type DpopSigner,
  type DpopKey,
} from './dpop.js';
