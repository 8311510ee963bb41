export { createClient, PortcullisClient, type ClientOptions } from './client.js';
export type { MfaApi } from './mfa.js';
export type { AdminApi } from './admin.js';
export type { OAuthApi } from './oauth.js';
export { toCamel, toSnake, type Camelize, type CamelCase } from './case.js';
export { assuranceOf } from './claims.js';
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
  browserPasskeys,
  type PasskeyAdapter,
} from './passkeys.js';
export { solveCaptcha, encodeCaptchaSolution, type SolveCaptchaOptions } from './captcha.js';
export type * from './types.js';
export type { paths, components, operations } from './generated/openapi.js';
export {
  createPkce,
  readProviderCallback,
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
