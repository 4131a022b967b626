/**
 * The GPTQ layer loop: AutoGPTQ `BaseGPTQForCausalLM.quantize`, IST-DASLab gptq `llama_sequential`. Capture the
 * inputs of layer 0; then for each decoder layer, for each sequential group (true_sequential: attention inputs, its
 * output, MLP inputs, MLP output): accumulate the Hessians of the group's linears on the layer's inputs, solve each
 * linear with GPTQ (or round to nearest), and pack and verify what will be saved; finally run the layer with its
 * quantized weights: its outputs are the next layer's inputs. Calibration (batches, capture, Hessians, the layer
 * graphs) is src/quant/calibrate.ts; the layer's weights src/quant/layer-weights.ts; one linear's tensors
 * src/quant/module-tensors.ts.
 *
 * Memory: layers are streamed from the checkpoint (a weight is read when a graph or GPTQ needs it); finished modules
 * stay as integer codes and later graphs dequantize them in-graph; calibration activations live in one buffer (fp16
 * by default, as AutoGPTQ calibrates) that each layer overwrites in place; GPTQ factorizes each Hessian once for the
 * modules that share it (q/k/v, gate/up; AutoGPTQ does it per module), the last one in its own buffer. With a work
 * dir every finished layer is written and a rerun resumes after it.
 */
import type { Device } from '../graph/session.ts';
import type { ModelConfig } from '../io/config.ts';
import type { CalibrationSet } from '../io/datasets.ts';
import type { Checkpoint, TensorLike } from '../io/safetensors.ts';
import type { ArchDefinition, LayerLinear } from '../models/types.ts';
import { fail } from '../errors.ts';
import { collectGarbage } from '../gc.ts';
import { etaSeconds, type QuantizeProgress } from '../progress.ts';
import { transpose, type Tensor } from '../tensor.ts';
import { sharedZeros } from '../platform/workers.ts';
import {
  accumulateHessians, calibrationBatches, captureInputs, forwardLayer, layerGraphs, releaseGraphs,
  type ActivationDtype, type Calibration, type HessianGraph,
} from './calibrate.ts';
import { gptqQuantize, type HinvCache } from './gptq.ts';
import { LayerWeights } from './layer-weights.ts';
import { f16Values, packModule, withModule } from './module-tensors.ts';
import { packable } from './pack.ts';
import type { QuantizeConfig } from './quantize-config.ts';
import { rtnQuantize } from './rtn.ts';
import type { LayerRecord, WorkDir } from './workdir.ts';

export type { ActivationDtype } from './calibrate.ts';

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

type Emit = (e: Pick<QuantizeEvent, 'stage' | 'layer' | 'module' | 'loss' | 'seconds' | 'message'>) => void;

