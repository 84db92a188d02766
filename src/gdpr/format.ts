/* Durations and sizes as an operator writes them in the config (30d, 50MiB), for README.txt and the Art. 30 report. */

/** 2592000000 -> '30d'; the largest unit that divides exactly. */
export function formatDuration(ms: number): string {
  const units: [number, string][] = [
    [86_400_000, 'd'],
    [3_600_000, 'h'],
    [60_000, 'm'],
    [1000, 's'],
  ];
  for (const [n, u] of units) if (ms >= n && ms % n === 0) return `${ms / n}${u}`;
  return `${ms}ms`;
}

/** 52428800 -> '50MiB'; the largest binary unit that divides exactly, else bytes. */
export function formatBytes(n: number): string {
  const units: [number, string][] = [
    [1024 ** 3, 'GiB'],
    [1024 ** 2, 'MiB'],
    [1024, 'KiB'],
  ];
  for (const [m, u] of units) if (n >= m && n % m === 0) return `${n / m}${u}`;
  return `${n} bytes`;
}
