import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SHARED, SKIP_SHARED, randn, rng } from './helpers.ts';
import {
  refConfigFromJson, refForward, refNll, refDecoderLayer, refEmbed, refNormAndHead, refVisible, logProb,
  type RefConfig, type Weights,
} from './reference/llama-ref.ts';
import { llama2cForward } from './reference/llama2c.ts';

const MODEL = join(SHARED, 'models', 'stories260K');

/** Tiny inline safetensors reader (F32 only): u64 LE header length, JSON header, raw data. */
function readSafetensorsF32(path: string): Map<string, Float32Array> {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, any>;
  const base = 8 + n;
  const out = new Map<string, Float32Array>();
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    assert.equal(info.dtype, 'F32', `${name}: only F32 expected`);
    const [begin, end] = info.data_offsets as [number, number];
    const bytes = buf.subarray(base + begin, base + end);
    const arr = new Float32Array(bytes.length / 4);
    for (let i = 0; i < arr.length; i++) arr[i] = bytes.readFloatLE(i * 4); // copy: data may be unaligned
    assert.equal(arr.length, (info.shape as number[]).reduce((a, b) => a * b, 1), `${name}: shape/size mismatch`);
    out.set(name, arr);
  }
  return out;
}

function loadStories(): { cfg: RefConfig; w: Weights; vocab: string[] } {
  const cfg = refConfigFromJson(JSON.parse(readFileSync(join(MODEL, 'config.json'), 'utf8')));
  const tensors = readSafetensorsF32(join(MODEL, 'model.safetensors'));
  const tok = JSON.parse(readFileSync(join(MODEL, 'tokenizer.json'), 'utf8'));
  const vocab: string[] = [];
  for (const [piece, id] of Object.entries(tok.model.vocab as Record<string, number>)) vocab[id] = piece;
  return { cfg, w: (name) => tensors.get(name), vocab };
}

/** SentencePiece-style decode: '▁' → ' ', <0xNN> byte tokens, skip specials, strip one leading space. */
function decode(vocab: string[], ids: number[]): string {
  const bytes: number[] = [];
  for (const id of ids) {
    if (id <= 2) continue; // <unk>, <s>, </s>
    const piece = vocab[id]!;
    const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
    if (m) bytes.push(parseInt(m[1]!, 16));
    else bytes.push(...Buffer.from(piece.replace(/▁/g, ' '), 'utf8'));
  }
  const s = Buffer.from(bytes).toString('utf8');
  return s.startsWith(' ') ? s.slice(1) : s;
}

function argmax(a: Float64Array): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[best]!) best = i;
  return best;
}

function maxAbsDiff(a: Float64Array[], b: Float64Array[]): number {
  assert.equal(a.length, b.length);
  let m = 0;
  a.forEach((row, s) => {
    assert.equal(row.length, b[s]!.length);
    for (let i = 0; i < row.length; i++) m = Math.max(m, Math.abs(row[i]! - b[s]![i]!));
  });
  return m;
}

const PROMPT = (() => {
  const r = rng(1234);
  return [1, ...Array.from({ length: 19 }, () => 3 + Math.floor(r() * 509))];
})();

test('refConfigFromJson reads the stories260K config', { skip: SKIP_SHARED }, () => {
  const { cfg } = loadStories();
  assert.deepEqual(
    { ...cfg },
    {
      hiddenSize: 64, intermediateSize: 172, numLayers: 5, numHeads: 8, numKvHeads: 4, headDim: 8, vocabSize: 512,
      rmsNormEps: 1e-5, ropeTheta: 10000, tieWordEmbeddings: true, attentionBias: false, mlpBias: false, slidingWindow: null,
    },
  );
});

test('refForward agrees with the llama2.c-style forward on stories260K (20 tokens, 1e-9)', { skip: SKIP_SHARED }, () => {
  const { cfg, w } = loadStories();
  const a = refForward(cfg, w, PROMPT);
  const b = llama2cForward(cfg, w, PROMPT);
  assert.equal(a.length, 20);
  assert.equal(a[0]!.length, 512);
  const d = maxAbsDiff(a, b);
  assert.ok(d < 1e-9, `max |diff| = ${d}`);
  // sanity: logits are not degenerate
  assert.ok(a.every((row) => row.every(Number.isFinite)));
  assert.ok(Math.abs(a[5]![argmax(a[5]!)]!) > 1);
});

