/*
 * A scripted next hop: a loopback SMTP server that plays Postfix's
 * reinjection smtpd for mailveil, records everything it is sent, and can be
 * told, command by command, to answer late, never, with another reply, by
 * hanging up, or by no longer reading (so the relay's writes back up).
 *
 * It exists to prove two things about the relay in front of it:
 *  - nothing acknowledged is lost: every message the client got 250 for is
 *    committed here exactly once, whole (`committed()`, `copiesOf(subject)`);
 *  - nothing from a message body ever reaches it as a command
 *    (`commands()`, `foreignCommands()`).
 *
 * What it does, like a Postfix smtpd:
 *  - EHLO advertises PIPELINING, SIZE, 8BITMIME, SMTPUTF8, DSN,
 *    ENHANCEDSTATUSCODES and XFORWARD NAME ADDR PROTO HELO IDENT SOURCE PORT;
 *  - command lines end at LF (a CR before it is dropped); every line read in
 *    command mode is recorded verbatim, in order, per connection;
 *  - it is strict about order: MAIL before EHLO/HELO, a nested MAIL, RCPT
 *    without MAIL, DATA without a recipient, XFORWARD inside a transaction
 *    get Postfix's 503/554, and are also listed in `protocolErrors`, since
 *    mailveil making one means it lost track of its own transaction;
 *  - DATA ends only at CRLF "." CRLF (a bare LF never ends it); the message is
 *    the raw bytes between the 354 and that final dot, still dot-stuffed,
 *    ending with the CRLF before the dot;
 *  - input is handled strictly in order: while a reply is delayed, what the
 *    client pipelined behind it waits (it is buffered, not lost); a stalled
 *    command stops the connection's input for good;
 *  - a connection that closes in the middle of a transaction aborts it: a
 *    message whose final dot never arrived is never committed.
 *
 * When a message counts as committed (`commitOn`):
 *  - 'reply' (default): when the hop writes its 2xx reply to the dot on a
 *    connection that is still open. A dot whose delayed reply finds the
 *    connection gone is 'aborted';
 *  - 'dot': as soon as the final dot has been read and the planned reply is
 *    2xx, as Postfix's smtpd does (the queue file is complete before it
 *    answers). The reply may then be delayed or never arrive, and the message
 *    still counts. Use this to check that a relay which stops waiting for the
 *    reply does not call such a message aborted.
 *
 * Scripting (`script(verb, action, opts)`): rules are tried in the order they
 * were added; the first whose verb matches, whose `when` accepts the command
 * and which has uses left decides. Verbs are the command words, plus
 * 'CONNECT' (the greeting) and '.' (the final dot). An action can replace the
 * reply, delay it, never send it (`stall`), hang up (`close`, after the reply
 * if there is one), and, on DATA, stop reading the body after some bytes
 * (`pauseReadingAfter`; `resume()` or `resumeAfterMs` reads again). Without a
 * matching rule the hop answers as a healthy Postfix would.
 *
 * Events (`hop.events`): 'connection' (conn), 'command' (conn, line),
 * 'data' (conn, tx) once the 354 is out, 'body' (conn, tx) after each chunk of
 * message bytes, 'dot' (conn, tx) when the final dot is read, 'reply'
 * (conn, verb, text), 'commit' (conn, tx), 'close' (conn). Tests use them to
 * act at an exact phase, e.g. close the client the moment the body is halfway.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { EventEmitter } from 'node:events';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, LOOPBACK, registerExitCleanup, waitFor } from './ports';

export type HopVerb =
  | 'CONNECT'
  | 'EHLO'
  | 'HELO'
  | 'XFORWARD'
  | 'MAIL'
  | 'RCPT'
  | 'DATA'
  | '.'
  | 'RSET'
  | 'NOOP'
  | 'QUIT'
  | 'OTHER';

/** What the hop does about one command. Every field is optional. */
export interface HopAction {
  /** The reply to send instead of the default, e.g. "451 4.3.0 Try later". Lines of a multi-line reply are joined with "\r\n". */
  reply?: string;
  /** Wait this long before replying (the connection's later input waits too). */
  delayMs?: number;
  /** Never reply; the connection reads no further commands. */
  stall?: boolean;
  /** Hang up: after the reply if one is given (as Postfix does with 421), else instead of it. */
  close?: boolean;
  /** DATA only: once this many message bytes were read, stop reading (socket.pause()). 0 = right after the 354. */
  pauseReadingAfter?: number;
  /** With pauseReadingAfter: read again after this long (default: only on resume()). */
  resumeAfterMs?: number;
}

