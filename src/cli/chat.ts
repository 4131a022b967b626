import { createInterface } from 'node:readline';
import { modelDir, num, parse } from './args.ts';
import { LOAD_FLAGS, loadHelp, loadOptions, noteDefaultAccuracy } from './load-flags.ts';
import { loadAnyModel } from '../runtime/load.ts';
import { generate } from '../runtime/generate.ts';
import type { KvCache } from '../runtime/causal-lm.ts';
import type { ChatMessage, TextTokenizer } from '../io/tokenizer.ts';
import { fail } from '../errors.ts';

export const HELP = `gptq chat [model] [--system TEXT] [--max-new-tokens 256] [--temperature T] [--top-k K] [--top-p P]
          [--repetition-penalty R] [--seed S] [--show-prompt]
  Interactive chat, streaming replies. Uses the tokenizer's chat template (tokenizer_config.json chat_template or
  chat_template.jinja); models without one get a plain "User: … / Assistant: …" transcript (a note says so; a
  reply ends at eos or at the next "User:"). Reads lines from stdin, so it can be piped. Earlier turns stay in the
  KV cache: each turn only prefills what is new.
  commands: /reset (forget the conversation), /exit (or end of input), /help
${loadHelp(4)}`;

const FALLBACK_STOP = '\nUser:';

/** The token ids of the whole conversation so far, ending where the assistant's reply starts. */
function renderConversation(tok: TextTokenizer, messages: ChatMessage[]): { ids: number[]; text: string } {
  if (tok.chatTemplate) {
    const text = tok.applyChatTemplate(messages, { addGenerationPrompt: true });
    return { ids: tok.encode(text, { addSpecialTokens: false }), text };
  }
  let text = '';
  for (const m of messages) {
    if (m.role === 'system') text += `${m.content}\n\n`;
    else text += `${m.role === 'user' ? 'User' : 'Assistant'}: ${m.content}\n`;
  }
  text += 'Assistant:';
  return { ids: tok.encode(text), text };
}

/**
 * Streams a reply given piece by piece, holding back any tail that could be the start of a stop string, and
 * leading/trailing whitespace (the reply is stored trimmed). Each piece costs O(its length + stop lengths), not
 * O(reply).
 */
class StopAwareStream {
  private text = '';
  private printed = 0;
  private readonly longest: number;
  constructor(private readonly stops: string[], private readonly write: (s: string) => void) {
    this.longest = Math.max(0, ...stops.map((s) => s.length));
  }
  /** Add the next piece of the reply; returns true once a stop string appeared (the reply is cut before it). */
  append(piece: string): boolean {
    const from = Math.max(0, this.text.length - this.longest + 1);
    this.text += piece;
    const cut = this.stopAt(from);
    if (cut >= 0) { this.emit(cut); return true; }
    let safe = this.text.trimEnd().length; // trailing whitespace waits: the stored reply is trimmed
    for (const s of this.stops) for (let k = Math.min(s.length - 1, this.text.length); k > 0; k--) {
      if (this.text.endsWith(s.slice(0, k))) { safe = Math.min(safe, this.text.length - k); break; }
    }
    this.emit(safe);
    return false;
  }
  private stopAt(from: number): number {
    let cut = -1;
    for (const s of this.stops) { const i = this.text.indexOf(s, from); if (i >= 0 && (cut < 0 || i < cut)) cut = i; }
    return cut;
  }
  private emit(end: number) {
    if (this.printed === 0) while (end > this.printed && /\s/.test(this.text[this.printed]!)) this.printed++;
    if (end > this.printed) { this.write(this.text.slice(this.printed, end)); this.printed = end; }
  }
  /** The reply without any stop string and without surrounding whitespace. */
  final(): string {
    const cut = this.stopAt(0);
    const t = cut >= 0 ? this.text.slice(0, cut) : this.text;
    this.emit(t.trimEnd().length);
    return t.trim();
  }
}

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
    const { ids, text } = renderConversation(tok, messages);
    if (v['show-prompt']) process.stderr.write(`${text}\n`);
    // Longest common prefix with what the cache holds; at least one new token is fed.
    let lcp = 0;
    while (lcp < cached.length && lcp < ids.length - 1 && cached[lcp] === ids[lcp]) lcp++;
    const prior = cache && lcp > 0 ? model.truncateCache(cache, lcp) : undefined;
    const prompt = ids.slice(prior ? lcp : 0);
    process.stdout.write('assistant> ');
    const out = new StopAwareStream(stops, (s) => process.stdout.write(s));
    const r = await generate(model, [prompt], {
      maxNewTokens: num(v['max-new-tokens'], 'max-new-tokens', 256), cache: prior,
      temperature: num(v.temperature, 'temperature', 0), topK: num(v['top-k'], 'top-k', gen.topK), topP: num(v['top-p'], 'top-p', gen.topP),
      repetitionPenalty: num(v['repetition-penalty'], 'repetition-penalty', gen.repetitionPenalty), seed: seed++,
      eosTokenIds: eosIds, stopStrings: stops, tokenizer: tok, onText: (_, text) => out.append(text),
    });
    const reply = out.final();
    process.stdout.write('\n');
    messages.push({ role: 'assistant', content: reply });
    cache = r.cache;
    cached = [...(prior ? ids.slice(0, lcp) : []), ...prompt, ...r.tokens[0]!].slice(0, r.cache.length);
    ask();
  }
  rl.close();
  await model.release();
}
