/**
 * Write a GraphBuilder's model to disk as `<path>` (graph) + `<path>.data` (weights, ONNX external data), streaming:
 * the weights go from their JS arrays to the file with no concatenated copy in memory. Each large tensor starts on a
 * 64 KiB boundary, so ONNX Runtime can memory-map it when it loads the model from `<path>` (initializers then live
 * in the page cache, shared and reclaimable, instead of being copied into the heap).
 */
import { basename } from '../platform/path.ts';
import type { GraphBuilder } from './builder.ts';
import { encodeGraph, Msg, ONNX_DTYPE } from './onnx-proto.ts';
import { writeAll, writeFileAtomicWith, type FileHandle } from '../io/atomic.ts';

/** Alignment of tensors in the data file (≥ the page size / allocation granularity of every platform). */
export const EXTERNAL_ALIGN = 65536;

async function writeParts(fh: FileHandle, parts: Iterable<Uint8Array>): Promise<number> {
  let n = 0;
  for (const p of parts) { await writeAll(fh, p); n += p.length; }
  return n;
}

/**
 * Write `g` as `path` + `path.data`, each atomically (writeFileAtomicWith: temp file, fsync, rename; the data file first,
 * so the graph never appears without it).
 * Initializers of at least `minBytes` (default 1 KiB) go to the data file.
 */
export async function writeModelWithExternalData(g: GraphBuilder, path: string, o: { minBytes?: number } = {}): Promise<void> {
  const minBytes = o.minBytes ?? 1024;
  const dataPath = `${path}.data`, location = basename(dataPath);
  const inline = g.initializers.filter((t) => t.raw.byteLength < minBytes);
  const external = g.initializers.filter((t) => t.raw.byteLength >= minBytes);
  const graph = encodeGraph({ name: g.name, nodes: g.nodes, inputs: g.inputs, outputs: g.outputs, initializers: inline });
  const entry = (k: string, v: string) => new Msg().string(1, k).string(2, v);
  await writeFileAtomicWith(dataPath, async (fh) => {
    let offset = 0;
    const pad = new Uint8Array(EXTERNAL_ALIGN);
    for (const t of external) {
      const aligned = Math.ceil(offset / EXTERNAL_ALIGN) * EXTERNAL_ALIGN;
      if (aligned > offset) offset += await writeParts(fh, [pad.subarray(0, aligned - offset)]);
      const tp = new Msg().packedInts(1, t.dims).int(2, ONNX_DTYPE[t.type]).string(8, t.name)
        .msg(13, entry('location', location)).msg(13, entry('offset', String(offset))).msg(13, entry('length', String(t.raw.byteLength)))
        .int(14, 1); // data_location EXTERNAL
      graph.msg(5, tp); // GraphProto.initializer (repeated fields may come in any order)
      offset += await writeParts(fh, [t.raw]);
    }
  });
  const model = new Msg().int(1, 9).string(2, 'gptqjs').string(3, '0.1.0');
  for (const [domain, version] of Object.entries(g.opsets)) {
    const op = new Msg(); if (domain) op.string(1, domain); op.int(2, version); model.msg(8, op);
  }
  model.msg(7, graph);
  await writeFileAtomicWith(path, async (fh) => { await writeParts(fh, model.parts); });
}
