/*
 * The one error of the DNS layer. A query that got no usable answer from any
 * server in `dns.servers` throws this; the lookups turn it into a `temp`
 * result, so delivery defers. An answer the resolver did give (NXDOMAIN,
 * SERVFAIL...) is never an error here: it is a value the caller decides on.
 */
import type { MvCode } from '../errors';

/**
 *  - timeout:   no matching answer within the timeout (from the last server tried)
 *  - network:   the socket failed (ICMP port unreachable, connection reset...)
 *  - refused:   every server answered REFUSED
 *  - malformed: an answer with our id that dns-packet cannot decode
 *  - name:      the name asked for is not a valid host name (nothing was sent)
 */
export type DnsFailure = 'timeout' | 'network' | 'refused' | 'malformed' | 'name';

export class DnsError extends Error {
  readonly code: MvCode = 'MV_DNS';
  constructor(
    readonly kind: DnsFailure,
    message: string,
  ) {
    super(message);
  }
}
