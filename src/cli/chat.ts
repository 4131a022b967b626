import { createInterface } from 'node:readline';
import { MODEL_ARG, modelDir } from './args.ts';
import { checkContext, loadFlags, loadOptions, noteDefaultAccuracy, samplingFlags, samplingOptions } from './load-flags.ts';
import { commandHelp, parseCommand, type CommandSpec } from './flags.ts';
import { createOutput } from './output.ts';
import { loadAnyModel } from '../runtime/load.ts';
import { generate } from '../runtime/generate.ts';
import type { KvCache } from '../runtime/causal-lm.ts';
import type { ChatMessage } from '../io/tokenizer.ts';
import { chatPrompt, FALLBACK_STOP, transcriptNote } from '../runtime/chat-prompt.ts';
import { StopAwareStream } from '../runtime/text-stream.ts';
import { fail } from '../errors.ts';

export const COMMAND = {
  name: 'chat',
  description: `Interactive chat, streaming replies. Uses the tokenizer's chat template (tokenizer_config.json chat_template or
chat_template.jinja); models without one get a plain "User: … / Assistant: …" transcript (a note says so; a
reply ends at eos or at the next "User:"). Reads lines from stdin, so it can be piped. Earlier turns stay in the
KV cache: each turn only prefills what is new. The seed grows by one per turn.
commands while chatting: /reset (forget the conversation), /exit (or end of input), /help`,
  positionals: [MODEL_ARG],
  flags: [
    { name: 'system', type: 'string', metavar: 'TEXT', help: 'system message at the start of the conversation' },
    { name: 'show-prompt', type: 'boolean', help: 'print the rendered conversation (chat template applied) to stderr each turn' },
    ...samplingFlags(256),
    ...loadFlags(4),
  ],
} as const satisfies CommandSpec;

export const HELP = commandHelp(COMMAND);

export async function run(argv: string[]): Promise<void> {
  const { values: v, positionals: p, given, help } = parseCommand(COMMAND, argv);
  if (help) return console.log(HELP);
  const ui = createOutput({ json: false });
  const lo = loadOptions(v, ui.note);
  const dir = await modelDir(p[0], { command: 'chat', promptHint: 'gptq chat reads your messages from stdin (type them after it starts, or pipe them)', onProgress: ui.progress });
  const { model, tokenizer: tok, gen } = await loadAnyModel(dir, lo);
  noteDefaultAccuracy(given, model, lo, ui.note);
  if (!tok) fail(`${dir} has no tokenizer.json: chat needs one`);
  const sampling = samplingOptions(v, gen);
  const eosIds = ([] as number[]).concat(gen.eosTokenId ?? model.cfg.eosTokenId ?? tok.eosId ?? []);
  const stops = tok.chatTemplate ? [] : [FALLBACK_STOP];
  const tty = !!process.stdin.isTTY;
  if (!tok.chatTemplate) ui.note(`note: ${transcriptNote(dir)}`);
  process.stderr.write(`chat with ${dir} (${model.cfg.modelType}, attention ${model.attention}). /reset clears the conversation, /exit quits.\n`);
  const system: ChatMessage[] = v.system ? [{ role: 'system', content: v.system }] : [];
  let messages: ChatMessage[] = [...system];
  // KV cache of the conversation so far and the tokens it holds (reused as a prefix by the next turn).
  let cache: KvCache | undefined;
  let cached: number[] = [];
  let seed = sampling.seed;
  const rl = createInterface({ input: process.stdin, terminal: tty });
  const ask = () => { if (tty) process.stdout.write('you> '); };
  ask();
  for await (const raw of rl) {
    const line = raw.trim();
    if (!line) { ask(); continue; }
    if (line === '/exit' || line === '/quit') break;
    if (line === '/help') { process.stderr.write('/reset clears the conversation, /exit quits; anything else is your message\n'); ask(); continue; }
    if (line === '/reset') { messages = [...system]; cache = undefined; cached = []; process.stderr.write('[conversation reset]\n'); ask(); continue; }
    messages.push({ role: 'user', content: line });
    const { ids, text } = chatPrompt(tok, messages);
    if (v['show-prompt']) process.stderr.write(`${text}\n`);
    // Longest common prefix with what the cache holds; at least one new token is fed.
    let lcp = 0;
    while (lcp < cached.length && lcp < ids.length - 1 && cached[lcp] === ids[lcp]) lcp++;
    const prior = cache && lcp > 0 ? model.truncateCache(cache, lcp) : undefined;
    const prompt = ids.slice(prior ? lcp : 0);
    process.stdout.write('assistant> ');
    // the reply as streamed (exact text, cut at a stop string, trimmed as it is stored)
    const out = new StopAwareStream(stops, (s) => process.stdout.write(s), { trim: true });
    checkContext(model, (prior ? lcp : 0) + prompt.length, sampling.maxNewTokens, ui.note);
    const r = await generate(model, [prompt], {
      ...sampling, cache: prior, seed: seed++,
      eosTokenIds: eosIds, stopStrings: stops, tokenizer: tok, onText: (_, text) => { out.push(text); },
    });
    const reply = out.final();
    process.stdout.write('\n');
    messages.push({ role: 'assistant', content: reply });
    cache = r.cache;
    cached = [...(prior ? ids.slice(0, lcp) : []), ...prompt, ...r.tokens[0]!].slice(0, r.cache.length);
    ask();
  }
  rl.close();
  await model.dispose();
}
