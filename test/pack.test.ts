import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  convertV1ToV2Zeros, convertV2ToV1Zeros, dequantize, packable, packLinear, packQweight, packQzeros, unpackQweight, unpackQzeros, type PackBits,
} from '../src/quant/pack.ts';
import { GptqError } from '../src/errors.ts';
import { f16ToF32, toF16Bits } from '../src/tensor.ts';
import { rng } from './helpers.ts';

const BITS: PackBits[] = [2, 3, 4, 8];

function randCodes(n: number, bits: number, seed: number, lo = 0): Uint8Array {
  const r = rng(seed), span = 2 ** bits - lo;
  return Uint8Array.from({ length: n }, () => lo + Math.floor(r() * span));
}

/**
 * Independent model of AutoGPTQ's layout: along the packed dim, values form one little-endian bit stream, value t
 * at bits [t·bits, (t+1)·bits). (For 3 bits this is exactly the 10 + 1 + 10 + 1 + 10 word-straddling code.)
 */
function bitstream(values: ArrayLike<number>, bits: number): Int32Array {
  const words = new Int32Array((values.length * bits) / 32);
  for (let t = 0; t < values.length; t++) for (let b = 0; b < bits; b++) {
    if ((values[t]! >> b) & 1) { const pos = t * bits + b; words[pos >> 5]! |= 1 << (pos & 31); }
  }
  return words;
}

test('qweight: hand-computed words pin the bit order', () => {
  // in = 32 inputs, out = 32 outputs; output column 0 holds codes 0..15,0..15 (4-bit).
  const codes = new Uint8Array(32 * 32);
  for (let j = 0; j < 32; j++) codes[j] = j % 16;
  const q = packQweight(codes, 4, 32, 32);
  assert.equal(q.length, 4 * 32);
  assert.equal(q[0 * 32] >>> 0, 0x76543210);
  assert.equal(q[1 * 32] >>> 0, 0xfedcba98);
  assert.equal(q[1 * 32], -19088744); // int32 view, as torch stores it
  assert.equal(q[1], 0); // output column 1 is all zero codes
  const c2 = new Uint8Array(32 * 32); for (let j = 0; j < 32; j++) c2[j] = j % 4;
  assert.equal(packQweight(c2, 2, 32, 32)[0]! >>> 0, 0xe4e4e4e4);
  const c8 = new Uint8Array(32 * 32); for (let j = 0; j < 32; j++) c8[j] = j + 1;
  const q8 = packQweight(c8, 8, 32, 32);
  assert.deepEqual([q8[0]! >>> 0, q8[32]! >>> 0], [0x04030201, 0x08070605]);
  // 3-bit: codes 0..7 repeating → value 10 (= 2) straddles words 0/1, value 21 (= 5) straddles words 1/2.
  const c3 = new Uint8Array(32 * 32); for (let j = 0; j < 32; j++) c3[j] = j % 8;
  const q3 = packQweight(c3, 3, 32, 32);
  // Values 0..9 in bits 0..29, low 2 bits of value 10 (= 2) in bits 30..31 → 0x88fac688, and so on.
  assert.deepEqual([q3[0]! >>> 0, q3[32]! >>> 0, q3[64]! >>> 0], [0x88fac688, 0xc688fac6, 0xfac688fa]);
  assert.equal(q3[32]! & 1, 0); // bit 2 of value 10 (= 0b010) is 0
  assert.equal(((q3[32]! >>> 31) & 1) | ((q3[64]! & 3) << 1), 21 % 8); // value 21 reassembled across words 1/2
});

test('qweight / qzeros: pack matches the bit-stream model and round-trips, all bit widths', () => {
  for (const bits of BITS) {
    const inF = 64, outF = 96, codes = randCodes(inF * outF, bits, bits);
    const q = packQweight(codes, bits, inF, outF);
    assert.equal(q.length, (inF / 32) * bits * outF);
    for (let o = 0; o < outF; o++) {
      const col = bitstream(Array.from({ length: inF }, (_, j) => codes[o * inF + j]!), bits);
      for (let w = 0; w < col.length; w++) assert.equal(q[w * outF + o], col[w], `bits ${bits} word ${w} col ${o}`);
    }
    assert.deepEqual(unpackQweight(q, bits, inF, outF), codes);
    const groups = 3, zeros = Int32Array.from(randCodes(groups * outF, bits, 100 + bits, 1)); // v1 zeros 1..maxq
    const qz = packQzeros(zeros, bits, groups, outF);
    assert.equal(qz.length, (groups * outF * bits) / 32);
    for (let g = 0; g < groups; g++) {
      const row = bitstream(Array.from(zeros.subarray(g * outF, (g + 1) * outF), (z) => z - 1), bits);
      assert.deepEqual(qz.subarray((g * outF * bits) / 32, ((g + 1) * outF * bits) / 32), row);
    }
    assert.deepEqual(unpackQzeros(qz, bits, groups, outF), zeros);
    const v2 = convertV1ToV2Zeros(qz, bits, groups, outF);
    assert.deepEqual(unpackQzeros(v2, bits, groups, outF, 'gptq_v2'), zeros);
    assert.deepEqual(convertV2ToV1Zeros(v2, bits, groups, outF), qz);
  }
});

