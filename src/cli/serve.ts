import { modelDir, num, parse } from './args.ts';
import { LOAD_FLAGS, loadHelp, loadOptions, noteDefaultAccuracy } from './load-flags.ts';
import { serve } from '../serve/server.ts';
import { fail } from '../errors.ts';

export const HELP = `gptq serve [model] [--host 127.0.0.1] [--port 8080] [--max-batch 8] [--max-queue 64] [--ctx N]
           [--prefill-chunk 256] [--api-key KEY] [--model-id NAME] [--accuracy-level 4|0]
  OpenAI-compatible HTTP server with continuous batching: GET /v1/models, POST /v1/chat/completions,
  POST /v1/completions (streaming or not), GET /health, GET /metrics (Prometheus). model defaults to the embedded
  stories260K. Requests share batched decode steps over --max-batch KV slots of --ctx positions each (default
  min(max_position_embeddings, 2048)); prompts are prefilled --prefill-chunk tokens at a time between decode steps
  (smaller: lower worst inter-token latency for running requests; larger: faster first tokens and bigger batches);
  up to --max-queue requests wait for a slot, more get 429. --api-key (or env GPTQJS_API_KEY) requires
  "Authorization: Bearer KEY" on every route but /health. Binds 127.0.0.1 unless --host says otherwise.
  Stops on SIGINT / SIGTERM.
${loadHelp(4).split('\n').filter((l) => !l.includes('--attention')).join('\n')}`;

export async function run(argv: string[]): Promise<void> {
  const { values: v, positionals: p } = parse(argv, {
    ...LOAD_FLAGS, host: { type: 'string' }, port: { type: 'string' }, 'max-batch': { type: 'string' },
    'max-queue': { type: 'string' }, ctx: { type: 'string' }, 'prefill-chunk': { type: 'string' }, 'api-key': { type: 'string' },
    'model-id': { type: 'string' },
  });
  if (v.help) return console.log(HELP);
  if (v.attention !== undefined) fail('--attention: serve always uses the KV-slot graph (continuous batching)');
  if (p.length > 1) fail(`serve takes one model, got ${p.length} positionals`);
  const int = (name: string, value: string | undefined) => {
    const n = num(value, name);
    if (n !== undefined && !Number.isInteger(n)) fail(`--${name}: "${value}" is not an integer`);
    return n;
  };
  const lo = loadOptions(v, 4);
  const { attention: _, ...load } = lo;
  const s = await serve({
    ...load, model: p[0] ?? (await modelDir(undefined)), modelId: v['model-id'], host: v.host, port: int('port', v.port),
    maxBatch: int('max-batch', v['max-batch']), maxQueue: int('max-queue', v['max-queue']), ctx: int('ctx', v.ctx),
    prefillChunk: int('prefill-chunk', v['prefill-chunk']), apiKey: v['api-key'] ?? (process.env.GPTQJS_API_KEY || undefined),
  });
  noteDefaultAccuracy(v, s.model, lo);
  console.log(`gptq serve: ${s.modelId} on ${s.url} (max batch ${s.engine.maxBatch}, context ${s.engine.capacity}, queue ${s.engine.maxQueue}${v['api-key'] || process.env.GPTQJS_API_KEY ? ', API key required' : ''})`);
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      process.stderr.write(`[gptqjs] ${sig}: shutting down\n`);
      s.close().then(resolve, resolve);
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}
