import { encodeModel, type AttrValue, type Dim, type ElemType, type NodeSpec, type TensorInit, type ValueInfo } from './onnx-proto.ts';

export const OPSET = 21;
/** Attribute helpers: plain numbers are ints, use F() for floats. */
export const F = (v: number): AttrValue => ({ kind: 'float', v });
export const I = (v: number): AttrValue => ({ kind: 'int', v });
export const S = (v: string): AttrValue => ({ kind: 'string', v });
export const INTS = (v: readonly number[]): AttrValue => ({ kind: 'ints', v });
export const FLOATS = (v: readonly number[]): AttrValue => ({ kind: 'floats', v });

export type Attrs = Record<string, AttrValue | number | string | readonly number[]>;

function toAttr(v: AttrValue | number | string | readonly number[]): AttrValue {
  if (typeof v === 'number') return Number.isInteger(v) ? I(v) : F(v);
  if (typeof v === 'string') return S(v);
  if (Array.isArray(v)) return INTS(v as number[]);
  return v as AttrValue;
}

function bytesOf(data: ArrayBufferView): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Typed ONNX graph builder. Values are referred to by name (string). Example:
 *   const g = new GraphBuilder('mlp'); const x = g.input('x', 'float32', ['batch', 64]);
 *   const y = g.op('MatMul', [x, g.init('w', 'float32', [64, 64], w)]); g.output(y, 'float32');
 */
export class GraphBuilder {
  readonly nodes: NodeSpec[] = [];
  readonly inputs: ValueInfo[] = [];
  readonly outputs: ValueInfo[] = [];
  readonly initializers: TensorInit[] = [];
  readonly opsets: Record<string, number> = { '': OPSET, 'com.microsoft': 1 };
  private counter = 0;
  private constCache = new Map<string, string>();

  /** `parent`: the graph a branch subgraph (ifElse) belongs to: names and constants come from the outermost graph. */
  constructor(readonly name = 'graph', private readonly parent?: GraphBuilder) {}

  fresh(hint = 't'): string { return this.parent ? this.parent.fresh(hint) : `${hint}_${this.counter++}`; }

  input(name: string, type: ElemType, shape?: readonly Dim[]): string {
    this.inputs.push({ name, type, shape });
    return name;
  }

  /** Mark `value` as a graph output (renamed through Identity when `as` differs). */
  output(value: string, type: ElemType, shape?: readonly Dim[], as?: string): string {
    let name = value;
    if (as && as !== value) name = this.op('Identity', [value], {}, { name: as });
    this.outputs.push({ name, type, shape });
    return name;
  }

  /** Initializer from a typed array (kept by reference until encode). */
  init(name: string, type: ElemType, dims: readonly number[], data: ArrayBufferView): string {
    if (this.parent) return this.parent.init(name, type, dims, data);
    this.initializers.push({ name, type, dims, raw: bytesOf(data) });
    return name;
  }

  /** Small cached constants. */
  constF(values: number | readonly number[], dims?: readonly number[]): string {
    const arr = typeof values === 'number' ? [values] : values;
    const d = dims ?? (typeof values === 'number' ? [] : [arr.length]);
    return this.cached(`f:${arr.join(',')}:[${d}]`, (n) => this.init(n, 'float32', d, Float32Array.from(arr)));
  }
  constI64(values: number | readonly number[], dims?: readonly number[]): string {
    const arr = typeof values === 'number' ? [values] : values;
    const d = dims ?? (typeof values === 'number' ? [] : [arr.length]);
    return this.cached(`i:${arr.join(',')}:[${d}]`, (n) => this.init(n, 'int64', d, BigInt64Array.from(arr.map(BigInt))));
  }
  private cached(key: string, make: (name: string) => string): string {
    if (this.parent) return this.parent.cached(key, make);
    let n = this.constCache.get(key);
    if (!n) { n = make(this.fresh('const')); this.constCache.set(key, n); }
    return n;
  }

