/*
 * A randomised next hop that records everything, for the fuzzer.
 *
 * Per connection (its own seeded stream): the greeting and the EHLO answer
 * may be slow, refused, dropped or never come; the extensions offered vary
 * (PIPELINING, XFORWARD, SIZE, 8BITMIME, SMTPUTF8, DSN...); an idle
 * connection may be closed, with or without a 421. Per transaction, the
 * plan the fuzzer made for it (found by the token in MAIL FROM) says how
 * MAIL, each RCPT, DATA and the final dot are answered, and whether the hop
 * answers early during the body or stops reading it.
 *
 * Like a real server it handles input strictly in order: while a reply is
 * delayed, whatever the relay sent behind it waits in the buffer. It is
 * strict about what it is sent, and reports as a violation:
 *  - a command that is not one mailveil sends, or that names evil.test or a
 *    body marker (a line from a client's message body: invariant 2);
 *  - a command out of sequence (RCPT without MAIL, DATA without an accepted
 *    recipient, a nested MAIL);
 *  - anything sent after DATA before the 354, or after the final dot before
 *    its reply (the relay lost track of its replies), a command pipelined
 *    without PIPELINING, or RSET while a reply is still due;
 *  - message bytes that are not CRLF-clean, or that are not a prefix of the
 *    message mailveil had to send (something spliced into the body stream).
 * A message counts as committed when the 2xx to its final dot is written on
 * a connection that is still open.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { Rng, derive } from './rng';
import { BODY_MARK, EVIL_DOMAIN, tokenInAddress, type HopReply, type HopTxPlan, type Violation } from './model';

export interface HopCommit {
  token?: string;
  from: string;
  rcpts: string[];
  /** The message with dot-stuffing removed, ending with the CRLF before the dot. */
  data: Buffer;
  connId: number;
  at: number;
}

export interface HopHooks {
  /** The plan of the transaction with this token, if the fuzzer made it. */
  plan(token: string): HopTxPlan | undefined;
  /** What the hop must receive for this token (dots removed), if known exactly. */
  expected(token: string, verdictLine: string | undefined): Buffer | undefined;
  violation(v: Violation): void;
  commit(c: HopCommit): void;
}

const ALLOWED = new Set(['EHLO', 'HELO', 'XFORWARD', 'MAIL', 'RCPT', 'DATA', 'RSET', 'NOOP', 'QUIT']);
const HOP_STREAM = 0x4f50;
const CRLF_DOT_CRLF = Buffer.from('\r\n.\r\n');
const TRACE_MAX = 120;
/** How long "stop reading for good" lasts: longer than any deadline the relay may take to give up. */
export const FOREVER_MS = 5000;
/** After reading again, how long the hop gives the relay's hang-up to show (the bytes before it are read first). */
const RESUME_GRACE_MS = 2000;

type ConnState = 'greeting' | 'ready' | 'mail' | 'data' | 'dot' | 'closed';

export class FuzzHop {
  readonly conns = new Set<HopConn>();
  private nextId = 0;
  private server!: Server;
  port = 0;

  constructor(
    private readonly seed: number,
    readonly hooks: HopHooks,
  ) {}

  async start(): Promise<void> {
    this.server = createServer({ noDelay: true }, (sock) => {
      const conn = new HopConn(this, this.nextId++, sock, new Rng(derive(this.seed, HOP_STREAM, this.nextId)));
      this.conns.add(conn);
      conn.run().catch((err) => {
        this.hooks.violation({ inv: 'P', kind: 'hop-internal-error', detail: `fuzz hop crashed: ${(err as Error).stack}` });
        sock.destroy();
      });
    });
    this.server.maxConnections = 5000;
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
  }

  /** Connections that are inside a transaction (MAIL accepted, data, or waiting to answer the dot). */
  openTransactions(): { id: number; token?: string; state: ConnState; idleMs: number; trace: string[] }[] {
    const now = Date.now();
    return [...this.conns]
      .filter((c) => !c.paused && (c.state === 'mail' || c.state === 'data' || c.state === 'dot'))
      .map((c) => ({ id: c.id, token: c.txToken, state: c.state, idleMs: now - c.lastActivity, trace: c.trace }));
  }

