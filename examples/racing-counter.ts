/**
 * The classic lesson: four threads add 1 to a shared counter 100,000 times each. Without a lock
 * the read-modify-write races and updates are lost (really: threads run in parallel); with a
 * Lock the total is exact.
 */

import { Barrier, Lock, SharedValue, Thread } from 'threadkit';

function addMany(start: Barrier, counter: SharedValue<'int32'>, times: number, lock?: Lock): void {
  start.wait(); // all four begin together, so their increments really overlap
  for (let i = 0; i < times; i++) {
    if (lock) lock.acquire();
    counter.value = counter.value + 1;
    if (lock) lock.release();
  }
}

export function race(withLock: boolean): number {
  const counter = new SharedValue('int32');
  const lock = withLock ? new Lock() : undefined;
  const start = new Barrier(4);
  const threads = [0, 1, 2, 3].map(
    () => new Thread({ target: { module: import.meta.url, name: 'addMany' }, args: [start, counter, 100_000, lock] }),
  );
  threads.forEach((t) => t.start());
  threads.forEach((t) => t.join());
  return counter.value;
}

export { addMany };

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(`without a lock: ${race(false)} (expected 400000)`);
  console.log(`with a lock:    ${race(true)}`);
}
