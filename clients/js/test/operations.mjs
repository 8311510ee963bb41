// The drift table: every operation of openapi/openapi.json and the client
// method that calls it. `scripts/check-generated.mjs` (beside the type
// generation) and test/operations.test.ts fail when an operation of the
// spec is neither here nor in NOT_CALLS, or when an entry names an
// operation the spec no longer has; the unit tests call each method and
// check it hits its route; test/e2e/all-methods.mjs calls each one on a
// live server.

/** operationId -> the client method (a path on the client: `mfa.enrollTotp`). */
export const OPERATIONS = {
  register: 'signUp',
  getMe: 'getUser',
  updateMe: 'updateUser',
  deleteMe: 'deleteUser',
  reauthenticate: 'reauthenticate',
  login: 'signIn',
  logout: 'signOut',
  listSessions: 'listSessions',
  refresh: 'refreshSession',
  revokeSession: 'revokeSession',
  changePassword: 'changePassword',
  loginMfa: 'verifyMfa',
  totpBegin: 'mfa.enrollTotp',
  totpDisable: 'mfa.disableTotp',
  totpActivate: 'mfa.activateTotp',
  regenerateRecoveryCodes: 'mfa.regenerateRecoveryCodes',
  captcha: 'getCaptcha',
  jwks: 'getJwks',
  openidConfiguration: 'getOpenIdConfiguration',
  healthz: 'checkHealth',
  readyz: 'checkReady',
  putAvatar: 'uploadAvatar',
  deleteAvatar: 'deleteAvatar',
  getAvatar: 'getAvatar',
  adminListUsers: 'admin.listUsers',
  adminGetUser: 'admin.getUser',
  adminUpdateUser: 'admin.updateUser',
  adminDeleteUser: 'admin.deleteUser',
  adminEndSessions: 'admin.signOutUser',
  myActivity: 'listActivity',
  adminAudit: 'admin.listAuditEvents',
  notMe: 'reportNotMe',
  forgotPassword: 'forgotPassword',
  resetPassword: 'resetPassword',
  verifyEmail: 'verifyEmail',
  changeEmail: 'changeEmail',
  resendVerification: 'resendVerification',
  passkeyRegistrationOptions: 'registerPasskey',
  addPasskey: 'registerPasskey',
  listPasskeys: 'listPasskeys',
  deletePasskey: 'deletePasskey',
  passkeySignInOptions: 'signInWithPasskey',
  passkeySignIn: 'signInWithPasskey',
  appleAppSiteAssociation: 'getAppleAppSiteAssociation',
  assetLinks: 'getAssetLinks',
  oauthToken: 'oauth.token',
  oauthRevoke: 'oauth.revoke',
  oauthUserinfo: 'oauth.userinfo',
  oauthUserinfoPost: 'oauth.userinfo',
  oauthIntrospect: 'oauth.introspect',
  signInWithEmail: 'signInWithEmail',
  verifyEmailSignIn: 'verifyEmailSignIn',
  signInAnonymously: 'signInAnonymously',
  upgrade: 'upgrade',
  listProviders: 'listProviders',
  federationNonce: 'getFederationNonce',
  signInWithIdToken: 'signInWithIdToken',
  // A navigation, not a fetch: the method builds the URL (and goes there in a browser).
  federationAuthorize: 'signInWithProvider',
  signInWithFederationCode: 'completeSignInWithProvider',
  listIdentities: 'listIdentities',
  linkIdentity: 'linkIdentity',
  unlinkIdentity: 'unlinkIdentity',
  adminListClients: 'admin.listClients',
  adminCreateClient: 'admin.createClient',
  adminGetClient: 'admin.getClient',
  adminUpdateClient: 'admin.updateClient',
  adminDeleteClient: 'admin.deleteClient',
  listConsents: 'listConsents',
  revokeConsent: 'revokeConsent',
};

/**
 * Operations no method calls, and why: pages a browser is sent to (the spec
 * marks them `x-browser-route`) and the provider's return to the server.
 */
export const NOT_CALLS = {
  oauthAuthorize: 'x-browser-route: the consent page; client.oauth.authorizeUrl() builds the URL to send a browser to',
  oauthAuthorizePost: 'x-browser-route: the consent form posts it',
  oauthLogout: 'x-browser-route: RP-initiated logout page (a navigation)',
  oauthLogoutPost: 'x-browser-route: RP-initiated logout form',
  federationCallback: "the identity provider redirects the browser there; the server then redirects to the app's redirectTo",
  federationCallbackFormPost: "the identity provider's form_post (Apple) lands there; same as the GET",
};

/** Methods that make no request of their own, or only through the ones above. */
export const LOCAL_METHODS = {
  onAuthStateChange: 'events',
  getSession: 'the kept session',
  getAccessToken: 'refreshSession when due',
  fetch: 'any request with the bearer',
  close: 'stops listening',
  startAutoRefresh: 'timer',
  stopAutoRefresh: 'timer',
  setVisible: 'timer',
  handleRecoveryUrl: 'reads a URL',
  setSession: 'getMe or refresh',
  getClaims: 'jwks (cached)',
  hasRole: 'getClaims',
  avatarUrl: 'builds a URL',
  solveCaptcha: 'captcha',
  dpopThumbprint: 'the DPoP key',
  'mfa.getAuthenticatorAssuranceLevel': 'the session',
  'oauth.authorizeUrl': 'builds a URL',
};
