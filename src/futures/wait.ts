/**
 * concurrent.futures.wait and as_completed. Every completion in the process bumps one shared
 * sequence word (future.ts), so a thread waiting for "any of these futures" sleeps on that one
 * word: read the sequence, check the futures, sleep only while the sequence is unchanged.
 */

import { TimeoutError } from '../errors.js';
import { heap } from '../shm/current.js';
import { deadlineAfter, describe, futexWait, futexWaitAsync, msUntil, timeoutOrZero } from '../shm/futex.js';
import { COMPLETIONS, COMPLETION_WAITERS, FINISHED, Future, stalledWait } from './future.js';

/** How long a blocking wait sleeps before it checks the futures' runners and pools (ms). */
const STALL_CHECK_MS = 100;

export const FIRST_COMPLETED = 'FIRST_COMPLETED';
export const FIRST_EXCEPTION = 'FIRST_EXCEPTION';
export const ALL_COMPLETED = 'ALL_COMPLETED';
export type ReturnWhen = typeof FIRST_COMPLETED | typeof FIRST_EXCEPTION | typeof ALL_COMPLETED;

export interface WaitResult<R> {
  done: Set<Future<R>>;
  notDone: Set<Future<R>>;
}

function uniqueFutures<R>(fs: Iterable<Future<R>>, what: string): Future<R>[] {
  if (typeof fs !== 'object' || fs === null || !(Symbol.iterator in fs)) throw new TypeError(`${what}: expected an iterable of futures, got ${describe(fs)}`);
  const list = [...new Set(fs)];
  for (const f of list) if (!(f instanceof Future)) throw new TypeError(`${what}: expected futures, got ${describe(f)}`);
  return list;
}

/** Done futures in the order they completed (as CPython's waiters collect them). */
function byCompletion<R>(futures: Future<R>[]): Future<R>[] {
  return futures.sort((a, b) => a._completionOrder() - b._completionOrder());
}

/**
 * Sleeps while no future anywhere completed since `sequence` was read, at most until
 * `deadline`, in slices: after a silent slice, the runners of `pending` are checked and the
 * pools this thread knows are kept going (stalledWait).
 */
function sleepOnCompletions(i32: Int32Array, sequence: number, deadline: number, pending: Iterable<Future<unknown>>): void {
  // Completers bump COMPLETIONS, then notify if anyone is counted in COMPLETION_WAITERS (our
  // callers count themselves before reading the sequence), so a completion after the read wakes us.
  const slice = Math.min(deadline, performance.now() + STALL_CHECK_MS);
  if (futexWait(i32, COMPLETIONS, sequence, slice) === 'timed-out' && msUntil(deadline) > 0) stalledWait(pending);
}

function split<R>(futures: Future<R>[]): WaitResult<R> {
  const done = new Set<Future<R>>();
  const notDone = new Set<Future<R>>();
  for (const f of futures) (f.done() ? done : notDone).add(f);
  return { done, notDone };
}

/**
 * What a wait still watches. Futures found done leave `pending` for good; for ALL_COMPLETED the
 * scan stops at the first unfinished future (the wait cannot end before it is done), so a wait
 * for N futures costs O(N) checks however often it wakes.
 */
class WaitProgress<R> {
  private readonly pending: Future<R>[];
  private doneCount = 0;
  private anyFailed = false;

  constructor(
    private readonly futures: Future<R>[],
    private readonly returnWhen: ReturnWhen,
  ) {
    this.pending = futures.slice();
  }

  /** Checks the pending futures; true when the wait is over. */
  over(): boolean {
    const pending = this.pending;
    let kept = 0;
    let i = 0;
    for (; i < pending.length; i++) {
      const f = pending[i]!;
      if (f.done()) {
        this.doneCount++;
        if (f._state() === FINISHED && f._failed()) this.anyFailed = true;
        continue;
      }
      pending[kept++] = f;
      if (this.returnWhen === ALL_COMPLETED) break;
    }
    // (After a break, the rest is kept unchecked.)
    for (i++; i < pending.length; i++) pending[kept++] = pending[i]!;
    pending.length = kept;
    if (kept === 0) return true;
    if (this.returnWhen === FIRST_COMPLETED) return this.doneCount > 0;
    if (this.returnWhen === FIRST_EXCEPTION) return this.anyFailed;
    return false;
  }

  /** The futures not found done yet (for the stall checks). */
  unfinished(): Future<unknown>[] {
    return this.pending as Future<unknown>[];
  }

  result(): WaitResult<R> {
    return split(this.futures);
  }
}

/**
 * Waits until the futures are done as `returnWhen` says (default ALL_COMPLETED), at most
 * `timeout` ms; returns the done and not-done sets.
 */
