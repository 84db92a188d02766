/*
 * `mailveil` command line. Exit codes: 0 ok, 1 a user or config error with a
 * one-line message, 2 usage; which error is which is the catalogue's
 * (src/errors.ts). Each subcommand lives in its own file.
 */
import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeAccess } from '../access-error';
import { catalogueEntry, exitCodeOf, isOperatorError } from '../errors';
import { registerServe } from './serve';
import { registerRules } from './rules';
import { registerQuarantine } from './quarantine';
import { registerKeys } from './keys';
import { registerSar } from './sar';
import { registerGdpr } from './gdpr';
import { registerTls } from './tls';
import { registerTlsRpt } from './tlsrpt';

function version(): string {
  return JSON.parse(readFileSync(join(__dirname, '..', '..', '..', 'package.json'), 'utf8')).version;
}

export function buildProgram(): Command {
  const program = new Command('mailveil')
    .description('SMTP privacy-and-DLP filtering relay for Postfix')
    .version(version(), '--version')
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  registerServe(program);
  registerRules(program);
  registerQuarantine(program);
  registerKeys(program);
  registerSar(program);
  registerGdpr(program);
  registerTls(program);
  registerTlsRpt(program);
  for (const c of program.commands) c.exitOverride();
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      // `commander.help` with a non-zero exitCode is the help commander prints
      // to stderr for a missing command (`mailveil`, `mailveil quarantine`): a usage error.
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') process.exit(0);
      if (err.code === 'commander.help' && err.exitCode === 0) process.exit(0);
      process.exit(catalogueEntry('MV_USAGE').exit);
    }
    if (isOperatorError(err)) {
      process.stderr.write(`mailveil: ${(err as Error).message}\n`);
      process.exit(exitCodeOf(err));
    }
    // A permission, read-only, full-disk or missing-directory error from any
    // file operation is the operator's to fix: one line naming the path.
    const access = describeAccess(err);
    if (access !== undefined) {
      process.stderr.write(`mailveil: ${access}\n`);
      process.exit(catalogueEntry('MV_ACCESS').exit);
    }
    process.stderr.write(`mailveil: internal error: ${(err as Error).stack ?? err}\n`);
    process.exit(exitCodeOf(err));
  }
}
