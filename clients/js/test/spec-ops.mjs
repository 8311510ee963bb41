// Matching a request to its operation of openapi/openapi.json (path
// templates like /v1/me/passkeys/{id}; literal paths win over templates).

/** Every operation: [{ id, method, path, browser }]. */
export function operationsOf(spec) {
  const out = [];
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (!op || typeof op !== 'object' || !op.operationId) continue;
      out.push({ id: op.operationId, method: method.toUpperCase(), path, browser: !!op['x-browser-route'] });
    }
  }
  return out;
}

/** The operationId a request (`method`, absolute or relative `url`) hits, or null. */
export function matchOperation(spec, method, url) {
  const path = new URL(url, 'http://x').pathname;
  const ops = operationsOf(spec).filter((o) => o.method === method.toUpperCase());
  const exact = ops.find((o) => o.path === path);
  if (exact) return exact.id;
  const templ = ops.find((o) => new RegExp(`^${o.path.replace(/\{[^}]+\}/g, '[^/]+')}$`).test(path));
  return templ ? templ.id : null;
}
