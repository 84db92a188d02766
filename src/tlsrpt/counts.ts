/*
 * One UTC day's TLS-RPT counters (RFC 8460 4.2, 4.3), in memory: per
 * policy domain, per policy, the successful sessions and the failed ones by
 * failure detail (result type + the receiving side). The same structure
 * counts a writer's sessions (store.ts) and merges the writers' files for a
 * report, and it is what a counts file holds (toJSON / parseCounts).
 *
 * Limits, all named below and all per day:
 *  - MAX_FAILURE_ROWS distinct failure details per policy domain; a session
 *    whose detail is new past that is counted in its policy's `overflow`,
 *    by result type alone (the report shows such a row without host names).
 *    Totals stay exact.
 *  - MAX_POLICIES per policy domain and MAX_DOMAINS per day; a session
 *    past those is not counted anywhere but in `dropped`, which the report
 *    command prints as a warning.
 *  - Strings are cut at MAX_TEXT / MAX_POLICY_LINE, lists at MAX_POLICY_LINES
 *    / MAX_MX_HOSTS: a policy that large is already an anomaly, and one
 *    domain must not be able to grow a counts file without bound.
 *
 * Invalid input (an unknown type, a malformed day, domain or IP) is a bug in
 * the caller: normalise() throws a TypeError naming the field.
 */
import { isIP } from 'node:net';
import { domainToASCII } from 'node:url';
import { POLICY_TYPES, RESULT_TYPES, type PolicyType, type ResultType, type TlsRptFailure, type TlsRptPolicy, type TlsRptRecord } from './types';

export const MAX_FAILURE_ROWS = 100;
export const MAX_POLICIES = 16;
export const MAX_DOMAINS = 50_000;
export const MAX_POLICY_LINES = 100;
export const MAX_POLICY_LINE = 1000;
export const MAX_MX_HOSTS = 50;
export const MAX_TEXT = 255;

export const COUNTS_FORMAT = 1;
const COUNTS_KIND = 'mailveil-tlsrpt-counts';

export interface FailureRow extends TlsRptFailure {
  count: number;
}

export interface PolicyCounts {
  policy: TlsRptPolicy;
  successful: number;
  /** Keyed by failureKey(). */
  failures: Map<string, FailureRow>;
  /** Failed sessions whose detail did not fit under MAX_FAILURE_ROWS, by result type. */
  overflow: Map<ResultType, number>;
}

export interface DomainCounts {
  /** Keyed by policyKey(). */
  policies: Map<string, PolicyCounts>;
  /** Distinct failure rows over all of the domain's policies (MAX_FAILURE_ROWS). */
  rows: number;
}

/** A normalised record: what DayCounts.add() takes. */
export interface Normalised {
  day: string;
  domain: string;
  policy: TlsRptPolicy;
  failure: TlsRptFailure | undefined;
}

export class DayCounts {
  readonly domains = new Map<string, DomainCounts>();
  /** Sessions not counted: over MAX_POLICIES or MAX_DOMAINS. */
  dropped = 0;

  constructor(readonly day: string) {}

  /** Counts `n` sessions of one kind; returns false when they went to `dropped`. */
  add(domain: string, policy: TlsRptPolicy, failure: TlsRptFailure | undefined, n = 1): boolean {
    let d = this.domains.get(domain);
    if (!d) {
      if (this.domains.size >= MAX_DOMAINS) return this.drop(n);
      d = { policies: new Map(), rows: 0 };
      this.domains.set(domain, d);
    }
    const pk = policyKey(policy);
    let p = d.policies.get(pk);
    if (!p) {
      if (d.policies.size >= MAX_POLICIES) return this.drop(n);
      p = { policy: { type: policy.type, strings: [...policy.strings], mxHosts: [...policy.mxHosts] }, successful: 0, failures: new Map(), overflow: new Map() };
      d.policies.set(pk, p);
    }
    if (failure === undefined) {
      p.successful += n;
      return true;
    }
    const fk = failureKey(failure);
    const row = p.failures.get(fk);
    if (row) row.count += n;
    else if (d.rows < MAX_FAILURE_ROWS) {
      p.failures.set(fk, { ...failure, count: n });
      d.rows++;
    } else p.overflow.set(failure.type, (p.overflow.get(failure.type) ?? 0) + n);
    return true;
  }

  /** Adds another writer's counts for the same day (the report's merge). */
  merge(other: DayCounts): void {
    if (other.day !== this.day) throw new TypeError(`merge of ${other.day} into ${this.day}`);
    this.dropped += other.dropped;
    for (const [domain, d] of other.domains) {
      for (const p of d.policies.values()) {
        if (p.successful > 0) this.add(domain, p.policy, undefined, p.successful);
        for (const row of p.failures.values()) {
          const { count, ...failure } = row;
          this.add(domain, p.policy, failure, count);
        }
        for (const [type, n] of p.overflow) this.addOverflow(domain, p.policy, type, n);
      }
    }
  }

