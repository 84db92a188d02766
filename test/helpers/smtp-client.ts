/*
 * A raw SMTP client for system tests: it sends exactly the bytes a test
 * gives it (smuggling payloads, bare LFs, pipelined commands) and parses
 * the replies, so tests can assert on what a real client would see.
 */
import { connect, type Socket } from 'node:net';

export interface ClientReply {
  code: number;
  text: string;
}

export class RawSmtp {
  private buf = '';
  private lines: string[] = [];
  private queue: ClientReply[] = [];
  private waiters: ((r: ClientReply) => void)[] = [];
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => this.onData(d));
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w({ code: 0, text: 'connection closed' });
    });
    socket.on('error', () => undefined);
  }

  static async open(port: number, host = '127.0.0.1'): Promise<{ client: RawSmtp; greeting: ClientReply }> {
    const socket = connect({ port, host });
    const client = new RawSmtp(socket);
    const greeting = await client.reply();
    return { client, greeting };
  }

  reply(timeoutMs = 20_000): Promise<ClientReply> {
    const r = this.queue.shift();
    if (r) return Promise.resolve(r);
    if (this.closed) return Promise.resolve({ code: 0, text: 'connection closed' });
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no SMTP reply within ' + timeoutMs + ' ms')), timeoutMs);
      this.waiters.push((x) => {
        clearTimeout(t);
        resolve(x);
      });
    });
  }

  async cmd(line: string): Promise<ClientReply> {
    this.socket.write(line + '\r\n');
    return this.reply();
  }

  write(data: string | Buffer): Promise<void> {
    return new Promise((resolve) => (this.socket.write(data) ? resolve() : this.socket.once('drain', resolve)));
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(d: string): void {
    this.buf += d;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).replace(/\r$/, '');
      this.buf = this.buf.slice(nl + 1);
      this.lines.push(line);
      if (line[3] === '-') continue;
      const r = { code: Number(line.slice(0, 3)), text: this.lines.map((l) => l.slice(4)).join('\n') };
      this.lines = [];
      const w = this.waiters.shift();
      if (w) w(r);
      else this.queue.push(r);
    }
  }
}

export interface SendResult {
  mail: ClientReply;
  rcpt: ClientReply[];
  data?: ClientReply;
  final?: ClientReply;
}

/** One transaction on an open session. `body` is sent as is, then "\r\n.\r\n" unless `raw` is set. */
export async function transaction(
  c: RawSmtp,
  opts: { from: string; to: string[]; body: string | Buffer; mailParams?: string; rcptParams?: string; raw?: boolean },
): Promise<SendResult> {
  const mail = await c.cmd(`MAIL FROM:<${opts.from}>${opts.mailParams ? ' ' + opts.mailParams : ''}`);
  const rcpt: ClientReply[] = [];
  if (mail.code !== 250) return { mail, rcpt };
  for (const to of opts.to) rcpt.push(await c.cmd(`RCPT TO:<${to}>${opts.rcptParams ? ' ' + opts.rcptParams : ''}`));
  if (!rcpt.some((r) => r.code === 250)) return { mail, rcpt };
  const data = await c.cmd('DATA');
  if (data.code !== 354) return { mail, rcpt, data };
  await c.write(opts.body);
  if (!opts.raw) await c.write('\r\n.\r\n');
  return { mail, rcpt, data, final: await c.reply(60_000) };
}

/** Connect, EHLO, one transaction, QUIT. */
export async function sendOne(port: number, opts: Parameters<typeof transaction>[1] & { preamble?: string[] }): Promise<SendResult> {
  const { client } = await RawSmtp.open(port);
  try {
    await client.cmd('EHLO client.example.org');
    for (const line of opts.preamble ?? []) await client.cmd(line);
    return await transaction(client, opts);
  } finally {
    client.socket.end('QUIT\r\n');
  }
}

export function message(subject: string, body: string, extraHeaders = ''): string {
  return `From: <sender@example.com>\r\nTo: <rcpt@example.net>\r\nSubject: ${subject}\r\nMessage-ID: <${subject.replace(/\W/g, '')}.1@mail.example.com>\r\n${extraHeaders}\r\n${body}`;
}

// ---- helpers for the hardening tests (disconnects, stalls, smuggling) ------

/** Connect and say EHLO; the session is ready for MAIL. */
export async function openSession(port: number, helo = 'client.example.org'): Promise<RawSmtp> {
  const { client, greeting } = await RawSmtp.open(port);
  if (greeting.code !== 220) {
    client.close();
    throw new Error(`no 220 greeting: ${greeting.code} ${greeting.text}`);
  }
  const ehlo = await client.cmd(`EHLO ${helo}`);
  if (ehlo.code !== 250) {
    client.close();
    throw new Error(`EHLO refused: ${ehlo.code} ${ehlo.text}`);
  }
  return client;
}

/** MAIL, each RCPT and DATA, one at a time; stops at the first refusal. `data` is set only if DATA was sent. */
export async function envelope(c: RawSmtp, from: string, to: string[]): Promise<{ mail: ClientReply; rcpt: ClientReply[]; data?: ClientReply }> {
  const mail = await c.cmd(`MAIL FROM:<${from}>`);
  const rcpt: ClientReply[] = [];
  if (mail.code !== 250) return { mail, rcpt };
  for (const t of to) rcpt.push(await c.cmd(`RCPT TO:<${t}>`));
  if (!rcpt.some((r) => r.code === 250)) return { mail, rcpt };
  return { mail, rcpt, data: await c.cmd('DATA') };
}

