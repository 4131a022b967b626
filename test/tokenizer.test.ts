import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, SHARED, SKIP_SHARED, tmpDir } from './helpers.ts';
import { TextTokenizer, StreamDecoder } from '../src/io/tokenizer.ts';
import { GptqError } from '../src/errors.ts';

const STORIES = join(ROOT, 'assets', 'stories260K');
const baseCfg = JSON.parse(readFileSync(join(STORIES, 'tokenizer_config.json'), 'utf8'));

/** A copy of stories260K's tokenizer with a replaced tokenizer_config.json (+ extra files). */
function withConfig(cfg: Record<string, unknown>, extra: Record<string, string> = {}) {
  const t = tmpDir();
  copyFileSync(join(STORIES, 'tokenizer.json'), join(t.path, 'tokenizer.json'));
  writeFileSync(join(t.path, 'tokenizer_config.json'), JSON.stringify(cfg));
  for (const [k, v] of Object.entries(extra)) writeFileSync(join(t.path, k), v);
  return t;
}

test('stories260K: encode matches SentencePiece ids, special token ids', async () => {
  const tok = await TextTokenizer.fromDir(STORIES);
  assert.deepEqual(tok.encode('Once upon a time, there was'), [1, 403, 407, 261, 378, 432, 383, 286]);
  assert.deepEqual(tok.encode('Once upon a time, there was', { addSpecialTokens: false }), [403, 407, 261, 378, 432, 383, 286]);
  assert.equal(tok.bosId, 1);
  assert.equal(tok.eosId, 2);
  assert.equal(tok.padId, undefined);
  assert.equal(tok.vocabSize, 512);
  assert.equal(tok.tokenToId('<s>'), 1);
  assert.equal(tok.idToToken(403), '▁Once');
  assert.equal(tok.chatTemplate, undefined);
});

test('decode round trip; skipSpecialTokens', async () => {
  const tok = await TextTokenizer.fromDir(STORIES);
  for (const s of ['Once upon a time, there was a little girl named Lily.', 'She said, "Hi!"\nThe end.', 'héllo 日本 x', 'a\tb {ü}']) {
    assert.equal(tok.decode(tok.encode(s)), s);
    assert.equal(tok.decode(Int32Array.from(tok.encode(s))), s);
  }
  const ids = tok.encode('Once upon');
  assert.equal(tok.decode(ids, { skipSpecialTokens: false }), '<s> Once upon');
  assert.equal(tok.decode([...ids, 2]), 'Once upon');
  assert.equal(tok.decode([]), '');
});

test('StreamDecoder emits exactly the full decode, never a partial UTF-8 sequence', async () => {
  const tok = await TextTokenizer.fromDir(STORIES);
  for (const s of ['Once upon a time, there was a girl.', ' héllo 日本 \n  x', 'Tom 🙂 and Sue!\nBye.']) {
    const ids = tok.encode(s);
    const d = new StreamDecoder(tok);
    const pieces = ids.map((id) => d.push(id));
    pieces.push(d.flush());
    for (const p of pieces) assert.ok(!p.includes('\ufffd'), JSON.stringify(pieces));
    assert.equal(pieces.join(''), tok.decode(ids));
  }
  // byte-fallback: 日 is three byte tokens; nothing is emitted until the run ends (here: at flush), since one more
  // invalid byte would turn the whole run into U+FFFD (test/tokenizer-stream.test.ts has the full checks)
  const ids = tok.encode('a 日', { addSpecialTokens: false });
  assert.ok(ids.length >= 4, String(ids));
  const d = new StreamDecoder(tok);
  const out = ids.map((id) => d.push(id));
  assert.deepEqual(out.slice(-3), ['', '', '']);
  assert.equal(out.join('') + d.flush(), 'a 日');
  // a dangling incomplete byte sequence comes out at flush
  const d2 = new StreamDecoder(tok);
  assert.equal(d2.push(tok.tokenToId('▁a')!), 'a');
  assert.equal(d2.push(tok.tokenToId('<0xE6>')!), '');
  assert.equal(d2.flush(), '\ufffd');
  assert.equal(d2.flush(), '');
});

