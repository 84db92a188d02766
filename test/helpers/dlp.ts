/*
 * Runs mailveil's own pass 1 and pass 2 over a message in memory: what a
 * running relay would find, and what it would deliver. Used by the encoding
 * matrix, the golden redaction cases and the fuzz tests.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { loadConfig } from '../../src/config/load';
import { loadRuleSet } from '../../src/rules/load';
import { newContext, type MessageContext } from '../../src/pipeline/context';
import { analyse } from '../../src/pipeline/run';
import { redact } from '../../src/pipeline/stages/redact';
import { Pseudonymiser } from '../../src/privacy/pseudonym';
import { DETECTORS } from '../../src/detectors';
import type { RuleSet } from '../../src/rules/types';

const KEY = new Pseudonymiser(Buffer.alloc(32, 9));

export function ruleSetFromYaml(yaml: string): RuleSet {
  const dir = mkdtempSync(join(tmpdir(), 'mv-rules-'));
  writeFileSync(join(dir, 'rules.yaml'), yaml);
  try {
    return loadRuleSet(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** One redact rule per built-in detector: rule id "r-<detector>", replacement "[R-<DETECTOR>]". */
export function everyDetectorRedacts(): RuleSet {
  const rules = [...DETECTORS.keys()].map(
    (name) => `  - id: r-${name.replace(/_/g, '-')}\n    detector: ${name}\n    scope: [subject, body, attachments]\n    action: redact\n    replacement: "[R-${name.toUpperCase()}]"\n`,
  );
  return ruleSetFromYaml('rules:\n' + rules.join(''));
}

function chunks(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  return out;
}

/** Pass 1 and decide over `raw`, fed in `chunk`-byte pieces. */
export async function scan(raw: Buffer, rules: RuleSet, chunk = 65536): Promise<MessageContext> {
  const ctx = newContext('T', loadConfig(undefined), rules, KEY);
  await analyse(ctx, Readable.from(chunks(raw, chunk), { objectMode: false }));
  return ctx;
}

/** The redact stage's output for a scanned message (the verdict must be redact for anything to change). */
export async function redacted(raw: Buffer, ctx: MessageContext, chunk = 65536): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const b of Readable.from(chunks(raw, chunk), { objectMode: false }).pipe(redact.create(ctx))) out.push(b as Buffer);
  return Buffer.concat(out);
}

export function hitsOf(ctx: MessageContext, rule: string): number {
  return ctx.findings.filter((f) => f.rule === rule).reduce((n, f) => n + f.count, 0);
}
