/**
 * Streaming generated text with stop strings (OpenAI `stop`, `gptq chat`'s transcript stop): text that could be the
 * start of a stop string is held back until it is known not to be one, and the reply is cut before the earliest stop
 * string, so a streamed reply never shows any part of a stop string and equals the non-streamed one.
 */
import { StreamDecoder } from '../io/tokenizer.ts';

/** Streams text, holding back any tail that could be the start of a stop string. */
export class StopAwareStream {
  private text = '';
  private printed = 0;
  /** Index where the earliest stop string starts, once one appeared. */
  private cut = -1;
  constructor(private readonly stops: readonly string[], private readonly write: (s: string) => void) {
    if (stops.some((s) => s.length === 0)) throw new Error('StopAwareStream: empty stop string');
  }

  /** Feed the whole reply so far; returns true once a stop string appeared (the reply is cut before it). */
  update(text: string): boolean {
    this.text = text;
    const i = earliestStop(text, this.stops);
    if (i >= 0) { this.cut = i; this.emit(i); return true; }
    let safe = text.length;
    for (const s of this.stops) for (let k = Math.min(s.length - 1, text.length); k > 0; k--) {
      if (text.endsWith(s.slice(0, k))) { safe = Math.min(safe, text.length - k); break; }
    }
    this.emit(safe);
    return false;
  }

  /** The reply without any stop string (anything not yet written is written now). */
  final(): string {
    const i = this.cut >= 0 ? this.cut : earliestStop(this.text, this.stops);
    const t = i >= 0 ? this.text.slice(0, i) : this.text;
    this.emit(t.length);
    return t;
  }

  private emit(end: number) { if (end > this.printed) { this.write(this.text.slice(this.printed, end)); this.printed = end; } }
}

/** Start of the earliest occurrence of any stop string in `text`, or −1. */
function earliestStop(text: string, stops: readonly string[]): number {
  let best = -1;
  for (const s of stops) { const i = text.indexOf(s); if (i >= 0 && (best < 0 || i < best)) best = i; }
  return best;
}

/**
 * Token ids in, text deltas out: StreamDecoder (incremental detokenization) followed by StopAwareStream. `push`
 * returns true when a stop string completed (generation should end); `finish` flushes and returns the whole reply
 * without the stop string.
 */
export class TextStream {
  private readonly dec: StreamDecoder;
  private readonly stop: StopAwareStream;
  private text = '';
  constructor(tok: ConstructorParameters<typeof StreamDecoder>[0], stops: readonly string[], onDelta: (text: string) => void) {
    this.dec = new StreamDecoder(tok);
    this.stop = new StopAwareStream(stops, onDelta);
  }

  push(id: number): boolean {
    this.text += this.dec.push(id);
    return this.stop.update(this.text);
  }

  /** The reply (cut before a stop string); writes what was held back. */
  finish(): string {
    this.text += this.dec.flush();
    this.stop.update(this.text);
    return this.stop.final();
  }
}
