/**
 * The GPTQ layer loop (AutoGPTQ `BaseGPTQForCausalLM.quantize`): capture layer-0 inputs; for each decoder layer
 * and each sequential group, accumulate H = 2/n·ΣXᵀX (inside the ORT layer graph, or from the tap rows by panel
 * GEMMs when H is big), run GPTQ per module, then recompute the layer's outputs with the quantized weights as the
 * next layer's inputs. Memory: layers are streamed from the checkpoint (a weight is read when a graph or GPTQ needs
 * it); finished modules stay as integer codes and later graphs dequantize them in-graph; calibration activations
 * live in one buffer (fp16 by default, as AutoGPTQ calibrates) that each layer overwrites in place; GPTQ factorizes
 * the Hessian in its own buffer.
 */
import type { InferenceSession } from 'onnxruntime-node';
import { GraphBuilder } from '../graph/builder.ts';
import { buildLayerGraph } from '../graph/causal-lm.ts';
import { createSession, f16, f32, i64, runInto, u8, type Device } from '../graph/session.ts';
import { InputWeights } from '../graph/weights.ts';
import type { ModelConfig } from '../io/config.ts';
import type { Checkpoint } from '../io/safetensors.ts';
import type { CalibrationSet } from '../io/datasets.ts';
import type { ArchDefinition, LayerLinear } from '../models/types.ts';
import { fail, GptqError } from '../errors.ts';
import type { QuantizeConfig } from './config.ts';
import { gptqQuantize } from './gptq.ts';
import { gemm } from '../graph/linalg.ts';
import { dequantizeCodes } from './quantizer.ts';
import { packLinear, packable, type PackBits, type PackedLinear } from './pack.ts';
import { rtnQuantize } from './rtn.ts';
import { moduleDigest, moduleTensors, verifyPackedModule } from './save.ts';
import type { LayerRecord, WorkDir } from './workdir.ts';
import { collectGarbage } from '../gc.ts';
import type { TensorLike } from '../io/safetensors.ts';
import { f16ToF32, f32ToF16, type Tensor } from '../tensor.ts';
import { etaSeconds, type QuantizeProgress } from '../progress.ts';
import type { Tensor as OrtTensor } from 'onnxruntime-node';

export interface QuantizedModule extends PackedLinear { name: string; inFeatures: number; outFeatures: number; bias?: Float32Array; loss: number; seconds: number }
export interface SkippedModule { name: string; reason: string }

/** Progress of the layer loop: the library-wide progress event (src/progress.ts). */
export type QuantizeEvent = QuantizeProgress;

export interface QuantizeLoopOptions {
  method?: 'gptq' | 'rtn';
  device?: Device;
  /** Tokens per ORT run when pushing calibration data through a layer (default 4096). */
  batchTokens?: number;
  onEvent?: (e: QuantizeEvent) => void;
  onLog?: (msg: string) => void;
  signal?: AbortSignal;
  /** Durable per-layer state: finished layers are written there and a rerun resumes after them. */
  workDir?: WorkDir;
  /** Keep every module's dequantized fp32 weights in memory (for fake-quant evaluation; costs fp32 model size). */
  keepDequantized?: boolean;
  /** Evaluation only: also GPTQ modules AutoGPTQ cannot pack (kept out of `modules`, so they are not saved). */
  quantizeUnpackable?: boolean;
  /** Storage of the calibration activations between layers (default float16: half the memory; the layer math
   *  itself stays fp32). */
  activationDtype?: ActivationDtype;
  /** Finished modules enter later graphs as codes dequantized in-graph (default true; false: as fp32 arrays). */
  dequantizeInGraph?: boolean;
  /** Hessians larger than this many bytes are summed from the tap rows by panel GEMMs (default 64 MB). */
  hessianInGraphMaxBytes?: number;
}

export type ActivationDtype = 'float16' | 'float32';

