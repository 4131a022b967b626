/**
 * Calibration: what GPTQ sees of the data. AutoGPTQ `BaseGPTQForCausalLM.quantize` / IST-DASLab gptq `llama_sequential`:
 * the calibration rows are embedded (the inputs of layer 0, "capture"); per decoder layer and sequential group, the
 * Hessian of every linear's input H = 2/n·ΣXᵀX is accumulated over all rows (GPTQ.add_batch); after the layer's
 * linears are quantized, the layer is run again with them and its outputs become the next layer's inputs.
 *
 * How it runs here:
 * - Rows are grouped into equal-length batches of ≤ batchTokens tokens (padding dropped). All activations live in one
 *   buffer (fp16 by default, as AutoGPTQ calibrates; the layer math is fp32) that every layer overwrites in place.
 * - The layer graphs take their weights as inputs (InputWeights), so one set of graphs serves every layer; finished
 *   modules enter later graphs as integer codes dequantized in-graph (DequantizeLinear).
 * - A Hessian is an output of the layer graph: Gemm(Xᵀ, X) with the running sum as its C input, bound to the same
 *   buffer as the output, so sums never pass through JS loops. Hessians larger than a limit are summed from the
 *   graph's tap rows by panel GEMMs instead (addGram: the upper triangle only, about half the work, added in TS and
 *   mirrored once), so onnxruntime-node's per-run output copy stays panel-sized.
 * - MoE experts (LinearSpec.hessianRowWeight) sum only the rows routed to them and report the routed-row count.
 */
import type { InferenceSession, Tensor as OrtTensor } from 'onnxruntime-node';
import { GraphBuilder } from '../graph/builder.ts';
import { matmul } from '../graph/linalg.ts';
import { buildDecoderLayer } from '../graph/model-graph.ts';
import type { ElemType } from '../graph/onnx-proto.ts';
import { createSession, f16, f32, i64, runInto, type Device } from '../graph/session.ts';
import { gemmLinear, weightShape } from '../graph/weights.ts';
import type { ModelConfig } from '../io/config.ts';
import type { CalibrationSet } from '../io/datasets.ts';
import type { Checkpoint } from '../io/safetensors.ts';
import type { ArchDefinition, LinearSpec, WeightSource } from '../models/types.ts';
import { fail, option } from '../errors.ts';
import { allFinite, mirrorTriangle, transpose } from '../tensor.ts';
import { sharedZeros } from '../platform/workers.ts';
import type { LayerWeights } from './layer-weights.ts';

/** Storage of the calibration activations between layers (the layer math itself is fp32). */
export type ActivationDtype = 'float16' | 'float32';

/** Hidden states [B,S,hidden]: Float32Array, or float16 bits in a Uint16Array. */
export type Activations = Float32Array | Uint16Array;

/** Calibration rows of one length, run together: `hidden` holds their activations at the current layer's input. */
export interface Batch { ids: Int32Array[]; seq: number; hidden: Activations }

export interface Calibration {
  batches: Batch[];
  /** Calibration rows (AutoGPTQ's nsamples: the divisor of H = 2/n·ΣXᵀX). */
  nsamples: number;
  tokens: number;
  hidden: number;
}

const actTensor = (a: Activations, dims: number[]): OrtTensor => (a instanceof Uint16Array ? f16(a, dims) : f32(a, dims));
const dimsOf = (b: Batch, hidden: number) => [b.ids.length, b.seq, hidden];

/**
 * The calibration rows in batches of equal length (≤ batchTokens tokens each; padding tokens dropped) and one
 * activation buffer [tokens · hidden] of `act` that the batches view. Throws on no tokens or a token id outside the
 * vocabulary (one line naming config.json).
 */
