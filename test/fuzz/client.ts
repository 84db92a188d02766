/*
 * The fuzzing client: plays one SessionPlan against mailveil's SMTP port and
 * records what it saw. It follows the server's replies only where a real
 * client must (the body goes after a 354, never before, except in blind
 * mode), and it goes away on its own where the plan's cut says: at a byte
 * offset (mid-command, mid-body), or a few ms after writing MAIL, a RCPT,
 * DATA, part of the body or the final dot (while waiting for the reply).
 *
 * Every wait for a reply has a deadline; a reply that does not come in time
 * is a hang (invariant 3), and the client then gives up on the session.
 */
import { connect, type Socket } from 'node:net';
import type { Reply, SessionOutcome, SessionPlan, Step, TxOutcome, TxPlan } from './model';
import { wireBody } from './scenario';

/** Thrown inside the script when the session is over (cut, closed, deadline). */
class Over extends Error {
  constructor(readonly why: 'cut' | 'closed' | 'deadline') {
    super(why);
  }
}

export interface ClientOptions {
  port: number;
  host?: string;
  /** Longest wait for any one reply before it counts as a hang. */
  replyDeadlineMs: number;
  /** A dripping client not cut off (reply or close) within this long is a finding. */
  slowCutMs: number;
  /** Called as soon as a transaction's outcome is final (for the per-transaction checks). */
  onTx?: (tx: TxPlan, out: TxOutcome) => void;
  /** Keep a trace of the session (every write and reply, timed). */
  trace: boolean;
}

const TRACE_MAX = 80;

export class FuzzClient {
  private socket!: Socket;
  private buf = '';
  private lines: string[] = [];
  private replies: Reply[] = [];
  private waiter?: () => void;
  private closed = false;
  private closedBy?: 'client' | 'server';
  private written = 0;
  private cutDone = false;
  private readonly t0 = Date.now();
  private readonly trace: string[] = [];
  private elided = 0;
  /** A MAIL got 250 and its transaction has not ended yet (as far as this client knows). */
  private txOpen = false;
  readonly txs: { tx: TxPlan; out: TxOutcome }[] = [];
  private outcome: SessionOutcome;

  constructor(
    private readonly plan: SessionPlan,
    private readonly opts: ClientOptions,
  ) {
    this.outcome = { iteration: plan.iteration, startedAt: this.t0, endedAt: 0, end: 'client', trace: this.trace };
  }

  private note(s: string): void {
    if (!this.opts.trace) return;
    if (this.trace.length >= TRACE_MAX) this.trace.splice(10, 2, `... ${(this.elided += 2)} earlier line(s) left out ...`);
    this.trace.push(`+${Date.now() - this.t0}ms ${s}`);
  }

  async run(): Promise<SessionOutcome> {
    try {
      await this.open();
      for (const step of this.plan.steps) await this.step(step);
    } catch (err) {
      if (!(err instanceof Over)) {
        this.note(`client error: ${(err as Error).message}`);
        if (!this.closed) this.socket?.destroy();
      }
    }
    // Whatever happened, the server must close within the deadline once we are done.
    if (!this.closed) {
      if (this.closedBy === undefined && this.cutDone) {
        // A half-close: the server has to notice and close.
        await this.waitClosed();
      } else {
        this.closedBy ??= 'client';
        this.socket.destroy();
      }
    }
    this.outcome.endedAt = Date.now();
    this.outcome.end = this.outcome.hang ? 'deadline' : (this.closedBy ?? 'client');
    return this.outcome;
  }

  private async open(): Promise<void> {
    this.socket = connect({ port: this.opts.port, host: this.opts.host ?? '127.0.0.1' });
    this.socket.setNoDelay(true);
    this.socket.setEncoding('latin1');
    this.socket.on('data', (d: string) => this.onData(d));
    this.socket.on('error', (e) => {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ECONNREFUSED') this.outcome.refused = true;
      this.note(`socket error ${code ?? e.message}`);
    });
    this.socket.on('close', () => {
      this.closed = true;
      this.closedBy ??= 'server';
      this.note(`closed (${this.closedBy})`);
      this.wake();
    });
    if (this.plan.waitGreeting) {
      let g: Reply;
      try {
        g = await this.reply('greeting');
      } catch (err) {
        if (err instanceof Over && err.why === 'closed' && !this.outcome.refused) this.outcome.noGreeting = true;
        throw err;
      }
      if (g.code !== 220) throw new Over('closed');
    }
  }