  /**
   * Connections where something may still happen: a reply of ours is being
   * delayed or withheld (the relay must answer that with its deadline), a
   * greeting is not out yet, or bytes came in or went out less than `quietMs`
   * ago. A batch is settled only once none is left, so a relay that acts
   * after its client has gone (a MAIL whose reply comes later) is seen.
   */
  busy(quietMs: number): { id: number; why: string; trace: string[] }[] {
    const now = Date.now();
    const out: { id: number; why: string; trace: string[] }[] = [];
    for (const c of this.conns) {
      const why = c.paused
        ? 'not reading (a hung next hop: the relay has to give up on it)'
        : c.waiting ? `waiting to answer ${c.waiting}` : c.state === 'greeting' ? 'greeting not sent' : now - c.lastActivity < quietMs ? 'active' : undefined;
      if (why) out.push({ id: c.id, why, trace: c.trace });
    }
    return out;
  }

  /** Traces of the connections that carried `token` (for a violation report). */
  tracesFor(token: string): string[] {
    const out: string[] = [];
    for (const c of [...this.recent, ...this.conns]) if (c.tokens.has(token)) out.push(`hop conn ${c.id}:`, ...c.trace.map((l) => '  ' + l));
    return out;
  }

  /** The last closed connections, kept for traces. */
  readonly recent: HopConn[] = [];

  remember(c: HopConn): void {
    this.conns.delete(c);
    this.recent.push(c);
    if (this.recent.length > 400) this.recent.splice(0, 100);
  }

