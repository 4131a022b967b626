/**
 * Streaming generated text with stop strings (OpenAI `stop`, `gptq chat`'s transcript stop, the text-level API, `gptq
 * serve`): text that could be the start of a stop string is held back until it is known not to be one, and the reply
 * is cut before the earliest stop string, so a streamed reply never shows any part of a stop string and equals the
 * non-streamed one.
 */
import { StreamDecoder, type Detokenizer } from '../io/tokenizer.ts';

/**
 * A reply given piece by piece (e.g. generate()'s onText, or a StreamDecoder's output), written on as soon as it is
 * safe: a tail that could still begin a stop string waits, the earliest stop string and what follows are never
 * written. With `trim`, leading whitespace is dropped and trailing whitespace waits, so what is written equals the
 * trimmed reply (gptq chat stores replies trimmed). Each piece costs O(its length + stop lengths²), not O(reply).
 */
export class StopAwareStream {
  private text = '';
  private printed = 0;
  /** Where the reply ends: the start of the earliest stop string, once one appeared. */
  private end = -1;
  private readonly longest: number;
  constructor(private readonly stops: readonly string[], private readonly write: (s: string) => void, private readonly opts: { trim?: boolean } = {}) {
    if (stops.some((s) => s.length === 0)) throw new Error('StopAwareStream: empty stop string');
    this.longest = Math.max(0, ...stops.map((s) => s.length));
  }

  /** Add the next piece of the reply; returns true once a stop string appeared (the reply is cut before it). */
  push(piece: string): boolean {
    if (this.end >= 0) return true;
    if (!piece) return false;
    // a stop string can only newly appear where it overlaps the new piece
    const from = Math.max(0, this.text.length - this.longest + 1);
    this.text += piece;
    for (const s of this.stops) {
      const i = this.text.indexOf(s, from);
      if (i >= 0 && (this.end < 0 || i < this.end)) this.end = i;
    }
    if (this.end >= 0) { this.emit(this.end); return true; }
    let safe = this.text.length;
    for (const s of this.stops) for (let k = Math.min(s.length - 1, this.text.length); k > 0; k--) {
      if (this.text.endsWith(s.slice(0, k))) { safe = Math.min(safe, this.text.length - k); break; }
    }
    this.emit(safe);
    return false;
  }

  /** The reply without any stop string (trimmed with `trim`); what was held back and belongs to it is written now. */
  final(): string {
    const t = this.end >= 0 ? this.text.slice(0, this.end) : this.text;
    this.emit(t.length);
    return this.opts.trim ? t.trim() : t;
  }

  private emit(end: number) {
    if (this.opts.trim) {
      while (end > this.printed && /\s/.test(this.text[end - 1]!)) end--;
      if (this.printed === 0) while (this.printed < end && /\s/.test(this.text[this.printed]!)) this.printed++;
    }
    if (end > this.printed) { this.write(this.text.slice(this.printed, end)); this.printed = end; }
  }
}

/**
 * Token ids in, text deltas out: StreamDecoder (exact incremental detokenization; with `prompt`, the deltas are
 * decode(prompt + generated) minus decode(prompt), as Transformers' text-generation pipeline, TGI and vLLM return a
 * continuation) followed by StopAwareStream. `push` returns true when a stop string completed (generation should
 * end); `finish` flushes and returns the whole reply without the stop string.
 */
export class TextStream {
  private readonly dec: StreamDecoder;
  private readonly stop: StopAwareStream;
  constructor(tok: Detokenizer, stops: readonly string[], onDelta: (text: string) => void, opts: { prompt?: ArrayLike<number>; skipSpecialTokens?: boolean } = {}) {
    this.dec = new StreamDecoder(tok, opts);
    this.stop = new StopAwareStream(stops, onDelta);
  }

  push(id: number): boolean { return this.stop.push(this.dec.push(id)); }

  /** The reply (cut before a stop string); writes what was held back. */
  finish(): string {
    this.stop.push(this.dec.flush());
    return this.stop.final();
  }
}