test('add_bos_token / add_eos_token in tokenizer_config are honoured', async () => {
  const t = withConfig({ ...baseCfg, add_bos_token: false, add_eos_token: true });
  try {
    const tok = await TextTokenizer.fromDir(t.path);
    assert.deepEqual(tok.encode('Once upon'), [403, 407, 2]);
    assert.deepEqual(tok.encode('Once upon', { addSpecialTokens: false }), [403, 407]);
  } finally { t.cleanup(); }
});

test('chat template rendering (tokenizer_config chat_template, list form, chat_template.jinja)', async () => {
  const tpl = "{% for m in messages %}{% if m.role == 'bad' %}{{ raise_exception('role ' + m.role + ' not allowed') }}{% endif %}"
    + "{{ bos_token }}<{{ m.role }}>{{ m.content }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}";
  const t = withConfig({ ...baseCfg, chat_template: tpl });
  try {
    const tok = await TextTokenizer.fromDir(t.path);
    const msgs = [{ role: 'system', content: 'Be kind.' }, { role: 'user', content: 'Hi' }];
    assert.equal(tok.applyChatTemplate(msgs), '<s><system>Be kind.</s><s><user>Hi</s>');
    assert.equal(tok.applyChatTemplate(msgs, { addGenerationPrompt: true }), '<s><system>Be kind.</s><s><user>Hi</s><assistant>');
    assert.throws(() => tok.applyChatTemplate([{ role: 'bad', content: 'x' }]),
      (e: Error) => e instanceof GptqError && /chat_template: role bad not allowed/.test(e.message));
    const ids = tok.encodeChat([{ role: 'user', content: 'Hi' }]);
    assert.equal(ids[0], 1);
    assert.equal(ids.filter((i) => i === 1).length, 1); // template's <s> only, none added
    assert.ok(ids.includes(2));
  } finally { t.cleanup(); }
  const t2 = withConfig({ ...baseCfg, chat_template: [{ name: 'tool_use', template: 'TOOLS' }, { name: 'default', template: 'D{{ messages[0].content }}' }] });
  try { assert.equal((await TextTokenizer.fromDir(t2.path)).applyChatTemplate([{ role: 'user', content: 'q' }]), 'Dq'); } finally { t2.cleanup(); }
  const t3 = withConfig(baseCfg, { 'chat_template.jinja': 'J{{ eos_token }}' });
  try { assert.equal((await TextTokenizer.fromDir(t3.path)).applyChatTemplate([]), 'J</s>'); } finally { t3.cleanup(); }
  const none = await TextTokenizer.fromDir(STORIES);
  assert.throws(() => none.applyChatTemplate([]), /no chat_template/);
  const bad = withConfig({ ...baseCfg, chat_template: '{% for %}' });
  try { await assert.rejects(async () => (await TextTokenizer.fromDir(bad.path)).applyChatTemplate([]), /chat_template: cannot parse/); } finally { bad.cleanup(); }
});

test('missing or broken tokenizer.json errors name the directory/file', async () => {
  const t = tmpDir();
  try {
    await assert.rejects(TextTokenizer.fromDir(t.path), (e: Error) => e instanceof GptqError && e.message === `no tokenizer.json in ${t.path} (only tokenizer.json tokenizers are supported)`);
    writeFileSync(join(t.path, 'tokenizer.json'), '{oops');
    await assert.rejects(TextTokenizer.fromDir(t.path), (e: Error) => e instanceof GptqError && e.message.startsWith(`${join(t.path, 'tokenizer.json')}: not valid JSON`));
  } finally { t.cleanup(); }
});

test('tiny-gpt2 has no tokenizer: clear error', { skip: SKIP_SHARED }, async () => {
  const dir = join(SHARED, 'models', 'tiny-gpt2');
  await assert.rejects(TextTokenizer.fromDir(dir), new RegExp(`no tokenizer\\.json in ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
});