/** Which command a rule is being asked about. */
export interface HopCommandInfo {
  conn: HopConnection;
  verb: HopVerb;
  /** The line as received (without its line end); '' for CONNECT and '.'. */
  line: string;
  /** The transaction the command belongs to, if one is open. */
  tx?: HopTransaction;
}

export interface HopRuleOptions {
  /** How many commands this rule applies to (default 1; Infinity for every match). */
  times?: number;
  /** Only for commands this accepts. */
  when?: (info: HopCommandInfo) => boolean;
}

export type HopTransactionState =
  /** MAIL accepted, envelope being built. */
  | 'open'
  /** 354 sent, message bytes arriving. */
  | 'data'
  /** Final dot read, reply pending (commitOn 'reply'). */
  | 'dot'
  | 'committed'
  /** The hop answered the dot with a non-2xx reply. */
  | 'rejected'
  /** Ended without a commit: RSET, EHLO, QUIT, a closed connection, a dropped reply. */
  | 'aborted';

export interface HopTransaction {
  /** Connection id and position, e.g. "c2t1". */
  id: string;
  conn: number;
  /** XFORWARD lines accepted before the MAIL, verbatim. */
  xforward: string[];
  /** The MAIL line, verbatim. */
  mail: string;
  /** The RCPT lines the hop accepted, verbatim. */
  rcpts: string[];
  state: HopTransactionState;
  /** Why it was aborted. */
  abortedBy?: 'rset' | 'ehlo' | 'quit' | 'close' | 'hop-close' | 'stall';
  /** Message bytes read so far (dot-stuffed, as on the wire). */
  dataBytes: number;
  /** The message as received (set once the final dot was read): raw, dot-stuffed, ends with the CRLF before the dot. */
  raw?: Buffer;
  /** For a transaction aborted inside DATA: the message bytes read before the end. */
  partial?: Buffer;
  /** The reply the hop sent (or planned) to the final dot. */
  dotReply?: string;
  /** Queue id inside a 2xx dot reply. */
  queueId?: string;
  /** Whether the reply to the dot was actually written. */
  dotReplied: boolean;
}

interface Rule {
  verb: HopVerb;
  action: HopAction;
  left: number;
  when?: (info: HopCommandInfo) => boolean;
}

export interface ScriptedHopOptions {
  /** Port on 127.0.0.1 (default: a free one). A hop can be started on a port that mailveil already points at. */
  port?: number;
  /** Our name in the greeting and EHLO (default "hop.test"). */
  name?: string;
  /** See the file comment (default 'reply'). */
  commitOn?: 'reply' | 'dot';
  /** EHLO keywords after the first line (default: Postfix's set, see the file comment). */
  extensions?: string[];
  /** Keep each message's bytes (default true); false keeps only counts, for long fuzz runs. */
  keepMessages?: boolean;
}

export const DEFAULT_EXTENSIONS = [
  'PIPELINING',
  'SIZE 209715200',
  '8BITMIME',
  'SMTPUTF8',
  'DSN',
  'ENHANCEDSTATUSCODES',
  'XFORWARD NAME ADDR PROTO HELO IDENT SOURCE PORT',
];

/** Longest command line kept whole; a longer one is split, as smtpd's line_length_limit does. */
const MAX_COMMAND_LINE = 64 * 1024;
const TERMINATOR = Buffer.from('\r\n.\r\n');
const EMPTY = Buffer.alloc(0);

const VERBS = new Set<HopVerb>(['EHLO', 'HELO', 'XFORWARD', 'MAIL', 'RCPT', 'DATA', 'RSET', 'NOOP', 'QUIT']);

export function verbOfLine(line: string): HopVerb {
  const w = (/^[A-Za-z]+/.exec(line)?.[0] ?? '').toUpperCase() as HopVerb;
  return VERBS.has(w) ? w : 'OTHER';
}

/** One client connection to the hop, with everything it sent. */
export class HopConnection {
  /** Every line read in command mode, verbatim (no line end), in order. */
  readonly commands: string[] = [];
  /** Every reply sent, in order, with the verb it answered. */
  readonly replies: { verb: HopVerb; text: string }[] = [];
  readonly transactions: HopTransaction[] = [];
  /** Order errors the hop answered with 503/554 on its own (not scripted ones). */
  readonly protocolErrors: string[] = [];
  closed = false;
  /** Who hung up first. */
  closedBy?: 'peer' | 'hop';
  /** True while reading is paused by a pauseReadingAfter action. */
  paused = false;
  /** True once a stall action stopped this connection for good. */
  stalled = false;