  private onData(d: string): void {
    this.buf += d;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).replace(/\r$/, '');
      this.buf = this.buf.slice(nl + 1);
      this.lines.push(line);
      if (line[3] === '-') continue;
      const r: Reply = { code: Number(line.slice(0, 3)) || 0, text: this.lines.map((l) => l.slice(4)).join('\n') };
      this.lines = [];
      this.note(`< ${r.code} ${r.text.slice(0, 120).replace(/\n/g, ' | ')}`);
      this.replies.push(r);
      this.wake();
    }
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  /** The next reply; Over('closed') if the server closes first, Over('deadline') if none comes in time. */
  private async reply(what: string, deadlineMs = this.opts.replyDeadlineMs): Promise<Reply> {
    const until = Date.now() + deadlineMs;
    for (;;) {
      const r = this.replies.shift();
      if (r) return r;
      if (this.closed) throw new Over('closed');
      const left = until - Date.now();
      if (left <= 0) {
        this.outcome.hang = `no reply to ${what} within ${deadlineMs} ms`;
        this.note(this.outcome.hang);
        this.closedBy = 'client';
        this.socket.destroy();
        throw new Over('deadline');
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  private async waitClosed(): Promise<void> {
    const until = Date.now() + this.opts.replyDeadlineMs;
    while (!this.closed && Date.now() < until) {
      this.replies.length = 0;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, until - Date.now());
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    if (!this.closed) {
      this.outcome.hang = `server did not close within ${this.opts.replyDeadlineMs} ms of the client's half-close`;
      this.note(this.outcome.hang);
      this.closedBy = 'client';
      this.socket.destroy();
    }
  }

  /** Writes bytes, honouring a byte cut; resolves once the socket took them. */
  private async write(data: Buffer | string, label: string): Promise<void> {
    if (this.closed) throw new Over('closed');
    let buf = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
    const cut = this.plan.cut;
    let cutHere = false;
    if (cut?.kind === 'byte' && !this.cutDone && this.written + buf.length > cut.at) {
      buf = buf.subarray(0, cut.at - this.written);
      cutHere = true;
    }
    if (label || cutHere) this.note(`> ${label}${cutHere ? ` (cut after ${buf.length} bytes)` : ''}`);
    this.written += buf.length;
    if (buf.length) {
      const flushed = this.socket.write(buf);
      if (!flushed) await this.drained();
    }
    if (cutHere) await this.doCut(cut!.how, 0);
  }

  private drained(): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = () => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        this.closed ? reject(new Over('closed')) : resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  /** The plan's event cut, if this is its moment. */
  private async eventCut(event: 'mail' | 'rcpt' | 'data' | 'body' | 'dot'): Promise<void> {
    const cut = this.plan.cut;
    if (cut?.kind !== 'event' || cut.event !== event || this.cutDone) return;
    await this.doCut(cut.how, cut.delayMs);
  }

  private async doCut(how: 'destroy' | 'end', delayMs: number): Promise<never> {
    this.cutDone = true;
    if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
    this.note(`cut: ${how} after ${delayMs} ms`);
    if (!this.closed) {
      if (how === 'destroy') {
        this.closedBy = 'client';
        this.socket.destroy();
      } else {
        this.socket.end();
      }
    }
    throw new Over('cut');
  }

  private async step(s: Step): Promise<void> {
    switch (s.t) {
      case 'cmd': {
        await this.write(s.lines.map((l) => l + '\r\n').join(''), s.lines.map((l) => l.slice(0, 60)).join(' | '));
        // smtp-server answers every line it reads in command mode.
        const n = s.lines.reduce((a, l) => a + l.split(/\r?\n/).length, 0);
        for (let i = 0; i < n; i++) {
          const r = await this.reply(`"${s.lines[0].slice(0, 30)}"`);
          if (r.code === 250 && /^MAIL/i.test(s.lines[i] ?? '')) this.txOpen = true;
          // An envelope line with a control character in it must be refused (501), never cut short and accepted.
          if (r.code >= 200 && r.code < 300 && /^(MAIL FROM|RCPT TO):[^\r\n]*[\x00-\x08\x0b-\x1f\x7f]/i.test(s.lines[i] ?? '')) {
            (this.outcome.controlAccepted ??= []).push(`${JSON.stringify(s.lines[i].slice(0, 80))} got "${r.code} ${r.text.slice(0, 60)}"`);
          }
          if (/^(RSET|EHLO|HELO)/i.test(s.lines[i] ?? '') && r.code === 250) this.txOpen = false;
        }
        return;
      }
      case 'sleep':
        this.note(`sleep ${s.ms}`);
        await new Promise((r) => setTimeout(r, s.ms));
        if (this.closed) throw new Over('closed');
        return;
      case 'quit':
        await this.write('QUIT\r\n', 'QUIT');
        await this.reply('QUIT');
        return;
      case 'close':
        this.closedBy = 'client';
        this.socket.destroy();
        throw new Over('cut');
      case 'end':
        this.cutDone = true;
        this.socket.end();
        throw new Over('cut');
      case 'tx':
        return this.transaction(s);
    }
  }

  private async transaction(s: Extract<Step, { t: 'tx' }>): Promise<void> {
    const { tx, style } = s;
    const out: TxOutcome = { rcpt: [], dataSent: false, dotSent: false, awaitedFinal: false };
    this.txs.push({ tx, out });
    const mail = `MAIL FROM:<${tx.from}>${tx.mailParams}`;
    const rcpts = tx.rcpts.map((r) => `RCPT TO:<${r.addr}>${r.params}`);
    try {
      // A transaction left open (a refused DATA, a stray MAIL among the noise) would
      // make this MAIL a nested one, and what follows would land in that other
      // transaction: end it first, as a real client would.
      if (this.txOpen) {
        await this.write('RSET\r\n', 'RSET (end the open transaction)');
        await this.reply('RSET');
        this.txOpen = false;
      }
      if (style === 'blind') return await this.blind(s, out, mail, rcpts);
      if (style === 'pipelined') {
        const lines = [mail, ...rcpts];
        if (s.abandon === 'none') lines.push('DATA');
        out.dataSent = s.abandon === 'none';
        await this.write(lines.map((l) => l + '\r\n').join(''), `pipelined ${tx.token} MAIL+${rcpts.length} RCPT${out.dataSent ? '+DATA' : ''}`);
        await this.eventCut('mail');
        if (rcpts.length) await this.eventCut('rcpt');
        if (out.dataSent) await this.eventCut('data');
        out.mail = await this.reply(`MAIL ${tx.token}`);
        this.txOpen = out.mail.code === 250;
        for (let i = 0; i < rcpts.length; i++) out.rcpt[i] = await this.reply(`RCPT ${i} ${tx.token}`);
        if (out.dataSent) out.data = await this.reply(`DATA ${tx.token}`);
      } else {
        await this.write(mail + '\r\n', `MAIL ${tx.token}`);
        await this.eventCut('mail');
        out.mail = await this.reply(`MAIL ${tx.token}`);
        this.txOpen = out.mail.code === 250;
        for (let i = 0; i < rcpts.length; i++) {
          await this.write(rcpts[i] + '\r\n', `RCPT ${i} ${tx.token}`);
          await this.eventCut('rcpt');
          out.rcpt[i] = await this.reply(`RCPT ${i} ${tx.token}`);
        }
        if (s.abandon === 'none') {
          out.dataSent = true;
          await this.write('DATA\r\n', `DATA ${tx.token}`);
          await this.eventCut('data');
          out.data = await this.reply(`DATA ${tx.token}`);
        }
      }
      if (s.abandon !== 'none') {
        const line = s.abandon === 'rset' ? 'RSET' : s.abandon === 'quit' ? 'QUIT' : `MAIL FROM:<s2-${tx.token}@fuzz.test>`;
        await this.write(line + '\r\n', `abandon ${tx.token}: ${line}`);
        const r = await this.reply(`abandon ${line}`);
        if (s.abandon === 'mail') {
          // A nested MAIL is refused (or opens one if ours was refused); end it cleanly either way.
          await this.write('RSET\r\n', 'RSET');
          await this.reply('RSET');
        }
        if (s.abandon !== 'quit' && (s.abandon === 'mail' || r.code === 250)) this.txOpen = false;
        return;
      }
      if (out.data?.code !== 354) return;
      await this.body(s, out);
    } finally {
      this.opts.onTx?.(tx, out);
    }
  }

  private async body(s: Extract<Step, { t: 'tx' }>, out: TxOutcome): Promise<void> {
    const wire = wireBody(s.tx.content);
    if (s.style === 'drip') return this.drip(s, out, wire);
    const cut = this.plan.cut;
    const bodyCut = cut?.kind === 'event' && cut.event === 'body' && !this.cutDone;
    const points = [...s.bodyWrites];
    if (bodyCut && !points.length) points.push(Math.max(1, Math.floor(wire.length / 2)));
    let at = 0;
    const pieces: Buffer[] = [];
    for (const p of [...points, wire.length]) {
      pieces.push(wire.subarray(at, p));
      at = p;
    }
    let offset = 0;
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i];
      this.note(`> body ${s.tx.token} bytes ${offset}..${offset + piece.length} of ${wire.length}`);
      // Big bodies go in 64 KiB writes, with backpressure.
      for (let o = 0; o < piece.length; o += 65536) await this.write(piece.subarray(o, o + 65536), '');
      offset += piece.length;
      if (i < pieces.length - 1) {
        if (bodyCut) await this.eventCut('body');
        if (s.bodyGapMs) await new Promise((r) => setTimeout(r, s.bodyGapMs));
      }
    }
    out.dotSent = true;
    await this.eventCut('dot');
    out.awaitedFinal = true;
    out.final = await this.reply(`final dot ${s.tx.token}`);
    this.txOpen = false;
  }

  /** A few bytes at a time, 700 ms apart: mailveil must cut this client off (client_min_data_rate). */
  private async drip(s: Extract<Step, { t: 'tx' }>, out: TxOutcome, wire: Buffer): Promise<void> {
    const started = Date.now();
    let o = 0;
    while (o < wire.length - 3 && Date.now() - started < this.opts.slowCutMs + 2000) {
      if (this.replies.length || this.closed) {
        // Cut off (421 or similar): what we wanted.
        return;
      }
      await this.write(wire.subarray(o, o + 2), `drip ${s.tx.token} @${o}`);
      o += 2;
      await new Promise((r) => setTimeout(r, 700));
    }
    if (!this.replies.length && !this.closed && Date.now() - started >= this.opts.slowCutMs) {
      this.outcome.slowNotCut = `a client sending ~3 bytes/s in DATA was still connected after ${Date.now() - started} ms`;
    }
    if (this.closed) return;
    await this.write(wire.subarray(o), `drip ${s.tx.token} rest`);
    out.dotSent = true;
    out.awaitedFinal = true;
    out.final = await this.reply(`final dot ${s.tx.token} (drip)`);
    this.txOpen = false;
  }

  /** Everything in one write, then QUIT; the replies are sorted out afterwards. */
  private async blind(s: Extract<Step, { t: 'tx' }>, out: TxOutcome, mail: string, rcpts: string[]): Promise<void> {
    const head = [mail, ...rcpts, 'DATA'].map((l) => l + '\r\n').join('');
    out.dataSent = true;
    await this.write(Buffer.concat([Buffer.from(head, 'latin1'), wireBody(s.tx.content)]), `blind ${s.tx.token} MAIL..DATA+body+dot`);
    out.dotSent = true;
    await this.eventCut('dot');
    out.mail = await this.reply(`MAIL ${s.tx.token} (blind)`);
    for (let i = 0; i < rcpts.length; i++) out.rcpt[i] = await this.reply(`RCPT ${i} ${s.tx.token} (blind)`);
    out.data = await this.reply(`DATA ${s.tx.token} (blind)`);
    if (out.data.code === 354) {
      out.awaitedFinal = true;
      out.final = await this.reply(`final dot ${s.tx.token} (blind)`);
      this.txOpen = false;
      return;
    }
    // The DATA was refused, so the body was read as commands: one reply per line, then QUIT ends it.
    await this.write('QUIT\r\n', 'QUIT after refused blind DATA');
    await this.waitClosed();
    throw new Over('closed');
  }
}
