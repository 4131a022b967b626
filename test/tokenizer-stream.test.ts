/**
 * Decoding and streamed decoding for every tokenizer family gptqjs loads (issue 10 §3). Fixtures:
 * test/fixtures/tokenizers (scripts/fixtures/make_tokenizer_fixtures.py): small real tokenizer.json files and the
 * reference decodes of Hugging Face `tokenizers` / `transformers` for many id sequences.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { ROOT, rng } from './helpers.ts';
import { TextTokenizer, StreamDecoder } from '../src/io/tokenizer.ts';
import { CausalLM } from '../src/runtime/causal-lm.ts';
import { generate } from '../src/runtime/generate.ts';

interface Family { dir: string; encode: { text: string; ids: number[]; idsNoSpecial: number[] }[]; decode: { ids: number[]; tok: [string, string]; hf: [string, string] }[] }
const CASES = JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'tokenizers', 'cases.json'), 'utf8')) as { families: Record<string, Family> };
const FAMILIES = Object.entries(CASES.families);
const STORIES = join(ROOT, 'assets', 'stories260K');
const load = (f: Family) => TextTokenizer.fromDir(join(ROOT, f.dir));

/** Stream `gen` after `prompt`; the pieces (push results, then flush). */
function stream(tok: TextTokenizer, prompt: number[], gen: number[], skipSpecialTokens: boolean): string[] {
  const d = new StreamDecoder(tok, { prompt, skipSpecialTokens });
  const out = gen.map((id) => d.push(id));
  out.push(d.flush());
  return out;
}
/** decode(prompt + gen) minus decode(prompt); from the first differing character if decode(prompt) is not a prefix. */
function expected(tok: TextTokenizer, prompt: number[], gen: number[], skipSpecialTokens: boolean): string {
  const full = tok.decode([...prompt, ...gen], { skipSpecialTokens }), base = tok.decode(prompt, { skipSpecialTokens });
  let k = 0;
  while (k < base.length && k < full.length && base[k] === full[k]) k++;
  return full.slice(k);
}

/** Random ids that stress decoders: byte-fallback pieces, whitespace-only pieces, added/special tokens, anything. */
function randomIds(tok: TextTokenizer, r: () => number, n: number): number[] {
  const vocab = [...tok.tok.get_vocab(true)];
  const bytes = vocab.filter(([, i]) => tok.isByteFallbackToken(i)).map(([, i]) => i);
  const added = [...tok.tok.get_added_tokens_decoder().keys()];
  const spaces = vocab.filter(([t]) => /^[▁Ġ Ċ\n]+$/.test(t)).map(([, i]) => i);
  const pick = (a: number[]) => a[Math.floor(r() * a.length)]!;
  return Array.from({ length: n }, () => {
    const x = r();
    if (bytes.length && x < 0.35) return pick(bytes);
    if (added.length && x < 0.45) return pick(added);
    if (spaces.length && x < 0.55) return pick(spaces);
    return Math.floor(r() * tok.vocabSize);
  });
}

