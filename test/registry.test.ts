import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CausalLM, GPTQModel, registerArchitecture, supportedModelTypes } from '../src/index.ts';
import { llama } from '../src/models/llama.ts';
import { makeLlamaCheckpoint } from './synth.ts';
import { tmpDir } from './helpers.ts';

const DIMS = { hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 2, vocab: 64, seed: 12 };

test('a user-registered architecture loads, runs and quantizes like a built-in one', async () => {
  const t = tmpDir();
  try {
    const a = join(t.path, 'a'), b = join(t.path, 'b');
    await makeLlamaCheckpoint(a, DIMS);
    await makeLlamaCheckpoint(b, DIMS);
    const cfgPath = join(b, 'config.json');
    writeFileSync(cfgPath, JSON.stringify({ ...JSON.parse(readFileSync(cfgPath, 'utf8')), model_type: 'my_llama' }));
    await assert.rejects(CausalLM.load(b), /model_type "my_llama" is not supported \(supported: llama, mistral, qwen2, .*gpt2/);
    registerArchitecture({ ...llama, modelTypes: ['my_llama'] });
    assert.ok(supportedModelTypes().includes('my_llama'));
    const ids = [[1, 5, 9, 33, 2, 7]];
    const [la, lb] = [await (await CausalLM.load(a)).logits(ids), await (await CausalLM.load(b)).logits(ids)];
    assert.deepEqual(lb, la);
    const m = await GPTQModel.fromPretrained(b, { quantizeConfig: { bits: 4, groupSize: 32 } });
    const r = await m.quantize([{ inputIds: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12] }]);
    assert.equal(r.quantized.size, 14);
    await m.dispose();
  } finally { t.cleanup(); }
});
