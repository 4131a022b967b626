/**
 * Python's `random.Random(seed)` as far as lm-evaluation-harness uses it to draw few-shot examples
 * (lm_eval/api/samplers.py: `ContextSampler.rnd = Random(seed)`, `rnd.sample(docs, n)`), so that `--num-fewshot` picks
 * the same examples in the same order as lm-eval with the same seed. The generator is MT19937 (the `mersenne-twister`
 * package); seeding, `getrandbits`, `_randbelow` and `sample` follow CPython 3.11 Lib/random.py and
 * Modules/_randommodule.c (random_seed: the integer's absolute value as little-endian 32-bit words → init_by_array).
 */
import MersenneTwister from 'mersenne-twister';
import { fail } from '../errors.ts';

export class PythonRandom {
  private readonly mt: MersenneTwister;

  /** `random.Random(seed)` for a non-negative or negative integer seed (CPython uses |seed|). */
  constructor(seed: number | bigint) {
    let n = typeof seed === 'bigint' ? seed : BigInt(seed);
    if (typeof seed === 'number' && !Number.isSafeInteger(seed)) fail(`PythonRandom: seed must be an integer, got ${seed}`);
    if (n < 0n) n = -n;
    const key: number[] = [];
    do { key.push(Number(n & 0xffffffffn)); n >>= 32n; } while (n > 0n);
    this.mt = new MersenneTwister(0);
    this.mt.init_by_array(key, key.length);
  }

  /** `getrandbits(k)` for 1 ≤ k ≤ 32. */
  getrandbits(k: number): number {
    if (!(Number.isInteger(k) && k >= 1 && k <= 32)) fail(`getrandbits: k must be in [1, 32], got ${k}`);
    return this.mt.random_int() >>> (32 - k);
  }

  /** `_randbelow_with_getrandbits(n)`: uniform integer in [0, n), by rejection of k-bit draws. */
  randbelow(n: number): number {
    if (!(Number.isInteger(n) && n >= 1 && n < 2 ** 32)) fail(`randbelow: n must be an integer in [1, 2^32), got ${n}`);
    const k = bitLength(n);
    let r = this.getrandbits(k);
    while (r >= n) r = this.getrandbits(k);
    return r;
  }

  /** `sample(population, k)`: k distinct elements in selection order (CPython 3.11's pool / set algorithms). */
  sample<T>(population: readonly T[], k: number): T[] {
    const n = population.length;
    if (!(Number.isInteger(k) && k >= 0 && k <= n)) fail(`sample: sample larger than population or is negative (k=${k}, population ${n})`);
    const result: T[] = new Array(k);
    let setsize = 21;
    if (k > 5) setsize += 4 ** Math.ceil(Math.log(k * 3) / Math.log(4));
    if (n <= setsize) {
      const pool = population.slice();
      for (let i = 0; i < k; i++) {
        const j = this.randbelow(n - i);
        result[i] = pool[j]!;
        pool[j] = pool[n - i - 1]!;
      }
    } else {
      const selected = new Set<number>();
      for (let i = 0; i < k; i++) {
        let j = this.randbelow(n);
        while (selected.has(j)) j = this.randbelow(n);
        selected.add(j);
        result[i] = population[j]!;
      }
    }
    return result;
  }
}

/** Python's int.bit_length() for a positive integer < 2^53. */
function bitLength(n: number): number {
  let b = 0;
  while (n >= 1) { n = Math.floor(n / 2); b++; }
  return b;
}
