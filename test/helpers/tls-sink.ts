/*
 * A STARTTLS-capable next hop for the outbound TLS tests and the relay
 * benchmark, on smtp-server (smtp-sink cannot speak TLS). It accepts every
 * message and records, per message, whether it came over TLS, with which
 * protocol and cipher, and the subject of the client certificate if one was
 * presented. Options: hide STARTTLS, present any certificate (a wrong
 * name, an expired one, one from another CA), ask for a client certificate.
 * Listens on 127.0.0.1 on a port chosen at run time.
 */
import { SMTPServer, type SMTPServerSession } from 'smtp-server';
import type { TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { Issued } from './test-pki';
import { LOOPBACK, waitFor } from './ports';

export interface TlsSinkOptions {
  /** The certificate (its chain) and key the sink presents. */
  cert: Issued;
  /** Do not offer STARTTLS (a next hop without TLS). */
  hideSTARTTLS?: boolean;
  /** Ask the client for a certificate (any is accepted; its subject is recorded). */
  requestCert?: boolean;
  /** Keep message bytes (default true; the benchmark turns it off). */
  keepData?: boolean;
  /** Do not advertise REQUIRETLS after STARTTLS (smtp-server offers it on TLS sessions by default). */
  hideREQUIRETLS?: boolean;
  /** Recipients answered `550 5.1.1` at RCPT (an MX that knows its users). */
  refuseRcpt?: RegExp;
  /** Where to listen (default 127.0.0.1 on a free port); MX tests use 127.0.0.x:25. */
  host?: string;
  port?: number;
}

export interface TlsSinkSession {
  secure: boolean;
  /** e.g. TLSv1.3 */
  protocol?: string;
  cipher?: string;
  /** The client certificate's subject CN, when one was presented. */
  clientCert?: string;
  /** The SNI name the client sent. */
  servername?: string;
}

export interface TlsSinkMessage extends TlsSinkSession {
  from: string;
  to: string[];
  data: Buffer;
  /** REQUIRETLS was on MAIL FROM (RFC 8689). */
  requireTls: boolean;
}

export interface TlsSink {
  port: number;
  address: string;
  messages: TlsSinkMessage[];
  /** MAIL FROM commands received (tls check must send none). */
  mailCommands(): number;
  /** Connections, and of those how many completed STARTTLS. */
  sessions(): { connections: number; secured: number };
  /** Messages accepted (also when keepData is off). */
  count(): number;
  waitForMessages(n: number, timeoutMs?: number): Promise<TlsSinkMessage[]>;
  stop(): Promise<void>;
}

export async function startTlsSink(opts: TlsSinkOptions): Promise<TlsSink> {
  const sessions = new Map<string, TlsSinkSession>();
  const messages: TlsSinkMessage[] = [];
  let count = 0;
  let mails = 0;
  let connections = 0;
  let secured = 0;
  const keep = opts.keepData ?? true;
  const info = (s: SMTPServerSession): TlsSinkSession => sessions.get(s.id) ?? { secure: false };
  const server = new SMTPServer({
    secure: false,
    key: opts.cert.key,
    cert: opts.cert.chain,
    hideSTARTTLS: Boolean(opts.hideSTARTTLS),
    hideREQUIRETLS: Boolean(opts.hideREQUIRETLS),
    disabledCommands: opts.hideSTARTTLS ? ['AUTH', 'STARTTLS'] : ['AUTH'],
    authOptional: true,
    logger: false,
    disableReverseLookup: true,
    size: 200 * 1024 * 1024,
    ...(opts.requestCert ? { requestCert: true, rejectUnauthorized: false } : {}),
    onMailFrom(_address, _session, cb) {
      mails++;
      cb();
    },
    onRcptTo(address, _session, cb) {
      if (opts.refuseRcpt?.test(address.address)) return cb(Object.assign(new Error('5.1.1 No such user here'), { responseCode: 550 }));
      cb();
    },
    onConnect(session, cb) {
      connections++;
      sessions.set(session.id, { secure: false });
      cb();
    },
    onSecure(socket, session, cb) {
      secured++;
      const tls = socket as TLSSocket;
      const peer = tls.getPeerCertificate?.();
      sessions.set(session.id, {
        secure: true,
        protocol: tls.getProtocol?.() ?? undefined,
        cipher: tls.getCipher?.()?.name,
        clientCert: peer && peer.subject ? String(peer.subject.CN) : undefined,
        servername: (session as SMTPServerSession & { servername?: string }).servername,
      });
      cb();
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => keep && chunks.push(c));
      stream.on('end', () => {
        count++;
        if (keep) {
          messages.push({
            ...info(session),
            secure: Boolean(session.secure),
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            to: session.envelope.rcptTo.map((r) => r.address),
            data: Buffer.concat(chunks),
            requireTls: Boolean((session.envelope as { requireTLS?: boolean }).requireTLS),
          });
        }
        cb(null, 'Ok: queued');
      });
    },
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? LOOPBACK, () => resolve());
  });
  const port = (server.server.address() as AddressInfo).port;
  return {
    port,
    address: `${opts.host ?? LOOPBACK}:${port}`,
    messages,
    mailCommands: () => mails,
    sessions: () => ({ connections, secured }),
    count: () => count,
    waitForMessages(n, timeoutMs = 15_000) {
      return waitFor(() => (count >= n ? messages : undefined), { timeoutMs, what: `${n} message(s) at the TLS sink :${port}` });
    },
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
