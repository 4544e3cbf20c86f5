/**
 * The options of put/get/join and their checks: `{ block, timeout }` parsed without allocating
 * (into module-level results the caller copies out at once), maxsize, a negative timeout.
 */

import { TIMEOUT_MAX, describe } from '../shm/futex.js';

export interface QueueOptions {
  /** When false, fail at once (QueueFull / QueueEmpty) instead of waiting. @default true */
  block?: boolean;
  /** Wait at most this many milliseconds, then fail. `undefined` waits forever. */
  timeout?: number;
}

export interface QueueAsyncOptions extends QueueOptions {
  /** Aborting rejects the Promise with `signal.reason`; the queue is left as it was. */
  signal?: AbortSignal;
}

export interface QueueJoinOptions {
  /** Wait at most this many milliseconds (the Promise then resolves to false). */
  timeout?: number;
  signal?: AbortSignal;
}

/** Parsed options (module-level, so that parsing allocates nothing). */
export let optBlock = true;
export let optTimeout: number | undefined;

/** Parses `{ block, timeout }` into optBlock / optTimeout; `name.op` names the call in errors. */
export function parseOptions(options: QueueOptions | undefined, name: string, op: string): void {
  if (options === undefined) {
    optBlock = true;
    optTimeout = undefined;
    return;
  }
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`${name}.${op}: expected an options object such as { block: false } or { timeout: 500 }, got ${describe(options)}`);
  }
  // Both read (a getter may run user code that puts to a queue, and parses options of its
  // own) before either module slot is written; the caller copies them out at once.
  const block = options.block;
  const timeout = options.timeout;
  if (block !== undefined && typeof block !== 'boolean') throw new TypeError(`${name}.${op}: block must be a boolean, got ${describe(block)}`);
  if (timeout !== undefined && timeout !== null) {
    if (typeof timeout !== 'number' || Number.isNaN(timeout)) throw new TypeError(`${name}.${op}: timeout must be a number of milliseconds, got ${describe(timeout)}`);
    if (timeout > TIMEOUT_MAX && timeout !== Infinity) throw new RangeError(`${name}.${op}: timeout ${timeout} is larger than TIMEOUT_MAX (${TIMEOUT_MAX} ms)`);
  }
  optBlock = block ?? true;
  optTimeout = timeout ?? undefined;
}

export function negativeTimeout(name: string, op: string): RangeError {
  return new RangeError(`${name}.${op}: 'timeout' must be a non-negative number`);
}

/** Checks a maxsize; returns what is stored (an int32; <= 0 means unbounded). */
export function checkMaxsize(value: unknown, what: string): number {
  if (typeof value !== 'number') throw new TypeError(`${what}: maxsize must be a number, got ${describe(value)}`);
  if (Number.isNaN(value)) throw new RangeError(`${what}: maxsize must be a number, got NaN`);
  if (value === Infinity) return 0;
  // A fractional bound behaves as in Python: full when qsize >= maxsize.
  return Math.max(-0x80000000, Math.min(0x7fffffff, Math.ceil(value)));
}
