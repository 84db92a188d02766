/*
 * The fuzzer's seeded randomness. Every session draws from its own stream,
 * derived from (run seed, iteration), so `--seed S --only I` replays session
 * I without replaying the sessions before it. The next hop's per-connection
 * behaviour has its own streams (derive(seed, HOP, n)).
 */

/** A 32-bit mix (splitmix32's finaliser): spreads nearby inputs apart. */
function mix(x: number): number {
  x = (x + 0x9e3779b9) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b) >>> 0;
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

/** A seed for a sub-stream: derive(seed, 7, 3) is stable and unrelated to derive(seed, 7, 4). */
export function derive(seed: number, ...keys: number[]): number {
  let h = mix(seed >>> 0);
  for (const k of keys) h = mix((h ^ (k >>> 0)) >>> 0);
  return h;
}

/** mulberry32: small, fast, good enough for test-case choice. */
export class Rng {
  private s: number;

  constructor(seed: number) {
    this.s = seed >>> 0;
  }

  u32(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** [0, 1) */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return n <= 1 ? 0 : Math.floor(this.float() * n);
  }

  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  /** Picks by weight: [[3, 'a'], [1, 'b']] gives 'a' three times as often. */
  weighted<T>(table: readonly (readonly [number, T])[]): T {
    let total = 0;
    for (const [w] of table) total += w;
    let r = this.float() * total;
    for (const [w, v] of table) {
      r -= w;
      if (r < 0) return v;
    }
    return table[table.length - 1][1];
  }
}
