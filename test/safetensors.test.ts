import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs, readFileSync, existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile, Checkpoint, writeSafetensors, saveSharded, parseSize } from '../src/io/safetensors.ts';
import { GptqError } from '../src/errors.ts';
import { f16ToF32, f32ToBf16, f32ToF16, toF16Bits, type Tensor } from '../src/tensor.ts';
import { tmpDir, randn, SHARED, SKIP_SHARED } from './helpers.ts';
import { makeLlamaCheckpoint, llamaConfig } from './synth.ts';

function allDtypes(): Record<string, Tensor> {
  return {
    f32: { dtype: 'F32', shape: [2, 3], data: Float32Array.from([1, -2.5, 3e-8, Infinity, -0, 7]) },
    f16: { dtype: 'F16', shape: [5], data: Uint16Array.from([0x3c00, 0x7c00, 0x8001, 0x7e00, ...toF16Bits([0.1])]) },
    bf16: { dtype: 'BF16', shape: [3], data: Uint16Array.from([0x3f80, 0xff80, f32ToBf16(-1.5)]) },
    f64: { dtype: 'F64', shape: [2], data: Float64Array.from([Math.PI, -1e300]) },
    i32: { dtype: 'I32', shape: [3], data: Int32Array.from([-(2 ** 31), 0, 2 ** 31 - 1]) },
    i64: { dtype: 'I64', shape: [2, 1], data: BigInt64Array.from([-(2n ** 63n), 2n ** 62n + 1n]) },
    i16: { dtype: 'I16', shape: [2], data: Int16Array.from([-32768, 32767]) },
    i8: { dtype: 'I8', shape: [3], data: Int8Array.from([-128, 0, 127]) },
    u8: { dtype: 'U8', shape: [1, 1, 3], data: Uint8Array.from([0, 128, 255]) },
    bool: { dtype: 'BOOL', shape: [4], data: Uint8Array.from([1, 0, 0, 1]) },
    scalar: { dtype: 'F32', shape: [], data: Float32Array.from([42]) },
    empty: { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
  };
}

/** Write a raw safetensors file from a header object + data bytes. */
function rawFile(path: string, header: unknown, data = new Uint8Array(0), headerText?: string) {
  const h = Buffer.from(headerText ?? JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  writeFileSync(path, Buffer.concat([len, h, data]));
}

async function rejectsWith(p: Promise<unknown>, ...parts: (string | RegExp)[]) {
  await assert.rejects(p, (e: any) => {
    assert.ok(e instanceof GptqError, `expected GptqError, got ${e}`);
    assert.ok(!e.message.includes('\n'), `message must be one line: ${e.message}`);
    for (const part of parts) {
      if (typeof part === 'string') assert.ok(e.message.includes(part), `"${e.message}" should include "${part}"`);
      else assert.match(e.message, part);
    }
    return true;
  });
}

test('round trip all dtypes with metadata; header padded to 8; HF layout order', async () => {
  const d = tmpDir();
  try {
    const p = join(d.path, 'a.safetensors');
    const ts = allDtypes();
    await writeSafetensors(p, ts, { format: 'pt', note: 'héllo' });
    const buf = readFileSync(p);
    const n = Number(buf.readBigUInt64LE(0));
    assert.equal(n % 8, 0);
    const htext = buf.subarray(8, 8 + n).toString('utf8');
    assert.match(htext, /^\{"__metadata__":/);
    const header = JSON.parse(htext);
    // layout: descending dtype (I64, F64, F32, ...), then name
    const order = Object.entries<any>(header).filter(([k]) => k !== '__metadata__')
      .sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0] || a[1].data_offsets[1] - b[1].data_offsets[1]).map(([k]) => k);
    assert.deepEqual(order.filter((k) => k !== 'empty').slice(0, 5), ['i64', 'f64', 'f32', 'scalar', 'i32']);
    const f = await SafetensorsFile.open(p);
    try {
      assert.deepEqual(f.metadata, { format: 'pt', note: 'héllo' });
      assert.deepEqual(f.names().sort(), Object.keys(ts).sort());
      for (const [name, t] of Object.entries(ts)) {
        const r = await f.read(name);
        assert.equal(r.dtype, t.dtype);
        assert.deepEqual(r.shape, t.shape);
        assert.equal(r.data.constructor, t.data.constructor);
        assert.equal(r.data.byteOffset % r.data.BYTES_PER_ELEMENT, 0);
        assert.deepEqual(r.data, t.data, name);
        assert.deepEqual(f.info(name), { dtype: t.dtype, shape: t.shape, byteLength: t.data.byteLength });
      }
      assert.deepEqual([...await f.readFloat32('f16')].slice(0, 4), [1, Infinity, 2 ** -24 * -1, NaN]);
      assert.deepEqual([...await f.readFloat32('bf16')], [1, -Infinity, -1.5]);
      assert.deepEqual(await f.readFloat32('f64'), Float32Array.from([Math.PI, -Infinity]));
      await rejectsWith(f.readFloat32('i32'), p, '"i32"', 'not a float');
      // `alloc`: each float dtype's values land in the array it hands out (here shared memory), as without it
      for (const name of ['f32', 'f16', 'bf16', 'f64']) {
        let given: Float32Array | undefined;
        const r = await f.readFloat32(name, undefined, (len) => (given = new Float32Array(new SharedArrayBuffer(4 * len))));
        assert.equal(r, given, `${name}: the allocated array is returned`);
        assert.ok(r.buffer instanceof SharedArrayBuffer);
        assert.deepEqual([...r], [...await f.readFloat32(name)], name);
        // an array that is a view into a larger buffer, at an offset, gets the values in its own place
        const big = new Float32Array(r.length + 7).fill(-9);
        const v = await f.readFloat32(name, undefined, (len) => big.subarray(3, 3 + len));
        assert.deepEqual([...v], [...r], `${name} into a view`);
        assert.deepEqual([...big.subarray(0, 3), ...big.subarray(3 + r.length)], [-9, -9, -9, -9, -9, -9, -9], `${name}: nothing written outside the view`);
      }
    } finally { await f.dispose(); }
  } finally { d.cleanup(); }
});

test('reads lazily: only the requested tensor bytes', async () => {
  const d = tmpDir();
  try {
    const p = join(d.path, 'big.safetensors');
    const big = randn(1 << 20, 3);
    await writeSafetensors(p, { big: { dtype: 'F32', shape: [1024, 1024], data: big }, small: { dtype: 'F32', shape: [4], data: Float32Array.from([1, 2, 3, 4]) } });
    const f = await SafetensorsFile.open(p);
    // clobber the big tensor's bytes on disk: reading `small` must still work and must not have touched them
    const fh = await fs.open(p, 'r+');
    const n = Number(readFileSync(p).readBigUInt64LE(0));
    await fh.write(new Uint8Array(16).fill(0xff), 0, 16, 8 + n);
    await fh.close();
    assert.deepEqual(await f.readFloat32('small'), Float32Array.from([1, 2, 3, 4]));
    assert.deepEqual((await f.readFloat32('big')).subarray(4), big.subarray(4));
    await f.dispose();
    await f.dispose(); // idempotent
    await rejectsWith(f.read('small'), p, 'closed');
  } finally { d.cleanup(); }
});

test('saveSharded: tiny maxShardSize → ≥3 shards + index; Checkpoint reads all back', async () => {
  const d = tmpDir();
  try {
    const ts: Record<string, Tensor> = {};
    for (let i = 0; i < 7; i++) ts[`layer.${i}.w`] = { dtype: 'F32', shape: [10, 10], data: randn(100, i) };
    ts['ids'] = { dtype: 'I64', shape: [3], data: BigInt64Array.from([1n, 2n, 3n]) };
    const r = await saveSharded(d.path, ts, { maxShardSize: '1KB' });
    assert.ok(r.files.length >= 3, `got ${r.files.length} shards`);
    assert.equal(r.files[0], join(d.path, `model-00001-of-${String(r.files.length).padStart(5, '0')}.safetensors`));
    const idx = JSON.parse(readFileSync(join(d.path, 'model.safetensors.index.json'), 'utf8'));
    assert.equal(idx.metadata.total_size, 7 * 400 + 24);
    assert.deepEqual(Object.keys(idx.weight_map).sort(), Object.keys(ts).sort());
    assert.ok(!readdirSync(d.path).some((f) => f.includes('.tmp-')));
    const ck = await Checkpoint.open(d.path);
    try {
      assert.equal(ck.files.length, r.files.length);
      assert.equal(ck.totalBytes(), 7 * 400 + 24);
      assert.deepEqual(ck.metadata, { format: 'pt' });
      assert.deepEqual(ck.names().sort(), Object.keys(ts).sort());
      for (const [n, t] of Object.entries(ts)) assert.deepEqual((await ck.read(n)).data, t.data);
      assert.deepEqual(ck.info('layer.3.w').shape, [10, 10]);
      await rejectsWith(ck.read('nope'), d.path, '"nope"', 'layer.');
    } finally { await ck.dispose(); }
    // a folder holding a checkpoint is not written over without overwrite (nothing changes) …
    const before = readdirSync(d.path).sort();
    await assert.rejects(saveSharded(d.path, ts), /already holds model.*pass `overwrite: true` \(CLI: --overwrite\) to replace/);
    assert.deepEqual(readdirSync(d.path).sort(), before);
    // … with overwrite, re-save as a single file: stale shards + index are removed, other files are kept
    writeFileSync(join(d.path, 'notes.txt'), 'mine');
    const r2 = await saveSharded(d.path, ts, { overwrite: true });
    assert.deepEqual(r2.files, [join(d.path, 'model.safetensors')]);
    assert.deepEqual(readdirSync(d.path).sort(), ['model.safetensors', 'notes.txt']);
  } finally { d.cleanup(); }
});

test('parseSize', () => {
  assert.equal(parseSize('5GB'), 5e9);
  assert.equal(parseSize('500MB'), 5e8);
  assert.equal(parseSize('10KiB'), 10240);
  assert.equal(parseSize('2GiB'), 2 ** 31);
  assert.equal(parseSize('1.5kb'), 1500);
  assert.equal(parseSize(1234), 1234);
  assert.equal(parseSize('77'), 77);
  assert.throws(() => parseSize('5 parsecs'), GptqError);
  assert.throws(() => parseSize(0), GptqError);
});

test('reads shared stories260K model.safetensors', { skip: SKIP_SHARED }, async () => {
  const p = join(SHARED, 'models', 'stories260K', 'model.safetensors');
  const f = await SafetensorsFile.open(p);
  try {
    // 47 tensors (48 header entries incl. __metadata__): embed + 5 layers × 9 + norm; tied, so no lm_head
    assert.equal(f.names().length, 47);
    assert.deepEqual(f.metadata, { format: 'pt' });
    assert.deepEqual(f.info('model.embed_tokens.weight'), { dtype: 'F32', shape: [512, 64], byteLength: 512 * 64 * 4 });
    const e = await f.readFloat32('model.embed_tokens.weight');
    assert.equal(e.length, 512 * 64);
    assert.ok(e.every(Number.isFinite));
    assert.ok(!f.has('lm_head.weight'));
  } finally { await f.dispose(); }
  const ck = await Checkpoint.open(join(SHARED, 'models', 'stories260K'));
  assert.equal(ck.names().length, 47);
  assert.deepEqual(ck.files, [p]);
  await ck.dispose();
});

test('validation errors name the file (and tensor)', async (t) => {
  const d = tmpDir();
  const p = (n: string) => join(d.path, n);
  const f32 = (n: number) => new Uint8Array(n * 4);
  const ok = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };
  try {
    await t.test('short file', async () => { writeFileSync(p('short'), Buffer.from([1, 2, 3])); await rejectsWith(SafetensorsFile.open(p('short')), p('short'), 'truncated'); });
    await t.test('missing file', async () => { await rejectsWith(SafetensorsFile.open(p('none')), p('none'), 'no such file'); });
    await t.test('header past EOF', async () => {
      const b = Buffer.alloc(20); b.writeBigUInt64LE(1000n); writeFileSync(p('eof'), b);
      await rejectsWith(SafetensorsFile.open(p('eof')), p('eof'), 'past end of file');
    });
    await t.test('absurd header length', async () => {
      const b = Buffer.alloc(20); b.writeBigUInt64LE(2n ** 60n); writeFileSync(p('absurd'), b);
      await rejectsWith(SafetensorsFile.open(p('absurd')), p('absurd'), 'absurd');
    });
    await t.test('non-JSON header', async () => { rawFile(p('nj'), null, undefined, '{"a": nope}\n\n'); await rejectsWith(SafetensorsFile.open(p('nj')), p('nj'), 'not valid JSON'); });
    await t.test('missing field', async () => {
      rawFile(p('mf'), { w: { dtype: 'F32', shape: [2] } }, f32(2));
      await rejectsWith(SafetensorsFile.open(p('mf')), p('mf'), '"w"', 'data_offsets');
    });
    await t.test('unknown dtype', async () => {
      rawFile(p('ud'), { w: { dtype: 'F8_E4M3', shape: [2], data_offsets: [0, 2] } }, new Uint8Array(2));
      await rejectsWith(SafetensorsFile.open(p('ud')), p('ud'), '"w"', 'F8_E4M3');
    });
    await t.test('size mismatch', async () => {
      rawFile(p('sm'), { w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, f32(3));
      await rejectsWith(SafetensorsFile.open(p('sm')), p('sm'), '"w"', '12 bytes');
    });
    await t.test('offsets out of range', async () => {
      rawFile(p('oor'), { w: ok, v: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }, f32(3));
      await rejectsWith(SafetensorsFile.open(p('oor')), p('oor'), '"v"', 'out of range');
    });
    await t.test('overlap', async () => {
      rawFile(p('ov'), { w: ok, v: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, f32(3));
      await rejectsWith(SafetensorsFile.open(p('ov')), p('ov'), '"v"', '"w"', 'overlaps');
    });
    await t.test('unknown tensor name lists some names', async () => {
      rawFile(p('un'), { alpha: ok }, f32(2));
      const f = await SafetensorsFile.open(p('un'));
      await rejectsWith(f.read('beta'), p('un'), '"beta"', '"alpha"');
      assert.throws(() => f.info('beta'), /"alpha"/);
      await f.dispose();
    });
  } finally { d.cleanup(); }
});

test('Checkpoint: pytorch-only dir, missing shard, single *.safetensors', async () => {
  const d = tmpDir();
  try {
    const pt = join(d.path, 'pt');
    await fs.mkdir(pt);
    writeFileSync(join(pt, 'pytorch_model.bin'), 'x');
    writeFileSync(join(pt, 'config.json'), '{}');
    await rejectsWith(Checkpoint.open(pt), pt, 'PyTorch pickle', 'pytorch_model.bin', 'save_pretrained(out_dir)');

    const ms = join(d.path, 'ms');
    await fs.mkdir(ms);
    await writeSafetensors(join(ms, 'model-00001-of-00002.safetensors'), { a: { dtype: 'U8', shape: [1], data: Uint8Array.of(1) } });
    writeFileSync(join(ms, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' } }));
    await rejectsWith(Checkpoint.open(ms), 'model-00002-of-00002.safetensors', 'missing');

    const ag = join(d.path, 'ag');
    await fs.mkdir(ag);
    await writeSafetensors(join(ag, 'gptq_model-4bit-128g.safetensors'), { 'x.qweight': { dtype: 'I32', shape: [2], data: Int32Array.of(5, 6) } });
    const ck = await Checkpoint.open(ag);
    assert.deepEqual(ck.names(), ['x.qweight']);
    assert.deepEqual(ck.files, [join(ag, 'gptq_model-4bit-128g.safetensors')]);
    await ck.dispose();

    await rejectsWith(Checkpoint.open(join(d.path, 'nodir')), 'nodir', 'no such directory');
    const empty = join(d.path, 'empty');
    await fs.mkdir(empty);
    await rejectsWith(Checkpoint.open(empty), empty, 'no model.safetensors');
  } finally { d.cleanup(); }
});

test('writer: invalid tensor leaves no temp file and does not create the target', async () => {
  const d = tmpDir();
  try {
    const p = join(d.path, 'bad.safetensors');
    await rejectsWith(writeSafetensors(p, { good: { dtype: 'F32', shape: [2], data: new Float32Array(2) }, w: { dtype: 'F32', shape: [2, 3], data: new Float32Array(5) } }), p, '"w"', '6 elements');
    await rejectsWith(writeSafetensors(p, { w: { dtype: 'F16', shape: [2], data: new Float32Array(2) } }), p, '"w"', 'Uint16Array');
    await rejectsWith(writeSafetensors(p, new Map([['w', { dtype: 'Q4' as any, shape: [1], data: new Uint8Array(1) }]])), p, '"w"', 'dtype');
    assert.ok(!existsSync(p));
    assert.deepEqual(readdirSync(d.path), []);
    // an existing target is left untouched by a failed write
    await writeSafetensors(p, { ok: { dtype: 'U8', shape: [1], data: Uint8Array.of(9) } });
    const before = readFileSync(p);
    await assert.rejects(writeSafetensors(p, { w: { dtype: 'U8', shape: [2], data: Uint8Array.of(1) } }));
    assert.deepEqual(readFileSync(p), before);
    assert.deepEqual(readdirSync(d.path), ['bad.safetensors']);
    // I/O failure after the temp file is open (missing directory) → clean GptqError
    await rejectsWith(writeSafetensors(join(d.path, 'no', 'x.safetensors'), {}), 'x.safetensors', 'cannot write');
  } finally { d.cleanup(); }
});

test('makeLlamaCheckpoint: llama / mistral / qwen2 read back with HF names and shapes', async () => {
  const d = tmpDir();
  try {
    for (const modelType of ['llama', 'mistral', 'qwen2'] as const) {
      const dir = join(d.path, modelType);
      await makeLlamaCheckpoint(dir, { modelType, tie: modelType === 'mistral' });
      const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
      assert.deepEqual(cfg, llamaConfig({ modelType, tie: modelType === 'mistral' }));
      assert.equal(cfg.model_type, modelType);
      assert.equal(cfg.architectures[0], { llama: 'LlamaForCausalLM', mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM' }[modelType]);
      assert.equal(cfg.hidden_size, 64);
      if (modelType === 'mistral') assert.ok('sliding_window' in cfg);
      if (modelType === 'qwen2') assert.equal(cfg.use_sliding_window, false);
      assert.deepEqual(JSON.parse(readFileSync(join(dir, 'generation_config.json'), 'utf8')).eos_token_id, 2);
      const ck = await Checkpoint.open(dir);
      try {
        assert.deepEqual(ck.metadata, { format: 'pt' });
        const perLayer = modelType === 'qwen2' ? 12 : 9;
        const tied = modelType === 'mistral';
        assert.equal(ck.names().length, 2 * perLayer + 2 + (tied ? 0 : 1));
        assert.deepEqual(ck.info('model.embed_tokens.weight').shape, [128, 64]);
        assert.deepEqual(ck.info('model.layers.1.self_attn.q_proj.weight').shape, [64, 64]);
        assert.deepEqual(ck.info('model.layers.1.self_attn.k_proj.weight').shape, [32, 64]);
        assert.deepEqual(ck.info('model.layers.1.self_attn.v_proj.weight').shape, [32, 64]);
        assert.deepEqual(ck.info('model.layers.0.self_attn.o_proj.weight').shape, [64, 64]);
        assert.deepEqual(ck.info('model.layers.0.mlp.gate_proj.weight').shape, [128, 64]);
        assert.deepEqual(ck.info('model.layers.0.mlp.up_proj.weight').shape, [128, 64]);
        assert.deepEqual(ck.info('model.layers.0.mlp.down_proj.weight').shape, [64, 128]);
        assert.deepEqual(ck.info('model.layers.0.input_layernorm.weight').shape, [64]);
        assert.deepEqual(ck.info('model.layers.0.post_attention_layernorm.weight').shape, [64]);
        assert.deepEqual(ck.info('model.norm.weight').shape, [64]);
        assert.equal(ck.has('lm_head.weight'), !tied);
        assert.equal(ck.has('model.layers.0.self_attn.k_proj.bias'), modelType === 'qwen2');
        assert.equal(ck.has('model.layers.0.self_attn.o_proj.bias'), false);
        const norm = await ck.readFloat32('model.norm.weight');
        assert.ok(norm.every((v) => v > 0.5 && v < 1.5));
        const q = await ck.readFloat32('model.layers.0.self_attn.q_proj.weight');
        const std = Math.sqrt(q.reduce((s, v) => s + v * v, 0) / q.length);
        assert.ok(Math.abs(std - 1 / 8) < 0.02, `q std ${std}`);
      } finally { await ck.dispose(); }
    }
    // deterministic per seed
    await makeLlamaCheckpoint(join(d.path, 'again'), {});
    assert.deepEqual(readFileSync(join(d.path, 'again', 'model.safetensors')), readFileSync(join(d.path, 'llama', 'model.safetensors')));
  } finally { d.cleanup(); }
});

test('f16ToF32: every half bit pattern is the value IEEE 754 gives it, and f32ToF16 maps it back', () => {
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    const want = e === 0 ? s * m * Math.pow(2, -24) : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * Math.pow(2, e - 15);
    assert.ok(Object.is(f16ToF32(h), want), `0x${h.toString(16)}: ${f16ToF32(h)} vs ${want}`);
    if (!Number.isNaN(want)) assert.equal(f32ToF16(want), h, `0x${h.toString(16)} round trip`);
  }
});
