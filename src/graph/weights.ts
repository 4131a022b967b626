/** WeightSource implementations: how linears and tensors enter a graph. */
import type { ElemType } from './onnx-proto.ts';
import type { GraphBuilder } from './builder.ts';
import type { LinearSpec, WeightSource } from '../models/types.ts';
import { fail } from '../errors.ts';

/** y = x·Wᵀ + b as Gemm(transB) on a 2-D view of x (no transposed copy of W; bias fused). */
export function gemmLinear(g: GraphBuilder, x: string, weight: string, bias: string | undefined, outFeatures: number): string {
  const inF = g.op('Shape', [x], { start: -1 });
  const x2 = g.op('Reshape', [x, g.op('Concat', [g.constI64([-1]), inF], { axis: 0 })]);
  const y2 = g.op('Gemm', bias ? [x2, weight, bias] : [x2, weight], { transB: 1 });
  const lead = g.op('Shape', [x], { end: -1 });
  return g.op('Reshape', [y2, g.op('Concat', [lead, g.constI64([outFeatures])], { axis: 0 })]);
}

export type TensorLookup = (name: string) => Float32Array | undefined;

/** Checkpoint tensors as fp32 initializers. A missing `lm_head.weight` falls back to the tied embedding. */
export class InitializerWeights implements WeightSource {
  private emitted = new Map<string, string>();
  constructor(private readonly get: TensorLookup, private readonly tiedTo = 'model.embed_tokens.weight') {}

  tensor(g: GraphBuilder, name: string, shape: readonly number[]): string {
    let v = this.emitted.get(name);
    if (v) return v;
    const data = this.get(name);
    if (!data) fail(`checkpoint has no tensor "${name}"`);
    const n = shape.reduce((a, b) => a * b, 1);
    if (data.length !== n) fail(`tensor "${name}" has ${data.length} elements, expected shape [${shape.join(', ')}]`);
    v = g.init(name, 'float32', shape, data);
    this.emitted.set(name, v);
    return v;
  }

  linear(g: GraphBuilder, x: string, s: LinearSpec): string {
    const wName = s.name === 'lm_head' && !this.get('lm_head.weight') ? this.tiedTo : `${s.name}.weight`;
    const w = this.tensor(g, wName, [s.outFeatures, s.inFeatures]);
    const b = s.bias ? this.tensor(g, `${s.name}.bias`, [s.outFeatures]) : undefined;
    return gemmLinear(g, x, w, b, s.outFeatures);
  }
}

/**
 * Weights as graph inputs named relative to `stripPrefix` (e.g. "model.layers.0."), so one calibration graph
 * serves every layer. Records each linear's input value (`taps`) for Hessian outputs.
 */
export class InputWeights implements WeightSource {
  readonly inputs: { name: string; rel: string; shape: number[]; type: ElemType }[] = [];
  readonly taps = new Map<string, { value: string; inFeatures: number }>();
  private seen = new Map<string, string>();
  constructor(private readonly stripPrefix: string) {}

  private rel(name: string): string {
    return name.startsWith(this.stripPrefix) ? name.slice(this.stripPrefix.length) : name;
  }

  tensor(g: GraphBuilder, name: string, shape: readonly number[]): string {
    const rel = this.rel(name);
    let v = this.seen.get(rel);
    if (!v) {
      v = g.input(rel, 'float32', shape);
      this.inputs.push({ name, rel, shape: [...shape], type: 'float32' });
      this.seen.set(rel, v);
    }
    return v;
  }

  linear(g: GraphBuilder, x: string, s: LinearSpec): string {
    this.taps.set(this.rel(s.name), { value: x, inFeatures: s.inFeatures });
    const w = this.tensor(g, `${s.name}.weight`, [s.outFeatures, s.inFeatures]);
    const b = s.bias ? this.tensor(g, `${s.name}.bias`, [s.outFeatures]) : undefined;
    return gemmLinear(g, x, w, b, s.outFeatures);
  }
}