test('greedy decoding from <s> tells the Lily story', { skip: SKIP_SHARED }, () => {
  const { cfg, w, vocab } = loadStories();
  const ids = [1];
  for (let step = 0; step < 20; step++) {
    const logits = refForward(cfg, w, ids);
    ids.push(argmax(logits[logits.length - 1]!));
  }
  const text = decode(vocab, ids);
  assert.ok(text.startsWith('Once upon a time, there was a little girl named Lily'), JSON.stringify(text));
  // the llama2.c forward picks the same tokens
  const alt = llama2cForward(cfg, w, ids.slice(0, -1)).map(argmax);
  assert.deepEqual(alt, ids.slice(1));
});

test('refDecoderLayer x5 + final norm + lm_head equals refForward', { skip: SKIP_SHARED }, () => {
  const { cfg, w } = loadStories();
  const ids = PROMPT.slice(0, 13);
  let h = refEmbed(cfg, w, ids);
  for (let l = 0; l < 5; l++) h = refDecoderLayer(cfg, w, l, h, ids.length);
  const d = maxAbsDiff(refNormAndHead(cfg, w, h, ids.length), refForward(cfg, w, ids));
  assert.equal(d, 0);
});

test('refNll is the mean shifted cross-entropy and is plausible on a greedy story', { skip: SKIP_SHARED }, () => {
  const { cfg, w } = loadStories();
  const ids = PROMPT.slice(0, 8);
  const logits = refForward(cfg, w, ids);
  let manual = 0;
  for (let t = 0; t < 7; t++) manual -= logProb(logits[t]!, ids[t + 1]!);
  assert.ok(Math.abs(refNll(cfg, w, ids) - manual / 7) < 1e-12);
  // random tokens are much less likely than the model's own greedy continuation
  const greedy = [1];
  for (let s = 0; s < 12; s++) greedy.push(argmax(refForward(cfg, w, greedy).at(-1)!));
  const nllGreedy = refNll(cfg, w, greedy), nllRandom = refNll(cfg, w, PROMPT);
  assert.ok(nllGreedy < 1.5 && nllRandom > Math.log(512) / 2, `greedy ${nllGreedy}, random ${nllRandom}`);
});

// ---------------------------------------------------------------------------------------------
// synthetic configs (no ../shared needed): qwen2 biases, mistral/qwen2 sliding window, llama3 rope

function synthWeights(cfg: RefConfig, seed: number): Weights {
  const H = cfg.hiddenSize, I = cfg.intermediateSize, q = cfg.numHeads * cfg.headDim, kv = cfg.numKvHeads * cfg.headDim;
  const m = new Map<string, Float32Array>();
  let s = seed;
  const put = (name: string, n: number, scale: number, offset = 0): void => {
    const a = randn(n, s++, scale);
    for (let i = 0; i < n; i++) a[i] = a[i]! + offset;
    m.set(name, a);
  };
  put('model.embed_tokens.weight', cfg.vocabSize * H, 1);
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `model.layers.${l}.`;
    put(p + 'input_layernorm.weight', H, 0.1, 1);
    put(p + 'post_attention_layernorm.weight', H, 0.1, 1);
    put(p + 'self_attn.q_proj.weight', q * H, 0.3);
    put(p + 'self_attn.k_proj.weight', kv * H, 0.3);
    put(p + 'self_attn.v_proj.weight', kv * H, 0.3);
    put(p + 'self_attn.o_proj.weight', H * q, 0.3);
    if (cfg.attentionBias) {
      put(p + 'self_attn.q_proj.bias', q, 0.5);
      put(p + 'self_attn.k_proj.bias', kv, 0.5);
      put(p + 'self_attn.v_proj.bias', kv, 0.5);
    }
    put(p + 'mlp.gate_proj.weight', I * H, 0.3);
    put(p + 'mlp.up_proj.weight', I * H, 0.3);
    put(p + 'mlp.down_proj.weight', H * I, 0.3);
  }
  put('model.norm.weight', H, 0.1, 1);
  if (!cfg.tieWordEmbeddings) put('lm_head.weight', cfg.vocabSize * H, 0.3);
  return (name) => m.get(name);
}

const QWEN2_JSON = {
  model_type: 'qwen2', hidden_size: 32, intermediate_size: 48, num_hidden_layers: 3, num_attention_heads: 4,
  num_key_value_heads: 2, vocab_size: 40, rms_norm_eps: 1e-6, rope_theta: 1000000, tie_word_embeddings: false,
  use_sliding_window: true, sliding_window: 4, max_window_layers: 1, hidden_act: 'silu',
};