export interface QuantizeLoopResult {
  /** Names of the quantized modules. */
  quantized: Set<string>;
  /** Their packed tensors (in memory, or lazily read from the work dir). */
  packed: Map<string, TensorLike>;
  /** Per-module average GPTQ loss. */
  losses: Map<string, number>;
  /** Per module: sha256 of its packed tensors, taken after they were verified to decode to GPTQ's result. */
  digests: Map<string, string>;
  skipped: SkippedModule[];
  /** Dequantized weights of every quantized module (for evaluating the fake-quantized model). */
  dequantized: Map<string, Float32Array>;
  /** True when unpackable modules were fake-quantized: the result can be evaluated but not saved. */
  evaluationOnly: boolean;
}

/** Hidden states [B,S,H]: Float32Array, or float16 bits in a Uint16Array. */
type Acts = Float32Array | Uint16Array;
/** Calibration rows grouped into equal-length batches. */
interface Batch { ids: Int32Array[]; seq: number; hidden: Acts }

const actTensor = (a: Acts, dims: number[]): OrtTensor => (a instanceof Uint16Array ? f16(a, dims) : f32(a, dims));

function batches(calib: CalibrationSet, batchTokens: number): Batch[] {
  const bySeq = new Map<number, Int32Array[]>();
  calib.inputIds.forEach((ids, i) => {
    const m = calib.attentionMask[i];
    const kept = m && m.some((x) => !x) ? ids.filter((_, k) => m[k]) : ids; // drop padding tokens
    if (kept.length) (bySeq.get(kept.length) ?? bySeq.set(kept.length, []).get(kept.length)!).push(kept);
  });
  const out: Batch[] = [];
  for (const [seq, rows] of bySeq) {
    const per = Math.max(1, Math.floor(batchTokens / seq));
    for (let i = 0; i < rows.length; i += per) out.push({ ids: rows.slice(i, i + per), seq, hidden: new Uint16Array(0) });
  }
  return out;
}

/** Embedding graph (weights as inputs, fed straight from the checkpoint: no copy inside the model bytes). */
async function embedSession(arch: ArchDefinition, cfg: ModelConfig, ck: Checkpoint, act: ActivationDtype, device?: Device) {
  const w = new InputWeights('');
  const g = new GraphBuilder('embed');
  const ids = g.input('input_ids', 'int64', ['batch', 'seq']);
  const S = g.op('Squeeze', [g.op('Shape', [ids], { start: 1, end: 2 })]);
  const pos = g.op('Unsqueeze', [g.op('Range', [g.constI64(0), S, g.constI64(1)]), g.constI64([0])]);
  const h = arch.embed(g, cfg, w, ids, pos);
  g.output(act === 'float16' ? g.op('Cast', [h], { to: 10 }) : h, act, ['batch', 'seq', cfg.hiddenSize], 'hidden');
  const sess = await createSession(g.prune().toBytes(), { device, lowMemory: true });
  const feeds: Record<string, OrtTensor> = {};
  for (const i of w.inputs) feeds[i.rel] = f32(await ck.readFloat32(ck.resolve(i.name)), i.shape);
  return { sess, feeds };
}

