/**
 * asCompletedAsync over many futures, against asCompleted (the blocking twin) on the same
 * futures: (a) futures all done already (completed in a random order, so the completion-order
 * sort does real work), 50k and 200k, the whole iteration in ms; anchors asCompleted, and a
 * `for await` over as many resolved Promises; (b) 200k trivial tasks on a 2-thread pool, submit
 * all then take them as they complete, against asCompleted and `Promise.all` of `resultAsync()`.
 *
 * Run alone: `node --import tsx bench/futures.ts`.
 */

import { Future, ThreadPoolExecutor, asCompleted, asCompletedAsync } from 'threadkit';
import { type Row, isMain, runAlone, sink } from './lib.js';

const SIZES = [50_000, 200_000];
const POOL_TASKS = 200_000;
/** Interleaved rounds (A B C, A B C, …); each contender keeps its best. */
const ROUNDS = 5;
const POOL_ROUNDS = 3;

/** `n` futures, completed in a random order. */
function doneFutures(n: number): Future<number>[] {
  const futures = Array.from({ length: n }, () => new Future<number>());
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  for (const i of order) futures[i]!.setResult(i);
  return futures;
}

function check(count: number, n: number, what: string): void {
  if (count !== n) throw new Error(`${what} yielded ${count} futures, expected ${n}`);
}

function syncAll(futures: Future<number>[]): number {
  const t0 = performance.now();
  let count = 0;
  for (const f of asCompleted(futures)) {
    sink.value = f;
    count++;
  }
  check(count, futures.length, 'asCompleted');
  return performance.now() - t0;
}

async function asyncAll(futures: Future<number>[]): Promise<number> {
  const t0 = performance.now();
  let count = 0;
  for await (const f of asCompletedAsync(futures) as AsyncIterable<unknown>) {
    sink.value = f;
    count++;
  }
  check(count, futures.length, 'asCompletedAsync');
  return performance.now() - t0;
}

async function promisesAll(promises: Promise<number>[]): Promise<number> {
  const t0 = performance.now();
  let count = 0;
  for await (const value of promises) {
    sink.value = value;
    count++;
  }
  check(count, promises.length, 'for await');
  return performance.now() - t0;
}

async function doneRows(n: number): Promise<Row[]> {
  const futures = doneFutures(n);
  const promises = futures.map((_, i) => Promise.resolve(i));
  const best = { sync: Infinity, async: Infinity, promises: Infinity };
  for (let round = 0; round < ROUNDS; round++) {
    best.sync = Math.min(best.sync, syncAll(futures));
    best.async = Math.min(best.async, await asyncAll(futures));
    best.promises = Math.min(best.promises, await promisesAll(promises));
  }
  const work = `asCompletedAsync over ${n / 1000}k done futures (whole iteration)`;
  return [
    { group: 'futures', work, unit: 'ms', threadkit: best.async, anchorName: 'asCompleted', anchor: best.sync, goal: { op: '<=', value: 3 }, note: 'same futures, completed in a random order' },
    { group: 'futures', work, unit: 'ms', threadkit: best.async, anchorName: 'for await over Promises', anchor: best.promises, note: `${n / 1000}k resolved Promises` },
  ];
}

async function poolRows(): Promise<Row[]> {
  const pool = new ThreadPoolExecutor({ maxWorkers: 2 });
  const echo = (x: number): number => x;
  const submitAll = (n: number): Future<number>[] => Array.from({ length: n }, (_, i) => pool.submit(echo, i));
  try {
    await asyncAll(submitAll(5_000)); // warm up
    syncAll(submitAll(5_000));
    const best = { sync: Infinity, async: Infinity, all: Infinity };
    // Each contender is timed from the first submit to the last future taken.
    const timed = async (consume: (futures: Future<number>[]) => unknown): Promise<number> => {
      const t0 = performance.now();
      await consume(submitAll(POOL_TASKS));
      return performance.now() - t0;
    };
    const awaitAll = async (futures: Future<number>[]): Promise<void> => {
      check((await Promise.all(futures.map((f) => f.resultAsync()))).length, POOL_TASKS, 'Promise.all');
    };
    for (let round = 0; round < POOL_ROUNDS; round++) {
      best.async = Math.min(best.async, await timed(asyncAll));
      best.sync = Math.min(best.sync, await timed(syncAll));
      best.all = Math.min(best.all, await timed(awaitAll));
    }
    const work = `${POOL_TASKS / 1000}k pool tasks (2 threads), submit all, then asCompletedAsync`;
    return [
      { group: 'futures', work, unit: 'ms', threadkit: best.async, anchorName: 'asCompleted', anchor: best.sync, goal: { op: '<=', value: 3 }, note: 'submitting included, as for the anchors' },
      { group: 'futures', work, unit: 'ms', threadkit: best.async, anchorName: 'Promise.all(resultAsync)', anchor: best.all },
    ];
  } finally {
    pool.shutdown();
  }
}

export async function run(): Promise<Row[]> {
  const rows: Row[] = [];
  for (const n of SIZES) rows.push(...(await doneRows(n)));
  rows.push(...(await poolRows()));
  return rows;
}

if (isMain(import.meta.url)) await runAlone(run);
