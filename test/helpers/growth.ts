/*
 * Linearity checks time one input against one 4x as large. Other test files
 * run alongside and disturb timings, so each side is the best of a few runs,
 * and a ratio over the limit is measured again before it counts.
 */
function best<T>(fn: (input: T) => unknown, input: T, runs: number): number {
  let b = Infinity;
  for (let i = 0; i < runs; i++) {
    const t = process.hrtime.bigint();
    fn(input);
    b = Math.min(b, Number(process.hrtime.bigint() - t));
  }
  return b;
}

/** How many times longer fn takes on `large` than on `small`: the first measurement at or under `limit`, else the last. */
export function growth<T>(fn: (input: T) => unknown, small: T, large: T, limit: number, attempts = 3, runs = 3): number {
  best(fn, small, 1); // warm up
  let ratio = Infinity;
  for (let a = 0; a < attempts && ratio > limit; a++) ratio = best(fn, large, runs) / best(fn, small, runs);
  return ratio;
}
