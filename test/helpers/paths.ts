/* Tests run from dist/; fixtures stay in the source tree. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

function findRoot(dir: string): string {
  while (!existsSync(join(dir, 'package.json')) || dir.endsWith('dist')) {
    const up = dirname(dir);
    if (up === dir) throw new Error('package.json not found above ' + __dirname);
    dir = up;
  }
  return dir;
}

export const REPO_ROOT = findRoot(__dirname);
export const TEST_DIR = join(REPO_ROOT, 'test');
export const BIN = join(REPO_ROOT, 'bin', 'mailveil');
