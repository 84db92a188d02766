/*
 * One SMTP client connection to the next hop (RFC 5321), driven step by step:
 * XFORWARD, MAIL and each RCPT are sent when our own client sends them, so
 * the next hop's per-recipient answer reaches our client at RCPT time, and
 * the final "." is written only after the whole message body stream ended
 * without error.
 *
 * The transaction model is Postfix's smtp client's:
 *  - every command written owes exactly one reply; the replies are matched
 *    to a queue of pending commands, in order, never to "whoever waits";
 *  - a reply with no pending command, or one that cannot follow its command
 *    (next-hop-protocol.ts), destroys the connection and is reported;
 *  - RSET is sent only between commands, once every reply is in;
 *  - from DATA on (354 outstanding, body streaming, dot sent) the connection
 *    is never reset and never reused: on any trouble it is closed, so the
 *    next hop discards the half transaction (guarantee 2);
 *  - every wait has a deadline: connect, each reply, each write that the
 *    next hop does not read (a next hop that stops reading), the final reply.
 *
 * Why not nodemailer's SMTPConnection: its send() takes the envelope as one
 * unit (no XFORWARD, one NOTIFY/ORCPT for all recipients, no SMTPUTF8 or
 * per-RCPT parameters, recipient answers only after the fact), which cannot
 * keep the envelope transparent nor answer RCPT with the next hop's reply.
 *
 * STARTTLS (RFC 3207), at the level of next-hop-tls.ts, right after EHLO:
 *  - STARTTLS is sent alone, never pipelined, with nothing else owed;
 *  - any byte after the 220 that answers it, before the handshake, is a
 *    protocol violation (reply injection, CVE-2011-0411 style): the
 *    connection is destroyed, whatever the level;
 *  - after the handshake every EHLO keyword learnt in plain text is
 *    discarded and EHLO is sent again;
 *  - the outcome (protocol, cipher, verified, RFC 8460 result) is kept on
 *    the connection (`tls`) and reported once through `onTls`;
 *  - at `may` a handshake that fails leaves the session unusable, so, as
 *    Postfix does, one new connection is opened that stays in plain text.
 *
 * Limits: a reply line is at most MAX_REPLY_BYTES, a reply at most
 * MAX_REPLY_LINES lines.
 */
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { isIP } from 'node:net';
import type { Readable } from 'node:stream';
import { parseReply, type Reply } from '../pipeline/reply';
import { replyFits, verbOf, type Phase, type Verb } from './next-hop-protocol';
import type { MvCode } from '../errors';
import type { TlsConfig } from '../config/load';
import { judgeHandshake, nextHopTls, mustEncrypt, type NextHopTls, type NextHopTlsLevel, type TlsFailureType, type TlsOutcome } from './next-hop-tls';

const MAX_REPLY_BYTES = 64 * 1024;
const MAX_REPLY_LINES = 256;
const END_OF_DATA = Buffer.from('.\r\n');
const QUIT_GRACE_MS = 2000;

/**
 * - connect: no connection, or no greeting;
 * - timeout: a reply did not come in time;
 * - write_timeout: the next hop stopped reading the body;
 * - closed: the connection went away;
 * - protocol: the next hop broke the protocol, or we refused to;
 * - aborted: the message stream (pass 2) failed;
 * - client_gone: our client left before the message was committed;
 * - tls: the next hop's TLS does not meet the level (`tls` says how).
 */
export type NextHopFailure = 'connect' | 'timeout' | 'write_timeout' | 'closed' | 'protocol' | 'aborted' | 'client_gone' | 'tls';

/** The configured wait (config `timeouts.*`) that a failure ran out of, if any. */
export type NextHopDeadline = 'next_hop_connect' | 'next_hop_command' | 'next_hop_write' | 'next_hop_data';

export class NextHopError extends Error {
  readonly code: MvCode = 'MV_NEXT_HOP';
  readonly deadline?: NextHopDeadline;
  /** kind tls: the level that was not met and the RFC 8460 result type. */
  readonly tls?: { level: NextHopTlsLevel; result: TlsFailureType };
  constructor(
    readonly kind: NextHopFailure,
    message: string,
    options?: { cause?: unknown; deadline?: NextHopDeadline; tls?: { level: NextHopTlsLevel; result: TlsFailureType } },
  ) {
    super(message, options);
    this.deadline = options?.deadline;
    this.tls = options?.tls;
  }
}

