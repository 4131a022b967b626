/**
 * Graph identity: the ONNX bytes gptqjs builds for every supported architecture stay exactly what they were when the
 * table below was recorded (issue 12 step 1: making an architecture one file must not change a single graph).
 *
 * Per case (every reference fixture of test/fixtures/archs with a supported model_type, plus the synthetic checkpoints
 * of the architecture tests): the runtime graphs as CausalLM builds them (GroupQueryAttention graph with/without the
 * NLL outputs; plain full-sequence and KV-step graphs, with CPU-fused kernels and without) and the calibration graphs
 * as quantizeLayers builds them (embedding graph, layer forward graph with fp16 hidden states, one Hessian graph per
 * true-sequential group with in-graph dequantization of the earlier groups). Each graph is serialized
 * (GraphBuilder.toBytes, initializers included) and its sha256 compared with HASHES. A case or graph gptqjs refuses
 * records the refusal instead ("refused: …", "gqa-unsupported").
 *
 * Record a new table (only for a change that is meant to alter graphs; say which in the commit):
 *   GPTQJS_RECORD_GRAPH_HASHES=/tmp/hashes.json node --import tsx --test test/graph-identity.test.ts
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GptqError } from '../src/errors.ts';
import { GraphBuilder } from '../src/graph/builder.ts';
import { buildCausalLM, GqaUnsupportedError, type ModelGraphOptions } from '../src/graph/model-graph.ts';
import { buildLayerGraph, InputWeights } from '../src/quant/calibrate.ts';
import { InitializerWeights } from '../src/graph/weights.ts';
import { loadModelConfig, type ModelConfig } from '../src/io/config.ts';
import { archFor, supportedModelTypes } from '../src/models/registry.ts';
import type { ArchDefinition } from '../src/models/types.ts';
import { openModelCheckpoint, readFloatTensors } from '../src/runtime/model-checkpoint.ts';
import { listArchFixtures, ARCH_FIXTURES_DIR } from './fixture-archs.ts';
import { tmpDir } from './helpers.ts';
import { makeLlamaCheckpoint } from './synth.ts';
import { makeBigCodeCheckpoint, makeGpt2Checkpoint } from './archs/gpt2.synth.ts';
import { makeOptCheckpoint } from './archs/opt.synth.ts';
import { makeGptjCheckpoint, makeNeoxCheckpoint, makePhiCheckpoint } from './archs/neox.synth.ts';
import { makeBloomCheckpoint } from './archs/bloom.synth.ts';
import { makeFalconCheckpoint } from './archs/falcon.synth.ts';
import { makeGemmaCheckpoint } from './archs/gemma.synth.ts';
import { makeBaichuanCheckpoint, makeInternCheckpoint, makeStarcoder2Checkpoint } from './archs/llama.synth.ts';
import { makeCohereCheckpoint } from './archs/cohere.synth.ts';
import { makeMixtralCheckpoint } from './archs/moe.synth.ts';

type Maker = (dir: string, o: any) => Promise<void>;
/** Synthetic checkpoints: [name, writer, options] (the variants the architecture tests run). */
const SYNTH: [string, Maker, Record<string, unknown>][] = [
  ['llama', makeLlamaCheckpoint, { seed: 1 }],
  ['llama tied, 3 layers', makeLlamaCheckpoint, { seed: 2, tie: true, layers: 3 }],
  ['mistral sliding 4', makeLlamaCheckpoint, { seed: 3, modelType: 'mistral', slidingWindow: 4 }],
  ['qwen2', makeLlamaCheckpoint, { seed: 4, modelType: 'qwen2' }],
  ['gpt2', makeGpt2Checkpoint, { seed: 11 }],
  ['gpt2 inverse layer idx, prefixless', makeGpt2Checkpoint, { seed: 12, layers: 3, inner: 48, scaleByInverseLayerIdx: true, basePrefixless: true, storeLmHead: true }],
  ['gpt2 no scale, relu', makeGpt2Checkpoint, { seed: 13, scaleAttnWeights: false, activation: 'relu', hidden: 24, heads: 3 }],
  ['opt', makeOptCheckpoint, { seed: 21 }],
  ['opt 350m', makeOptCheckpoint, { seed: 22, projDim: 16, layerNormBefore: false, layers: 3 }],
  ['opt proj, prefixless', makeOptCheckpoint, { seed: 23, projDim: 24, basePrefixless: true, storeLmHead: true }],
  ['opt no bias, no affine', makeOptCheckpoint, { seed: 24, enableBias: false, elementwiseAffine: false }],
  ['gpt_neox', makeNeoxCheckpoint, { seed: 11 }],
  ['gpt_neox sequential', makeNeoxCheckpoint, { seed: 12, parallelResidual: false, rotaryPct: 1, rotaryBase: 500, attentionBias: false, layers: 3, legacyBuffers: true }],
  ['gpt_neox tied', makeNeoxCheckpoint, { seed: 13, tie: true, rotaryPct: 0.5, act: 'gelu_new' }],
  ['gptj', makeGptjCheckpoint, { seed: 21 }],
  ['gptj full rotary', makeGptjCheckpoint, { seed: 22, rotaryDim: 16, inner: 96, layers: 3 }],
  ['gptj default rotary_dim', makeGptjCheckpoint, { seed: 23, omitRotaryDim: true, hidden: 128, heads: 2, inner: 128 }],
  ['phi', makePhiCheckpoint, { seed: 31 }],
  ['phi gqa qk-norm', makePhiCheckpoint, { seed: 32, kvHeads: 2, qkLayernorm: true, partialRotaryFactor: 0.4, ropeTheta: 500 }],
  ['bloom', makeBloomCheckpoint, { seed: 51 }],
  ['bloom 6 heads post-ln', makeBloomCheckpoint, { seed: 52, hidden: 96, heads: 6, postLnResidual: true }],
  ['bloom legacy', makeBloomCheckpoint, { seed: 53, legacy: true, storeLmHead: true, layers: 3 }],
  ['falcon 7b', makeFalconCheckpoint, { seed: 61 }],
  ['falcon 40b', makeFalconCheckpoint, { seed: 62, newArch: true, heads: 8, kvHeads: 2 }],
  ['falcon 11b', makeFalconCheckpoint, { seed: 63, newArch: true, kvHeads: 2, numLnInParallelAttn: 1, ffn: 96, ropeTheta: 500042 }],
  ['falcon rw', makeFalconCheckpoint, { seed: 64, multiQuery: false, parallelAttn: false, bias: true, activation: 'gelu_new' }],
  ['gemma', makeGemmaCheckpoint, { seed: 71 }],
  ['gemma legacy', makeGemmaCheckpoint, { seed: 72, kvHeads: 2, hiddenActivation: null, attentionBias: true, storeLmHead: true }],
  ['gemma silu', makeGemmaCheckpoint, { seed: 73, hiddenAct: 'silu', hiddenActivation: 'gelu', headDim: 16, heads: 8, kvHeads: 2 }],
  ['gpt_bigcode', makeBigCodeCheckpoint, { seed: 11 }],
  ['gpt_bigcode mha', makeBigCodeCheckpoint, { seed: 12, multiQuery: false, act: 'gelu', storeLmHead: true, layers: 3 }],
  ['starcoder2', makeStarcoder2Checkpoint, { seed: 21 }],
  ['starcoder2 untied', makeStarcoder2Checkpoint, { seed: 22, useBias: false, slidingWindow: null, tie: false, kvHeads: 4 }],
  ['internlm', makeInternCheckpoint, { seed: 31 }],
  ['internlm origin', makeInternCheckpoint, { seed: 32, bias: false, rotary: { base: 500, type: 'origin' } }],
  ['internlm2', makeInternCheckpoint, { seed: 33, v2: true }],
  ['internlm2 8/2', makeInternCheckpoint, { seed: 34, v2: true, heads: 8, kvHeads: 2, bias: true, ropeTheta: 10000 }],
  ['baichuan2', makeBaichuanCheckpoint, { seed: 41 }],
  ['baichuan', makeBaichuanCheckpoint, { seed: 42, v2: false }],
  ['cohere', makeCohereCheckpoint, { seed: 51 }],
  ['cohere qk-norm', makeCohereCheckpoint, { seed: 52, qkNorm: true, kvHeads: 2, attentionBias: true, logitScale: 0.8333, storeLmHead: true, ropeTheta: 75000000 }],
  ['mixtral', makeMixtralCheckpoint, { seed: 1 }],
  ['mixtral 8 tied', makeMixtralCheckpoint, { seed: 2, experts: 8, tie: true, layers: 3 }],
  ['mixtral top-1', makeMixtralCheckpoint, { seed: 3, topK: 1 }],
];

