/*
 * Transactions to recipient domains in mx mode: the domain's policy, a
 * slot under the per-destination concurrency limit (Postfix's
 * default_destination_concurrency_limit; `delivery.destination_concurrency`),
 * and a connection, reused from an earlier message when one to the same
 * domain under the same TLS settings is idle (as Postfix's connection
 * cache does), else a new one (connect.ts).
 *
 * A connection is handed back with release(): one outside DATA is reset and
 * kept idle (at most `maxIdle` per domain, closed after `idleTimeout`);
 * anything else is closed, as in relay mode (next-hop-pool.ts).
 */
import { connectToDomain, type ConnectDeps } from './connect';
import { targetTls } from './target-tls';
import { mustVerify } from '../next-hop-tls';
import { rptPolicy } from './tlsrpt-record';
import type { NextHopConnection } from '../next-hop';
import type { Attempt } from './attempts';
import type { DomainPolicy } from '../../tls/policy';
import type { ReplyCode } from '../../errors';
import type { PolicyServices } from './policy-services';

export interface Destination {
  domain: string;
  policy: DomainPolicy;
  conn: NextHopConnection;
  attempt: Attempt;
  /** The TLS the connection has is verified at a level that demands it (DANE, MTA-STS enforce, verify, secure). */
  verified: boolean;
  /**
   * The name the certificate was checked against is vouched for: DANE,
   * MTA-STS, a static secure entry, or verify over a DNSSEC-secure MX answer.
   * RFC 8689 4.2.1 asks this of REQUIRETLS; a require_tls rule does not.
   */
  nameVouched: boolean;
  /** The MX host as a pseudonym, for logs. */
  mx: string;
  /** The connection served an earlier message. */
  reused: boolean;
}

/** `relaxable`: the failure is the recipient domain's own DANE or MTA-STS policy, which TLS-Required: No may set aside. */
export type DestinationOpen = { ok: true; dest: Destination } | { ok: false; code: ReplyCode; reason: string; policy?: DomainPolicy; relaxable?: boolean };

interface Idle {
  conn: NextHopConnection;
  attempt: Attempt;
  since: number;
}

export interface DestinationLimits {
  concurrency: number;
  /** How long a transaction waits for a slot before it is deferred. */
  slotWait: number;
  maxIdle: number;
  idleTimeout: number;
}

const BOUNCE: Record<string, ReplyCode> = { '5.1.10': 'MV_MX_NULL', '5.4.4': 'MV_MX_NO_DOMAIN' };