export function calibrationBatches(calib: CalibrationSet, cfg: ModelConfig, batchTokens: number, act: ActivationDtype): Calibration {
  const hidden = cfg.hiddenSize;
  const bySeq = new Map<number, Int32Array[]>();
  calib.inputIds.forEach((ids, i) => {
    const m = calib.attentionMask[i];
    const kept = m && m.some((x) => !x) ? ids.filter((_, k) => m[k]) : ids; // drop padding tokens
    if (kept.length) (bySeq.get(kept.length) ?? bySeq.set(kept.length, []).get(kept.length)!).push(kept);
  });
  const batches: Batch[] = [];
  for (const [seq, rows] of bySeq) {
    const per = Math.max(1, Math.floor(batchTokens / seq));
    for (let i = 0; i < rows.length; i += per) batches.push({ ids: rows.slice(i, i + per), seq, hidden: new Uint16Array(0) });
  }
  const nsamples = batches.reduce((a, b) => a + b.ids.length, 0);
  if (!nsamples) fail('calibration: no tokens to calibrate on');
  // All activations in one buffer (batches are views): each layer overwrites its inputs with its outputs.
  const total = batches.reduce((a, b) => a + b.ids.length * b.seq * hidden, 0);
  const store = act === 'float16' ? new Uint16Array(total) : new Float32Array(total);
  batches.reduce((off, b) => { const n = b.ids.length * b.seq * hidden; b.hidden = store.subarray(off, off + n); return off + n; }, 0);
  for (const b of batches) for (const row of b.ids) for (const t of row)
    if (t < 0 || t >= cfg.vocabSize) fail(`calibration: token id ${t} is outside the model's vocabulary (vocab_size ${cfg.vocabSize} in ${cfg.path}); tokenizer and model do not match`);
  return { batches, nsamples, tokens: batches.reduce((a, b) => a + b.ids.length * b.seq, 0), hidden };
}

// The steps below are separate functions on purpose: an async function's locals can stay referenced until it
// returns, so big temporaries (weights, Hessians, feeds) must live in a callee's frame to be freed on time.

/** Layer-0 inputs ("capture"): the calibration tokens through the embedding graph, written into the batches. */
export async function captureInputs(arch: ArchDefinition, cfg: ModelConfig, ck: Checkpoint, data: Calibration, act: ActivationDtype, device?: Device): Promise<void> {
  const emb = await embedSession(arch, cfg, ck, act, device);
  for (const b of data.batches) {
    await runInto(emb.sess, { ...emb.feeds, input_ids: i64(Array.from(b.ids.flatMap((x) => Array.from(x))), [b.ids.length, b.seq]) }, { hidden: actTensor(b.hidden, dimsOf(b, data.hidden)) });
    if (!allFinite(b.hidden)) fail(`calibration activations are NaN/Inf at the input of layer 0 (embedding output); check the embedding weights`);
  }
  await emb.sess.release();
}

/**
 * The calibration embedding graph: input_ids [B,S] → hidden [B,S,hidden] in `act` (positions 0..S−1), its weights as
 * graph inputs (InputWeights: fed straight from the checkpoint, no copy inside the model bytes); pruned.
 */
export function buildEmbedGraph(arch: ArchDefinition, cfg: ModelConfig, act: ActivationDtype): { g: GraphBuilder; w: InputWeights } {
  const w = new InputWeights('');
  const g = new GraphBuilder('embed');
  const ids = g.input('input_ids', 'int64', ['batch', 'seq']);
  const S = g.op('Squeeze', [g.op('Shape', [ids], { start: 1, end: 2 })]);
  const pos = g.op('Unsqueeze', [g.op('Range', [g.constI64(0), S, g.constI64(1)]), g.constI64([0])]);
  const h = arch.embed(g, cfg, w, ids, pos);
  g.output(act === 'float16' ? g.op('Cast', [h], { to: 10 }) : h, act, ['batch', 'seq', cfg.hiddenSize], 'hidden');
  return { g: g.prune(), w };
}

/** Embedding session of buildEmbedGraph. */
async function embedSession(arch: ArchDefinition, cfg: ModelConfig, ck: Checkpoint, act: ActivationDtype, device?: Device) {
  const { g, w } = buildEmbedGraph(arch, cfg, act);
  const sess = await createSession(g.toBytes(), { device, lowMemory: true });
  const feeds: Record<string, OrtTensor> = {};
  for (const i of w.inputs) feeds[i.rel] = f32(await ck.readFloat32(ck.resolve(i.name)), i.shape);
  return { sess, feeds };
}

