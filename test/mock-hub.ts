/**
 * A local stand-in for the Hugging Face Hub's upload endpoints, on 127.0.0.1 (ephemeral port), implementing what
 * @huggingface/hub 2.x's createRepo / createBranch / commit call (node_modules/@huggingface/hub/src/lib/commit.ts):
 *
 *   POST /api/repos/create                          {name, organization, visibility, type} → {url, id}; 409 if it exists
 *   POST /api/models/{repo}/branch/{branch}         → 200; 409 if it exists
 *   POST /api/models/{repo}/preupload/{rev}         {files: [{path, size, sample}]} → {files: [{path, uploadMode}]}
 *   POST /{repo}.git/info/lfs/objects/batch         git-lfs batch API; transfer "basic" (never "xet"); objects already
 *                                                   stored come back without actions (the client skips them); objects
 *                                                   over `multipartOver` bytes get per-part URLs + chunk_size
 *   PUT  /lfs/{oid}                                 basic upload (sha256 checked)
 *   PUT  /lfs/{oid}/part/{n}                        multipart part → ETag;  POST /lfs/{oid}/complete {oid, parts}
 *   POST /api/models/{repo}/commit/{rev}            NDJSON: header, file (base64), lfsFile (oid/size must be stored)
 *
 * Everything received is recorded for the test's assertions. LFS: `.safetensors`, `.model` and files ≥ 10 MB.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';

export interface MockCommit {
  repo: string; revision: string; summary: string; description?: string;
  /** Regular files: path → bytes. */
  files: Map<string, Buffer>;
  /** LFS files: path → {oid, size}. */
  lfsFiles: Map<string, { oid: string; size: number }>;
}

export interface MockHub {
  url: string;
  token: string;
  repos: Map<string, { visibility?: string; branches: Set<string> }>;
  commits: MockCommit[];
  /** LFS objects stored: sha256 → bytes. */
  lfs: Map<string, Buffer>;
  /** Every request: "METHOD path". */
  requests: string[];
  /** Upload transfers by kind (a resumed/repeated push sends no new ones for stored objects). */
  uploads: { basic: string[]; parts: string[]; completes: string[] };
  close(): Promise<void>;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const body = (req: IncomingMessage) => new Promise<Buffer>((res, rej) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c)).on('end', () => res(Buffer.concat(chunks))).on('error', rej);
});

