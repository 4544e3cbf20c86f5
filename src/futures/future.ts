/**
 * Future: CPython's `concurrent.futures.Future` in shared memory: any thread can complete it,
 * wait for it, or cancel it, and it travels between threads by reference.
 *
 * | slot | field     | meaning                                                                 |
 * |------|-----------|-------------------------------------------------------------------------|
 * | 0    | STATE     | PENDING 0, RUNNING 1, CANCELLED 2, CANCELLED_AND_NOTIFIED 3, FINISHED 4  |
 * |      |           | + WAITED (8) once a thread may sleep on it (futex word: waiters sleep    |
 * |      |           | while it holds the value they read)                                      |
 * | 1    | LOCK      | mutex word: every state transition happens under it                      |
 * | 2    | OUTCOME   | encoded result (one reference), or minus the block of an exception;      |
 * |      |           | 0 before FINISHED                                                        |
 * | 3    | ORDER     | completion order (process-wide counter), set with the final state        |
 * | 4    | RUNNER    | OS thread id of the thread running it (a waiter checks it is alive)       |
 * | 5    | LISTENER  | inbox of the one thread awaiting it through its event loop, or 0         |
 * | 6    | STOP      | bits: STOP_INTERRUPT (cancel({ interrupt }) asked: the running task,     |
 * |      |           | ended by that interrupt, ends the future cancelled), STOP_TIMED_OUT      |
 * | 7    | TIMEOUT   | a pool task's timeout (ms, from when it starts running), 0 for none       |
 * | 8    | KILL_AFTER| ms after the interrupt before its isolate is terminated, -1 for never     |
 * | 9    | REMOTE    | a remote executor's notice queue (one reference), 0 for a local future   |
 * | 10-11| SUBMITTED | Float64: when a pool task was submitted (sharedClock ms, for waitTime)   |
 *
 * A completer writes OUTCOME, then STATE, under LOCK, then notifies STATE (see WAITED) and bumps the
 * process-wide completion sequence (wait() / asCompleted() sleep on that one word), so a waiter
 * that sees a final STATE also sees the outcome, and no completion is missed between a waiter's
 * check and its sleep. A waiter sets WAITED (an atomic or) before it sleeps, and a state change
 * is an exchange that clears it: only a change that took WAITED away notifies, so a future
 * nobody sleeps on costs no notify (~70 ns each, on a lock all threads share).
 */

import { existsSync } from 'node:fs';
import { inspect } from 'node:util';
import { CancelledError, InvalidStateError, ThreadError, TimeoutError } from '../errors.js';
import { decodeReceived, dropEncoded, encodeToBlock, forEachHandle } from '../shm/codec.js';
import { heap } from '../shm/current.js';
import { deadlineAfter, describe, futexWaitAsync, msUntil, timeoutOrZero } from '../shm/futex.js';
import { WaitKind, beginWait, endWait, park, parkAsync } from '../shm/wait-site.js';
import { addInterruptibleWait, interruptedError, takeInterrupt } from '../shm/interrupts.js';
import { enterInternal, leaveInternal } from '../shm/kill-guard.js';
import { Kind, SharedObject, dropReference, registerKind, reviveAs, wrapperFor } from '../shm/handles.js';
import { HeapExhaustedError, S_ROOTS } from '../shm/heap.js';
import { internalLock, internalUnlock } from '../shm/mutex.js';
import { address } from '../sync/options.js';
import { wake } from '../shm/trace-ring.js';

const STATE = 0;
const LOCK = 1;
const OUTCOME = 2;
/** OUTCOME of a future failed for lack of heap room (no block: block offsets are >= 1024). */
const NO_ROOM = -1;
const ORDER = 3;
const RUNNER = 4;
const LISTENER = 5;
const STOP = 6;
const TIMEOUT = 7;
const KILL_AFTER = 8;
/** A remote executor's notice queue (RedisExecutor), or 0: cancel() tells it (the future holds a reference). */
const REMOTE = 9;
/** Float64 slot (from the offset >> 3; int slots 10-11): a pool task's submit time (task-queue.ts writes it). */
export const SUBMITTED_F64 = 5;
const FUTURE_BYTES = 48;

/** What a remote future puts in its executor's notice queue: `[notice, future]`. */
export const REMOTE_CANCELLED = 1;
export const REMOTE_INTERRUPT = 2;

/** STOP bits. */
export const STOP_INTERRUPT = 1;
export const STOP_TIMED_OUT = 2;

/** What cancel({ interrupt }) asks of a running task (task-stopper.ts registers it). */
export interface RunningTaskStopper {
  /** Interrupts the task running `future` (and schedules its kill): false when none runs it. */
  stop(future: Future<unknown>, killAfter: number): boolean;
}
let stopper: RunningTaskStopper | undefined;

export function setRunningTaskStopper(s: RunningTaskStopper): void {
  stopper = s;
}

/** Options of `future.cancel()` (beyond Python). */
export interface CancelOptions {
  /** Interrupt the task if it is running (it then ends `cancelled` when it ends by that interrupt). */
  interrupt?: boolean;
  /** A task still running this long (ms) after the interrupt has its isolate terminated (implies interrupt). */
  killAfter?: number;
}

