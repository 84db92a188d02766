/*
 * One SMTP client connection to the next hop (RFC 5321), driven step by step:
 * XFORWARD, MAIL and each RCPT are sent when our own client sends them, so
 * the next hop's per-recipient answer reaches our client at RCPT time, and
 * the final "." is written only after the whole message body stream ended
 * without error. If the body fails, the connection is destroyed instead: the
 * next hop then discards the half transaction (guarantee 2).
 *
 * Why not nodemailer's SMTPConnection: its send() takes the envelope as one
 * unit (no XFORWARD, one NOTIFY/ORCPT for all recipients, no SMTPUTF8 or
 * per-RCPT parameters, recipient answers only after the fact), which cannot
 * keep the envelope transparent nor answer RCPT with the next hop's reply.
 *
 * Limits: a reply line is at most MAX_REPLY_BYTES; every wait has a timeout.
 */
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import { parseReply, type Reply } from './reply';

const MAX_REPLY_BYTES = 64 * 1024;
const END_OF_DATA = Buffer.from('.\r\n');

export type NextHopFailure = 'connect' | 'timeout' | 'closed' | 'protocol' | 'aborted';

export class NextHopError extends Error {
  readonly code = 'MV_NEXT_HOP';
  constructor(
    readonly kind: NextHopFailure,
    message: string,
  ) {
    super(message);
  }
}

export interface NextHopOptions {
  host: string;
  port: number;
  /** Name we give in EHLO. */
  helo: string;
  connectTimeout: number;
  commandTimeout: number;
  /** Time allowed for the reply to the final dot (RFC 5321 4.5.3.2.6 suggests 10 minutes). */
  dataTimeout: number;
}

/** The connection settings for the configured next hop, in one place for serve, release and the API. */
export function nextHopOptions(config: {
  next_hop: { host: string; port: number };
  hostname: string;
  timeouts: { next_hop_connect: number; next_hop_command: number; next_hop_data: number };
}): NextHopOptions {
  return {
    host: config.next_hop.host,
    port: config.next_hop.port,
    helo: config.hostname,
    connectTimeout: config.timeouts.next_hop_connect,
    commandTimeout: config.timeouts.next_hop_command,
    dataTimeout: config.timeouts.next_hop_data,
  };
}

interface Waiter {
  resolve(r: Reply): void;
  reject(e: Error): void;
}

export class NextHopConnection {
  /** EHLO keywords (upper case) and their parameters. */
  readonly extensions = new Map<string, string>();
  /** True between an accepted MAIL and the end of the transaction. */
  inTransaction = false;
  lastUsed = Date.now();
  /** Body bytes written by the last data() call. */
  dataBytes = 0;
  private partial = '';
  private lines: string[] = [];
  private rawLastReply: string[] = [];
  private waiter?: Waiter;
  private failure?: NextHopError;
  /** Set while the body streams: a reply then is the next hop ending the transaction early. */
  private streaming = false;
  private earlyReply?: Reply;
  /** Replies owed for commands already written (the greeting counts as one). */
  private owed = 1;
  /** Owed replies that arrived before anyone read them (pipelining). */
  private arrived: Reply[] = [];

  private constructor(
    private readonly socket: Socket,
    private readonly opts: NextHopOptions,
  ) {
    socket.setEncoding('utf8');
    socket.setNoDelay(true);
    socket.on('data', (d: string) => this.onData(d));
    socket.on('error', (err) => this.fail(new NextHopError('closed', `next hop connection error: ${err.message}`)));
    socket.on('close', () => this.fail(new NextHopError('closed', 'next hop closed the connection')));
  }

  /** Connects, reads the greeting and says EHLO. */
  static async open(opts: NextHopOptions): Promise<NextHopConnection> {
    const socket = connect({ host: opts.host, port: opts.port });
    const conn = new NextHopConnection(socket, opts);
    const timer = setTimeout(() => conn.fail(new NextHopError('timeout', 'timed out connecting to next hop')), opts.connectTimeout);
    try {
      await Promise.race([
        once(socket, 'connect'),
        once(socket, 'close').then(() => {
          throw conn.failure ?? new NextHopError('connect', 'next hop refused the connection');
        }),
      ]);
    } catch (err) {
      clearTimeout(timer);
      conn.destroy();
      const e = err as NodeJS.ErrnoException;
      throw e instanceof NextHopError ? e : new NextHopError('connect', `cannot connect to next hop: ${e.code ?? e.message}`);
    }
    clearTimeout(timer);
    const greeting = await conn.read(opts.commandTimeout);
    if (greeting.code !== 220) {
      conn.quit();
      throw Object.assign(new NextHopError('protocol', 'next hop did not greet with 220'), { reply: greeting });
    }
    let ehlo = await conn.command(`EHLO ${opts.helo}`);
    if (ehlo.code !== 250) ehlo = await conn.command(`HELO ${opts.helo}`);
    if (ehlo.code !== 250) {
      conn.quit();
      throw Object.assign(new NextHopError('protocol', 'next hop refused EHLO and HELO'), { reply: ehlo });
    }
    return conn;
  }

  get usable(): boolean {
    return !this.failure && !this.socket.destroyed;
  }

  supports(keyword: string): boolean {
    return this.extensions.has(keyword.toUpperCase());
  }

  /** Sends one command line and waits for its reply. */
  async command(line: string, timeout = this.opts.commandTimeout): Promise<Reply> {
    if (/[\r\n]/.test(line)) throw new NextHopError('protocol', 'refusing to send a command with a line break');
    this.write(line + '\r\n', 1);
    const reply = await this.read(timeout);
    if (/^EHLO /i.test(line) && reply.code === 250) this.recordExtensions();
    return reply;
  }

