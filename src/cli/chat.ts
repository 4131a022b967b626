import { createInterface } from 'node:readline';
import { modelDir, num, parse } from './args.ts';
import { LOAD_FLAGS, loadHelp, loadOptions, noteDefaultAccuracy } from './load-flags.ts';
import { loadAnyModel } from '../runtime/load.ts';
import { generate } from '../runtime/generate.ts';
import type { KvCache } from '../runtime/causal-lm.ts';
import type { ChatMessage } from '../io/tokenizer.ts';
import { chatPrompt, FALLBACK_STOP } from '../runtime/chat-prompt.ts';
import { StopAwareStream } from '../runtime/text-stream.ts';
import { fail } from '../errors.ts';

export const HELP = `gptq chat [model] [--system TEXT] [--max-new-tokens 256] [--temperature T] [--top-k K] [--top-p P]
          [--repetition-penalty R] [--seed S] [--show-prompt]
  Interactive chat, streaming replies. Uses the tokenizer's chat template (tokenizer_config.json chat_template or
  chat_template.jinja); models without one get a plain "User: … / Assistant: …" transcript (a note says so; a
  reply ends at eos or at the next "User:"). Reads lines from stdin, so it can be piped. Earlier turns stay in the
  KV cache: each turn only prefills what is new.
  commands: /reset (forget the conversation), /exit (or end of input), /help
${loadHelp(4)}`;

export async function run(argv: string[]): Promise<void> {
  const { values: v, positionals: p } = parse(argv, {
    ...LOAD_FLAGS, system: { type: 'string' }, 'max-new-tokens': { type: 'string' }, temperature: { type: 'string' },
    'top-k': { type: 'string' }, 'top-p': { type: 'string' }, 'repetition-penalty': { type: 'string' }, seed: { type: 'string' },
    'show-prompt': { type: 'boolean' },
  });
  if (v.help) return console.log(HELP);
  const dir = await modelDir(p[0]);
  const lo = loadOptions(v, 4);
  const { model, tokenizer: tok, gen } = await loadAnyModel(dir, lo);
  noteDefaultAccuracy(v, model, lo);
  if (!tok) fail(`${dir} has no tokenizer.json: chat needs one`);
  const eosIds = ([] as number[]).concat(gen.eosTokenId ?? model.cfg.eosTokenId ?? tok.eosId ?? []);
  const stops = tok.chatTemplate ? [] : [FALLBACK_STOP];
  const tty = !!process.stdin.isTTY;
  if (!tok.chatTemplate) process.stderr.write(`note: ${dir} has no chat template; using a plain "User: …\\nAssistant: …" transcript (a reply ends at eos or "User:")\n`);
  process.stderr.write(`chat with ${dir} (${model.cfg.modelType}, attention ${model.attention}). /reset clears the conversation, /exit quits.\n`);
  const system: ChatMessage[] = v.system ? [{ role: 'system', content: v.system }] : [];
  let messages: ChatMessage[] = [...system];
  // KV cache of the conversation so far and the tokens it holds (reused as a prefix by the next turn).
  let cache: KvCache | undefined;
  let cached: number[] = [];
  let seed = num(v.seed, 'seed', 0);
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
    const out = new StopAwareStream(stops, (s) => process.stdout.write(s));
    const replyIds: number[] = [];
    const r = await generate(model, [prompt], {
      maxNewTokens: num(v['max-new-tokens'], 'max-new-tokens', 256), cache: prior,
      temperature: num(v.temperature, 'temperature', 0), topK: num(v['top-k'], 'top-k', gen.topK), topP: num(v['top-p'], 'top-p', gen.topP),
      repetitionPenalty: num(v['repetition-penalty'], 'repetition-penalty', gen.repetitionPenalty), seed: seed++,
      eosTokenIds: eosIds, stopStrings: stops, decode: (t) => tok.decode(t),
      onToken: (_, t) => { replyIds.push(t); out.update(tok.decode(replyIds)); },
    });
    const reply = out.final().trim();
    process.stdout.write('\n');
    messages.push({ role: 'assistant', content: reply });
    cache = r.cache;
    cached = [...(prior ? ids.slice(0, lcp) : []), ...prompt, ...r.tokens[0]!].slice(0, r.cache.length);
    ask();
  }
  rl.close();
  await model.release();
}
