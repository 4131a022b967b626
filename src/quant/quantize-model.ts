/**
 * The GPTQ layer loop (AutoGPTQ `BaseGPTQForCausalLM.quantize`): capture layer-0 inputs; for each decoder layer
 * and each sequential group, accumulate H = 2/n·ΣXᵀX inside the ORT layer graph, run GPTQ per module, write
 * the dequantized weights back, then recompute the layer's outputs with the quantized weights as the next
 * layer's inputs. Layers are streamed from the checkpoint: only the current layer's weights are resident.
 */
import type { InferenceSession } from 'onnxruntime-node';
import { GraphBuilder } from '../graph/builder.ts';
import { buildLayerGraph } from '../graph/causal-lm.ts';
import { createSession, f32, i64, type Device } from '../graph/session.ts';
import { InitializerWeights, InputWeights } from '../graph/weights.ts';
import type { ModelConfig } from '../io/config.ts';
import type { Checkpoint } from '../io/safetensors.ts';
import type { CalibrationSet } from '../io/datasets.ts';
import type { ArchDefinition } from '../models/types.ts';
import { fail } from '../errors.ts';
import type { QuantizeConfig } from './config.ts';
import { gptqQuantize } from './gptq.ts';
import { packLinear, packable, type PackBits, type PackedLinear } from './pack.ts';
import { rtnQuantize } from './rtn.ts';
import { moduleTensors } from './save.ts';
import type { LayerRecord, WorkDir } from './workdir.ts';
import type { TensorLike } from '../io/safetensors.ts';
import type { Tensor } from '../tensor.ts';

export interface QuantizedModule extends PackedLinear { name: string; inFeatures: number; outFeatures: number; bias?: Float32Array; loss: number; seconds: number }
export interface SkippedModule { name: string; reason: string }

export interface QuantizeEvent {
  stage: 'capture' | 'hessian' | 'module' | 'layer-done' | 'skip';
  layer: number; layers: number; module?: string; loss?: number; seconds?: number; eta?: number; message?: string;
}

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
}

export interface QuantizeLoopResult {
  /** Names of the quantized modules. */
  quantized: Set<string>;
  /** Their packed tensors (in memory, or lazily read from the work dir). */
  packed: Map<string, TensorLike>;
  /** Per-module average GPTQ loss. */
  losses: Map<string, number>;
  skipped: SkippedModule[];
  /** Dequantized weights of every quantized module (for evaluating the fake-quantized model). */
  dequantized: Map<string, Float32Array>;
  /** True when unpackable modules were fake-quantized: the result can be evaluated but not saved. */
  evaluationOnly: boolean;
}

/** Calibration rows grouped into equal-length batches: hidden states live as [B,S,H] Float32Arrays. */
interface Batch { ids: Int32Array[]; seq: number; hidden: Float32Array }

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
    for (let i = 0; i < rows.length; i += per) out.push({ ids: rows.slice(i, i + per), seq, hidden: new Float32Array(0) });
  }
  return out;
}

async function embedSession(arch: ArchDefinition, cfg: ModelConfig, ck: Checkpoint, device?: Device): Promise<InferenceSession> {
  const outside = new Map<string, Float32Array>();
  // Outside modules by full name; checkpoints saved from the base model lack its prefix (bloom-560m: "word_embeddings.weight").
  for (const n of ck.names()) for (const m of arch.outsideLayerModules) {
    const short = m.slice(m.indexOf('.') + 1);
    const full = n.startsWith(m + '.') ? n : m.includes('.') && n.startsWith(short + '.') ? m.slice(0, m.indexOf('.') + 1) + n : undefined;
    if (full && FLOAT_DTYPES.has(ck.info(n).dtype)) outside.set(full, await ck.readFloat32(n));
  }
  const g = new GraphBuilder('embed');
  const ids = g.input('input_ids', 'int64', ['batch', 'seq']);
  const S = g.op('Squeeze', [g.op('Shape', [ids], { start: 1, end: 2 })]);
  const pos = g.op('Unsqueeze', [g.op('Range', [g.constI64(0), S, g.constI64(1)]), g.constI64([0])]);
  g.output(arch.embed(g, cfg, new InitializerWeights((n) => outside.get(n)), ids, pos), 'float32', ['batch', 'seq', cfg.hiddenSize], 'hidden');
  return createSession(g.prune().toBytes(), { device, lowMemory: true });
}