/**
 * The next layer's inputs from the quantized layer, written in place over the inputs: hidden_out is produced by the
 * graph's last node (a Cast in fp16 storage, else an elementwise residual Add), after every read of hidden_in.
 */
export async function forwardLayer(graphs: LayerGraphs, weights: LayerWeights, data: Calibration, layerName: string): Promise<void> {
  const wf = await weights.feeds(graphs.fwdW.inputs);
  for (const b of data.batches) {
    const half = b.hidden instanceof Uint16Array, t = actTensor(b.hidden, dimsOf(b, data.hidden));
    await runInto(graphs.fwd, { ...wf, hidden_in: t }, { hidden_out: t });
    if (!allFinite(b.hidden)) fail(`calibration activations are NaN/Inf at the output of layer ${layerName.split('.').pop()} (${layerName})${half ? ` (stored as float16: values beyond ±65504 overflow; try ${option("activationDtype: 'float32'", '--activation-dtype fp32')})` : ''}; check the source weights and calibration data`);
  }
}

/** One sequential group's Hessian graph; modules reading the same input (q/k/v) share one Hessian, that of `repOf`. */
export interface HessianGraph {
  mods: string[];
  sess: InferenceSession;
  /** The weight inputs the pruned graph reads. */
  inputs: { rel: string; shape: number[] }[];
  /** module → the module whose Hessian it uses (the first of the group with the same input). */
  repOf: Map<string, string>;
  inFeatures: Map<string, number>;
  /** Representatives whose Hessian is summed from the tap rows by panel GEMMs (too big for an in-graph output). */
  viaRows: string[];
}

export interface LayerGraphs { fwd: InferenceSession; fwdW: InputWeights; hessGraphs: HessianGraph[] }

/**
 * Forward graph + one Hessian graph per sequential group (modules sharing an input share one Gram matrix). `dq(rel)`:
 * the group size at which a finished module enters as codes dequantized in-graph (undefined: as fp32 weights); in a
 * group's Hessian graph the earlier groups are finished. Hessians over `maxInGraph` bytes come from tap rows.
 */
export async function layerGraphs(arch: ArchDefinition, cfg: ModelConfig, groups: string[][], layerIndex: number, hiddenType: ActivationDtype, dq: (rel: string) => number | undefined, maxInGraph: number, device?: Device): Promise<LayerGraphs> {
  const base = `${arch.layersBlockName}0.`;
  const fwdW = new InputWeights(base, dq);
  const groupOf = new Map(groups.flatMap((mods, k) => mods.map((m) => [m, k] as const)));
  const fwd = await createSession(buildLayerGraph(arch, cfg, fwdW, { layerIndex, hiddenType }).toBytes(), { device, lowMemory: true });
  const hessGraphs = await Promise.all(groups.map(async (mods, k): Promise<HessianGraph> => {
    const w = new InputWeights(base);
    buildLayerGraph(arch, cfg, w, { withHidden: false, layerIndex }); // discover taps
    const byTap = new Map<string, string>();
    const tapKey = (t: { value: string; rowWeight?: string }) => (t.rowWeight ? `${t.value}|${t.rowWeight}` : t.value);
    for (const m of mods) {
      const t = w.taps.get(m);
      if (!t) fail(`${cfg.modelType}: layer has no linear "${m}"`);
      if (!byTap.has(tapKey(t))) byTap.set(tapKey(t), m);
    }
    const reps = [...byTap.values()];
    // Big Hessians are summed from the tap rows by panel GEMMs (see addGram), the rest in-graph.
    const viaRows = reps.filter((r) => 4 * w.taps.get(r)!.inFeatures ** 2 > maxInGraph);
    const w2 = new InputWeights(base, (rel) => ((groupOf.get(rel) ?? k) < k ? dq(rel) : undefined)); // earlier groups are quantized
    const sess = await createSession(buildLayerGraph(arch, cfg, w2, { withHidden: false, hessians: reps, layerIndex, accumulate: true, hiddenType, tapsOut: viaRows }).toBytes(), { device, lowMemory: true });
    const repOf = new Map(mods.map((m) => [m, byTap.get(tapKey(w.taps.get(m)!))!]));
    const inFeatures = new Map(reps.map((r) => [r, w.taps.get(r)!.inFeatures]));
    return { mods, sess, inputs: w2.inputs.filter((i) => sess.inputNames.includes(i.rel)), repOf, inFeatures, viaRows }; // only what the pruned graph reads
  }));
  return { fwd, fwdW, hessGraphs };
}

