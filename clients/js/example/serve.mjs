#!/usr/bin/env node
// A tiny static server for the example SPA (no bundler, no dependencies):
//   node example/serve.mjs [--port 5173] [--host 127.0.0.1]
// Serves clients/js/example/ at / and the built package (clients/js/dist/)
// at /lib/ (with its dependency jose at /jose/). By default it listens on the loopback (127.0.0.1 and, where
// there is one, ::1) and prints the page's address as http://localhost:PORT:
// open that one, not 127.0.0.1, or passkeys fail ("This is an invalid
// domain": WebAuthn needs a domain, and the server's relying party is
// `localhost`).
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { dirname, extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values: a } = parseArgs({ options: { port: { type: 'string', default: '5173' }, host: { type: 'string', default: '127.0.0.1' } } });
const here = dirname(fileURLToPath(import.meta.url));
// /jose/: the one runtime dependency of the package (its browser build), for the import map.
const roots = [['/lib/', join(here, '..', 'dist')], ['/jose/', join(here, '..', 'node_modules', 'jose', 'dist', 'webapi')], ['/', here]];
const types = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css', '.map': 'application/json', '.png': 'image/png', '.ico': 'image/x-icon' };

const server = createServer(async (req, res) => {
  const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
  for (const [prefix, dir] of roots) {
    if (!path.startsWith(prefix)) continue;
    let rel = path.slice(prefix.length) || 'index.html';
    const file = normalize(join(dir, rel));
    if (!file.startsWith(dir + sep) && file !== dir) break;
    try {
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
      res.end(body);
      return;
    } catch {
      break;
    }
  }
  res.writeHead(404, { 'content-type': 'text/plain' });
  res.end('not found');
});
server.listen(Number(a.port), a.host, () => {
  const { port } = server.address();
  const loopback = a.host === '127.0.0.1';
  if (loopback) {
    // `localhost` may resolve to ::1 first: answer there too (best effort).
    const v6 = createServer(server.listeners('request')[0]);
    v6.on('error', () => {});
    v6.listen(port, '::1');
  }
  const page = `http://${loopback ? 'localhost' : a.host}:${port}`;
  console.log(`listening on ${page}`);
  if (loopback) {
    console.log(`open ${page}/?api=http://localhost:8080`);
    console.log(`with the server in developer mode, and passkeys allowed from this page:`);
    console.log(`  PORTCULLIS_WEBAUTHN_ORIGINS=${page} portcullis serve --dev`);
  }
});
