/**
 * Minimal protobuf *encoder* for ONNX ModelProto (onnx.proto3 field numbers).
 * Why our own: we only ever write models, ~150 lines beat a protobufjs runtime + .proto loading, and weights
 * (raw_data) are passed through as zero-copy chunks — a 1 GB layer is copied once, into the final buffer.
 */

/** An encoded message as a list of chunks plus its total length (no copies while nesting). */
export class Msg {
  parts: Uint8Array[] = [];
  length = 0;
  private push(b: Uint8Array): void { this.parts.push(b); this.length += b.length; }
  private varint(v: number | bigint): void {
    let x = BigInt.asUintN(64, BigInt(v));
    const out: number[] = [];
    while (x >= 0x80n) { out.push(Number(x & 0x7fn) | 0x80); x >>= 7n; }
    out.push(Number(x));
    this.push(Uint8Array.from(out));
  }
  private tag(field: number, wire: number): void { this.varint((field << 3) | wire); }
  int(field: number, v: number | bigint): this { this.tag(field, 0); this.varint(v); return this; }
  float(field: number, v: number): this {
    this.tag(field, 5);
    const b = new Uint8Array(4); new DataView(b.buffer).setFloat32(0, v, true); this.push(b); return this;
  }
  bytes(field: number, b: Uint8Array): this { this.tag(field, 2); this.varint(b.length); this.push(b); return this; }
  string(field: number, s: string): this { return this.bytes(field, new TextEncoder().encode(s)); }
  msg(field: number, m: Msg): this {
    this.tag(field, 2); this.varint(m.length);
    for (const p of m.parts) this.push(p);
    return this;
  }
  packedInts(field: number, vs: ArrayLike<number | bigint>): this {
    const m = new Msg(); for (let i = 0; i < vs.length; i++) m.varint(vs[i]!);
    return this.msg(field, m);
  }
  packedFloats(field: number, vs: ArrayLike<number>): this {
    const b = new Uint8Array(vs.length * 4); const dv = new DataView(b.buffer);
    for (let i = 0; i < vs.length; i++) dv.setFloat32(i * 4, vs[i]!, true);
    return this.bytes(field, b);
  }
  toBytes(): Uint8Array {
    const out = new Uint8Array(this.length); let o = 0;
    for (const p of this.parts) { out.set(p, o); o += p.length; }
    return out;
  }
}

/** ONNX TensorProto.DataType */
export const ONNX_DTYPE = {
  float32: 1, uint8: 2, int8: 3, uint16: 4, int16: 5, int32: 6, int64: 7, bool: 9, float16: 10, float64: 11, bfloat16: 16,
} as const;
export type ElemType = keyof typeof ONNX_DTYPE;

export interface TensorInit { name: string; type: ElemType; dims: readonly number[]; raw: Uint8Array }
export type Dim = number | string;
export interface ValueInfo { name: string; type: ElemType; shape?: readonly Dim[] }

export type AttrValue =
  | { kind: 'int'; v: number } | { kind: 'float'; v: number } | { kind: 'string'; v: string }
  | { kind: 'ints'; v: readonly number[] } | { kind: 'floats'; v: readonly number[] }
  | { kind: 'tensor'; v: TensorInit } | { kind: 'graph'; v: GraphProtoSpec };

export interface NodeSpec {
  opType: string; inputs: readonly string[]; outputs: readonly string[]; name: string; domain?: string;
  attrs?: Record<string, AttrValue>;
}
export interface GraphProtoSpec {
  name: string; nodes: NodeSpec[]; inputs: ValueInfo[]; outputs: ValueInfo[]; initializers: TensorInit[];
}

export function encodeTensor(t: TensorInit): Msg {
  const m = new Msg();
  m.packedInts(1, t.dims).int(2, ONNX_DTYPE[t.type]).string(8, t.name).bytes(9, t.raw);
  return m;
}

function encodeValueInfo(v: ValueInfo): Msg {
  const tensorType = new Msg().int(1, ONNX_DTYPE[v.type]);
  if (v.shape) {
    const shape = new Msg();
    for (const d of v.shape) shape.msg(1, typeof d === 'number' ? new Msg().int(1, d) : new Msg().string(2, d));
    tensorType.msg(2, shape);
  }
  return new Msg().string(1, v.name).msg(2, new Msg().msg(1, tensorType));
}

// AttributeProto.AttributeType
const ATTR_TYPE = { float: 1, int: 2, string: 3, tensor: 4, graph: 5, floats: 6, ints: 7 } as const;

function encodeAttr(name: string, a: AttrValue): Msg {
  const m = new Msg().string(1, name);
  switch (a.kind) {
    case 'float': m.float(2, a.v); break;
    case 'int': m.int(3, a.v); break;
    case 'string': m.string(4, a.v); break;
    case 'tensor': m.msg(5, encodeTensor(a.v)); break;
    case 'graph': m.msg(6, encodeGraph(a.v)); break;
    case 'floats': m.packedFloats(7, a.v); break;
    case 'ints': m.packedInts(8, a.v); break;
  }
  return m.int(20, ATTR_TYPE[a.kind]);
}

function encodeNode(n: NodeSpec): Msg {
  const m = new Msg();
  for (const i of n.inputs) m.string(1, i);
  for (const o of n.outputs) m.string(2, o);
  m.string(3, n.name).string(4, n.opType);
  for (const [k, v] of Object.entries(n.attrs ?? {})) m.msg(5, encodeAttr(k, v));
  if (n.domain) m.string(7, n.domain);
  return m;
}

export function encodeGraph(g: GraphProtoSpec): Msg {
  const m = new Msg();
  for (const n of g.nodes) m.msg(1, encodeNode(n));
  m.string(2, g.name);
  for (const t of g.initializers) m.msg(5, encodeTensor(t));
  for (const v of g.inputs) m.msg(11, encodeValueInfo(v));
  for (const v of g.outputs) m.msg(12, encodeValueInfo(v));
  return m;
}

export function encodeModel(g: GraphProtoSpec, opsets: Record<string, number>): Uint8Array {
  const m = new Msg().int(1, 9).string(2, 'gptqjs').string(3, '0.1.0');
  for (const [domain, version] of Object.entries(opsets)) {
    const o = new Msg(); if (domain) o.string(1, domain); o.int(2, version); m.msg(8, o);
  }
  m.msg(7, encodeGraph(g));
  return m.toBytes();
}
