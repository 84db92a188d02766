/*
 * Sizes in config: a number with a unit, B, KB/KiB, MB/MiB, GB/GiB (k, m, g
 * are decimal). A bare number is refused, so that a size is never read in
 * a unit the writer did not mean; sizeFix() words the fix.
 */

const UNITS: Record<string, number> = {
  b: 1,
  k: 1e3, kb: 1e3, kib: 1024,
  m: 1e6, mb: 1e6, mib: 1024 ** 2,
  g: 1e9, gb: 1e9, gib: 1024 ** 3,
};

/** Binary units, largest first, for sizeFix's suggestion. */
const BINARY: [string, number][] = [['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]];

/** The byte count, or undefined when the text is not a size with a unit. */
export function parseSize(value: unknown): number | undefined {
  if (typeof value !== 'string') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$/i.exec(value);
  if (!m) return undefined;
  const unit = UNITS[m[2].toLowerCase()];
  if (unit === undefined) return undefined;
  const bytes = Math.round(Number(m[1]) * unit);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

/** What to write instead of the bare byte count `n`, e.g. `5MiB or 5242880B`. */
export function sizeFix(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) return 'a size such as 50MiB, 512KB or 500B';
  const unit = BINARY.find(([, u]) => n >= u && n % u === 0);
  return unit ? `${n / unit[1]}${unit[0]} or ${n}B` : `${n}B`;
}