export async function releaseGraphs(g: LayerGraphs): Promise<void> {
  await g.fwd.release();
  for (const h of g.hessGraphs) await h.sess.release();
}

/**
 * H = 2/n·ΣXᵀX per distinct input of the group's modules `todo`, accumulated over all calibration batches
 * (GPTQ.add_batch). Row-masked inputs (MoE experts: only routed tokens) also count their rows into `routed`. n is the
 * calibration sample count for every module (GPTQ is invariant to H's scale; only the logged avg loss depends on it).
 * Returns representative module → H [in, in] float32.
 */
export async function accumulateHessians(grp: HessianGraph, todo: string[], weights: LayerWeights, data: Calibration, routed?: Map<string, number>): Promise<Map<string, Float32Array>> {
  const reps = [...new Set(todo.map((m) => grp.repOf.get(m)!))];
  const wf = await weights.feeds(grp.inputs);
  const hess = new Map<string, Float32Array>();
  // Each running sum is one buffer bound as both the Gemm's C input and its output: accumulated in place.
  const acc: Record<string, OrtTensor> = {}, fetches: Record<string, OrtTensor | null> = {};
  for (const name of grp.sess.outputNames) fetches[name] = null;
  for (const rep of reps) {
    const n = grp.inFeatures.get(rep)!, h = new Float32Array(n * n);
    hess.set(rep, h);
    if (!grp.viaRows.includes(rep)) acc[`xtx_acc.${rep}`] = fetches[`xtx.${rep}`] = f32(h, [n, n]);
  }
  const scratch: GramScratch = {}; // addGram's buffers, reused by every batch
  for (const b of data.batches) {
    const r = await runInto(grp.sess, { ...wf, ...acc, hidden_in: actTensor(b.hidden, dimsOf(b, data.hidden)) }, fetches);
    for (const rep of grp.viaRows) { // (a representative none of whose modules is quantized has no running sum)
      const x = r[`x.${rep}`]!, h = hess.get(rep);
      if (h) await addGram(h, x.data as Float32Array, x.dims[0]!, x.dims[1]!, { scratch });
    }
    for (const rep of reps) {
      const rows = r[`rows.${rep}`];
      if (rows && routed) routed.set(rep, (routed.get(rep) ?? 0) + Number((rows.data as Float32Array)[0]));
    }
  }
  for (const rep of grp.viaRows) { const h = hess.get(rep); if (h) mirrorTriangle(h, grp.inFeatures.get(rep)!, 'upper'); }
  // ×2/n once per group, into shared memory: the GPTQ solve's worker threads then read the Hinv factored in this
  // buffer (consumeHessian) without a copy. (Not before: ORT takes no shared buffer as the running sum's tensor.)
  // One H at a time, the running sum let go of before the next (so at most one extra H is held).
  for (const [rep, h] of hess) {
    const hs = sharedZeros(false, h.length);
    scaleInto(hs, h, 2 / data.nsamples);
    hess.set(rep, hs);
    delete acc[`xtx_acc.${rep}`];
    delete fetches[`xtx.${rep}`];
  }
  return hess;
}

/** dst = f·src (a plain function: V8 optimizes a loop inside an async function poorly after an await, gptq.ts). */
function scaleInto(dst: Float32Array, src: Float32Array, f: number): void {
  for (let k = 0; k < src.length; k++) dst[k] = src[k]! * f;
}

/** addGram's transposed row chunk and panel product, kept by the caller across calls. */
export interface GramScratch { xt?: Float32Array; G?: Float32Array }

/** Row panel of H one ORT product of addGram computes (and the size of the copy onnxruntime-node returns of it). */
const GRAM_PANEL = 1024;
/** Most floats of X addGram holds transposed at a time (a chunk of its rows). */
export const GRAM_CHUNK_FLOATS = 1 << 24;

