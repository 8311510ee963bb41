#!/usr/bin/env node
// Drift check: regenerate the types from ../../openapi/openapi.json into a
// temp file and compare with the committed src/generated/openapi.ts.
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