test('qzeros: a zero point the format cannot hold is refused, never spilled (v1 holds 1..2^bits−1, gptq_v2 0..2^bits−1)', () => {
  const zeros = new Int32Array(32).fill(8);
  for (const bits of BITS) {
    const maxq = (1 << bits) - 1;
    for (const [z, fmt] of [[0, 'gptq'], [maxq + 1, 'gptq'], [maxq + 1, 'gptq_v2'], [-1, 'gptq_v2']] as const) {
      const bad = zeros.map((v) => Math.min(v, maxq)); bad[1] = z;
      assert.throws(() => packQzeros(bad, bits, 1, 32, fmt), (e: unknown) => e instanceof GptqError && !e.message.includes('\n')
        && e.message.includes(`zero point ${z} (group 0, output 1) cannot be stored in the ${fmt} format, which holds ${fmt === 'gptq' ? 1 : 0}..${maxq}`), `${bits}-bit ${fmt} zero ${z}`);
    }
    // The edges that do fit round-trip: v1 1 and maxq, v2 0 and maxq.
    const edge = Int32Array.from({ length: 32 }, (_, i) => (i % 2 ? maxq : 1));
    assert.deepEqual(unpackQzeros(packQzeros(edge, bits, 1, 32), bits, 1, 32), edge);
    edge[0] = 0;
    assert.deepEqual(unpackQzeros(packQzeros(edge, bits, 1, 32, 'gptq_v2'), bits, 1, 32, 'gptq_v2'), edge);
  }
  // A third-party v1 word that underflowed (AutoGPTQ numpy: uint32(0 − 1) << 4 spills into fields 1..7) reads as
  // zero 16 in field 1 and has no gptq_v2 value: converting it is refused instead of wrapping.
  const spilled = Int32Array.from([0xfffffff7 | 0, 0x77777777, 0x77777777, 0x77777777]);
  assert.deepEqual([...unpackQzeros(spilled, 4, 1, 32).subarray(0, 3)], [8, 16, 16]);
  assert.throws(() => convertV1ToV2Zeros(spilled, 4, 1, 32), /zero point 16 .* gptq_v2 format/);
});

test('Llama q_proj 64x64 g32: AutoGPTQ tensor shapes and dtypes; dequantize = scale·(q − zero)', () => {
  for (const bits of BITS) {
    const inF = 64, outF = 64, groups = 2, r = rng(7);
    const codes = randCodes(inF * outF, bits, 9);
    const scales = Float32Array.from({ length: groups * outF }, () => 0.001 + r() * 0.05);
    const zeros = Int32Array.from(randCodes(groups * outF, bits, 5, 1));
    const gIdx = Int32Array.from({ length: inF }, (_, j) => Math.floor(j / 32));
    const p = packLinear({ codes, scales, zeros, gIdx, bits, inFeatures: inF, outFeatures: outF });
    assert.ok(p.qweight instanceof Int32Array && p.qweight.length === ((64 * bits) / 32) * 64, 'qweight [64·bits/32, 64] int32');
    assert.ok(p.qzeros instanceof Int32Array && p.qzeros.length === 2 * ((64 * bits) / 32), 'qzeros [2, 64·bits/32] int32');
    assert.ok(p.scales instanceof Uint16Array && p.scales.length === 2 * 64, 'scales [2, 64] fp16');
    assert.ok(p.gIdx instanceof Int32Array && p.gIdx.length === 64, 'g_idx [64] int32');
    assert.deepEqual(p.scales, toF16Bits(scales));
    const W = dequantize({ ...p, bits, inFeatures: inF, outFeatures: outF });
    for (let o = 0; o < outF; o++) for (let j = 0; j < inF; j++) {
      const g = gIdx[j]!, s = f16ToF32(p.scales[g * outF + o]!);
      assert.equal(W[o * inF + j], Math.fround(s * (codes[o * inF + j]! - zeros[g * outF + o]!)));
    }
    // An act-order g_idx (groups interleaved) dequantizes with per-column groups.
    const gPerm = Int32Array.from({ length: inF }, (_, j) => j % 2);
    const W2 = dequantize({ ...packLinear({ codes, scales, zeros, gIdx: gPerm, bits, inFeatures: inF, outFeatures: outF }), bits, inFeatures: inF, outFeatures: outF });
    assert.equal(W2[1], Math.fround(f16ToF32(p.scales[outF]!) * (codes[1]! - zeros[outF]!)));
  }
});

test('packable: AutoGPTQ needs in and out multiples of 32', () => {
  assert.equal(packable(4096, 11008, 4), null);
  assert.equal(packable(64, 64, 3), null);
  assert.match(packable(48, 64, 4)!, /in_features 48/);
  assert.match(packable(64, 40, 4)!, /out_features 40/);
  assert.match(packable(64, 64, 5)!, /bits/);
  assert.throws(() => packQweight(new Uint8Array(48 * 64), 4, 48, 64), (e: unknown) => e instanceof GptqError && /in_features 48/.test(e.message));
  assert.throws(() => packQweight(new Uint8Array(10), 4, 64, 64), GptqError);
  assert.throws(() => dequantize({ qweight: new Int32Array(8 * 32), qzeros: new Int32Array(4), scales: new Uint16Array(32), gIdx: new Int32Array(64).fill(3), bits: 4, inFeatures: 64, outFeatures: 32 }), /g_idx\[0\] = 3/);
});