test('refConfigFromJson: qwen2 biases + per-layer sliding window, mistral window, llama3 rope', () => {
  const q = refConfigFromJson(QWEN2_JSON);
  assert.equal(q.attentionBias, true);
  assert.equal(q.headDim, 8);
  assert.equal(q.slidingWindow, 4);
  assert.deepEqual(q.layerTypes, ['full_attention', 'sliding_attention', 'sliding_attention']);
  assert.equal(refConfigFromJson({ ...QWEN2_JSON, use_sliding_window: false }).slidingWindow, null);
  const m = refConfigFromJson({ ...QWEN2_JSON, model_type: 'mistral', sliding_window: 7, use_sliding_window: undefined });
  assert.equal(m.attentionBias, false);
  assert.equal(m.slidingWindow, 7);
  assert.equal(m.layerTypes, undefined);
  const l3 = refConfigFromJson({
    ...QWEN2_JSON, model_type: 'llama', use_sliding_window: undefined, sliding_window: undefined, head_dim: 64, rope_theta: 500000,
    rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
  });
  const inv = l3.invFreq!;
  assert.equal(inv.length, 32);
  assert.equal(inv[0], 1); // high frequency untouched
  assert.ok(Math.abs(inv[31]! - Math.pow(500000, -62 / 64) / 8) < 1e-18); // low frequency divided by factor
  assert.throws(() => refConfigFromJson({ ...QWEN2_JSON, model_type: 'gpt2' }), /model_type/);
  assert.throws(() => refConfigFromJson({ ...QWEN2_JSON, rope_scaling: { rope_type: 'yarn', factor: 2 } }), /yarn/);
});

test('sliding-window visibility matches transformers (i - window < j <= i)', () => {
  assert.equal(refVisible(5, 6, null), false);
  assert.equal(refVisible(5, 0, null), true);
  assert.equal(refVisible(5, 5, 3), true);
  assert.equal(refVisible(5, 3, 3), true);
  assert.equal(refVisible(5, 2, 3), false);
});

test('refForward agrees with llama2c on a synthetic qwen2 config with biases + sliding window', () => {
  const cfg = refConfigFromJson(QWEN2_JSON);
  const w = synthWeights(cfg, 7);
  const r = rng(99);
  const ids = Array.from({ length: 11 }, () => Math.floor(r() * 40));
  const d = maxAbsDiff(refForward(cfg, w, ids), llama2cForward(cfg, w, ids));
  assert.ok(d < 1e-9, `max |diff| = ${d}`);
  // with llama3-scaled frequencies and an attention scaling factor as well
  const cfg2: RefConfig = { ...cfg, invFreq: Float64Array.from([1, 0.3, 0.01, 1e-4]), attentionScaling: 1.2 };
  const d2 = maxAbsDiff(refForward(cfg2, w, ids), llama2cForward(cfg2, w, ids));
  assert.ok(d2 < 1e-9, `max |diff| = ${d2}`);
});

test('one sliding layer: position i ignores token i-window and sees token i-window+1', () => {
  const cfg: RefConfig = { ...refConfigFromJson({ ...QWEN2_JSON, num_hidden_layers: 1, max_window_layers: 0 }) };
  assert.deepEqual(cfg.layerTypes, ['sliding_attention']);
  const w = synthWeights(cfg, 3);
  const ids = [5, 6, 7, 8, 9, 10, 11, 12];
  const base = refForward(cfg, w, ids);
  const i = 7, win = 4;
  const farChanged = ids.slice(); farChanged[i - win] = 30;
  assert.equal(maxAbsDiff([refForward(cfg, w, farChanged)[i]!], [base[i]!]), 0);
  const nearChanged = ids.slice(); nearChanged[i - win + 1] = 30;
  assert.ok(maxAbsDiff([refForward(cfg, w, nearChanged)[i]!], [base[i]!]) > 1e-6);
  // full attention would see it
  const full: RefConfig = { ...cfg, slidingWindow: null };
  assert.ok(maxAbsDiff([refForward(full, w, farChanged)[i]!], [refForward(full, w, ids)[i]!]) > 1e-6);
});

test('refForward rejects out-of-vocabulary ids and missing tensors with a named error', () => {
  const cfg = refConfigFromJson(QWEN2_JSON);
  const w = synthWeights(cfg, 1);
  assert.throws(() => refForward(cfg, w, [1, 40]), /token id 40/);
  assert.throws(() => refForward(cfg, (n) => (n === 'model.norm.weight' ? undefined : w(n)), [1, 2]), /model\.norm\.weight/);
});
