/*
 * Reuses next-hop connections across client sessions, as Postfix's own
 * connection cache does: opening a connection and saying EHLO costs two
 * round trips and a process slot at the next hop. Idle connections are
 * closed after `idleTimeout`, well under Postfix's smtpd_timeout, and at most
 * `maxIdle` are kept.
 */
import { NextHopConnection, type NextHopOptions } from './next-hop';

export class NextHopPool {
  private idle: NextHopConnection[] = [];
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly opts: NextHopOptions,
    private readonly maxIdle: number,
    private readonly idleTimeout: number,
  ) {
    this.sweeper = setInterval(() => this.sweep(), Math.max(1000, Math.min(idleTimeout, 10_000)));
    this.sweeper.unref();
  }

  /** A connection that is usable and outside any transaction. */
  async acquire(): Promise<{ conn: NextHopConnection; reused: boolean }> {
    while (this.idle.length) {
      const conn = this.idle.pop()!;
      if (conn.usable) return { conn, reused: true };
    }
    return { conn: await NextHopConnection.open(this.opts), reused: false };
  }

  /** Hands a connection back; it is kept only if it is clean. */
  async release(conn: NextHopConnection): Promise<void> {
    if (conn.inTransaction && !(await conn.reset())) {
      conn.destroy();
      return;
    }
    if (this.closed || !conn.usable || this.idle.length >= this.maxIdle) {
      conn.quit();
      return;
    }
    conn.lastUsed = Date.now();
    this.idle.push(conn);
  }

  close(): void {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const c of this.idle.splice(0)) c.quit();
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