export const PENDING = 0;
export const RUNNING = 1;
export const CANCELLED = 2;
export const CANCELLED_AND_NOTIFIED = 3;
export const FINISHED = 4;
/** Bit of the STATE word: a thread may be asleep on it (the next state change notifies). */
const WAITED = 8;
const STATE_MASK = 7;

const STATE_NAMES = ['PENDING', 'RUNNING', 'CANCELLED', 'CANCELLED', 'FINISHED'];

/** Root slots: the completion sequence (bumped by every completion) and how many sleep on it. */
export const COMPLETIONS = S_ROOTS + 8;
export const COMPLETION_WAITERS = S_ROOTS + 9;
/** Root slot: numbers completions in the order they happen (ORDER of each future). */
const COMPLETION_ORDER = S_ROOTS + 11;

/**
 * Work for a thread whose blocking wait for a future has made no progress for a while: pools
 * register one that keeps them going (a blocked thread's event loop cannot start a thread).
 */
const stallHooks: (() => void)[] = [];

export function onStalledWait(hook: () => void): void {
  stallHooks.push(hook);
}

/** @internal a blocking wait slept a full liveness slice: check the futures' runners, let pools catch up */
export function stalledWait(futures: Iterable<Future<unknown>>): void {
  for (const future of futures) future._checkRunnerAlive();
  for (const hook of stallHooks) {
    try {
      hook();
    } catch {
      // (a replacement thread that cannot start now: the next slice tries again)
    }
  }
}

/** How often a waiter checks that the thread running its future still exists (ms). */
const LIVENESS_CHECK_MS = 100;

/** How long `result()` spins before sleeping, and `resultAsync()` before going async (µs). */
const RESULT_SPIN_MICROS = 50;
const ASYNC_SPIN_MICROS = 50;

function spinWhile(condition: () => boolean, micros: number): void {
  const until = performance.now() + micros / 1000;
  do {
    for (let i = 0; i < 32; i++) if (!condition()) return;
  } while (performance.now() < until);
}

export interface FutureWaitOptions {
  timeout?: number;
  signal?: AbortSignal;
}

type DoneCallback<R> = (future: Future<R>) => void;

/** Set by storeState() during a transition when a sleeper set WAITED (one transition at a time per thread). */
let sleepersToWake = false;

/** Callbacks added in this thread, by future offset; run here when the future is done. */
const localCallbacks = new Map<number, { future: Future<unknown>; callbacks: DoneCallback<unknown>[] }>();

export class Future<R = unknown> extends SharedObject implements PromiseLike<R> {
  /** A new pending future (for custom executors and tests; executors make their own). */
  constructor() {
    super(Kind.Future, FUTURE_BYTES);
    if (this._fresh) this.i32[this.base + KILL_AFTER] = -1;
  }

  private get i32(): Int32Array {
    return this._heap.i32;
  }

  private get base(): number {
    return this._offset >> 2;
  }

  /** @internal the state word's value */
  _state(): number {
    return Atomics.load(this.i32, this.base + STATE) & STATE_MASK;
  }

  /**
   * Cancels the future if it has not started; returns false if it is running or done.
   * Beyond Python: with `{ interrupt: true }` a running pool task is interrupted (its waits throw
   * InterruptedError, its signal aborts) and true is returned; the future ends cancelled when the
   * task ends by that interrupt, or with the task's own outcome if it finished first. With
   * `killAfter: ms`, a task still running that long after the interrupt has its isolate
   * terminated and replaced, and its future ends cancelled.
   */
  cancel(options?: CancelOptions): boolean {
    const killAfter = checkCancelOptions(options);
    let changed = false;
    const cancelled = this.transition((state) => {
      if (state === RUNNING || state === FINISHED) return false;
      if (state === CANCELLED || state === CANCELLED_AND_NOTIFIED) return true;
      this.numberCompletion();
      this.storeState(CANCELLED);
      changed = true;
      return 'changed';
    });
    if (changed) this.tellRemote(REMOTE_CANCELLED);
    if (cancelled || killAfter === undefined || this._state() !== RUNNING) return cancelled;
    // Marked first: a pool thread that takes the task from here on sees the mark (pool-thread.ts).
    Atomics.or(this.i32, this.base + STOP, STOP_INTERRUPT);
    if (this.tellRemote(REMOTE_INTERRUPT)) return true;
    return stopper?.stop(this as Future<unknown>, killAfter) ?? false;
  }

  /**
   * @internal Makes this future remote: cancel() puts `[REMOTE_CANCELLED | REMOTE_INTERRUPT,
   * future]` into `notices` (a SimpleQueue its executor's bridge reads), which it holds.
   */
  _setRemote(notices: SharedObject): void {
    notices._heap.retain(notices._offset);
    // Written once, before the future is shared (put in the bridge's inbox, returned): nobody
    // waits on this word, so no wake is owed; readers only load it.
    Atomics.store(this.i32, this.base + REMOTE, notices._offset);
  }