  private inbox: Buffer[] = [];
  private lineBuf: Buffer = EMPTY;
  private mode: 'command' | 'data' = 'command';
  private pumping = false;
  private greeted = false;
  private pendingXforward: string[] = [];
  private tx?: HopTransaction;
  /** Last bytes of the data stream (the CRLF "virtual" start included), to find the terminator across chunks. */
  private tail: Buffer = Buffer.from('\r\n');
  /** Stream offset of tail[0] within the message bytes (-2 for the virtual CRLF). */
  private tailStart = -2;
  private chunks: Buffer[] = [];
  private pauseAfter?: { bytes: number; resumeAfterMs?: number };
  private queueIds = 0;
  private finished = false;

  constructor(
    readonly id: number,
    readonly socket: Socket,
    private readonly hop: ScriptedHop,
  ) {}

  /** The transaction open right now, if any. */
  get current(): HopTransaction | undefined {
    return this.tx;
  }

  /** Reads again after pauseReadingAfter. */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.socket.resume();
  }

  /** Hangs up now (the socket is destroyed; the peer sees the connection close). */
  close(): void {
    if (this.closed) return;
    this.closedBy ??= 'hop';
    this.socket.destroy();
  }

  /** @internal */
  start(): void {
    const s = this.socket;
    s.setNoDelay(true);
    s.on('data', (d: Buffer) => {
      this.inbox.push(d);
      void this.pump();
    });
    s.on('error', () => undefined);
    s.on('close', () => {
      this.closed = true;
      this.closedBy ??= 'peer';
      // Input read before the close is still handled (a server reads to EOF); pump() ends what is left open.
      void this.pump();
    });
    void this.run(async () => {
      const action = this.hop.actionFor({ conn: this, verb: 'CONNECT', line: '' });
      await this.respond('CONNECT', action, `220 ${this.hop.name} ESMTP scripted-hop`);
    });
  }

  private async run(fn: () => Promise<void>): Promise<void> {
    this.pumping = true;
    try {
      await fn();
    } finally {
      this.pumping = false;
    }
    await this.pump();
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (!this.stalled) {
        if (this.mode === 'data') {
          const chunk = this.inbox.shift();
          if (!chunk) break;
          await this.dataChunk(chunk);
        } else {
          const line = this.takeLine();
          if (line === undefined) break;
          await this.command(line);
        }
      }
    } finally {
      this.pumping = false;
    }
    if (this.closed && (this.stalled || this.inbox.length === 0)) this.finishClosed();
  }

  /** After the close and all input handled: whatever is still open was aborted. */
  private finishClosed(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.tx) this.abort(this.closedBy === 'hop' ? 'hop-close' : 'close');
    this.hop.events.emit('close', this);
  }

  private takeLine(): string | undefined {
    for (;;) {
      const nl = this.lineBuf.indexOf(0x0a);
      if (nl >= 0 || this.lineBuf.length >= MAX_COMMAND_LINE) {
        const end = nl >= 0 ? nl : MAX_COMMAND_LINE;
        let line = this.lineBuf.subarray(0, end);
        this.lineBuf = this.lineBuf.subarray(nl >= 0 ? nl + 1 : end);
        if (line.length && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
        return line.toString('latin1');
      }
      const next = this.inbox.shift();
      if (!next) return undefined;
      this.lineBuf = this.lineBuf.length ? Buffer.concat([this.lineBuf, next]) : next;
    }
  }

  private async command(line: string): Promise<void> {
    this.commands.push(line);
    this.hop.commandLog.push({ conn: this.id, line });
    this.hop.events.emit('command', this, line);
    const verb = verbOfLine(line);
    const info: HopCommandInfo = { conn: this, verb, line, tx: this.tx };
    const action = this.hop.actionFor(info);
    const def = this.defaultReply(verb, line);
    const reply = action?.reply ?? def;
    if (action?.reply === undefined && def !== undefined && /^5/.test(def) && verb !== 'OTHER') this.protocolErrors.push(`${line} -> ${def}`);
    const sent = await this.respond(verb, action, reply);
    if (sent === undefined) return;
    this.apply(verb, line, sent.reply, action);
  }

  private defaultReply(verb: HopVerb, line: string): string {
    const n = this.hop.name;
    switch (verb) {
      case 'EHLO':
        return [`250-${n}`, ...this.hop.extensions.slice(0, -1).map((e) => `250-${e}`), `250 ${this.hop.extensions.at(-1) ?? 'HELP'}`].join('\r\n');
      case 'HELO':
        return `250 ${n}`;
      case 'XFORWARD':
        if (!this.greeted) return '503 5.5.1 Error: send HELO/EHLO first';
        if (this.tx) return '503 5.5.1 Error: MAIL transaction in progress';
        return '250 2.0.0 Ok';
      case 'MAIL':
        if (!this.greeted) return '503 5.5.1 Error: send HELO/EHLO first';
        if (this.tx) return '503 5.5.1 Error: nested MAIL command';
        if (!/^MAIL FROM:\s*<[^<>\r\n]*>/i.test(line)) return '501 5.5.4 Syntax: MAIL FROM:<address>';
        return '250 2.1.0 Ok';
      case 'RCPT':
        if (!this.tx) return '503 5.5.1 Error: need MAIL command';
        if (!/^RCPT TO:\s*<[^<>\r\n]+>/i.test(line)) return '501 5.5.4 Syntax: RCPT TO:<address>';
        return '250 2.1.5 Ok';
      case 'DATA':
        if (!this.tx) return '503 5.5.1 Error: need RCPT command';
        if (this.tx.rcpts.length === 0) return '554 5.5.1 Error: no valid recipients';
        if (line.trim().length > 4) return '501 5.5.4 Syntax: DATA';
        return '354 End data with <CR><LF>.<CR><LF>';
      case 'RSET':
        return '250 2.0.0 Ok';
      case 'NOOP':
        return '250 2.0.0 Ok';
      case 'QUIT':
        return '221 2.0.0 Bye';
      case 'OTHER':
        return '502 5.5.2 Error: command not recognized';
      default:
        return '250 2.0.0 Ok';
    }
  }

  /**
   * Delay, stall or close as the action says, then write `reply`. Resolves
   * with the reply that was due and whether it was written (not when the
   * connection had closed meanwhile), or undefined when the action sent
   * nothing (stall, close) and nothing may follow.
   */
  private async respond(verb: HopVerb, action: HopAction | undefined, reply: string | undefined): Promise<{ reply: string; written: boolean } | undefined> {
    if (action?.delayMs && !this.closed) await sleep(action.delayMs);
    if (action?.stall) {
      this.stalled = true;
      return undefined;
    }
    if (action?.close && action.reply === undefined) {
      this.close();
      return undefined;
    }
    if (reply === undefined) return undefined;
    let written = false;
    if (!this.closed && !this.socket.destroyed && this.socket.writable) {
      this.socket.write(reply + '\r\n');
      written = true;
      this.replies.push({ verb, text: reply });
      this.hop.events.emit('reply', this, verb, reply);
    }
    if (action?.close) {
      this.closedBy ??= 'hop';
      this.socket.end();
    }
    return { reply, written };
  }

  /** State changes for a reply that was sent (or due, on a connection closed meanwhile). */
  private apply(verb: HopVerb, line: string, reply: string, action: HopAction | undefined): void {
    const ok = reply.startsWith('2');
    switch (verb) {
      case 'EHLO':
      case 'HELO':
        if (ok) {
          if (this.tx) this.abort('ehlo');
          this.greeted = true;
          this.pendingXforward = [];
        }
        break;
      case 'XFORWARD':
        if (ok) this.pendingXforward.push(line);
        break;
      case 'MAIL':
        if (ok) {
          const n = this.transactions.length + 1;
          this.tx = { id: `c${this.id}t${n}`, conn: this.id, xforward: this.pendingXforward, mail: line, rcpts: [], state: 'open', dataBytes: 0, dotReplied: false };
          this.pendingXforward = [];
          this.transactions.push(this.tx);
          this.hop.transactionLog.push(this.tx);
        }
        break;
      case 'RCPT':
        if (ok && this.tx) this.tx.rcpts.push(line);
        break;
      case 'DATA':
        if (reply.startsWith('354') && this.tx) {
          this.tx.state = 'data';
          this.mode = 'data';
          this.tail = Buffer.from('\r\n');
          this.tailStart = -2;
          this.chunks = [];
          if (this.lineBuf.length) this.inbox.unshift(this.lineBuf);
          this.lineBuf = EMPTY;
          this.pauseAfter = action?.pauseReadingAfter !== undefined ? { bytes: action.pauseReadingAfter, resumeAfterMs: action.resumeAfterMs } : undefined;
          this.hop.events.emit('data', this, this.tx);
          this.maybePause();
        }
        break;
      case 'RSET':
        if (ok) {
          if (this.tx) this.abort('rset');
          this.pendingXforward = [];
        }
        break;
      case 'QUIT':
        if (this.tx) this.abort('quit');
        if (!this.closed) this.socket.end();
        this.closedBy ??= 'peer';
        break;
    }
  }

  private abort(by: NonNullable<HopTransaction['abortedBy']>): void {
    const tx = this.tx;
    if (!tx) return;
    if (tx.state !== 'committed' && tx.state !== 'rejected') {
      if (tx.state === 'data' && this.hop.keepMessages) tx.partial = Buffer.concat(this.chunks);
      tx.state = 'aborted';
      tx.abortedBy = by;
    }
    this.tx = undefined;
    this.chunks = [];
  }

  private maybePause(): void {
    const p = this.pauseAfter;
    if (!p || this.paused || !this.tx || this.tx.dataBytes < p.bytes) return;
    this.pauseAfter = undefined;
    this.paused = true;
    this.socket.pause();
    if (p.resumeAfterMs !== undefined) setTimeout(() => this.resume(), p.resumeAfterMs).unref();
  }

  private async dataChunk(chunk: Buffer): Promise<void> {
    const tx = this.tx!;
    const chunkStart = tx.dataBytes;
    const window = Buffer.concat([this.tail, chunk]);
    const windowStart = this.tailStart;
    const at = window.indexOf(TERMINATOR);
    if (at < 0) {
      if (this.hop.keepMessages) this.chunks.push(chunk);
      tx.dataBytes += chunk.length;
      const keep = Math.min(4, window.length);
      this.tail = window.subarray(window.length - keep);
      this.tailStart = windowStart + window.length - keep;
      this.hop.events.emit('body', this, tx);
      this.maybePause();
      return;
    }
    // The message is everything up to and including the CRLF before the dot.
    const termAt = windowStart + at;
    const messageLength = Math.max(0, termAt + 2);
    const used = termAt + TERMINATOR.length - chunkStart;
    if (this.hop.keepMessages) this.chunks.push(chunk.subarray(0, used));
    tx.dataBytes = messageLength;
    const rest = chunk.subarray(used);
    if (rest.length) this.inbox.unshift(rest);
    if (this.hop.keepMessages) tx.raw = Buffer.concat(this.chunks).subarray(0, messageLength);
    this.chunks = [];
    this.mode = 'command';
    this.pauseAfter = undefined;
    tx.state = 'dot';
    this.hop.events.emit('body', this, tx);
    this.hop.events.emit('dot', this, tx);
    await this.endOfData(tx);
  }

  private async endOfData(tx: HopTransaction): Promise<void> {
    const action = this.hop.actionFor({ conn: this, verb: '.', line: '', tx });
    const queueId = `HOP${this.id}X${++this.queueIds}`;
    const planned = action?.reply ?? `250 2.0.0 Ok: queued as ${queueId}`;
    tx.dotReply = planned;
    const accepts = planned.startsWith('2') && !action?.stall && !(action?.close && action.reply === undefined);
    if (accepts && this.hop.commitOn === 'dot') this.commit(tx, planned, queueId);
    const sent = await this.respond('.', action, planned);
    // The transaction is over whatever happened; a new MAIL may follow.
    if (this.tx === tx) this.tx = undefined;
    const written = sent?.written === true;
    tx.dotReplied = written;
    if (tx.state === 'committed') return;
    if (!written) {
      tx.state = 'aborted';
      tx.abortedBy = action?.stall ? 'stall' : this.closedBy === 'hop' ? 'hop-close' : 'close';
    } else if (accepts) {
      this.commit(tx, planned, queueId);
    } else {
      tx.state = 'rejected';
    }
  }

  private commit(tx: HopTransaction, reply: string, queueId: string): void {
    tx.state = 'committed';
    tx.dotReply = reply;
    tx.queueId = /queued as (\S+)/.exec(reply)?.[1] ?? queueId;
    this.hop.events.emit('commit', this, tx);
  }
}

