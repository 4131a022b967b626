/** WeightSource for checkpoint tensors (fp32 initializers) and the Gemm of a linear; calibration feeds its weights as graph inputs instead (src/quant/calibrate.ts InputWeights). */
import type { GraphBuilder } from './builder.ts';
import type { LinearSpec, WeightSource } from '../models/types.ts';
import { fail } from '../errors.ts';
import { checkFinite, lookupBaseModelName } from '../io/safetensors.ts';

/**
 * y = x·Wᵀ + b as Gemm(transB) on a 2-D view of x (no transposed copy of W; bias fused).
 * `transB` false: W is stored [in, out] (HF Conv1D) and y = x·W + b.
 */
export function gemmLinear(g: GraphBuilder, x: string, weight: string, bias: string | undefined, outFeatures: number, transB = true): string {
  const inF = g.op('Shape', [x], { start: -1 });
  const x2 = g.op('Reshape', [x, g.op('Concat', [g.constI64([-1]), inF], { axis: 0 })]);
  const y2 = g.op('Gemm', bias ? [x2, weight, bias] : [x2, weight], { transB: transB ? 1 : 0 });
  const lead = g.op('Shape', [x], { end: -1 });
  return g.op('Reshape', [y2, g.op('Concat', [lead, g.constI64([outFeatures])], { axis: 0 })]);
}

export type TensorLookup = (name: string) => Float32Array | undefined;

/** [out, in] for nn.Linear, [in, out] for HF Conv1D. */
export const weightShape = (s: LinearSpec): number[] => (s.conv1d ? [s.inFeatures, s.outFeatures] : [s.outFeatures, s.inFeatures]);

/**
 * Checkpoint tensors as fp32 initializers. A missing `<linear>.weight` falls back to `spec.tiedTo` (tied
 * embeddings; for `lm_head` without tiedTo: the constructor's `tiedTo`). A missing tensor is also looked up
 * without the base-model prefix (withoutBasePrefix in src/io/safetensors.ts). Names that look up the same array
 * (aliases, tied embeddings) share one initializer. Every tensor is checked once for NaN/Inf before it enters a
 * graph; errors name `where` (the checkpoint file) and the tensor.
 */
export class InitializerWeights implements WeightSource {
  private emitted = new Map<string, string>();
  private byData = new Map<Float32Array, { value: string; shape: string }>();
  constructor(private readonly get: TensorLookup, private readonly tiedTo = 'model.embed_tokens.weight', private readonly where = 'checkpoint') {}

  private find(name: string): Float32Array | undefined { return lookupBaseModelName(this.get, name); }

  tensor(g: GraphBuilder, name: string, shape: readonly number[]): string {
    let v = this.emitted.get(name);
    if (v) return v;
    const data = this.find(name);
    if (!data) fail(`${this.where}: no tensor "${name}", which the model needs (Transformers would only warn and initialize it, not load it)`);
    const n = shape.reduce((a, b) => a * b, 1);
    if (data.length !== n) fail(`${this.where}: tensor "${name}" has ${data.length} elements, expected shape [${shape.join(', ')}]`);
    const same = this.byData.get(data);
    if (same && same.shape === shape.join(',')) v = same.value;
    else {
      checkFinite(data, name, this.where, shape);
      v = g.init(name, 'float32', shape, data);
      this.byData.set(data, { value: v, shape: shape.join(',') });
    }
    this.emitted.set(name, v);
    return v;
  }

  linear(g: GraphBuilder, x: string, s: LinearSpec): string {
    const tied = s.tiedTo ?? (s.name === 'lm_head' ? this.tiedTo : undefined);
    const wName = tied && !this.find(`${s.name}.weight`) ? tied : `${s.name}.weight`;
    // A tied embedding is [vocab, hidden] = nn.Linear layout whatever the head's own layout would be.
    const conv1d = !!s.conv1d && wName === `${s.name}.weight`;
    const w = this.tensor(g, wName, weightShape({ ...s, conv1d }));
    const b = s.bias ? this.tensor(g, `${s.name}.bias`, [s.outFeatures]) : undefined;
    return gemmLinear(g, x, w, b, s.outFeatures, !conv1d);
  }
}
