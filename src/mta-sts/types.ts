/*
 * The vocabulary of the MTA-STS library (RFC 8461): the lookups it is given
 * (it owns no DNS client: the TXT lookup and the host-to-address lookup are
 * injected, so dns/ can be written and tested on its own), a parsed policy,
 * and the RFC 8460 (TLS-RPT) failure types it reports.
 */

/** A TXT lookup of one name. `records` holds each record's strings already joined (RFC 7208 3.3 style). */
export type TxtLookup = (name: string) => Promise<{ kind: 'ok'; records: string[] } | { kind: 'none' } | { kind: 'temp' }>;

/** Host name to one IP address (v4 or v6) to connect to; rejects when there is none. */
export type HostLookup = (host: string) => Promise<string>;

export type StsMode = 'enforce' | 'testing' | 'none';

export interface StsPolicy {
  mode: StsMode;
  /** The `mx` patterns, lower case, without a trailing dot; empty only in mode none. */
  mx: string[];
  /** Seconds, 0..31557600. */
  maxAge: number;
}

/** RFC 8460 4.3 result types this library can give. */
export type TlsRptFailureType = 'sts-policy-fetch-error' | 'sts-policy-invalid' | 'sts-webpki-invalid' | 'validation-failure';

export interface StsFailure {
  type: TlsRptFailureType;
  /** A short reason for logs and `tls check`: never holds a message address. */
  detail: string;
}

/** RFC 8461 3.2: the largest max_age a policy may give (about a year). */
export const MAX_MAX_AGE = 31_557_600;