  private addOverflow(domain: string, policy: TlsRptPolicy, type: ResultType, n: number): void {
    // Through add() with a detail-less row, so the caps apply; then move it to overflow.
    if (!this.add(domain, policy, undefined, 0)) {
      this.dropped += n;
      return;
    }
    const p = this.domains.get(domain)!.policies.get(policyKey(policy))!;
    p.overflow.set(type, (p.overflow.get(type) ?? 0) + n);
  }

  private drop(n: number): false {
    this.dropped += n;
    return false;
  }

  /** The file form (store.ts writes it; parseCounts reads it back). */
  toJSON(): CountsFile {
    return {
      kind: COUNTS_KIND,
      format: COUNTS_FORMAT,
      day: this.day,
      dropped: this.dropped,
      domains: [...this.domains].map(([domain, d]) => ({
        domain,
        policies: [...d.policies.values()].map((p) => ({
          type: p.policy.type,
          strings: [...p.policy.strings],
          mxHosts: [...p.policy.mxHosts],
          successful: p.successful,
          failures: [...p.failures.values()],
          overflow: Object.fromEntries(p.overflow),
        })),
      })),
    };
  }
}

interface CountsFile {
  kind: string;
  format: number;
  day: string;
  dropped: number;
  domains: { domain: string; policies: (TlsRptPolicy & { successful: number; failures: FailureRow[]; overflow: Record<string, number> })[] }[];
}

/* Keys join normalised fields with \n, which no normalised field holds (control characters are replaced). */
export function policyKey(p: TlsRptPolicy): string {
  return `${p.type}\n${p.strings.join('\n')}\n\n${p.mxHosts.join('\n')}`;
}

export function failureKey(f: TlsRptFailure): string {
  return `${f.type}\n${f.sendingMtaIp ?? ''}\n${f.receivingMxHostname ?? ''}\n${f.receivingMxHelo ?? ''}\n${f.receivingIp ?? ''}\n${f.failureReasonCode ?? ''}`;
}

/* ---------- normalisation: one form per value, so equal sessions share a row ---------- */

const DAY_RE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** `YYYY-MM-DD` of a real calendar day, or undefined. */
export function parseDay(s: string): string | undefined {
  const m = DAY_RE.exec(s);
  if (!m) return undefined;
  const t = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  return new Date(t).toISOString().slice(0, 10) === s ? s : undefined;
}

/* The last day computed, as record() asks for the same day all day long. */
let dayCache = { start: 0, end: 0, day: '' };

export function utcDay(t: Date): string {
  const ms = t.getTime();
  if (ms >= dayCache.start && ms < dayCache.end) return dayCache.day;
  const start = ms - (((ms % 86_400_000) + 86_400_000) % 86_400_000);
  dayCache = { start, end: start + 86_400_000, day: new Date(start).toISOString().slice(0, 10) };
  return dayCache.day;
}

const LABEL = '(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)';
const NAME_RE = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`);

/** A domain or host name as RFC 8460 wants it: lower case, A-labels, no trailing dot; undefined if it is not one. */
export function normaliseName(s: string): string | undefined {
  if (typeof s !== 'string') return undefined;
  const trimmed = s.trim().replace(/\.$/, '');
  if (trimmed === '' || /[\s@/\\]/.test(trimmed)) return undefined;
  // Underscores pass through domainToASCII only in non-special URL forms; keep ASCII names as they are.
  const ascii = /^[\x21-\x7e]+$/.test(trimmed) ? trimmed.toLowerCase() : domainToASCII(trimmed.toLowerCase());
  if (!ascii || ascii.length > 253 || !NAME_RE.test(ascii)) return undefined;
  return ascii;
}

/** An MX pattern of a policy: a name, or `*.` and a name. */
function normalisePattern(s: string): string | undefined {
  if (typeof s !== 'string') return undefined;
  const wild = s.trim().startsWith('*.');
  const name = normaliseName(wild ? s.trim().slice(2) : s);
  return name === undefined ? undefined : wild ? `*.${name}` : name;
}

/** An IP in its RFC 5952 form (IPv4-mapped IPv6 as plain IPv4), or undefined. */
export function normaliseIp(s: string): string | undefined {
  if (typeof s !== 'string') return undefined;
  const v = isIP(s);
  if (v === 4) return s;
  if (v !== 6) return undefined;
  // WHATWG URL serialises IPv6 compressed and in lower case, as RFC 5952 asks.
  const canonical = new URL(`http://[${s}]/`).hostname.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (mapped) {
    const hi = parseInt(mapped[1], 16);
    const lo = parseInt(mapped[2], 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return canonical;
}

