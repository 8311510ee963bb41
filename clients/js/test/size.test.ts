// The size budget: the whole package (every export, so nothing shaken off)
// bundled and minified for a browser, with the parts of `jose` it uses (a
// chunk loaded on the first getClaims()), every chunk gzipped. An app that
// imports less pays less. The budget is 20 000 bytes; the client without
// jose must stay under 14 000. The figures are printed when the test runs.
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { rolldown } from 'rolldown';
import { describe, expect, it } from 'vitest';

const BUDGET = 20_000;
const BUDGET_WITHOUT_JOSE = 14_000;

async function gzipped(external: string[]): Promise<number> {
  const bundle = await rolldown({ input: join(__dirname, '..', 'src', 'index.ts'), platform: 'browser', external, logLevel: 'silent' });
  const { output } = await bundle.generate({ format: 'esm', minify: true });
  await bundle.close();
  // Every chunk (jose is loaded on demand: its own chunk), each gzipped.
  return output.reduce((n, o) => n + ('code' in o ? gzipSync(o.code, { level: 9 }).length : 0), 0);
}

describe('size budget (gzip)', () => {
  it(`the whole package with jose: under ${BUDGET} bytes`, async () => {
    const size = await gzipped([]);
    console.log(`size: @portcullis/client, every export, minified + gzip: ${size} bytes (budget ${BUDGET})`);
    expect(size).toBeLessThan(BUDGET);
    expect(size).toBeGreaterThan(5_000); // the bundle really has the client in it
  });

  it(`the client's own code: under ${BUDGET_WITHOUT_JOSE} bytes`, async () => {
    const size = await gzipped(['jose']);
    console.log(`size: without jose: ${size} bytes (budget ${BUDGET_WITHOUT_JOSE})`);
    expect(size).toBeLessThan(BUDGET_WITHOUT_JOSE);
  });
});