for (const [name, fam] of FAMILIES) {
  test(`${name}: decode and encode equal Transformers' (reference fixture)`, async () => {
    const tok = await load(fam);
    for (const c of fam.decode) {
      assert.equal(tok.decode(c.ids, { skipSpecialTokens: true }), c.hf[0], JSON.stringify(c.ids));
      assert.equal(tok.decode(c.ids, { skipSpecialTokens: false }), c.hf[1], JSON.stringify(c.ids));
    }
    for (const e of fam.encode) {
      assert.deepEqual(tok.encode(e.text), e.ids, JSON.stringify(e.text));
      assert.deepEqual(tok.encode(e.text, { addSpecialTokens: false }), e.idsNoSpecial, JSON.stringify(e.text));
    }
  });

  test(`${name}: streamed pieces concatenate to decode(prompt + new) − decode(prompt)`, async () => {
    const tok = await load(fam);
    const r = rng(name.length * 7919);
    const texts = fam.encode.map((e) => e.text).filter((t) => t.length > 1);
    const prompts: number[][] = [[], ...fam.encode.map((e) => e.ids), ...fam.encode.map((e) => e.idsNoSpecial)];
    for (let i = 0; i < 40; i++) prompts.push(randomIds(tok, r, 1 + Math.floor(r() * 12)));
    let checked = 0;
    for (const [pi, prompt] of prompts.entries()) {
      const gens = [randomIds(tok, r, 1 + Math.floor(r() * 20)), tok.encode(texts[pi % texts.length]!, { addSpecialTokens: false })];
      for (const gen of gens) for (const skip of [true, false]) {
        const pieces = stream(tok, prompt, gen, skip);
        assert.equal(pieces.join(''), expected(tok, prompt, gen, skip), JSON.stringify({ prompt, gen, skip, pieces }));
        if (!prompt.length) assert.equal(pieces.join(''), tok.decode(gen, { skipSpecialTokens: skip }));
        checked++;
      }
    }
    // Every intermediate stream is right too: stopping after j tokens gives the decode of the first j.
    for (let i = 0; i < 12; i++) {
      const prompt = randomIds(tok, r, Math.floor(r() * 6)), gen = randomIds(tok, r, 16);
      for (let j = 1; j <= gen.length; j++) {
        const g = gen.slice(0, j);
        assert.equal(stream(tok, prompt, g, true).join(''), expected(tok, prompt, g, true), JSON.stringify({ prompt, g }));
      }
    }
    assert.ok(checked > 200);
  });
}

test('stories260K: "Once upon" + generated ids keeps the space (was "Once upona time")', async () => {
  const tok = await TextTokenizer.fromDir(STORIES);
  const prompt = tok.encode('Once upon'), gen = tok.encode(' a time, there was', { addSpecialTokens: false });
  assert.deepEqual(prompt, [1, 403, 407]);
  const pieces = stream(tok, prompt, gen, true);
  assert.equal(pieces.join(''), ' a time, there was');
  assert.equal(pieces[0], ' a');
  // no prompt: a stream from the start of the sequence has no leading space, like decode()
  assert.equal(stream(tok, [], gen, true).join(''), 'a time, there was');
  assert.equal(stream(tok, [1], gen, true).join(''), 'a time, there was'); // <s> is skipped: still the first token
  assert.equal(stream(tok, [1], gen, false).join(''), ' a time, there was'); // "<s> a time…" when <s> is shown
});

