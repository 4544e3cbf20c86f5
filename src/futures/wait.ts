/**
 * concurrent.futures.wait and as_completed. Every completion in the process bumps one shared
 * sequence word (future.ts), so a thread waiting for "any of these futures" sleeps on that one
 * word: read the sequence, check the futures, sleep only while the sequence is unchanged.
 * asCompletedAsync instead has each completion named to it through this thread's inbox
 * (future.ts), so that a wake-up costs what completed, not what is still pending.
 */

import { TimeoutError } from '../errors.js';
import { heap } from '../shm/current.js';
import { deadlineAfter, describe, msUntil, timeoutOrZero } from '../shm/futex.js';
import { addInterruptibleWait, interruptedError, takeInterrupt } from '../shm/interrupts.js';
import { WaitKind, beginWait, endWait, park, parkAsync } from '../shm/wait-site.js';
import { Kind, isGenuine } from '../shm/handles.js';
import { COMPLETIONS, COMPLETION_WAITERS, FINISHED, Future, deliverInboxNow, listenAsync, stalledWait, unlistenAsync } from './future.js';

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
  for (const f of list) {
    if (!(f instanceof Future)) throw new TypeError(`${what}: expected futures, got ${describe(f)}`);
    // (Before anything is written to the heap: a waiter marks the futures it sleeps on.)
    if (!isGenuine(f, Kind.Future)) throw new TypeError(`${what}: expected futures made with new Future() or by an executor, got one made from Future.prototype alone`);
  }
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
function sleepOnCompletions(i32: Int32Array, sequence: number, deadline: number, pending: Iterable<Future<unknown>>, kind: WaitKind = WaitKind.Wait): void {
  // Completers bump COMPLETIONS, then notify if anyone is counted in COMPLETION_WAITERS (our
  // callers count themselves before reading the sequence), so a completion after the read wakes us.
  const slice = Math.min(deadline, performance.now() + STALL_CHECK_MS);
  if (park(i32, COMPLETIONS, sequence, slice, kind, loneFuture(pending), deadline === Infinity) === 'timed-out' && msUntil(deadline) > 0) stalledWait(pending);
}

/**
 * The future a wait records as its object (dumps, deadlock detection): the one still pending
 * when only one is (wait([f]), the last of asCompleted), else none (0).
 */
