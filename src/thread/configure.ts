/**
 * `configureThreads`: the settings that apply to threads, gathered in one call: isolate reuse
 * (runtime/pool.ts), deadlock detection (deadlock.ts) and stacks recorded at waits (dump.ts).
 */

import { setKeepIdleMs } from '../runtime/pool.js';
import { type DeadlockDetection, setDeadlockDetection } from './deadlock.js';
import { wantWaitStacks } from './dump.js';

export interface ThreadsConfig {
  /** How long a finished thread's isolate waits for another thread (ms); 0 = never reuse. @default 5000 */
  keepIdleMs?: number;
  /**
   * Deadlock detection, for every thread of the process: a wait with no timeout that would
   * close a cycle of threads waiting on each other throws DeadlockError ('raise'), or prints
   * the cycle to stderr once ('warn'). @default 'off'
   */
  deadlockDetection?: DeadlockDetection;
  /** Threads record their stack when a wait begins, for thread dumps (10 to 20 µs a wait). @default false */
  waitStacks?: boolean;
}

/** Whether this isolate's configureThreads asked for wait stacks (its share of the process count). */
let waitStacksAsked = false;

/**
 * Sets how threads are started and watched.
 * @throws RangeError for a negative keepIdleMs; TypeError for an unknown deadlockDetection or a non-boolean waitStacks.
 */
export function configureThreads(config: ThreadsConfig): void {
  if (config.keepIdleMs !== undefined) {
    if (typeof config.keepIdleMs !== 'number' || !(config.keepIdleMs >= 0)) {
      throw new RangeError(`configureThreads: keepIdleMs must be a non-negative number of milliseconds, got ${String(config.keepIdleMs)}`);
    }
    setKeepIdleMs(config.keepIdleMs);
  }
  if (config.deadlockDetection !== undefined) setDeadlockDetection(config.deadlockDetection);
  if (config.waitStacks !== undefined) {
    if (typeof config.waitStacks !== 'boolean') throw new TypeError(`configureThreads: waitStacks must be true or false, got ${String(config.waitStacks)}`);
    if (config.waitStacks !== waitStacksAsked) wantWaitStacks(config.waitStacks ? 1 : -1);
    waitStacksAsked = config.waitStacks;
  }
}
