#!/usr/bin/env node
// Drift check: regenerate the types from ../../openapi/openapi.json into a
// temp file and compare with the committed src/generated/openapi.ts; and
// every operation of the spec has a client method in test/operations.mjs
// (or a reason there it has none), and that table names no operation the
// spec lacks. (test/operations.test.ts checks the methods' side.)
//   node scripts/check-generated.mjs          # exit 1 on drift
//   node scripts/check-generated.mjs --write  # regenerate in place
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const spec = join(root, '..', '..', 'openapi', 'openapi.json');
const committed = join(root, 'src', 'generated', 'openapi.ts');
const dir = mkdtempSync(join(tmpdir(), 'portcullis-types-'));
const fresh = join(dir, 'openapi.ts');
try {
  execFileSync(process.execPath, [join(root, 'node_modules', 'openapi-typescript', 'bin', 'cli.js'), spec, '-o', fresh], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  if (process.argv.includes('--write')) {
    copyFileSync(fresh, committed);
    console.log('generated types written to src/generated/openapi.ts');
  } else {
    const a = readFileSync(committed, 'utf8');
    const b = readFileSync(fresh, 'utf8');
    if (a !== b) {
      console.error('src/generated/openapi.ts is out of date with openapi/openapi.json: run `npm run generate` in clients/js');
      process.exit(1);
    }
    console.log('generated types match openapi/openapi.json');
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const { OPERATIONS, NOT_CALLS } = await import('../test/operations.mjs');
const { operationsOf } = await import('../test/spec-ops.mjs');
const ids = new Set(operationsOf(JSON.parse(readFileSync(spec, 'utf8'))).map((o) => o.id));
const uncovered = [...ids].filter((id) => !(id in OPERATIONS) && !(id in NOT_CALLS));
const stale = [...Object.keys(OPERATIONS), ...Object.keys(NOT_CALLS)].filter((id) => !ids.has(id));
if (uncovered.length || stale.length) {
  if (uncovered.length) console.error(`operations of openapi.json with no client method: ${uncovered.join(', ')} (add one, and a row in test/operations.mjs)`);
  if (stale.length) console.error(`test/operations.mjs names operations the spec lacks: ${stale.join(', ')}`);
  process.exit(1);
}
console.log(`every operation of openapi.json has a client method (${Object.keys(OPERATIONS).length}) or a reason (${Object.keys(NOT_CALLS).length})`);
