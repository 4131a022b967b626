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
 * Python's `random` module (CPython Modules/_randommodule.c + Lib/random.py): MT19937 seeded like random.seed(int)
 * (init_by_array over the seed's 32-bit words), getrandbits, and randint/randrange by rejection sampling
 * (_randbelow_with_getrandbits). Gives exactly the numbers Python gives for the same seed, so calibration windows
 * match the GPTQ reference scripts' (gptq datautils.py: random.seed(seed); random.randint(…)).
 */
export class PyRandom {
  private mt = new Uint32Array(624);
  private i = 625;

  /** @param seed a non-negative safe integer (Python uses |seed|) */
  constructor(seed = 0) {
    let n = Math.abs(Math.trunc(seed));
    const key: number[] = [];
    do { key.push(n % 0x100000000); n = Math.floor(n / 0x100000000); } while (n > 0);
    this.initByArray(key);
  }

  private initGenrand(s: number): void {
    const mt = this.mt;
    mt[0] = s >>> 0;
    for (let i = 1; i < 624; i++) {
      const p = mt[i - 1]! ^ (mt[i - 1]! >>> 30);
      mt[i] = (Math.imul(1812433253, p) + i) >>> 0;
    }
    this.i = 624;
  }

  private initByArray(key: number[]): void {
    const mt = this.mt;
    this.initGenrand(19650218);
    let i = 1, j = 0;
    for (let k = Math.max(624, key.length); k > 0; k--) {
      const p = mt[i - 1]! ^ (mt[i - 1]! >>> 30);
      mt[i] = ((mt[i]! ^ Math.imul(p, 1664525)) + key[j]! + j) >>> 0;
      i++; j++;
      if (i >= 624) { mt[0] = mt[623]!; i = 1; }
      if (j >= key.length) j = 0;
    }
    for (let k = 623; k > 0; k--) {
      const p = mt[i - 1]! ^ (mt[i - 1]! >>> 30);
      mt[i] = ((mt[i]! ^ Math.imul(p, 1566083941)) - i) >>> 0;
      i++;
      if (i >= 624) { mt[0] = mt[623]!; i = 1; }
    }
    mt[0] = 0x80000000;
  }

  /** genrand_uint32 */
  uint32(): number {
    const mt = this.mt;
    if (this.i >= 624) {
      for (let k = 0; k < 624; k++) {
        const y = (mt[k]! & 0x80000000) | (mt[(k + 1) % 624]! & 0x7fffffff);
        mt[k] = mt[(k + 397) % 624]! ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
      }
      this.i = 0;
    }
    let y = mt[this.i++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** random.getrandbits(k), 0 ≤ k ≤ 53 */
  getrandbits(k: number): number {
    if (k <= 32) return k === 0 ? 0 : this.uint32() >>> (32 - k);
    const lo = this.uint32(), hi = this.uint32() >>> (64 - k);
    return hi * 0x100000000 + lo;
  }

  /** random.randrange(start, stop): uniform integer in [start, stop); throws for an empty range as Python does. */
  randrange(start: number, stop: number): number {
    const n = stop - start;
    if (!(n > 0)) throw new RangeError(`empty range for randrange(${start}, ${stop})`);
    const k = Math.floor(Math.log2(n)) + 1; // n.bit_length()
    let r = this.getrandbits(k);
    while (r >= n) r = this.getrandbits(k);
    return start + r;
  }

  /** random.randint(a, b): uniform integer in [a, b]. */
  randint(a: number, b: number): number { return this.randrange(a, b + 1); }

  /** random.random(): 53-bit float in [0, 1). */
  random(): number {
    const a = this.uint32() >>> 5, b = this.uint32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }
}
