/*
 * The vocabulary of SMTP TLS Reporting (RFC 8460) as mailveil counts it:
 * the policy a session was held to (4.4 `policy`), and the result types of
 * 4.3 a failed session is counted under. What delivery code hands to
 * TlsRptStore.record() (store.ts) is a TlsRptRecord.
 *
 * Privacy: a record names the receiving side only (policy domain, MX host
 * names and patterns, the MX's IP and HELO) and our own sending IP. There is
 * no field for an envelope address or a local part, and the free-text
 * fields (HELO, failure-reason-code) are scrubbed of anything that looks
 * like an address (counts.ts).
 */

/** RFC 8460 4.4 `policy-type`. */
export const POLICY_TYPES = ['tlsa', 'sts', 'no-policy-found'] as const;
export type PolicyType = (typeof POLICY_TYPES)[number];

/** RFC 8460 4.3: 4.3.1 negotiation, 4.3.2.1 DANE, 4.3.2.2 MTA-STS, 4.3.3 general. */
export const RESULT_TYPES = [
  'starttls-not-supported',
  'certificate-host-mismatch',
  'certificate-expired',
  'certificate-not-trusted',
  'validation-failure',
  'tlsa-invalid',
  'dnssec-invalid',
  'dane-required',
  'sts-policy-fetch-error',
  'sts-policy-invalid',
  'sts-webpki-invalid',
] as const;
export type ResultType = (typeof RESULT_TYPES)[number];

export interface TlsRptPolicy {
  type: PolicyType;
  /**
   * `policy-string`: the TLSA records ("3 1 1 ab12...") or the MTA-STS policy
   * file, one line per string; empty for no-policy-found.
   */
  strings: readonly string[];
  /** `mx-host`: the policy's MX patterns (`*.mail.example`); may be empty. */
  mxHosts: readonly string[];
}

/**
 * One failed session. The receiving side's names are optional because a
 * policy failure can come before any MX was reached (an MTA-STS policy that
 * could not be fetched, a TLSA lookup that did not validate).
 */
export interface TlsRptFailure {
  type: ResultType;
  /** Our own address the session left from. */
  sendingMtaIp?: string;
  receivingMxHostname?: string;
  /** The EHLO name the MX announced. */
  receivingMxHelo?: string;
  receivingIp?: string;
  /** A TLS alert or other failure code, e.g. `X509_V_ERR_CERT_HAS_EXPIRED`. */
  failureReasonCode?: string;
}

export interface TlsRptRecord {
  /** The UTC day the session counts for: `YYYY-MM-DD` or a time; default now. */
  day?: string | Date;
  /** The policy domain (the recipient domain); IDNs are stored as A-labels. */
  policyDomain: string;
  policy: TlsRptPolicy;
  result: 'success' | TlsRptFailure;
}
