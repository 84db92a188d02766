/*
 * A stub DNS client that reads the AD bit of a validating resolver.
 *
 * Node's resolver (c-ares) exposes no header flags, and DANE (RFC 7672)
 * needs the AD bit: "these records were validated by DNSSEC". So mailveil
 * asks the resolvers in `dns.servers` itself, with dns-packet as the wire
 * codec. Each query sets RD, AD (RFC 6840 5.7: ask for the AD bit without
 * needing DO) and EDNS0 with DO (RFC 3225), advertising a 1232-byte UDP
 * payload (the DNS flag day 2020 value). A truncated UDP answer is asked
 * again over TCP (RFC 7766).
 *
 * Servers are tried in order. Only "no answer" moves on to the next server:
 * a timeout, a socket error, an undecodable message, or REFUSED. Any rcode
 * the server did give, SERVFAIL above all, is the answer: a validating
 * resolver says SERVFAIL for bogus data, and asking another resolver until
 * one says something else would turn a failed validation into a pass.
 *
 * The AD bit is only as trustworthy as the path to the resolver (RFC 6698
 * 4.1): run it on the same host or a trusted link. `timeoutMs` bounds the
 * exchange with one server (UDP and any TCP retry), so a query takes at most
 * servers x timeoutMs.
 */
import { randomInt } from 'node:crypto';
import { isIP } from 'node:net';
import { encode, AUTHENTIC_DATA, DNSSEC_OK, RECURSION_DESIRED, type Answer } from 'dns-packet';
import { DnsError } from './errors';
import { requireServiceName } from './names';
import { exchangeTcp, exchangeUdp, serverName, type Asked, type DnsServer, type Received } from './transport';

export type { DnsServer } from './transport';

/** The record types mailveil asks for. */
export type QueryType = 'A' | 'AAAA' | 'MX' | 'TXT' | 'TLSA' | 'CNAME';

export const EDNS_UDP_PAYLOAD = 1232;

export interface DnsClientOptions {
  /** Validating resolvers, tried in order (IP addresses, not names). */
  servers: DnsServer[];
  /** Per server: the UDP exchange plus any TCP retry. */
  timeoutMs: number;
}

export interface DnsResponse {
  /** As dns-packet names it: NOERROR, NXDOMAIN, SERVFAIL, ... */
  rcode: string;
  /** The AD bit: the resolver validated the whole answer with DNSSEC. */
  secure: boolean;
  /** The answer section, class IN only. */
  answers: Answer[];
  /** Who answered, for logs. */
  server: DnsServer;
}

/** What the lookups need; tests and other layers may supply their own. */
export interface DnsQuerier {
  query(name: string, type: QueryType): Promise<DnsResponse>;
}

export function encodeQuery(id: number, name: string, type: QueryType): Buffer {
  return encode({
    type: 'query',
    id,
    flags: RECURSION_DESIRED | AUTHENTIC_DATA,
    questions: [{ type, class: 'IN', name }],
    additionals: [{ type: 'OPT', name: '.', udpPayloadSize: EDNS_UDP_PAYLOAD, extendedRcode: 0, ednsVersion: 0, flags: DNSSEC_OK, flag_do: true, options: [] }],
  });
}

export class DnsClient implements DnsQuerier {
  private readonly servers: readonly DnsServer[];
  private readonly timeoutMs: number;

  constructor(opts: DnsClientOptions) {
    if (opts.servers.length === 0) throw new TypeError('DnsClient: at least one server');
    for (const s of opts.servers) {
      if (!isIP(s.host)) throw new TypeError(`DnsClient: server ${s.host} is not an IP address`);
      if (!Number.isInteger(s.port) || s.port < 1 || s.port > 65535) throw new TypeError(`DnsClient: bad port ${s.port}`);
    }
    if (!(opts.timeoutMs > 0)) throw new TypeError(`DnsClient: bad timeout ${opts.timeoutMs}`);
    this.servers = opts.servers.map((s) => ({ ...s }));
    this.timeoutMs = opts.timeoutMs;
  }

  async query(name: string, type: QueryType): Promise<DnsResponse> {
    const qname = requireServiceName(name);
    const failures: DnsError[] = [];
    for (const server of this.servers) {
      let packet: Received;
      try {
        packet = await this.ask(server, qname, type);
      } catch (e) {
        if (!(e instanceof DnsError)) throw e;
        failures.push(e);
        continue;
      }
      if (packet.rcode === 'REFUSED') {
        failures.push(new DnsError('refused', `${serverName(server)} refused`));
        continue;
      }
      const answers = (packet.answers ?? []).filter((a) => a.type !== 'OPT' && (a.class ?? 'IN') === 'IN');
      return { rcode: packet.rcode ?? 'NOERROR', secure: packet.flag_ad, answers, server };
    }
    const last = failures[failures.length - 1];
    throw new DnsError(last.kind, `${type} ${qname}: ${failures.map((f) => f.message).join('; ')}`);
  }

  private async ask(server: DnsServer, name: string, type: QueryType): Promise<Received> {
    const asked: Asked = { id: randomInt(0x10000), name, type };
    const query = encodeQuery(asked.id, name, type);
    const deadline = Date.now() + this.timeoutMs;
    const udp = await exchangeUdp(server, query, asked, deadline);
    return udp.flag_tc ? exchangeTcp(server, query, asked, deadline) : udp;
  }
}
