/*
 * One DNS message exchange with one server, over UDP or TCP (RFC 1035 4.2,
 * RFC 7766). The client (client.ts) chooses the server and the transport;
 * this file only sends the query and waits for the answer to it.
 *
 * What counts as the answer: a message with our id, the QR bit, and our one
 * question (name compared case-insensitively, type, class IN). Anything
 * else is dropped and the wait goes on until the deadline: a stray or
 * spoofed datagram must not end a query early, let alone answer it. The UDP
 * socket is connect()ed, so the kernel already drops datagrams from any
 * other address and port; its source port is an ephemeral one, which Linux
 * picks at random.
 *
 * A message with our id whose framing does not fit its length (framing.ts),
 * or that dns-packet cannot decode, is a DnsError of kind 'malformed'; a
 * decoder's exception never escapes as anything else.
 * Limits: UDP messages are at most 64 KiB by construction, and a TCP
 * connection may deliver at most MAX_TCP_BYTES before it is given up on.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, isIPv6, type Socket } from 'node:net';
import { decode, type DecodedPacket } from 'dns-packet';
import { DnsError } from './errors';
import { framingError } from './framing';

export interface DnsServer {
  host: string;
  port: number;
}

/** dns-packet decodes the rcode too; its type declarations leave it out. */
export type Received = DecodedPacket & { rcode?: string };

/** What the answer must repeat: our id and our question. */
export interface Asked {
  id: number;
  /** Canonical: lower-case, no trailing dot. */
  name: string;
  type: string;
}

/** A TCP answer is at most 65535 bytes; a few unmatched ones are tolerated, not a stream. */
export const MAX_TCP_BYTES = 4 * (2 + 65535);

export const serverName = (s: DnsServer) => (isIPv6(s.host) ? `[${s.host}]:${s.port}` : `${s.host}:${s.port}`);

function asksOurQuestion(p: DecodedPacket, asked: Asked): boolean {
  const qs = p.questions ?? [];
  if (p.type !== 'response' || qs.length !== 1) return false;
  const q = qs[0];
  const name = q.name.toLowerCase().replace(/\.$/, '');
  return name === asked.name && q.type === asked.type && (q.class ?? 'IN') === 'IN';
}

type Reading = { kind: 'answer'; packet: Received } | { kind: 'drop' } | { kind: 'malformed'; why: string };

/** Decide what one received message is. */
export function readMessage(msg: Buffer, asked: Asked): Reading {
  if (msg.length < 2 || msg.readUInt16BE(0) !== asked.id) return { kind: 'drop' };
  const broken = framingError(msg);
  if (broken) return { kind: 'malformed', why: broken };
  let packet: Received;
  try {
    packet = decode(msg);
  } catch (e) {
    return { kind: 'malformed', why: (e as Error).message };
  }
  return asksOurQuestion(packet, asked) ? { kind: 'answer', packet } : { kind: 'drop' };
}

/** Settles once; closes the socket and the timer on the way out. */
function settleOnce<T>(resolve: (v: T) => void, reject: (e: Error) => void, close: () => void, deadline: number, server: DnsServer, via: string) {
  let done = false;
  const timer = setTimeout(() => finish(new DnsError('timeout', `no answer from ${serverName(server)} over ${via}`)), Math.max(0, deadline - Date.now()));
  function finish(err: Error | null, value?: T) {
    if (done) return;
    done = true;
    clearTimeout(timer);
    try { close(); } catch { /* already closed */ }
    if (err) reject(err);
    else resolve(value as T);
  }
  return finish;
}

export function exchangeUdp(server: DnsServer, query: Buffer, asked: Asked, deadline: number): Promise<Received> {
  return new Promise((resolve, reject) => {
    const sock: UdpSocket = createSocket(isIPv6(server.host) ? 'udp6' : 'udp4');
    const finish = settleOnce<Received>(resolve, reject, () => sock.close(), deadline, server, 'UDP');
    sock.on('error', (e) => finish(new DnsError('network', `${serverName(server)} over UDP: ${e.message}`)));
    sock.on('message', (msg) => {
      const r = readMessage(msg, asked);
      if (r.kind === 'answer') finish(null, r.packet);
      else if (r.kind === 'malformed') finish(new DnsError('malformed', `${serverName(server)} over UDP: ${r.why}`));
    });
    sock.connect(server.port, server.host, () => {
      sock.send(query, (e) => { if (e) finish(new DnsError('network', `${serverName(server)} over UDP: ${e.message}`)); });
    });
  });
}

export function exchangeTcp(server: DnsServer, query: Buffer, asked: Asked, deadline: number): Promise<Received> {
  return new Promise((resolve, reject) => {
    const sock: Socket = connect({ host: server.host, port: server.port });
    const finish = settleOnce<Received>(resolve, reject, () => sock.destroy(), deadline, server, 'TCP');
    const fail = (kind: 'network' | 'malformed', why: string) => finish(new DnsError(kind, `${serverName(server)} over TCP: ${why}`));
    let pending = Buffer.alloc(0);
    let received = 0;
    sock.on('connect', () => {
      const frame = Buffer.alloc(2 + query.length);
      frame.writeUInt16BE(query.length, 0);
      query.copy(frame, 2);
      sock.write(frame);
    });
    sock.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received > MAX_TCP_BYTES) return fail('malformed', `more than ${MAX_TCP_BYTES} bytes without our answer`);
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 2) {
        const len = pending.readUInt16BE(0);
        if (pending.length < 2 + len) break;
        const r = readMessage(pending.subarray(2, 2 + len), asked);
        pending = pending.subarray(2 + len);
        if (r.kind === 'answer') return finish(null, r.packet);
        if (r.kind === 'malformed') return fail('malformed', r.why);
      }
    });
    sock.on('error', (e) => fail('network', e.message));
    sock.on('close', () => fail('network', 'connection closed before an answer'));
  });
}