export function wait<R>(fs: Iterable<Future<R>>, options: { timeout?: number; returnWhen?: ReturnWhen } = {}): WaitResult<R> {
  const progress = new WaitProgress(uniqueFutures(fs, 'wait'), checkReturnWhen(options.returnWhen));
  const deadline = deadlineAfter(timeoutOrZero(options.timeout, 'wait'));
  const i32 = heap().i32;
  Atomics.add(i32, COMPLETION_WAITERS, 1);
  try {
    for (;;) {
      const sequence = Atomics.load(i32, COMPLETIONS);
      if (progress.over() || msUntil(deadline) === 0) return progress.result();
      sleepOnCompletions(i32, sequence, deadline, progress.unfinished());
    }
  } finally {
    Atomics.sub(i32, COMPLETION_WAITERS, 1);
  }
}

/** The Promise twin of `wait`. */
export async function waitAsync<R>(fs: Iterable<Future<R>>, options: { timeout?: number; returnWhen?: ReturnWhen; signal?: AbortSignal } = {}): Promise<WaitResult<R>> {
  const progress = new WaitProgress(uniqueFutures(fs, 'waitAsync'), checkReturnWhen(options.returnWhen));
  const deadline = deadlineAfter(timeoutOrZero(options.timeout, 'waitAsync'));
  const i32 = heap().i32;
  Atomics.add(i32, COMPLETION_WAITERS, 1);
  try {
    for (;;) {
      // Counted in COMPLETION_WAITERS before the read: a completion after it bumps and notifies.
      const sequence = Atomics.load(i32, COMPLETIONS);
      if (progress.over() || msUntil(deadline) === 0) return progress.result();
      await futexWaitAsync(i32, COMPLETIONS, sequence, deadline, options.signal);
    }
  } finally {
    Atomics.sub(i32, COMPLETION_WAITERS, 1);
  }
}

function checkReturnWhen(value: ReturnWhen | undefined): ReturnWhen {
  if (value === undefined) return ALL_COMPLETED;
  if (value !== FIRST_COMPLETED && value !== FIRST_EXCEPTION && value !== ALL_COMPLETED) {
    throw new RangeError(`wait: returnWhen must be FIRST_COMPLETED, FIRST_EXCEPTION or ALL_COMPLETED, got ${describe(value)}`);
  }
  return value;
}

/**
 * Yields the futures as they complete (those already done first).
 * @throws TimeoutError "N (of M) futures unfinished" when `timeout` ms pass first.
 */
export function* asCompleted<R>(fs: Iterable<Future<R>>, timeout?: number): Generator<Future<R>> {
  const pending = new Set(uniqueFutures(fs, 'asCompleted'));
  const total = pending.size;
  const deadline = deadlineAfter(timeoutOrZero(timeout, 'asCompleted'));
  const i32 = heap().i32;
  while (pending.size > 0) {
    Atomics.add(i32, COMPLETION_WAITERS, 1);
    let finished: Future<R>[];
    try {
      const sequence = Atomics.load(i32, COMPLETIONS);
      finished = byCompletion([...pending].filter((f) => f.done()));
      if (finished.length === 0) {
        if (msUntil(deadline) === 0) throw new TimeoutError(`${pending.size} (of ${total}) futures unfinished`);
        sleepOnCompletions(i32, sequence, deadline, pending as Set<Future<unknown>>);
      }
    } finally {
      Atomics.sub(i32, COMPLETION_WAITERS, 1);
    }
    for (const f of finished) {
      pending.delete(f);
      yield f;
    }
  }
}

/**
 * The async twin of `asCompleted`. (A hand-written iterator: an async generator would await
 * each yielded Future, since futures are thenable, and yield its result instead.)
 */
export function asCompletedAsync<R>(fs: Iterable<Future<R>>, options: { timeout?: number; signal?: AbortSignal } = {}): AsyncIterableIterator<Future<R>> {
  const pending = new Set(uniqueFutures(fs, 'asCompletedAsync'));
  const total = pending.size;
  const deadline = deadlineAfter(timeoutOrZero(options.timeout, 'asCompletedAsync'));
  const i32 = heap().i32;
  const ready: Future<R>[] = [];
  const next = async (): Promise<IteratorResult<Future<R>>> => {
    while (ready.length === 0) {
      if (pending.size === 0) return { value: undefined, done: true };
      const sequence = Atomics.load(i32, COMPLETIONS);
      for (const f of pending) if (f.done()) ready.push(f);
      byCompletion(ready);
      for (const f of ready) pending.delete(f);
      if (ready.length > 0) break;
      if (msUntil(deadline) === 0) throw new TimeoutError(`${pending.size} (of ${total}) futures unfinished`);
      Atomics.add(i32, COMPLETION_WAITERS, 1);
      try {
        await futexWaitAsync(i32, COMPLETIONS, sequence, deadline, options.signal);
      } finally {
        Atomics.sub(i32, COMPLETION_WAITERS, 1);
      }
    }
    return { value: ready.shift()!, done: false };
  };
  const iterator: AsyncIterableIterator<Future<R>> = {
    next,
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}