/** The runtime's graphs (src/runtime/causal-lm.ts GRAPHS/graphsFor: CPU fused, NLL on the first graph; GPU unfused; serve's slots). */
const RUNTIME: Record<string, ModelGraphOptions> = {
  'gqa+nll': { kvCache: true, kvMode: 'gqa', logitsToKeepInput: true, fusedOps: true, nllOutput: true, argmaxOutput: true },
  'gqa': { kvCache: true, kvMode: 'gqa', logitsToKeepInput: true, fusedOps: true },
  'full+nll': { kvCache: false, fusedOps: true, nllOutput: true, argmaxOutput: true },
  'step': { kvCache: true, lastLogitsOnly: true, fusedOps: true },
  'full unfused': { kvCache: false },
  'step unfused': { kvCache: true, lastLogitsOnly: true },
  'slots': { kvCache: true, kvMode: 'slots', logitsToKeepInput: true, fusedOps: true },
};

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex').slice(0, 16);

function refusal(e: unknown): string {
  if (e instanceof GqaUnsupportedError) return 'gqa-unsupported';
  if (e instanceof GptqError) return `refused: ${e.message.replace(/^.*config\.json: /, '').slice(0, 80)}`;
  throw e;
}

/** quantize-model.ts embedSession's graph. */
function embedGraph(arch: ArchDefinition, cfg: ModelConfig): GraphBuilder {
  const w = new InputWeights('');
  const g = new GraphBuilder('embed');
  const ids = g.input('input_ids', 'int64', ['batch', 'seq']);
  const S = g.op('Squeeze', [g.op('Shape', [ids], { start: 1, end: 2 })]);
  const pos = g.op('Unsqueeze', [g.op('Range', [g.constI64(0), S, g.constI64(1)]), g.constI64([0])]);
  const h = arch.embed(g, cfg, w, ids, pos);
  g.output(g.op('Cast', [h], { to: 10 }), 'float16', ['batch', 'seq', cfg.hiddenSize], 'hidden');
  return g.prune();
}

/** quantize-model.ts layerGraphs' forward and per-group Hessian graphs for layer `li` (group size 16 where it divides). */
function calibrationGraphs(arch: ArchDefinition, cfg: ModelConfig, li: number, out: Record<string, string>): void {
  const base = `${arch.layersBlockName}0.`;
  const lin = new Map(arch.layerLinears(cfg, li).map((l) => [l.rel, l]));
  const dq = (rel: string) => (lin.has(rel) && lin.get(rel)!.inFeatures % 16 === 0 ? 16 : undefined);
  const groups = arch.insideLayerModules(cfg, li).map((g) => [...g]);
  const groupOf = new Map(groups.flatMap((mods, k) => mods.map((m) => [m, k] as const)));
  out[`layer${li} fwd`] = sha(buildLayerGraph(arch, cfg, new InputWeights(base, dq), { layerIndex: li, hiddenType: 'float16' }).toBytes());
  groups.forEach((mods, k) => {
    const w2 = new InputWeights(base, (rel) => ((groupOf.get(rel) ?? k) < k ? dq(rel) : undefined));
    const g = buildLayerGraph(arch, cfg, w2, { withHidden: false, hessians: mods, layerIndex: li, accumulate: true, hiddenType: 'float16', tapsOut: mods.slice(1) });
    out[`layer${li} hessians ${k}`] = sha(g.toBytes());
  });
}

async function hashesOf(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  let cfg: ModelConfig, arch: ArchDefinition;
  try {
    cfg = await loadModelConfig(dir);
    arch = archFor(cfg.modelType);
    arch.check?.(cfg);
  } catch (e) { return { all: refusal(e) }; }
  const ck = await openModelCheckpoint(dir, cfg, arch);
  let tensors: Map<string, Float32Array>;
  try { tensors = await readFloatTensors(ck); } finally { await ck.dispose(); }
  for (const [name, o] of Object.entries(RUNTIME)) {
    try {
      out[name] = sha(buildCausalLM(arch, cfg, new InitializerWeights((n) => tensors.get(n)), o).toBytes());
    } catch (e) { out[name] = refusal(e); }
  }
  try {
    out.embed = sha(embedGraph(arch, cfg).toBytes());
    calibrationGraphs(arch, cfg, 0, out);
    if (arch.layerGraphVaries?.(cfg)) calibrationGraphs(arch, cfg, cfg.numLayers - 1, out);
  } catch (e) { out.calibration = refusal(e); }
  return out;
}

async function computeAll(): Promise<Record<string, Record<string, string>>> {
  const table: Record<string, Record<string, string>> = {};
  const supported = new Set(supportedModelTypes());
  for (const name of listArchFixtures()) {
    const dir = join(ARCH_FIXTURES_DIR, name);
    const cfg = await loadModelConfig(dir).catch(() => undefined);
    if (cfg && supported.has(cfg.modelType)) table[`fixture ${name}`] = await hashesOf(dir);
  }
  const t = tmpDir();
  try {
    for (const [i, [name, make, o]] of SYNTH.entries()) {
      const dir = join(t.path, String(i));
      await make(dir, o);
      table[`synth ${name}`] = await hashesOf(dir);
    }
  } finally { t.cleanup(); }
  return table;
}

/**
 * Recorded on main (1707c62) before the one-file refactor of issue 12 and re-recorded after it, where exactly these
 * cases changed on purpose (every other graph of the 72 recorded cases is byte-identical):
 *  - fixture llama-dynamic, synth internlm (rotary "dynamic"), synth internlm2, synth internlm2 8/2 (rope_scaling
 *    dynamic): dynamic NTK frequencies are now computed in-graph from max(position_ids) + 1 (src/models/rope.ts);
 *  - fixture llama-yarn: rope_scaling yarn was refused, now built;
 *  - fixture llama-yarn-mscale, llama-longrope: new fixtures.
 * The `slots` graphs (gptq serve, merged later) were recorded on main e968489 with the same harness: identical here
 * except for the same dynamic-RoPE / yarn cases.
 */
