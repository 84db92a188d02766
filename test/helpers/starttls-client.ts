/*
 * A line-oriented SMTP client whose socket can be upgraded to TLS after
 * STARTTLS: what a test needs to send REQUIRETLS (RFC 8689), which
 * smtp-server offers only on a TLS session.
 */
import assert from 'node:assert/strict';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { ClientReply } from './smtp-client';

/** A line-oriented SMTP client whose socket can be upgraded to TLS. */
export class StartTlsClient {
  private buf = '';
  private lines: string[] = [];
  private replies: ClientReply[] = [];
  private waiter?: (r: ClientReply) => void;
  private constructor(private sock: Duplex) {
    this.listen(sock);
  }

  static async open(port: number): Promise<{ c: StartTlsClient; greeting: ClientReply }> {
    const c = new StartTlsClient(netConnect({ port, host: '127.0.0.1' }));
    return { c, greeting: await c.reply() };
  }

  private listen(sock: Duplex): void {
    sock.setEncoding('latin1');
    sock.on('error', () => undefined);
    sock.on('data', (d: string) => {
      this.buf += d;
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl).replace(/\r$/, '');
        this.buf = this.buf.slice(nl + 1);
        this.lines.push(line);
        if (line[3] === '-') continue;
        const r = { code: Number(line.slice(0, 3)), text: this.lines.map((l) => l.slice(4)).join('\n') };
        this.lines = [];
        if (this.waiter) {
          const w = this.waiter;
          this.waiter = undefined;
          w(r);
        } else this.replies.push(r);
      }
    });
  }

  reply(): Promise<ClientReply> {
    const r = this.replies.shift();
    if (r) return Promise.resolve(r);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no SMTP reply within 20 s')), 20_000);
      this.waiter = (x) => {
        clearTimeout(t);
        resolve(x);
      };
    });
  }

  cmd(line: string): Promise<ClientReply> {
    this.sock.write(line + '\r\n');
    return this.reply();
  }

  /** STARTTLS, the handshake (any certificate: mailveil's inbound side is not what is tested), EHLO again. */
  async starttls(): Promise<ClientReply> {
    const r = await this.cmd('STARTTLS');
    assert.equal(r.code, 220, r.text);
    this.sock.removeAllListeners('data');
    const secure = tlsConnect({ socket: this.sock as never, rejectUnauthorized: false, servername: 'mailveil.test.example' });
    await new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
    this.sock = secure;
    this.listen(secure);
    return this.cmd('EHLO client.example.org');
  }

  /** `from` is the whole MAIL line (parameters included); one recipient. */
  async send(from: string, body: string, rcptTo: string): Promise<ClientReply> {
    const mail = await this.cmd(from);
    if (mail.code !== 250) return mail;
    const rcpt = await this.cmd(`RCPT TO:<${rcptTo}>`);
    if (rcpt.code !== 250) return rcpt;
    const data = await this.cmd('DATA');
    if (data.code !== 354) return data;
    this.sock.write(body + '\r\n.\r\n');
    return this.reply();
  }

  close(): void {
    this.sock.end('QUIT\r\n');
  }
}