  /** Add a node with one output; returns the output name. */
  op(opType: string, inputs: readonly string[], attrs: Attrs = {}, o: { name?: string; domain?: string } = {}): string {
    return this.opN(opType, inputs, 1, attrs, o)[0]!;
  }

  /** Add a node with `n` outputs. */
  opN(opType: string, inputs: readonly string[], n: number, attrs: Attrs = {}, o: { name?: string; names?: string[]; domain?: string } = {}): string[] {
    const outs = o.names ?? Array.from({ length: n }, (_, i) => (i === 0 && o.name ? o.name : this.fresh(opType.toLowerCase())));
    const a: Record<string, AttrValue> = {};
    for (const [k, v] of Object.entries(attrs)) a[k] = toAttr(v);
    this.nodes.push({ opType, inputs, outputs: outs, name: this.fresh(`n_${opType}`), domain: o.domain, attrs: a });
    return outs;
  }

  /** Contrib op in com.microsoft. */
  ms(opType: string, inputs: readonly string[], attrs: Attrs = {}, nOut = 1): string[] {
    return this.opN(opType, inputs, nOut, attrs, { domain: 'com.microsoft' });
  }

  /**
   * ONNX If: `then` / `otherwise` build the two branch subgraphs in sub-builders (their nodes may read any value of
   * this graph; constants and initializers go to the outermost graph) and return their outputs, `types` long. Returns
   * the If node's outputs.
   */
  ifElse(cond: string, then: (b: GraphBuilder) => string[], otherwise: (b: GraphBuilder) => string[], types: ElemType[]): string[] {
    const branch = (name: string, build: (b: GraphBuilder) => string[]): AttrValue => {
      const b = new GraphBuilder(this.fresh(name), this);
      const outs = build(b);
      if (outs.length !== types.length) throw new Error(`ifElse: the ${name} branch returns ${outs.length} values, expected ${types.length}`);
      outs.forEach((o, i) => b.output(b.op('Identity', [o]), types[i]!));
      return { kind: 'graph', v: { name: b.name, nodes: b.nodes, inputs: [], outputs: b.outputs, initializers: [] } };
    };
    return this.opN('If', [cond], types.length, { then_branch: branch('then', then), else_branch: branch('else', otherwise) });
  }

  /** Drop nodes (and initializers) no output depends on; with `inputs`, also graph inputs nothing reads. */
  prune(o: { inputs?: boolean } = {}): this {
    const needed = new Set(this.outputs.map((o) => o.name));
    const keep: NodeSpec[] = [];
    for (let i = this.nodes.length - 1; i >= 0; i--) {
      const n = this.nodes[i]!;
      if (n.outputs.some((o) => needed.has(o))) { keep.push(n); reads(n).forEach((x) => x && needed.add(x)); }
    }
    this.nodes.splice(0, this.nodes.length, ...keep.reverse());
    const inits = this.initializers.filter((t) => needed.has(t.name));
    this.initializers.splice(0, this.initializers.length, ...inits);
    if (o.inputs) { const ins = this.inputs.filter((v) => needed.has(v.name)); this.inputs.splice(0, this.inputs.length, ...ins); }
    return this;
  }

  toBytes(): Uint8Array {
    return encodeModel({ name: this.name, nodes: this.nodes, inputs: this.inputs, outputs: this.outputs, initializers: this.initializers }, this.opsets);
  }
}

/** The values a node reads: its inputs and, for nodes with subgraphs (If), what those read from outside themselves. */
function reads(n: NodeSpec): string[] {
  const out = [...n.inputs];
  for (const a of Object.values(n.attrs ?? {})) {
    if (a.kind !== 'graph') continue;
    const made = new Set(a.v.nodes.flatMap((m) => m.outputs));
    for (const m of a.v.nodes) for (const x of reads(m)) if (x && !made.has(x)) out.push(x);
  }
  return out;
}
