/*
 * What `mailveil quarantine show` prints of a held message: its top-level
 * header section, never the body, with the values the rules found in it
 * masked (issue 4: "headers and a summary of the findings, with values
 * masked").
 *
 * Findings carry no value, only rule, part and scope, so masking works per
 * field:
 *  - a finding in part "0" (the top-level header) with scope `subject`
 *    masks the Subject field;
 *  - one with scope `headers` masks the address/text fields
 *    (HEADER_TEXT_FIELDS) in which that rule, re-run on the field's decoded
 *    value, matches; if it matches in none (the rule changed since, or a
 *    keyword stood in another field), every such field is masked: we fail
 *    closed rather than print a value the finding says is there;
 *  - a finding without a scope (entries held before scopes were stored)
 *    counts as both.
 * A masked field prints as `Name: [masked: rule-id,...]`. Other fields are
 * printed as they are (they may name the people involved: the operator
 * reading the quarantine is entitled to see them).
 *
 * Limits: the header section kept for display is at most `maxBytes`; past
 * that the view says it was cut. The entry view around it (metadata,
 * findings) is operations/quarantine.ts showEntry.
 */
import { HEADER_TEXT_FIELDS, decodeHeaderValue } from '../mime/header-words';
import { splitFields, unfold } from '../mime/header-fields';
import { HeaderEndFinder } from '../mime/header-end';
import { compileRules, type Scope } from '../rules/compile';
import { PartScanner } from '../rules/scanner';
import type { RuleDefinition } from '../rules/types';
import type { QuarantineFinding } from './meta';

export interface HeaderView {
  /** The header section, LF line ends, masked fields replaced; no body. */
  text: string;
  /** Names of the fields that were masked (as written in the message). */
  masked: string[];
  /** True if the section was longer than the display limit. */
  truncated: boolean;
}

/**
 * Reads a whole message stream (so a tampered entry fails its GCM check
 * before anything is shown) and keeps only its header section, up to
 * `maxBytes`.
 */
export async function collectHeader(message: AsyncIterable<Buffer>, maxBytes: number): Promise<{ header: Buffer; truncated: boolean }> {
  const finder = new HeaderEndFinder();
  const kept: Buffer[] = [];
  let size = 0;
  let done = false;
  let truncated = false;
  for await (const chunk of message) {
    if (done) continue; // keep reading: the tag is checked at the end
    const end = finder.feed(chunk);
    let part = end < 0 ? chunk : chunk.subarray(0, end);
    if (end >= 0) done = true;
    if (size + part.length > maxBytes) {
      part = part.subarray(0, maxBytes - size);
      truncated = true;
      done = true;
    }
    kept.push(Buffer.from(part));
    size += part.length;
  }
  return { header: Buffer.concat(kept, size), truncated };
}

/** `rules` are the live rule definitions, if they could be loaded. */
export function headerView(header: Buffer, findings: readonly QuarantineFinding[], rules: readonly RuleDefinition[] | undefined, truncated = false): HeaderView {
  const top = findings.filter((f) => f.part === '0');
  const subjectRules = new Set(top.filter((f) => f.scope === undefined || f.scope === 'subject').map((f) => f.rule));
  const headerRules = new Set(top.filter((f) => f.scope === undefined || f.scope === 'headers').map((f) => f.rule));
  const section = splitFields(header.toString('latin1'));
  const maskWith = new Map<number, Set<string>>();
  const add = (i: number, rule: string) => {
    let s = maskWith.get(i);
    if (!s) maskWith.set(i, (s = new Set()));
    s.add(rule);
  };
  section.fields.forEach((f, i) => {
    if (f.name === 'subject') for (const r of subjectRules) add(i, r);
  });
  if (headerRules.size) {
    const textFields = section.fields.map((f, i) => [f, i] as const).filter(([f]) => HEADER_TEXT_FIELDS.has(f.name));
    for (const rule of headerRules) {
      const def = rules?.find((d) => d.id === rule);
      let hits: number[] = [];
      if (def) {
        try {
          const compiled = compileRules([def]);
          hits = textFields
            .filter(([f]) => {
              const raw = section.source.slice(f.start, f.end);
              const value = unfold(raw.slice(raw.indexOf(':') + 1));
              let found = false;
              const s = new PartScanner(compiled, 'headers' as Scope, () => (found = true));
              s.push(decodeHeaderValue(value).text);
              s.end();
              return found;
            })
            .map(([, i]) => i);
        } catch {
          hits = [];
        }
      }
      for (const i of hits.length ? hits : textFields.map(([, i]) => i)) add(i, rule);
    }
  }
  const lines: string[] = [];
  const masked: string[] = [];
  section.fields.forEach((f, i) => {
    const raw = section.source.slice(f.start, f.end).replace(/\r?\n$/, '');
    const by = maskWith.get(i);
    if (!by) {
      lines.push(Buffer.from(raw, 'latin1').toString('utf8').replace(/\r\n/g, '\n'));
      return;
    }
    const name = raw.slice(0, Math.max(0, raw.indexOf(':'))).trim() || f.name;
    masked.push(name);
    lines.push(`${name}: [masked: ${[...by].sort().join(',')}]`);
  });
  return { text: lines.join('\n'), masked, truncated };
}
