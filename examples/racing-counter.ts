/**
 * The classic lesson: four threads add 1 to a shared counter 100,000 times each. Without a lock
 * the read-modify-write races and updates are lost (really: threads run in parallel); with a
 * Lock the total is exact.
 */

import { fileURLToPath } from 'node:url';
import { Barrier, Lock, SharedValue, Thread, isMainThread } from 'threadkit';

export const THREADS = 4;
export const TIMES = 100_000;

export function addMany(start: Barrier, counter: SharedValue<'int32'>, times: number, lock?: Lock): void {
  start.wait(); // all four begin together, so their increments really overlap
  for (let i = 0; i < times; i++) {
    if (lock) lock.acquire();
    counter.value = counter.value + 1; // read, add, write: not atomic
    if (lock) lock.release();
  }
}

/** Runs the four threads and returns the final counter. */
export function race(withLock: boolean): number {
  const counter = new SharedValue('int32');
  const lock = withLock ? new Lock() : undefined;
  const start = new Barrier(THREADS);
  const threads = Array.from(
    { length: THREADS },
    () => new Thread({ target: { module: import.meta.url, name: 'addMany' }, args: [start, counter, TIMES, lock] }),
  );
  threads.forEach((t) => t.start());
  threads.forEach((t) => t.join());
  return counter.value;
}

export function main(): string[] {
  const expected = THREADS * TIMES;
  const unlocked = race(false);
  const locked = race(true);
  return [
    `without a lock: ${unlocked} (expected ${expected}; ${expected - unlocked} updates lost: the threads really run at once)`,
    `with a Lock:    ${locked} (exact)`,
  ];
}

if (isMainThread && process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const line of main()) console.log(line);
}