  private isRemote(): boolean {
    // (A plain read of a word set once before sharing: no wait, no wake.)
    return Atomics.load(this.i32, this.base + REMOTE) !== 0;
  }

  /** True when the future is remote (its notice was put, or its executor is gone). */
  private tellRemote(notice: number): boolean {
    const notices = Atomics.load(this.i32, this.base + REMOTE);
    if (notices === 0) return false;
    try {
      (wrapperFor(notices) as unknown as { putNowait(item: unknown): void }).putNowait([notice, this]);
    } catch {
      // The executor was shut down: nothing is left to tell.
    }
    return true;
  }

  /** @internal STOP bits */
  _stopFlags(): number {
    return Atomics.load(this.i32, this.base + STOP);
  }

  /** @internal */
  _markStopped(bits: number): void {
    Atomics.or(this.i32, this.base + STOP, bits);
  }

  /** @internal submitWith's limits: timeout 0 for none, killAfter -1 for never */
  _setLimits(timeout: number, killAfter: number): void {
    this.i32[this.base + TIMEOUT] = timeout;
    this.i32[this.base + KILL_AFTER] = killAfter;
  }

  /** @internal */
  _limits(): { timeout: number; killAfter: number } {
    return { timeout: this.i32[this.base + TIMEOUT]!, killAfter: this.i32[this.base + KILL_AFTER]! };
  }

  /**
   * @internal A running task ended by the interrupt of cancel({ interrupt }) (or killed): the
   * future ends cancelled. False when it was done already.
   */
  _cancelRunning(): boolean {
    return this.transition((state) => {
      if (state !== RUNNING) return false;
      this.numberCompletion();
      this.storeState(CANCELLED);
      return 'changed';
    });
  }

  /** True when the future was cancelled. */
  cancelled(): boolean {
    const state = this._state();
    return state === CANCELLED || state === CANCELLED_AND_NOTIFIED;
  }

  /** True while the task runs. */
  running(): boolean {
    return this._state() === RUNNING;
  }

  /** True when the future finished or was cancelled. */
  done(): boolean {
    return this._state() >= CANCELLED;
  }

  /**
   * Waits at most `timeout` ms for the future, then returns its result.
   * @throws CancelledError if cancelled, TimeoutError if not done in time, or the task's own error.
   */
  result(timeout?: number): R {
    this.waitDone(timeoutOrZero(timeout, 'Future.result'));
    return this.outcome(timeout) as R;
  }

  /**
   * Waits like `result`, then returns the task's error (undefined if it succeeded).
   * @throws CancelledError if cancelled, TimeoutError if not done in time.
   */
  exception(timeout?: number): unknown {
    this.waitDone(timeoutOrZero(timeout, 'Future.exception'));
    return this.failure(timeout);
  }

  /** The Promise twin of `result`. */
  resultAsync(options: FutureWaitOptions = {}): Promise<R> {
    // (Not an async function: awaiting many futures, each costs one Promise and no extra hop.)
    if (typeof options !== 'object' || options === null) return Promise.reject(new TypeError(`Future.resultAsync: expected an options object, got ${describe(options)}`));
    // Awaiting one future (a round trip): a short task finishes sooner than an async wake-up
    // arrives (~100 µs through the event loop), so look for a while first.
    // (Not a remote future's: it takes a network round trip.)
    if (!this.done() && inboxWaiters.size === 0 && !this.isRemote()) spinWhile(() => !this.done(), ASYNC_SPIN_MICROS);
    if (this.done()) return this.settledOutcome(options.timeout);
    if (takeInterrupt()) return Promise.reject(interruptedError('Future.resultAsync'));
    if (options.timeout === undefined && options.signal === undefined && listenThroughInbox(this as Future<unknown>)) {
      return new Promise<R>((resolve, reject) => {
        let settled = false;
        let stopListening: (() => void) | undefined;
        const onDone = (): void => {
          settled = true;
          stopListening?.();
          try {
            resolve(this.outcome(undefined) as R);
          } catch (error) {
            reject(error);
          }
        };
        addInboxWaiter(this._offset, onDone);
        // An interrupt of this thread ends the wait (the future goes on without us).
        if (!settled) {
          stopListening = addInterruptibleWait((error) => {
            unlistenAsync(this as Future<unknown>, onDone);
            reject(error);
          });
        }
      });
    }
    return this.waitDoneAsync(options, 'Future.resultAsync').then(() => this.outcome(options.timeout) as R);
  }