const HASHES: Record<string, Record<string, string>> = {
  "fixture baichuan-13b": { all: "refused: baichuan without max_position_embeddings is a 13B ALiBi model (Baichuan-13B / Ba" },
  "fixture bloom": { "gqa+nll": "f4ae32b4abc17ccd", gqa: "cc3fdd56dfd4de7f", "full+nll": "9a9e89626f6ca8f6", step: "7d7c1cbbd8c1ebef", "full unfused": "9cd2108a1d883d35", "step unfused": "e23c44fda04c4645", slots: "087178b509ea5c7d", embed: "0dec6137d66ee9bc", "layer0 fwd": "3d2c576f6d02be7c", "layer0 hessians 0": "4caf495bcaf8691c", "layer0 hessians 1": "8d714c1a36d18e09", "layer0 hessians 2": "665ea70d0a434295", "layer0 hessians 3": "cb83167a8aa2cf56" },
  "fixture cohere": { "gqa+nll": "1bc011cb73109843", gqa: "3116ce2249b1fbb6", "full+nll": "99489257ee026622", step: "75ee87b33c358a7d", "full unfused": "95bc9dc62cba8c08", "step unfused": "75ee87b33c358a7d", slots: "e8831f9fa1871e1c", embed: "e99d3569cea566d6", "layer0 fwd": "e8e9615e105c74ed", "layer0 hessians 0": "083c2f7ad2fdaa5a", "layer0 hessians 1": "6ed68f515c9945a6", "layer0 hessians 2": "3fff9b95be75238b", "layer0 hessians 3": "d1b683ed3605d88e" },
  "fixture cohere-qknorm": { "gqa+nll": "0dd21a3e3ddc962e", gqa: "365f86ad2cd639a4", "full+nll": "25635766d56ee7d2", step: "4ac49a0835e9681b", "full unfused": "acbab66a05da4e73", "step unfused": "4ac49a0835e9681b", slots: "609c24592633277d", embed: "e99d3569cea566d6", "layer0 fwd": "a689037055d1071d", "layer0 hessians 0": "fdd95f5128bac0c3", "layer0 hessians 1": "84d17abd58a0e961", "layer0 hessians 2": "cd1c5d6922e4ca19", "layer0 hessians 3": "848c666c8015ee05" },
  "fixture exaone": { "gqa+nll": "df637732b1b069b6", gqa: "4e57df0b54929654", "full+nll": "bc2baba85d54e11a", step: "9cee023ef5fb5ee1", "full unfused": "ff9408dcf030e557", "step unfused": "400b7b8ed0bba154", slots: "a98b4a0facd8f994", embed: "403bb22a9f000b3f", "layer0 fwd": "6a2d86e06847da72", "layer0 hessians 0": "47537b2beaa66546", "layer0 hessians 1": "72753bfce6bc904c", "layer0 hessians 2": "dad408f266d39bec", "layer0 hessians 3": "8d70cfc04bbbac02" },
  "fixture exaone4": { "gqa+nll": "9a4ce1f228c7204d", gqa: "964ad1a35a92e293", "full+nll": "3b9c5b865bac8943", step: "fa82ff6d9c01378e", "full unfused": "46ea90b6ff38217f", "step unfused": "d16ab593d426c530", slots: "6ca6df7965a17595", embed: "e99d3569cea566d6", "layer0 fwd": "44dd6f7d5924f61c", "layer0 hessians 0": "a03cfd5ea5d44907", "layer0 hessians 1": "6200f94f6875573e", "layer0 hessians 2": "fab549f6e11fca3a", "layer0 hessians 3": "e0b146dd5690ad65", "layer1 fwd": "261bc4f50564e189", "layer1 hessians 0": "334f8c2b19b20f9d", "layer1 hessians 1": "c26a0f02e9edd674", "layer1 hessians 2": "b2b4224268269575", "layer1 hessians 3": "2d7182e0c1b97bc8" },
  "fixture falcon": { "gqa+nll": "91420897e8a96876", gqa: "348f437522d0cd54", "full+nll": "e1e1cf75fdb4ce7e", step: "1b6e0366013d5c07", "full unfused": "3e7bb7e20af14b6c", "step unfused": "27e9d69b9df187c7", slots: "1e4e9d26119d9495", embed: "2ae1f2cdd4d18a85", "layer0 fwd": "aea05743ae42e508", "layer0 hessians 0": "1fe1c31712740127", "layer0 hessians 1": "c83dabb08829d394", "layer0 hessians 2": "6618ba2dcfa3bd1f", "layer0 hessians 3": "0679e02a26142011" },
  "fixture falcon-7b": { "gqa+nll": "8eb1adf03c990c29", gqa: "45e07c54d6103c80", "full+nll": "adc58c5bbc5b0bc9", step: "1fdf20f520c00083", "full unfused": "ec80ace4e8e0a9b7", "step unfused": "fdf8610cf3da35ac", slots: "93ac43559bf5d652", embed: "2ae1f2cdd4d18a85", "layer0 fwd": "a2395e390ed90ab1", "layer0 hessians 0": "817234c2b1e224fc", "layer0 hessians 1": "e8bd5b0b330310c6", "layer0 hessians 2": "db0f125c2b1c5247", "layer0 hessians 3": "8cd1baa8deeb2252" },
  "fixture falcon-rw": { all: "refused: falcon with alibi=true is not supported (only rotary Falcon models are)" },
  "fixture gemma": { "gqa+nll": "d53d3fff3acbf1eb", gqa: "af1c0189f8a32fa9", "full+nll": "26771867a5c4c6d3", step: "bac7f92fb8e610d1", "full unfused": "9077a4b0e0412cac", "step unfused": "81b5da87574aaa0a", slots: "d174cfe01bc199e7", embed: "211f453dbe90019b", "layer0 fwd": "1fa4e9b7a6b57b3e", "layer0 hessians 0": "8c65953185acdc96", "layer0 hessians 1": "fb2bc4c657d48aa1", "layer0 hessians 2": "1fdf8721824a0f4f", "layer0 hessians 3": "9636b82dee065f74" },
  "fixture gpt2": { "gqa+nll": "91151aac26af0959", gqa: "512f6192ca1e6da8", "full+nll": "3f8977267fea4f8d", step: "ec52a013ab18ff6c", "full unfused": "fbc4342915ab27b0", "step unfused": "f4a2ee7f01868496", slots: "c7f784a546da043f", embed: "38d5f7ab061a4313", "layer0 fwd": "7b6396408c2a7257", "layer0 hessians 0": "dbdfffa03b0ddb5b", "layer0 hessians 1": "6e6a98ce77d9706f", "layer0 hessians 2": "83786fca53c69de4", "layer0 hessians 3": "a7f767a9dca6ab70" },
  "fixture gpt_bigcode": { "gqa+nll": "e00f53dea7588f5a", gqa: "dea7b94005b672b9", "full+nll": "1dabaeeccc9fe75e", step: "8bbaa152bc6e41b0", "full unfused": "0b0c54b9eb2e66ee", "step unfused": "5ac3da4b90c6eb6e", slots: "b870351170432ab4", embed: "83b3d3c7aab5f2e6", "layer0 fwd": "722502868a957d39", "layer0 hessians 0": "d6394f2b2e280c56", "layer0 hessians 1": "1e8aee5f35849434", "layer0 hessians 2": "e34f9fda06f97e08", "layer0 hessians 3": "9469aca20dd8e36d" },
  "fixture gpt_neox": { "gqa+nll": "026cafde00c7c230", gqa: "52e37debf73a1532", "full+nll": "0f536b24b662ac45", step: "470de8f8f96be715", "full unfused": "e93499678c6409e5", "step unfused": "493b91f204d6ad05", slots: "32654d566962b516", embed: "bb0d586feef9adcc", "layer0 fwd": "5a9d4022b36d30db", "layer0 hessians 0": "c2c08ceca0724135", "layer0 hessians 1": "e878a0540ba57f11", "layer0 hessians 2": "8a6a09ad1705be9c", "layer0 hessians 3": "2b400549264e6ffa" },
  "fixture gpt_neox-seq": { "gqa+nll": "f2453e6a10daa32b", gqa: "080576292c42f66d", "full+nll": "525bcbd3d65e2823", step: "cc04ed784cf74f4d", "full unfused": "1e97504d8b90c802", "step unfused": "bfcb7fd5b0a74065", slots: "f890e96de8a83da9", embed: "bb0d586feef9adcc", "layer0 fwd": "2463f0468accf583", "layer0 hessians 0": "c2c08ceca0724135", "layer0 hessians 1": "25b7a497871262fa", "layer0 hessians 2": "ec74c87972dddfb3", "layer0 hessians 3": "b1787795dd7484b5" },
  "fixture gptj": { "gqa+nll": "5c0817f9f170e30b", gqa: "47310cf865dafb55", "full+nll": "1bfe0124ef7216c6", step: "dad530738e0a9610", "full unfused": "19a2eea181efe561", "step unfused": "dad530738e0a9610", slots: "d16ff8f729f108ab", embed: "8914a20e6356166f", "layer0 fwd": "f0e2cb1781b8f467", "layer0 hessians 0": "cf793ac8110a8a5c", "layer0 hessians 1": "ef2fc3c2b745e049", "layer0 hessians 2": "bc1f32e6521166fc", "layer0 hessians 3": "698320ec01c03d88" },
  "fixture granite": { "gqa+nll": "e23e0dd80e4c54f1", gqa: "8aa50b9c4e352c60", "full+nll": "4381d4f7499c4fd9", step: "9d291bcec09558a7", "full unfused": "ec54147bb57c748f", "step unfused": "46b6cbf20392de8f", slots: "1aa1344e29f588d4", embed: "bc47f6fd2d115e65", "layer0 fwd": "f5125e462247c461", "layer0 hessians 0": "2c6167ae9a5a3ab2", "layer0 hessians 1": "5728861cc88e7b49", "layer0 hessians 2": "a0e3f28ea04c2cfb", "layer0 hessians 3": "a5bc4d020ca5aba9" },
  "fixture internlm": { "gqa+nll": "d8ca3cc0c9f2ad3a", gqa: "b63f77f0b6710181", "full+nll": "b7622b86e5f41b43", step: "7a3e7fe676dc9417", "full unfused": "8c1a5f4a5ec3eb02", "step unfused": "cc62fe8680e54b80", slots: "fb7f137d0ed87ee7", embed: "28440d77aa1d411a", "layer0 fwd": "42ff99da38db60d2", "layer0 hessians 0": "828cf6fcbb6429ad", "layer0 hessians 1": "0d1120af3191815f", "layer0 hessians 2": "77395e60a003f215", "layer0 hessians 3": "d45c758d3b3b69cd" },
  "fixture internlm2": { "gqa+nll": "89850b9b827ee4fd", gqa: "f8f48f7026de8246", "full+nll": "1eef279cb2c7c81a", step: "7ec3bba23410d4a8", "full unfused": "c103e22ee6e419e5", "step unfused": "89143cedb23f47ef", slots: "33cc9fe8ce14dfff", embed: "c8073d922ec67ed9", "layer0 fwd": "0a36846dd4d9d486", "layer0 hessians 0": "70e2c4dc75c72b12", "layer0 hessians 1": "ff31b59febc90be7", "layer0 hessians 2": "ce0487d091452eba", "layer0 hessians 3": "fe7c575c01e976e2" },
  "fixture llama": { "gqa+nll": "b88776075a0cdc82", gqa: "7494ea85ca9ce429", "full+nll": "2b66fb1caca939f1", step: "2dc2764616a33865", "full unfused": "7d806c34f2cd4ae5", "step unfused": "fda42da3163d13c7", slots: "709a18d3bcc1688e", embed: "e99d3569cea566d6", "layer0 fwd": "dea6047e6c1f21b8", "layer0 hessians 0": "9de210f4ade17300", "layer0 hessians 1": "29318dedae2a4a8d", "layer0 hessians 2": "0c433ad06e12ddff", "layer0 hessians 3": "a862e1fbde821973" },
  "fixture llama-dynamic": { "gqa+nll": "7edd94beb11dbbd6", gqa: "674e783f2c82053a", "full+nll": "24f5ea286bd1981e", step: "dcd1cd046472253c", "full unfused": "e3f16aa3e72f4d2e", "step unfused": "4d4157342322ab27", slots: "6c68efcefc20873e", embed: "e99d3569cea566d6", "layer0 fwd": "987232d58001aeb9", "layer0 hessians 0": "8376486bc8b1825f", "layer0 hessians 1": "32c3e8df064c4e30", "layer0 hessians 2": "7eb1c9b1398ce600", "layer0 hessians 3": "7dbaa9570a9c146f" },
  "fixture llama-linear": { "gqa+nll": "353da88b3eeb15eb", gqa: "96d69714934e22f3", "full+nll": "7cfa9bd787474955", step: "80c4a25a6da647d9", "full unfused": "f4b1b13f9c840e6b", "step unfused": "a10bd6df52114d6a", slots: "30973bdb9c75ce17", embed: "e99d3569cea566d6", "layer0 fwd": "57570fe88543760b", "layer0 hessians 0": "9de210f4ade17300", "layer0 hessians 1": "b7d4785bc84ebf07", "layer0 hessians 2": "d178494444d034ac", "layer0 hessians 3": "9c9db63f0217004f" },
  "fixture llama-llama3": { "gqa+nll": "996e8ed51d6f7980", gqa: "ed50abe32a76146b", "full+nll": "3bfcc46918e92b2a", step: "81b62d1086fc68cd", "full unfused": "121cb2e54b68ffe2", "step unfused": "dbb0014e7b457441", slots: "387b5a06275c9e12", embed: "e99d3569cea566d6", "layer0 fwd": "be54cac5bf262297", "layer0 hessians 0": "9de210f4ade17300", "layer0 hessians 1": "b7a872f1ead280a8", "layer0 hessians 2": "e94376607b8de837", "layer0 hessians 3": "dcb43a6ee9ab6eaa" },
  "fixture llama-longrope": { "gqa+nll": "4c30a35296cc24e5", gqa: "d0a177133730527c", "full+nll": "f7ec7b28fd7b89e0", step: "c929bee5dc07c11c", "full unfused": "9f5f5390aea10e59", "step unfused": "0c0bb7f5084e8494", slots: "45a64bff2a91d795", embed: "e99d3569cea566d6", "layer0 fwd": "dead7d3877d705c5", "layer0 hessians 0": "861a18ca9b41fc62", "layer0 hessians 1": "ac013c1285c02fd6", "layer0 hessians 2": "7aa9aa4a8e737e3a", "layer0 hessians 3": "99405d8beb566327" },
  "fixture llama-tied": { "gqa+nll": "923289f2547acdda", gqa: "615aabf66e5d6770", "full+nll": "2015f1a382e7d011", step: "c774489d38bca449", "full unfused": "12094ca3bddb4f11", "step unfused": "b81333b5bfec2ba6", slots: "a0b4a81a88bcb291", embed: "e99d3569cea566d6", "layer0 fwd": "bc04e2cd06a588eb", "layer0 hessians 0": "9de210f4ade17300", "layer0 hessians 1": "f54ed8af95f01860", "layer0 hessians 2": "5b94b25b5f0c6841", "layer0 hessians 3": "a94900355962859a" },
  "fixture llama-yarn": { "gqa+nll": "3b212eb1cfc11bad", gqa: "f175869b64a85314", "full+nll": "95adf7068d5436de", step: "d54c85ebaeaedd19", "full unfused": "87a90ed900120bec", "step unfused": "dc51db3f0a2fe12c", slots: "c709c3dcc714e784", embed: "e99d3569cea566d6", "layer0 fwd": "f21d456c8c4a6adc", "layer0 hessians 0": "185981ed1f369ab2", "layer0 hessians 1": "3e1fa4427bf16df2", "layer0 hessians 2": "db26ac86a894232e", "layer0 hessians 3": "181f64389c6290e6" },
  "fixture llama-yarn-mscale": { "gqa+nll": "8745bc60928674b2", gqa: "d543c746637508ce", "full+nll": "5f48c0717c1d1db6", step: "66aa2db2ac12aaa8", "full unfused": "1b26724877e3ea3e", "step unfused": "69aa09c1eed2bccf", slots: "23edaca1b4a67ab4", embed: "e99d3569cea566d6", "layer0 fwd": "24b28bdc3aae67dc", "layer0 hessians 0": "185981ed1f369ab2", "layer0 hessians 1": "159a9687d88f6201", "layer0 hessians 2": "43a0d46caa5945e6", "layer0 hessians 3": "d110e02ba92fe3ab" },
  "fixture minicpm": { "gqa+nll": "757b8627ba904069", gqa: "ea628542301a6694", "full+nll": "94a6f1d5b29a959a", step: "efa05ffe999d08fa", "full unfused": "ac57e8775c1c6f08", "step unfused": "f1096e37dca3f047", slots: "6bbd9118bfb66ac7", embed: "3d025b888b411092", "layer0 fwd": "0ab48099d24d54e8", "layer0 hessians 0": "5d94752ac85c6cec", "layer0 hessians 1": "b9e7e37e8b4d2e4b", "layer0 hessians 2": "00156849859cf1f6", "layer0 hessians 3": "1ab3518a34529215" },
  "fixture mistral": { "gqa+nll": "93ccebea9cef95ba", gqa: "262520f60ca39bf6", "full+nll": "21c66fc7cd2420ef", step: "278149b128fb7799", "full unfused": "ae4329feb86a388b", "step unfused": "0c16aed5fc47d6b8", slots: "acaa5226ba7d44c6", embed: "e99d3569cea566d6", "layer0 fwd": "2ee6fd02028ad78e", "layer0 hessians 0": "8fd691b64066b9fd", "layer0 hessians 1": "2e9d4714db2f59a7", "layer0 hessians 2": "e3dc7d23604e66b7", "layer0 hessians 3": "66a9a15425a2467f" },
  "fixture mixtral": { "gqa+nll": "b52583d2d3d91a41", gqa: "bcececf5c1f4dd74", "full+nll": "c5999d490ef76178", step: "a0b3527885aea7b2", "full unfused": "faffd59e7371a0bf", "step unfused": "77af9151233ee7e2", slots: "acc040f28aeb935b", embed: "e99d3569cea566d6", "layer0 fwd": "4c00b012ff48005e", "layer0 hessians 0": "834801664c1d4559", "layer0 hessians 1": "58d9a1c050303f59", "layer0 hessians 2": "2a8bc5f7cb97d288", "layer0 hessians 3": "74de4593a6714844" },
  "fixture olmo2": { "gqa+nll": "67453cc9f88d3fe3", gqa: "159ff3c8bab8ee80", "full+nll": "5132e4f3471fd90c", step: "a3a2a9f120e21efb", "full unfused": "e103e3cb98e4f47c", "step unfused": "3fcd0fad9b762b6f", slots: "428fcfff556c59c2", embed: "e99d3569cea566d6", "layer0 fwd": "c0d85235e29b80bc", "layer0 hessians 0": "2bfad4bba0448520", "layer0 hessians 1": "aba369ca407542b8", "layer0 hessians 2": "73465baa48a0a4c1", "layer0 hessians 3": "67940e111688cfa9" },
  "fixture opt": { "gqa+nll": "21cb0f7afe4e5bf9", gqa: "319a34a83b3da056", "full+nll": "0920e505cd1d2668", step: "213608d4ecafd513", "full unfused": "c88c483b04063c44", "step unfused": "00a49863ff585841", slots: "f92d0edde2dfb7f3", embed: "3a5215a180811032", "layer0 fwd": "3dc5321eff4ffb3f", "layer0 hessians 0": "eba6daf7bfe28b11", "layer0 hessians 1": "85dff25b4ee24adc", "layer0 hessians 2": "b523589f35a6d7cf", "layer0 hessians 3": "752b566a9d5a8af5" },
  "fixture opt-350m": { "gqa+nll": "da7494a038c7bb02", gqa: "436779cb42339a6d", "full+nll": "5206eb6fb55aea82", step: "291630d1d637be3a", "full unfused": "105501f4472086cc", "step unfused": "b39af9b44e527761", slots: "a963b933198b42ba", embed: "591fb9117e3fdab4", "layer0 fwd": "2d6558342dcfeff7", "layer0 hessians 0": "82154dfad0dd2b5e", "layer0 hessians 1": "bd93e6ecdb08f7ec", "layer0 hessians 2": "c982f527210d04a4", "layer0 hessians 3": "5148babfa9a44a34" },
  "fixture phi": { "gqa+nll": "a16f1637361f086e", gqa: "29f93785406d770c", "full+nll": "dbf1b8659637c9e1", step: "696589f9841516b7", "full unfused": "a48f106a14d7f400", "step unfused": "88d97d64960f7965", slots: "14912f524be3b6d1", embed: "28440d77aa1d411a", "layer0 fwd": "10a0497bbe7041e2", "layer0 hessians 0": "c2171b8c84b748b2", "layer0 hessians 1": "c342019422a9b16b", "layer0 hessians 2": "bf5b9ba1f2554ab3", "layer0 hessians 3": "cda8634ab6c89293" },
  "fixture qwen2": { "gqa+nll": "628707566550cc7b", gqa: "f0a660ca5b9c270b", "full+nll": "2b0211935acb15b4", step: "56dfd1af0b5b954f", "full unfused": "5c16e043d6aa5d2a", "step unfused": "359ef103853f8072", slots: "f71ef073448e6a11", embed: "e99d3569cea566d6", "layer0 fwd": "b3255b13a91a6122", "layer0 hessians 0": "3d19d7556353ff7c", "layer0 hessians 1": "8afc607f21ddd66f", "layer0 hessians 2": "178e49f4eb8918bb", "layer0 hessians 3": "99cf8acdbc8998d9" },
  "fixture qwen2_moe": { "gqa+nll": "5e672a11464c6dcd", gqa: "e8446bffa8201595", "full+nll": "ad9e8e34f3bac380", step: "67336e34c7ab0d2d", "full unfused": "40c1801827b7730a", "step unfused": "61d59e69dd192d05", slots: "4c1bd208b987d426", embed: "e99d3569cea566d6", "layer0 fwd": "00240b9fe908f02c", "layer0 hessians 0": "c0c00a6cf7e0b9f0", "layer0 hessians 1": "338d1a941b3a8a66", "layer0 hessians 2": "ee2b45999c2771b2", "layer0 hessians 3": "bdf7055fbe439d0c", "layer1 fwd": "a7f646b08a768351", "layer1 hessians 0": "e2550cedba4d5a3a", "layer1 hessians 1": "b38d85c7b3d29ffd", "layer1 hessians 2": "a97891ffc4cb2ecb", "layer1 hessians 3": "fce43ba884025189", "layer1 hessians 4": "3762a4d6bdc6c6bf", "layer1 hessians 5": "a1be5a7b036beaf6" },
  "fixture qwen2_moe-norm": { "gqa+nll": "ac861bcf54fa0e24", gqa: "f0c4707d121bbc72", "full+nll": "dbdd87c5420f5aae", step: "75a49641001e07b8", "full unfused": "8923abe390b48b0b", "step unfused": "ef6e0d44b316f4cf", slots: "05cdb8a62697dc68", embed: "e99d3569cea566d6", "layer0 fwd": "00240b9fe908f02c", "layer0 hessians 0": "c0c00a6cf7e0b9f0", "layer0 hessians 1": "338d1a941b3a8a66", "layer0 hessians 2": "ee2b45999c2771b2", "layer0 hessians 3": "bdf7055fbe439d0c", "layer1 fwd": "645555f6b5c80591", "layer1 hessians 0": "b7109dfad2347462", "layer1 hessians 1": "4fdd5218bde0e7bd", "layer1 hessians 2": "d84c2a726ec8ca10", "layer1 hessians 3": "ac8ddacbb49bc2bf", "layer1 hessians 4": "44edfea45448fa3e", "layer1 hessians 5": "5cc513cf86a3b7d6" },
  "fixture qwen3": { "gqa+nll": "1e82442da85c15f9", gqa: "e629dc5b6f686305", "full+nll": "4d3a98b57f2cb5b1", step: "a4c0a3772200685a", "full unfused": "378aa0a902881d3d", "step unfused": "9a33dc88077f74dd", slots: "caa7858cf300dbe7", embed: "e99d3569cea566d6", "layer0 fwd": "66631f67cb675cdd", "layer0 hessians 0": "e074b92a36559c64", "layer0 hessians 1": "53bb1eb907a24d57", "layer0 hessians 2": "9f8cff8132ca4766", "layer0 hessians 3": "1675e455adb0862f" },
  "fixture qwen3_moe": { "gqa+nll": "ab6157949101433a", gqa: "0da284139db5a236", "full+nll": "628f243366eb9a1b", step: "95fe79ea77c5327a", "full unfused": "f1d5fe8415aebaeb", "step unfused": "1c71aed0c973ea3b", slots: "4361a7fb03155c04", embed: "e99d3569cea566d6", "layer0 fwd": "158b8e7feee51e38", "layer0 hessians 0": "a962ceae81f81084", "layer0 hessians 1": "d9b03477fbcc4b72", "layer0 hessians 2": "fc3802731d0137ad", "layer0 hessians 3": "c130964fb95ae553", "layer1 fwd": "e6eed209ebab1739", "layer1 hessians 0": "3c58d8ad034719c5", "layer1 hessians 1": "2123c8ba4b2c1373", "layer1 hessians 2": "cebb4521971df937", "layer1 hessians 3": "2db1bf8e7a4b029b" },
  "fixture qwen3_moe-nonorm": { "gqa+nll": "27f530d6a48aa80a", gqa: "7ecf2ba704b89f6e", "full+nll": "898c9a21881e66c1", step: "63a861dc7eeab155", "full unfused": "cd652c032534a8f2", "step unfused": "ea7ce45104439478", slots: "82c9a066aea58a22", embed: "e99d3569cea566d6", "layer0 fwd": "158b8e7feee51e38", "layer0 hessians 0": "a962ceae81f81084", "layer0 hessians 1": "d9b03477fbcc4b72", "layer0 hessians 2": "fc3802731d0137ad", "layer0 hessians 3": "c130964fb95ae553", "layer1 fwd": "b8a8135c9bbfbec4", "layer1 hessians 0": "b2d3d32c34e3b8a0", "layer1 hessians 1": "5b7553216b026a3c", "layer1 hessians 2": "884398919af0e63b", "layer1 hessians 3": "36111aab101c2aae" },
  "fixture starcoder2": { "gqa+nll": "3886eb17a6297b40", gqa: "32d4f87be3a09f76", "full+nll": "c8a7420c6d317175", step: "46aa2ea453f30a05", "full unfused": "53098ff15c879b54", "step unfused": "67e958101d4bce4e", slots: "9c21b22e619d8424", embed: "e99d3569cea566d6", "layer0 fwd": "44fd56e3f3325ee6", "layer0 hessians 0": "a326e41feb5c089f", "layer0 hessians 1": "68d37ec2380d232a", "layer0 hessians 2": "91cb820e11de61a3", "layer0 hessians 3": "56ff3160c901ad51" },
  "synth llama": { "gqa+nll": "406bf89c79c9e3b5", gqa: "b6c213e45a19b1ce", "full+nll": "e80d8eb8c0281f8c", step: "0ee4fcb87339130c", "full unfused": "a55e8a5b0288e256", "step unfused": "3a1e1ce8d81107c9", slots: "a776b5a4e64cd5ea", embed: "e99d3569cea566d6", "layer0 fwd": "907227a7bf118511", "layer0 hessians 0": "764d3b48fee7e443", "layer0 hessians 1": "20957652b9e872cc", "layer0 hessians 2": "743aa7b016dc1681", "layer0 hessians 3": "218fca0b87858c95" },
  "synth llama tied, 3 layers": { "gqa+nll": "067abfcf3e0d484f", gqa: "062596f51d2f52a6", "full+nll": "85286e5e6eed7a29", step: "a878dd42a334533d", "full unfused": "bf1c0720c0ded427", "step unfused": "ffc219b890954807", slots: "4bd635b15a5cdf73", embed: "e99d3569cea566d6", "layer0 fwd": "907227a7bf118511", "layer0 hessians 0": "764d3b48fee7e443", "layer0 hessians 1": "20957652b9e872cc", "layer0 hessians 2": "743aa7b016dc1681", "layer0 hessians 3": "218fca0b87858c95" },
  "synth mistral sliding 4": { "gqa+nll": "d7a7357dd872ce79", gqa: "0fe2c2d261796d4f", "full+nll": "d9fd2e641cfdab3d", step: "d88bdd9886a87f29", "full unfused": "05df83271f10bf34", "step unfused": "ad83daa01598b29f", slots: "319bf86b9c8c6852", embed: "e99d3569cea566d6", "layer0 fwd": "f45d41b6435e6029", "layer0 hessians 0": "7e25878e1d618bf6", "layer0 hessians 1": "7d3d511da1fccc87", "layer0 hessians 2": "73fe7d734746807b", "layer0 hessians 3": "b83a5db5de87a80c" },
  "synth qwen2": { "gqa+nll": "6fbbf025981464b5", gqa: "3b5bbcb8db8b755a", "full+nll": "7b08f215cc98655a", step: "2641d1ff334a6514", "full unfused": "d014462064a2a363", "step unfused": "dfa9653cada73de9", slots: "57f444cfb7f3992b", embed: "e99d3569cea566d6", "layer0 fwd": "9dfdf51595f5cfde", "layer0 hessians 0": "bbca81435381168c", "layer0 hessians 1": "c8488e19e1ae7048", "layer0 hessians 2": "13f80566389fea2f", "layer0 hessians 3": "5032b562b576be89" },
  "synth gpt2": { "gqa+nll": "6246f7823e27cb00", gqa: "c4daba12dec065ce", "full+nll": "ec3e064a9e87bf84", step: "3c0979a487bf671f", "full unfused": "ea944cc85cb4793a", "step unfused": "a1e3e0f917fde074", slots: "7d45d4c1ab5589a0", embed: "1ba01a2b07004906", "layer0 fwd": "3155d615d71f6df3", "layer0 hessians 0": "c77808a49f63d45c", "layer0 hessians 1": "a73d5f070c6d82d8", "layer0 hessians 2": "5f05cd07e737b63d", "layer0 hessians 3": "8d18fdc791aa5885" },
  "synth gpt2 inverse layer idx, prefixless": { "gqa+nll": "8cdfe11fed37ed73", gqa: "f450c74668cf87bb", "full+nll": "23a7ffed85d99a10", step: "84699fd6977a9a8f", "full unfused": "1f71cc402d802ad0", "step unfused": "9617a2c5655c724d", slots: "44a25afa4bfb7266", embed: "1ba01a2b07004906", "layer0 fwd": "50910aa594e7aeb4", "layer0 hessians 0": "c77808a49f63d45c", "layer0 hessians 1": "a73d5f070c6d82d8", "layer0 hessians 2": "5f05cd07e737b63d", "layer0 hessians 3": "9965c37729f843b9", "layer2 fwd": "afaa26b8aa72438c", "layer2 hessians 0": "c77808a49f63d45c", "layer2 hessians 1": "ddbc671ae38a615f", "layer2 hessians 2": "db9f989825b86e1f", "layer2 hessians 3": "2a32a4bd42939b70" },
  "synth gpt2 no scale, relu": { "gqa+nll": "8003827a7a104756", gqa: "be41dfbb16d7d470", "full+nll": "abdf8341a6e81e7d", step: "70cde617c1f78ee2", "full unfused": "ac7ab4dc064f12af", "step unfused": "75012c634f3cc041", slots: "c34b2a1da42670b5", embed: "bd771a86c3a76d0a", "layer0 fwd": "3a272677d9f198a5", "layer0 hessians 0": "528a41c8a530d82e", "layer0 hessians 1": "e9c1444a41cb215e", "layer0 hessians 2": "dcca5779087525ee", "layer0 hessians 3": "09883f3d24b4340b" },
  "synth opt": { "gqa+nll": "e587f1454c78bb88", gqa: "056af77a0e5ff1e2", "full+nll": "b336d333deff9c2a", step: "58994e2e5493bb3c", "full unfused": "5fa46cbf44e4ea5c", "step unfused": "a5e466270b067634", slots: "08a46cf94ce3a2bc", embed: "04a2371c5cc5ab01", "layer0 fwd": "77359ece19f8bb7e", "layer0 hessians 0": "fa341506f422cf6d", "layer0 hessians 1": "08ad38bae593dc99", "layer0 hessians 2": "6ed58cf9106403ff", "layer0 hessians 3": "e9fec4316220869f" },
  "synth opt 350m": { "gqa+nll": "ad249c60a941d692", gqa: "e5982312fa9501ed", "full+nll": "b0bd57a603b01065", step: "73c376637a99790a", "full unfused": "d3db43acecb4e457", "step unfused": "55a427176a5f8dcf", slots: "4b330843d0dc709c", embed: "f274590b385d10f5", "layer0 fwd": "f0b14e38fe701229", "layer0 hessians 0": "f2ac6a78e2573836", "layer0 hessians 1": "78f305a9a5fc91ab", "layer0 hessians 2": "c1f1251b9ad4384b", "layer0 hessians 3": "b1061921257bc5ed" },
  "synth opt proj, prefixless": { "gqa+nll": "1ac9582ae1320361", gqa: "8ba9d9982ec0b244", "full+nll": "62d02caf100942dc", step: "caffcd243cdf9664", "full unfused": "1d5fc8957111718d", "step unfused": "fe4ad41b04207547", slots: "38fa234c01c47a82", embed: "91ff5064831d5dc9", "layer0 fwd": "77359ece19f8bb7e", "layer0 hessians 0": "fa341506f422cf6d", "layer0 hessians 1": "08ad38bae593dc99", "layer0 hessians 2": "6ed58cf9106403ff", "layer0 hessians 3": "e9fec4316220869f" },
  "synth opt no bias, no affine": { "gqa+nll": "b8785ee3a944e0d7", gqa: "8fba1add4ef9c826", "full+nll": "bfda51006bc9cd58", step: "9e916d58b33eb5c1", "full unfused": "4bfc5740f3268e30", "step unfused": "eba016f3d48ffd01", slots: "2f094a264d68899b", embed: "04a2371c5cc5ab01", "layer0 fwd": "f9c73a06ff9db3c3", "layer0 hessians 0": "3162580950b069a0", "layer0 hessians 1": "47fd0b4c753400fc", "layer0 hessians 2": "a2f6460d5ff253fa", "layer0 hessians 3": "f4034d82dc6ce2fb" },
  "synth gpt_neox": { "gqa+nll": "dac6af8589ed7767", gqa: "92c26e9e64fa7219", "full+nll": "ffaf24536ba6033c", step: "ca1ad50d68e522c3", "full unfused": "b22d0a8fb42b9ba2", "step unfused": "09d23b10b1bbdc20", slots: "66495cb40e16f328", embed: "f2b86ccb86f1df6a", "layer0 fwd": "b95b1ec08a90cfe1", "layer0 hessians 0": "8d05a2515fd1c14f", "layer0 hessians 1": "243fc161e7ac0fea", "layer0 hessians 2": "49e1c4bf348efab1", "layer0 hessians 3": "02d141dacae8fe79" },
  "synth gpt_neox sequential": { "gqa+nll": "1d2b5076e9862da2", gqa: "ff93448aed4b0325", "full+nll": "a11563aa120ec809", step: "c8a14e566927dadd", "full unfused": "3d0d64ebf8c1f110", "step unfused": "08675170e1ab3cdd", slots: "5381c551da92083a", embed: "f2b86ccb86f1df6a", "layer0 fwd": "934743b7b47b5d8d", "layer0 hessians 0": "cb637e80ce170d76", "layer0 hessians 1": "c486c07511329250", "layer0 hessians 2": "90fe39fd609c1a41", "layer0 hessians 3": "73608842d54af7b5" },
  "synth gpt_neox tied": { "gqa+nll": "2a55113884208361", gqa: "d743bc018f5c356e", "full+nll": "fdd0991fb063465b", step: "1218979d5d0b25fe", "full unfused": "4fbc33091e1fcabc", "step unfused": "5bae0a60a0d6447c", slots: "0be9f8d8d45425fe", embed: "f2b86ccb86f1df6a", "layer0 fwd": "dbd13ca8e9c5fb52", "layer0 hessians 0": "8d05a2515fd1c14f", "layer0 hessians 1": "9f604d4b84c437e3", "layer0 hessians 2": "49e1c4bf348efab1", "layer0 hessians 3": "a78ac2ddbe8270d6" },
  "synth gptj": { "gqa+nll": "f62de404f3d81300", gqa: "5febe5c09f36d9bb", "full+nll": "d3e74020c0673fca", step: "feb4ad572fb1bb53", "full unfused": "be2089c01abe3511", "step unfused": "feb4ad572fb1bb53", slots: "4be7eb3493c11223", embed: "2a125443b57e7131", "layer0 fwd": "7b04d8fcee1aba07", "layer0 hessians 0": "855eccb5d122bccd", "layer0 hessians 1": "f950ebd80fbeba1b", "layer0 hessians 2": "c7a8513c42dfe55a", "layer0 hessians 3": "46814c6f6ef219cf" },
  "synth gptj full rotary": { "gqa+nll": "7240a782c5f64ca5", gqa: "a4683a4fe169037b", "full+nll": "ef9b9c1069bd323d", step: "3127f544be328c63", "full unfused": "b8a9de5ca5ceb002", "step unfused": "3127f544be328c63", slots: "f5c9135ed2440783", embed: "2a125443b57e7131", "layer0 fwd": "6b00992808654deb", "layer0 hessians 0": "600f827b34cb75f2", "layer0 hessians 1": "f79221dea4f3bea0", "layer0 hessians 2": "ed1224a291152782", "layer0 hessians 3": "6253d78aeff9e3ae" },
  "synth gptj default rotary_dim": { "gqa+nll": "6f62f60487db103c", gqa: "1c1bd093eb8ea954", "full+nll": "f24b1edbf9270551", step: "9f96c8246f0784af", "full unfused": "6c75cbfc013af073", "step unfused": "9f96c8246f0784af", slots: "f3466c86aaf823ae", embed: "8a1b2451f8840ebf", "layer0 fwd": "3abf90bf8c42d45e", "layer0 hessians 0": "5f81a7d82db53a88", "layer0 hessians 1": "ad693aa93fde9938", "layer0 hessians 2": "01a9fdeacea20b04", "layer0 hessians 3": "53d074f55fb3c29e" },
  "synth phi": { "gqa+nll": "e960baeda5619f00", gqa: "684ddef7eb3483e4", "full+nll": "aebf32c69052fcd7", step: "14bc62530097d16c", "full unfused": "c0fce9b7faf48f1d", "step unfused": "b38f8f43623080c9", slots: "b2b8ceec87301d65", embed: "aae278d658fc3416", "layer0 fwd": "e3906193870d0059", "layer0 hessians 0": "ce7639db98a16d94", "layer0 hessians 1": "2eeb8c5cc400b6f6", "layer0 hessians 2": "8b5fa49ce8b8e256", "layer0 hessians 3": "6da36758daa619ff" },
  "synth phi gqa qk-norm": { "gqa+nll": "27df65f27be26e5c", gqa: "6e1dd02404d0bbf4", "full+nll": "da534b0452c44917", step: "71c665724cc99b8b", "full unfused": "c4d1a11390cf4784", "step unfused": "1456d5a0e9363cd0", slots: "4fa56d0c5852ea52", embed: "aae278d658fc3416", "layer0 fwd": "0bf1c21e0a8d67d4", "layer0 hessians 0": "de0095ca44c290fa", "layer0 hessians 1": "9f28a106fa4e9e9f", "layer0 hessians 2": "3098bc5c2ae56635", "layer0 hessians 3": "cc97297d504ddf5d" },
  "synth bloom": { "gqa+nll": "f6407e679ec128ba", gqa: "844e0971edff8efb", "full+nll": "f8d2321fb09ad10c", step: "48b5dc71b7a4a644", "full unfused": "2cd247ab241c6166", "step unfused": "bcc5c59319185ff8", slots: "47474b30b13285b3", embed: "86ddfbf9a7e39989", "layer0 fwd": "e5549c198086c4fe", "layer0 hessians 0": "70befb0aa0d7ea4b", "layer0 hessians 1": "0de0b9f7b9bc5f39", "layer0 hessians 2": "17ec8dadb5ee1c64", "layer0 hessians 3": "4eecec765ddf72d4" },
  "synth bloom 6 heads post-ln": { "gqa+nll": "69b9e801c54e0007", gqa: "aef11ab87cb66480", "full+nll": "0aafa994be51271a", step: "e08c7842c2455809", "full unfused": "fa230a020f495402", "step unfused": "815a2ac77fc50bec", slots: "3292b9a69092a719", embed: "634d0b50add76bd4", "layer0 fwd": "4d7dfef93d411378", "layer0 hessians 0": "c181b07714e3ee24", "layer0 hessians 1": "1d28bc83fa235d78", "layer0 hessians 2": "9258fd555bf55354", "layer0 hessians 3": "7bfd20e9d075e4cb" },
  "synth bloom legacy": { "gqa+nll": "5e11e9ad0d8f5f2a", gqa: "660115b9743e4849", "full+nll": "6728551a158051fa", step: "317421c31b9b5b1a", "full unfused": "cd7d21319e960723", "step unfused": "93d0dc3c472aa9c8", slots: "edc9cee8714a8f49", embed: "86ddfbf9a7e39989", "layer0 fwd": "e5549c198086c4fe", "layer0 hessians 0": "70befb0aa0d7ea4b", "layer0 hessians 1": "0de0b9f7b9bc5f39", "layer0 hessians 2": "17ec8dadb5ee1c64", "layer0 hessians 3": "4eecec765ddf72d4" },
  "synth falcon 7b": { "gqa+nll": "89a353e4d205ee61", gqa: "53c3ef0794ecea00", "full+nll": "e5cc1922f703bbf1", step: "edd5916d92f2a8c7", "full unfused": "6a2bd8d6e4f397b6", "step unfused": "384e5f0904218459", slots: "3e0508ceec5d0573", embed: "f70e61df30baabf5", "layer0 fwd": "8bd3fb9ef827277e", "layer0 hessians 0": "817234c2b1e224fc", "layer0 hessians 1": "e8bd5b0b330310c6", "layer0 hessians 2": "db0f125c2b1c5247", "layer0 hessians 3": "32a2c520e4efebb6" },
  "synth falcon 40b": { "gqa+nll": "a948647f786d3610", gqa: "b1fae40c2103315f", "full+nll": "ee5f5c72c3f561c2", step: "65b9c38a73e74d82", "full unfused": "e2bd5332056e1c6e", "step unfused": "48e09c3e8ff50d19", slots: "b786b44e28ea59e4", embed: "f70e61df30baabf5", "layer0 fwd": "d1a32581580ad8bc", "layer0 hessians 0": "1fe1c31712740127", "layer0 hessians 1": "aaaa9373c9a78ffc", "layer0 hessians 2": "6618ba2dcfa3bd1f", "layer0 hessians 3": "0a22baf44c8290b9" },
  "synth falcon 11b": { "gqa+nll": "c3ddcdb4e80ed77c", gqa: "35914f6e09752e79", "full+nll": "1fc157b25fac8973", step: "58a9fd647705afdc", "full unfused": "96cdda65c1bea661", "step unfused": "e223849810654772", slots: "2b35968b64bf7d24", embed: "f70e61df30baabf5", "layer0 fwd": "39b3f1a153e6d04c", "layer0 hessians 0": "817234c2b1e224fc", "layer0 hessians 1": "1d76594cf93a77ff", "layer0 hessians 2": "db0f125c2b1c5247", "layer0 hessians 3": "b22afe4492af8992" },
  "synth falcon rw": { "gqa+nll": "fca0b90a43211a56", gqa: "bf4fcebedea46f4d", "full+nll": "85883ebe2ff786d7", step: "59731c92a4c002f3", "full unfused": "88c0753748b13ed8", "step unfused": "e44550cb7823cc5c", slots: "7dba2e7a57534dba", embed: "f70e61df30baabf5", "layer0 fwd": "be84c96cae4382a0", "layer0 hessians 0": "60256cb1e0a205ac", "layer0 hessians 1": "0febf079b8cb72ab", "layer0 hessians 2": "ad11445d58ec76b1", "layer0 hessians 3": "a818c23ceb067380" },
  "synth gemma": { "gqa+nll": "355383ffc9692953", gqa: "77bef65803358e40", "full+nll": "b8a4b4b9dbdeb19c", step: "493e7cb1a1e748a4", "full unfused": "14d03cabc4b6f480", "step unfused": "f8309d14b289d670", slots: "5451684cf46f8b82", embed: "fff134c0920e0e5e", "layer0 fwd": "60505277593342bb", "layer0 hessians 0": "8c65953185acdc96", "layer0 hessians 1": "0f2ba11c68f51a60", "layer0 hessians 2": "4bbe13ec675298e3", "layer0 hessians 3": "500f522e9d527347" },
  "synth gemma legacy": { "gqa+nll": "f973d4f8742f8d8d", gqa: "2d762e46aae2b481", "full+nll": "e8022c7fa0f0f341", step: "cf4a6a68ccaf1930", "full unfused": "faa7df3e0c1b97e1", "step unfused": "d57de840b3459a82", slots: "502829eae7afcdad", embed: "fff134c0920e0e5e", "layer0 fwd": "d60de2321f26f963", "layer0 hessians 0": "be10fc146ba77658", "layer0 hessians 1": "30c8d815202f3c00", "layer0 hessians 2": "fe69e4ecd674671a", "layer0 hessians 3": "81fc7c8d4e6dba72" },
  "synth gemma silu": { "gqa+nll": "a2568ecdca72eb31", gqa: "e9fd77e42914206d", "full+nll": "eb338dd8d2210d77", step: "60399452f077439c", "full unfused": "3bb908473b137e19", "step unfused": "7431551c9b6dc9bf", slots: "f3e11904bcea9e1d", embed: "fff134c0920e0e5e", "layer0 fwd": "e6cc53c41f58139b", "layer0 hessians 0": "9dcb45aef4362ec8", "layer0 hessians 1": "500e7c95e584a2b3", "layer0 hessians 2": "3df4bd3858be654c", "layer0 hessians 3": "75bf015510627c32" },
  "synth gpt_bigcode": { "gqa+nll": "ea7343e550b6fbee", gqa: "a12a9fa3a3832dbc", "full+nll": "586bb3ed8909cf3d", step: "96b844874edf6a0a", "full unfused": "21db03257e699409", "step unfused": "4f2ddc147709f69d", slots: "b3326c97641d50c7", embed: "752e40077950f4bf", "layer0 fwd": "3d2180ac2095a8a3", "layer0 hessians 0": "d6394f2b2e280c56", "layer0 hessians 1": "1e8aee5f35849434", "layer0 hessians 2": "e34f9fda06f97e08", "layer0 hessians 3": "b9d69de41a41e1b7" },
  "synth gpt_bigcode mha": { "gqa+nll": "21c7094555d61d3a", gqa: "9901b03cf83509bc", "full+nll": "82dbdfababaa498f", step: "29deb0719b944cd7", "full unfused": "45c9ac3bf464979b", "step unfused": "e1cddb59aad7503e", slots: "1f075cbc112b4820", embed: "752e40077950f4bf", "layer0 fwd": "9c4698637ad578af", "layer0 hessians 0": "1ed9794e332a91ac", "layer0 hessians 1": "785c738b8d92d18b", "layer0 hessians 2": "004a42a414220fb7", "layer0 hessians 3": "2822ccbb1d277a01" },
  "synth starcoder2": { "gqa+nll": "d094902e7a1a993c", gqa: "9bea82bd4ee906b7", "full+nll": "965d7e5b73e24c72", step: "f2a5e18d0fb233d4", "full unfused": "1abe29d63227148a", "step unfused": "dd881f76845b9222", slots: "b0010a1f7b5e1326", embed: "aae278d658fc3416", "layer0 fwd": "a8e004252622bf55", "layer0 hessians 0": "acd5d758b5fe7aec", "layer0 hessians 1": "baa50386dac9fa0c", "layer0 hessians 2": "1e86c1eb5d528c7e", "layer0 hessians 3": "d6af4ad2bddcd9e1" },
  "synth starcoder2 untied": { "gqa+nll": "44af5f1fb2a27641", gqa: "ab9582b0293b0279", "full+nll": "a380d19f3cebcae7", step: "57a67ef994a4fa5b", "full unfused": "5ee17e6f9029c089", "step unfused": "191cc003e319b8ae", slots: "b7b144545d7c0efc", embed: "aae278d658fc3416", "layer0 fwd": "6d3e96f8da18dc4a", "layer0 hessians 0": "4d951b8ad7625212", "layer0 hessians 1": "f136ef3bc15d969e", "layer0 hessians 2": "794dd4861d3255cf", "layer0 hessians 3": "766bcd3c46c3275e" },
  "synth internlm": { "gqa+nll": "faba8f9ff687ccab", gqa: "b89c6a7b035f4d36", "full+nll": "b428d04c7546fcfe", step: "113e500e3c52ad81", "full unfused": "5b90fa6e8ea0f930", "step unfused": "f0b9e037b76c8f6b", slots: "c5317fc0e554cd7a", embed: "aae278d658fc3416", "layer0 fwd": "418744fabe361fc7", "layer0 hessians 0": "580e27dfedd18dbb", "layer0 hessians 1": "deaa18f74b2f3384", "layer0 hessians 2": "13c0e2d4219d04b4", "layer0 hessians 3": "2fb35e96af998657" },
  "synth internlm origin": { "gqa+nll": "826805da9c927375", gqa: "0e16986384e50d9e", "full+nll": "bcb1c49499df0ad2", step: "7393b8cf63b9eb4e", "full unfused": "6e8ba5b5b687ee7a", "step unfused": "e3140bdbbdcdc842", slots: "e85fd632a57d9ec6", embed: "aae278d658fc3416", "layer0 fwd": "12713973ce80c27e", "layer0 hessians 0": "9baaf8a43ee6afe0", "layer0 hessians 1": "1160c0159e8467d8", "layer0 hessians 2": "f735e4e7c4df4822", "layer0 hessians 3": "eee201cce6ee3d67" },
  "synth internlm2": { "gqa+nll": "59a32f545778200b", gqa: "20d3a8b62840e538", "full+nll": "c8aca44bf361f723", step: "0fc01c87a9af2a2e", "full unfused": "393e4bfde0932e91", "step unfused": "ea12479163cad002", slots: "2138e35774d527d2", embed: "46d29ad5ab773d6a", "layer0 fwd": "afbcaa7ba09d2948", "layer0 hessians 0": "334d061917999ed8", "layer0 hessians 1": "849e0cfc0d325691", "layer0 hessians 2": "a0412d46ca982cc8", "layer0 hessians 3": "04fca060713bc76f" },
  "synth internlm2 8/2": { "gqa+nll": "1fd527e0e7154838", gqa: "4911018ae267ae46", "full+nll": "4cd3a4fe37df81b5", step: "a68c72c0d5fbece0", "full unfused": "5c70bbcb30ac575e", "step unfused": "99869370ecd5a90e", slots: "3af7ca129602639a", embed: "46d29ad5ab773d6a", "layer0 fwd": "0825ebae639b2e6e", "layer0 hessians 0": "ec876acc36be93a1", "layer0 hessians 1": "efab3a0cb01af53a", "layer0 hessians 2": "acdb23e855330f76", "layer0 hessians 3": "372238937cad2d14" },
  "synth baichuan2": { "gqa+nll": "cad57505eac0611b", gqa: "1cb8491df652132f", "full+nll": "b27c055063ba0b5b", step: "05547bc439900a72", "full unfused": "f1782ca885c06cdc", "step unfused": "2e24831f6ee8a289", slots: "6309114bb6e1514b", embed: "aae278d658fc3416", "layer0 fwd": "bcdeb4da7924d03a", "layer0 hessians 0": "02e6f765593119b5", "layer0 hessians 1": "c14b7cd54b54b3a3", "layer0 hessians 2": "e4294962c6b650f9", "layer0 hessians 3": "ba84979f0eb87980" },
  "synth baichuan": { "gqa+nll": "f7a430485519376a", gqa: "ab0b30520aa11d28", "full+nll": "0ae3b17ed53230c4", step: "aa11893bc0216be3", "full unfused": "655c846f1a064b70", "step unfused": "77c402116fcbaa1d", slots: "9fa019a3c6c11656", embed: "aae278d658fc3416", "layer0 fwd": "bcdeb4da7924d03a", "layer0 hessians 0": "02e6f765593119b5", "layer0 hessians 1": "c14b7cd54b54b3a3", "layer0 hessians 2": "e4294962c6b650f9", "layer0 hessians 3": "ba84979f0eb87980" },
  "synth cohere": { "gqa+nll": "6de06c3b851581b7", gqa: "535a7b1185983d17", "full+nll": "578c2e9863a2420e", step: "946cef6befab3669", "full unfused": "b9887d33fa22e672", "step unfused": "946cef6befab3669", slots: "a6d5eed0e4cc7e8b", embed: "aae278d658fc3416", "layer0 fwd": "68575997a09f5367", "layer0 hessians 0": "a3ce0f061989fed3", "layer0 hessians 1": "77d7272fec14aa75", "layer0 hessians 2": "9ec5e5e67e425a11", "layer0 hessians 3": "2c5486bc86d75184" },
  "synth cohere qk-norm": { "gqa+nll": "4ed6ee6c467710c7", gqa: "02c0e15cd6ff3cf9", "full+nll": "265e12b3d24d10db", step: "6a46b9b416b51f4a", "full unfused": "2df283f21ebc3bb0", "step unfused": "6a46b9b416b51f4a", slots: "79ad9ea599bfa1a5", embed: "aae278d658fc3416", "layer0 fwd": "8e17d4c92edd6960", "layer0 hessians 0": "5f98deed9d2ed911", "layer0 hessians 1": "5518267b5ff6e000", "layer0 hessians 2": "7975400583fa9c6e", "layer0 hessians 3": "5189ee3efc2a6ed7" },
  "synth mixtral": { "gqa+nll": "b3f8f9a6d91dbf34", gqa: "138f41333607dec1", "full+nll": "c22be1e5dea3c5b2", step: "511ea26edfc7b20b", "full unfused": "6185a97ad9953c0a", "step unfused": "3ea4e92c98a99c9b", slots: "871665f3b8dfaa74", embed: "aae278d658fc3416", "layer0 fwd": "a6b2f3b04780ca0f", "layer0 hessians 0": "834801664c1d4559", "layer0 hessians 1": "58d9a1c050303f59", "layer0 hessians 2": "2a8bc5f7cb97d288", "layer0 hessians 3": "dfac01db4db31fb1" },
  "synth mixtral 8 tied": { "gqa+nll": "03919b0205250ed4", gqa: "6a00ade33dc5878f", "full+nll": "b2abc377948b1f23", step: "e32f82168beb85dd", "full unfused": "f427a657ff4416a0", "step unfused": "2bb1ec3119885662", slots: "4f14f9b684d17eef", embed: "aae278d658fc3416", "layer0 fwd": "b8625898353ae57f", "layer0 hessians 0": "6905839354aa99be", "layer0 hessians 1": "bf294173e5c936da", "layer0 hessians 2": "a60328454fae3dbf", "layer0 hessians 3": "04eff0df531bca92" },
  "synth mixtral top-1": { "gqa+nll": "be58d8a3a8112f91", gqa: "d2786f33df91363f", "full+nll": "2d4b79183b1205ad", step: "8b5d212473d35661", "full unfused": "2d2d9fdb1e1fe889", "step unfused": "08afd38b14b23c5a", slots: "30dabb399d8cbf02", embed: "aae278d658fc3416", "layer0 fwd": "6da937d2c4393e62", "layer0 hessians 0": "834801664c1d4559", "layer0 hessians 1": "58d9a1c050303f59", "layer0 hessians 2": "7a8db09646e16197", "layer0 hessians 3": "0c9533fe2e3a7d6e" },
};

test('graphs are byte-identical to the recorded table for every supported architecture', async () => {
  const table = await computeAll();
  const record = process.env.GPTQJS_RECORD_GRAPH_HASHES;
  if (record) { writeFileSync(record, JSON.stringify(table, null, 2) + '\n'); return; }
  const diffs: string[] = [];
  for (const k of new Set([...Object.keys(HASHES), ...Object.keys(table)])) {
    const want = HASHES[k] ?? {}, got = table[k] ?? {};
    for (const g of new Set([...Object.keys(want), ...Object.keys(got)])) {
      if (want[g] !== got[g]) diffs.push(`${k} / ${g}: recorded ${want[g] ?? '(none)'}, now ${got[g] ?? '(none)'}`);
    }
  }
  const n = Object.values(table).reduce((a, r) => a + Object.keys(r).length, 0);
  console.log(`# ${Object.keys(table).length} cases, ${n} graphs compared`);
  assert.deepEqual(diffs, [], `graphs changed:\n${diffs.join('\n')}`);
});
