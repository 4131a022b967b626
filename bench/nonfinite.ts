/**
 * Cost of the NaN/Inf check every weight passes at load, on Llama-2-7B's embedding shape [32000, 4096]:
 * - F16/BF16: SafetensorsFile.readFloat32 converts and checks in one loop; compared with the same conversion
 *   without the check, and (F16) with the per-value arithmetic conversion toFloat32 used before.
 * - F32: the read, then firstNonFinite (src/tensor.ts), the scan checkFinite runs once per array.
 * Run: node --import tsx bench/nonfinite.ts [rows] [cols]   (writes one ≤ 524 MB file at a time to the OS temp dir)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SafetensorsFile, writeSafetensors } from '../src/io/safetensors.ts';
import { f16ToF32, firstNonFinite, toFloat32, type DType } from '../src/tensor.ts';

const rows = Number(process.argv[2] ?? 32000), cols = Number(process.argv[3] ?? 4096), n = rows * cols;
const dir = mkdtempSync(join(tmpdir(), 'gptqjs-bench-nonfinite-'));
const best = async (k: number, f: () => Promise<unknown> | unknown) => {
  let b = Infinity;
  for (let i = 0; i < k; i++) { const t = performance.now(); await f(); b = Math.min(b, performance.now() - t); }
  return b;
};
const fmt = (ms: number) => `${ms.toFixed(0).padStart(6)} ms`;
const NAME = 'model.embed_tokens.weight';

try {
  console.log(`tensor [${rows}, ${cols}] (${(n / 1e6).toFixed(0)}M values), best of 3, ${new Date().toISOString()}`);
  const lut = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) lut[h] = f16ToF32(h);
  for (const dtype of ['F16', 'BF16', 'F32'] as DType[]) {
    const file = join(dir, `${dtype}.safetensors`);
    const data = dtype === 'F32' ? new Float32Array(n) : new Uint16Array(n); // (TypedArray.from would build a JS list)
    for (let i = 0; i < n; i++) {
      const r = (i * 2654435761) >>> 20;
      data[i] = dtype === 'F32' ? r / 4096 - 0.5 : dtype === 'F16' ? 0x2000 + r % 0x3000 : 0x3c00 + r % 0x0400;
    }
    await writeSafetensors(file, { [NAME]: { dtype, shape: [rows, cols], data } });
    const f = await SafetensorsFile.open(file);
    const read = await best(3, () => f.read(NAME));
    const load = await best(3, () => f.readFloat32(NAME));
    const a = await f.readFloat32(NAME);
    if (dtype === 'F32') {
      const scan = await best(3, () => firstNonFinite(a));
      console.log(`F32   read ${fmt(read)}   + firstNonFinite scan ${fmt(scan)}`);
    } else {
      const t = await f.read(NAME), d = t.data as Uint16Array;
      const bare = await best(3, () => {
        const o = new Float32Array(d.length);
        if (dtype === 'F16') for (let i = 0; i < d.length; i++) o[i] = lut[d[i]!]!;
        else { const ou = new Uint32Array(o.buffer); for (let i = 0; i < d.length; i++) ou[i] = d[i]! << 16; }
        return o;
      });
      const old = dtype === 'F16' ? await best(1, () => toFloat32(t)) : NaN;
      console.log(`${dtype.padEnd(5)} read ${fmt(read)}   readFloat32 (convert + check) ${fmt(load)}   convert alone ${fmt(bare)}${dtype === 'F16' ? `   before (toFloat32) ${fmt(old)}` : ''}`);
    }
    await f.dispose();
    rmSync(file);
  }
} finally { rmSync(dir, { recursive: true, force: true }); }

// Whole-model load: a 1-layer Llama with this embedding (tied head, small MLP), F16 and F32, graph cache off.
{
  const { CausalLM, loadFloatWeights } = await import('../src/runtime/causal-lm.ts');
  const { llamaConfig } = await import('../test/synth.ts');
  const { f32ToF16 } = await import('../src/tensor.ts');
  const { writeFileSync, mkdirSync } = await import('node:fs');
  for (const dtype of ['F16', 'F32'] as const) {
    const d = mkdtempSync(join(tmpdir(), 'gptqjs-bench-nonfinite-model-'));
    try {
      const cfg = llamaConfig({ hidden: cols, intermediate: 256, layers: 1, heads: 32, kvHeads: 32, vocab: rows, tie: true });
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, 'config.json'), JSON.stringify(cfg));
      const H = cols, I = 256, t: Record<string, { dtype: DType; shape: number[]; data: Float32Array | Uint16Array }> = {};
      const put = (name: string, shape: number[], scale: number) => {
        const m = shape.reduce((a, b) => a * b, 1);
        const v = new Float32Array(m);
        for (let i = 0; i < m; i++) v[i] = ((((i * 2654435761) >>> 16) & 0xffff) / 65536 - 0.5) * scale;
        const h = dtype === 'F16' ? new Uint16Array(m) : undefined;
        if (h) for (let i = 0; i < m; i++) h[i] = f32ToF16(v[i]!);
        t[name] = h ? { dtype, shape, data: h } : { dtype, shape, data: v };
      };
      put('model.embed_tokens.weight', [rows, H], 0.1);
      for (const p of ['q', 'k', 'v', 'o']) put(`model.layers.0.self_attn.${p}_proj.weight`, [H, H], 0.02);
      put('model.layers.0.mlp.gate_proj.weight', [I, H], 0.02); put('model.layers.0.mlp.up_proj.weight', [I, H], 0.02);
      put('model.layers.0.mlp.down_proj.weight', [H, I], 0.02);
      for (const n of ['model.layers.0.input_layernorm.weight', 'model.layers.0.post_attention_layernorm.weight', 'model.norm.weight']) put(n, [H], 1);
      await writeSafetensors(join(d, 'model.safetensors'), t);
      const t0 = performance.now();
      const m = await CausalLM.load(d, { graphCache: false, onLog: () => {} });
      const load = performance.now() - t0;
      await m.dispose();
      const w = await loadFloatWeights(d);
      const arrays = [...new Set(w.values())];
      const t1 = performance.now();
      for (const a of arrays) firstNonFinite(a);
      const scan = performance.now() - t1;
      const params = arrays.reduce((a, b) => a + b.length, 0);
      console.log(`${dtype} model (${(params / 1e6).toFixed(0)}M params): CausalLM.load ${fmt(load)}, of which the NaN/Inf check ${dtype === 'F32' ? `(firstNonFinite of every tensor) ${fmt(scan)} = ${(100 * scan / load).toFixed(1)}%` : 'is fused into the fp16 conversion'}`);
    } finally { rmSync(d, { recursive: true, force: true }); }
  }
}
