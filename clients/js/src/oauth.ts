/**
 * `client.oauth`: the OAuth 2 / OpenID Connect endpoints of Portcullis as
 * an authorization server, for apps that act as a relying party or a
 * resource server. Bodies are form-encoded on the wire (RFC 6749); here
 * they are camelCase objects like everything else (`grantType`,
 * `refreshToken`, ...), and answers are camelCased (`accessToken`,
 * `idToken`, ...). The browser pages `GET/POST /oauth/authorize` and
 * `/oauth/logout` are navigations, not calls: see `authorizeUrl`.
 */
import { toSnake } from './case.js';
import type { Api } from './internal.js';
import type { Introspection, IntrospectRequest, OAuthTokens, RevokeRequest, TokenRequest, UserInfo } from './types.js';

function form(body: object): RequestInit {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(toSnake(body) as Record<string, unknown>)) {
    if (v !== undefined && v !== null) params.set(k, String(v));
  }
  return {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: params.toString(),
  };
}

export class OAuthApi {
  /** @internal */
  constructor(
    private readonly api: Api,
    private readonly base: string,
  ) {}

  /** `POST /oauth/token`: any grant (`authorization_code`, `refresh_token`, `client_credentials`). */
  async token(params: TokenRequest): Promise<OAuthTokens> {
    return this.api.parse<OAuthTokens>(await this.api.raw('/oauth/token', form(params), false));
  }

  /** `POST /oauth/revoke` (RFC 7009): always succeeds for a well-formed request. */
  async revoke(params: RevokeRequest & { clientId?: string; clientSecret?: string }): Promise<void> {
    const res = await this.api.raw('/oauth/revoke', form(params), false);
    if (!res.ok) await this.api.parse(res);
    await res.body?.cancel().catch(() => undefined);
  }

  /**
   * `GET /oauth/userinfo` (or `POST` with `method: 'POST'`): the OpenID
   * claims of the signed-in user, or of `accessToken` when given.
   */
  async userinfo(opts: { method?: 'GET' | 'POST'; accessToken?: string } = {}): Promise<UserInfo> {
    const method = opts.method ?? 'GET';
    if (!opts.accessToken) return this.api.authed<UserInfo>(method, '/oauth/userinfo');
    const init: RequestInit = { method, headers: { authorization: `Bearer ${opts.accessToken}`, accept: 'application/json' } };
    return this.api.parse<UserInfo>(await this.api.raw('/oauth/userinfo', init, false));
  }

  /**
   * `POST /oauth/introspect` (RFC 7662), for resource servers:
   * `introspectionToken` is the server's `PORTCULLIS_INTROSPECTION_TOKEN`.
   */
  async introspect(params: IntrospectRequest & { introspectionToken: string }): Promise<Introspection> {
    const { introspectionToken, ...rest } = params;
    const init = form(rest);
    (init.headers as Record<string, string>)['authorization'] = `Bearer ${introspectionToken}`;
    return this.api.parse<Introspection>(await this.api.raw('/oauth/introspect', init, false));
  }

  /**
   * The URL of the authorization page (`GET /oauth/authorize`) for a
   * relying party's redirect: a navigation, so no request is made here.
   */
  authorizeUrl(params: Record<string, string>): string {
    const u = new URL('/oauth/authorize', this.base);
    for (const [k, v] of Object.entries(toSnake(params) as Record<string, string>)) u.searchParams.set(k, v);
    return u.toString();
  }
}
