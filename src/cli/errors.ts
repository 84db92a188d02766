/*
 * The CLI's own error: something a command was given that it cannot act on.
 * Its own file so that cli/main.ts and the subcommands it registers do not
 * import each other.
 */
import type { MvCode } from '../errors';

/** main() prints the message alone and exits 1 (MV_USER in src/errors.ts). */
export class UserError extends Error {
  readonly code: MvCode = 'MV_USER';
}