export interface NextHopOptions {
  host: string;
  port: number;
  /** Name we give in EHLO. */
  helo: string;
  connectTimeout: number;
  commandTimeout: number;
  /** Longest time a body write may wait for the next hop to read. */
  writeTimeout: number;
  /** Time allowed for the reply to the final dot. */
  dataTimeout: number;
  /** Told about each protocol violation (the connection is already destroyed). */
  onViolation?: (what: string) => void;
  /** STARTTLS settings; absent = level none. */
  tls?: NextHopTls;
  /** Told the TLS outcome of each connection attempt (also a failed one). */
  onTls?: (outcome: TlsOutcome) => void;
}

/** The connection settings for the configured next hop, in one place for serve, release and the API. */
export function nextHopOptions(config: {
  next_hop: { host: string; port: number };
  hostname: string;
  timeouts: { next_hop_connect: number; next_hop_command: number; next_hop_write: number; next_hop_data: number };
  tls: TlsConfig;
}): NextHopOptions {
  return {
    tls: nextHopTls(config.tls.next_hop, config.tls.ca_file),
    host: config.next_hop.host,
    port: config.next_hop.port,
    helo: config.hostname,
    connectTimeout: config.timeouts.next_hop_connect,
    commandTimeout: config.timeouts.next_hop_command,
    writeTimeout: config.timeouts.next_hop_write,
    dataTimeout: config.timeouts.next_hop_data,
  };
}

interface Pending {
  verb: Verb;
  timeout: number;
  resolve(r: Reply): void;
  reject(e: Error): void;
}

export class NextHopConnection {
  /** EHLO keywords (upper case) and their parameters. */
  readonly extensions = new Map<string, string>();
  lastUsed = Date.now();
  /** Body bytes written by the last data() call. */
  dataBytes = 0;
  private state: Phase = 'ready';
  private partial = '';
  private lines: string[] = [];
  private readonly pending: Pending[] = [];
  private headTimer?: NodeJS.Timeout;
  private failure?: NextHopError;
  /** A reply during the body: the next hop ended the transaction early. */
  private earlyReply?: Reply;
  private drainWaiter?: (err?: Error) => void;
  /** The body being streamed: a failure destroys it so data() never waits on it. */
  private body?: Readable;
  private settleWaiters: (() => void)[] = [];
  private connected = false;
  private lastEhloLines: string[] = [];
  /** The 220 to STARTTLS is in: any further byte before the handshake is injected. */
  private upgrading = false;
  /** The handshake in progress: a failure rejects it. */
  private handshake?: { reject(e: Error): void };
  private readonly listeners = {
    data: (d: string) => this.onData(d),
    // Before the greeting, any failure means the next hop is not there.
    error: (err: NodeJS.ErrnoException) => {
      if (this.handshake) return this.fail(this.tlsError('validation-failure', `TLS handshake with next hop failed: ${err.code ?? err.message}`));
      const kind = this.connected ? 'closed' : 'connect';
      this.fail(new NextHopError(kind, `${kind === 'connect' ? 'cannot connect to' : 'lost'} next hop: ${err.code ?? err.message}`));
    },
    close: () => {
      if (this.handshake) return this.fail(this.tlsError('validation-failure', 'next hop closed the connection during the TLS handshake'));
      this.fail(new NextHopError(this.connected ? 'closed' : 'connect', 'next hop closed the connection'));
    },
  };
  /** Settings identity (next-hop-tls.ts): the pool reuses a connection only under the same. */
  readonly tlsKey: string;
  /** The TLS outcome of this connection (level none: result ok, no protocol). */
  tls?: TlsOutcome;

  private constructor(
    private socket: Socket,
    private readonly opts: NextHopOptions,
  ) {
    this.tlsKey = opts.tls?.key ?? 'none';
    socket.setNoDelay(true);
    this.attach(socket);
    socket.once('connect', () => {
      this.connected = true;
      this.armHead();
    });
  }

  /**
   * Connects, reads the greeting, says EHLO (HELO if EHLO is refused) and
   * negotiates TLS at the configured level. At `may`, a handshake that
   * fails is followed by one plain-text connection.
   */
  static async open(opts: NextHopOptions): Promise<NextHopConnection> {
    try {
      return await NextHopConnection.openOnce(opts, false);
    } catch (err) {
      if (opts.tls?.level === 'may' && err instanceof NextHopError && err.kind === 'tls') return NextHopConnection.openOnce(opts, true);
      throw err;
    }
  }

