/**
 * `sleep(ms)`: Python's `time.sleep`, in milliseconds. It blocks the calling thread (the main
 * thread too, whose event loop then waits, as Python's would), never returns early, and
 * `sleepAsync` is its Promise twin, which an AbortSignal can cut short.
 */

import { TIMEOUT_MAX, deadlineAfter, describe, msUntil } from '../shm/futex.js';
import { WaitKind, park, parkAsync } from '../shm/wait-site.js';
import { sleepWord } from '../shm/interrupts.js';

/** A word nobody notifies (but an aborted sleepAsync, whose wake-up the others sleep through). */
const napWord = new Int32Array(new SharedArrayBuffer(4));

function checkLength(ms: unknown, what: string): number {
  if (typeof ms !== 'number' || Number.isNaN(ms)) throw new TypeError(`${what}: expected a number of milliseconds, got ${describe(ms)}`);
  if (ms < 0) throw new RangeError(`${what}: sleep length must be non-negative, got ${ms}`);
  if (ms > TIMEOUT_MAX && ms !== Infinity) throw new RangeError(`${what}: ${ms} ms is larger than TIMEOUT_MAX (${TIMEOUT_MAX} ms)`);
  return ms;
}

/**
 * Blocks the calling thread for `ms` milliseconds (at least; `Infinity` for ever).
 * @throws RangeError for a negative length; TypeError for a non-number.
 * @example sleep(100); // as time.sleep(0.1)
 */
export function sleep(ms: number): void {
  const deadline = deadlineAfter(checkLength(ms, 'sleep(ms)'));
  // A thread sleeps on its own interrupt word: an interrupt changes it, so the sleep ends at
  // once (park then throws InterruptedError). Other changes (a request left for an ended pool
  // task) wake it early: loop on what is left, so never early.
  const [i32, index] = sleepWord() ?? [napWord, 0];
  while (park(i32, index, Atomics.load(i32, index), deadline, WaitKind.Sleep, 0, false, 0) !== 'timed-out');
}

/**
 * Resolves after `ms` milliseconds (at least), without blocking the event loop; rejects with
 * `signal.reason` when the signal aborts first. While it waits it keeps the process alive, as
 * a sleeping Python thread does.
 * @throws RangeError for a negative length; TypeError for a non-number.
 */
export async function sleepAsync(ms: number, options: { signal?: AbortSignal } = {}): Promise<void> {
  if (typeof options !== 'object' || options === null) throw new TypeError(`sleepAsync(ms, options): expected an options object, got ${describe(options)}`);
  const deadline = deadlineAfter(checkLength(ms, 'sleepAsync(ms)'));
  options.signal?.throwIfAborted();
  while (msUntil(deadline) > 0) await parkAsync(napWord, 0, 0, deadline, options.signal);
}