export class ScriptedHop {
  readonly events = new EventEmitter();
  readonly connections: HopConnection[] = [];
  /** Every command line, across connections, in arrival order. */
  readonly commandLog: { conn: number; line: string }[] = [];
  /** Every transaction (MAIL accepted), across connections, in order. */
  readonly transactionLog: HopTransaction[] = [];
  readonly name: string;
  readonly commitOn: 'reply' | 'dot';
  readonly extensions: string[];
  readonly keepMessages: boolean;
  private rules: Rule[] = [];
  private unregister?: () => void;

  private constructor(
    private readonly server: Server,
    readonly port: number,
    opts: ScriptedHopOptions,
  ) {
    this.name = opts.name ?? 'hop.test';
    this.commitOn = opts.commitOn ?? 'reply';
    this.extensions = opts.extensions ?? DEFAULT_EXTENSIONS;
    this.keepMessages = opts.keepMessages ?? true;
    this.events.setMaxListeners(100);
  }

  /** Starts listening on 127.0.0.1; resolves once it accepts connections. */
  static async start(opts: ScriptedHopOptions = {}): Promise<ScriptedHop> {
    const port = opts.port ?? (await freePort());
    const server = createServer();
    const hop = new ScriptedHop(server, port, opts);
    server.on('connection', (socket) => {
      const conn = new HopConnection(hop.connections.length + 1, socket, hop);
      hop.connections.push(conn);
      hop.events.emit('connection', conn);
      conn.start();
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, LOOPBACK, () => {
        server.off('error', reject);
        resolve();
      });
    });
    hop.unregister = registerExitCleanup(() => {
      for (const c of hop.connections) c.socket.destroy();
      server.close();
    });
    return hop;
  }

  /** "127.0.0.1:PORT", for --next-hop. */
  get address(): string {
    return `${LOOPBACK}:${this.port}`;
  }

  /** Adds a rule (see the file comment). Returns the hop, so rules chain. */
  script(verb: HopVerb, action: HopAction, opts: HopRuleOptions = {}): this {
    this.rules.push({ verb, action, left: opts.times ?? 1, when: opts.when });
    return this;
  }

  /** Drops every rule: the hop is healthy again. */
  clearScript(): this {
    this.rules = [];
    return this;
  }

  /** @internal The action for one command, consuming one use of the rule that matched. */
  actionFor(info: HopCommandInfo): HopAction | undefined {
    for (const r of this.rules) {
      if (r.verb !== info.verb || r.left <= 0) continue;
      if (r.when && !r.when(info)) continue;
      r.left--;
      return r.action;
    }
    return undefined;
  }

  /** Every command line received, all connections, in order. */
  commands(): string[] {
    return this.commandLog.map((c) => c.line);
  }

  /** Messages the hop committed (see commitOn), in order. */
  committed(): HopTransaction[] {
    return this.transactionLog.filter((t) => t.state === 'committed');
  }

  /** Committed messages whose Subject is exactly `token` (give each test message a unique Subject). */
  copiesOf(token: string): HopTransaction[] {
    return this.committed().filter((t) => t.raw !== undefined && hasSubject(t.raw, token));
  }

  /** Transactions still open (MAIL accepted, not yet committed, refused or aborted) on connections still open. */
  openTransactions(): HopTransaction[] {
    return this.connections.filter((c) => !c.closed && c.current).map((c) => c.current!);
  }

  /** Transactions ended by a closed connection; none of them may be committed (checked here). */
  abortedByClose(): HopTransaction[] {
    return this.transactionLog.filter((t) => t.state === 'aborted' && (t.abortedBy === 'close' || t.abortedBy === 'hop-close'));
  }

  /** Order errors (nested MAIL, RCPT without MAIL...) across connections: mailveil out of step. */
  protocolErrors(): string[] {
    return this.connections.flatMap((c) => c.protocolErrors.map((e) => `c${c.id}: ${e}`));
  }

  /** Reads again on every paused connection. */
  resumeAll(): void {
    for (const c of this.connections) c.resume();
  }

  /** Polls `probe` until truthy (ports.waitFor), with the hop's state in the error. */
  waitFor<T>(probe: () => T | undefined | null | false, what: string, timeoutMs = 10_000): Promise<T> {
    return waitFor(probe, { timeoutMs, intervalMs: 10, what: `scripted hop: ${what}`, describe: () => this.describe() });
  }

  /** Resolves at the first `event` whose arguments `pred` accepts; rejects after timeoutMs. */
  next<A extends unknown[]>(event: string, pred: (...args: A) => boolean = () => true, timeoutMs = 10_000): Promise<A> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.events.off(event, on);
        reject(new Error(`scripted hop: no '${event}' event within ${timeoutMs} ms\n${this.describe()}`));
      }, timeoutMs);
      const on = (...args: A) => {
        if (!pred(...args)) return;
        clearTimeout(t);
        this.events.off(event, on);
        resolve(args);
      };
      this.events.on(event, on as (...a: unknown[]) => void);
    });
  }

  /** A readable summary of every connection, for assertion messages. */
  describe(): string {
    const out: string[] = ['--- scripted hop ---'];
    for (const c of this.connections) {
      out.push(`c${c.id}${c.closed ? ` closed(${c.closedBy})` : ''}${c.paused ? ' paused' : ''}${c.stalled ? ' stalled' : ''}`);
      for (const l of c.commands.slice(-40)) out.push(`  > ${l.length > 120 ? l.slice(0, 120) + '…' : l}`);
      for (const t of c.transactions) out.push(`  tx ${t.id} ${t.state}${t.abortedBy ? `(${t.abortedBy})` : ''} bytes=${t.dataBytes} rcpts=${t.rcpts.length} dot=${t.dotReply ?? '-'}`);
    }
    return out.join('\n');
  }

  async stop(): Promise<void> {
    for (const c of this.connections) c.socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.unregister?.();
  }
}

