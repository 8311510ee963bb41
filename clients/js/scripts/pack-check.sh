#!/usr/bin/env bash
# `npm pack` the package, run the README's first install line in an empty
# temp project with the tarball in place of the registry name (its one
# dependency, jose, from the npm cache when there is one), and import it from
# Node ESM; check the type declarations are shipped and type-check.
set -euo pipefail
PKG=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-pack.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cd "$PKG"
tarball=$(npm pack --silent --pack-destination "$tmp" | tail -n 1)
echo "pack-check: $tarball ($(du -k "$tmp/$tarball" | cut -f1) KiB): $(tar tzf "$tmp/$tarball" | wc -l) files"
if tar tzf "$tmp/$tarball" | grep -qE '^package/(src|test|example|node_modules)/'; then
  echo "pack-check: the tarball ships sources or tests it should not" >&2; exit 1
fi
mkdir "$tmp/app"
cd "$tmp/app"
echo '{"name":"pack-check","private":true,"type":"module"}' >package.json
# The README's first install line, with the tarball for the package name.
line=$(grep -m1 -E '^(npm (install|i)|yarn add|pnpm add) ' "$PKG/README.md")
[ -n "$line" ] || { echo "pack-check: no install line in README.md" >&2; exit 1; }
cmd=${line/@portcullis\/client/$tmp/$tarball}
echo "pack-check: README's install line: $line"
$cmd --no-audit --no-fund --prefer-offline --loglevel=error >/dev/null
test -f node_modules/@portcullis/client/dist/index.d.ts || { echo "pack-check: no type declarations" >&2; exit 1; }
node --input-type=module -e '
import { createClient, memoryStorage, PortcullisError, NetworkError } from "@portcullis/client";
const c = createClient({ url: "http://127.0.0.1:9", storage: memoryStorage() });
if (typeof c.signIn !== "function" || typeof c.fetch !== "function") throw new Error("API missing");
if (await c.getSession() !== null) throw new Error("expected no session");
for (const m of ["enrollTotp", "activateTotp", "disableTotp"]) if (typeof c.mfa[m] !== "function") throw new Error("mfa." + m);
for (const m of ["listUsers", "listAuditEvents"]) if (typeof c.admin[m] !== "function") throw new Error("admin." + m);
for (const m of ["getClaims", "setSession", "startAutoRefresh", "stopAutoRefresh", "setVisible", "onAuthStateChange"]) if (typeof c[m] !== "function") throw new Error(m);
const e = new PortcullisError({ type: "https://x/problems/validation", title: "t", status: 422, errors: [] });
if (e.type !== "validation") throw new Error("slug");
c.close();
console.log("pack-check: installed the tarball and imported @portcullis/client");
'
# The declarations type-check in a strict TypeScript consumer.
cat >check.ts <<'TS'
import { createClient, memoryStorage, type Session, type SignInResult, type User } from '@portcullis/client';
const c = createClient({ url: 'http://127.0.0.1:9', storage: memoryStorage() });
async function f(): Promise<string | undefined> {
  const r: SignInResult = await c.signIn({ email: 'a@b.c', password: 'x' });
  if (r.status === 'mfa_required') return r.mfa.mfaToken + r.mfa.methods.join(',');
  const s: Session = r.session;
  const u: User = s.user;
  const codes: string[] = (await c.mfa.activateTotp({ code: '123456' })).recoveryCodes;
  const token: string = s.accessToken;
  return u.email + (u.displayName ?? '') + codes.join() + token;
}
void f;
TS
"$PKG/node_modules/.bin/tsc" --noEmit --strict --module nodenext --moduleResolution nodenext --target es2022 --lib es2022,dom check.ts
echo "pack-check: the declarations type-check in a strict TypeScript consumer"
