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
