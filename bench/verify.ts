/**
 * Cost of the save-time guarantee "saved == computed" on Llama-7B-sized linears: pack, then decode through the
 * loader's conversion and compare with GPTQ's arrays (verifyPackedModule), then the sha256 the save re-checks the
 * written shards against (moduleDigest). Random codes / fp16-valued scales / zero points stand in for a GPTQ result
 * (the cost does not depend on the values). Compare with GPTQ's own time per module (npm run bench:gptq).
 *   npm run bench:verify            (VERIFY_BENCH_SHAPES="4096x4096,11008x4096,4096x11008": out x in)
 */
import { cpus, loadavg } from 'node:os';
import { packLinear, type PackBits } from '../src/quant/pack.ts';
import { moduleDigest, moduleTensors, verifyPackedModule } from '../src/quant/save.ts';
import { f16ToF32, f32ToF16 } from '../src/tensor.ts';
import { rng } from '../test/helpers.ts';

const shapes = (process.env.VERIFY_BENCH_SHAPES ?? '4096x4096,11008x4096,4096x11008').split(',').map((s) => s.split('x').map(Number) as [number, number]);
const configs: { bits: PackBits; groupSize: number; actOrder: boolean; sym: boolean; format: 'gptq' | 'gptq_v2' }[] = [
  { bits: 4, groupSize: 128, actOrder: false, sym: true, format: 'gptq' },
  { bits: 4, groupSize: 128, actOrder: true, sym: false, format: 'gptq' },
  { bits: 3, groupSize: 128, actOrder: false, sym: false, format: 'gptq' },
  { bits: 2, groupSize: 64, actOrder: false, sym: false, format: 'gptq_v2' },
  { bits: 8, groupSize: -1, actOrder: true, sym: true, format: 'gptq' },
];
const median = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1]!;
/** Median wall ms and median CPU ms (user + system: on a shared machine, closer to what an idle core takes). */
const time = async (f: () => unknown, reps = 5) => {
  const wall: number[] = [], cpu: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now(), c0 = process.cpuUsage();
    await f();
    const c = process.cpuUsage(c0);
    wall.push(performance.now() - t0); cpu.push((c.user + c.system) / 1e3);
  }
  return { wall: median(wall), cpu: median(cpu), toString() { return `${this.cpu.toFixed(0)} (${this.wall.toFixed(0)})`; } };
};

console.log(`verify bench: ${cpus().length} cpus, ${cpus()[0]?.model ?? '?'}, load average ${loadavg()[0]!.toFixed(1)}; CPU ms per module (wall ms), median of 5`);
console.log('| shape (out x in) | config | pack | verify (loader decode + compare) | digest (sha256) | verify + digest |');
console.log('|---|---|---|---|---|---|');
for (const [out, inF] of shapes) for (const c of configs) {
  const r = rng(out + inF + c.bits), maxq = (1 << c.bits) - 1;
  const gs = c.groupSize === -1 ? inF : c.groupSize, groups = Math.ceil(inF / gs);
  const intCodes = new Uint8Array(out * inF);
  for (let i = 0; i < intCodes.length; i++) intCodes[i] = (r() * (maxq + 1)) | 0;
  const scales = Float32Array.from({ length: groups * out }, () => f16ToF32(f32ToF16(0.001 + 0.02 * r())));
  const zeros = Int32Array.from({ length: groups * out }, () => (c.sym ? 1 << (c.bits - 1) : (c.format === 'gptq' ? 1 : 0) + ((r() * maxq) | 0)));
  const perm = Int32Array.from({ length: inF }, (_, k) => k);
  if (c.actOrder) for (let i = inF - 1; i > 0; i--) { const j = (r() * (i + 1)) | 0; [perm[i], perm[j]] = [perm[j]!, perm[i]!]; }
  const gIdx = new Int32Array(inF);
  for (let k = 0; k < inF; k++) gIdx[perm[k]!] = Math.floor(k / gs); // act-order: g_idx[perm[k]] = k / groupSize
  const computed = { intCodes, scales, zeros, gIdx };
  let packed = packLinear({ codes: intCodes, scales, zeros, gIdx, bits: c.bits, inFeatures: inF, outFeatures: out, format: c.format });
  const tPack = await time(() => { packed = packLinear({ codes: intCodes, scales, zeros, gIdx, bits: c.bits, inFeatures: inF, outFeatures: out, format: c.format }); });
  const geom = { bits: c.bits, groupSize: c.groupSize, inFeatures: inF, outFeatures: out, format: c.format };
  const tVerify = await time(() => verifyPackedModule('bench', packed, computed, geom));
  const tensors = moduleTensors({ ...packed, name: 'bench', inFeatures: inF, outFeatures: out, loss: 0, seconds: 0 }, c.bits);
  const tDigest = await time(() => moduleDigest('bench', async (n) => tensors[n]));
  const cfg = `${c.bits}-bit g${c.groupSize}${c.actOrder ? ' act-order' : ''} ${c.sym ? 'sym' : 'asym'} ${c.format}`;
  console.log(`| ${out}x${inF} | ${cfg} | ${tPack} | ${tVerify} | ${tDigest} | ${(tVerify.cpu + tDigest.cpu).toFixed(0)} (${(tVerify.wall + tDigest.wall).toFixed(0)}) |`);
}
