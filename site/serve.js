// Serves site/dist on 127.0.0.1 (PORT, or a free port) and prints the URL.
// With a prefix (BASE=/sub/path/, or createSiteServer('/sub/path/')) the
// site answers only under that path, as it would on a shared host: the test
// that every link is relative runs the site this way.
import http from 'node:http';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = fileURLToPath(new URL('./dist/', import.meta.url));
const types = { '.html': 'text/html; charset=utf-8', '.css': 'text/css', '.js': 'text/javascript', '.json': 'application/json',
  '.svg': 'image/svg+xml', '.png': 'image/png', '.woff2': 'font/woff2', '.ico': 'image/x-icon', '.txt': 'text/plain' };

export function createSiteServer(prefix = '/') {
  return http.createServer((req, res) => {
    const pathname = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const notFound = () => {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('not found');
    };
    if (!pathname.startsWith(prefix)) return notFound();
    const path = normalize(`/${pathname.slice(prefix.length)}`).replace(/^(\.\.[/\\])+/, '');
    let file = join(dist, path);
    if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html');
    if (!existsSync(file) && existsSync(`${file}.html`)) file = `${file}.html`;
    if (!file.startsWith(dist) || !existsSync(file)) return notFound();
    res.writeHead(200, { 'Content-Type': types[extname(file)] ?? 'application/octet-stream' });
    createReadStream(file).pipe(res);
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const prefix = process.env.BASE ?? '/';
  const server = createSiteServer(prefix).listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
    console.log(`site at http://127.0.0.1:${server.address().port}${prefix}`);
  });
}
