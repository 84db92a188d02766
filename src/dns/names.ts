/*
 * Domain names as the DNS layer accepts them: lower-case, without the
 * trailing dot, at most 253 characters, labels of 1 to 63 characters.
 *
 * A host name (an MX exchange, a recipient domain, a CNAME target) is
 * letters, digits and inner hyphens (RFC 1123 2.1), and its last label is
 * not all digits, so "10.0.0.1" is never taken for a host name (RFC 3696 2).
 * Internationalised names must arrive as A-labels (xn--...): converting
 * U-labels is the caller's job (url.domainToASCII), not a DNS client's.
 * Names under a service label (_25._tcp.mx, _mta-sts.example) may also
 * start a label with one underscore. These checks matter because the names
 * come from envelopes and from DNS answers, both of which strangers write.
 */
import { DnsError } from './errors';

export const MAX_NAME_LENGTH = 253;
export const MAX_LABEL_LENGTH = 63;

const HOST_LABEL = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;
const SERVICE_LABEL = /^_?[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;

function normalise(name: string, label: RegExp): string | undefined {
  if (typeof name !== 'string') return undefined;
  const lower = name.toLowerCase();
  const bare = lower.endsWith('.') ? lower.slice(0, -1) : lower;
  if (bare.length === 0 || bare.length > MAX_NAME_LENGTH) return undefined;
  const labels = bare.split('.');
  if (labels.some((l) => l.length > MAX_LABEL_LENGTH || !label.test(l))) return undefined;
  if (/^[0-9]+$/.test(labels[labels.length - 1])) return undefined;
  return bare;
}

/** The host name in canonical form, or undefined when it is not one. */
export function canonicalHost(name: string): string | undefined {
  return normalise(name, HOST_LABEL);
}

/** Like canonicalHost, but labels may start with "_" (TXT and TLSA owners). */
export function canonicalServiceName(name: string): string | undefined {
  return normalise(name, SERVICE_LABEL);
}

/** canonicalHost, or a DnsError of kind 'name'. */
export function requireHost(name: string): string {
  const host = canonicalHost(name);
  if (host === undefined) throw new DnsError('name', `not a valid host name: ${JSON.stringify(String(name).slice(0, 80))}`);
  return host;
}

/** canonicalServiceName, or a DnsError of kind 'name'. */
export function requireServiceName(name: string): string {
  const n = canonicalServiceName(name);
  if (n === undefined) throw new DnsError('name', `not a valid DNS name: ${JSON.stringify(String(name).slice(0, 80))}`);
  return n;
}
