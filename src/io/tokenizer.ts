/** Tokenizer wrapper over @huggingface/tokenizers (tokenizer.json) + chat templates (@huggingface/jinja). */
import { promises as fs } from '../platform/fs.ts';
import { join } from '../platform/path.ts';
import * as tokenizersLib from '@huggingface/tokenizers';
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

/** The decoder classes the library exports at run time (its .d.ts re-exports do not resolve under NodeNext). */
interface LibDecoder { config: Record<string, unknown>; decode_chain(tokens: string[]): string[]; decoders?: LibDecoder[] }
type DecoderClass = abstract new (...args: never[]) => LibDecoder;
const { ByteFallbackDecoder, MetaspaceDecoder, SequenceDecoder } = tokenizersLib as unknown as Record<'ByteFallbackDecoder' | 'MetaspaceDecoder' | 'SequenceDecoder', DecoderClass>;
interface LibNormalizer { config: Record<string, unknown>; normalize(text: string): string; normalizers?: (LibNormalizer | null)[] }
type NormalizerClass = abstract new (...args: never[]) => LibNormalizer;
const { PrependNormalizer, SequenceNormalizer } = tokenizersLib as unknown as Record<'PrependNormalizer' | 'SequenceNormalizer', NormalizerClass>;

/** Rust `tokenizers` prepends nothing to an empty string (normalizers/prepend.rs); the JS library does, so "\n" → "▁". */
function alignNormalizer(n: LibNormalizer | null | undefined): void {
  const is = (c: NormalizerClass) => n instanceof c;
  if (!n) return;
  if (is(SequenceNormalizer)) (n.normalizers ?? []).forEach(alignNormalizer);
  else if (is(PrependNormalizer)) {
    const prepend = String(n.config.prepend ?? '');
    n.normalize = (text: string) => (text === '' ? '' : prepend + text);
  }
}

const BYTE_TOKEN = /^<0x[0-9A-Fa-f]{2}>$/;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Make the decoders of @huggingface/tokenizers 0.2 decode like the Rust `tokenizers` crate behind Transformers
 * (tokenizers/src/decoders/byte_fallback.rs and metaspace.rs); test/fixtures/tokenizers/cases.json holds the
 * reference decodes. ByteFallback: a run of <0xXX> tokens that is valid UTF-8 becomes its text, otherwise one U+FFFD
 * per byte (the JS library decodes leniently, one U+FFFD per invalid subsequence, drops a BOM and reads "<0x4G>" as
 * a byte). Metaspace: every replacement character of the first token is dropped unless prepend_scheme is "never"
 * (the JS library drops only a leading one, for "never" too). Returns whether a ByteFallback decoder is present.
 */
function alignDecoder(d: LibDecoder | null): boolean {
  const is = (c: DecoderClass) => d instanceof c; // a boolean: the three classes share one declared shape
  if (!d) return false;
  if (is(SequenceDecoder)) return (d.decoders ?? []).map(alignDecoder).some(Boolean);
  if (is(ByteFallbackDecoder)) {
    d.decode_chain = (tokens: string[]): string[] => {
      const out: string[] = [];
      let bytes: number[] = [];
      const end = () => {
        if (!bytes.length) return;
        try { out.push(strictUtf8.decode(Uint8Array.from(bytes))); } catch { out.push('\ufffd'.repeat(bytes.length)); }
        bytes = [];
      };
      for (const t of tokens) {
        if (BYTE_TOKEN.test(t)) bytes.push(parseInt(t.slice(3, 5), 16));
        else { end(); out.push(t); }
      }
      end();
      return out;
    };
    return true;
  }
  if (is(MetaspaceDecoder)) {
    const cfg = d.config as { replacement?: string; prepend_scheme?: string; add_prefix_space?: boolean };
    const rep = cfg.replacement ?? '\u2581';
    const never = (cfg.prepend_scheme ?? (cfg.add_prefix_space === false ? 'never' : 'always')) === 'never';
    d.decode_chain = (tokens: string[]): string[] => tokens.map((t, i) => t.replaceAll(rep, i === 0 && !never ? '' : ' '));
  }
  return false;
}

