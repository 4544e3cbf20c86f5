/**
 * ThreadPoolExecutor: a pool of threads that runs tasks. `map` spreads a CPU-heavy function
 * over the pool (`chunksize` sends several items per task), `submit` returns a Future you can
 * await or attach callbacks to, and `asCompleted` yields futures as they finish. Task
 * functions travel like thread targets: `countPrimes` below uses only its parameters, so it
 * is passed as it is and sent to the pool threads as source text.
 */

import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { ThreadPoolExecutor, asCompleted, isMainThread, type Future } from 'threadkit';

/** CPU-heavy: the number of primes in [lo, hi), by trial division. */
export function countPrimes(lo: number, hi: number): number {
  let count = 0;
  for (let n = Math.max(2, lo); n < hi; n++) {
    let prime = true;
    for (let d = 2; d * d <= n; d++) {
      if (n % d === 0) {
        prime = false;
        break;
      }
    }
    if (prime) count++;
  }
  return count;
}

/** Which pool thread ran a task (self-contained: it imports what it needs). */
export async function whoRuns(label: string): Promise<string> {
  const { currentThread } = await import('threadkit');
  return `${label} ran in ${currentThread().name}`;
}

export async function main(): Promise<string[]> {
  const lines: string[] = [];
  const workers = Math.max(2, availableParallelism());
  using pool = new ThreadPoolExecutor({ maxWorkers: workers, threadNamePrefix: 'primes' });

  // map: 40 blocks of 25,000 numbers, 5 blocks per task; results come back in order.
  const starts = Array.from({ length: 40 }, (_, i) => i * 25_000);
  const ends = starts.map((s) => s + 25_000);
  const counts = [...pool.map(countPrimes, starts, ends, { chunksize: 5 })];
  lines.push(`map: primes per block of 25,000 below 1,000,000: ${counts.slice(0, 6).join(', ')}, … (${counts.length} blocks)`);
  lines.push(`map: total ${counts.reduce((a, b) => a + b, 0)} primes below 1,000,000`);

  // submit + addDoneCallback: the callback runs in this thread once the future is done.
  const future = pool.submit(countPrimes, 0, 100_000);
  const called = new Promise<string>((resolve) => future.addDoneCallback((done) => resolve(`addDoneCallback: primes below 100,000 = ${done.result()}`)));
  lines.push(`submit: await future -> ${await future}`);
  lines.push(await called);

  // asCompleted: futures in the order they finish (a short task usually beats a long one).
  const jobs = new Map<Future<number>, string>([
    [pool.submit(countPrimes, 0, 600_000), 'long'],
    [pool.submit(countPrimes, 0, 1_000), 'short'],
  ]);
  const finished: string[] = [];
  for (const done of asCompleted(jobs.keys())) finished.push(`${jobs.get(done)} (${done.result()})`);
  lines.push(`asCompleted: ${finished.join(', then ')}`);

  // Tasks run in threads named <prefix>_<i>; a self-contained function works as well.
  const names = await Promise.all([1, 2, 3, 4].map((i) => pool.submit(whoRuns, `task ${i}`)));
  lines.push(`threads: ${[...new Set(names.map((n) => n.split(' ran in ')[1]))].sort().join(', ')} (maxWorkers ${workers})`);
  lines.push(`self-contained task: 6 * 7 = ${await pool.submit((a: number, b: number) => a * b, 6, 7)}`);
  return lines; // leaving the block shuts the pool down (`using`), waiting for its threads
}

if (isMainThread && process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const line of await main()) console.log(line);
}