export async function quantizeLayers(arch: ArchDefinition, cfg: ModelConfig, ck: Checkpoint, q: QuantizeConfig, calib: CalibrationSet, o: QuantizeLoopOptions = {}): Promise<QuantizeLoopResult> {
  const L = cfg.numLayers, H = cfg.hiddenSize, method = o.method ?? 'gptq';
  const log = o.onLog ?? (() => {});
  const data = batches(calib, o.batchTokens ?? 4096);
  const nsamples = data.reduce((a, b) => a + b.ids.length, 0);
  if (!nsamples) fail('calibration: no tokens to calibrate on');
  for (const b of data) for (const row of b.ids) for (const t of row)
    if (t < 0 || t >= cfg.vocabSize) fail(`calibration: token id ${t} is outside the model's vocabulary (vocab_size ${cfg.vocabSize} in ${cfg.path}); tokenizer and model do not match`);
  const emit = (e: Omit<QuantizeEvent, 'layers'>) => o.onEvent?.({ ...e, layers: L });
  const result: QuantizeLoopResult = { quantized: new Set(), packed: new Map(), losses: new Map(), skipped: [], dequantized: new Map(), evaluationOnly: !!o.quantizeUnpackable };

  // Layer-0 inputs: embed the calibration tokens, or resume from the work dir's saved activations.
  const start = o.workDir ? await o.workDir.layersDone() : 0;
  if (start > 0) {
    const acts = await o.workDir!.loadActivations();
    if (acts.length !== data.length || acts.some((a, k) => a.length !== data[k]!.ids.length * data[k]!.seq * H))
      fail(`work dir ${o.workDir!.dir}: saved activations do not match the calibration batches; delete the work dir to start over`);
    acts.forEach((a, k) => { data[k]!.hidden = a; });
    emit({ stage: 'capture', layer: start, message: `resuming at layer ${start + 1}/${L} from ${o.workDir!.dir}` });
  } else {
    const emb = await embedSession(arch, cfg, ck, o.device);
    for (const b of data) {
      const r = await emb.run({ input_ids: i64(Array.from(b.ids.flatMap((x) => Array.from(x))), [b.ids.length, b.seq]) });
      b.hidden = r.hidden!.data as Float32Array;
      if (!allFinite(b.hidden)) fail(`calibration activations are NaN/Inf at the input of layer 0 (embedding output); check the embedding weights`);
    }
    await emb.release();
    emit({ stage: 'capture', layer: 0, message: `${nsamples} samples, ${data.reduce((a, b) => a + b.ids.length * b.seq, 0)} tokens` });
  }

  // One set of graphs serves every layer (weights are inputs); rebuilt per layer only if the graph varies by index.
  const linBy = new Map(arch.layerLinears(cfg).map((l) => [l.rel, l]));
  const inside = arch.insideLayerModulesFor?.(cfg) ?? arch.insideLayerModules;
  const groups = q.trueSequential ? inside.map((g) => [...g]) : [inside.flat()];
  const varies = arch.layerGraphVaries?.(cfg) ?? false;
  let graphs = start < L ? await layerGraphs(arch, cfg, groups, start, o.device) : undefined;

  const t0 = performance.now();
  for (let li = start; li < L; li++) {
    if (o.signal?.aborted) fail('quantization interrupted');
    const prefix = `${arch.layersBlockName}${li}.`;
    if (varies && li > start) { await releaseGraphs(graphs!); graphs = await layerGraphs(arch, cfg, groups, li, o.device); }
    const { fwd, fwdW, hessGraphs } = graphs!;
    const weights = new Map<string, Float32Array>();
    for (const inp of fwdW.inputs) {
      const name = resolveName(ck, prefix + inp.rel);
      const w = await ck.readFloat32(name);
      if (!allFinite(w)) fail(`${ck.dir}: tensor "${name}" contains NaN or Inf; the source checkpoint is corrupt`);
      weights.set(inp.rel, w);
    }
    const feedWeights = (inputs: { rel: string; shape: number[] }[]) =>
      Object.fromEntries(inputs.map((i) => [i.rel, f32(weights.get(i.rel)!, i.shape)]));
    const layerTensors: Record<string, Tensor> = {};
    const record: LayerRecord = { skipped: [], losses: {} };

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
      const hess = method === 'gptq' ? await hessians(grp, todo, feedWeights(grp.inputs), data, H, nsamples, routed) : new Map<string, Float32Array>();
      if (method === 'gptq') emit({ stage: 'hessian', layer: li, message: [...hess.keys()].join(',') });
      for (const m of todo) {
        const l = linBy.get(m)!;
        const ts = performance.now();
        // GPTQ works on torch Linear layout [out, in]; Conv1D (GPT-2) stores [in, out] (AutoGPTQ transposes too).
        const W = l.conv1d ? transpose(weights.get(`${m}.weight`)!, l.inFeatures, l.outFeatures) : weights.get(`${m}.weight`)!;
        // MoE expert that no calibration token was routed to: H = 0, so GPTQ's dead-column rule would zero the whole
        // weight (AutoGPTQ computes exactly that, then dies on `avg loss = …/nsamples` with nsamples 0, its issue #634).
        // Like GPTQModel's fail-safe we round-to-nearest it instead and say so.
        const unrouted = method === 'gptq' && routed.get(grp.repOf.get(m)!) === 0;
        if (unrouted) log(`${prefix}${m}: no calibration token was routed to this expert; quantized with RTN instead of GPTQ (use more calibration data)`);
        const r = method === 'gptq' && !unrouted
          ? await gptqQuantize(W, hess.get(grp.repOf.get(m)!)!, l.outFeatures, l.inFeatures, q, { onLog: (s) => log(`${prefix}${m}: ${s}`), nsamples })
            .catch((e: Error) => fail(`${prefix}${m}: ${e.message}`))
          : { ...rtnQuantize(W, l.outFeatures, l.inFeatures, q), avgLoss: NaN };
        weights.set(`${m}.weight`, l.conv1d ? transpose(r.Q, l.outFeatures, l.inFeatures) : r.Q);
        if (o.keepDequantized) result.dequantized.set(`${prefix}${m}.weight`, weights.get(`${m}.weight`)!);
        const seconds = (performance.now() - ts) / 1000;
        emit({ stage: 'module', layer: li, module: m, loss: r.avgLoss, seconds });
        if (packable(l.inFeatures, l.outFeatures, q.bits)) continue; // evaluation-only fake quantization
        const packed = packLinear({ codes: r.intCodes, scales: r.scales, zeros: r.zeros, gIdx: r.gIdx, bits: q.bits as PackBits, inFeatures: l.inFeatures, outFeatures: l.outFeatures });
        // Saved names follow the source checkpoint's naming (with or without the base-model prefix).
        const name = resolveName(ck, `${prefix}${m}.weight`).slice(0, -'.weight'.length);
        const mod: QuantizedModule = { ...packed, name, inFeatures: l.inFeatures, outFeatures: l.outFeatures, bias: l.bias ? weights.get(`${m}.bias`) : undefined, loss: r.avgLoss, seconds };
        Object.assign(layerTensors, moduleTensors(mod, q.bits));
        record.losses[mod.name] = r.avgLoss;
      }
    }
    // Next layer's inputs from the quantized layer.
    const wf = feedWeights(fwdW.inputs);
    for (const b of data) {
      b.hidden = (await fwd.run({ ...wf, hidden_in: f32(b.hidden, [b.ids.length, b.seq, H]) })).hidden_out!.data as Float32Array;
      if (!allFinite(b.hidden)) fail(`calibration activations are NaN/Inf at the output of layer ${li} (${prefix.slice(0, -1)}); check the source weights and calibration data`);
    }
    if (o.workDir) {
      await o.workDir.saveLayer(li, layerTensors, record, data.map((b) => b.hidden), data.map((b) => [b.ids.length, b.seq, H]));
    } else {
      addLayer(result, new Map(Object.entries(layerTensors)), record);
    }
    const el = (performance.now() - t0) / 1000;
    emit({ stage: 'layer-done', layer: li, seconds: el, eta: (el / (li - start + 1)) * (L - li - 1) });
  }
  if (graphs) await releaseGraphs(graphs);
  if (o.workDir) for (let li = 0; li < L; li++) {
    const { tensors, record } = await o.workDir.layer(li);
    addLayer(result, tensors, record);
  }
  return result;
}