// ---- reading a committed message ------------------------------------------

/** The header section of a raw message (up to the first empty line), latin1. */
export function headerSection(raw: Buffer): string {
  const end = raw.indexOf('\r\n\r\n');
  return raw.subarray(0, end < 0 ? raw.length : end + 2).toString('latin1');
}

/** True when the header section of `raw` has a Subject field whose value is exactly `subject`. */
export function hasSubject(raw: Buffer, subject: string): boolean {
  const header = '\r\n' + headerSection(raw);
  const escaped = subject.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`\r\nSubject: ${escaped}\r\n`, 'i').test(header);
}

/** The body of a raw message as on the wire (after the first empty line), still dot-stuffed. */
export function wireBody(raw: Buffer): Buffer {
  const end = raw.indexOf('\r\n\r\n');
  return end < 0 ? EMPTY : raw.subarray(end + 4);
}

/** Undoes dot-stuffing (RFC 5321 4.5.2): a line starting with "." loses that dot. */
export function unstuff(raw: Buffer): Buffer {
  return Buffer.from(raw.toString('latin1').replace(/(^|\r\n)\./g, '$1'), 'latin1');
}

// ---- what the hop must never see -------------------------------------------

const MAILVEIL_VERBS = new Set<HopVerb>(['EHLO', 'HELO', 'XFORWARD', 'MAIL', 'RCPT', 'DATA', 'RSET', 'NOOP', 'QUIT']);