/**
 * The upper triangle (diagonal included) of H += XᵀX for X [rows, n]: H is symmetric, so each row panel [i0, i0+p)
 * is one ORT product over the columns from i0 on only, Xᵀ[i0:i0+p]·Xᵀ[i0:n]ᵀ (about half the multiply-adds of
 * the full XᵀX: n = 11008 at 4096 rows, 250 G instead of 496 G), added into H here; mirrorTriangle fills the lower
 * triangle once the sum is complete. X is transposed in row chunks of at most GRAM_CHUNK_FLOATS, so every product
 * reads contiguous rows; the copy onnxruntime-node returns per run stays panel-sized. `o.scratch`: buffers reused from
 * an earlier call (grown when too small); `o.panel` / `o.chunkFloats`: other sizes (tests).
 */
export async function addGram(h: Float32Array, x: Float32Array, rows: number, n: number, o: { panel?: number; chunkFloats?: number; scratch?: GramScratch } = {}): Promise<void> {
  const P = Math.min(o.panel ?? GRAM_PANEL, n), chunk = Math.max(1, Math.min(rows, Math.floor((o.chunkFloats ?? GRAM_CHUNK_FLOATS) / n)));
  const s = o.scratch ?? {};
  const xt = s.xt && s.xt.length >= n * chunk ? s.xt : (s.xt = new Float32Array(n * chunk));
  const G = s.G && s.G.length >= P * n ? s.G : (s.G = new Float32Array(P * n));
  for (let r0 = 0; r0 < rows; r0 += chunk) {
    const c = Math.min(chunk, rows - r0), Xt = transpose(x.subarray(r0 * n, (r0 + c) * n), c, n, xt.subarray(0, n * c)); // [n, c]
    for (let i0 = 0; i0 < n; i0 += P) {
      const p = Math.min(P, n - i0), w = n - i0;
      const g = await matmul(Xt.subarray(i0 * c, (i0 + p) * c), Xt.subarray(i0 * c), p, c, w, { transB: true, out: G }) as Float32Array; // [p, w]
      addUpper(h, g, n, i0, p, w);
    }
  }
}

/** h[(i0 + a)·n + i0 + b] += g[a·w + b] for b ≥ a: a panel product's part on or above H's diagonal. */
function addUpper(h: Float32Array, g: Float32Array, n: number, i0: number, p: number, w: number): void {
  for (let a = 0; a < p; a++) {
    const o = (i0 + a) * n + i0, go = a * w;
    for (let b = a; b < w; b++) h[o + b]! += g[go + b]!;
  }
}

/**
 * One decoder layer for calibration (graph/model-graph.ts buildDecoderLayer: hidden_in [B,S,hidden] → hidden_out,
 * positions 0..S−1) plus its Hessian outputs. `hessians` names the linears (relative, e.g. "mlp.down_proj") whose
 * input Gram matrix Σ XᵀX (over B·S rows) is emitted as output `xtx.<name>` [in,in] (plus input `xtx_acc.<name>`
 * with `accumulate`: added in the Gemm as C, β = 1); with `withHidden` false only those are computed. A linear with
 * a `hessianRowWeight` sums only its marked rows and also outputs their count as `rows.<name>` (scalar).
 * `hiddenType` float16: hidden_in/hidden_out are stored as fp16. `tapsOut`: for these of the `hessians`, output the
 * linear's input rows `x.<name>` [rows, in] instead of the Gram. Pruned: a Hessian graph reads only the weights
 * upstream of its taps.
 */
