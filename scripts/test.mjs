// The test command (`npm test`): build the package, then run every test file against the build
// (tests import 'threadkit', which resolves to dist/). Test files are TypeScript, run by tsx.
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';

execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
const only = process.argv.slice(2);
const files = only.length > 0 ? only : readdirSync('test').filter((f) => f.endsWith('.test.ts')).sort().map((f) => `test/${f}`);
// --test-force-exit: a test file's process ends when its tests have, even if a handle is left
// open (a hang there would stall CI for its whole time limit; whether programs exit by
// themselves is tested in child processes of their own, which do not get this flag).
const result = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', '--test', '--test-concurrency=2', '--test-force-exit', ...files], { stdio: 'inherit' });
process.exit(result.status ?? 1);
