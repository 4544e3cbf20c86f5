/**
 * `npm run bench`: runs every benchmark in turn (lock, pingpong, codec, threads, pool, futures, queue, detection, cancel, trace, redis), prints one table and
 * writes it as Markdown to bench/RESULTS.md. The benchmarks import the build (dist/), so run
 * `npm run build` first; a warning is printed when src/ is newer than the build.
 */

import { execFileSync } from 'node:child_process';
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run as runCancel } from './cancel.js';
import { run as runCodec } from './codec.js';
import { run as runDetection } from './detection.js';
import { run as runFutures } from './futures.js';
import { type Row, formatMarkdown, formatTable, machineLine } from './lib.js';
import { run as runLock } from './lock.js';
import { run as runPingPong } from './pingpong.js';
import { run as runPool } from './pool.js';
import { run as runQueue } from './queue.js';
import { run as runRedis } from './redis.js';
import { run as runThreads } from './threads.js';
import { run as runTrace } from './trace.js';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Newest modification time of any file under `dir` (0 when it does not exist). */
function newestMtime(dir: string): number {
  let newest = 0;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/** "a74ba95" plus " (uncommitted changes)" when the work tree differs, or "" outside git. */
function revision(): string {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: root, encoding: 'utf8' }).trim() !== '';
    return `${commit}${dirty ? ' (uncommitted changes in src/)' : ''}`;
  } catch {
    return '';
  }
}

const benchmarks: [string, () => Row[] | Promise<Row[]>][] = [
  ['lock', runLock],
  ['pingpong', runPingPong],
  ['codec', runCodec],
  ['threads', runThreads],
  ['pool', runPool],
  ['futures', runFutures],
  ['queue', runQueue],
  ['detection', runDetection],
  ['cancel', runCancel],
  ['trace', runTrace],
  ['redis', runRedis],
];

if (newestMtime(join(root, 'src')) > newestMtime(join(root, 'dist'))) {
  console.warn('warning: src/ is newer than dist/; the benchmarks measure the build (run `npm run build`)');
}

const rows: Row[] = [];
const started = performance.now();
for (const [name, run] of benchmarks) {
  const t0 = performance.now();
  process.stdout.write(`${name}… `);
  rows.push(...(await run()));
  console.log(`${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
const seconds = (performance.now() - started) / 1000;

const machine = machineLine();
const rev = revision();
console.log(`\n${machine}${rev ? `, threadkit ${rev}` : ''}\n`);
console.log(formatTable(rows));

const markdown = `# Benchmark results

Written by \`npm run bench\` (bench/run.ts); the method is in [README.md](README.md).
Lower times are better. A ratio \`threadkit / X\` below 1 means threadkit is faster; \`X / threadkit\` says how many times faster threadkit is.

- Date: ${new Date().toISOString()}
- Machine: ${machine}
- Build measured: ${rev || 'unknown revision'}
- Whole run: ${seconds.toFixed(1)} s

${formatMarkdown(rows)}
`;
writeFileSync(new URL('RESULTS.md', import.meta.url), markdown);
console.log(`\nwrote bench/RESULTS.md (${seconds.toFixed(1)} s)`);
