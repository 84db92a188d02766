/*
 * The policy file, `https://mta-sts.<domain>/.well-known/mta-sts.txt`
 * (RFC 8461 3.2), and MX pattern matching (RFC 8461 4.1).
 *
 *   version: STSv1          required, exactly this (case-sensitive, %s)
 *   mode: enforce           required: enforce | testing | none
 *   mx: mail.example.com    one or more, except in mode none; "*." may lead
 *   max_age: 604800         required, 1-10 digits, 0..31557600 seconds
 *
 * Lines end in LF or CRLF; a field is `name ":" *WSP value *WSP`. Unknown
 * field names (of the extension syntax) are ignored. Strict where the RFC is:
 * a line that is not a field, a repeated version/mode/max_age, a bad value or
 * a missing required field makes the whole policy invalid (a typed error,
 * TLS-RPT `sts-policy-invalid`). Tolerated, as deployed policies need: blank
 * lines (a trailing newline, or two), and a trailing dot on an mx name.
 * Limits: MAX_POLICY_LINES lines, MAX_MX patterns.
 */
import { MAX_MAX_AGE, type StsMode, type StsPolicy } from './types';

export const MAX_POLICY_LINES = 1000;
export const MAX_MX = 100;

export type PolicyErrorKind =
  | 'syntax' // a line that is not `name: value`
  | 'version' // missing, repeated, or not STSv1
  | 'mode' // missing, repeated, or not one of the three
  | 'max_age' // missing, repeated, not 1-10 digits, or over 31557600
  | 'mx' // an mx value that is not a domain or a *. pattern, or none where the mode needs one
  | 'too_long'; // over MAX_POLICY_LINES lines or MAX_MX patterns

export type PolicyParse = { kind: 'ok'; policy: StsPolicy } | { kind: 'invalid'; error: PolicyErrorKind; detail: string };

const FIELD_RE = /^([A-Za-z0-9][A-Za-z0-9_.-]{0,31}):[ \t]*(.*?)[ \t]*$/;
const LABEL_RE = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/** A host or domain name: LDH labels (A-labels for IDNs), at most 253 octets; lower case, no trailing dot. */
export function normaliseName(name: string): string | undefined {
  const n = name.toLowerCase().replace(/\.$/, '');
  if (n.length === 0 || n.length > 253) return undefined;
  return n.split('.').every((l) => LABEL_RE.test(l)) ? n : undefined;
}

/** An mx value: a name, or "*." then a name of at least two labels (RFC 8461 3.2: `["*."] Domain`). */
export function normaliseMxPattern(value: string): string | undefined {
  if (value.startsWith('*.')) {
    const rest = normaliseName(value.slice(2));
    return rest !== undefined && rest.includes('.') ? `*.${rest}` : undefined;
  }
  return normaliseName(value);
}

export function parsePolicy(text: string): PolicyParse {
  const lines = text.split(/\r?\n/);
  if (lines.length > MAX_POLICY_LINES) return invalid('too_long', `over ${MAX_POLICY_LINES} lines`);
  let version: string | undefined;
  let mode: string | undefined;
  let maxAge: string | undefined;
  const mx: string[] = [];
  for (const [i, line] of lines.entries()) {
    if (/^[ \t]*$/.test(line)) continue;
    const m = FIELD_RE.exec(line);
    if (!m) return invalid('syntax', `line ${i + 1} is not "name: value"`);
    const [, name, value] = m;
    switch (name) {
      case 'version':
        if (version !== undefined) return invalid('version', 'version given twice');
        version = value;
        break;
      case 'mode':
        if (mode !== undefined) return invalid('mode', 'mode given twice');
        mode = value;
        break;
      case 'max_age':
        if (maxAge !== undefined) return invalid('max_age', 'max_age given twice');
        maxAge = value;
        break;
      case 'mx': {
        const p = normaliseMxPattern(value);
        if (p === undefined) return invalid('mx', `line ${i + 1}: mx "${value.slice(0, 80)}" is not a domain or *.domain`);
        if (mx.length >= MAX_MX) return invalid('too_long', `over ${MAX_MX} mx patterns`);
        if (!mx.includes(p)) mx.push(p);
        break;
      }
      default:
      // RFC 8461 3.2: other fields are extensions, ignored (even one with an empty value).
    }
  }
  if (version !== 'STSv1') return invalid('version', version === undefined ? 'no version' : `version is not STSv1`);
  if (mode !== 'enforce' && mode !== 'testing' && mode !== 'none') return invalid('mode', mode === undefined ? 'no mode' : `mode "${mode.slice(0, 20)}" is not enforce, testing or none`);
  if (maxAge === undefined) return invalid('max_age', 'no max_age');
  if (!/^[0-9]{1,10}$/.test(maxAge) || Number(maxAge) > MAX_MAX_AGE) return invalid('max_age', `max_age "${maxAge.slice(0, 20)}" is not 0..${MAX_MAX_AGE}`);
  if (mode !== 'none' && mx.length === 0) return invalid('mx', `mode ${mode} needs at least one mx`);
  return { kind: 'ok', policy: { mode: mode as StsMode, mx, maxAge: Number(maxAge) } };
}

function invalid(error: PolicyErrorKind, detail: string): PolicyParse {
  return { kind: 'invalid', error, detail };
}

/**
 * RFC 8461 4.1: `pattern` is a name, matched whole, or "*.rest", which
 * matches exactly one label in front of rest (`*.example.com` takes
 * mail.example.com, not example.com, not a.b.example.com). Case does not
 * matter, nor a trailing dot on either side.
 */
export function mxMatches(pattern: string, host: string): boolean {
  const h = normaliseName(host);
  const p = normaliseMxPattern(pattern);
  if (h === undefined || p === undefined) return false;
  if (!p.startsWith('*.')) return p === h;
  const dot = h.indexOf('.');
  return dot > 0 && h.slice(dot + 1) === p.slice(2);
}

/** True when the host matches one of the policy's mx patterns. */
export function mxInPolicy(policy: StsPolicy, host: string): boolean {
  return policy.mx.some((p) => mxMatches(p, host));
}