  /**
   * Several commands in one write when the next hop offers PIPELINING
   * (RFC 2920), one by one otherwise; the replies come back in order.
   */
  async commands(lines: string[]): Promise<Reply[]> {
    if (lines.length < 2 || !this.supports('PIPELINING')) {
      const out: Reply[] = [];
      for (const l of lines) out.push(await this.command(l));
      return out;
    }
    for (const l of lines) if (/[\r\n]/.test(l)) throw new NextHopError('protocol', 'refusing to send a command with a line break');
    this.write(lines.map((l) => l + '\r\n').join(''), lines.length);
    const out: Reply[] = [];
    for (let i = 0; i < lines.length; i++) out.push(await this.read(this.opts.commandTimeout));
    return out;
  }

  /**
   * DATA, then the body (already CRLF and dot-stuffed), then the final dot.
   * Returns the next hop's reply to DATA if it was not 354, else its reply to
   * the final dot. If `body` fails, the dot is never sent.
   */
  async data(body: AsyncIterable<Buffer> & Readable): Promise<Reply> {
    // From here on a reply nobody waits for is the next hop ending the
    // transaction early; it can arrive in the same packet as the 354.
    this.streaming = true;
    this.dataBytes = 0;
    let last: Buffer | undefined;
    try {
      const go = await this.command('DATA');
      if (go.code !== 354) {
        body.destroy();
        return go;
      }
      // One chunk is held back so the final dot leaves in the same write as
      // the last bytes of the body: one syscall and one packet fewer.
      let held: Buffer | undefined;
      for await (const chunk of body) {
        if (this.earlyReply) break;
        if (this.failure) throw this.failure;
        this.dataBytes += chunk.length;
        if (held && !this.socket.write(held)) await this.drained();
        held = chunk;
      }
      last = held;
    } catch (err) {
      // Never commit a message we could not send whole: drop the connection.
      this.destroy();
      if (this.earlyReply) return this.earlyReply;
      throw err instanceof NextHopError ? err : Object.assign(new NextHopError('aborted', `message stream failed: ${(err as Error).message}`), { cause: err });
    } finally {
      this.streaming = false;
    }
    if (this.earlyReply) {
      // The next hop answered before the end of data (e.g. a premature 550):
      // that answer is final for this transaction, and the connection is spent.
      this.destroy();
      return this.earlyReply;
    }
    if (this.failure) throw this.failure;
    this.owed++;
    this.socket.write(last ? Buffer.concat([last, END_OF_DATA]) : END_OF_DATA);
    const reply = await this.read(this.opts.dataTimeout);
    this.inTransaction = false;
    this.lastUsed = Date.now();
    return reply;
  }

  /** Ends a transaction so the connection can be reused. */
  async reset(): Promise<boolean> {
    if (!this.usable) return false;
    try {
      const r = await this.command('RSET');
      this.inTransaction = false;
      return r.code === 250;
    } catch {
      return false;
    }
  }

  quit(): void {
    if (this.usable) {
      this.socket.end('QUIT\r\n');
      setTimeout(() => this.socket.destroy(), 2000).unref();
    }
    this.failure ??= new NextHopError('closed', 'connection closed by us');
  }

  destroy(): void {
    this.failure ??= new NextHopError('closed', 'connection closed by us');
    this.socket.destroy();
  }

  private write(text: string, replies: number): void {
    if (this.failure) throw this.failure;
    this.owed += replies;
    this.socket.write(text);
  }

  private async drained(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const done = () => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        if (this.failure) reject(this.failure);
        else resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  private read(timeout: number): Promise<Reply> {
    const ready = this.arrived.shift();
    if (ready) return Promise.resolve(ready);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(new NextHopError('timeout', 'timed out waiting for the next hop'));
      }, timeout);
      this.waiter = {
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  }

  private onData(text: string): void {
    this.partial += text;
    let nl: number;
    while ((nl = this.partial.indexOf('\n')) >= 0) {
      const line = this.partial.slice(0, nl).replace(/\r$/, '');
      this.partial = this.partial.slice(nl + 1);
      if (!/^\d{3}([ -]|$)/.test(line)) {
        this.fail(new NextHopError('protocol', 'next hop sent a malformed reply line'));
        return;
      }
      this.lines.push(line);
      if (line[3] === '-') continue;
      const reply = parseReply(this.lines);
      this.rawLastReply = this.lines;
      this.lines = [];
      if (this.owed > 0) {
        this.owed--;
        const w = this.waiter;
        this.waiter = undefined;
        if (w) w.resolve(reply);
        else this.arrived.push(reply);
      } else if (this.streaming && !this.earlyReply) {
        this.earlyReply = reply;
        this.socket.destroy();
      }
      // A reply nobody asked for (e.g. 421 on shutdown) makes the connection unusable.
      else this.fail(new NextHopError('protocol', `unexpected reply ${reply.code} from next hop`));
    }
    if (this.partial.length > MAX_REPLY_BYTES) this.fail(new NextHopError('protocol', 'next hop reply line too long'));
  }

  private recordExtensions(): void {
    this.extensions.clear();
    for (const line of this.rawLastReply.slice(1)) {
      const [kw, ...params] = line.slice(4).trim().split(/\s+/);
      if (kw) this.extensions.set(kw.toUpperCase(), params.join(' '));
    }
  }

  private fail(err: NextHopError): void {
    if (!this.failure) this.failure = err;
    if (!this.socket.destroyed) this.socket.destroy();
    const w = this.waiter;
    this.waiter = undefined;
    if (w) w.reject(this.failure);
  }
}