export async function quantizeLayers(arch: ArchDefinition, cfg: ModelConfig, ck: Checkpoint, q: QuantizeConfig, calib: CalibrationSet, o: QuantizeLoopOptions = {}): Promise<QuantizeLoopResult> {
  const L = cfg.numLayers, H = cfg.hiddenSize, method = o.method ?? 'gptq', act = o.activationDtype ?? 'float16';
  const log = o.onLog ?? (() => {});
  const data = batches(calib, o.batchTokens ?? 4096);
  const nsamples = data.reduce((a, b) => a + b.ids.length, 0);
  if (!nsamples) fail('calibration: no tokens to calibrate on');
  // All activations in one buffer (batches are views): each layer overwrites its inputs with its outputs.
  const total = data.reduce((a, b) => a + b.ids.length * b.seq * H, 0);
  const store = act === 'float16' ? new Uint16Array(total) : new Float32Array(total);
  data.reduce((off, b) => { const n = b.ids.length * b.seq * H; b.hidden = store.subarray(off, off + n); return off + n; }, 0);
  for (const b of data) for (const row of b.ids) for (const t of row)
    if (t < 0 || t >= cfg.vocabSize) fail(`calibration: token id ${t} is outside the model's vocabulary (vocab_size ${cfg.vocabSize} in ${cfg.path}); tokenizer and model do not match`);
  // done/eta count the layers finished in this run (a resumed run extrapolates from its own layers only).
  const tStart = performance.now();
  let layersDone = 0, firstLayer = 0, tLoop = tStart;
  const emit = (e: Pick<QuantizeEvent, 'stage' | 'layer' | 'module' | 'loss' | 'seconds' | 'message'>) => {
    const elapsed = (performance.now() - tStart) / 1000;
    o.onEvent?.({ task: 'quantize', ...e, layers: L, done: layersDone, total: L, elapsed, eta: etaSeconds((performance.now() - tLoop) / 1000, layersDone - firstLayer, L - firstLayer) });
  };
  const result: QuantizeLoopResult = { quantized: new Set(), packed: new Map(), losses: new Map(), digests: new Map(), skipped: [], dequantized: new Map(), evaluationOnly: !!o.quantizeUnpackable };

  // Layer-0 inputs: embed the calibration tokens, or resume from the work dir's saved activations.
  const start = o.workDir ? await o.workDir.layersDone() : 0;
  for (let li = 0; li < start; li++) checkRecord((await o.workDir!.layer(li)).record, `work dir ${o.workDir!.dir}, layer ${li}`);
  layersDone = firstLayer = start;
  if (start > 0) {
    await o.workDir!.loadActivations(data.map((b) => b.hidden));
    emit({ stage: 'capture', layer: start, message: `resuming at layer ${start + 1}/${L} from ${o.workDir!.dir}` });
  } else {
    await captureInputs(arch, cfg, ck, data, act, o.device);
    emit({ stage: 'capture', layer: 0, message: `${nsamples} samples, ${data.reduce((a, b) => a + b.ids.length * b.seq, 0)} tokens` });
  }

  // One set of graphs serves every layer (weights are inputs); rebuilt per layer only if the graph varies by index.
  const linBy = new Map(arch.layerLinears(cfg).map((l) => [l.rel, l]));
  const inside = arch.insideLayerModules(cfg);
  const groups = q.trueSequential ? inside.map((g) => [...g]) : [inside.flat()];
  const varies = arch.layerGraphVaries?.(cfg) ?? false;
  // Finished modules enter the later graphs as codes + scales + zeros, dequantized in-graph (DequantizeLinear),
  // when their groups are contiguous column blocks (not act-order without static groups); else as fp32 weights.
  const dqGroupSize = (rel: string): number | undefined => {
    const l = linBy.get(rel);
    if (!l || o.dequantizeInGraph === false || (packable(l.inFeatures, l.outFeatures, q.bits) && !o.quantizeUnpackable)) return undefined;
    const gs = q.groupSize > 0 ? q.groupSize : l.inFeatures;
    return (!q.descAct || q.staticGroups) && l.inFeatures % gs === 0 ? gs : undefined;
  };
  const maxInGraph = o.hessianInGraphMaxBytes ?? 64e6;
  let graphs = start < L ? await layerGraphs(arch, cfg, groups, start, act, dqGroupSize, maxInGraph, o.device) : undefined;

  tLoop = performance.now();
  for (let li = start; li < L; li++) {
    if (o.signal?.aborted) fail('quantization interrupted');
    const prefix = `${arch.layersBlockName}${li}.`;
    if (varies && li > start) { await releaseGraphs(graphs!); graphs = await layerGraphs(arch, cfg, groups, li, act, dqGroupSize, maxInGraph, o.device); }
    const { fwd, fwdW, hessGraphs } = graphs!;
    const weights = new LayerWeights(ck, prefix);
    const mctx: ModuleContext = { ck, q, method, prefix, weights, nsamples, log, dequantized: o.keepDequantized ? result.dequantized : undefined };
    const layerTensors: Record<string, Tensor> = {};
    const record: LayerRecord = { skipped: [], losses: {}, digests: {} };

    for (const grp of hessGraphs) {
      const todo = grp.mods.filter((m) => {
        const l = linBy.get(m)!;
        const why = packable(l.inFeatures, l.outFeatures, q.bits);
        if (why) {
          record.skipped.push({ name: prefix + m, reason: why });
          emit({ stage: 'skip', layer: li, module: m, message: o.quantizeUnpackable ? `${why} (fake-quantized for evaluation only)` : why });
        }
        return !why || o.quantizeUnpackable;
      });
      if (!todo.length) continue;
      const routed = new Map<string, number>();
      const hess = method === 'gptq' ? await hessians(grp, todo, weights, data, H, nsamples, routed) : new Map<string, Float32Array>();
      await collectGarbage();
      if (method === 'gptq') emit({ stage: 'hessian', layer: li, message: [...hess.keys()].join(',') });
      for (const m of todo) {
        // The last module reading a Hessian hands its buffer to GPTQ (factorized in place, no copy).
        const rep = grp.repOf.get(m)!, lastUse = todo.filter((x) => grp.repOf.get(x) === rep).at(-1) === m;
        const r = await quantizeModule(mctx, m, linBy.get(m)!, hess.get(rep), lastUse, routed.get(rep) === 0);
        if (lastUse) hess.delete(rep);
        emit({ stage: 'module', layer: li, module: m, loss: r.loss, seconds: r.seconds });
        if (r.tensors) { Object.assign(layerTensors, r.tensors); record.losses[r.name] = r.loss; record.digests![r.name] = r.digest; }
        await collectGarbage();
      }
    }
    await forwardLayer(fwd, fwdW.inputs, weights, data, H, prefix.slice(0, -1));
    if (o.workDir) {
      await o.workDir.saveLayer(li, layerTensors, record, data.map((b) => b.hidden), data.map((b) => [b.ids.length, b.seq, H]));
    } else {
      addLayer(result, new Map(Object.entries(layerTensors)), record);
    }
    await collectGarbage();
    layersDone = li + 1;
    emit({ stage: 'layer-done', layer: li });
  }
  if (graphs) await releaseGraphs(graphs);
  if (o.workDir) for (let li = 0; li < L; li++) {
    const { tensors, record } = await o.workDir.layer(li);
    addLayer(result, tensors, record);
  }
  return result;
}

