/**
 * Stopping work. Four pool tasks search for the number whose hash is a given value, a quarter
 * of the 32-bit range each; the first to finish has the answer, and `cancel({ interrupt: true })`
 * stops the other three: a loop that never waits polls `interrupted()` and throws
 * `InterruptedError`, and its future ends cancelled. Then `submitWith({ timeout })` on a task
 * that sleeps too long (its sleep throws InterruptedError, its `finally` runs), and `killAfter`
 * on a loop that never looks: its isolate is terminated and the pool replaces it.
 *
 * Run: node --import tsx examples/cancel.ts
 */

import { fileURLToPath } from 'node:url';
import { Event, FIRST_COMPLETED, InterruptedError, ThreadPoolExecutor, currentThread, interrupted, isMainThread, moduleFunction, sharedArray, sleep, wait } from 'threadkit';

/** MurmurHash3's finalizer: a bijection of 32-bit numbers, so each hash has exactly one preimage. */
export function fmix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/**
 * The number in [lo, hi) whose hash is `target`, or -1. Pure CPU work that never waits, so it
 * looks for an interrupt itself every 65,536 numbers (and writes how far it got to `scanned`).
 */
export function search(lo: number, hi: number, target: number, scanned: Int32Array, slot: number): number {
  for (let n = lo; n < hi; n++) {
    if (fmix32(n) === target) return n;
    if ((n & 0xffff) === 0) {
      scanned[slot] = n - lo;
      if (interrupted()) throw new InterruptedError(`${currentThread().name} stopped after ${n - lo} numbers`);
    }
  }
  return -1;
}

/** A task that would sleep for a minute; `finished` is set however it ends. */
export function napper(finished: Event): string {
  try {
    sleep(60_000); // an interrupt ends this sleep with InterruptedError
    return 'slept a minute';
  } finally {
    finished.set();
  }
}

/** A loop that never waits and never calls interrupted(): only a kill stops it. */
export function stubborn(started: Event): number {
  started.set();
  let x = 1;
  for (;;) x = fmix32(x + 1);
}

/** The name of the pool thread that runs it. */
export function whoRuns(): string {
  return currentThread().name;
}

const SEARCHERS = 4;
const QUARTER = 2 ** 30;
/** The number to find (the searchers are given only its hash): in the third quarter. */
const SECRET = 2 * QUARTER + 20_000_000;

const ms = (since: number): string => `${(performance.now() - since).toFixed(1)} ms`;
const thousands = (n: number): string => n.toLocaleString('en-US');

export async function main(): Promise<string[]> {
  const lines: string[] = [];
  using pool = new ThreadPoolExecutor({ maxWorkers: SEARCHERS, threadNamePrefix: 'searcher' });

  // ---- the first to find it stops the others -----------------------------------------------
  const target = fmix32(SECRET);
  const scanned = sharedArray(Int32Array, SEARCHERS);
  const task = moduleFunction(import.meta.url, 'search', search);
  const began = performance.now();
  const futures = Array.from({ length: SEARCHERS }, (_, i) => pool.submit(task, i * QUARTER, (i + 1) * QUARTER, target, scanned, i));
  lines.push(`search: ${SEARCHERS} tasks look for the number whose hash is 0x${target.toString(16)}, ${thousands(QUARTER)} numbers each`);

  // concurrent.futures' idiom: wait for the first, then stop the rest.
  const { done, notDone } = wait(futures, { returnWhen: FIRST_COMPLETED });
  const [winner] = done;
  lines.push(`search: task ${futures.indexOf(winner!) + 1} found ${thousands(winner!.result())} (hash 0x${fmix32(winner!.result()).toString(16)}) after ${ms(began)} (starting the threads included)`);
  const stopping = performance.now();
  const asked = [...notDone].map((f) => f.cancel({ interrupt: true }));
  lines.push(`search: cancel({ interrupt: true }) on the ${notDone.size} others -> ${asked.join(', ')}`);
  const { notDone: stillRunning } = wait(notDone, { timeout: 10_000 });
  const cancelled = [...notDone].map((f) => f.cancelled());
  lines.push(`search: all ${notDone.size} stopped within ${ms(stopping)}; cancelled: ${cancelled.join(', ')}${stillRunning.size > 0 ? ` (${stillRunning.size} STILL RUNNING)` : ''}`);
  const losers = [...notDone].map((f) => futures.indexOf(f));
  lines.push(`search: they had scanned ${losers.map((i) => thousands(scanned[i]!)).join(', ')} numbers of their ${thousands(QUARTER)}`);

  // ---- a deadline: the future fails with TimeoutError, the task is interrupted ----------------
  const finished = new Event();
  const napStart = performance.now();
  const nap = pool.submitWith({ timeout: 200 }, moduleFunction(import.meta.url, 'napper', napper), finished);
  try {
    lines.push(`timeout: ${await nap}`);
  } catch (error) {
    lines.push(`timeout: submitWith({ timeout: 200 }) on a 60 s sleep failed after ${ms(napStart)}: ${(error as Error).name}: ${(error as Error).message}`);
  }
  lines.push(`timeout: the task's sleep was interrupted and its finally block ran: ${finished.wait(10_000)}`);

  // ---- a task that never looks: killed after the grace period ----------------------------------
  // (The thread that started the pool keeps the clock of timeouts and kills: its event loop, as
  // in `await` here, or a blocking wait for a future such as result().)
  const started = new Event();
  const loop = pool.submit(moduleFunction(import.meta.url, 'stubborn', stubborn), started);
  started.wait();
  const killAt = performance.now();
  const asking = loop.cancel({ interrupt: true, killAfter: 100 });
  // (Interrupted, it goes on: it never looks. The kill comes 100 ms later.)
  lines.push(`killAfter: cancel({ interrupt: true, killAfter: 100 }) -> ${asking}; right after, the loop still runs: ${loop.running()}`);
  try {
    await loop;
  } catch (error) {
    lines.push(`killAfter: await -> ${(error as Error).name} ${ms(killAt)} after the interrupt: its isolate was terminated; cancelled: ${loop.cancelled()}`);
  }
  const names = await Promise.all(Array.from({ length: SEARCHERS }, () => pool.submit(moduleFunction(import.meta.url, 'whoRuns', whoRuns))));
  lines.push(`killAfter: the pool goes on: ${SEARCHERS} more tasks ran (on ${[...new Set(names)].sort().join(', ')})`);
  return lines; // leaving the block shuts the pool down (`using`)
}

if (isMainThread && process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const line of await main()) console.log(line);
}
