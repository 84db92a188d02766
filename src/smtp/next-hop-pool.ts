/*
 * Reuses next-hop connections across client sessions, as Postfix's own
 * connection cache does: opening a connection and saying EHLO costs two
 * round trips and a process slot at the next hop. Idle connections are
 * closed after `idleTimeout`, well under Postfix's smtpd_timeout, and at most
 * `maxIdle` are kept.
 *
 * Only a connection outside any transaction is kept: one with MAIL open is
 * reset first (once every reply is in), one that has gone past DATA is
 * closed (next-hop.ts says why). TLS connections are kept like plain ones,
 * but one is handed out only under the TLS settings it was opened with
 * (NextHopConnection.tlsKey), so a connection never serves a stricter
 * level than the one it negotiated.
 *
 * The pool also knows whether the next hop is there: after UNREADY_AFTER
 * refused connections in a row it reports unhealthy (/readyz turns 503), and
 * probe() checks again, at most once per PROBE_INTERVAL_MS, so /readyz
 * recovers when the next hop is back even if no mail arrives.
 */
import { NextHopConnection, NextHopError, type NextHopOptions } from './next-hop';
import type { TlsOutcome } from './next-hop-tls';

export const UNREADY_AFTER = 3;
const PROBE_INTERVAL_MS = 1000;

/** Where next-hop trouble is reported (logs and metrics, wired in service.ts). */
export interface NextHopObserver {
  /** A connection or command failed; `step` names what we were doing. */
  failure(err: NextHopError, step: string): void;
  /** The next hop broke the protocol; the connection is already destroyed. */
  violation(what: string): void;
  /** The next hop answers again after refusing. */
  recovered(): void;
  /** The TLS outcome of one connection attempt (every level, failures too). */
  tls(outcome: TlsOutcome): void;
}

export class NextHopPool {
  private idle: NextHopConnection[] = [];
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;
  private refusedInARow = 0;
  private lastProbe = 0;
  private readonly opts: NextHopOptions;

  constructor(
    opts: NextHopOptions,
    private readonly maxIdle: number,
    private readonly idleTimeout: number,
    private readonly observer?: NextHopObserver,
  ) {
    this.opts = { ...opts, onViolation: (what) => observer?.violation(what), onTls: (o) => observer?.tls(o) };
    this.sweeper = setInterval(() => this.sweep(), Math.max(1000, Math.min(idleTimeout, 10_000)));
    this.sweeper.unref();
  }

  /** False while the next hop has refused UNREADY_AFTER connections in a row. */
  get healthy(): boolean {
    return this.refusedInARow < UNREADY_AFTER;
  }

  /** A connection that is usable and outside any transaction. */
  async acquire(): Promise<{ conn: NextHopConnection; reused: boolean }> {
    while (this.idle.length) {
      const conn = this.idle.pop()!;
      if (conn.usable && conn.reusable && conn.tlsKey === this.tlsKey) return { conn, reused: true };
      conn.destroy();
    }
    return { conn: await this.open(), reused: false };
  }

  /** Hands a connection back; it is kept only if it is clean. */
  async release(conn: NextHopConnection): Promise<void> {
    const phase = conn.phase;
    if (phase !== 'ready' && phase !== 'envelope') {
      conn.destroy();
      return;
    }
    if (!(await conn.reset())) {
      const cause = conn.failureCause;
      if (cause) this.observer?.failure(cause, 'RSET');
      conn.destroy();
      return;
    }
    if (this.closed || !conn.reusable || this.idle.length >= this.maxIdle) {
      conn.quit();
      return;
    }
    conn.lastUsed = Date.now();
    this.idle.push(conn);
  }

  /** While unhealthy, tries one connection in the background (rate-limited). */
  probe(): void {
    if (this.healthy || this.closed || Date.now() - this.lastProbe < PROBE_INTERVAL_MS) return;
    this.lastProbe = Date.now();
    this.open().then(
      (conn) => void this.release(conn),
      () => undefined,
    );
  }

  close(): void {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const c of this.idle.splice(0)) c.quit();
  }

  private get tlsKey(): string {
    return this.opts.tls?.key ?? 'none';
  }

  private async open(): Promise<NextHopConnection> {
    try {
      const conn = await NextHopConnection.open(this.opts);
      if (!this.healthy) this.observer?.recovered();
      this.refusedInARow = 0;
      return conn;
    } catch (err) {
      const e = err instanceof NextHopError ? err : new NextHopError('connect', (err as Error).message);
      if (e.kind === 'connect') this.refusedInARow++;
      this.observer?.failure(e, 'connect');
      throw e;
    }
  }

  private sweep(): void {
    const cutoff = Date.now() - this.idleTimeout;
    this.idle = this.idle.filter((c) => {
      if (c.usable && c.lastUsed > cutoff) return true;
      c.quit();
      return false;
    });
  }
}