// The steps below are separate functions on purpose: an async function's locals can stay referenced until it
// returns, so big temporaries (weights, Hessians, feeds) must live in a callee's frame to be freed on time.

/** Layer-0 inputs: the calibration tokens through the embedding graph. */
async function captureInputs(arch: ArchDefinition, cfg: ModelConfig, ck: Checkpoint, data: Batch[], act: ActivationDtype, device?: Device): Promise<void> {
  const emb = await embedSession(arch, cfg, ck, act, device);
  for (const b of data) {
    await runInto(emb.sess, { ...emb.feeds, input_ids: i64(Array.from(b.ids.flatMap((x) => Array.from(x))), [b.ids.length, b.seq]) }, { hidden: actTensor(b.hidden, [b.ids.length, b.seq, cfg.hiddenSize]) });
    if (!allFinite(b.hidden)) fail(`calibration activations are NaN/Inf at the input of layer 0 (embedding output); check the embedding weights`);
  }
  await emb.sess.release();
}

interface ModuleContext {
  ck: Checkpoint; q: QuantizeConfig; method: 'gptq' | 'rtn'; prefix: string; weights: LayerWeights; nsamples: number;
  log: (msg: string) => void; dequantized?: Map<string, Float32Array>;
}

/** GPTQ (or RTN) of one linear from its source weight; its codes then stand in for the weight in `c.weights`. */
async function quantizeModule(c: ModuleContext, m: string, l: LayerLinear, H: Float32Array | undefined, consumeHessian: boolean, unrouted: boolean) {
  const { q, prefix } = c, ts = performance.now();
  // GPTQ works on torch Linear layout [out, in]; Conv1D (GPT-2) stores [in, out] (AutoGPTQ transposes too).
  const src = await c.weights.source(`${m}.weight`);
  const W = l.conv1d ? transpose(src, l.inFeatures, l.outFeatures) : src;
  // MoE expert that no calibration token was routed to: H = 0, so GPTQ's dead-column rule would zero the whole
  // weight (AutoGPTQ computes exactly that, then dies on `avg loss = …/nsamples` with nsamples 0, its issue #634).
  // Like GPTQModel's fail-safe we round-to-nearest it instead and say so.
  const gptq = c.method === 'gptq' && !unrouted;
  if (c.method === 'gptq' && unrouted) c.log(`${prefix}${m}: no calibration token was routed to this expert; quantized with RTN instead of GPTQ (use more calibration data)`);
  const r = gptq
    ? await gptqQuantize(W, H!, l.outFeatures, l.inFeatures, q, { onLog: (s) => c.log(`${prefix}${m}: ${s}`), nsamples: c.nsamples, consumeHessian })
      .catch((e: Error) => fail(`${prefix}${m}: ${e.message}`))
    : { ...withModule(`${prefix}${m}`, () => rtnQuantize(W, l.outFeatures, l.inFeatures, q)), avgLoss: NaN };
  c.weights.setQuantized(m, l, r);
  c.dequantized?.set(`${prefix}${m}.weight`, l.conv1d ? transpose(r.Q, l.outFeatures, l.inFeatures) : r.Q);
  const seconds = (performance.now() - ts) / 1000;
  // Saved names follow the source checkpoint's naming (with or without the base-model prefix).
  const name = c.ck.resolve(`${prefix}${m}.weight`).slice(0, -'.weight'.length);
  if (packable(l.inFeatures, l.outFeatures, q.bits)) return { name, loss: r.avgLoss, seconds }; // evaluation-only fake quantization
  // The bias is saved as fp16 (AutoGPTQ QuantLinear): from here on the model runs with that value.
  const bias = l.bias ? f16Values(await c.weights.source(`${m}.bias`), `${name}.bias`) : undefined;
  if (bias) { c.weights.setSource(`${m}.bias`, bias); c.dequantized?.set(`${prefix}${m}.bias`, bias); }
  const bits = q.bits as PackBits, fmt = q.checkpointFormat;
  const packed = withModule(name, () => packLinear({ codes: r.intCodes, scales: r.scales, zeros: r.zeros, gIdx: r.gIdx, bits, inFeatures: l.inFeatures, outFeatures: l.outFeatures, format: fmt }));
  const mod: QuantizedModule = { ...packed, name, inFeatures: l.inFeatures, outFeatures: l.outFeatures, bias, loss: r.avgLoss, seconds };
  const tensors = moduleTensors(mod, bits);
  verifyPackedModule(name, { ...packed, bias: tensors[`${name}.bias`]?.data as Uint16Array | undefined }, { ...r, bias },
    { bits, groupSize: q.groupSize, inFeatures: l.inFeatures, outFeatures: l.outFeatures, format: fmt });
  return { name, loss: r.avgLoss, seconds, tensors, digest: await moduleDigest(name, async (n) => tensors[n]) };
}

