/**
 * threading.Timer: a thread that runs a function after a delay, unless cancelled first.
 */

import { Event } from '../sync/event.js';
import { BUILTIN_MODULE, type ThreadFunction, builtins } from '../shm/functions.js';
import { describe } from '../shm/futex.js';
import { Thread } from './thread.js';

export class Timer extends Thread {
  /** Threads find this class in threadkit's own table (functions.ts), also inside a bundle. */
  static override module = BUILTIN_MODULE;

  /** Set by `cancel()`; the timer thread waits on it for the interval. */
  finished: Event;
  /** The delay in milliseconds. */
  interval: number;

  /**
   * @param intervalMs how long to wait before calling `fn`.
   * @param fn a self-contained function or `{ module, name }`, called with `args` in the timer thread.
   * @throws RangeError for a negative or non-numeric interval.
   */
  constructor(intervalMs: number, fn: ThreadFunction, args: readonly unknown[] = []) {
    if (typeof intervalMs !== 'number' || Number.isNaN(intervalMs)) throw new TypeError(`Timer(intervalMs): expected a number of milliseconds, got ${describe(intervalMs)}`);
    super({ target: fn, args });
    this.finished = new Event();
    this.interval = Math.max(0, intervalMs);
  }

  /** Stops the timer if its function has not started yet. */
  cancel(): void {
    this.finished.set();
  }

  override run(): unknown {
    if (this.finished.wait(this.interval)) return undefined;
    this.finished.set();
    return super.run();
  }
}

builtins.Timer = Timer;