export class MxDestinations {
  private readonly active = new Map<string, number>();
  private readonly waiting = new Map<string, (() => void)[]>();
  private readonly idle = new Map<string, Idle[]>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly services: PolicyServices,
    private readonly deps: ConnectDeps,
    private readonly limits: DestinationLimits,
    private readonly onPolicy?: (domain: string, ms: number, policy: DomainPolicy) => void,
  ) {
    this.sweeper = setInterval(() => this.sweep(), Math.max(1000, Math.min(limits.idleTimeout, 10_000)));
    this.sweeper.unref();
  }

  async open(domain: string, relaxed = false): Promise<DestinationOpen> {
    const t0 = process.hrtime.bigint();
    const policy = await this.services.policyFor(domain, relaxed);
    this.onPolicy?.(policy.domain, Number(process.hrtime.bigint() - t0) / 1e6, policy);
    this.reportSkips(policy);
    const o = policy.outcome;
    const recipientSide = policy.source === 'dane' || policy.source === 'mta-sts';
    if (o.kind === 'bounce') return { ok: false, code: BOUNCE[o.enhanced], reason: o.reason, policy };
    if (o.kind === 'defer') return { ok: false, code: o.enhanced === '4.7.5' ? 'MV_MX_TLS_POLICY' : 'MV_MX_DNS', reason: o.reason, policy, relaxable: o.enhanced === '4.7.5' && recipientSide };
    if (!(await this.slot(policy.domain))) return { ok: false, code: 'MV_MX_BUSY', reason: 'destination concurrency limit', policy };
    try {
      const reused = this.takeIdle(policy);
      if (reused) return { ok: true, dest: this.destination(policy, reused.conn, reused.attempt, true) };
      const c = await connectToDomain(policy, this.deps);
      if (!c.ok) {
        this.free(policy.domain);
        return { ok: false, code: c.code, reason: c.reason, policy, relaxable: c.code !== 'MV_MX_UNREACHABLE' && recipientSide };
      }
      return { ok: true, dest: this.destination(policy, c.conn, c.attempt, false) };
    } catch (err) {
      this.free(policy.domain);
      throw err;
    }
  }

  /** Hands a destination's connection back and frees its slot. */
  async release(d: Destination): Promise<void> {
    this.free(d.domain);
    const conn = d.conn;
    const phase = conn.phase;
    if (phase !== 'ready' && phase !== 'envelope') return conn.destroy();
    if (!(await conn.reset())) return conn.destroy();
    const list = this.idle.get(d.domain) ?? [];
    if (!conn.reusable || list.length >= this.limits.maxIdle) return conn.quit();
    list.push({ conn, attempt: d.attempt, since: Date.now() });
    this.idle.set(d.domain, list);
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const list of this.idle.values()) for (const i of list) i.conn.quit();
    this.idle.clear();
  }

  private destination(policy: DomainPolicy, conn: NextHopConnection, attempt: Attempt, reused: boolean): Destination {
    const t = conn.tls;
    // `verify` checks the MX host name, which only a DNSSEC-secure MX answer vouches for (MTA-STS names the MX itself).
    const nameVouched = t?.level !== 'verify' || attempt.target.source === 'mta-sts' || policy.mxLookup.secure === true;
    const verified = Boolean(t && t.verified && mustVerify(t.level) && t.result === 'ok');
    return { domain: policy.domain, policy, conn, attempt, verified, nameVouched, mx: this.deps.pseudonyms.token('host', attempt.target.host), reused };
  }

  /** An idle connection still valid under today's policy: same host, same TLS settings. */
  private takeIdle(policy: DomainPolicy): Idle | undefined {
    const list = this.idle.get(policy.domain);
    if (!list?.length) return undefined;
    const keys = new Set(policy.mx.filter((t) => !t.skip).map((t) => targetTls(t, policy.domain, this.deps.secureContext).key));
    while (list.length) {
      const i = list.pop()!;
      if (i.conn.usable && i.conn.reusable && keys.has(i.conn.tlsKey)) return i;
      i.conn.quit();
    }
    return undefined;
  }

  private async slot(domain: string): Promise<boolean> {
    const n = this.active.get(domain) ?? 0;
    if (n < this.limits.concurrency) {
      this.active.set(domain, n + 1);
      return true;
    }
    return new Promise((resolve) => {
      const q = this.waiting.get(domain) ?? [];
      const go = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        const i = q.indexOf(go);
        if (i >= 0) q.splice(i, 1);
        resolve(false);
      }, this.limits.slotWait);
      q.push(go);
      this.waiting.set(domain, q);
    });
  }

  /** Passes the slot to the next waiter, or frees it. */
  private free(domain: string): void {
    const next = this.waiting.get(domain)?.shift();
    if (next) return next();
    const n = (this.active.get(domain) ?? 1) - 1;
    if (n <= 0) this.active.delete(domain);
    else this.active.set(domain, n);
  }

  /** TLS-RPT: hosts the policy excluded before any connection, and an MTA-STS policy that could not be fetched. */
  private reportSkips(policy: DomainPolicy): void {
    for (const t of policy.mx) {
      if (!t.skip?.type) continue;
      const type = t.dane.state === 'bogus' ? 'dnssec-invalid' : t.skip.type;
      this.deps.tlsrpt.record({ policyDomain: policy.domain, policy: rptPolicy(policy, t), result: { type, receivingMxHostname: t.host } });
    }
    const f = policy.sts?.failure;
    if (f && policy.mx[0]) this.deps.tlsrpt.record({ policyDomain: policy.domain, policy: rptPolicy(policy, policy.mx[0]), result: { type: f.type } });
  }

  private sweep(): void {
    const cutoff = Date.now() - this.limits.idleTimeout;
    for (const [domain, list] of this.idle) {
      const keep = list.filter((i) => {
        if (i.conn.usable && i.since > cutoff) return true;
        i.conn.quit();
        return false;
      });
      if (keep.length) this.idle.set(domain, keep);
      else this.idle.delete(domain);
    }
  }
}
