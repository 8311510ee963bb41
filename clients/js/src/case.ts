/**
 * The one place where the wire's snake_case meets the client's camelCase.
 *
 * - Types: `Camelize<T>` maps a generated (snake_case) schema to the shape
 *   the client hands out; `Snakify` is not needed, request types are
 *   written as `Camelize<RequestSchema>` and converted at run time.
 * - Values: `toCamel` on every JSON answer, `toSnake` on every JSON body.
 *
 * Free-form values are never touched: the keys below hold the
 * application's own JSON (`metadata`), WebAuthn JSON (`credential`,
 * `public_key`), event facts (`details`) and JWKs (`keys`); their contents
 * go over the wire exactly as given.
 */

/** Keys whose values are passed through as they are (both directions). */
export const OPAQUE_KEYS: ReadonlySet<string> = new Set([
  'metadata',
  'credential',
  'public_key',
  'publicKey',
  'details',
  'keys',
]);

export type CamelCase<S extends string> = S extends `${infer H}_${infer T}`
  ? `${H}${Capitalize<CamelCase<T>>}`
  : S;

type Opaque = 'metadata' | 'credential' | 'public_key' | 'details' | 'keys';

/** A wire (snake_case) type as the client hands it out (camelCase). */
export type Camelize<T> = T extends ReadonlyArray<infer U>
  ? Camelize<U>[]
  : T extends (...args: never[]) => unknown
    ? T
    : T extends object
      ? { [K in keyof T as K extends string ? CamelCase<K> : K]: K extends Opaque ? T[K] : Camelize<T[K]> }
      : T;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

export function camelKey(k: string): string {
  return k.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

export function snakeKey(k: string): string {
  return k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

function mapKeys(value: unknown, key: (k: string) => string): unknown {
  if (Array.isArray(value)) return value.map((v) => mapKeys(v, key));
  if (!isPlainObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const nk = key(k);
    out[nk] = OPAQUE_KEYS.has(k) || OPAQUE_KEYS.has(nk) ? v : mapKeys(v, key);
  }
  return out;
}

/** A JSON answer of the wire, keys camelCased (opaque values untouched). */
export function toCamel<T>(value: unknown): T {
  return mapKeys(value, camelKey) as T;
}

/** A JSON body for the wire, keys snake_cased (opaque values untouched). */
export function toSnake(value: unknown): unknown {
  return mapKeys(value, snakeKey);
}
