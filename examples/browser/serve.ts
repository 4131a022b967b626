/**
 * Tiny static server for the browser example (dev/test tooling, not part of the package): the built page at /, the
 * embedded model at /models/stories260K/ (assets/stories260K), more model folders with --model name=dir. Sends the
 * cross-origin isolation headers (COOP same-origin, COEP require-corp) that onnxruntime-web's WASM threads need
 * (SharedArrayBuffer). Files are served by sirv (Range requests, HEAD, content types). Listens on 127.0.0.1 only.
 *   node --import tsx examples/browser/serve.ts [--port 8080] [--model name=dir …]    (after build.ts)
 */
import { createServer, type Server } from 'node:http';
import { join, resolve } from 'node:path';
import sirv from 'sirv';
import { EXAMPLE_DIR } from './build.ts';

export interface ServeOptions { root?: string; port?: number; models?: Record<string, string> }
export interface Served { url: string; server: Server; requests: { method: string; path: string; status: number }[]; close(): Promise<void> }

export async function serveExample(o: ServeOptions = {}): Promise<Served> {
  const root = o.root ?? join(EXAMPLE_DIR, 'dist');
  const models = { stories260K: resolve(EXAMPLE_DIR, '../../assets/stories260K'), ...o.models };
  const opts = { dev: true, etag: true, dotfiles: false };
  const site = sirv(root, opts);
  const modelHandlers = Object.fromEntries(Object.entries(models).map(([n, d]) => [n, sirv(d, opts)]));
  const requests: Served['requests'] = [];
  const server = createServer((req, res) => {
    res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
    res.setHeader('Cross-Origin-Embedder-Policy', 'require-corp');
    res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
    const path = req.url ?? '';
    res.on('finish', () => requests.push({ method: req.method ?? '', path, status: res.statusCode }));
    const notFound = () => { res.statusCode = 404; res.end('not found'); };
    const m = /^\/models\/([^/]+)(\/.*)?$/.exec(req.url ?? '');
    if (m && modelHandlers[m[1]!]) { req.url = m[2] || '/'; modelHandlers[m[1]!]!(req, res, notFound); return; }
    site(req, res, notFound);
  });
  await new Promise<void>((ok, fail) => { server.once('error', fail); server.listen(o.port ?? 0, '127.0.0.1', () => ok()); });
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/`, server, requests,
    close: () => new Promise<void>((ok) => { server.closeAllConnections(); server.close(() => ok()); }),
  };
}

if (process.argv[1]?.endsWith('serve.ts')) {
  const args = process.argv.slice(2), models: Record<string, string> = {};
  let port = 8080;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--port') port = Number(args[++i]);
    else if (args[i] === '--model') { const [n, d] = args[++i]!.split('='); models[n!] = resolve(d!); }
  }
  const s = await serveExample({ port, models });
  console.log(`gptqjs browser example: ${s.url}  (Ctrl-C to stop)`);
}