function loneFuture(pending: Iterable<Future<unknown>>): number {
  let lone: Future<unknown> | undefined;
  for (const f of pending) {
    if (f.done()) continue;
    if (lone !== undefined) return 0;
    lone = f;
  }
  return lone === undefined ? 0 : lone._offset;
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
  const outer = beginWait(); // one wait, however many slices
  Atomics.add(i32, COMPLETION_WAITERS, 1);
  try {
    for (;;) {
      const sequence = Atomics.load(i32, COMPLETIONS);
      if (progress.over() || msUntil(deadline) === 0) return progress.result();
      sleepOnCompletions(i32, sequence, deadline, progress.unfinished());
    }
  } finally {
    Atomics.sub(i32, COMPLETION_WAITERS, 1);
    endWait(outer);
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
      await parkAsync(i32, COMPLETIONS, sequence, deadline, options.signal);
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

/** A waiting `next()` of an asCompletedAsync iterator. */
interface Consumer<R> {
  resolve: (result: IteratorResult<Future<R>>) => void;
  reject: (error: unknown) => void;
}

/**
 * asCompletedAsync's iterator. It costs O(1) per future (plus the sorts of each batch)
 * whatever the number of futures and of wake-ups: the futures not done at the first `next()` are
 * registered with this thread's inbox (future.ts), which names each future as it completes, so a
 * wake-up touches only the futures that completed (never the whole pending set); each batch of
 * completions is sorted by completion order once; the futures are yielded from a queue read by
 * an index (an `Array.shift()` copies a large array each time).
 *
 * A future another thread already awaits through its own inbox is waited for on its own word
 * (`exceptionAsync`) instead. A timeout or an abort stops the listening at once (nothing is
 * left holding the event loop), as do `return()` (a `break` out of `for await`) and the last
 * future.
 */
class AsCompletedAsync<R> implements AsyncIterableIterator<Future<R>> {
  private readonly total: number;
  /** Futures not found done yet, each with its inbox listener (null: waited for another way, or not at all). */
  private readonly waiting = new Map<Future<R>, (() => void) | null>();
  /** Futures found done: [head, length) are still to yield; [sorted, length) came since the last sort. */
  private arrived: Future<R>[] = [];
  private head = 0;
  private sorted = 0;
  private readonly consumers: Consumer<R>[] = [];
  private started = false;
  private listening = false;
  private closed = false;
  /** Whether the remaining futures were checked once more when the timeout passed or the signal aborted. */
  private harvested = false;
  private serveQueued = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** Aborts the waits for futures another thread listens to. */
  private others: AbortController | undefined;
  private readonly onAbort = (): void => this.expire();
  private readonly serveNow = (): void => this.serve();

  constructor(
    private readonly futures: Future<R>[],
    private readonly deadline: number,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.total = futures.length;
  }

  next(): Promise<IteratorResult<Future<R>>> {
    if (!this.started) {
      try {
        this.start();
      } catch (error) {
        this.close();
        return Promise.reject(error);
      }
    }
    if (this.consumers.length === 0) {
      if (this.head < this.arrived.length) return Promise.resolve({ value: this.take(), done: false });
      if (this.closed || this.waiting.size === 0) return Promise.resolve(this.finish());
      if (this.expired()) {
        this.harvest();
        if (this.head < this.arrived.length) return Promise.resolve({ value: this.take(), done: false });
        if (this.waiting.size === 0) return Promise.resolve(this.finish());
        return Promise.reject(this.fail());
      }
    }
    if (takeInterrupt()) return Promise.reject(interruptedError('asCompletedAsync'));
    return new Promise((resolve, reject) => {
      let stop = (): void => {};
      const consumer: Consumer<R> = {
        resolve: (result) => {
          stop();
          resolve(result);
        },
        reject: (error) => {
          stop();
          reject(error);
        },
      };
      this.consumers.push(consumer);
      this.armTimer();
      // An interrupt of this thread rejects this next() (the iterator goes on for a later one).
      stop = addInterruptibleWait((error) => {
        const at = this.consumers.indexOf(consumer);
        if (at >= 0) this.consumers.splice(at, 1);
        if (this.consumers.length === 0) this.disarmTimer();
        reject(error);
      });
    });
  }

  /** `break` out of `for await`: stops listening; the iterator is done. */
  return(): Promise<IteratorResult<Future<R>>> {
    this.close();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Future<R>> {
    return this;
  }

  /**
   * At the first next(): the futures done already, then the others are listened to. Everything
   * found done during the start is sorted as one batch (at the first take()): the futures done
   * at the scan, those done by the time their listener was set (found at once), and those whose
   * completion reached the inbox meanwhile (delivered now, not on the drain's next turn). For a
   * thread completing futures one after another that batch is a prefix of its completions: a
   * future completed before one in the batch was done at the scan, or found when its listener
   * was set, or pushed to the inbox before the later one completed. After it, the inbox reports
   * completions in the order they were pushed.
   */
  private start(): void {
    this.started = true;
    const notDone: Future<R>[] = [];
    for (const f of this.futures) (f.done() ? this.arrived : notDone).push(f);
    for (const f of notDone) this.waiting.set(f, null);
    if (notDone.length === 0 || this.expired()) return; // (a wait will fail: nothing to listen for)
    this.listening = true;
    this.signal?.addEventListener('abort', this.onAbort, { once: true });
    for (const f of notDone) this.listen(f);
    deliverInboxNow();
  }

  private listen(f: Future<R>): void {
    const onDone = (): void => this.arrive(f);
    // Set first: listenAsync calls onDone at once if the future is done by now.
    this.waiting.set(f, onDone);
    if (listenAsync(f as Future<unknown>, onDone)) return;
    this.waiting.set(f, null);
    this.others ??= new AbortController();
    const settle = (): void => {
      if (f.done()) this.arrive(f);
    };
    f._whenDoneUninterrupted(this.others.signal).then(settle, settle);
  }

  /** A future was found done (once: later reports of it are ignored). */
  private arrive(f: Future<R>): void {
    if (!this.waiting.delete(f)) return;
    this.arrived.push(f);
    // Serve after the current batch (an inbox drain reports many futures in one go), so that
    // the batch is yielded in completion order.
    if (this.consumers.length > 0 && !this.serveQueued) {
      this.serveQueued = true;
      queueMicrotask(this.serveNow);
    }
  }

  /** Hands arrived futures to the waiting next() calls. */
  private serve(): void {
    this.serveQueued = false;
    while (this.consumers.length > 0 && this.head < this.arrived.length) this.consumers.shift()!.resolve({ value: this.take(), done: false });
    if (this.consumers.length === 0) {
      this.disarmTimer();
    } else if (this.waiting.size === 0) {
      const result = this.finish();
      for (const consumer of this.consumers.splice(0)) consumer.resolve(result);
    }
  }

  /** The next future to yield (the caller checked there is one). */
  private take(): Future<R> {
    if (this.sorted < this.arrived.length) {
      // The futures reported since the last sort: in the order they completed.
      if (this.sorted === 0) {
        byCompletion(this.arrived);
      } else {
        const batch = byCompletion(this.arrived.slice(this.sorted));
        for (let i = 0; i < batch.length; i++) this.arrived[this.sorted + i] = batch[i]!;
      }
      this.sorted = this.arrived.length;
    }
    const f = this.arrived[this.head++]!;
    if (this.head >= 1024 && this.head * 2 >= this.arrived.length) {
      // Let the yielded futures go (amortized O(1): at most as many kept as dropped).
      this.arrived = this.arrived.slice(this.head);
      this.sorted -= this.head;
      this.head = 0;
    }
    return f;
  }

  private expired(): boolean {
    return msUntil(this.deadline) === 0 || this.signal?.aborted === true;
  }

  /** The timeout passed or the signal aborted: stop listening, fail the waiting next() unless a future is done. */
  private expire(): void {
    this.timer = undefined;
    if (this.closed) return;
    if (!this.expired()) {
      this.armTimer(); // (a timer that fired early)
      return;
    }
    this.stopListening();
    if (this.consumers.length === 0) return; // (the next next() finds out)
    this.harvest();
    this.serve();
    if (this.consumers.length > 0) this.fail();
  }

  /** Once, at the timeout or abort: the futures that are done by now (their reports may not have arrived). */
  private harvest(): void {
    if (this.harvested) return;
    this.harvested = true;
    this.stopListening();
    for (const f of this.waiting.keys()) {
      if (f.done()) {
        this.waiting.delete(f);
        this.arrived.push(f);
      }
    }
  }

  /**
   * Ends the iteration with the timeout's or the abort's error: the first waiting next() is
   * rejected with it (the others are done); returns it for a next() that did not wait.
   */
  private fail(): unknown {
    const error = this.signal?.aborted ? this.signal.reason : new TimeoutError(`${this.waiting.size} (of ${this.total}) futures unfinished`);
    const first = this.consumers.shift();
    this.close();
    first?.reject(error);
    return error;
  }

  private finish(): IteratorResult<Future<R>> {
    this.close();
    return { value: undefined, done: true };
  }

  /** Done: nothing listened to any more, every waiting next() told so. */
  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stopListening();
    this.waiting.clear();
    this.arrived = [];
    this.head = 0;
    this.sorted = 0;
    for (const consumer of this.consumers.splice(0)) consumer.resolve({ value: undefined, done: true });
  }

  private stopListening(): void {
    this.disarmTimer();
    if (!this.listening) return;
    this.listening = false;
    this.signal?.removeEventListener('abort', this.onAbort);
    for (const [f, onDone] of this.waiting) if (onDone !== null) unlistenAsync(f as Future<unknown>, onDone);
    this.others?.abort();
  }

  private armTimer(): void {
    if (this.timer !== undefined || this.deadline === Infinity || this.closed) return;
    this.timer = setTimeout(() => this.expire(), Math.max(1, Math.ceil(msUntil(this.deadline))));
  }

  private disarmTimer(): void {
    if (this.timer === undefined) return;
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/**
 * The async twin of `asCompleted`: yields the futures as they complete (those already done
 * first, in completion order), each once. A wait rejects with TimeoutError "N (of M) futures
 * unfinished" when `timeout` ms (from this call) pass first, or with `signal.reason` when the
 * signal aborts; the iterator is done after that. (A hand-written iterator: an async generator
 * would await each yielded Future, since futures are thenable, and yield its result instead.)
 */
export function asCompletedAsync<R>(fs: Iterable<Future<R>>, options: { timeout?: number; signal?: AbortSignal } = {}): AsyncIterableIterator<Future<R>> {
  const futures = uniqueFutures(fs, 'asCompletedAsync');
  const deadline = deadlineAfter(timeoutOrZero(options.timeout, 'asCompletedAsync'));
  return new AsCompletedAsync(futures, deadline, options.signal);
}