/**
 * Command lines at the hop that mailveil did not make up from its client's
 * envelope: any line in `forbidden` (the commands planted in message
 * bodies), any verb mailveil never sends, and any MAIL/RCPT whose address is
 * not one of `addresses` (the envelopes the test's clients really used).
 */
export function foreignCommands(hop: ScriptedHop, opts: { forbidden: string[]; addresses?: string[] }): string[] {
  const forbidden = new Set(opts.forbidden);
  const allowed = opts.addresses ? new Set(opts.addresses.map((a) => a.toLowerCase())) : undefined;
  return hop.commands().filter((line) => {
    if (forbidden.has(line)) return true;
    const verb = verbOfLine(line);
    if (!MAILVEIL_VERBS.has(verb)) return true;
    if (allowed && (verb === 'MAIL' || verb === 'RCPT')) {
      const addr = /<([^<>]*)>/.exec(line)?.[1]?.toLowerCase();
      return addr === undefined || (addr !== '' && !allowed.has(addr));
    }
    return false;
  });
}

// ---- checks on the relay in front of the hop ------------------------------

/**
 * One value from mailveil's /metrics: the sample `name` whose labels include
 * every pair in `labels`, summed over the matches; undefined when the metric
 * is not exported at all.
 */
export async function metricValue(metricsPort: number, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const res = await fetch(`http://${LOOPBACK}:${metricsPort}/metrics`, { signal: AbortSignal.timeout(3000) });
  const text = await res.text();
  let found = false;
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = new Map<string, string>();
    for (const p of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) have.set(p[1], p[2]);
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) {
      found = true;
      sum += Number(m[3]);
    }
  }
  return found ? sum : undefined;
}

