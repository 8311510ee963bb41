/**
 * `client.admin`: the admin routes (the signed-in user needs the `admin`
 * role; others get 403 `forbidden`). Accounts, their sessions, the audit
 * log, and the registered OAuth/OpenID clients.
 */
import { query, type Api } from './internal.js';
import type {
  AdminUpdateUserRequest,
  AdminUser,
  CreateClientRequest,
  OAuthClient,
  SecurityEventPage,
  UpdateClientRequest,
  UserPage,
} from './types.js';

const id = (s: string) => encodeURIComponent(s);

export class AdminApi {
  /** @internal */
  constructor(private readonly api: Api) {}

  /** `GET /v1/admin/users`: accounts in email order, a page at a time (`nextCursor`). */
  listUsers(params: { emailPrefix?: string; cursor?: string; limit?: number } = {}): Promise<UserPage> {
    const q = query({ email_prefix: params.emailPrefix, cursor: params.cursor, limit: params.limit });
    return this.api.authed<UserPage>('GET', `/v1/admin/users${q}`);
  }

  /** `GET /v1/admin/users/{id}`. */
  getUser(userId: string): Promise<AdminUser> {
    return this.api.authed<AdminUser>('GET', `/v1/admin/users/${id(userId)}`);
  }

  /** `PATCH /v1/admin/users/{id}`: `disabled`, `roles`, `emailVerified`. */
  updateUser(userId: string, patch: AdminUpdateUserRequest): Promise<AdminUser> {
    return this.api.authed<AdminUser>('PATCH', `/v1/admin/users/${id(userId)}`, patch);
  }

  /** `DELETE /v1/admin/users/{id}`: erases the account. */
  async deleteUser(userId: string): Promise<void> {
    await this.api.authed<void>('DELETE', `/v1/admin/users/${id(userId)}`);
  }

  /** `DELETE /v1/admin/users/{id}/sessions`: ends every session of the account. */
  async signOutUser(userId: string): Promise<void> {
    await this.api.authed<void>('DELETE', `/v1/admin/users/${id(userId)}/sessions`);
  }

  /** `GET /v1/admin/audit`: security events, newest first (`since`/`until` RFC 3339). */
  listAuditEvents(
    params: { userId?: string; type?: string; ip?: string; since?: string; until?: string; cursor?: string; limit?: number } = {},
  ): Promise<SecurityEventPage> {
    const q = query({
      user_id: params.userId,
      type: params.type,
      ip: params.ip,
      since: params.since,
      until: params.until,
      cursor: params.cursor,
      limit: params.limit,
    });
    return this.api.authed<SecurityEventPage>('GET', `/v1/admin/audit${q}`);
  }

  /** `GET /v1/admin/clients`: the registered OAuth/OpenID clients. */
  listClients(): Promise<OAuthClient[]> {
    return this.api.authed<OAuthClient[]>('GET', '/v1/admin/clients');
  }

  /** `POST /v1/admin/clients`: a confidential client's `clientSecret` is in this answer only. */
  createClient(params: CreateClientRequest): Promise<OAuthClient> {
    return this.api.authed<OAuthClient>('POST', '/v1/admin/clients', params);
  }

  /** `GET /v1/admin/clients/{id}`. */
  getClient(clientId: string): Promise<OAuthClient> {
    return this.api.authed<OAuthClient>('GET', `/v1/admin/clients/${id(clientId)}`);
  }

  /** `PATCH /v1/admin/clients/{id}`. */
  updateClient(clientId: string, patch: UpdateClientRequest): Promise<OAuthClient> {
    return this.api.authed<OAuthClient>('PATCH', `/v1/admin/clients/${id(clientId)}`, patch);
  }

  /** `DELETE /v1/admin/clients/{id}`. */
  async deleteClient(clientId: string): Promise<void> {
    await this.api.authed<void>('DELETE', `/v1/admin/clients/${id(clientId)}`);
  }
}
