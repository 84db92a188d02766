/* A seeded xorshift32 generator for fuzz tests: the seed printed on failure reproduces the run. */
export function xorshift32(seed: number, fallback = 0x9e3779b9): () => number {
  let x = seed >>> 0 || fallback;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}
