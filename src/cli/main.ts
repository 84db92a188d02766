/*
 * `mailveil` command line. Exit codes: 0 ok, 1 a user or config error with a
 * one-line message, 2 usage. Each subcommand lives in its own file.
 */
import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AccessError, describeAccess } from '../access-error';
import { registerServe } from './serve';
import { registerRules } from './rules';
import { registerQuarantine } from './quarantine';
import { registerKeys } from './keys';
import { registerSar } from './sar';
import { registerGdpr } from './gdpr';

export class UserError extends Error {
  readonly exitCode = 1;
}

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
      process.exit(2);
    }
    if (err instanceof UserError || err instanceof AccessError || (err as { code?: string }).code === 'MV_CONFIG') {
      process.stderr.write(`mailveil: ${(err as Error).message}\n`);
      process.exit(1);
    }
    // A permission, read-only, full-disk or missing-directory error from any
    // file operation is the operator's to fix: one line naming the path.
    const access = describeAccess(err);
    if (access !== undefined) {
      process.stderr.write(`mailveil: ${access}\n`);
      process.exit(1);
    }
    process.stderr.write(`mailveil: internal error: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  }
}
