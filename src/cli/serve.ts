/** `gptq serve`: the OpenAI-compatible server (src/serve/server.ts) from the command line. */
import { MODEL_ARG, modelDir } from './args.ts';
import { loadFlags, loadOptions, noteDefaultAccuracy } from './load-flags.ts';
import { commandHelp, parseCommand, type CommandSpec } from './flags.ts';
import { serve } from '../serve/server.ts';
import { fail } from '../errors.ts';

const S = 'server';

export const COMMAND = {
  name: 'serve',
  description: `OpenAI-compatible HTTP server with continuous batching: GET /v1/models, POST /v1/chat/completions,
POST /v1/completions (streaming or not), GET /health, GET /metrics (Prometheus). Requests share batched decode steps
over --max-batch KV slots of --ctx positions each; prompts are prefilled --prefill-chunk tokens at a time between
decode steps (smaller: lower worst inter-token latency for running requests; larger: faster first tokens and bigger
batches); up to --max-queue requests wait for a slot, more get 429. --api-key (or env GPTQJS_API_KEY) requires
"Authorization: Bearer KEY" on every route but /health. Binds 127.0.0.1 unless --host says otherwise.
Stops on SIGINT / SIGTERM.`,
  positionals: [MODEL_ARG],
  flags: [
    { name: 'host', type: 'string', metavar: 'ADDR', default: '127.0.0.1', group: S, help: 'address to bind (0.0.0.0 exposes the server to the network)' },
    { name: 'port', type: 'int', min: 0, max: 65535, metavar: 'N', default: 8080, note: '0 = any free port', group: S, help: 'TCP port' },
    { name: 'max-batch', type: 'int', min: 1, metavar: 'N', default: 8, group: S, help: 'KV slots: requests decoded together' },
    { name: 'max-queue', type: 'int', min: 0, metavar: 'N', default: 64, group: S, help: 'requests waiting for a slot before 429' },
    { name: 'ctx', type: 'int', min: 2, metavar: 'N', defaultText: 'min(max_position_embeddings, 2048)', group: S, help: 'positions per slot (prompt + generated tokens)' },
    { name: 'prefill-chunk', type: 'int', min: 1, metavar: 'N', default: 256, group: S, help: 'prompt tokens prefilled per step between decode steps' },
    { name: 'api-key', type: 'string', metavar: 'KEY', defaultText: '$GPTQJS_API_KEY', group: S, help: 'require Authorization: Bearer KEY (compared in constant time)' },
    { name: 'model-id', type: 'string', metavar: 'NAME', defaultText: 'the model folder\'s name', group: S, help: 'the id /v1/models lists and requests name' },
    ...loadFlags(4).filter((f) => f.name !== 'attention'),
  ],
  epilog: 'example:\n  npx gptq serve ./llama-gptq-4bit --port 8080 --max-batch 8\n  curl http://127.0.0.1:8080/v1/chat/completions -d \'{"model":"llama-gptq-4bit","messages":[{"role":"user","content":"Hi"}]}\'',
} as const satisfies CommandSpec;

export const HELP = commandHelp(COMMAND);

export async function run(argv: string[]): Promise<void> {
  const { values: v, positionals: p, given, help } = parseCommand(COMMAND, argv);
  if (help) return console.log(HELP);
  if (p.length > 1) fail(`serve takes one model, got ${p.length} arguments`);
  const log = (msg: string) => process.stderr.write(`[gptqjs] ${msg}\n`);
  const { attention: _, ...load } = loadOptions({ ...v, attention: 'auto' }, log);
  const apiKey = v['api-key'] ?? (process.env.GPTQJS_API_KEY || undefined);
  const s = await serve({
    ...load, model: await modelDir(p[0], { command: 'serve' }), modelId: v['model-id'], host: v.host, port: v.port,
    maxBatch: v['max-batch'], maxQueue: v['max-queue'], ctx: v.ctx, prefillChunk: v['prefill-chunk'], apiKey,
  });
  noteDefaultAccuracy(given, s.model, load, log);
  console.log(`gptq serve: ${s.modelId} on ${s.url} (max batch ${s.engine.maxBatch}, context ${s.engine.capacity}, queue ${s.engine.maxQueue}${apiKey ? ', API key required' : ''})`);
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      log(`${sig}: shutting down`);
      s.close().then(resolve, resolve);
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}
