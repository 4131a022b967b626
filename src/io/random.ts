import MersenneTwister from 'mersenne-twister';
import { fail } from '../errors.ts';

/** Deterministic PRNG (mulberry32): uniform floats in [0, 1). Same sequence as test/helpers.ts rng(). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Uniform integer in [lo, hi] inclusive (like Python's random.randint). */
export function randint(r: () => number, lo: number, hi: number): number {
  return lo + Math.floor(r() * (hi - lo + 1));
}

/**
 * Python's `random.Random(seed)` (CPython 3.11 Lib/random.py + Modules/_randommodule.c) for the draws where gptqjs
 * must pick exactly what the Python reference picks with the same seed: calibration windows (IST-DASLab gptq
 * datautils.py: `random.seed(seed)`, `random.randint(…)`) and lm-eval's few-shot examples (lm_eval/api/samplers.py:
 * `Random(seed).sample(docs, n)`). The generator is MT19937 from the `mersenne-twister` package; seeding (the
 * integer's absolute value as little-endian 32-bit words → init_by_array), getrandbits, _randbelow_with_getrandbits,
 * randrange/randint, random() and sample follow CPython. Pinned against CPython's numbers in test/datasets.test.ts
 * and test/eval.test.ts.
 */
export class PythonRandom {
  private readonly mt: MersenneTwister;

  /** `random.Random(seed)` for an integer seed (CPython uses |seed|). */
  constructor(seed: number | bigint = 0) {
    if (typeof seed === 'number' && !Number.isSafeInteger(seed)) fail(`PythonRandom: seed must be an integer, got ${seed}`);
    let n = typeof seed === 'bigint' ? seed : BigInt(seed);
    if (n < 0n) n = -n;
    const key: number[] = [];
    do { key.push(Number(n & 0xffffffffn)); n >>= 32n; } while (n > 0n);
    this.mt = new MersenneTwister(0);
    this.mt.init_by_array(key, key.length);
  }

  /** `getrandbits(k)` for 0 ≤ k ≤ 53: 32-bit words from the least significant end, the last one shifted down. */
  getrandbits(k: number): number {
    if (!(Number.isInteger(k) && k >= 0 && k <= 53)) fail(`getrandbits: k must be an integer in [0, 53], got ${k}`);
    if (k === 0) return 0;
    if (k <= 32) return this.mt.random_int() >>> (32 - k);
    const lo = this.mt.random_int() >>> 0, hi = this.mt.random_int() >>> (64 - k);
    return hi * 0x100000000 + lo;
  }

  /** `_randbelow_with_getrandbits(n)`: uniform integer in [0, n), by rejection of bit_length(n)-bit draws. */
  randbelow(n: number): number {
    if (!(Number.isInteger(n) && n >= 1 && n < 2 ** 53)) fail(`randbelow: n must be an integer in [1, 2^53), got ${n}`);
    const k = bitLength(n);
    let r = this.getrandbits(k);
    while (r >= n) r = this.getrandbits(k);
    return r;
  }

  /** `randrange(start, stop)`: uniform integer in [start, stop); an empty range throws, as in Python. */
  randrange(start: number, stop: number): number {
    if (!(stop > start)) fail(`empty range for randrange(${start}, ${stop})`);
    return start + this.randbelow(stop - start);
  }

  /** `randint(a, b)`: uniform integer in [a, b]. */
  randint(a: number, b: number): number { return this.randrange(a, b + 1); }

  /** `random()`: a 53-bit float in [0, 1) (random_random: (a·2^26 + b) / 2^53 from two words). */
  random(): number {
    const a = this.mt.random_int() >>> 5, b = this.mt.random_int() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
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