/** GPTQ-quantize (or round to nearest) the decoder layers of a model, one after the other, on calibration data. */
export async function quantizeLayers(arch: ArchDefinition, cfg: ModelConfig, ck: Checkpoint, q: QuantizeConfig, calib: CalibrationSet, o: QuantizeLoopOptions = {}): Promise<QuantizeLoopResult> {
  const L = cfg.numLayers, method = o.method ?? 'gptq', act = o.activationDtype ?? 'float16';
  const data = calibrationBatches(calib, cfg, o.batchTokens ?? 4096, act);
  // done/eta count the layers finished in this run (a resumed run extrapolates from its own layers only).
  const tStart = performance.now();
  let layersDone = 0, firstLayer = 0, tLoop = tStart;
  const emit: Emit = (e) => {
    const elapsed = (performance.now() - tStart) / 1000;
    o.onEvent?.({ task: 'quantize', ...e, layers: L, done: layersDone, total: L, elapsed, eta: etaSeconds((performance.now() - tLoop) / 1000, layersDone - firstLayer, L - firstLayer) });
  };
  const result: QuantizeLoopResult = { quantized: new Set(), packed: new Map(), losses: new Map(), digests: new Map(), skipped: [], dequantized: new Map(), evaluationOnly: !!o.quantizeUnpackable };

  // Layer-0 inputs: embed the calibration tokens, or resume from the work dir's saved activations.
  const start = o.workDir ? await o.workDir.layersDone() : 0;
  for (let li = 0; li < start; li++) checkRecord((await o.workDir!.layer(li)).record, `work dir ${o.workDir!.dir}, layer ${li}`);
  layersDone = firstLayer = start;
  if (start > 0) {
    await o.workDir!.loadActivations(data.batches.map((b) => b.hidden));
    emit({ stage: 'capture', layer: start, message: `resuming at layer ${start + 1}/${L} from ${o.workDir!.dir}` });
  } else {
    await captureInputs(arch, cfg, ck, data, act, o.device);
    emit({ stage: 'capture', layer: 0, message: `${data.nsamples} samples, ${data.tokens} tokens` });
  }

  // One set of graphs serves every layer (weights are inputs); rebuilt per layer only if the graph varies by index.
  // Layers that differ (dense and MoE layers) have their own linears and groups.
  const varies = arch.layerGraphVaries?.(cfg) ?? false;
  let linBy = new Map<string, LayerLinear>(), groups: string[][] = [];
  const planFor = (li?: number) => {
    linBy = new Map(arch.layerLinears(cfg, li).map((l) => [l.rel, l]));
    const inside = arch.insideLayerModules(cfg, li);
    groups = q.trueSequential ? inside.map((g) => [...g]) : [inside.flat()];
  };
  planFor(varies ? start : undefined);
  // Finished modules enter the later graphs as codes + scales + zeros, dequantized in-graph (DequantizeLinear),
  // when their groups are contiguous column blocks (not act-order without static groups); else as fp32 weights.
  const dqGroupSize = (rel: string): number | undefined => {
    const l = linBy.get(rel);
    if (!l || o.dequantizeInGraph === false || (packable(l.inFeatures, l.outFeatures, q.bits) && !o.quantizeUnpackable)) return undefined;
    const gs = q.groupSize > 0 ? q.groupSize : l.inFeatures;
    return (!q.descAct || q.staticGroups) && l.inFeatures % gs === 0 ? gs : undefined;
  };
  const graphsFor = (li: number) => layerGraphs(arch, cfg, groups, li, act, dqGroupSize, o.hessianInGraphMaxBytes ?? 64e6, o.device);
  let graphs = start < L ? await graphsFor(start) : undefined;

  tLoop = performance.now();
  for (let li = start; li < L; li++) {
    if (o.signal?.aborted) fail('quantization interrupted');
    const prefix = `${arch.layersBlockName}${li}.`;
    if (varies && li > start) { await releaseGraphs(graphs!); planFor(li); graphs = await graphsFor(li); }
    const weights = new LayerWeights(ck, prefix);
    const mctx: ModuleContext = { ck, q, method, prefix, weights, nsamples: data.nsamples, log: o.onLog ?? (() => {}), dequantized: o.keepDequantized ? result.dequantized : undefined };
    const layer: LayerOutput = { tensors: {}, record: { skipped: [], losses: {}, digests: {} } };
    for (const grp of graphs!.hessGraphs) {
      const todo = modulesToQuantize(grp.mods, linBy, q, li, prefix, !!o.quantizeUnpackable, layer.record, emit);
      if (todo.length) await quantizeGroup(grp, todo, linBy, weights, data, mctx, li, layer, emit);
    }
    await forwardLayer(graphs!, weights, data, prefix.slice(0, -1));
    if (o.workDir) {
      await o.workDir.saveLayer(li, layer.tensors, layer.record, data.batches.map((b) => b.hidden), data.batches.map((b) => [b.ids.length, b.seq, data.hidden]));
    } else {
      addLayer(result, new Map(Object.entries(layer.tensors)), layer.record);
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

/** A finished layer: the tensors it saves and its record (work dir format). */
interface LayerOutput { tensors: Record<string, Tensor>; record: LayerRecord }

/** The group's modules that get quantized: the packable ones (others are recorded as skipped), or all when fake-quantizing. */
function modulesToQuantize(mods: string[], linBy: Map<string, LayerLinear>, q: QuantizeConfig, li: number, prefix: string, unpackableToo: boolean, record: LayerRecord, emit: Emit): string[] {
  return mods.filter((m) => {
    const l = linBy.get(m)!;
    const why = packable(l.inFeatures, l.outFeatures, q.bits);
    if (why) {
      record.skipped.push({ name: prefix + m, reason: why });
      emit({ stage: 'skip', layer: li, module: m, message: unpackableToo ? `${why} (fake-quantized for evaluation only)` : why });
    }
    return !why || unpackableToo;
  });
}

// The steps below are separate functions on purpose: an async function's locals can stay referenced until it
// returns, so big temporaries (weights, Hessians, feeds) must live in a callee's frame to be freed on time.

/** One sequential group: its Hessians on the layer's inputs, then each module solved, packed and verified. */
async function quantizeGroup(grp: HessianGraph, todo: string[], linBy: Map<string, LayerLinear>, weights: LayerWeights, data: Calibration, c: ModuleContext, li: number, layer: LayerOutput, emit: Emit): Promise<void> {
  const routed = new Map<string, number>();
  const hess = c.method === 'gptq' ? await accumulateHessians(grp, todo, weights, data, routed) : new Map<string, Float32Array>();
  await collectGarbage();
  if (c.method === 'gptq') emit({ stage: 'hessian', layer: li, message: [...hess.keys()].join(',') });
  const hinv = new Map<string, HinvCache>(); // per Hessian: its inverse, factorized once for the modules sharing it
  for (const m of todo) {
    // The last module reading a Hessian hands its buffer to GPTQ (factorized in place, no copy).
    const rep = grp.repOf.get(m)!, lastUse = todo.filter((x) => grp.repOf.get(x) === rep).at(-1) === m;
    if (!hinv.has(rep)) hinv.set(rep, {});
    const r = await quantizeModule(c, m, linBy.get(m)!, hess.get(rep), lastUse, routed.get(rep) === 0, hinv.get(rep)!);
    if (lastUse) { hess.delete(rep); hinv.delete(rep); }
    emit({ stage: 'module', layer: li, module: m, loss: r.loss, seconds: r.seconds });
    if (r.tensors) { Object.assign(layer.tensors, r.tensors); layer.record.losses[r.name] = r.loss; layer.record.digests![r.name] = r.digest; }
    await collectGarbage();
  }
}

interface ModuleContext {
  ck: Checkpoint; q: QuantizeConfig; method: 'gptq' | 'rtn'; prefix: string; weights: LayerWeights; nsamples: number;
  log: (msg: string) => void; dequantized?: Map<string, Float32Array>;
}

/**
 * GPTQ (or RTN) of one linear from its source weight; its codes then stand in for the weight in `c.weights`. Returns
 * its saved tensors and their digest (none for an unpackable module fake-quantized for evaluation).
 */
async function quantizeModule(c: ModuleContext, m: string, l: LayerLinear, H: Float32Array | undefined, consumeHessian: boolean, unrouted: boolean, hinvCache: HinvCache) {
  const { q, prefix } = c, ts = performance.now();
  // GPTQ works on torch Linear layout [out, in]; Conv1D (GPT-2) stores [in, out] (AutoGPTQ transposes too).
  // (in shared memory: the solve's worker threads read it in place)
  const src = await c.weights.source(`${m}.weight`, !l.conv1d);
  const W = l.conv1d ? transpose(src, l.inFeatures, l.outFeatures, sharedZeros(false, src.length)) : src;
  // MoE expert that no calibration token was routed to: H = 0, so GPTQ's dead-column rule would zero the whole
  // weight (AutoGPTQ computes exactly that, then dies on `avg loss = …/nsamples` with nsamples 0, its issue #634).
  // Like GPTQModel's fail-safe we round-to-nearest it instead and say so.
  const gptq = c.method === 'gptq' && !unrouted;
  if (c.method === 'gptq' && unrouted) c.log(`${prefix}${m}: no calibration token was routed to this expert; quantized with RTN instead of GPTQ (use more calibration data)`);
  const r = gptq
    ? await gptqQuantize(W, H!, l.outFeatures, l.inFeatures, q, { onLog: (s) => c.log(`${prefix}${m}: ${s}`), nsamples: c.nsamples, consumeHessian, hinvCache })
      .catch((e: Error) => fail(`${prefix}${m}: ${e.message}`))
    : { ...withModule(`${prefix}${m}`, () => rtnQuantize(W, l.outFeatures, l.inFeatures, q)), avgLoss: NaN };
  c.weights.setQuantized(m, l, r);
  c.dequantized?.set(`${prefix}${m}.weight`, l.conv1d ? transpose(r.Q, l.outFeatures, l.inFeatures, new Float32Array(r.Q.length)) : r.Q);
  const seconds = (performance.now() - ts) / 1000;
  // Saved names follow the source checkpoint's naming (with or without the base-model prefix).
  const name = c.ck.resolve(`${prefix}${m}.weight`).slice(0, -'.weight'.length);
  if (packable(l.inFeatures, l.outFeatures, q.bits)) return { name, loss: r.avgLoss, seconds }; // evaluation-only fake quantization
  // The bias is saved as fp16 (AutoGPTQ QuantLinear): from here on the model runs with that value.
  const bias = l.bias ? f16Values(await c.weights.source(`${m}.bias`), `${name}.bias`) : undefined;
  if (bias) { c.weights.setSource(`${m}.bias`, bias); c.dequantized?.set(`${prefix}${m}.bias`, bias); }
  const { tensors, digest } = await packModule(name, { intCodes: r.intCodes, scales: r.scales, zeros: r.zeros, gIdx: r.gIdx, bias }, { bits: q.bits, groupSize: q.groupSize, inFeatures: l.inFeatures, outFeatures: l.outFeatures, format: q.checkpointFormat });
  return { name, loss: r.avgLoss, seconds, tensors, digest };
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
