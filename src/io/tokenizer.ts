/** Tokenizer wrapper over @huggingface/tokenizers (tokenizer.json) + chat templates (@huggingface/jinja). */
import { promises as fs } from '../platform/fs.ts';
import { join } from '../platform/path.ts';
import { Tokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';
import { fail } from '../errors.ts';

export interface ChatMessage { role: string; content: unknown; [k: string]: unknown }

async function readJsonFile(path: string): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try { text = await fs.readFile(path, 'utf8'); } catch (e: any) {
    if (e.code === 'ENOENT') return undefined;
    fail(`${path}: cannot read (${e.message})`);
  }
  let v: unknown;
  try { v = JSON.parse(text); } catch (e: any) { fail(`${path}: not valid JSON (${String(e.message).split('\n')[0]})`); }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(`${path}: expected a JSON object`);
  return v as Record<string, unknown>;
}

/** A special token in tokenizer_config may be a string or an AddedToken object {content}. */
function tokenContent(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as any).content === 'string') return (v as any).content;
  return undefined;
}

/** chat_template may be a string or a list of {name, template} (use "default"). */
function pickTemplate(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) {
    const named = v.find((t) => t?.name === 'default') ?? v[0];
    return typeof named?.template === 'string' ? named.template : undefined;
  }
  return undefined;
}

export class TextTokenizer {
  readonly bosId?: number;
  readonly eosId?: number;
  readonly padId?: number;
  readonly vocabSize: number;
  readonly chatTemplate?: string;
  private specialStrings: Record<string, string> = {};
  private compiled?: Template;

  constructor(readonly tok: Tokenizer, readonly config: Record<string, unknown>, chatTemplate?: string) {
    const id = (k: string): number | undefined => {
      const c = tokenContent(config[k]);
      if (c === undefined) return undefined;
      this.specialStrings[k] = c;
      return tok.token_to_id(c);
    };
    this.bosId = id('bos_token');
    this.eosId = id('eos_token');
    this.padId = id('pad_token');
    id('unk_token');
    this.vocabSize = tok.get_vocab(true).size;
    this.chatTemplate = chatTemplate ?? pickTemplate(config.chat_template);
  }

  /** Load tokenizer.json (+ tokenizer_config.json, special_tokens_map.json, chat_template.jinja/.json) from dir. */
  static async fromDir(dir: string): Promise<TextTokenizer> {
    const tjPath = join(dir, 'tokenizer.json');
    const tj = await readJsonFile(tjPath);
    if (!tj) fail(`no tokenizer.json in ${dir} (only tokenizer.json tokenizers are supported)`);
    const cfg = (await readJsonFile(join(dir, 'tokenizer_config.json'))) ?? {};
    // special_tokens_map.json fills special tokens the config leaves out (as transformers does).
    const stm = (await readJsonFile(join(dir, 'special_tokens_map.json'))) ?? {};
    for (const k of ['bos_token', 'eos_token', 'pad_token', 'unk_token']) if (cfg[k] == null && stm[k] != null) cfg[k] = stm[k];
    let template: string | undefined;
    try { template = await fs.readFile(join(dir, 'chat_template.jinja'), 'utf8'); } catch { /* optional */ }
    if (template === undefined) template = pickTemplate((await readJsonFile(join(dir, 'chat_template.json')))?.chat_template);
    let tok: Tokenizer;
    try { tok = new Tokenizer(tj, cfg); } catch (e: any) { fail(`${tjPath}: cannot build tokenizer (${String(e.message).split('\n')[0]})`); }
    return new TextTokenizer(tok, cfg, template);
  }

  /** Token ids; addSpecialTokens honours tokenizer_config add_bos_token/add_eos_token like transformers' Llama/Gemma tokenizers. */
  encode(text: string, { addSpecialTokens = true }: { addSpecialTokens?: boolean } = {}): number[] {
    let ids = this.tok.encode(text, { add_special_tokens: addSpecialTokens }).ids;
    if (!addSpecialTokens) return ids;
    const { add_bos_token: ab, add_eos_token: ae } = this.config;
    const bos = this.bosId, eos = this.eosId;
    let plain: number[] | undefined;
    const plainIds = () => (plain ??= this.tok.encode(text, { add_special_tokens: false }).ids);
    if (bos !== undefined) {
      if (ab === true && ids[0] !== bos) ids = [bos, ...ids];
      else if (ab === false && ids[0] === bos && plainIds()[0] !== bos) ids = ids.slice(1);
    }
    if (eos !== undefined) {
      if (ae === true && ids[ids.length - 1] !== eos) ids = [...ids, eos];
      else if (ae === false && ids.length && ids[ids.length - 1] === eos && plainIds().at(-1) !== eos) ids = ids.slice(0, -1);
    }
    return ids;
  }

  decode(ids: ArrayLike<number>, { skipSpecialTokens = true }: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return ''; // the library rejects empty arrays
    return this.tok.decode(Array.from(ids), { skip_special_tokens: skipSpecialTokens });
  }

  tokenToId(token: string): number | undefined { return this.tok.token_to_id(token); }
  idToToken(id: number): string | undefined { return this.tok.id_to_token(id); }

  /** Render the chat template (variables as transformers passes them: messages, add_generation_prompt, bos_token/eos_token/…). */
  applyChatTemplate(messages: ChatMessage[], { addGenerationPrompt = false, extra = {} }: { addGenerationPrompt?: boolean; extra?: Record<string, unknown> } = {}): string {
    if (!this.chatTemplate) fail('tokenizer has no chat_template (tokenizer_config.json / chat_template.jinja)');
    try { this.compiled ??= new Template(this.chatTemplate); } catch (e: any) {
      fail(`chat_template: cannot parse (${String(e.message).split('\n')[0]})`);
    }
    try {
      return this.compiled.render({
        ...this.specialStrings, ...extra, messages, add_generation_prompt: addGenerationPrompt,
      }); // raise_exception / strftime_now are @huggingface/jinja globals
    } catch (e: any) {
      fail(`chat_template: ${String(e.message).split('\n')[0]}`);
    }
  }

  /** Chat template rendered then tokenized without adding special tokens (the template carries them). */
  encodeChat(messages: ChatMessage[], opts: { addGenerationPrompt?: boolean } = {}): number[] {
    return this.encode(this.applyChatTemplate(messages, opts), { addSpecialTokens: false });
  }
}

/**
 * Incremental detokenizer: decodes the whole sequence so far and emits the new suffix, holding back text that
 * ends in U+FFFD (an incomplete byte-fallback UTF-8 sequence). Correct for SentencePiece "▁" spaces.
 */
export class StreamDecoder {
  private ids: number[] = [];
  private printed = 0;
  constructor(private readonly tok: { decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string },
              private readonly opts: { skipSpecialTokens?: boolean } = {}) {}

  push(id: number): string {
    this.ids.push(id);
    const text = this.tok.decode(this.ids, this.opts);
    let end = text.length;
    while (end > 0 && text.charCodeAt(end - 1) === 0xfffd) end--;
    if (end <= this.printed) return '';
    const out = text.slice(this.printed, end);
    this.printed = end;
    return out;
  }

  /** Whatever is still held back (e.g. a trailing U+FFFD that never completed). */
  flush(): string {
    const text = this.tok.decode(this.ids, this.opts);
    const out = text.length > this.printed ? text.slice(this.printed) : '';
    this.printed = Math.max(this.printed, text.length);
    return out;
  }

  reset(): void { this.ids = []; this.printed = 0; }
}
