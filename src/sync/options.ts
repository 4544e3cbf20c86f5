/**
 * Argument checks shared by the primitives: the `acquire({ blocking, timeout })` rules of
 * CPython's locks and semaphores, and the disposable returned by `hold()`.
 */

import { TimeoutError } from '../errors.js';
import { TIMEOUT_MAX, checkTimeout, describe } from '../shm/futex.js';

export interface AcquireOptions {
  /** When false, return at once instead of waiting. @default true */
  blocking?: boolean;
  /** Wait at most this many milliseconds. `undefined`, `Infinity` or `-1` wait forever. */
  timeout?: number;
}

export interface AsyncAcquireOptions extends AcquireOptions {
  /** Aborting rejects the Promise with `signal.reason` and leaves the primitive untouched. */
  signal?: AbortSignal;
}

/**
 * CPython's rules for `Lock.acquire(blocking, timeout)`: a timeout with blocking=false is an
 * error; -1 means forever; any other negative value is an error.
 */
export function lockAcquireOptions(options: AcquireOptions | undefined, what: string): number {
  if (options === undefined) return Infinity;
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`${what}: expected an options object such as { blocking: false } or { timeout: 500 }, got ${describe(options)}`);
  }
  const blocking = options.blocking ?? true;
  if (typeof blocking !== 'boolean') throw new TypeError(`${what}: blocking must be a boolean, got ${describe(blocking)}`);
  const hasTimeout = options.timeout !== undefined && options.timeout !== -1;
  if (!blocking) {
    if (hasTimeout) throw new RangeError(`${what}: can't specify a timeout for a non-blocking call (got timeout ${describe(options.timeout)})`);
    return 0;
  }
  if (!hasTimeout) return Infinity;
  const timeout = checkTimeout(options.timeout, what);
  if (timeout < 0) throw new RangeError(`${what}: timeout value must be a non-negative number (or -1 for forever), got ${timeout}`);
  if (timeout > TIMEOUT_MAX && timeout !== Infinity) throw new RangeError(`${what}: timeout value is too large: ${timeout} > TIMEOUT_MAX (${TIMEOUT_MAX} ms)`);
  return timeout;
}

/**
 * CPython's rules for `Semaphore.acquire(blocking, timeout)`: a timeout with blocking=false is
 * an error; a negative timeout waits not at all.
 */
export function semaphoreAcquireOptions(options: AcquireOptions | undefined, what: string): number {
  if (options === undefined) return Infinity;
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`${what}: expected an options object such as { blocking: false } or { timeout: 500 }, got ${describe(options)}`);
  }
  const blocking = options.blocking ?? true;
  if (typeof blocking !== 'boolean') throw new TypeError(`${what}: blocking must be a boolean, got ${describe(blocking)}`);
  if (!blocking) {
    if (options.timeout !== undefined) throw new RangeError(`${what}: can't specify timeout for non-blocking acquire (got timeout ${describe(options.timeout)})`);
    return 0;
  }
  const timeout = checkTimeout(options.timeout, what);
  if (timeout > TIMEOUT_MAX && timeout !== Infinity) throw new RangeError(`${what}: timeout value is too large: ${timeout} > TIMEOUT_MAX (${TIMEOUT_MAX} ms)`);
  return timeout < 0 ? 0 : timeout;
}

/** What `hold()` returns: `using _ = lock.hold()` releases at the end of the block. */
export interface Held extends Disposable {
  /** Releases now (the dispose at block end is then a no-op). */
  release(): void;
}

/** Builds the disposable for `hold()`, releasing exactly once. */
export function heldBy(release: () => void): Held & AsyncDisposable {
  let released = false;
  const releaseOnce = (): void => {
    if (released) return;
    released = true;
    release();
  };
  return {
    release: releaseOnce,
    [Symbol.dispose]: releaseOnce,
    [Symbol.asyncDispose]: async () => releaseOnce(),
  };
}

export function holdTimeout(what: string, timeout: number): TimeoutError {
  return new TimeoutError(timeout === 0 ? `${what} is held elsewhere (non-blocking hold)` : `${what} could not be acquired within ${timeout} ms`);
}

/** "0x1a40": the block offset, in the place of CPython's object address. */
export function address(offset: number): string {
  return `0x${offset.toString(16)}`;
}