test('byte fallback: nothing until a character is complete, invalid bytes come out as U+FFFD (one per byte) at the end', async () => {
  const tok = await TextTokenizer.fromDir(STORIES);
  const id = (t: string) => tok.tokenToId(t)!;
  const prompt = tok.encode('a');
  // 日 = E6 97 A5
  // (Rust's ByteFallback turns a whole run into U+FFFD if any byte is invalid, so even 日 waits for the run to end)
  let d = new StreamDecoder(tok, { prompt });
  assert.deepEqual([id('▁'), id('<0xE6>'), id('<0x97>'), id('<0xA5>'), id('▁a')].map((i) => d.push(i)), [' ', '', '', '', '日 a']);
  assert.equal(d.flush(), '');
  d = new StreamDecoder(tok, { prompt });
  assert.deepEqual([id('<0xE6>'), id('<0x97>'), id('<0xA5>'), id('<0xE6>'), id('▁a')].map((i) => d.push(i)), ['', '', '', '', '\ufffd'.repeat(4) + ' a']);
  assert.equal(tok.decode([...prompt, id('<0xE6>'), id('<0x97>'), id('<0xA5>'), id('<0xE6>'), id('▁a')]), 'a' + '\ufffd'.repeat(4) + ' a');
  // an unfinished character at the end comes out at flush, as the reference decodes it
  d = new StreamDecoder(tok, { prompt });
  assert.deepEqual([id('▁b'), id('<0xE6>'), id('<0x97>')].map((i) => d.push(i)), [' b', '', '']);
  assert.equal(d.flush(), '\ufffd\ufffd');
  assert.equal(tok.decode([...prompt, id('▁b'), id('<0xE6>'), id('<0x97>')]), 'a b\ufffd\ufffd');
  // a valid byte followed by one that breaks the run: the whole run becomes U+FFFD (Rust ByteFallback); "A" was
  // never emitted early
  d = new StreamDecoder(tok, { prompt });
  assert.deepEqual([id('<0x41>'), id('<0xE6>'), id('▁a')].map((i) => d.push(i)), ['', '', '\ufffd\ufffd a']);
  // a skipped special token does not end a run (the decoder never sees it)
  d = new StreamDecoder(tok, { prompt });
  assert.deepEqual([id('<0x41>'), 2, id('<0xE6>'), id('▁a')].map((i) => d.push(i)), ['', '', '', '\ufffd\ufffd a']);
  assert.equal(tok.decode([...prompt, id('<0x41>'), 2, id('<0xE6>'), id('▁a')]), 'a\ufffd\ufffd a');
  // emoji: four bytes
  const e = tok.encode('🙂', { addSpecialTokens: false });
  d = new StreamDecoder(tok, { prompt });
  const pieces = e.map((i) => d.push(i));
  assert.equal(pieces.filter((p) => p.includes('\ufffd')).length, 0);
  assert.equal(pieces.join('') + d.flush(), ' 🙂');
  // byte-level BPE: an unfinished UTF-8 sequence shows as a trailing U+FFFD and is held; an invalid one comes out
  const g = await TextTokenizer.fromDir(join(ROOT, 'test', 'fixtures', 'tokenizers', 'gpt2-bytelevel'));
  const gid = g.encode(' 日本', { addSpecialTokens: false });
  d = new StreamDecoder(g, { prompt: g.encode('x') });
  const gp = gid.map((i) => d.push(i));
  assert.ok(gp.every((p) => !p.includes('\ufffd')), JSON.stringify(gp));
  assert.equal(gp.join('') + d.flush(), ' 日本');
  d = new StreamDecoder(g, { prompt: g.encode('x') });
  assert.equal(d.push(g.tokenToId('Ã')!), ''); // byte 0xC3 alone: unfinished
  assert.equal(d.flush(), '\ufffd');
});