/** A bias rounded to the float16 values it is saved as (one line if a value overflows fp16). */
function f16Values(b: Float32Array, name: string): Float32Array {
  const o = new Float32Array(b.length);
  for (let i = 0; i < b.length; i++) {
    o[i] = f16ToF32(f32ToF16(b[i]!));
    if (!Number.isFinite(o[i]!)) fail(`${name}: value ${b[i]} at [${i}] is outside float16's range (±65504); GPTQ checkpoints store biases as fp16`);
  }
  return o;
}

/** Run `f`, prefixing a GptqError's message with the module name. */
function withModule<T>(name: string, f: () => T): T {
  try { return f(); } catch (e) { if (e instanceof GptqError) fail(`${name}: ${e.message}`); throw e; }
}

/**
 * Next layer's inputs from the quantized layer, written in place over the inputs: hidden_out is produced by the
 * graph's last node (a Cast in fp16 storage, else an elementwise residual Add), after every read of hidden_in.
 */
async function forwardLayer(fwd: InferenceSession, inputs: { rel: string; shape: number[] }[], weights: LayerWeights, data: Batch[], H: number, layerName: string): Promise<void> {
  const wf = await weights.feeds(inputs);
  for (const b of data) {
    const dims = [b.ids.length, b.seq, H], half = b.hidden instanceof Uint16Array, t = actTensor(b.hidden, dims);
    await runInto(fwd, { ...wf, hidden_in: t }, { hidden_out: t });
    if (!allFinite(b.hidden)) fail(`calibration activations are NaN/Inf at the output of layer ${layerName.split('.').pop()} (${layerName})${half ? ' (stored as float16: values beyond ±65504 overflow; try activationDtype float32 / --activation-dtype fp32)' : ''}; check the source weights and calibration data`);
  }
}

