/*
 * Durations in config and flags: a number with a unit, 500ms, 30s, 5m, 2h,
 * 7d. A bare number is refused: it used to mean milliseconds, and an
 * operator used to Postfix who writes `next_hop_data: 600` means seconds, so
 * either reading would be wrong for someone. durationFix() words the fix.
 */

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Milliseconds, or undefined when the text is not a duration with a unit. */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value !== 'string') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/i.exec(value);
  return m ? Math.round(Number(m[1]) * UNITS[m[2].toLowerCase()]) : undefined;
}

/** What to write instead of the bare number `n`, e.g. `60s (or 60000ms)`. */
export function durationFix(n: number): string {
  if (!Number.isFinite(n) || n < 0) return 'a duration such as 500ms, 30s, 5m or 7d';
  return `${n}s (or ${Number((n * 1000).toFixed(3))}ms)`;
}
