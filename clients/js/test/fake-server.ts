// An in-memory stand-in for Portcullis with the same token rules: rotating
// single-use refresh tokens, a grace window for the just-retired one, reuse
// detection that revokes the family, problem+json errors.

const b64url = (s: string) => Buffer.from(s).toString('base64url');
const jwt = (claims: Record<string, unknown>) => `${b64url('{"alg":"none"}')}.${b64url(JSON.stringify(claims))}.sig`;
const claimsOf = (t: string) => JSON.parse(Buffer.from(t.split('.')[1] ?? '', 'base64url').toString()) as Record<string, any>;

interface Family {
  sid: string;
  userId: string;
  gen: number;
  previousGen: number | null;
  rotatedAt: number;
  revoked: boolean;
  /** When the session last proved who it is (sign-in, reauthenticate). */
  provenAt: number;
}

export interface FakeUser {
  id: string;
  email: string;
  password: string;
  display_name: string | null;
  mfa: boolean;
  updated_at: string;
  anonymous?: boolean;
}

export class FakeServer {
  users = new Map<string, FakeUser>();
  families = new Map<string, Family>();
  accessTtl = 60; // seconds
  graceMs = 10_000;
  reauthWindowMs = 300_000;
  now = () => Date.now();
  /** Counters the tests assert on. */
  refreshCalls = 0;
  refreshRotated = 0;
  refreshGrace = 0;
  reuse = 0;
  apiCalls = 0;
  /** Knobs. */
  offline = false;
  refreshDelayMs = 0;
  refreshFailStatus: number | null = null;
  forgot: string[] = [];
  resets: unknown[] = [];
  passkeyOptionBodies: unknown[] = [];
  passkeyAssertions: any[] = [];
  passkeyRegistrations: any[] = [];
  /** Passwordless: sign-in mails asked for, and the knob for guests. */
  emailSignIns: unknown[] = [];
  anonymousOn = true;
  requests: Array<{ method: string; path: string; auth: string | null }> = [];
  private seq = 0;

  problem(status: number, slug: string, detail: string, extra: Record<string, unknown> = {}) {
    return new Response(
      JSON.stringify({ type: `http://fake/problems/${slug}`, title: slug.replace(/-/g, ' '), status, detail, ...extra }),
      {
        status,
        headers: {
          'content-type': 'application/problem+json',
          ...(status === 401 ? { 'www-authenticate': 'Bearer error="invalid_token"' } : {}),
          ...(status === 429 ? { 'retry-after': '7' } : {}),
        },
      },
    );
  }

  json(status: number, body: unknown) {
    return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
  }

  addUser(email: string, password: string, opts: { mfa?: boolean } = {}): FakeUser {
    const u: FakeUser = {
      id: `u${++this.seq}`,
      email,
      password,
      display_name: null,
      mfa: !!opts.mfa,
      updated_at: new Date(0).toISOString(),
    };
    this.users.set(email, u);
    return u;
  }

  userBody(u: FakeUser) {
    return {
      id: u.id,
      email: u.email,
      email_verified: false,
      display_name: u.display_name,
      mfa_enabled: u.mfa,
      roles: [],
      created_at: new Date(0).toISOString(),
      updated_at: u.updated_at,
      is_anonymous: !!u.anonymous,
    };
  }

  tokens(f: Family) {
    const u = [...this.users.values()].find((x) => x.id === f.userId)!;
    return {
      access_token: jwt({
        sid: f.sid,
        sub: f.userId,
        gen: f.gen,
        typ: 'at',
        exp: this.now() + this.accessTtl * 1000,
        ...(u.anonymous ? { is_anonymous: true } : {}),
      }),
      token_type: 'Bearer',
      expires_in: this.accessTtl,
      refresh_token: jwt({ sid: f.sid, sub: f.userId, gen: f.gen, typ: 'rt' }),
      user: this.userBody(u),
    };
  }

  newFamily(u: FakeUser): Family {
    const f: Family = {
      sid: `s${++this.seq}`,
      userId: u.id,
      gen: 0,
      previousGen: null,
      rotatedAt: 0,
      revoked: false,
      provenAt: this.now(),
    };
    this.families.set(f.sid, f);
    return f;
  }

  /** A session issued out of band (e.g. another device). */
  signInDirect(email: string) {
    return this.tokens(this.newFamily(this.users.get(email)!));
  }

  private principal(req: Request): { user: FakeUser; fam: Family } | null {
    const h = req.headers.get('authorization');
    if (!h?.startsWith('Bearer ')) return null;
    try {
      const c = claimsOf(h.slice(7));
      const fam = this.families.get(c['sid']);
      if (!fam || fam.revoked || c['typ'] !== 'at' || c['exp'] <= this.now()) return null;
      const user = [...this.users.values()].find((x) => x.id === fam.userId);
      return user ? { user, fam } : null;
    } catch {
      return null;
    }
  }

  fetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const req = input instanceof Request ? input : new Request(String(input), init);
    if (init?.signal?.aborted || req.signal?.aborted) throw new DOMException('aborted', 'AbortError');
    const url = new URL(req.url);
    this.requests.push({ method: req.method, path: url.pathname + url.search, auth: req.headers.get('authorization') });
    if (this.offline) throw new TypeError('Failed to fetch');
    const body = req.method === 'GET' || req.method === 'DELETE' ? undefined : await req.text().then((t) => (t ? JSON.parse(t) : undefined));
    const route = `${req.method} ${url.pathname}`;
    switch (route) {
      case 'POST /v1/users': {
        if (typeof body.password !== 'string' || body.password.length < 8) {
          return this.problem(422, 'validation', 'invalid request', {
            errors: [{ field: 'password', pointer: '/password', code: 'too_short', detail: 'at least 8 characters' }],
          });
        }
        if (this.users.has(body.email)) return this.problem(409, 'conflict', 'email taken');
        return this.json(201, this.userBody(this.addUser(body.email, body.password)));
      }
      case 'POST /v1/sessions': {
        const u = this.users.get(body.email);
        if (!u || u.password !== body.password) return this.problem(401, 'invalid-credentials', 'wrong email or password');
        if (u.mfa) return this.json(200, { mfa_required: true, mfa_token: `mfa:${u.email}`, expires_in: 300, methods: ['totp', 'recovery_code'] });
        return this.json(200, this.tokens(this.newFamily(u)));
      }
      case 'POST /v1/sessions/mfa': {
        const email = String(body.mfa_token).replace(/^mfa:/, '');
        const u = this.users.get(email);
        if (!u || (body.code !== '123456' && body.recovery_code !== 'rc-1')) return this.problem(401, 'invalid-credentials', 'wrong code');
        return this.json(200, this.tokens(this.newFamily(u)));
      }
      case 'POST /v1/sessions/refresh': {
        this.refreshCalls++;
        if (this.refreshDelayMs) await new Promise((r) => setTimeout(r, this.refreshDelayMs));
        if (this.offline) throw new TypeError('Failed to fetch');
        if (this.refreshFailStatus) return this.problem(this.refreshFailStatus, 'unavailable', 'try later');
        let c: Record<string, any>;
        try {
          c = claimsOf(body.refresh_token);
        } catch {
          return this.problem(401, 'token-invalid', 'bad token');
        }
        const f = this.families.get(c['sid']);
        if (!f || f.revoked || c['typ'] !== 'rt') return this.problem(401, 'token-invalid', 'token revoked');
        if (c['gen'] === f.gen) {
          f.previousGen = f.gen;
          f.gen++;
          f.rotatedAt = this.now();
          this.refreshRotated++;
          return this.json(200, this.tokens(f));
        }
        if (c['gen'] === f.previousGen && this.now() - f.rotatedAt <= this.graceMs) {
          this.refreshGrace++;
          return this.json(200, this.tokens(f));
        }
        f.revoked = true;
        this.reuse++;
        return this.problem(401, 'token-invalid', 'refresh token reused; session revoked');
      }
    }
    switch (route) {
      case 'POST /v1/sessions/email':
        this.emailSignIns.push(body);
        return new Response(JSON.stringify({ status: 'accepted' }), { status: 202, headers: { 'content-type': 'application/json' } });
      case 'POST /v1/sessions/email/verify': {
        // The mail of a known address: link token `link:<email>`, code 12345678.
        const email = body.token ? String(body.token).replace(/^link:/, '') : body.email;
        const u = this.users.get(email);
        const ok = u && (body.token ? body.token === `link:${email}` : body.email_code === '12345678');
        if (!ok) return this.problem(400, 'token-invalid-or-expired', 'the link or code is invalid or expired');
        if (u.mfa) return this.json(200, { mfa_required: true, mfa_token: `mfa:${u.email}`, expires_in: 300, methods: ['totp'] });
        return this.json(200, this.tokens(this.newFamily(u)));
      }
      case 'POST /v1/sessions/anonymous': {
        if (!this.anonymousOn) return this.problem(403, 'anonymous-disabled', 'anonymous users are off');
        const u = this.addUser(`guest-${this.seq + 1}`, '');
        u.anonymous = true;
        return this.json(200, this.tokens(this.newFamily(u)));
      }
      case 'POST /v1/password/forgot':
        this.forgot.push(body.email);
        return new Response(JSON.stringify({ status: 'accepted' }), { status: 202, headers: { 'content-type': 'application/json' } });
      case 'POST /v1/password/reset': {
        const ok = body.token === 'reset-token' || (body.email && body.email_code === '123456');
        if (!ok) return this.problem(400, 'token-invalid-or-expired', 'the link or code is invalid or expired');
        this.resets.push(body);
        return new Response(null, { status: 204 });
      }
      case 'POST /v1/sessions/passkey/options':
        this.passkeyOptionBodies.push(body);
        return this.json(200, {
          challenge_id: 'ch-get',
          public_key: { publicKey: { challenge: 'AQID', rpId: 'localhost', allowCredentials: [{ type: 'public-key', id: 'BAUG' }] } },
        });
      case 'POST /v1/sessions/passkey': {
        this.passkeyAssertions.push(body);
        if (body.challenge_id !== 'ch-get' || body.credential?.id !== 'cred-1') return this.problem(401, 'invalid-credentials', 'bad passkey');
        return this.json(200, this.tokens(this.newFamily([...this.users.values()][0]!)));
      }
    }
    const p = this.principal(req);
    if (route.startsWith('GET /v1/') || route.startsWith('PATCH /v1/') || route.startsWith('DELETE /v1/') || route.startsWith('POST /v1/me')) {
      if (!p) return this.problem(401, 'token-invalid', 'missing or invalid bearer');
    }
    this.apiCalls++;
    switch (route) {
      case 'GET /v1/me':
        return this.json(200, this.userBody(p!.user));
      case 'POST /v1/me/upgrade': {
        const u = p!.user;
        if (!u.anonymous) return this.problem(409, 'conflict', 'not anonymous');
        if (this.users.has(body.email)) return this.problem(409, 'conflict', 'email taken');
        this.users.delete(u.email);
        u.email = body.email;
        u.password = body.password;
        u.anonymous = false;
        this.users.set(u.email, u);
        return this.json(200, this.userBody(u));
      }
      case 'PATCH /v1/me':
        if (body.display_name !== undefined && body.display_name !== null && body.display_name.length > 50) {
          return this.problem(422, 'validation', 'invalid', { errors: [{ field: 'display_name', pointer: '/display_name', code: 'too_long', detail: 'too long' }] });
        }
        p!.user.display_name = body.display_name ?? null;
        p!.user.updated_at = new Date(this.now()).toISOString();
        return this.json(200, this.userBody(p!.user));
      case 'DELETE /v1/sessions': {
        const scope = url.searchParams.get('scope') ?? 'local';
        for (const f of this.families.values()) {
          if (f.userId !== p!.user.id) continue;
          if (scope === 'global' || (scope === 'local' && f.sid === p!.fam.sid) || (scope === 'others' && f.sid !== p!.fam.sid)) f.revoked = true;
        }
        return new Response(null, { status: 204 });
      }
      case 'GET /v1/sessions':
        return this.json(
          200,
          [...this.families.values()]
            .filter((f) => f.userId === p!.user.id && !f.revoked)
            .map((f) => ({ id: f.sid, current: f.sid === p!.fam.sid, created_at: '', last_used_at: '', expires_at: '', amr: ['pwd'] })),
        );
      case 'POST /v1/me/reauthenticate':
        if (body.password !== p!.user.password) return this.problem(401, 'invalid-credentials', 'wrong password');
        p!.fam.provenAt = this.now();
        return new Response(null, { status: 204 });
    }
    // Step-up: credential changes need a recent proof on the session.
    if (route === 'POST /v1/me/passkeys/options' || route === 'POST /v1/me/passkeys') {
      if (this.now() - p!.fam.provenAt >= this.reauthWindowMs) {
        return new Response(
          JSON.stringify({
            type: 'http://fake/problems/reauthentication-required',
            title: 'Reauthentication required',
            status: 401,
            detail: 'confirm it is you',
            methods: ['password'],
          }),
          {
            status: 401,
            headers: {
              'content-type': 'application/problem+json',
              'www-authenticate': 'Bearer realm="portcullis", error="insufficient_user_authentication"',
            },
          },
        );
      }
    }
    switch (route) {
      case 'POST /v1/me/passkeys/options':
        return this.json(200, {
          challenge_id: 'ch-create',
          public_key: {
            publicKey: {
              challenge: 'AQID',
              rp: { id: 'localhost', name: 'Portcullis' },
              user: { id: 'dXNlcg', name: p!.user.email, displayName: p!.user.email },
              pubKeyCredParams: [{ type: 'public-key', alg: -8 }],
              excludeCredentials: [{ type: 'public-key', id: 'BAUG' }],
            },
          },
        });
      case 'POST /v1/me/passkeys':
        this.passkeyRegistrations.push(body);
        return this.json(201, { id: 'pk-1', name: body.name ?? null, created_at: '', last_used_at: null });
      case 'POST /v1/me/password':
        if (body.current_password !== p!.user.password) return this.problem(401, 'invalid-credentials', 'wrong password');
        p!.user.password = body.new_password;
        return new Response(null, { status: 204 });
    }
    if (route.startsWith('DELETE /v1/sessions/')) {
      const f = this.families.get(url.pathname.split('/').pop()!);
      if (!f || f.userId !== p!.user.id) return this.problem(404, 'not-found', 'no such session');
      f.revoked = true;
      return new Response(null, { status: 204 });
    }
    return this.problem(404, 'not-found', `no route ${route}`);
  };
}