/** Free text (HELO, failure code): printable, no address-like token, at most MAX_TEXT characters. */
export function scrubText(s: string): string {
  return s
    .replace(/[\x00-\x1f\x7f]/g, ' ')
    .replace(/[^\s<>"'(),;:[\]]*@[^\s<>"'(),;:[\]]*/g, '[address]')
    .trim()
    .slice(0, MAX_TEXT);
}

function fail(field: string, value: unknown): never {
  throw new TypeError(`tlsrpt: invalid ${field}: ${JSON.stringify(value)?.slice(0, 80)}`);
}

export function normalisePolicy(p: TlsRptPolicy): TlsRptPolicy {
  if (!p || !(POLICY_TYPES as readonly string[]).includes(p.type)) fail('policy.type', p?.type);
  if (!Array.isArray(p.strings) || p.strings.some((s) => typeof s !== 'string')) fail('policy.strings', p.strings);
  if (!Array.isArray(p.mxHosts)) fail('policy.mxHosts', p.mxHosts);
  const strings = p.strings.slice(0, MAX_POLICY_LINES).map((s) => s.replace(/[\x00-\x1f\x7f]/g, ' ').trim().slice(0, MAX_POLICY_LINE));
  const mxHosts = p.mxHosts.slice(0, MAX_MX_HOSTS).map((m) => normalisePattern(m) ?? fail('policy.mxHosts', m));
  return { type: p.type as PolicyType, strings, mxHosts };
}

export function normaliseFailure(f: TlsRptFailure): TlsRptFailure {
  if (!f || !(RESULT_TYPES as readonly string[]).includes(f.type)) fail('result.type', f?.type);
  const out: TlsRptFailure = { type: f.type };
  if (f.sendingMtaIp !== undefined) out.sendingMtaIp = normaliseIp(f.sendingMtaIp) ?? fail('result.sendingMtaIp', f.sendingMtaIp);
  if (f.receivingMxHostname !== undefined) out.receivingMxHostname = normaliseName(f.receivingMxHostname) ?? fail('result.receivingMxHostname', f.receivingMxHostname);
  if (f.receivingMxHelo !== undefined) {
    if (typeof f.receivingMxHelo !== 'string') fail('result.receivingMxHelo', f.receivingMxHelo);
    const helo = scrubText(f.receivingMxHelo);
    if (helo) out.receivingMxHelo = helo;
  }
  if (f.receivingIp !== undefined) out.receivingIp = normaliseIp(f.receivingIp) ?? fail('result.receivingIp', f.receivingIp);
  if (f.failureReasonCode !== undefined) {
    if (typeof f.failureReasonCode !== 'string') fail('result.failureReasonCode', f.failureReasonCode);
    const code = scrubText(f.failureReasonCode);
    if (code) out.failureReasonCode = code;
  }
  return out;
}

export function normalise(r: TlsRptRecord, now: Date): Normalised {
  let day: string | undefined;
  if (r.day === undefined) day = utcDay(now);
  else if (r.day instanceof Date) day = Number.isFinite(r.day.getTime()) ? utcDay(r.day) : undefined;
  else day = parseDay(r.day);
  if (day === undefined) fail('day', r.day);
  const domain = normaliseName(r.policyDomain) ?? fail('policyDomain', r.policyDomain);
  const policy = normalisePolicy(r.policy);
  const failure = r.result === 'success' ? undefined : normaliseFailure(r.result);
  return { day, domain, policy, failure };
}

/* ---------- the file form ---------- */

function isCount(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

/**
 * The counts a file holds, checked as strictly as record() checks its
 * input; or why it is not a counts file for `day`. Never throws.
 */
export function parseCounts(text: string, day: string): DayCounts | string {
  let j: CountsFile;
  try {
    j = JSON.parse(text) as CountsFile;
  } catch {
    return 'not JSON';
  }
  if (j === null || typeof j !== 'object') return 'not an object';
  if (j.kind !== COUNTS_KIND) return 'not a TLS-RPT counts file';
  if (j.format !== COUNTS_FORMAT) return `format ${String(j.format)} is not ${COUNTS_FORMAT}`;
  if (j.day !== day) return `holds day ${String(j.day)}`;
  if (!isCount(j.dropped) || !Array.isArray(j.domains)) return 'no dropped count or no domains';
  const out = new DayCounts(day);
  out.dropped = j.dropped;
  try {
    for (const d of j.domains) {
      const domain = normaliseName(d?.domain);
      if (domain === undefined || domain !== d.domain) return `bad domain ${JSON.stringify(d?.domain)}`;
      if (!Array.isArray(d.policies)) return `${domain}: no policies`;
      for (const p of d.policies) {
        const policy = normalisePolicy(p);
        if (!isCount(p.successful) || !Array.isArray(p.failures) || p.overflow === null || typeof p.overflow !== 'object') return `${domain}: a policy's counts are malformed`;
        if (p.successful > 0) out.add(domain, policy, undefined, p.successful);
        for (const row of p.failures) {
          if (!isCount(row?.count)) return `${domain}: a failure count is malformed`;
          const { count, ...failure } = row;
          out.add(domain, policy, normaliseFailure(failure), count);
        }
        const overflow = new DayCounts(day);
        for (const [type, n] of Object.entries(p.overflow)) {
          if (!(RESULT_TYPES as readonly string[]).includes(type) || !isCount(n)) return `${domain}: an overflow count is malformed`;
          overflow.add(domain, policy, undefined, 0);
          overflow.domains.get(domain)!.policies.get(policyKey(policy))!.overflow.set(type as ResultType, n);
        }
        out.merge(overflow);
      }
    }
  } catch (err) {
    return (err as Error).message;
  }
  return out;
}