/** The spool files (`<state_dir>/spool/*.spool`) with their sizes and disk use in bytes. */
export function spoolFiles(stateDir: string): { name: string; size: number; disk: number }[] {
  const dir = join(stateDir, 'spool');
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: { name: string; size: number; disk: number }[] = [];
  for (const name of names) {
    if (!name.endsWith('.spool')) continue;
    try {
      const st = statSync(join(dir, name));
      out.push({ name, size: st.size, disk: st.blocks * 512 });
    } catch {
      /* removed meanwhile */
    }
  }
  return out;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---- the two assertions every hardening test makes -------------------------

/** A message a test's client tried to send through the relay. */
export interface SentMessage {
  /** Its Subject, unique in the test. */
  token: string;
  /** The reply the client got to its final dot (undefined: it never got one, e.g. it left). */
  reply?: { code: number; text: string };
  /** The body as the client sent it (dot-stuffed, CRLF), to prove a committed copy is whole. */
  body?: Buffer;
}

/**
 * Nothing acknowledged is lost, nothing is committed twice or damaged:
 *  - a message the client got 2xx for is committed at the hop exactly once;
 *  - any other message is committed at most once;
 *  - every committed copy carries the client's body byte for byte
 *    (pass 2 only rewrites the header), so a truncated copy, or one with
 *    "RSET" spliced in, fails.
 * Returns the problems found (empty when all holds), so a test can assert
 * on the list with the hop's state in the message.
 */
export function deliveryProblems(hop: ScriptedHop, sent: SentMessage[]): string[] {
  const problems: string[] = [];
  for (const m of sent) {
    const copies = hop.copiesOf(m.token);
    const acked = m.reply !== undefined && m.reply.code >= 200 && m.reply.code < 300;
    if (acked && copies.length !== 1) problems.push(`${m.token}: client got ${m.reply!.code} ${m.reply!.text}, but the hop committed ${copies.length} copies`);
    if (!acked && copies.length > 1) problems.push(`${m.token}: not acknowledged, yet committed ${copies.length} times`);
    if (m.body) {
      // A message cut short is not committed, but what did arrive must be the client's bytes, with nothing spliced in.
      for (const t of hop.transactionLog) {
        if (!t.partial || !hasSubject(t.partial, m.token)) continue;
        const got = wireBody(t.partial);
        const at = firstDifference(got, m.body);
        if (at < got.length) {
          problems.push(
            `${m.token}: aborted transfer ${t.id} carried bytes the client never sent, at ${at}: ` + JSON.stringify(got.subarray(Math.max(0, at - 20), at + 40).toString('latin1')),
          );
        }
      }
      for (const c of copies) {
        const got = wireBody(c.raw!);
        if (!got.equals(m.body)) {
          const at = firstDifference(got, m.body);
          problems.push(
            `${m.token}: committed copy ${c.id} differs from what the client sent: ${got.length} bytes vs ${m.body.length}, first difference at ${at}: ` +
              JSON.stringify(got.subarray(Math.max(0, at - 20), at + 40).toString('latin1')),
          );
        }
      }
    }
  }
  return problems;
}

function firstDifference(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

/**
 * What must hold once the relay has settled after a test: no message in
 * flight (`mailveil_messages_in_flight` back to 0, and exported at all), no
 * `*.spool` file left in `<state_dir>/spool`, no transaction left open at the
 * hop on a connection the relay keeps (a pooled connection must be clean),
 * and no order error seen by the hop. Polls up to `timeoutMs` for each,
 * then throws with what it saw.
 */
export async function relaySettledProblems(
  relay: { metricsPort?: number; stateDir: string },
  hop?: ScriptedHop,
  timeoutMs = 8000,
): Promise<string[]> {
  const problems: string[] = [];
  const deadline = Date.now() + timeoutMs;
  const poll = async (check: () => Promise<string | undefined> | string | undefined): Promise<void> => {
    let last: string | undefined;
    do {
      last = await check();
      if (last === undefined) return;
      await sleep(50);
    } while (Date.now() < deadline);
    problems.push(last);
  };
  if (relay.metricsPort !== undefined) {
    const port = relay.metricsPort;
    await poll(async () => {
      const v = await metricValue(port, 'mailveil_messages_in_flight').catch((e: Error) => `metrics unreachable: ${e.message}`);
      if (typeof v === 'string') return v;
      if (v === undefined) return 'mailveil_messages_in_flight is not exported';
      return v === 0 ? undefined : `mailveil_messages_in_flight is ${v}, not 0`;
    });
  }
  await poll(() => {
    const left = spoolFiles(relay.stateDir);
    return left.length ? `spool files left: ${left.map((f) => `${f.name} (${f.size} B)`).join(', ')}` : undefined;
  });
  if (hop) {
    await poll(() => {
      const open = hop.openTransactions();
      return open.length ? `transactions still open at the hop: ${open.map((t) => `${t.id} ${t.state} ${t.mail}`).join('; ')}` : undefined;
    });
    const errs = hop.protocolErrors();
    if (errs.length) problems.push(`the hop saw commands out of order: ${errs.join('; ')}`);
  }
  return problems;
}

/**
 * Collects every broken expectation of a test instead of stopping at the
 * first, so one run shows the whole picture (a relay that loses a message
 * usually also leaves a transaction open and a gauge up). `assertNone()`
 * fails with the list and the hop's state.
 */
export class Findings {
  readonly list: string[] = [];

  /** Records `what` unless `ok`. */
  check(ok: unknown, what: string): boolean {
    if (!ok) this.list.push(what);
    return Boolean(ok);
  }

  /** Records a mismatch between `actual` and `expected` (compared as JSON). */
  equal(actual: unknown, expected: unknown, what: string): boolean {
    const a = JSON.stringify(actual);
    const e = JSON.stringify(expected);
    return this.check(a === e, `${what}: got ${a}, expected ${e}`);
  }

  add(problems: string[]): void {
    this.list.push(...problems);
  }

  assertNone(context = ''): void {
    if (this.list.length === 0) return;
    throw new Error(`${this.list.length} problem(s):\n${this.list.map((p) => ' - ' + p).join('\n')}${context ? '\n' + context : ''}`);
  }
}