  async close(): Promise<void> {
    for (const c of this.conns) c.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

class HopConn {
  state: ConnState = 'greeting';
  lastActivity = Date.now();
  /** Set while one of our replies is delayed or withheld: what it answers. */
  waiting?: string;
  txToken?: string;
  readonly tokens = new Set<string>();
  readonly trace: string[] = [];
  private readonly t0 = Date.now();
  private buf: Buffer = Buffer.alloc(0);
  /** Absolute stream offset of buf[0]. */
  private bufAt = 0;
  private received = 0;
  /** For each 'data' event: the stream offset it ended at and how many replies had been written by then. */
  private arrivals: { end: number; sent: number }[] = [];
  private repliesSent = 0;
  /** What each reply slot answers, in order (slot 0: the greeting). */
  private slots: string[] = ['greeting'];
  private wake?: () => void;
  private closed = false;
  private ext = new Set<string>();
  private tx?: { token?: string; from: string; plan?: HopTxPlan; rcpts: string[] };
  private resumeTimer?: NodeJS.Timeout;
  /** Not reading (a plan's stop-reading); the relay has to give up on its own. */
  paused = false;
  /** Stopped reading for good: nothing read afterwards is answered or committed. */
  private dead = false;
  /** The relay closed its side (EOF seen). */
  private peerEnded = false;

  constructor(
    private readonly hop: FuzzHop,
    readonly id: number,
    private readonly sock: Socket,
    private readonly rng: Rng,
  ) {
    sock.on('data', (d: Buffer) => {
      if (this.dead) {
        // A hung hop only looks for the relay's hang-up; what comes in is dropped.
        this.received += d.length;
        this.lastActivity = Date.now();
        return this.poke();
      }
      this.received += d.length;
      this.arrivals.push({ end: this.received, sent: this.repliesSent });
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      this.lastActivity = Date.now();
      this.poke();
    });
    sock.on('error', () => undefined);
    sock.on('end', () => {
      this.peerEnded = true;
      this.poke();
    });
    sock.on('close', () => {
      this.closed = true;
      this.note('closed');
      clearTimeout(this.resumeTimer);
      this.poke();
      this.state = 'closed';
      this.hop.remember(this);
    });
  }

  destroy(): void {
    this.sock.destroy();
  }

  private elided = 0;

  private note(s: string): void {
    if (this.trace.length >= TRACE_MAX) {
      // Keep the start (greeting, EHLO) and the most recent lines.
      this.trace.splice(10, 2, `... ${(this.elided += 2)} earlier line(s) left out ...`);
    }
    this.trace.push(`+${Date.now() - this.t0}ms ${s}`);
  }

  private poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private wait(ms = Infinity): Promise<void> {
    return new Promise((resolve) => {
      const t = ms === Infinity ? undefined : setTimeout(resolve, ms);
      this.wake = () => {
        if (t) clearTimeout(t);
        resolve();
      };
    });
  }

  private violation(v: Omit<Violation, 'trace'>): void {
    this.hop.hooks.violation({ ...v, trace: [`hop conn ${this.id}:`, ...this.trace.map((l) => '  ' + l)] });
  }

  /** Sends a planned reply; false once the connection is gone (or the plan hung up). */
  private async send(r: HopReply, what: string): Promise<boolean> {
    if (r.delayMs === Infinity) {
      this.note(`stall (no reply to ${what})`);
      this.waiting = what;
      while (!this.closed) await this.wait();
      this.waiting = undefined;
      return false;
    }
    if (r.delayMs > 0) {
      this.waiting = what;
      const until = Date.now() + r.delayMs;
      while (!this.closed && Date.now() < until) await this.sleep(until - Date.now());
      this.waiting = undefined;
    }
    if (this.closed) return false;
    this.lastActivity = Date.now();
    if (r.lines.length) {
      const text = r.lines.map((l, i) => (i < r.lines.length - 1 ? l.replace(/^(\d{3}) /, '$1-') : l) + '\r\n').join('');
      this.note(`< ${text.trim().replace(/\r\n/g, ' | ').slice(0, 140)}${r.delayMs ? ` (after ${r.delayMs} ms)` : ''}`);
      if (r.splitMs !== undefined && text.length > 4) {
        this.sock.write(text.slice(0, 3));
        await this.sleep(r.splitMs);
        if (this.closed) return false;
        this.sock.write(text.slice(3));
      } else {
        this.sock.write(text);
      }
      this.repliesSent++;
    }
    if (r.close) {
      this.note(`hang up after ${what}`);
      this.sock.end();
      this.sock.destroySoon?.();
      setTimeout(() => this.sock.destroy(), 50).unref();
      this.closed = true;
      return false;
    }
    return true;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
  }

  /** Replies owed when the unit ending at stream offset `end` arrived, and what they answer. */
  private owedAt(end: number, slotsBefore: number): string[] {
    const a = this.arrivals.find((x) => x.end >= end);
    const sent = a ? a.sent : this.repliesSent;
    return this.slots.slice(sent, slotsBefore);
  }

  private consume(n: number): void {
    this.buf = this.buf.subarray(n);
    this.bufAt += n;
    while (this.arrivals.length > 1 && this.arrivals[0].end <= this.bufAt) this.arrivals.shift();
  }

  private async readLine(): Promise<{ line: string; owed: string[] } | null> {
    for (;;) {
      const nl = this.buf.indexOf(0x0a);
      if (nl >= 0) {
        const raw = this.buf.subarray(0, nl + 1).toString('latin1');
        const owed = this.owedAt(this.bufAt + nl + 1, this.slots.length);
        this.consume(nl + 1);
        if (!raw.endsWith('\r\n')) this.violation({ inv: 'P', kind: 'hop-bare-lf-command', detail: `command line ended by a bare LF: ${JSON.stringify(raw.slice(0, 80))}` });
        return { line: raw.replace(/\r?\n$/, ''), owed };
      }
      if (this.buf.length > 4096) {
        this.violation({ inv: 'P', kind: 'hop-command-too-long', detail: `more than 4096 bytes without a line end: ${JSON.stringify(this.buf.subarray(0, 80).toString('latin1'))}` });
        this.destroy();
      }
      if (this.closed) return null;
      await this.wait();
    }
  }

  private ehloReply(): HopReply {
    const exts = ['hop.fuzz.test'];
    if (this.rng.chance(0.85)) exts.push('PIPELINING');
    if (this.rng.chance(0.8)) exts.push('SIZE 10240000');
    if (this.rng.chance(0.9)) exts.push('8BITMIME');
    if (this.rng.chance(0.8)) exts.push('SMTPUTF8');
    if (this.rng.chance(0.7)) exts.push('DSN');
    if (this.rng.chance(0.8)) exts.push('ENHANCEDSTATUSCODES');
    if (this.rng.chance(0.75)) exts.push(this.rng.pick(['XFORWARD NAME ADDR PROTO HELO', 'XFORWARD NAME ADDR PROTO HELO SOURCE PORT IDENT', 'XFORWARD ADDR']));
    this.ext = new Set(exts.slice(1).map((e) => e.split(' ')[0]));
    return { lines: exts.map((e) => `250 ${e}`), delayMs: this.rng.chance(0.05) ? this.rng.range(1, 30) : 0, close: false };
  }

  async run(): Promise<void> {
    const rng = this.rng;
    const greeting = rng.weighted<() => HopReply>([
      [960, () => ({ lines: rng.chance(0.1) ? ['220-hop.fuzz.test', '220 ESMTP fuzz'] : ['220 hop.fuzz.test ESMTP'], delayMs: rng.chance(0.05) ? rng.range(1, 40) : 0, close: false })],
      [8, () => ({ lines: ['421 4.3.2 hop busy'], delayMs: 0, close: true })],
      [5, () => ({ lines: ['554 5.3.2 hop refuses'], delayMs: 0, close: false })],
      [5, () => ({ lines: [], delayMs: rng.range(0, 10), close: true })],
      [4, () => ({ lines: [], delayMs: Infinity, close: false })],
      [18, () => ({ lines: ['220 hop.fuzz.test slow'], delayMs: rng.range(200, 900), close: false })],
    ])();
    if (!(await this.send(greeting, 'greeting'))) return;
    this.state = 'ready';
    const ehloFault = rng.weighted<string>([
      [980, 'none'],
      [10, 'ehlo-refused'],
      [5, 'both-refused'],
      [5, 'stall'],
    ]);
    for (;;) {
      const got = await this.readLine();
      if (!got) return;
      const { line, owed } = got;
      this.lastActivity = Date.now();
      this.note(`> ${line.slice(0, 140)}`);
      const verb = (/^[A-Za-z]+/.exec(line)?.[0] ?? '').toUpperCase();
      this.checkCommand(line, verb, owed);
      this.slots.push(verb || '?');
      let go: boolean;
      switch (verb) {
        case 'EHLO':
          if (ehloFault === 'stall') go = await this.send({ lines: [], delayMs: Infinity, close: false }, 'EHLO');
          else if (ehloFault !== 'none') go = await this.send({ lines: ['502 5.5.1 EHLO not here'], delayMs: 0, close: false }, 'EHLO');
          else go = await this.send(this.ehloReply(), 'EHLO');
          break;
        case 'HELO':
          go = await this.send({ lines: [ehloFault === 'both-refused' ? '550 5.7.1 go away' : '250 hop.fuzz.test'], delayMs: 0, close: false }, 'HELO');
          break;
        case 'XFORWARD':
          if (this.tx) this.violation({ inv: 'P', kind: 'hop-xforward-in-transaction', detail: `XFORWARD inside a transaction: ${line}` });
          go = await this.send({ lines: [rng.chance(0.01) ? '550 5.7.0 XFORWARD not allowed' : '250 2.0.0 Ok'], delayMs: 0, close: false }, 'XFORWARD');
          break;
        case 'MAIL':
          go = await this.mail(line);
          break;
        case 'RCPT':
          go = await this.rcpt(line);
          break;
        case 'DATA':
          go = await this.data();
          break;
        case 'RSET':
          this.endTx('RSET');
          go = await this.send({ lines: [rng.chance(0.003) ? '421 4.3.2 hop closing' : '250 2.0.0 Ok'], delayMs: 0, close: false }, 'RSET');
          this.maybeIdleClose();
          break;
        case 'NOOP':
          go = await this.send({ lines: ['250 2.0.0 Ok'], delayMs: 0, close: false }, 'NOOP');
          break;
        case 'QUIT':
          this.endTx('QUIT');
          go = await this.send({ lines: ['221 2.0.0 Bye'], delayMs: 0, close: true }, 'QUIT');
          break;
        default:
          go = await this.send({ lines: ['500 5.5.2 Error: command not recognized'], delayMs: 0, close: false }, verb);
      }
      if (!go) {
        if (!this.closed) while (!this.closed) await this.wait();
        return;
      }
    }
  }

  private checkCommand(line: string, verb: string, owed: string[]): void {
    const lower = line.toLowerCase();
    if (lower.includes(EVIL_DOMAIN) || lower.includes(BODY_MARK)) {
      this.violation({ inv: '2', kind: 'foreign-command-at-hop', token: this.txToken, detail: `the next hop received a line from a message body as a command: ${JSON.stringify(line.slice(0, 120))}` });
    } else if (!ALLOWED.has(verb)) {
      this.violation({ inv: '2', kind: 'unknown-command-at-hop', token: this.txToken, detail: `the next hop received a command mailveil never sends: ${JSON.stringify(line.slice(0, 120))}` });
    }
    if (!owed.length) return;
    const pipelining = this.ext.has('PIPELINING');
    let kind: string | undefined;
    if (owed.includes('greeting')) kind = 'hop-command-before-greeting';
    else if (owed.includes('DATA') || owed.includes('DOT')) kind = 'hop-command-while-data-reply-due';
    else if (!pipelining) kind = 'hop-pipelined-without-pipelining';
    else if (verb === 'RSET' || owed.includes('RSET')) kind = 'hop-rset-while-reply-due';
    else if (verb === 'DATA' || owed.includes('EHLO') || owed.includes('HELO')) kind = 'hop-pipelined-out-of-group';
    if (kind) {
      this.violation({
        inv: 'P',
        kind,
        token: this.txToken,
        detail: `${verb} arrived while the hop still owed replies to ${owed.join(', ')} (the relay is out of step with its replies)`,
      });
    }
  }

  private endTx(why: string): void {
    if (this.tx && this.state !== 'ready') this.note(`transaction ${this.tx.token ?? '?'} ended by ${why}`);
    this.tx = undefined;
    this.txToken = undefined;
    if (this.state !== 'closed') this.state = 'ready';
  }

  /** Sometimes an idle connection goes away by itself, as a restarting next hop's would. */
  private maybeIdleClose(): void {
    if (!this.rng.chance(0.015)) return;
    const after = this.rng.range(0, 40);
    const say421 = this.rng.chance(0.5);
    const seen = this.received;
    setTimeout(() => {
      if (this.closed || this.state !== 'ready' || this.received !== seen) return;
      this.note(`idle close${say421 ? ' with 421' : ''}`);
      if (say421) this.sock.write('421 4.4.2 hop.fuzz.test idle timeout\r\n');
      this.sock.end();
      setTimeout(() => this.sock.destroy(), 50).unref();
      // We are gone: a command that crosses our 421 on the wire is the relay's
      // next one, answered by that 421; nothing after it is read or judged.
      this.closed = true;
      this.poke();
    }, after).unref();
  }

  private async mail(line: string): Promise<boolean> {
    if (this.tx) {
      this.violation({ inv: 'P', kind: 'hop-nested-mail', token: this.txToken, detail: `MAIL inside an open transaction (${this.txToken ?? 'no token'}): ${line.slice(0, 100)}` });
      return this.send({ lines: ['503 5.5.1 Error: nested MAIL command'], delayMs: 0, close: false }, 'MAIL');
    }
    const t = tokenInAddress(line);
    const plan = t ? this.hop.hooks.plan(t.token) : undefined;
    if (t) this.tokens.add(t.token);
    const r = plan?.mail ?? { lines: ['250 2.1.0 Ok'], delayMs: 0, close: false };
    const accepted = r.lines.length > 0 && r.lines[r.lines.length - 1].startsWith('2') && r.delayMs !== Infinity;
    if (accepted) {
      // A transaction is open from the moment we decide to accept, whether or not the reply gets out.
      this.tx = { token: t?.token, from: line, plan, rcpts: [] };
      this.txToken = t?.token;
      this.state = 'mail';
    }
    const go = await this.send(r, 'MAIL');
    return go;
  }

  private async rcpt(line: string): Promise<boolean> {
    if (!this.tx) {
      this.violation({ inv: 'P', kind: 'hop-rcpt-without-mail', detail: `RCPT without an accepted MAIL: ${line.slice(0, 100)}` });
      return this.send({ lines: ['503 5.5.1 Error: need MAIL command'], delayMs: 0, close: false }, 'RCPT');
    }
    const t = tokenInAddress(line);
    if (t && this.tx.token && t.token !== this.tx.token) {
      this.violation({ inv: '1', kind: 'hop-rcpt-of-another-transaction', token: this.tx.token, detail: `RCPT for ${t.token} inside the transaction of ${this.tx.token}: ${line.slice(0, 100)}` });
    }
    const r = (t?.rcpt !== undefined ? this.tx.plan?.rcpt[t.rcpt] : undefined) ?? { lines: ['250 2.1.5 Ok'], delayMs: 0, close: false };
    const go = await this.send(r, 'RCPT');
    if (go && r.lines.length && r.lines[r.lines.length - 1].startsWith('2') && this.tx) this.tx.rcpts.push(line);
    return go;
  }

  private async data(): Promise<boolean> {
    if (!this.tx || !this.tx.rcpts.length) {
      this.violation({ inv: 'P', kind: 'hop-data-without-recipient', token: this.txToken, detail: `DATA with ${this.tx ? 'no accepted recipient' : 'no transaction'}` });
      return this.send({ lines: [this.tx ? '554 5.5.1 Error: no valid recipients' : '503 5.5.1 Error: need RCPT command'], delayMs: 0, close: false }, 'DATA');
    }
    const tx = this.tx;
    const plan = tx.plan;
    const r = plan?.data ?? { lines: ['354 End data with <CR><LF>.<CR><LF>'], delayMs: 0, close: false };
    if (!(await this.send(r, 'DATA'))) return false;
    if (!r.lines[r.lines.length - 1].startsWith('354')) return true;
    this.state = 'data';
    // Body bytes must not arrive before our 354 went out.
    const dataSlot = this.slots.length;
    const body = plan?.body ?? {};
    let premature = false;
    let stopped = false;
    let checkedStart = false;
    let searched = 0;
    for (;;) {
      // The end of data: CRLF . CRLF, or "." CRLF as the very first line.
      let end = -1;
      if (this.buf.length >= 3 && this.buf[0] === 0x2e && this.buf[1] === 0x0d && this.buf[2] === 0x0a) end = 0;
      else {
        const i = this.buf.indexOf(CRLF_DOT_CRLF, Math.max(0, searched - 4));
        if (i >= 0) end = i + 2;
      }
      searched = this.buf.length;
      if (!checkedStart && this.buf.length) {
        checkedStart = true;
        const owed = this.owedAt(this.bufAt + 1, dataSlot);
        if (owed.length) this.violation({ inv: 'P', kind: 'hop-body-before-354', token: tx.token, detail: `message bytes arrived before the 354 was sent (owed: ${owed.join(', ')})` });
      }
      const have = end >= 0 ? end : this.buf.length;
      if (!premature && body.prematureAt !== undefined && have >= body.prematureAt && body.premature) {
        premature = true;
        this.note(`premature reply after ${have} body bytes`);
        // This reply is the transaction's answer: the one the final dot would have had.
        this.slots.push('DOT');
        if (!(await this.send(body.premature, 'body (premature)'))) {
          this.abandoned(tx.token, this.buf.subarray(0, have));
          return false;
        }
      }
      if (!stopped && body.stopReadingAt !== undefined && have >= body.stopReadingAt && end < 0) {
        stopped = true;
        this.stopReading(body.stopReadingMs ?? 0);
      }
      if (this.dead) {
        while (!this.closed && !this.peerEnded) await this.wait();
        this.note(`hung: ${this.received - this.bufAt} bytes came in, none of it counts`);
        return false;
      }
      if (end >= 0) {
        const raw = this.buf.subarray(0, end);
        this.consume(end + 3);
        if (!premature) this.slots.push('DOT');
        this.state = 'dot';
        return this.dot(tx, raw, premature);
      }
      if (this.closed) {
        this.note(`closed in the body after ${this.buf.length} bytes`);
        this.abandoned(tx.token, this.buf);
        return false;
      }
      await this.wait();
    }
  }

  /**
   * Stops reading. "For good" is a long pause (FOREVER_MS): by then the relay
   * must have given up on this connection (its write or data deadline), which
   * we see as soon as we read again.
   */
  private stopReading(ms: number): void {
    const forever = ms === Infinity;
    const pause = forever ? FOREVER_MS : ms;
    this.note(`stop reading for ${forever ? 'good' : `${ms} ms`}`);
    this.sock.pause();
    this.paused = forever;
    if (forever) {
      // A hung next hop: whatever comes after this never counts (no reply, no
      // commit), even once we read again to see whether the relay hung up.
      this.dead = true;
    }
    this.resumeTimer = setTimeout(() => {
      this.note('read again');
      this.sock.resume();
      if (!forever) return;
      // Whatever the relay wrote before it gave up is read first; its hang-up (EOF) comes after.
      const until = Date.now() + RESUME_GRACE_MS;
      const check = () => {
        if (this.closed || this.peerEnded) {
          this.paused = false;
          return;
        }
        if (Date.now() < until) {
          setTimeout(check, 50).unref();
          return;
        }
        this.paused = false;
        this.violation({
          inv: '3',
          kind: 'relay-kept-a-hop-that-stopped-reading',
          token: this.txToken,
          detail: `the next hop stopped reading the message for ${FOREVER_MS} ms and the relay still had the connection open ${RESUME_GRACE_MS} ms after it read again (no write or data deadline)`,
        });
        this.destroy();
      };
      check();
    }, pause);
    this.resumeTimer.unref();
  }

  /** Unstuffs the message bytes; reports a bare CR or LF, and says whether they differ from what mailveil had to send. */
  private unstuff(token: string | undefined, raw: Buffer, complete: boolean): { data: Buffer; mismatch?: string } {
    const text = raw.toString('latin1');
    // Only whole lines count for a partial body.
    const usable = complete ? text : text.slice(0, text.lastIndexOf('\r\n') + 2);
    const lines = usable.split('\r\n');
    lines.pop();
    const out: string[] = [];
    let dirty: string | undefined;
    for (const l of lines) {
      if (dirty === undefined && /[\r\n]/.test(l)) dirty = l;
      out.push(l.startsWith('.') ? l.slice(1) : l);
    }
    if (dirty !== undefined) {
      this.violation({ inv: 'P', kind: 'hop-data-not-crlf-clean', token, detail: `a bare CR or LF reached the next hop inside the message: ${JSON.stringify(dirty.slice(0, 100))}` });
    }
    const data = Buffer.from(out.length ? out.join('\r\n') + '\r\n' : '', 'latin1');
    if (!token || !data.length) return { data };
    const verdictLine = /^X-Mailveil-Verdict:[^\r\n]*/i.exec(data.toString('latin1'))?.[0];
    const want = this.hop.hooks.expected(token, verdictLine);
    if (!want) return { data };
    const n = complete ? Math.max(want.length, data.length) : data.length;
    const a = data.subarray(0, n);
    const b = want.subarray(0, n);
    if (a.equals(b)) return { data };
    const at = firstDiff(a, b);
    return {
      data,
      mismatch: `${complete ? 'the message' : 'the partial message'} at the next hop (${data.length} bytes, expected ${want.length}) differs at byte ${at}: it has ${JSON.stringify(a.subarray(at, at + 60).toString('latin1'))}, expected ${JSON.stringify(b.subarray(at, at + 60).toString('latin1'))}`,
    };
  }

  /** A body that never got its final dot: whatever arrived must be a prefix of the real message. */
  private abandoned(token: string | undefined, raw: Buffer): void {
    this.state = 'closed';
    const { mismatch } = this.unstuff(token, raw, false);
    if (mismatch) this.violation({ inv: '2', kind: 'hop-body-stream-spliced', token, detail: mismatch });
  }

  private async dot(tx: NonNullable<HopConn['tx']>, raw: Buffer, premature: boolean): Promise<boolean> {
    const { data, mismatch } = this.unstuff(tx.token, raw, true);
    this.note(`final dot: ${raw.length} bytes`);
    if (premature) {
      // We already gave our answer; a relay that still sends the dot is tolerated, nothing is committed.
      this.endTx('premature reply');
      return true;
    }
    const r = tx.plan?.dot ?? { lines: ['250 2.0.0 Ok: queued'], delayMs: 0, close: false };
    const ok = r.lines.length > 0 && r.lines[r.lines.length - 1].startsWith('2');
    // A committed message is compared by the ledger; one we refuse must still be what mailveil had to send.
    if (mismatch && !ok) this.violation({ inv: '2', kind: 'hop-body-stream-spliced', token: tx.token, detail: mismatch });
    if (r.delayMs === Infinity) return this.send(r, 'dot');
    if (r.delayMs > 0) {
      this.waiting = 'dot';
      const until = Date.now() + r.delayMs;
      while (!this.closed && Date.now() < until) await this.sleep(until - Date.now());
      this.waiting = undefined;
    }
    if (this.closed) {
      this.note('the relay went away before we answered the dot: nothing committed');
      return false;
    }
    if (ok) this.hop.hooks.commit({ token: tx.token, from: tx.from, rcpts: tx.rcpts, data, connId: this.id, at: Date.now() });
    this.endTx('dot');
    const go = await this.send({ ...r, delayMs: 0 }, 'dot');
    if (go) this.maybeIdleClose();
    return go;
  }
}

export function firstDiff(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}