export class TextTokenizer {
  readonly bosId?: number;
  readonly eosId?: number;
  readonly padId?: number;
  readonly vocabSize: number;
  readonly chatTemplate?: string;
  /**
   * decode() applies clean_up_tokenization (" ." → "." …) as Transformers 5 does: when tokenizer_config says
   * clean_up_tokenization_spaces: true (default false), and not for BPE models unless
   * clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output is also set
   * (transformers/tokenization_utils_tokenizers.py _decode).
   */
  readonly cleanUpTokenizationSpaces: boolean;
  private specialStrings: Record<string, string> = {};
  private compiled?: Template;
  /** Ids of the <0xXX> byte-fallback pieces, when the decoder has a ByteFallback step. */
  private byteIds?: Set<number>;
  /** Ids that decode({ skipSpecialTokens: true }) drops: added tokens marked special, additional_special_tokens. */
  private specialIds = new Set<number>();
  private unkId?: number;

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
    const vocab = tok.get_vocab(true);
    this.vocabSize = vocab.size;
    this.chatTemplate = chatTemplate ?? pickTemplate(config.chat_template);
    const modelType = (tok.model?.config as { type?: string } | undefined)?.type;
    this.cleanUpTokenizationSpaces = config.clean_up_tokenization_spaces === true
      && (modelType !== 'BPE' || config.clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output === true);
    alignNormalizer(tok.normalizer as unknown as LibNormalizer | null);
    if (alignDecoder(tok.decoder as unknown as LibDecoder | null)) {
      this.byteIds = new Set();
      for (const [t, i] of vocab) if (BYTE_TOKEN.test(t)) this.byteIds.add(i);
    }
    for (const [i, a] of tok.get_added_tokens_decoder()) if (a.special) this.specialIds.add(i);
    const extra = config.additional_special_tokens;
    if (Array.isArray(extra)) for (const t of extra) { const i = tok.token_to_id(tokenContent(t) ?? ''); if (i !== undefined) this.specialIds.add(i); }
    const unk = tok.model?.unk_token ?? (tok.model?.config as { unk_token?: string } | undefined)?.unk_token;
    this.unkId = unk === undefined ? undefined : tok.token_to_id(unk);
  }

  /** True for a <0xXX> byte-fallback piece of a tokenizer whose decoder joins such runs into UTF-8 text. */
  isByteFallbackToken(id: number): boolean { return this.byteIds?.has(id) ?? false; }
  /** True for an id that decode() drops with skipSpecialTokens. */
  isSpecialToken(id: number): boolean { return this.specialIds.has(id); }

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
    let ids = this.withUnk(this.tok.encode(text, { add_special_tokens: addSpecialTokens }).ids);
    if (!addSpecialTokens) return ids;
    const { add_bos_token: ab, add_eos_token: ae } = this.config;
    const bos = this.bosId, eos = this.eosId;
    let plain: number[] | undefined;
    const plainIds = () => (plain ??= this.withUnk(this.tok.encode(text, { add_special_tokens: false }).ids));
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

  /**
   * Text of token ids, as Transformers' tokenizer.decode (Rust `tokenizers` decoders, clean_up_tokenization when
   * enabled, see cleanUpTokenizationSpaces). skipSpecialTokens (default true) drops added tokens marked special.
   */
  decode(ids: ArrayLike<number>, { skipSpecialTokens = true }: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return ''; // the library rejects empty arrays
    return this.tok.decode(Array.from(ids), { skip_special_tokens: skipSpecialTokens, clean_up_tokenization_spaces: this.cleanUpTokenizationSpaces });
  }

  /** The JS library (no WordLevel model of its own) yields no id for an unknown word; the Rust one gives the unk id. */
  private withUnk(ids: number[]): number[] {
    if (this.unkId === undefined || ids.every((i) => typeof i === 'number')) return ids;
    return ids.map((i) => (typeof i === 'number' ? i : this.unkId!));
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

/** What StreamDecoder needs from a tokenizer; TextTokenizer provides all of it. */
export interface Detokenizer {
  decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string;
  /** decode() applies Transformers' clean_up_tokenization (" ." → "." …), so a trailing " ", " '", " n"… can still change. */
  readonly cleanUpTokenizationSpaces?: boolean;
  /**
   * A <0xXX> byte-fallback piece: one more byte can turn a whole run of them into U+FFFD, so a trailing run is held
   * (with skipSpecialTokens the run goes on across special tokens, which the decoder never sees).
   */
  isByteFallbackToken?(id: number): boolean;
  /** An id decode drops with skipSpecialTokens. */
  isSpecialToken?(id: number): boolean;
}

/**
 * clean_up_tokenization (transformers tokenization_utils_base.py) deletes a space before . ? ! , ' n, decided by at
 * most the next 5 characters, and a later character can undo a deletion (" ' " → "'", but " ' !" → " '!"). So the
 * cleaned text may still change from the first space or . ? ! , ' n among its last CLEANUP_LOOKAHEAD characters, and
 * not before (checked exhaustively on short strings in test/tokenizer-stream.test.ts).
 */
const CLEANUP_LOOKAHEAD = 6;
const CLEANUP_SENSITIVE = " .?!,'n";
/** Prompt tokens kept as decoding context (TGI and vLLM use 5), and the window length at which it is shortened. */
const CONTEXT = 5, MAX_WINDOW = 16;

/**
 * Incremental detokenizer for streaming: push(id) returns the text that id adds, so that the chunks of a
 * generation concatenate to exactly `decode(prompt + generated)` minus `decode(prompt)` (from the first character
 * where they differ, if the prompt itself ends inside an unfinished byte sequence), for every decoder family.
 *
 * Method: text-generation-inference's decode_token (prefix_offset/read_offset): a short window of already-shown ids
 * is decoded together with the new ones and only the difference is emitted, so decoders that treat the first token
 * of a sequence differently (SentencePiece/Metaspace dropping the leading "▁", Strip, WordPiece) do not lose or add a
 * space. The window always holds at least one id that decodes to visible text (a skipped special token alone would
 * make the next token "first"). Text is held back while it could still change: a trailing run of byte-fallback
 * pieces (see Detokenizer.isByteFallbackToken; as the Rust decoder turns a whole run into U+FFFD when any byte is
 * invalid, even a complete character waits for the run to end), a trailing U+FFFD (an unfinished UTF-8 sequence of
 * a byte-level BPE), and, when clean_up_tokenization applies, the last few characters from a space or . ? ! , ' n on. flush() releases what
 * is held, so an invalid byte sequence still comes out (as U+FFFD) at the end. Each push decodes only the window
 * (O(1) ids), not the whole sequence.
 */
export class StreamDecoder {
  /** The window: context ids already shown, then ids whose text is not final yet. */
  private ids: number[] = [];
  /** The text of the window's ids that has been shown (as prompt or as emitted chunks). */
  private shown = '';
  private visible = new Map<number, boolean>();

  /**
   * @param tok the tokenizer (TextTokenizer, or any Detokenizer)
   * @param opts.skipSpecialTokens as in decode (default true); opts.prompt: the prompt ids the generation continues
   */
  constructor(private readonly tok: Detokenizer, private readonly opts: { skipSpecialTokens?: boolean; prompt?: ArrayLike<number> } = {}) {
    this.reset(opts.prompt);
  }

  /** Start a new stream that continues `prompt` (token ids; none = a stream from the start of the sequence). */
  reset(prompt: ArrayLike<number> = []): void {
    const p = Array.from(prompt);
    this.ids = p.slice(this.contextStart(p, p.length - CONTEXT));
    this.shown = this.decode(this.ids);
  }

  /** Feed one generated id; returns the text it completes ('' while held back). */
  push(id: number): string {
    this.ids.push(id);
    const end = this.heldRunStart();
    const text = this.decode(this.ids.slice(0, end));
    let stable = text.length;
    while (stable > 0 && text.charCodeAt(stable - 1) === 0xfffd) stable--;
    if (this.tok.cleanUpTokenizationSpaces)
      for (let p = Math.max(0, stable - CLEANUP_LOOKAHEAD); p < stable; p++) if (CLEANUP_SENSITIVE.includes(text[p]!)) { stable = p; break; }
    const out = this.emit(text, stable);
    if (end === this.ids.length && stable === text.length && this.ids.length > MAX_WINDOW) this.shorten();
    return out;
  }

  /** End of the stream: everything still held (e.g. U+FFFD for bytes that never formed a character). */
  flush(): string {
    const text = this.decode(this.ids);
    const out = this.emit(text, text.length);
    this.shorten();
    return out;
  }

  private get skip(): boolean { return this.opts.skipSpecialTokens ?? true; }

  private decode(ids: number[]): string {
    return ids.length ? this.tok.decode(ids, { skipSpecialTokens: this.skip }) : '';
  }

  /** Start of the trailing run of byte-fallback pieces (and skipped special tokens inside it), or ids.length. */
  private heldRunStart(): number {
    const isByte = this.tok.isByteFallbackToken?.bind(this.tok);
    if (!isByte) return this.ids.length;
    const skipped = (i: number) => this.skip && (this.tok.isSpecialToken?.(i) ?? false);
    let end = this.ids.length, run = this.ids.length;
    while (end > 0 && (isByte(this.ids[end - 1]!) || skipped(this.ids[end - 1]!))) if (isByte(this.ids[--end]!)) run = end;
    return run;
  }

  /**
   * Emit text[shown.length, stable). Text already shown can differ from `text` only where a prompt ended in
   * unfinished text; such a difference is accepted (and the new text emitted from there) once it is stable.
   */
  private emit(text: string, stable: number): string {
    let k = 0;
    const n = Math.min(text.length, this.shown.length);
    while (k < n && text.charCodeAt(k) === this.shown.charCodeAt(k)) k++;
    if (k < n) {
      if (k >= stable) return '';
      this.shown = this.shown.slice(0, k);
    }
    if (stable <= this.shown.length) return '';
    const out = text.slice(this.shown.length, stable);
    this.shown = text.slice(0, stable);
    return out;
  }

  /** Drop ids from the front of the window, keeping CONTEXT ids (all of it shown and final) as context. */
  private shorten(): void {
    const s = this.contextStart(this.ids, this.ids.length - CONTEXT);
    if (s === 0) return;
    this.ids = this.ids.slice(s);
    this.shown = this.decode(this.ids);
  }

  /** Earliest start ≤ s such that ids[start:] has an id with visible text and does not begin inside a byte run. */
  private contextStart(ids: number[], s: number): number {
    s = Math.max(0, s);
    const byte = (i: number) => this.tok.isByteFallbackToken?.(ids[i]!) ?? false;
    const seen = () => { for (let i = s; i < ids.length; i++) if (this.isVisible(ids[i]!)) return true; return false; };
    while (s > 0 && (!seen() || (byte(s) && byte(s - 1)))) s--;
    return s;
  }

  private isVisible(id: number): boolean {
    let v = this.visible.get(id);
    if (v === undefined) this.visible.set(id, (v = this.decode([id]) !== ''));
    return v;
  }
}
