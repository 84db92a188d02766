/*
 * `mailveil sar find|export|erase ADDRESS`: subject access (GDPR Art. 15) and
 * erasure (Art. 17) for one e-mail address. The operations are in
 * operations/subject-access.ts (shared with the admin API); this file
 * parses flags, opens the state dir and prints.
 *
 * The address is only ever held in memory: it is normalised and turned into
 * its subject token (src/gdpr/subjects.ts), and only the token is written
 * (audit events). It is not echoed in errors either.
 */
import type { Command } from 'commander';
import type { AuditEvent } from '../audit/log';
import { checkStateDir } from '../config/state-dir';
import type { OperationContext } from '../operations/context';
import { eraseSubjectData, exportSubjectData, findSubjectData, subjectAddress, type SubjectAddress } from '../operations/subject-access';
import { isEmpty, type SubjectMessage } from '../gdpr/find';
import { formatSize } from './quarantine';
import { UserError } from './errors';
import { CONFIG_HELP, loadInstanceConfig, operationContext } from './instance';

interface CommonOptions {
  config?: string;
  stateDir?: string;
  json?: boolean;
}

/** Checks the address, loads the config and checks the state dir. */
function open(address: string, o: CommonOptions): { ctx: OperationContext; address: SubjectAddress } {
  const normalised = subjectAddress(address);
  if (normalised === undefined) throw new UserError('ADDRESS is not one valid e-mail address (expected local@domain, e.g. jane.doe@example.com)');
  const { config } = loadInstanceConfig(o.config, { state_dir: o.stateDir });
  checkStateDir(config.state_dir);
  return { ctx: operationContext(config), address: normalised };
}

function warnUnreadable(ids: string[]): void {
  if (!ids.length) return;
  process.stderr.write(
    `mailveil: ${ids.length} quarantine ${ids.length === 1 ? 'entry' : 'entries'} could not be read and ${ids.length === 1 ? 'was' : 'were'} not searched: ${ids.join(', ')}\n`,
  );
}

function messageLine(m: SubjectMessage): string {
  const when = m.receivedAt.replace(/\.\d+Z$/, 'Z');
  const rules = m.rules.length ? m.rules.join(',') : '-';
  const reasons = m.reasons.length ? `  reasons=${m.reasons.join(',')}` : '';
  return `  ${m.id}  ${when}  ${formatSize(m.size)}  ${m.verdict}  rules=${rules}${reasons}`;
}

function eventLine(e: AuditEvent): string {
  const id = e.id ? `  id=${e.id}` : '';
  const details = e.details && Object.keys(e.details).length ? `  ${JSON.stringify(e.details)}` : '';
  return `  ${e.ts}  ${e.event}  actor=${e.actor}${id}${details}`;
}

const NOTHING = 'nothing found for that address';

function withCommon(c: Command, json = true): Command {
  if (json) c.option('--json', 'machine-readable output');
  return c.option('--config <file>', CONFIG_HELP).option('--state-dir <dir>', 'state directory (default from config, else ./var)');
}

export function registerSar(program: Command): void {
  const sar = program
    .command('sar')
    .description('subject access and erasure (GDPR Art. 15 and 17) for one e-mail address')
    .addHelpText(
      'after',
      '\nAn address is matched after normalisation (lower case, IDN domain in ASCII; a +tag is kept).\n' +
        'A person with several addresses is searched once per address. The address is never stored.',
    );

  withCommon(
    sar
      .command('find')
      .description("list the address's quarantined messages and audit events")
      .argument('<address>', 'e-mail address, e.g. jane.doe@example.com'),
  ).action(async (address: string, o: CommonOptions) => {
    const { ctx, address: a } = open(address, o);
    const data = await findSubjectData(ctx, a);
    if (o.json) {
      process.stdout.write(JSON.stringify(data, null, 2) + '\n');
    } else if (isEmpty(data)) {
      process.stdout.write(NOTHING + '\n');
    } else {
      const lines = [`subject ${data.subject}`, `quarantine: ${data.messages.length} ${data.messages.length === 1 ? 'message' : 'messages'}`];
      lines.push(...data.messages.map(messageLine));
      lines.push(`audit log: ${data.events.length} ${data.events.length === 1 ? 'event' : 'events'}`);
      lines.push(...data.events.map(eventLine));
      process.stdout.write(lines.join('\n') + '\n');
    }
    warnUnreadable(data.unreadable);
  });

  withCommon(
    sar
      .command('export')
      .description("write the address's quarantined messages (.eml) and audit events into one .tar.gz (mode 0600)")
      .argument('<address>', 'e-mail address, e.g. jane.doe@example.com')
      .requiredOption('--out <file>', 'archive to write (.tar.gz); never replaced unless --force')
      .option('--force', 'replace FILE if it exists'),
  ).action(async (address: string, o: CommonOptions & { out: string; force?: boolean }) => {
    const { ctx, address: a } = open(address, o);
    const outcome = await exportSubjectData(ctx, a, { out: () => o.out, force: Boolean(o.force) });
    if (outcome.kind === 'unreadable') {
      const { unreadable } = outcome;
      throw new UserError(
        `${unreadable.length} quarantine ${unreadable.length === 1 ? 'entry' : 'entries'} cannot be read (${unreadable.join(', ')}), so the export could be incomplete; ` +
          'repair or delete them (mailveil quarantine delete ID) and run the export again; no archive was written',
      );
    }
    if (outcome.kind === 'empty') {
      // The request was recorded even though there is nothing to hand over (no subject named).
      if (o.json) process.stdout.write(JSON.stringify({ file: null, messages: 0, events: 0, bytes: 0 }, null, 2) + '\n');
      else process.stdout.write(`${NOTHING}; no archive written\n`);
      return;
    }
    const { result } = outcome;
    if (o.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    else
      process.stdout.write(
        `exported ${result.messages} ${result.messages === 1 ? 'message' : 'messages'} and ${result.events} audit ${result.events === 1 ? 'event' : 'events'} to ${result.file} (${formatSize(result.bytes)})\n`,
      );
  });

  withCommon(
    sar
      .command('erase')
      .description("delete the address's quarantined messages and erase its pseudonym from the audit log")
      .argument('<address>', 'e-mail address, e.g. jane.doe@example.com'),
  ).action(async (address: string, o: CommonOptions) => {
    const { ctx, address: a } = open(address, o);
    const r = await eraseSubjectData(ctx, a);
    if (o.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
    else
      process.stdout.write(
        `erased: ${r.messages} quarantined ${r.messages === 1 ? 'message' : 'messages'} deleted, ${r.events} audit ${r.events === 1 ? 'event' : 'events'} anonymised\n`,
      );
    warnUnreadable(r.unreadable);
  });
}
