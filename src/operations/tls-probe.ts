/*
 * One STARTTLS probe of an MX host, in the manner of posttls-finger: read
 * the banner, EHLO, STARTTLS when offered (RFC 3207), the TLS handshake
 * with SNI = the MX host name, then QUIT. It never sends MAIL, RCPT or
 * DATA. The handshake accepts any certificate (rejectUnauthorized: false,
 * as DANE_CONNECT_OPTIONS) so that everything can be reported: the PKIX
 * result against the system store plus `tls.ca_file` is read from the
 * socket afterwards, and names and DANE are judged by the caller.
 *
 * Limits: each reply line at most MAX_LINE bytes, a reply at most
 * MAX_REPLY_LINES lines; every step has `timeoutMs`. Bytes that arrive
 * after the 220 to STARTTLS and before the handshake are reported as an
 * injection attempt (CVE-2011-0411 style) and the probe stops there.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { DANE_CONNECT_OPTIONS, peerChain } from '../tls/peer-chain';

export const MAX_LINE = 4096;
export const MAX_REPLY_LINES = 100;

export interface ProbeOptions {
  ip: string;
  port: number;
  /** SNI: the MX host name. */
  servername: string;
  /** The EHLO name (`hostname` in the config). */
  helo: string;
  /** Trusted CAs for the PKIX result; undefined: Node's default store. */
  ca?: (string | Buffer)[];
  timeoutMs: number;
}

export interface ProbeResult {
  connected: boolean;
  banner?: string;
  /** The EHLO keywords, upper case. */
  ehlo?: string[];
  starttls: 'offered' | 'not-offered' | 'refused' | 'not-reached';
  tls?: {
    protocol: string | null;
    cipher: string;
    /** PKIX: the chain leads to a trusted CA (name not checked here). */
    trusted: boolean;
    trustError?: string;
    /** Leaf first, as peerChain() gives it. */
    chain: X509Certificate[];
  };
  error?: string;
}

class Conversation {
  private buf = '';
  private waiter: (() => void) | undefined;
  private closed: Error | undefined;

  constructor(
    public socket: Socket,
    private readonly timeoutMs: number,
  ) {
    this.attach(socket);
  }

  attach(socket: Socket): void {
    this.socket = socket;
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.buf += d;
      this.waiter?.();
    });
    socket.on('error', (e) => {
      this.closed = e;
      this.waiter?.();
    });
    socket.on('close', () => {
      this.closed ??= new Error('connection closed');
      this.waiter?.();
    });
  }

  /** Bytes received and not read yet. */
  pending(): number {
    return this.buf.length;
  }

  /** Stops reading from the plain socket (before the TLS handshake takes it over). */
  detach(): void {
    this.socket.removeAllListeners('data');
    this.socket.removeAllListeners('error');
    this.socket.removeAllListeners('close');
    this.socket.on('error', () => undefined);
  }

  send(line: string): void {
    this.socket.write(line + '\r\n');
  }

  async reply(): Promise<{ code: number; lines: string[] }> {
    const lines: string[] = [];
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      const nl = this.buf.indexOf('\n');
      if (nl < 0) {
        if (this.buf.length > MAX_LINE) throw new Error(`reply line over ${MAX_LINE} bytes`);
        if (this.closed) throw this.closed;
        await this.wait(deadline);
        continue;
      }
      const line = this.buf.slice(0, nl).replace(/\r$/, '');
      this.buf = this.buf.slice(nl + 1);
      if (!/^\d{3}([ -]|$)/.test(line)) throw new Error(`not an SMTP reply: ${JSON.stringify(line.slice(0, 80))}`);
      lines.push(line);
      if (lines.length > MAX_REPLY_LINES) throw new Error(`reply over ${MAX_REPLY_LINES} lines`);
      if (line[3] !== '-') return { code: Number(line.slice(0, 3)), lines };
    }
  }

  private wait(deadline: number): Promise<void> {
    const left = deadline - Date.now();
    if (left <= 0) return Promise.reject(new Error(`no reply within ${this.timeoutMs} ms`));
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiter = undefined;
        reject(new Error(`no reply within ${this.timeoutMs} ms`));
      }, left);
      this.waiter = () => {
        clearTimeout(t);
        this.waiter = undefined;
        resolve();
      };
    });
  }
}

function connectPlain(ip: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ host: ip, port });
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error(`connect timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(t);
      resolve(s);
    });
    s.once('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
  });
}

function handshake(socket: Socket, o: ProbeOptions): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ socket, servername: o.servername, ...DANE_CONNECT_OPTIONS, ...(o.ca ? { ca: o.ca } : {}) });
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error(`TLS handshake timed out after ${o.timeoutMs} ms`));
    }, o.timeoutMs);
    s.once('secureConnect', () => {
      clearTimeout(t);
      resolve(s);
    });
    s.once('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
  });
}

export async function probeStartTls(o: ProbeOptions): Promise<ProbeResult> {
  const out: ProbeResult = { connected: false, starttls: 'not-reached' };
  let socket: Socket | undefined;
  try {
    socket = await connectPlain(o.ip, o.port, o.timeoutMs);
    out.connected = true;
    const c = new Conversation(socket, o.timeoutMs);
    const banner = await c.reply();
    out.banner = banner.lines.join(' / ');
    if (banner.code !== 220) throw new Error(`banner is not 220: ${banner.lines[0]}`);
    c.send(`EHLO ${o.helo}`);
    const ehlo = await c.reply();
    if (ehlo.code !== 250) throw new Error(`EHLO refused: ${ehlo.lines[0]}`);
    out.ehlo = ehlo.lines.slice(1).map((l) => l.slice(4).split(' ')[0].toUpperCase());
    if (!out.ehlo.includes('STARTTLS')) {
      out.starttls = 'not-offered';
      c.send('QUIT');
      await c.reply().catch(() => undefined);
      return out;
    }
    c.send('STARTTLS');
    const go = await c.reply();
    if (go.code !== 220) {
      out.starttls = 'refused';
      out.error = `STARTTLS refused: ${go.lines[0]}`;
      c.send('QUIT');
      return out;
    }
    out.starttls = 'offered';
    if (c.pending() > 0) throw new Error('the server sent data after its 220 to STARTTLS (reply injection): not continuing');
    c.detach();
    const tls = await handshake(socket, o);
    socket = tls;
    const cipher = tls.getCipher();
    out.tls = {
      protocol: tls.getProtocol(),
      cipher: cipher?.standardName ?? cipher?.name ?? '',
      trusted: tls.authorized,
      ...(tls.authorizationError ? { trustError: String(tls.authorizationError) } : {}),
      chain: peerChain(tls),
    };
    const ct = new Conversation(tls, o.timeoutMs);
    ct.send('QUIT');
    await ct.reply().catch(() => undefined);
    return out;
  } catch (e) {
    out.error = (e as Error).message;
    return out;
  } finally {
    socket?.destroy();
  }
}
