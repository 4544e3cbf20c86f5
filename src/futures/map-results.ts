/**
 * What every executor's `map` shares: reading its arguments (iterables, then an optional
 * options object), zipping the iterables, and giving the results back in order.
 */

import { TimeoutError } from '../errors.js';
import { deadlineAfter, describe, msUntil, timeoutOrZero } from '../shm/futex.js';
import type { Future } from './future.js';

export interface MapOptions {
  /** Milliseconds from the call to map() until a result that is not ready raises TimeoutError. */
  timeout?: number;
  /** Items per task: batches small items so that one task carries several. @default 1 */
  chunksize?: number;
}

/** The submitted map: its futures (one per chunk), and how to read them. */
export interface MapPlan {
  futures: Future<unknown>[];
  deadline: number;
  chunked: boolean;
  timeout: number | undefined;
  /** Names the call in errors ("ThreadPoolExecutor.map"). */
  what: string;
}

/**
 * Splits map()'s arguments into the iterables and the options (a last argument that is an
 * object but not iterable), and checks both.
 * @throws TypeError for an argument that is not iterable, RangeError for a bad chunksize.
 */
export function readMapArguments(rest: unknown[], what: string): { iterables: Iterable<unknown>[]; deadline: number; chunksize: number; timeout: number | undefined } {
  let options: MapOptions = {};
  const last = rest[rest.length - 1];
  if (rest.length > 0 && typeof last === 'object' && last !== null && !(Symbol.iterator in last)) {
    options = last as MapOptions;
    rest = rest.slice(0, -1);
  }
  const deadline = deadlineAfter(timeoutOrZero(options.timeout, what));
  const chunksize = options.chunksize ?? 1;
  if (!Number.isInteger(chunksize) || chunksize < 1) throw new RangeError(`${what}: chunksize must be >= 1, got ${describe(chunksize)}`);
  for (const [i, iterable] of rest.entries()) {
    if (typeof iterable !== 'object' || iterable === null || !(Symbol.iterator in iterable)) {
      throw new TypeError(`${what}: argument ${i + 2} must be an iterable, got ${describe(iterable)}`);
    }
  }
  return { iterables: rest as Iterable<unknown>[], deadline, chunksize, timeout: options.timeout };
}

export function* zip(iterables: Iterable<unknown>[]): Generator<unknown[]> {
  if (iterables.length === 0) return;
  const iterators = iterables.map((it) => it[Symbol.iterator]());
  for (;;) {
    const items: unknown[] = [];
    for (const it of iterators) {
      const step = it.next();
      if (step.done) return;
      items.push(step.value);
    }
    yield items;
  }
}

/** A map() result; a TimeoutError names the caller's timeout, not the time that was left. */
function mapResult(future: Future<unknown>, plan: MapPlan): unknown {
  const { deadline, timeout, what } = plan;
  try {
    return future.result(deadline === Infinity ? undefined : msUntil(deadline));
  } catch (error) {
    throw mapTimeout(error, future, timeout, what);
  }
}

async function mapResultAsync(future: Future<unknown>, plan: MapPlan): Promise<unknown> {
  const { deadline, timeout, what } = plan;
  try {
    return await future.resultAsync({ timeout: deadline === Infinity ? undefined : msUntil(deadline) });
  } catch (error) {
    throw mapTimeout(error, future, timeout, what);
  }
}

function mapTimeout(error: unknown, future: Future<unknown>, timeout: number | undefined, what: string): unknown {
  if (!(error instanceof TimeoutError) || future.done()) return error;
  return new TimeoutError(`${what}: a result was not ready within the timeout of ${timeout} ms given to map()`);
}

/** map()'s results in order; the futures not reached are cancelled when the caller stops early. */
export function* resultsInOrder(plan: MapPlan): Generator<unknown> {
  const { futures, chunked } = plan;
  let next = 0;
  try {
    for (; next < futures.length; next++) {
      const value = mapResult(futures[next]!, plan);
      if (chunked) yield* value as unknown[];
      else yield value;
    }
  } finally {
    for (let i = next; i < futures.length; i++) futures[i]!.cancel();
  }
}

export async function* resultsInOrderAsync(plan: MapPlan): AsyncGenerator<unknown> {
  const { futures, chunked } = plan;
  let next = 0;
  try {
    for (; next < futures.length; next++) {
      const value = await mapResultAsync(futures[next]!, plan);
      if (chunked) yield* value as unknown[];
      else yield value;
    }
  } finally {
    for (let i = next; i < futures.length; i++) futures[i]!.cancel();
  }
}