export function buildLayerGraph(arch: ArchDefinition, cfg: ModelConfig, w: WeightSource & { taps?: InputWeights['taps'] }, o: { hessians?: readonly string[]; withHidden?: boolean; layerIndex?: number; accumulate?: boolean; hiddenType?: ActivationDtype; tapsOut?: readonly string[] } = {}): GraphBuilder {
  const g = buildDecoderLayer(arch, cfg, w, o);
  for (const name of o.hessians ?? []) {
    const tap = w.taps?.get(name);
    if (!tap) throw new Error(`layer graph has no linear "${name}"`);
    let x2 = g.op('Reshape', [tap.value, g.constI64([-1, tap.inFeatures])]);
    if (tap.rowWeight) { // only the rows routed to this linear (0/1 mask): Σ mask·xᵀx, and the routed-row count
      x2 = g.op('Mul', [x2, g.op('Reshape', [tap.rowWeight, g.constI64([-1, 1])])]);
      g.output(g.op('ReduceSum', [tap.rowWeight], { keepdims: 0 }), 'float32', [], `rows.${name}`);
    }
    if (o.tapsOut?.includes(name)) { g.output(x2, 'float32', ['rows', tap.inFeatures], `x.${name}`); continue; }
    const acc = o.accumulate ? [g.input(`xtx_acc.${name}`, 'float32', [tap.inFeatures, tap.inFeatures])] : [];
    g.output(g.op('Gemm', [x2, x2, ...acc], { transA: 1, ...(o.accumulate ? { beta: { kind: 'float', v: 1 } } : {}) }), 'float32', [tap.inFeatures, tap.inFeatures], `xtx.${name}`);
  }
  return g.prune({ inputs: true });
}

/**
 * Weights as graph inputs named relative to `stripPrefix` (e.g. "model.layers.0."), so one calibration graph
 * serves every layer. Records each linear's input value (`taps`) for the Hessian outputs.
 */
export class InputWeights implements WeightSource {
  readonly inputs: { name: string; rel: string; shape: number[]; type: ElemType }[] = [];
  /** rowWeight: the linear's `hessianRowWeight` (its Hessian sums only the rows it marks). */
  readonly taps = new Map<string, { value: string; inFeatures: number; rowWeight?: string }>();
  private seen = new Map<string, string>();
  /**
   * `dequantize(rel)` → group size: that linear's weight enters as integer codes `<rel>.weight.codes` uint8 [out,in],
   * `.scales` float32 [out,groups] and `.zeros` uint8 [out,groups], dequantized in the graph (blocked
   * DequantizeLinear: exactly scale·(q − zero) in fp32), so no fp32 copy of it stays resident.
   */
  constructor(private readonly stripPrefix: string, private readonly dequantize?: (rel: string) => number | undefined) {}

  private input(g: GraphBuilder, name: string, rel: string, type: ElemType, shape: readonly number[]): string {
    let v = this.seen.get(rel);
    if (!v) {
      v = g.input(rel, type, shape);
      this.inputs.push({ name, rel, shape: [...shape], type });
      this.seen.set(rel, v);
    }
    return v;
  }

  private rel(name: string): string {
    return name.startsWith(this.stripPrefix) ? name.slice(this.stripPrefix.length) : name;
  }

  tensor(g: GraphBuilder, name: string, shape: readonly number[]): string {
    return this.input(g, name, this.rel(name), 'float32', shape);
  }

  linear(g: GraphBuilder, x: string, s: LinearSpec): string {
    const rel = this.rel(s.name), gs = this.dequantize?.(rel);
    this.taps.set(rel, { value: x, inFeatures: s.inFeatures, ...(s.hessianRowWeight ? { rowWeight: s.hessianRowWeight } : {}) });
    let w: string;
    if (gs) {
      const n = `${s.name}.weight`, r = `${rel}.weight`, groups = s.inFeatures / gs;
      const dq = g.op('DequantizeLinear', [
        this.input(g, n, `${r}.codes`, 'uint8', [s.outFeatures, s.inFeatures]),
        this.input(g, n, `${r}.scales`, 'float32', [s.outFeatures, groups]),
        this.input(g, n, `${r}.zeros`, 'uint8', [s.outFeatures, groups]),
      ], { axis: 1, block_size: gs });
      w = s.conv1d ? g.op('Transpose', [dq], { perm: [1, 0] }) : dq;
    } else {
      w = this.tensor(g, `${s.name}.weight`, weightShape(s));
    }
    const b = s.bias ? this.tensor(g, `${s.name}.bias`, [s.outFeatures]) : undefined;
    return gemmLinear(g, x, w, b, s.outFeatures, !s.conv1d);
  }
}