  private static async openOnce(opts: NextHopOptions, plain: boolean): Promise<NextHopConnection> {
    const socket = connect({ host: opts.host, port: opts.port });
    const conn = new NextHopConnection(socket, opts);
    const greeting = conn.expect('greeting', opts.commandTimeout);
    const timer = setTimeout(() => {
      if (socket.connecting) conn.fail(new NextHopError('connect', 'timed out connecting to next hop', { deadline: 'next_hop_connect' }));
    }, opts.connectTimeout);
    try {
      const g = await greeting;
      if (g.code !== 220) throw Object.assign(new NextHopError('connect', `next hop greeted with ${g.code}`), { reply: g });
      let ehlo = await conn.command(`EHLO ${opts.helo}`);
      if (ehlo.code !== 250) ehlo = await conn.command(`HELO ${opts.helo}`);
      if (ehlo.code !== 250) throw Object.assign(new NextHopError('protocol', 'next hop refused EHLO and HELO'), { reply: ehlo });
      await conn.negotiateTls(plain);
      return conn;
    } catch (err) {
      conn.destroy();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * STARTTLS per level, then EHLO again (RFC 3207 4.2: nothing learnt
   * before the handshake is kept). Reports the outcome once; throws a
   * NextHopError of kind tls when the level is not met.
   */
  private async negotiateTls(plainFallback: boolean): Promise<void> {
    const t = this.opts.tls;
    const level = t?.level ?? 'none';
    const base = { nextHop: `${this.opts.host}:${this.opts.port}`, level, source: t?.source ?? 'static' } as const;
    const report = (o: Omit<TlsOutcome, keyof typeof base>) => {
      this.tls = { ...base, ...o };
      this.opts.onTls?.(this.tls);
    };
    if (!t || level === 'none') return report({ result: 'ok', reason: 'level none: plain text' });
    if (plainFallback) return report({ result: 'downgraded', reason: 'TLS handshake failed on the previous connection; plain text' });
    let refused: string | undefined;
    if (!this.supports('STARTTLS')) refused = 'STARTTLS not offered';
    else {
      const r = await this.command('STARTTLS');
      if (r.code !== 220) refused = `STARTTLS refused with ${r.code}`;
    }
    if (refused) {
      if (!mustEncrypt(level)) return report({ result: 'downgraded', reason: refused });
      report({ result: 'starttls-not-supported', reason: refused });
      throw this.tlsError('starttls-not-supported', `next hop TLS: ${refused} (level ${level})`);
    }
    const name = t.servername ?? this.opts.host;
    let socket: TLSSocket;
    try {
      socket = await this.upgrade(t, name);
    } catch (err) {
      const e = err as NextHopError;
      if (e.kind === 'tls') report({ result: e.tls!.result, reason: e.message });
      throw e;
    }
    const j = judgeHandshake(socket, t, name);
    if (j.failure) {
      report({ result: j.failure, protocol: j.protocol, cipher: j.cipher, verified: false, reason: j.reason });
      const err = this.tlsError(j.failure, `next hop TLS certificate refused at level ${level}: ${j.reason}`);
      this.fail(err);
      throw err;
    }
    this.extensions.clear();
    this.lastEhloLines = [];
    const ehlo = await this.command(`EHLO ${this.opts.helo}`);
    if (ehlo.code !== 250) {
      this.fail(new NextHopError('protocol', `next hop refused EHLO after STARTTLS with ${ehlo.code}`));
      throw Object.assign(this.failure!, { reply: ehlo });
    }
    report({ result: 'ok', protocol: j.protocol, cipher: j.cipher, verified: j.verified });
  }

  /** The handshake on the socket that said 220 to STARTTLS; resolves once it is complete. */
  private async upgrade(t: NextHopTls, name: string): Promise<TLSSocket> {
    const plain = this.socket;
    // Bytes read but not yet handled would be replies injected before the handshake.
    if (this.failure) throw this.failure;
    if (plain.readableLength > 0 || this.partial.length > 0) {
      this.violation('data after the 220 reply to STARTTLS, before the TLS handshake (reply injection)');
      throw this.failure!;
    }
    this.detach(plain);
    plain.on('error', () => undefined);
    const socket = tlsConnect({
      socket: plain,
      secureContext: t.secureContext,
      ...(isIP(name) ? {} : { servername: name }),
      // Judged after the handshake against the level (judgeHandshake): may and encrypt take any certificate.
      rejectUnauthorized: false,
      // `authorized` then says the chain alone; judgeHandshake matches the name itself.
      checkServerIdentity: () => undefined,
    });
    this.socket = socket;
    let timer: NodeJS.Timeout | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        this.handshake = { reject };
        this.attach(socket);
        socket.once('secureConnect', () => resolve());
        timer = setTimeout(() => {
          this.fail(this.tlsError('validation-failure', 'timed out in the TLS handshake with next hop', 'next_hop_command'));
        }, this.opts.commandTimeout);
      });
    } finally {
      clearTimeout(timer);
      this.handshake = undefined;
    }
    this.upgrading = false;
    return socket;
  }

  private attach(socket: Socket): void {
    socket.setEncoding('utf8');
    socket.on('data', this.listeners.data);
    socket.on('error', this.listeners.error);
    socket.on('close', this.listeners.close);
  }

  private detach(socket: Socket): void {
    socket.off('data', this.listeners.data);
    socket.off('error', this.listeners.error);
    socket.off('close', this.listeners.close);
  }

  private tlsError(result: TlsFailureType, message: string, deadline?: NextHopDeadline): NextHopError {
    return new NextHopError('tls', message, { tls: { level: this.opts.tls?.level ?? 'none', result }, ...(deadline ? { deadline } : {}) });
  }

  /** Why the connection became unusable, if it did. */
  get failureCause(): NextHopError | undefined {
    return this.failure;
  }

  get usable(): boolean {
    return !this.failure && !this.socket.destroyed;
  }

  get phase(): Phase {
    return this.usable ? this.state : 'closed';
  }

  /** True when the connection can serve a new transaction as it is. */
  get reusable(): boolean {
    return this.phase === 'ready' && this.pending.length === 0;
  }

  /** Replies still owed for commands written. */
  get outstanding(): number {
    return this.pending.length;
  }

  supports(keyword: string): boolean {
    return this.extensions.has(keyword.toUpperCase());
  }

  /** Sends one command line and waits for its reply. */
  command(line: string, timeout = this.opts.commandTimeout): Promise<Reply> {
    return this.commands([line], timeout).then((r) => r[0]);
  }

  /**
   * Several commands in one write when the next hop offers PIPELINING
   * (RFC 2920), one by one otherwise; the replies come back in order.
   */
  async commands(lines: string[], timeout = this.opts.commandTimeout): Promise<Reply[]> {
    for (const l of lines) if (/[\r\n\0]/.test(l)) throw new NextHopError('protocol', 'refusing to send a command with a line break or NUL');
    if (lines.length > 1 && !this.supports('PIPELINING')) {
      const out: Reply[] = [];
      for (const l of lines) out.push(await this.command(l, timeout));
      return out;
    }
    if (this.state === 'data' || this.state === 'body' || this.state === 'dot') {
      throw new NextHopError('protocol', `refusing to send ${verbOf(lines[0])} inside DATA`);
    }
    if (this.failure) throw this.failure;
    const replies = lines.map((l) => {
      const verb = verbOf(l);
      if (verb === 'MAIL') this.state = 'envelope';
      return this.expect(verb, timeout);
    });
    this.socket.write(lines.map((l) => l + '\r\n').join(''));
    const out = await Promise.all(replies);
    const ehlo = lines.findIndex((l) => /^EHLO /i.test(l));
    if (ehlo >= 0 && out[ehlo].code === 250) this.recordExtensions();
    return out;
  }

  /**
   * DATA, then the body (already CRLF and dot-stuffed), then the final dot.
   * Returns the next hop's reply to DATA if it was not 354, else its reply to
   * the final dot. If `body` fails or `signal` aborts before the dot is
   * written, the connection is destroyed and the dot is never sent; once the
   * dot is written, the reply is awaited whatever `signal` says, so it can be
   * recorded.
   */
  async data(body: AsyncIterable<Buffer> & Readable, signal?: AbortSignal): Promise<Reply> {
    if (this.state !== 'envelope' || this.pending.length) throw new NextHopError('protocol', 'DATA outside a transaction');
    const abort = () => this.fail(new NextHopError('client_gone', 'client left before the message was committed'));
    signal?.addEventListener('abort', abort, { once: true });
    this.dataBytes = 0;
    let last: Buffer | undefined;
    try {
      if (signal?.aborted) abort();
      if (this.failure) throw this.failure;
      const ask = this.expect('DATA', this.opts.commandTimeout);
      this.state = 'data';
      this.socket.write('DATA\r\n');
      const go = await ask;
      if (go.code !== 354) {
        body.destroy();
        return go;
      }
      this.body = body;
      // One chunk is held back so the final dot leaves in the same write as
      // the last bytes of the body: one syscall and one packet fewer.
      for await (const chunk of body) {
        if (this.earlyReply || this.failure) break;
        if (last) await this.write(last);
        this.dataBytes += chunk.length;
        last = chunk;
      }
      if (this.earlyReply) throw this.earlyReply;
      if (this.failure) throw this.failure;
    } catch (err) {
      // A connection failure destroys the body too; it is the cause to report.
      const cause = this.failure;
      body.destroy();
      this.destroy();
      if (this.earlyReply) return this.earlyReply;
      if (cause) throw cause;
      if (err instanceof NextHopError) throw err;
      throw new NextHopError('aborted', `message stream failed: ${(err as Error).message}`, { cause: err });
    } finally {
      this.body = undefined;
      signal?.removeEventListener('abort', abort);
    }
    const done = this.expect('.', this.opts.dataTimeout);
    this.state = 'dot';
    // A next hop that stops reading the last bytes is a write stall too.
    this.write(last ? Buffer.concat([last, END_OF_DATA]) : END_OF_DATA).catch(() => undefined);
    const reply = await done;
    this.lastUsed = Date.now();
    return reply;
  }

  /** Resolves once every written command has its reply (or the connection failed). */
  settled(): Promise<void> {
    if (!this.pending.length || this.failure) return Promise.resolve();
    return new Promise((resolve) => this.settleWaiters.push(resolve));
  }

  /**
   * Ends an open transaction so the connection can be reused: waits for every
   * reply still owed, then RSET. False when the connection cannot be reused
   * (past DATA, broken, or RSET refused); the caller must then destroy it.
   */
  async reset(): Promise<boolean> {
    await this.settled();
    if (this.phase === 'ready') return true;
    if (this.phase !== 'envelope') return false;
    try {
      return (await this.command('RSET')).code === 250;
    } catch {
      return false;
    }
  }

  /** Says goodbye when nothing is owed; otherwise just closes. */
  quit(): void {
    if (this.usable && this.pending.length === 0 && this.state === 'ready') {
      this.failure = new NextHopError('closed', 'connection closed by us');
      this.socket.end('QUIT\r\n');
      setTimeout(() => this.socket.destroy(), QUIT_GRACE_MS).unref();
      return;
    }
    this.destroy();
  }

  destroy(): void {
    this.fail(new NextHopError('closed', 'connection closed by us'));
  }

  /** Registers the reply the next command owes; a rejection is always handled by someone. */
  private expect(verb: Verb, timeout: number): Promise<Reply> {
    const p = new Promise<Reply>((resolve, reject) => {
      this.pending.push({ verb, timeout, resolve, reject });
    });
    // Pipelined replies are awaited in order; a connection failure rejects
    // all of them at once, before the later ones have a handler.
    p.catch(() => undefined);
    if (this.pending.length === 1 && verb !== 'greeting') this.armHead();
    return p;
  }

  /** The deadline of the reply we are waiting for now (Postfix times each read). */
  private armHead(): void {
    clearTimeout(this.headTimer);
    const head = this.pending[0];
    if (!head) return;
    this.headTimer = setTimeout(() => {
      const kind = head.verb === 'greeting' ? 'connect' : 'timeout';
      const deadline = head.verb === '.' ? 'next_hop_data' : 'next_hop_command';
      this.fail(new NextHopError(kind, `timed out waiting for the next hop's reply to ${head.verb}`, { deadline }));
    }, head.timeout);
  }

  /** Writes body bytes; waits, with a deadline, while the next hop is not reading. */
  private write(chunk: Buffer): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.socket.write(chunk)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(new NextHopError('write_timeout', 'the next hop stopped reading the message', { deadline: 'next_hop_write' }));
      }, this.opts.writeTimeout);
      const onDrain = () => settle();
      const settle = (err?: Error) => {
        clearTimeout(timer);
        this.socket.off('drain', onDrain);
        this.drainWaiter = undefined;
        if (err) reject(err);
        else resolve();
      };
      this.drainWaiter = settle;
      this.socket.on('drain', onDrain);
    });
  }

  private onData(text: string): void {
    if (this.failure) return;
    if (this.upgrading) return this.violation('data after the 220 reply to STARTTLS, before the TLS handshake (reply injection)');
    this.partial += text;
    let nl: number;
    while ((nl = this.partial.indexOf('\n')) >= 0) {
      const line = this.partial.slice(0, nl).replace(/\r$/, '');
      this.partial = this.partial.slice(nl + 1);
      if (!/^[2-5]\d\d([ -]|$)/.test(line)) return this.violation('a malformed reply line');
      if (this.lines.length && line.slice(0, 3) !== this.lines[0].slice(0, 3)) return this.violation('a multi-line reply whose lines disagree on the code');
      this.lines.push(line);
      if (this.lines.length > MAX_REPLY_LINES) return this.violation('a reply of too many lines');
      if (line[3] === '-') continue;
      const lines = this.lines;
      this.lines = [];
      this.onReply(parseReply(lines), lines);
      if (this.failure) return;
      // RFC 3207 5: nothing may follow the 220 to STARTTLS in plain text.
      if (this.upgrading && this.partial.length) return this.violation('data after the 220 reply to STARTTLS, before the TLS handshake (reply injection)');
    }
    if (this.partial.length > MAX_REPLY_BYTES) this.violation('a reply line that is too long');
  }

  private onReply(reply: Reply, lines: string[]): void {
    const head = this.pending.shift();
    if (!head) {
      if (this.state === 'body' && reply.code >= 400) {
        // The next hop refused before our dot (e.g. a premature 550): that
        // answer is final, and the connection is spent. Only a refusal can
        // end a transaction early; a 2xx here is a violation, never a 250.
        this.earlyReply = reply;
        this.fail(new NextHopError('closed', 'next hop ended the transaction during the body'));
        return;
      }
      // 421 is how a next hop says goodbye (e.g. its idle timeout): not a violation.
      if (reply.code === 421) return this.fail(new NextHopError('closed', 'next hop closed the connection with 421'));
      return this.violation(`a ${reply.code} reply to no command`);
    }
    if (!replyFits(head.verb, reply.code)) {
      this.pending.unshift(head);
      return this.violation(`a ${reply.code} reply to ${head.verb}`);
    }
    this.lastEhloLines = head.verb === 'EHLO' ? lines : this.lastEhloLines;
    // The phase moves with the reply itself, not when its reader runs: a
    // next hop may send 354 and a premature 550 in one packet.
    if (head.verb === 'STARTTLS' && reply.code === 220) this.upgrading = true;
    if (head.verb === 'DATA') this.state = reply.code === 354 ? 'body' : 'envelope';
    else if (head.verb === '.') this.state = 'ready';
    else if (head.verb === 'RSET' && reply.code === 250) this.state = 'ready';
    this.armHead();
    head.resolve(reply);
    if (!this.pending.length) this.wakeSettled();
  }

  private recordExtensions(): void {
    this.extensions.clear();
    for (const line of this.lastEhloLines.slice(1)) {
      const [kw, ...params] = line.slice(4).trim().split(/\s+/);
      if (kw) this.extensions.set(kw.toUpperCase(), params.join(' '));
    }
  }

  private violation(what: string): void {
    this.fail(new NextHopError('protocol', `next hop protocol violation: ${what}`));
    this.opts.onViolation?.(what);
  }

  private fail(err: NextHopError): void {
    if (!this.failure) this.failure = err;
    this.state = 'closed';
    clearTimeout(this.headTimer);
    if (!this.socket.destroyed) this.socket.destroy();
    for (const p of this.pending.splice(0)) p.reject(this.failure);
    this.handshake?.reject(this.failure);
    this.drainWaiter?.(this.failure);
    this.body?.destroy();
    this.wakeSettled();
  }

  private wakeSettled(): void {
    for (const w of this.settleWaiters.splice(0)) w();
  }
}
