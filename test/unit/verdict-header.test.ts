/* The verdict header: added on top, forged copies removed, switchable off; chunk-independent. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { verdictHeader } from '../../src/pipeline/stages/verdict-header';
import { newContext } from '../../src/pipeline/context';
import { loadConfig } from '../../src/config/load';
import { Pseudonymiser } from '../../src/privacy/pseudonym';
import { EMPTY_HEADER_POLICY } from '../../src/rules/load';
import { buildCompiled } from '../../src/rules/compile';

async function run(input: string, size: number, verdict_header: string | false = 'X-Mailveil-Verdict'): Promise<string> {
  const config = { ...loadConfig(undefined), verdict_header };
  const ctx = newContext('T', config, { headers: EMPTY_HEADER_POLICY, rules: [], files: [], loadedAt: new Date(), compiled: buildCompiled([]) }, new Pseudonymiser(Buffer.alloc(32)));
  ctx.verdict = { action: 'tag', rules: ['us-ssn', 'iban'] };
  const buf = Buffer.from(input);
  const parts: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) parts.push(buf.subarray(i, i + size));
  const out: Buffer[] = [];
  for await (const b of Readable.from(parts, { objectMode: false }).pipe(verdictHeader.create(ctx))) out.push(b as Buffer);
  return Buffer.concat(out).toString();
}

const MSG = 'Subject: hi\r\nX-Mailveil-Verdict: pass; rules=\r\nx-mailveil-verdict : pass;\r\n  rules=\r\nTo: <a@example.net>\r\n\r\nX-Mailveil-Verdict: in the body stays\r\n';

test('verdict header: added on top with rule ids; forged copies (any case, folded) removed; body untouched', async () => {
  for (const size of [1, 3, 17, 4096]) {
    assert.equal(
      await run(MSG, size),
      'X-Mailveil-Verdict: tag; rules=us-ssn,iban\r\nSubject: hi\r\nTo: <a@example.net>\r\n\r\nX-Mailveil-Verdict: in the body stays\r\n',
      `chunk size ${size}`,
    );
  }
});

test('verdict header: a configured name, or switched off', async () => {
  assert.match(await run('Subject: hi\r\n\r\nb\r\n', 3, 'X-DLP'), /^X-DLP: tag; rules=us-ssn,iban\r\nSubject: hi\r\n/);
  assert.equal(await run(MSG, 3, false), MSG);
});
