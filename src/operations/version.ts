/* The package version, for what operations write: the Art. 30 report and a subject access archive's README. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

let cached: string | undefined;

export function packageVersion(): string {
  cached ??= JSON.parse(readFileSync(join(__dirname, '..', '..', '..', 'package.json'), 'utf8')).version as string;
  return cached!;
}