export async function startMockHub(o: { token?: string; multipartOver?: number; chunkSize?: number } = {}): Promise<MockHub> {
  const token = o.token ?? 'hf_mocktoken';
  const multipartOver = o.multipartOver ?? Infinity, chunkSize = o.chunkSize ?? 256 * 1024;
  const hub: Omit<MockHub, 'url' | 'close'> = { token, repos: new Map(), commits: [], lfs: new Map(), requests: [], uploads: { basic: [], parts: [], completes: [] } };
  const parts = new Map<string, Map<number, Buffer>>();
  let base = '';

  const json = (res: ServerResponse, status: number, v: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
    res.end(JSON.stringify(v));
  };
  const error = (res: ServerResponse, status: number, msg: string) => json(res, status, { error: msg });

  const server = createServer(async (req, res) => {
    try {
      const url = new URL(req.url!, base);
      const path = decodeURIComponent(url.pathname);
      hub.requests.push(`${req.method} ${path}`);
      const data = await body(req);
      const authed = req.headers.authorization === `Bearer ${token}`;
      let m: RegExpMatchArray | null;
      if (req.method === 'POST' && path === '/api/repos/create') {
        if (!authed) return error(res, 401, 'Invalid credentials');
        const p = JSON.parse(data.toString());
        const id = `${p.organization}/${p.name}`;
        if (p.type !== 'model') return error(res, 400, `unexpected repo type ${p.type}`);
        if (hub.repos.has(id)) return error(res, 409, 'You already created this model repo');
        hub.repos.set(id, { visibility: p.visibility, branches: new Set(['main']) });
        return json(res, 200, { url: `${base}/${id}`, id });
      }
      if (req.method === 'POST' && (m = path.match(/^\/api\/models\/([^/]+\/[^/]+)\/branch\/(.+)$/))) {
        if (!authed) return error(res, 401, 'Invalid credentials');
        const r = hub.repos.get(m[1]!);
        if (!r) return error(res, 404, 'Repository not found');
        if (r.branches.has(m[2]!)) return error(res, 409, 'Reference already exists');
        r.branches.add(m[2]!);
        return json(res, 200, {});
      }
      if (req.method === 'POST' && (m = path.match(/^\/api\/models\/([^/]+\/[^/]+)\/preupload\/(.+)$/))) {
        if (!authed) return error(res, 401, 'Invalid credentials');
        if (!hub.repos.get(m[1]!)?.branches.has(m[2]!)) return error(res, 404, `Revision not found: ${m[2]}`);
        const p = JSON.parse(data.toString()) as { files: { path: string; size: number; sample: string }[] };
        return json(res, 200, { files: p.files.map((f) => ({ path: f.path, uploadMode: /\.(safetensors|model)$/.test(f.path) || f.size >= 10 << 20 ? 'lfs' : 'regular' })) });
      }
      if (req.method === 'POST' && (m = path.match(/^\/([^/]+\/[^/]+)\.git\/info\/lfs\/objects\/batch$/))) {
        if (!authed) return error(res, 401, 'Invalid credentials');
        const p = JSON.parse(data.toString()) as { operation: string; transfers: string[]; objects: { oid: string; size: number }[] };
        if (p.operation !== 'upload' || !p.transfers.includes('basic')) return error(res, 400, 'unexpected batch request');
        return json(res, 200, {
          transfer: 'basic',
          objects: p.objects.map(({ oid, size }) => {
            if (hub.lfs.has(oid)) return { oid, size }; // already uploaded: no action
            if (size > multipartOver) {
              const n = Math.ceil(size / chunkSize), header: Record<string, string> = { chunk_size: String(chunkSize) };
              for (let i = 1; i <= n; i++) header[String(i).padStart(5, '0')] = `${base}/lfs/${oid}/part/${i}`;
              return { oid, size, actions: { upload: { href: `${base}/lfs/${oid}/complete`, header } } };
            }
            return { oid, size, actions: { upload: { href: `${base}/lfs/${oid}` } } };
          }),
        }, { 'X-Request-Id': 'mock' });
      }
      if (req.method === 'PUT' && (m = path.match(/^\/lfs\/([0-9a-f]{64})$/))) {
        if (sha256(data) !== m[1]) return error(res, 400, 'sha256 mismatch');
        hub.lfs.set(m[1]!, data);
        hub.uploads.basic.push(m[1]!);
        res.writeHead(200).end();
        return;
      }
      if (req.method === 'PUT' && (m = path.match(/^\/lfs\/([0-9a-f]{64})\/part\/(\d+)$/))) {
        if (!parts.has(m[1]!)) parts.set(m[1]!, new Map());
        parts.get(m[1]!)!.set(Number(m[2]), data);
        hub.uploads.parts.push(`${m[1]}/${m[2]}`);
        res.writeHead(200, { ETag: `"${sha256(data).slice(0, 16)}"` }).end();
        return;
      }
      if (req.method === 'POST' && (m = path.match(/^\/lfs\/([0-9a-f]{64})\/complete$/))) {
        const p = JSON.parse(data.toString()) as { oid: string; parts: { partNumber: number; etag: string }[] };
        const got = parts.get(m[1]!) ?? new Map<number, Buffer>();
        for (const { partNumber, etag } of p.parts) if (etag !== `"${sha256(got.get(partNumber) ?? Buffer.alloc(0)).slice(0, 16)}"`) return error(res, 400, `bad etag for part ${partNumber}`);
        const whole = Buffer.concat(p.parts.map((x) => got.get(x.partNumber)!));
        if (sha256(whole) !== m[1]) return error(res, 400, 'sha256 mismatch after multipart');
        hub.lfs.set(m[1]!, whole);
        hub.uploads.completes.push(m[1]!);
        return json(res, 200, {});
      }
      if (req.method === 'POST' && (m = path.match(/^\/api\/models\/([^/]+\/[^/]+)\/commit\/(.+)$/))) {
        if (!authed) return error(res, 401, 'Invalid credentials');
        if (!hub.repos.get(m[1]!)?.branches.has(m[2]!)) return error(res, 404, `Revision not found: ${m[2]}`);
        const lines = data.toString().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { key: string; value: any });
        const header = lines.find((l) => l.key === 'header')?.value;
        const c: MockCommit = { repo: m[1]!, revision: m[2]!, summary: header?.summary, description: header?.description, files: new Map(), lfsFiles: new Map() };
        for (const l of lines) {
          if (l.key === 'file') c.files.set(l.value.path, Buffer.from(l.value.content, l.value.encoding === 'base64' ? 'base64' : 'utf8'));
          if (l.key === 'lfsFile') {
            if (!hub.lfs.has(l.value.oid)) return error(res, 422, `LFS object ${l.value.oid} of ${l.value.path} was never uploaded`);
            c.lfsFiles.set(l.value.path, { oid: l.value.oid, size: l.value.size });
          }
        }
        hub.commits.push(c);
        const oid = sha256(Buffer.from(`${hub.commits.length}`)).slice(0, 40);
        return json(res, 200, { commitOid: oid, commitUrl: `${base}/${m[1]}/commit/${oid}`, hookOutput: '' });
      }
      error(res, 404, `mock hub: no route for ${req.method} ${path}`);
    } catch (e) {
      error(res, 500, String((e as Error).message));
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { ...hub, url: base, close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }) };
}