test('clean_up_tokenization hold-back: any stream of characters under Transformers\' cleanup comes out exactly', () => {
  // A character-level detokenizer whose decode applies clean_up_tokenization: random streams over the characters
  // its patterns use must concatenate to the cleaned text (cascades like " n ' t" → "n't" included).
  const chars = [' ', 'n', "'", 't', 'm', 'v', 'e', 'r', 's', '.', ',', '?', '!', 'x'];
  const all = (n: number): number[][] => (n === 0 ? [[]] : all(n - 1).flatMap((s) => chars.map((_, i) => [...s, i])));
  const clean = (t: string) => t.replace(/ \./g, '.').replace(/ \?/g, '?').replace(/ !/g, '!').replace(/ ,/g, ',').replace(/ ' /g, "'")
    .replace(/ n't/g, "n't").replace(/ 'm/g, "'m").replace(/ 's/g, "'s").replace(/ 've/g, "'ve").replace(/ 're/g, "'re");
  const tok = { cleanUpTokenizationSpaces: true, decode: (ids: number[]) => clean(ids.map((i) => chars[i]).join('')) };
  const r = rng(11);
  const cases: [number[], number[]][] = all(3).flatMap((g) => [[[], g], [[13], g]]); // every 3-character stream
  for (let n = 0; n < 4000; n++) {
    cases.push([Array.from({ length: Math.floor(r() * 8) }, () => Math.floor(r() * chars.length)),
      Array.from({ length: 1 + Math.floor(r() * 12) }, () => Math.floor(r() * chars.length))]);
  }
  for (const [prompt, gen] of cases) {
    const d = new StreamDecoder(tok, { prompt });
    const out = gen.map((i) => d.push(i)).join('') + d.flush();
    const full = tok.decode([...prompt, ...gen]), base = tok.decode(prompt);
    let k = 0;
    while (k < base.length && base[k] === full[k]) k++;
    assert.equal(out, full.slice(k), JSON.stringify({ prompt, gen }));
  }
});

test('clean_up_tokenization (WordPiece): a trailing " " or " n" is held until the next token decides it', async () => {
  const tok = await TextTokenizer.fromDir(join(ROOT, 'test', 'fixtures', 'tokenizers', 'wordpiece'));
  assert.equal(tok.cleanUpTokenizationSpaces, true);
  const ids = tok.encode('she did n\'t go . yes !', { addSpecialTokens: false });
  const d = new StreamDecoder(tok, { prompt: tok.encode('ok', { addSpecialTokens: false }) });
  const pieces = ids.map((i) => d.push(i));
  pieces.push(d.flush());
  assert.equal(pieces.join(''), expected(tok, tok.encode('ok', { addSpecialTokens: false }), ids, true));
  assert.ok(pieces.join('').includes("n't go. yes!"), pieces.join(''));
  const gpt2 = await TextTokenizer.fromDir(join(ROOT, 'test', 'fixtures', 'tokenizers', 'gpt2-bytelevel'));
  assert.equal(gpt2.cleanUpTokenizationSpaces, false); // Transformers 5 ignores the flag for BPE
});

test('generate(): one stream per row; onText pieces and result.text equal the decoded continuation; stop strings', async () => {
  const tok = await TextTokenizer.fromDir(STORIES);
  const m = await CausalLM.load(STORIES);
  try {
    const prompts = [tok.encode('Once upon'), tok.encode('The little dog'), tok.encode('')];
    const pieces: string[] = prompts.map(() => '');
    const r = await generate(m, prompts, { maxNewTokens: 12, tokenizer: tok, onText: (b, t) => { pieces[b] += t; } });
    for (let b = 0; b < prompts.length; b++) {
      const want = expected(tok, prompts[b]!, r.tokens[b]!, true);
      assert.equal(pieces[b], want);
      assert.equal(r.text![b], want);
    }
    assert.ok(r.text![0]!.startsWith(' a time'), r.text![0]);
    // stop strings are found in the streamed text; the row stops there
    const s = await generate(m, [prompts[0]!, prompts[1]!], { maxNewTokens: 20, tokenizer: tok, stopStrings: ['there'] });
    assert.equal(s.finishReason[0], 'stop');
    assert.ok(s.text![0]!.includes('there') && s.text![0]!.endsWith('there'), s.text![0]);
  } finally { await m.release(); }
});

const CLI = join(ROOT, 'src', 'cli', 'main.ts');
const cli = (args: string[], input?: string) => spawnSync(process.execPath, ['--import', 'tsx', CLI, ...args], { input, encoding: 'utf8', env: { ...process.env, GPTQJS_GRAPH_CACHE: '0' } });

test('gptq generate prints the prompt as given, then exactly the decoded continuation', async () => {
  const tok = await TextTokenizer.fromDir(STORIES);
  const m = await CausalLM.load(STORIES);
  try {
    for (const prompt of ['Once upon', '', 'Tom  had 日']) {
      const r = cli(['generate', STORIES, prompt, '--max-new-tokens', '6']);
      assert.equal(r.status, 0, r.stderr);
      const ids = tok.encode(prompt);
      const g = await generate(m, [ids], { maxNewTokens: 6, eosTokenIds: [2] });
      assert.equal(r.stdout, prompt + expected(tok, ids, g.tokens[0]!, true) + '\n');
    }
    assert.equal(cli(['generate', STORIES, 'Once upon', '--max-new-tokens', '6']).stdout, 'Once upon a time, there was a\n');
  } finally { await m.release(); }
});

test('gptq chat: the printed reply is the decoded continuation of the transcript (trimmed, cut at "User:")', async () => {
  const tok = await TextTokenizer.fromDir(STORIES);
  const m = await CausalLM.load(STORIES);
  try {
    const r = cli(['chat', STORIES, '--max-new-tokens', '16'], 'Once upon a time\n');
    assert.equal(r.status, 0, r.stderr);
    const ids = tok.encode('User: Once upon a time\nAssistant:');
    const g = await generate(m, [ids], { maxNewTokens: 16, eosTokenIds: [2], tokenizer: tok, stopStrings: ['\nUser:'] });
    const reply = g.text![0]!.split('\nUser:')[0]!.trim();
    assert.ok(reply.length > 0);
    assert.equal(r.stdout, `assistant> ${reply}\n`);
  } finally { await m.release(); }
});
