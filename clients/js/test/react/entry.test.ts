// @vitest-environment node
//
// No React for non-React users: nothing the main entry imports (followed
// through every relative import of src/) reaches `react` or the react/ and
// native/ subpaths; package.json exports both subpaths and lists React only
// as an optional peer.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Every module specifier `file` imports or re-exports (static and dynamic). */
function specifiers(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)) {
    out.push((m[1] ?? m[2])!);
  }
  return out;
}

function graph(entry: string): { files: Set<string>; bare: Set<string> } {
  const files = new Set<string>();
  const bare = new Set<string>();
  const todo = [entry];
  while (todo.length) {
    const f = todo.pop()!;
    if (files.has(f)) continue;
    files.add(f);
    for (const s of specifiers(f)) {
      if (s.startsWith('.')) todo.push(join(dirname(f), s.replace(/\.js$/, '.ts')));
      else bare.add(s);
    }
  }
  return { files, bare };
}

describe('the package entries', () => {
  it('the main entry never reaches react, react/ or native/', () => {
    const { files, bare } = graph(join(pkg, 'src', 'index.ts'));
    expect(files.size).toBeGreaterThan(5);
    expect([...bare].filter((b) => b === 'react' || b.startsWith('react/') || b.startsWith('react-dom'))).toEqual([]);
    expect([...files].filter((f) => /[\\/]src[\\/](react|native)[\\/]/.test(f))).toEqual([]);
  });

  it('react/ imports React; native/ imports neither React nor react-native nor expo', () => {
    expect(graph(join(pkg, 'src', 'react', 'index.ts')).bare).toContain('react');
    const native = [...graph(join(pkg, 'src', 'native', 'index.ts')).bare];
    expect(native.filter((b) => /^(react|react-native|expo)/.test(b))).toEqual([]);
  });

  it('package.json: ./react and ./native exports, React an optional peer only', () => {
    const p = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8'));
    expect(p.exports['./react']).toEqual({ types: './dist/react/index.d.ts', import: './dist/react/index.js', default: './dist/react/index.js' });
    expect(p.exports['./native']).toEqual({ types: './dist/native/index.d.ts', import: './dist/native/index.js', default: './dist/native/index.js' });
    expect(p.peerDependencies?.react).toBeDefined();
    expect(p.peerDependenciesMeta?.react?.optional).toBe(true);
    expect(p.dependencies?.react).toBeUndefined();
  });
});

describe('subpath sizes (minified + gzip, React and the main entry external)', () => {
  async function gzipped(entry: string): Promise<number> {
    const { rolldown } = await import('rolldown');
    const { gzipSync } = await import('node:zlib');
    const bundle = await rolldown({
      input: join(pkg, 'src', entry, 'index.ts'),
      platform: 'browser',
      external: [/^react/, /\/index\.js$/],
      logLevel: 'silent',
    });
    const { output } = await bundle.generate({ format: 'esm', minify: true });
    await bundle.close();
    return gzipSync(output[0].code, { level: 9 }).length;
  }

  it('@portcullis/client/react: under 2 000 bytes', async () => {
    const size = await gzipped('react');
    console.log(`size: @portcullis/client/react: ${size} bytes`);
    expect(size).toBeGreaterThan(500);
    expect(size).toBeLessThan(2_000);
  });

  it('@portcullis/client/native: under 4 000 bytes', async () => {
    const size = await gzipped('native');
    console.log(`size: @portcullis/client/native: ${size} bytes`);
    expect(size).toBeGreaterThan(1_000);
    expect(size).toBeLessThan(4_000);
  });
});
