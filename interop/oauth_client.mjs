// A standard OAuth 2.0 / OpenID Connect client (oauth4webapi) against
// Portcullis, configured by discovery only (issue 9):
//
//   node oauth_client.mjs --issuer URL --refresh-token RT --introspection-token SECRET
//
// 1. discovery: /.well-known/openid-configuration, issuer checked;
// 2. refresh: the refresh_token grant at token_endpoint (RFC 6749 §6), twice
//    (rotation), and the retired token is refused with invalid_grant;
// 3. userinfo at userinfo_endpoint (OIDC Core §5.3), subject checked;
// 4. introspection at introspection_endpoint (RFC 7662): active, then
//    revocation at revocation_endpoint (RFC 7009), then inactive at once.
// Prints one "ok - ..." line per check; exit 0 when all pass, 1 otherwise.
import * as oauth from 'oauth4webapi';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, v, i, all) => (i % 2 ? acc : [...acc, [v.replace(/^--/, ''), all[i + 1]]]), []),
);
const issuer = new URL(args.issuer);
const insecure = { [oauth.allowInsecureRequests]: true }; // loopback http in tests
const client = { client_id: 'interop-spa' };
const clientAuth = oauth.None();
// RFC 7662 leaves caller authentication to the server: Portcullis takes a
// bearer token, sent here through the client-authentication hook.
const introspector = (_as, _client, _body, headers) => {
  headers.set('authorization', `Bearer ${args['introspection-token']}`);
};

let failed = 0;
const check = (name, cond, detail) => {
  if (cond) console.log(`ok - ${name}`);
  else {
    failed += 1;
    console.log(`FAIL - ${name}${detail ? `: ${detail}` : ''}`);
  }
};

try {
  const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, insecure));
  check('discovery: issuer matches and endpoints are listed',
    as.token_endpoint && as.userinfo_endpoint && as.revocation_endpoint && as.introspection_endpoint);

  const first = await oauth.processRefreshTokenResponse(as, client,
    await oauth.refreshTokenGrantRequest(as, client, clientAuth, args['refresh-token'], insecure));
  check('refresh_token grant at token_endpoint returns a new pair',
    first.access_token && first.refresh_token && first.token_type === 'bearer', JSON.stringify(first));
  const second = await oauth.processRefreshTokenResponse(as, client,
    await oauth.refreshTokenGrantRequest(as, client, clientAuth, first.refresh_token, insecure));
  check('a second refresh rotates again', second.refresh_token && second.refresh_token !== first.refresh_token);

  const sub = JSON.parse(Buffer.from(second.access_token.split('.')[1], 'base64url')).sub;
  const info = await oauth.processUserInfoResponse(as, client, sub,
    await oauth.userInfoRequest(as, client, second.access_token, insecure));
  check('userinfo_endpoint answers for the token subject', info.sub === sub && info.email, JSON.stringify(info));

  const active = await oauth.processIntrospectionResponse(as, client,
    await oauth.introspectionRequest(as, client, introspector, second.access_token, insecure));
  check('introspection: the access token is active', active.active === true && active.sub === sub, JSON.stringify(active));

  await oauth.processRevocationResponse(
    await oauth.revocationRequest(as, client, clientAuth, second.refresh_token, insecure));
  check('revocation_endpoint accepts the refresh token', true);

  const after = await oauth.processIntrospectionResponse(as, client,
    await oauth.introspectionRequest(as, client, introspector, second.access_token, insecure));
  check('introspection: inactive as soon as the session is revoked', after.active === false, JSON.stringify(after));

  let refused = '';
  try {
    await oauth.processRefreshTokenResponse(as, client,
      await oauth.refreshTokenGrantRequest(as, client, clientAuth, second.refresh_token, insecure));
  } catch (e) {
    refused = e instanceof oauth.ResponseBodyError ? e.error : String(e);
  }
  check('a revoked refresh token is refused with invalid_grant', refused === 'invalid_grant', refused);
} catch (e) {
  failed += 1;
  console.log(`FAIL - unexpected error: ${e?.constructor?.name} ${e?.message} ${JSON.stringify(e?.cause ?? '')}`);
}
process.exit(failed ? 1 : 0);