/** A finished layer's record must carry the verification digest of every quantized module (older work dirs don't). */
function checkRecord(rec: LayerRecord, where: string): void {
  for (const n of Object.keys(rec.losses)) {
    if (!rec.digests?.[n]) fail(`${where}: module ${n} was packed without verification against GPTQ's result (work dir from an older gptqjs); delete the work dir to start over`);
  }
}

function addLayer(r: QuantizeLoopResult, tensors: Map<string, TensorLike>, rec: LayerRecord): void {
  checkRecord(rec, 'quantized layer');
  for (const [n, t] of tensors) r.packed.set(n, t);
  for (const [n, loss] of Object.entries(rec.losses)) { r.quantized.add(n); r.losses.set(n, loss); r.digests.set(n, rec.digests![n]!); }
  r.skipped.push(...rec.skipped);
}

/**
 * H = 2/n·ΣXᵀX per distinct input of the group's modules, accumulated over all calibration batches. Row-masked
 * inputs (MoE experts: only routed tokens) also count their rows into `routed`. n is the calibration sample count
 * for every module (GPTQ is invariant to H's scale; only the logged avg loss depends on it).
 */
async function hessians(grp: LayerGraphs['hessGraphs'][number], todo: string[], weights: LayerWeights, data: Batch[], H: number, nsamples: number, routed?: Map<string, number>) {
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
  for (const b of data) {
    const r = await runInto(grp.sess, { ...wf, ...acc, hidden_in: actTensor(b.hidden, [b.ids.length, b.seq, H]) }, fetches);
    for (const rep of grp.viaRows) { const x = r[`x.${rep}`]!; await addGram(hess.get(rep)!, x.data as Float32Array, x.dims[0]!, x.dims[1]!); }
    for (const rep of reps) {
      const rows = r[`rows.${rep}`];
      if (rows && routed) routed.set(rep, (routed.get(rep) ?? 0) + Number((rows.data as Float32Array)[0]));
    }
  }
  for (const h of hess.values()) for (let k = 0; k < h.length; k++) h[k]! *= 2 / nsamples; // once per group
  return hess;
}

/**
 * H += XᵀX for X [rows, n], by row panels of H (each an ORT Gemm with the panel as C and output, in place), so the
 * copy onnxruntime-node returns per run is panel-sized instead of a whole [n, n] Hessian.
 */
async function addGram(h: Float32Array, x: Float32Array, rows: number, n: number): Promise<void> {
  const P = 1024, cols = new Float32Array(rows * Math.min(P, n));
  for (let i0 = 0; i0 < n; i0 += P) {
    const p = Math.min(P, n - i0), a = cols.subarray(0, rows * p);
    for (let t = 0; t < rows; t++) a.set(x.subarray(t * n + i0, t * n + i0 + p), t * p); // X[:, i0:i0+p]
    const panel = h.subarray(i0 * n, (i0 + p) * n);
    await gemm(a, x, panel, p, rows, n, { transA: true, out: panel });
  }
}

function allFinite(a: Float32Array | Uint16Array): boolean {
  if (a instanceof Uint16Array) { for (let i = 0; i < a.length; i++) if ((a[i]! & 0x7c00) === 0x7c00) return false; return true; }
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) return false;
  return true;
}

/**
 * The current layer's weights by relative name: source tensors are read from the checkpoint when needed (small
 * ones cached); quantized linears are kept as integer codes and materialized in fp32 (exactly GPTQ's Q =
 * scale·(q − zero)) only for the duration of a graph run.
 */
