/**
 * Loglikelihood of continuations given contexts, as lm-evaluation-harness 0.4 computes it for Hugging Face causal LMs
 * (lm_eval/api/model.py `TemplateLM.loglikelihood` / `_encode_pair`, lm_eval/models/huggingface.py
 * `HFLM._loglikelihood_tokens`):
 *   - tokenization: trailing whitespace of the context moves to the continuation; whole = encode(context +
 *     continuation), context_enc = encode(context), continuation_enc = whole[len(context_enc):] (encode adds the
 *     tokenizer's special tokens unless the text starts with the BOS string); an empty context is the BOS token (else
 *     EOS) before encode(continuation) without special tokens.
 *   - window: the model sees (context_enc + continuation_enc)[-(maxLength+1):][:-1]; the continuation must fit.
 *   - score: Σ log_softmax(logits)[token] over the continuation tokens (fp32 log-softmax in the graph, summed in
 *     float64 here), and is_greedy = every continuation token is the argmax of its logits.
 * Rows are scored several per ONNX Runtime run (right-padded; causal attention keeps the pad out of the real
 * positions, as lm-eval's right padding), via CausalLM.nllArgmax: the [B,S,V] logits never leave the graph.
 */
import { fail } from '../errors.ts';
import type { CausalLM } from '../runtime/causal-lm.ts';
import { etaSeconds, type EvalProgress } from '../progress.ts';

/** What loglikelihood scoring needs from a tokenizer (TextTokenizer fits). */
export interface EvalTokenizer {
  encode(text: string, o?: { addSpecialTokens?: boolean }): number[];
  decode(ids: ArrayLike<number>, o?: { skipSpecialTokens?: boolean }): string;
  readonly bosId?: number;
  readonly eosId?: number;
}

export interface LoglikelihoodRequest { context: string; continuation: string }
export interface EncodedRequest { context: number[]; continuation: number[] }
export interface LoglikelihoodResult {
  /** Σ log p(continuation token | everything before it), natural log. */
  loglikelihood: number;
  /** Every continuation token is the model's greedy (argmax) choice. */
  isGreedy: boolean;
  /** Continuation tokens scored. */
  tokens: number;
}

/** lm-eval's prefix_token_id: BOS, else EOS. */
function prefixTokenId(tok: EvalTokenizer): number {
  const id = tok.bosId ?? tok.eosId;
  if (id === undefined) fail('loglikelihood: an empty context needs a BOS or EOS token, and the tokenizer has neither');
  return id;
}

/** lm-eval's tok_encode(string) with add_special_tokens left to the tokenizer, except for text already starting with the BOS string. */
function tokEncode(tok: EvalTokenizer, s: string): number[] {
  const bos = tok.bosId ?? tok.eosId;
  const bosText = bos === undefined ? undefined : tok.decode([bos], { skipSpecialTokens: false });
  return tok.encode(s, { addSpecialTokens: !(bosText && s.startsWith(bosText)) });
}

/** Context and continuation token ids of one request, split as lm-eval's HFLM splits them (see the module comment). */
export function encodePair(tok: EvalTokenizer, context: string, continuation: string): EncodedRequest {
  if (context === '') {
    const cont = tok.encode(continuation, { addSpecialTokens: false });
    const p = prefixTokenId(tok);
    return p !== cont[0] ? { context: [p], continuation: cont } : { context: cont.slice(0, 1), continuation: cont.slice(1) };
  }
  const n = context.length - context.trimEnd().length;
  if (n > 0) { continuation = context.slice(-n) + continuation; context = context.slice(0, -n); }
  const whole = tokEncode(tok, context + continuation);
  const ctx = tokEncode(tok, context);
  return { context: ctx, continuation: whole.slice(ctx.length) };
}

export interface ScoreOptions {
  /** Longest window the model sees (lm-eval's max_length); default the model's max_position_embeddings, else 2048. */
  maxLength?: number;
  /** Rows per ONNX Runtime run; default from a token budget (≤ 8192 tokens and ≤ 2^26 logits per run). */
  batchSize?: number;
  /** Progress: task 'eval' events per run (done/total: requests). */
  onProgress?: (e: EvalProgress) => void;
  /** Name of the task reported in progress events. */
  taskName?: string;
  signal?: AbortSignal;
}

/**
 * Score pre-tokenized requests: the loglikelihood of each continuation after its context. Requests are run longest
 * first (lm-eval's order) in right-padded batches; results come back in request order.
 * Throws GptqError for an empty continuation or one longer than maxLength.
 */
export async function scoreEncoded(model: CausalLM, reqs: readonly EncodedRequest[], o: ScoreOptions = {}): Promise<LoglikelihoodResult[]> {
  const maxLength = o.maxLength ?? (model.cfg.maxPositionEmbeddings || 2048);
  const V = model.cfg.vocabSize;
  const rows = reqs.map((r, i) => {
    if (!r.continuation.length) fail(`loglikelihood: request ${i} has an empty continuation (it adds no token to the context)`);
    if (!r.context.length) fail(`loglikelihood: request ${i} has an empty context (use encodePair, which puts BOS there)`);
    if (r.continuation.length > maxLength) fail(`loglikelihood: request ${i}: continuation of ${r.continuation.length} tokens is longer than the model's max length ${maxLength}`);
    return { i, ids: [...r.context, ...r.continuation].slice(-(maxLength + 1)), cont: r.continuation.length };
  });
  // lm-eval's order: longest first, then by the tokens (so the batch's first row sets its padded length).
  const order = rows.slice().sort((a, b) => b.ids.length - a.ids.length || cmpTokens(a.ids, b.ids));
  const out: LoglikelihoodResult[] = new Array(reqs.length);
  const t0 = performance.now();
  let done = 0;
  for (let k = 0; k < order.length;) {
    o.signal?.throwIfAborted();
    const S = order[k]!.ids.length;
    const B = Math.min(order.length - k, o.batchSize ?? Math.max(1, Math.min(64, Math.floor(2 ** 26 / (S * V)), Math.floor(8192 / S))));
    const batch = order.slice(k, k + B);
    // A row of length 1 cannot be scored by the graph (it needs 2 tokens): pad every row to at least 2.
    const width = Math.max(S, 2);
    const { nll, argmax } = await model.nllArgmax(batch.map((r) => [...r.ids, ...new Array<number>(width - r.ids.length).fill(0)]));
    batch.forEach((r, b) => {
      const L = r.ids.length, base = b * (width - 1);
      let ll = 0, greedy = true;
      for (let j = L - 1 - r.cont; j < L - 1; j++) {
        ll -= nll[base + j]!;
        if (argmax[base + j] !== r.ids[j + 1]) greedy = false;
      }
      out[r.i] = { loglikelihood: ll, isGreedy: greedy, tokens: r.cont };
    });
    k += B;
    done += B;
    const elapsed = (performance.now() - t0) / 1000;
    o.onProgress?.({ task: 'eval', evalTask: o.taskName ?? 'loglikelihood', stage: 'loglikelihood', done, total: order.length, elapsed, eta: etaSeconds(elapsed, done, order.length) });
  }
  return out;
}

const cmpTokens = (a: number[], b: number[]) => {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
};

/** Tokenize (encodePair) and score (scoreEncoded) context/continuation pairs. */
export async function loglikelihood(model: CausalLM, tok: EvalTokenizer, reqs: readonly LoglikelihoodRequest[], o: ScoreOptions = {}): Promise<LoglikelihoodResult[]> {
  return scoreEncoded(model, reqs.map((r) => encodePair(tok, r.context, r.continuation)), o);
}