/**
 * Writes `data` in slices, waiting for 'drain' between them, and resolves
 * with the bytes actually handed to the socket: unlike RawSmtp.write it also
 * resolves when the server closes the connection under it (or after
 * timeoutMs), so a test never hangs on a server that stopped reading.
 */
export function writeAll(c: RawSmtp, data: Buffer | string, timeoutMs = 60_000): Promise<number> {
  const buf = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
  const s = c.socket;
  const SLICE = 256 * 1024;
  return new Promise((resolve) => {
    let off = 0;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(t);
      s.off('close', finish);
      s.off('error', finish);
      s.off('drain', pump);
      resolve(off);
    };
    const t = setTimeout(finish, timeoutMs);
    const pump = () => {
      while (!done && off < buf.length) {
        if (s.destroyed || !s.writable) return finish();
        const slice = buf.subarray(off, off + SLICE);
        off += slice.length;
        if (!s.write(slice)) return; // wait for 'drain'
      }
      if (off >= buf.length) finish();
    };
    s.on('close', finish);
    s.on('error', finish);
    s.on('drain', pump);
    pump();
  });
}

/** Lines planted in message bodies; a relay that loses its place would hand them to the next hop as commands. */
export const BODY_COMMANDS = [
  'RSET',
  'MAIL FROM:<attacker@evil.test>',
  'RCPT TO:<victim@evil.test>',
  'DATA',
  'Subject: injected',
  'injected',
  'QUIT',
];

const FILLER_WORDS = 'lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua'.split(' ');

/**
 * A whole message as the client sends it between DATA's 354 and the final
 * dot: CRLF line ends, dot-stuffed, ending with CRLF. Subject and first body
 * line carry `token`, the last line is "END <token>", so a truncated copy is
 * easy to tell. About every `every` bytes the body holds a lone dot (stuffed
 * as "..") followed by RSET, MAIL, RCPT, DATA and a second message: the
 * commands in BODY_COMMANDS. Only letters otherwise, so no DLP rule changes
 * the body, and pass 2 sends it byte for byte. Returns the whole message and
 * its body (the bytes after the header's empty line).
 */
export function messageWithCommands(token: string, size: number, every = 256 * 1024): { message: Buffer; body: Buffer } {
  const header = `From: <sender@example.com>\r\nTo: <rcpt@example.net>\r\nSubject: ${token}\r\nMessage-ID: <${token.replace(/\W/g, '')}@mail.example.com>\r\n\r\n`;
  const block = ['..', ...BODY_COMMANDS.slice(0, 4), 'Subject: injected', '', 'injected', '..', 'QUIT', ''].join('\r\n');
  const parts: string[] = [`BEGIN ${token}\r\n`, block];
  let length = parts[0].length + block.length;
  let sinceBlock = 0;
  let w = 0;
  const end = `END ${token}\r\n`;
  while (length + end.length < size) {
    let line = '';
    while (line.length < 72) line += FILLER_WORDS[w++ % FILLER_WORDS.length] + ' ';
    line = line.trimEnd() + '\r\n';
    parts.push(line);
    length += line.length;
    sinceBlock += line.length;
    if (sinceBlock >= every) {
      parts.push(block);
      length += block.length;
      sinceBlock = 0;
    }
  }
  parts.push(block, end);
  const body = Buffer.from(parts.join(''), 'latin1');
  return { message: Buffer.concat([Buffer.from(header, 'latin1'), body]), body };
}

/**
 * One whole session: EHLO, MAIL, RCPT for each of `to`, DATA, a
 * messageWithCommands() of about `size` bytes, the final dot, QUIT. `reply`
 * is the reply to the dot, or the refusal that ended the transaction early
 * (so `reply.code` is 250 only for an acknowledged message). `body` is what
 * a whole copy at the next hop must carry.
 */
export async function sendWithCommands(
  port: number,
  opts: { token: string; size?: number; from?: string; to?: string[]; replyTimeoutMs?: number },
): Promise<{ token: string; reply: ClientReply; body: Buffer }> {
  const { message, body } = messageWithCommands(opts.token, opts.size ?? 4096);
  const c = await openSession(port);
  try {
    const env = await envelope(c, opts.from ?? 'sender@example.com', opts.to ?? ['rcpt@example.net']);
    if (env.data?.code !== 354) return { token: opts.token, reply: env.data ?? env.rcpt.find((r) => r.code !== 250) ?? env.mail, body };
    await writeAll(c, message);
    await writeAll(c, '.\r\n');
    return { token: opts.token, reply: await c.reply(opts.replyTimeoutMs ?? 30_000), body };
  } finally {
    if (!c.closed) c.socket.end('QUIT\r\n');
    setTimeout(() => c.close(), 1000).unref();
  }
}

/**
 * The planted lines mailveil itself never sends: any of them among the next
 * hop's commands came from a body. (RSET, DATA and QUIT are planted too, but
 * mailveil sends those on its own; a body RSET spliced into a transfer shows
 * in the hop's copy of the body, a body DATA as an order error at the hop.)
 */
export const SMUGGLED_LINES = BODY_COMMANDS.filter((l) => !/^(RSET|DATA|QUIT)$/.test(l));
