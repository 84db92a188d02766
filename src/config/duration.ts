/* Durations in config: milliseconds as a number, or text like 500ms, 30s, 5m, 2h, 7d. */

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/i.exec(value);
  return m ? Math.round(Number(m[1]) * UNITS[m[2].toLowerCase()]) : undefined;
}
