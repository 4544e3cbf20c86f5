/**
 * `threadkit/testing`: faults on demand, for tests of code that uses threadkit (and for
 * threadkit's own). Each makes a rare failure happen now, so a test can check that everything
 * still settles: no waiter hangs, no future is lost, the heap stays usable.
 */

import { failNextDecodesHere } from './shm/codec.js';
import { heap } from './shm/current.js';
import { S_FAULT_STARTS } from './shm/heap.js';
import type { Thread } from './thread/thread.js';

function checkCount(n: number, what: string): void {
  if (!Number.isInteger(n) || n < 0 || n > 0x7fffffff) throw new RangeError(`${what}: n must be an integer from 0 to 2147483647, got ${String(n)}`);
}

/** The next `n` allocations in the shared heap, in any thread, fail with HeapExhaustedError (0 cancels). */
export function failNextAllocations(n: number): void {
  checkCount(n, 'failNextAllocations');
  heap()._failNextAllocations(n);
}

/** The next `n` isolates threadkit starts, from any thread, fail before they load threadkit (0 cancels). */
export function failNextIsolateStarts(n: number): void {
  checkCount(n, 'failNextIsolateStarts');
  // A countdown nobody sleeps on: spawnIsolate takes from it with a compareExchange.
  Atomics.store(heap().i32, S_FAULT_STARTS, n);
}

/**
 * Ends `thread`'s isolate at once, as running out of memory would: no exit handler, no
 * `finally` runs in it. Call it in the thread that started `thread` (for a pool's thread, the
 * thread that submitted the task that started it; find it with `enumerate()`).
 */
export function killIsolate(thread: Thread): Promise<number> {
  return thread._terminateIsolate();
}

/**
 * The next `n` values that the calling thread receives and has to decode (a queue item that
 * is not a number, boolean, null, undefined or short string; a future's result or exception;
 * a thread's fields or error at its end) fail to decode with a TypeError (0 cancels). A queue
 * item that fails is put back into the queue and the get throws; a future keeps its outcome.
 */
export function failNextDecodes(n: number): void {
  checkCount(n, 'failNextDecodes');
  failNextDecodesHere(n);
}