class LayerWeights {
  private codes = new Map<string, { l: LayerLinear; r: Pick<PackedInput, 'intCodes' | 'scales' | 'zeros' | 'gIdx'>; dq?: { scales: Float32Array; zeros: Uint8Array } }>();
  private small = new Map<string, Float32Array>();
  constructor(private readonly ck: Checkpoint, private readonly prefix: string) {}

  async source(rel: string): Promise<Float32Array> {
    const hit = this.small.get(rel);
    if (hit) return hit;
    const name = this.ck.resolve(this.prefix + rel);
    const w = await this.ck.readFloat32(name);
    if (!allFinite(w)) fail(`${this.ck.dir}: tensor "${name}" contains NaN or Inf; the source checkpoint is corrupt`);
    if (w.length <= 1 << 20) this.small.set(rel, w);
    return w;
  }

  /** Replace a source tensor for the rest of the layer (a bias rounded to what is saved). */
  setSource(rel: string, w: Float32Array): void { this.small.set(rel, w); }

  setQuantized(m: string, l: LayerLinear, r: PackedInput): void {
    this.codes.set(`${m}.weight`, { l, r: { intCodes: r.intCodes, scales: r.scales, zeros: r.zeros, gIdx: r.gIdx } });
  }

  async get(rel: string): Promise<Float32Array> {
    const q = this.codes.get(rel);
    if (!q) return this.source(rel);
    const { l, r } = q; // [out, in], or [in, out] for Conv1D
    return dequantizeCodes(r.intCodes, r.scales, r.zeros, r.gIdx, l.outFeatures, l.inFeatures, l.conv1d);
  }

  async feeds(inputs: { rel: string; shape: number[] }[]): Promise<Record<string, OrtTensor>> {
    const f: Record<string, OrtTensor> = {};
    for (const i of inputs) {
      const m = /^(.*\.weight)\.(codes|scales|zeros)$/.exec(i.rel);
      if (!m) { f[i.rel] = f32(await this.get(i.rel), i.shape); continue; }
      const q = this.codes.get(m[1]!);
      if (!q) fail(`internal: ${this.prefix}${m[1]} is not quantized yet`);
      q.dq ??= dqLayout(q.r, q.l.outFeatures);
      f[i.rel] = m[2] === 'codes' ? u8(q.r.intCodes, i.shape) : m[2] === 'scales' ? f32(q.dq.scales, i.shape) : u8(q.dq.zeros, i.shape);
    }
    return f;
  }
}

type PackedInput = { intCodes: Uint8Array; scales: Float32Array; zeros: Int32Array; gIdx: Int32Array };

/** GPTQ's scales/zeros [groups, rows] → DequantizeLinear's [rows, groups] (zeros as uint8). */
function dqLayout(r: Pick<PackedInput, 'scales' | 'zeros'>, rows: number) {
  const G = r.scales.length / rows, scales = new Float32Array(rows * G), zeros = new Uint8Array(rows * G);
  for (let g = 0; g < G; g++) for (let i = 0; i < rows; i++) { scales[i * G + g] = r.scales[g * rows + i]!; zeros[i * G + g] = r.zeros[g * rows + i]!; }
  return { scales, zeros };
}

type LayerGraphs = Awaited<ReturnType<typeof layerGraphs>>;

/** Forward graph + one Hessian graph per sequential group (modules sharing an input share one Gram matrix). */
async function layerGraphs(arch: ArchDefinition, cfg: ModelConfig, groups: string[][], layerIndex: number, hiddenType: ActivationDtype, dq: (rel: string) => number | undefined, maxInGraph: number, device?: Device) {
  const base = `${arch.layersBlockName}0.`;
  const fwdW = new InputWeights(base, dq);
  const groupOf = new Map(groups.flatMap((mods, k) => mods.map((m) => [m, k] as const)));
  const fwd = await createSession(buildLayerGraph(arch, cfg, fwdW, { layerIndex, hiddenType }).toBytes(), { device, lowMemory: true });
  const hessGraphs = await Promise.all(groups.map(async (mods, k) => {
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

async function releaseGraphs(g: LayerGraphs): Promise<void> {
  await g.fwd.release();
  for (const h of g.hessGraphs) await h.sess.release();
}

function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const o = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) o[c * rows + r] = a[r * cols + c]!;
  return o;
}

