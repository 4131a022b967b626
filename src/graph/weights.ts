/** WeightSource implementations: how linears and tensors enter a graph. */
import type { ElemType } from './onnx-proto.ts';
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

/**
 * Weights as graph inputs named relative to `stripPrefix` (e.g. "model.layers.0."), so one calibration graph
 * serves every layer. Records each linear's input value (`taps`) for Hessian outputs.
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