function addLayer(r: QuantizeLoopResult, tensors: Map<string, TensorLike>, rec: LayerRecord): void {
  for (const [n, t] of tensors) r.packed.set(n, t);
  for (const [n, loss] of Object.entries(rec.losses)) { r.quantized.add(n); r.losses.set(n, loss); }
  r.skipped.push(...rec.skipped);
}

/**
 * H = 2/n·ΣXᵀX per distinct input of the group's modules, accumulated over all calibration batches. Row-masked
 * inputs (MoE experts: only routed tokens) also count their rows into `routed`. n is the calibration sample count
 * for every module (GPTQ is invariant to H's scale; only the logged avg loss depends on it).
 */
async function hessians(grp: LayerGraphs['hessGraphs'][number], todo: string[], wf: Record<string, ReturnType<typeof f32>>, data: Batch[], H: number, nsamples: number, routed?: Map<string, number>) {
  const reps = [...new Set(todo.map((m) => grp.repOf.get(m)!))];
  const hess = new Map<string, Float32Array>();
  for (const rep of reps) { const n = grp.inFeatures.get(rep)!; hess.set(rep, new Float32Array(n * n)); }
  for (const b of data) {
    const acc = Object.fromEntries(reps.map((rep) => [`xtx_acc.${rep}`, f32(hess.get(rep)!, [grp.inFeatures.get(rep)!, grp.inFeatures.get(rep)!])]));
    const r = await grp.sess.run({ ...wf, ...acc, hidden_in: f32(b.hidden, [b.ids.length, b.seq, H]) });
    for (const rep of reps) {
      hess.set(rep, r[`xtx.${rep}`]!.data as Float32Array); // running sum, accumulated inside the Gemm
      const rows = r[`rows.${rep}`];
      if (rows && routed) routed.set(rep, (routed.get(rep) ?? 0) + Number((rows.data as Float32Array)[0]));
    }
  }
  for (const h of hess.values()) for (let k = 0; k < h.length; k++) h[k]! *= 2 / nsamples; // once per group
  return hess;
}

