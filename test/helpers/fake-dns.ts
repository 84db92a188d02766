/*
 * An in-process fake DNS server on 127.0.0.1 (UDP and TCP on one port),
 * for unit tests of the DNS client's transport rules: what it does with
 * truncation, stray ids, silence, SERVFAIL and garbage. It knows nothing
 * about DNSSEC; the AD bit is whatever the test's handler sets. Anything
 * about real validation belongs to the unbound world (dns-world.ts).
 */
import { createSocket } from 'node:dgram';
import { createServer, type Socket } from 'node:net';
import { decode, encode, type Answer, type DecodedPacket } from 'dns-packet';
import { freePort, LOOPBACK } from './ports';

export type Via = 'udp' | 'tcp';

export interface Seen {
  via: Via;
  packet: DecodedPacket;
  /** The client's source port. */
  port: number;
}

/** Return the raw messages to send back (none: stay silent). */
export type Handler = (q: DecodedPacket, via: Via) => Buffer[];

export interface FakeDns {
  server: { host: string; port: number };
  seen: Seen[];
  close(): Promise<void>;
}

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
export const FLAG = { TC: 1 << 9, RD: 1 << 8, RA: 1 << 7, AD: 1 << 5 } as const;

/** A response to q: same id and question unless overridden. */
export function reply(q: DecodedPacket, opts: { rcode?: number; flags?: number; answers?: Answer[]; id?: number; name?: string } = {}): Buffer {
  const question = { ...q.questions![0], ...(opts.name ? { name: opts.name } : {}) };
  return encode({
    type: 'response',
    id: opts.id ?? q.id,
    flags: FLAG.RD | FLAG.RA | (opts.flags ?? 0) | (opts.rcode ?? 0),
    questions: [question],
    answers: opts.answers ?? [],
  });
}

export async function startFakeDns(handler: Handler): Promise<FakeDns> {
  const port = await freePort();
  const seen: Seen[] = [];
  const udp = createSocket('udp4');
  udp.on('message', (msg, rinfo) => {
    const packet = decode(msg);
    seen.push({ via: 'udp', packet, port: rinfo.port });
    for (const out of handler(packet, 'udp')) udp.send(out, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => udp.bind(port, LOOPBACK, resolve));
  const sockets = new Set<Socket>();
  const tcp = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        const packet = decode(msg);
        seen.push({ via: 'tcp', packet, port: sock.remotePort ?? 0 });
        for (const out of handler(packet, 'tcp')) {
          const len = Buffer.alloc(2);
          len.writeUInt16BE(out.length);
          sock.write(Buffer.concat([len, out]));
        }
      }
    });
  });
  await new Promise<void>((resolve) => tcp.listen(port, LOOPBACK, resolve));
  return {
    server: { host: LOOPBACK, port },
    seen,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
      await new Promise<void>((resolve) => udp.close(() => resolve()));
    },
  };
}
