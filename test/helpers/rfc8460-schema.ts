/*
 * The JSON Schema of an RFC 8460 report (section 4.4), transcribed in
 * test/fixtures/tlsrpt/rfc8460-report.schema.json, compiled once with the
 * formats it names: for the report tests and for reports that arrived by
 * mail or HTTPS in the submission tests.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import Ajv from 'ajv';
import { TEST_DIR } from './paths';

const schema = JSON.parse(readFileSync(join(TEST_DIR, 'fixtures', 'tlsrpt', 'rfc8460-report.schema.json'), 'utf8'));
const ajv = new Ajv({ strict: true, allErrors: true });
// RFC 3339 5.6 date-time.
ajv.addFormat('date-time', (v: string) => /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i.test(v) && Number.isFinite(Date.parse(v)));
// RFC 5322 addr-spec, dot-atom form.
ajv.addFormat('email', /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/);
ajv.addFormat('hostname', /^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/);
// IPv4 dot-decimal, or IPv6 in its RFC 5952 form (lower case, compressed).
ajv.addFormat('ip', (v: string) => isIP(v) === 4 || (isIP(v) === 6 && new URL(`http://[${v}]/`).hostname === `[${v}]`));
ajv.addFormat('uri', (v: string) => URL.canParse(v));
export const validateRfc8460 = ajv.compile(schema);

/** undefined when `report` is a valid RFC 8460 report, else ajv's errors as text. */
export function rfc8460Errors(report: unknown): string | undefined {
  return validateRfc8460(report) ? undefined : JSON.stringify(validateRfc8460.errors, null, 2);
}