const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);

function allFinite(a: Float32Array): boolean {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) return false;
  return true;
}

type LayerGraphs = Awaited<ReturnType<typeof layerGraphs>>;

/** Forward graph + one Hessian graph per sequential group (modules sharing an input share one Gram matrix). */
async function layerGraphs(arch: ArchDefinition, cfg: ModelConfig, groups: string[][], layerIndex: number, device?: Device) {
  const base = `${arch.layersBlockName}0.`;
  const fwdW = new InputWeights(base);
  const fwd = await createSession(buildLayerGraph(arch, cfg, fwdW, { layerIndex }).toBytes(), { device, lowMemory: true });
  const hessGraphs = await Promise.all(groups.map(async (mods) => {
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
    const w2 = new InputWeights(base);
    const sess = await createSession(buildLayerGraph(arch, cfg, w2, { withHidden: false, hessians: reps, layerIndex, accumulate: true }).toBytes(), { device, lowMemory: true });
    const repOf = new Map(mods.map((m) => [m, byTap.get(tapKey(w.taps.get(m)!))!]));
    const inFeatures = new Map(reps.map((r) => [r, w.taps.get(r)!.inFeatures]));
    return { mods, sess, inputs: w2.inputs, repOf, inFeatures };
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

/** Checkpoints saved from the base model lack its prefix (e.g. GPT-2 "h.0." for "transformer.h.0."). */
export function resolveName(ck: Checkpoint, name: string): string {
  if (ck.has(name)) return name;
  const short = name.slice(name.indexOf('.') + 1);
  return ck.has(short) ? short : name;
}