  /** The outcome of a done future as a settled Promise. */
  private settledOutcome(timeout: number | undefined): Promise<R> {
    try {
      return Promise.resolve(this.outcome(timeout) as R);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** The Promise twin of `exception`. */
  async exceptionAsync(options: FutureWaitOptions = {}): Promise<unknown> {
    await this.waitDoneAsync(options, 'Future.exceptionAsync');
    return this.failure(options.timeout);
  }

  /** `await future` gives the result (or rejects with the error). */
  then<A = R, B = never>(onFulfilled?: ((value: R) => A | PromiseLike<A>) | null, onRejected?: ((reason: unknown) => B | PromiseLike<B>) | null): Promise<A | B> {
    return this.resultAsync().then(onFulfilled, onRejected);
  }

  /**
   * Calls `fn(future)` when the future is done, in this thread: at once (synchronously) if it
   * is done already, else from this thread's event loop (or synchronously if this thread
   * completes it). An error thrown by `fn` is logged, not raised.
   */
  addDoneCallback(fn: DoneCallback<R>): void {
    if (typeof fn !== 'function') throw new TypeError(`Future.addDoneCallback(fn): expected a function, got ${describe(fn)}`);
    if (this.done()) return runCallback(this, fn);
    let entry = localCallbacks.get(this._offset);
    const first = entry === undefined;
    if (entry === undefined) {
      entry = { future: this as Future<unknown>, callbacks: [] };
      localCallbacks.set(this._offset, entry);
    }
    // Push before the watcher starts: a future that completes now runs the watcher's
    // synchronous part at once, and it must find this callback in the entry.
    entry.callbacks.push(fn as DoneCallback<unknown>);
    if (first) void this.watchForCallbacks();
  }

  /**
   * For executors: marks the future RUNNING and returns true, or, if it was cancelled, marks
   * the cancellation noticed and returns false.
   * @throws ThreadError when the future is already running or done.
   */
  setRunningOrNotifyCancel(): boolean {
    let unexpected = -1;
    const running = this.transition((state) => {
      if (state === CANCELLED) {
        this.storeState(CANCELLED_AND_NOTIFIED);
        return false;
      }
      if (state === PENDING) {
        this.storeState(RUNNING);
        return true;
      }
      unexpected = state;
      return false;
    });
    if (unexpected >= 0) throw new ThreadError(`Future in unexpected state: ${STATE_NAMES[unexpected]}`);
    return running;
  }

  /**
   * @internal While queued, RUNNER holds minus the pool's offset (deadlock detection follows a
   * wait on a queued task to its pool's threads); a thread that takes the task overwrites it.
   */
  _setQueuedIn(pool: number): void {
    Atomics.store(this.i32, this.base + RUNNER, -pool);
  }

  /** @internal RUNNER: the OS thread id running it, minus its pool's offset while queued, 0 for none */
  _runner(): number {
    return Atomics.load(this.i32, this.base + RUNNER);
  }

  /** @internal records which OS thread runs the future, so waiters can tell if it died */
  _setRunner(nativeId: number): void {
    Atomics.store(this.i32, this.base + RUNNER, nativeId);
  }

  /**
   * Completes the future with a result.
   * @throws InvalidStateError when it is already done (or cancelled).
   */
  setResult(result: R): void {
    this.complete(result, false);
  }

  /**
   * Completes the future with an error.
   * @throws InvalidStateError when it is already done (or cancelled).
   */
  setException(error: unknown): void {
    this.complete(error, true);
  }

  /**
   * @internal Fails the future with HeapExhaustedError without allocating: for a completer
   * whose result, and then its error, could not be stored because the heap is full (a task
   * must settle its future whatever happens). OUTCOME holds NO_ROOM instead of a block.
   * Returns false when the future was already done.
   */
  _failForLackOfRoom(): boolean {
    let changed = false;
    this.transition((state) => {
      if (state >= CANCELLED) return false;
      this.i32[this.base + OUTCOME] = NO_ROOM;
      this.numberCompletion();
      this.storeState(FINISHED);
      changed = true;
      return 'changed';
    });
    return changed;
  }

  /** As CPython's: `<Future at 0x… state=finished returned number>` (the result's class, or the error's). */
  override toString(): string {
    const state = this._state();
    const name = STATE_NAMES[state] ?? 'UNKNOWN';
    if (state !== FINISHED) return `<Future at ${address(this._offset)} state=${name.toLowerCase()}>`;
    return `<Future at ${address(this._offset)} state=finished ${this._failed() ? 'raised' : 'returned'} ${className(this.decodeOutcome())}>`;
  }

  /** @internal true when FINISHED with an exception (whatever was thrown, `undefined` too) */
  _failed(): boolean {
    return Atomics.load(this.i32, this.base + OUTCOME) < 0;
  }

  /** @internal the completion's place in the process-wide order (0 while not done) */
  _completionOrder(): number {
    return Atomics.load(this.i32, this.base + ORDER);
  }

  [inspect.custom](): string {
    return this.toString();
  }

  // ---- internals ------------------------------------------------------------------------

  /**
   * Runs `change` with LOCK held. When it returns 'changed' (or a state was stored), the
   * waiters that marked the word are woken, inbox and wait() sleepers told, local callbacks run.
   */
  private transition<T>(change: (state: number) => T | 'changed'): T | true {
    const i32 = this.i32;
    const lock = this.base + LOCK;
    internalLock(i32, lock);
    const before = this._state();
    sleepersToWake = false;
    let outcome: T | 'changed';
    try {
      outcome = change(before);
    } finally {
      internalUnlock(i32, lock);
    }
    const after = this._state();
    if (after !== before) this.announce(after, sleepersToWake);
    return outcome === 'changed' ? true : outcome;
  }

  /**
   * Under LOCK: the new state, WAITED cleared. The exchange tells whether a waiter set WAITED
   * before it: then announce() notifies. A waiter that sets it after the exchange reads the new
   * state in the same atomic or, so it never sleeps on a value nobody will change.
   */
  private storeState(state: number): void {
    if (Atomics.exchange(this.i32, this.base + STATE, state) & WAITED) sleepersToWake = true;
  }

  /**
   * Before a sleep on STATE: sets WAITED and returns the word to sleep on (its state part is
   * the current state: the caller checks it first). A done future is left as it is (no write to
   * a line other threads read).
   */
  private markWaited(): number {
    const word = Atomics.load(this.i32, this.base + STATE);
    if ((word & STATE_MASK) >= CANCELLED) return word;
    return Atomics.or(this.i32, this.base + STATE, WAITED) | WAITED;
  }

  private complete(value: unknown, failed: boolean): void {
    // Encoded and stored in one kill-safe section (shm/kill-guard.ts): a kill never loses the outcome's blocks.
    enterInternal();
    try {
      this.completeGuarded(value, failed);
    } finally {
      leaveInternal();
    }
  }

  private completeGuarded(value: unknown, failed: boolean): void {
    // Encode outside the lock; a value that cannot cross fails the call, the future unchanged.
    const h = this._heap;
    const block = encodeToBlock(h, value, failed ? 'exception' : 'result', 0, this._offset, 'the future');
    let refused = -1;
    this.transition((state) => {
      if (state >= CANCELLED) {
        refused = state;
        return false;
      }
      h.i32[this.base + OUTCOME] = failed ? -block : block;
      this.numberCompletion();
      this.storeState(FINISHED);
      return 'changed';
    });
    if (refused >= 0) {
      dropEncoded(h.buf, block);
      dropReference(block);
      throw new InvalidStateError(`${STATE_NAMES[refused]}: ${this.toString()}`);
    }
  }

  /** Under LOCK, before a final state is stored: the completion's place in the order. */
  private numberCompletion(): void {
    Atomics.store(this.i32, this.base + ORDER, Atomics.add(this.i32, COMPLETION_ORDER, 1) + 1);
  }

  /** Wakes this future's waiters and every wait()/asCompleted() sleeper; runs local callbacks. */
  private announce(state: number, sleepers: boolean): void {
    const i32 = this.i32;
    // Only a change that took WAITED away can have sleepers (storeState); one that marks after it sees the new state.
    if (sleepers) wake(i32, this.base + STATE);
    if (state === RUNNING) return;
    const inbox = Atomics.load(i32, this.base + LISTENER);
    if (inbox !== 0) deliverToInbox(this._heap, inbox, this._offset);
    Atomics.add(i32, COMPLETIONS, 1);
    if (Atomics.load(i32, COMPLETION_WAITERS) > 0) wake(i32, COMPLETIONS);
    if (state === CANCELLED_AND_NOTIFIED) return; // callbacks ran at CANCELLED
    const entry = localCallbacks.get(this._offset);
    if (entry !== undefined) {
      localCallbacks.delete(this._offset);
      // The wrapper the callbacks were added on: `this` may be another (a pool thread's own).
      for (const fn of entry.callbacks) runCallback(entry.future, fn);
    }
  }

  private async watchForCallbacks(): Promise<void> {
    for (let word = this.markWaited(); (word & STATE_MASK) < CANCELLED; word = this.markWaited()) {
      await futexWaitAsync(this.i32, this.base + STATE, word, Infinity);
    }
    const entry = localCallbacks.get(this._offset);
    if (entry === undefined) return; // ran synchronously already
    localCallbacks.delete(this._offset);
    for (const fn of entry.callbacks) runCallback(entry.future, fn);
  }

  private waitDone(timeout: number): void {
    const deadline = deadlineAfter(timeout);
    const outer = beginWait(); // one wait, however many slices
    try {
      for (let word = this.markWaited(); (word & STATE_MASK) < CANCELLED; word = this.markWaited()) {
        const slice = Math.min(deadline, performance.now() + LIVENESS_CHECK_MS);
        // Sleep only while the word is still what we marked (see storeState).
        if (park(this.i32, this.base + STATE, word, slice, WaitKind.Future, this._offset, deadline === Infinity, RESULT_SPIN_MICROS) === 'timed-out') {
          if (msUntil(deadline) === 0) return;
          stalledWait([this as Future<unknown>]);
        }
      }
    } finally {
      endWait(outer);
    }
  }

  /** @internal asCompletedAsync's wait for a future another thread listens to: its own next() takes interrupts, not this. */
  _whenDoneUninterrupted(signal: AbortSignal): Promise<void> {
    return this.waitDoneAsync({ signal }, 'asCompletedAsync', false);
  }

  private async waitDoneAsync(options: FutureWaitOptions, what: string, interruptible = true): Promise<void> {
    if (typeof options !== 'object' || options === null) throw new TypeError(`${what}: expected an options object, got ${describe(options)}`);
    const deadline = deadlineAfter(timeoutOrZero(options.timeout, what));
    options.signal?.throwIfAborted();
    // A short task finishes sooner than an async wake-up arrives (~100 µs through the event
    // loop): look for a while before handing the wait to the event loop.
    if (this._state() < CANCELLED && !this.isRemote()) spinWhile(() => this._state() < CANCELLED, ASYNC_SPIN_MICROS);
    for (let word = this.markWaited(); (word & STATE_MASK) < CANCELLED; word = this.markWaited()) {
      const slice = Math.min(deadline, performance.now() + 10 * LIVENESS_CHECK_MS);
      // Sleep only while the word is still what we marked (see storeState).
      if ((await parkAsync(this.i32, this.base + STATE, word, slice, options.signal, interruptible)) === 'timed-out') {
        if (msUntil(deadline) === 0) return;
        this._checkRunnerAlive();
      }
    }
  }

  /** @internal A future whose thread vanished (killed isolate) would never finish: fail it instead. */
  _checkRunnerAlive(): void {
    if (this._state() !== RUNNING) return;
    const tid = Atomics.load(this.i32, this.base + RUNNER);
    if (tid <= 0 || existsSync(`/proc/self/task/${tid}`)) return;
    try {
      // Killed after cancel({ interrupt, killAfter }): cancelled, as asked.
      if ((this._stopFlags() & STOP_INTERRUPT) !== 0 && this._cancelRunning()) return;
      this.setException(new ThreadError(`the thread running this task died (OS thread ${tid} is gone: out of memory or killed)`));
    } catch {
      // completed meanwhile
    }
  }

  private outcome(timeout: number | undefined): unknown {
    const state = this._state();
    if (state === CANCELLED || state === CANCELLED_AND_NOTIFIED) throw new CancelledError();
    if (state !== FINISHED) throw new TimeoutError(`the future did not finish within ${timeout} ms`);
    const value = this.decodeOutcome();
    if (this._failed()) throw value;
    return value;
  }

  private failure(timeout: number | undefined): unknown {
    const state = this._state();
    if (state === CANCELLED || state === CANCELLED_AND_NOTIFIED) throw new CancelledError();
    if (state !== FINISHED) throw new TimeoutError(`the future did not finish within ${timeout} ms`);
    return this._failed() ? this.decodeOutcome() : undefined;
  }

  /**
   * Decodes the outcome. Each decode is a fresh copy (like receiving it again): shared objects
   * inside get a reference for this decode before it adopts them.
   */
  private decodeOutcome(): unknown {
    const h = heap();
    const outcome = Atomics.load(this.i32, this.base + OUTCOME);
    if (outcome === NO_ROOM) return new HeapExhaustedError('the task finished while the shared heap was full: neither its result nor its error could be stored');
    const block = Math.abs(outcome);
    h.ensureMapped(h.topBytes());
    retainHandlesIn(h.buf, block);
    // (A failed decode drops what it had not reached: the retains above stay balanced.)
    return decodeReceived(h.buf, block, false);
  }
}

/** What CPython's repr calls the type: `number`, `string`, `undefined`, `null`, else the class name. */
function className(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value !== 'object' && typeof value !== 'function') return typeof value;
  const proto = Object.getPrototypeOf(value) as { constructor?: { name?: string } } | null;
  return proto?.constructor?.name || 'Object';
}

function retainHandlesIn(buf: Buffer, block: number): void {
  // Decoding adopts one reference per handle; the stored outcome keeps its own.
  forEachHandle(buf, block, (offset) => heap().retain(offset));
}

// ---- inboxes: how a thread's event loop learns that futures it awaits are done ---------------
//
// Awaiting many futures with one Atomics.waitAsync each is slow; instead each thread that awaits
// has one inbox (a ring of future offsets, in the heap) and one waitAsync on its sequence word.
// A completer pushes the future's offset into the inbox of its LISTENER and bumps the
// sequence; the owner drains the ring and resolves its promises, many per wake-up.
//
// | slot | field | meaning                                                     |
// |------|-------|-------------------------------------------------------------|
// | 0    | LOCK  | mutex word guarding the ring                                |
// | 1    | SEQ   | futex word: bumped by every push (the owner sleeps on it)   |
// | 2    | COUNT | offsets in the ring                                         |
// | 3    | CAP   | ring capacity                                               |
// | 4    | RING  | block of CAP offsets                                        |
// | 5    | ASLEEP| 1 while the owner may be asleep on SEQ (the next push notifies) |

const I_LOCK = 0;
const I_SEQ = 1;
const I_COUNT = 2;
const I_CAP = 3;
const I_RING = 4;
const I_ASLEEP = 5;

let myInbox = 0;
/** Who awaits each future through the inbox: one resolver, or several. */
const inboxWaiters = new Map<number, (() => void) | (() => void)[]>();
let draining = false;

function ensureInbox(): number {
  if (myInbox !== 0) return myInbox;
  const h = heap();
  myInbox = h.alloc(24, Kind.Bytes);
  h.i32[(myInbox >> 2) + I_CAP] = 256;
  h.i32[(myInbox >> 2) + I_RING] = h.alloc(256 * 4, Kind.Bytes);
  return myInbox;
}

/**
 * Makes this thread's inbox the future's listener. False if another thread listens already
 * (the caller then waits on the future's own word).
 */
function listenThroughInbox(future: Future<unknown>): boolean {
  const inbox = ensureInbox();
  const h = future._heap;
  const slot = (future._offset >> 2) + LISTENER;
  const previous = Atomics.compareExchange(h.i32, slot, 0, inbox);
  return previous === 0 || previous === inbox;
}

function addInboxWaiter(offset: number, resolve: () => void): void {
  const waiting = inboxWaiters.get(offset);
  if (waiting === undefined) inboxWaiters.set(offset, resolve);
  else if (Array.isArray(waiting)) waiting.push(resolve);
  else inboxWaiters.set(offset, [waiting, resolve]);
  // It may have completed before the listener was set, with nobody to tell us: check now.
  const h = heap();
  if (isDoneAt(h.i32, offset)) resolveInboxWaiters(offset);
  if (!draining) void drainInbox();
}

/**
 * @internal For asCompletedAsync: `onDone()` is called in this thread (from its event loop, or at
 * once if the future is done already) when the future is done, through this thread's inbox.
 * False when another thread listens to the future (the caller then waits for it another way).
 */
export function listenAsync(future: Future<unknown>, onDone: () => void): boolean {
  if (!listenThroughInbox(future)) return false;
  addInboxWaiter(future._offset, onDone);
  return true;
}

/**
 * @internal Takes back a listenAsync() whose `onDone` has not been called. The future stops
 * naming this inbox once nobody here waits for it, and the inbox stops holding the event loop
 * once nobody here waits at all.
 */
export function unlistenAsync(future: Future<unknown>, onDone: () => void): void {
  const offset = future._offset;
  const waiting = inboxWaiters.get(offset);
  if (waiting === undefined) return;
  if (Array.isArray(waiting)) {
    const i = waiting.indexOf(onDone);
    if (i >= 0) waiting.splice(i, 1);
    if (waiting.length > 0) return;
  } else if (waiting !== onDone) {
    return;
  }
  inboxWaiters.delete(offset);
  Atomics.compareExchange(future._heap.i32, (offset >> 2) + LISTENER, myInbox, 0);
  // drainInbox sleeps until the next push: wake it, so that it sees nobody waits and ends.
  if (inboxWaiters.size === 0 && draining) Atomics.notify(heap().i32, (myInbox >> 2) + I_SEQ);
}

/**
 * @internal Calls at once the waiters of the futures this thread's inbox has been told of (the
 * inbox's drain would call them on its next turn of the event loop).
 */
export function deliverInboxNow(): void {
  if (myInbox === 0) return;
  const h = heap();
  for (const offset of takeInboxOffsets(h)) if (isDoneAt(h.i32, offset)) resolveInboxWaiters(offset);
}

/** Whether the future at `offset` is done (for code that has its offset, not a wrapper). */
function isDoneAt(i32: Int32Array, offset: number): boolean {
  return (Atomics.load(i32, offset >> 2) & STATE_MASK) >= CANCELLED;
}

function resolveInboxWaiters(offset: number): void {
  const waiting = inboxWaiters.get(offset);
  if (waiting === undefined) return;
  inboxWaiters.delete(offset);
  if (Array.isArray(waiting)) for (const resolve of waiting) resolve();
  else waiting();
}

/** The owner's loop: wait for pushes, resolve the futures they name, until nobody waits. */
async function drainInbox(): Promise<void> {
  draining = true;
  const h = heap();
  const base = myInbox >> 2;
  try {
    while (inboxWaiters.size > 0) {
      const seq = Atomics.load(h.i32, base + I_SEQ);
      for (const offset of takeInboxOffsets(h)) {
        // A stale push (for a future we already resolved, whose block now holds a new future)
        // must not resolve anything: only a done future does.
        if (isDoneAt(h.i32, offset)) resolveInboxWaiters(offset);
      }
      if (inboxWaiters.size === 0) break;
      // Say we sleep, then sleep only while no push happened since we read the sequence. A
      // pusher bumps SEQ and takes ASLEEP away in one hold of the inbox lock, and notifies if
      // it was set. A push we saw in our read of SEQ: we took its offsets under that lock, so
      // it took ASLEEP away before we set it now. A push we did not see: if it bumps before our
      // wait starts, the wait returns at once; if after, it is later than our store and finds
      // ASLEEP set (these are all seq-cst).
      Atomics.store(h.i32, base + I_ASLEEP, 1);
      await futexWaitAsync(h.i32, base + I_SEQ, seq, Infinity);
    }
  } finally {
    draining = false;
  }
}

function takeInboxOffsets(h: ReturnType<typeof heap>): number[] {
  const base = myInbox >> 2;
  if (Atomics.load(h.i32, base + I_COUNT) === 0) return [];
  return withInboxLock(h, base, () => {
    const count = h.i32[base + I_COUNT]!;
    const ring = h.i32[base + I_RING]! >> 2;
    const offsets = Array.from(h.i32.subarray(ring, ring + count));
    h.i32[base + I_COUNT] = 0;
    return offsets;
  });
}

/** A completer (any thread) tells the listener's inbox. */
function deliverToInbox(h: ReturnType<typeof heap>, inbox: number, offset: number): void {
  const base = inbox >> 2;
  const ownerAsleep = withInboxLock(h, base, () => {
    let count = h.i32[base + I_COUNT]!;
    if (count === h.i32[base + I_CAP]) {
      const capacity = count * 2;
      const bigger = h.alloc(capacity * 4, Kind.Bytes);
      h.i32.copyWithin(bigger >> 2, h.i32[base + I_RING]! >> 2, (h.i32[base + I_RING]! >> 2) + count);
      dropReference(h.i32[base + I_RING]!);
      h.i32[base + I_RING] = bigger;
      h.i32[base + I_CAP] = capacity;
    }
    h.i32[(h.i32[base + I_RING]! >> 2) + count++] = offset;
    h.i32[base + I_COUNT] = count;
    Atomics.add(h.i32, base + I_SEQ, 1);
    // Under the lock, with the bump: an owner that saw this bump has to take the lock to read
    // the offset, so it cannot set ASLEEP for its next sleep before we take it here (drainInbox).
    return Atomics.exchange(h.i32, base + I_ASLEEP, 0) === 1;
  });
  // Only the first push after the owner went to sleep notifies: a busy owner costs its
  // completers no notify.
  if (ownerAsleep) Atomics.notify(h.i32, base + I_SEQ);
}

function withInboxLock<T>(h: ReturnType<typeof heap>, base: number, body: () => T): T {
  internalLock(h.i32, base + I_LOCK);
  try {
    h.ensureMapped(h.topBytes());
    return body();
  } finally {
    internalUnlock(h.i32, base + I_LOCK);
  }
}

/**
 * Completes `future` whatever happens (a task's or a broken pool's future must settle): with
 * `value`; if that cannot be stored (it cannot cross threads, the heap is full), with
 * `explain(whyNot)`; if even that cannot, with a HeapExhaustedError that needs no room.
 * Nothing happens to a future someone else settled meanwhile. Never throws.
 */
/** The largest killAfter / timeout (ms) a task takes (an Int32 slot holds it). */
export const MAX_LIMIT_MS = 0x7fffffff;

/**
 * Checks cancel()'s options: undefined for a plain cancel, else the killAfter in ms (-1: never).
 */
function checkCancelOptions(options: CancelOptions | undefined): number | undefined {
  if (options === undefined) return undefined;
  if (typeof options !== 'object' || options === null) throw new TypeError(`Future.cancel(options): expected an options object such as { interrupt: true }, got ${describe(options)}`);
  const { interrupt, killAfter } = options;
  if (interrupt !== undefined && typeof interrupt !== 'boolean') throw new TypeError(`Future.cancel: interrupt must be a boolean, got ${describe(interrupt)}`);
  if (killAfter === undefined) return interrupt === true ? -1 : undefined;
  if (interrupt === false) throw new TypeError('Future.cancel: killAfter comes after an interrupt: use { interrupt: true, killAfter }, or leave killAfter out');
  return checkLimit(killAfter, 'Future.cancel: killAfter');
}

/** A task limit in ms: a non-negative integer up to MAX_LIMIT_MS. */
export function checkLimit(ms: unknown, what: string): number {
  if (typeof ms !== 'number' || Number.isNaN(ms)) throw new TypeError(`${what} must be a number of milliseconds, got ${describe(ms)}`);
  if (ms < 0) throw new RangeError(`${what} must be 0 or more, got ${ms}`);
  if (ms > MAX_LIMIT_MS) throw new RangeError(`${what} must be at most ${MAX_LIMIT_MS} ms (about 24 days), got ${ms}`);
  return Math.ceil(ms);
}

export function settleSurely(future: Future<unknown>, value: unknown, failed: boolean, explain: (whyNot: unknown) => unknown): void {
  try {
    if (failed) future.setException(value);
    else future.setResult(value);
    return;
  } catch (whyNot) {
    if (future.done()) return;
    try {
      future.setException(explain(whyNot));
      return;
    } catch {
      // no room even for that
    }
  }
  future._failForLackOfRoom();
}

function runCallback<R>(future: Future<R>, fn: DoneCallback<R>): void {
  try {
    fn(future);
  } catch (error) {
    process.stderr.write(`exception calling callback for ${future.toString()}\n${error instanceof Error ? error.stack : inspect(error)}\n`);
  }
}

registerKind(Kind.Future, {
  name: 'Future',
  revive: (offset) => reviveAs(offset, () => new Future()),
  destroy: (h, offset) => {
    const notices = h.i32[(offset >> 2) + REMOTE]!;
    if (notices !== 0) dropReference(notices);
    const outcome = h.i32[(offset >> 2) + OUTCOME]!;
    const block = Math.abs(outcome);
    if (block !== 0 && outcome !== NO_ROOM) {
      dropEncoded(h.buf, block);
      dropReference(block);
    }
  },
});
