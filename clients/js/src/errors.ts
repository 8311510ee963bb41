/** One field-level failure of a `validation` problem. */
export interface FieldError {
  field: string;
  pointer?: string;
  code: string;
  detail: string;
}

/** An RFC 9457 problem document as Portcullis sends it. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail?: string;
  errors?: FieldError[];
  [extension: string]: unknown;
}

/** The slug at the end of a problem `type` URI (`.../problems/<slug>`). */
export function problemSlug(type: string | undefined): string {
  if (!type) return 'unknown';
  const m = /\/problems\/([^/?#]+)\/?$/.exec(type);
  if (m) return m[1]!;
  if (type === 'about:blank') return 'unknown';
  return type;
}

/**
 * An HTTP error answered by Portcullis. `type` is the problem slug
 * (`validation`, `invalid-credentials`, `token-invalid`, `conflict`, ...),
 * `status` the HTTP status, `errors` the field-level list of a validation
 * failure.
 */
export class PortcullisError extends Error {
  override readonly name: string = 'PortcullisError';
  readonly type: string;
  readonly typeUri: string;
  readonly status: number;
  readonly title: string;
  readonly detail: string | undefined;
  readonly errors: FieldError[];
  readonly problem: Problem;
  /** Seconds from `Retry-After` on a 429, if sent. */
  readonly retryAfter: number | undefined;

  constructor(problem: Problem, retryAfter?: number) {
    super(problem.detail ? `${problem.title}: ${problem.detail}` : problem.title);
    this.problem = problem;
    this.typeUri = problem.type;
    this.type = problemSlug(problem.type);
    this.status = problem.status;
    this.title = problem.title;
    this.detail = problem.detail;
    this.errors = Array.isArray(problem.errors) ? problem.errors : [];
    this.retryAfter = retryAfter;
  }

  /** The first field error for `field`, if any. */
  fieldError(field: string): FieldError | undefined {
    return this.errors.find((e) => e.field === field);
  }
}

/**
 * A change that needs a recent proof of identity on this session (adding a
 * passkey, turning TOTP on or off, new recovery codes, changing the email,
 * deleting the account) was refused with 401 `reauthentication-required`.
 * Ask the user to confirm it is them (`client.reauthenticate(...)` with one
 * of `methods`), then retry the call. Not a reason to sign out.
 */
export class ReauthenticationRequiredError extends PortcullisError {
  override readonly name: string = 'ReauthenticationRequiredError';
  /** The proofs the account can give: `password`, `totp`, `passkey`. */
  readonly methods: string[];

  constructor(problem: Problem, retryAfter?: number) {
    super(problem, retryAfter);
    this.methods = Array.isArray(problem['methods'])
      ? (problem['methods'] as unknown[]).filter((m): m is string => typeof m === 'string')
      : [];
  }
}

export function isReauthenticationRequired(e: unknown): e is ReauthenticationRequiredError {
  return e instanceof ReauthenticationRequiredError;
}

/**
 * The request never got an HTTP answer (offline, DNS, CORS refusal, timeout).
 * Never a reason to sign out: the session is kept and the call may be retried.
 */
export class NetworkError extends Error {
  override readonly name: string = 'NetworkError';
  readonly status = 0;
  readonly type = 'network';
  override readonly cause: unknown;
  constructor(message: string, cause?: unknown) {
    super(message);
    this.cause = cause;
  }
}

/** A call that needs a session was made while signed out. */
export class NotSignedInError extends Error {
  override readonly name: string = 'NotSignedInError';
  readonly status = 401;
  readonly type = 'not-signed-in';
  constructor(message = 'not signed in') {
    super(message);
  }
}

export function isPortcullisError(e: unknown): e is PortcullisError {
  return e instanceof PortcullisError;
}
export function isNetworkError(e: unknown): e is NetworkError {
  return e instanceof NetworkError;
}

/** Turns a non-2xx response into a PortcullisError (problem+json or not). */
export async function errorFromResponse(res: Response): Promise<PortcullisError> {
  const retryAfterHeader = res.headers.get('retry-after');
  const retryAfter = retryAfterHeader != null && /^\d+$/.test(retryAfterHeader.trim())
    ? Number(retryAfterHeader.trim())
    : undefined;
  let body: unknown;
  const text = await res.text().catch(() => '');
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  if (body && typeof body === 'object' && typeof (body as Problem).type === 'string') {
    const p = body as Problem;
    const problem = {
      ...p,
      title: typeof p.title === 'string' ? p.title : res.statusText || `HTTP ${res.status}`,
      status: typeof p.status === 'number' ? p.status : res.status,
    };
    if (problemSlug(p.type) === 'reauthentication-required') {
      return new ReauthenticationRequiredError(problem, retryAfter);
    }
    return new PortcullisError(problem, retryAfter);
  }
  return new PortcullisError(
    {
      type: 'about:blank',
      title: res.statusText || `HTTP ${res.status}`,
      status: res.status,
      detail: text ? text.slice(0, 200) : undefined,
    },
    retryAfter,
  );
}
