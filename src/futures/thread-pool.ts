/**
 * ThreadPoolExecutor: CPython's `concurrent.futures.ThreadPoolExecutor` on threadkit threads.
 * Its whole state is in the shared heap (the task queue plus the slots below), so the executor
 * travels by reference: a task can submit to the pool that runs it, or to any pool it is given,
 * and any thread can shut it down and wait for its threads.
 *
 * | slot  | field        | meaning                                                         |
 * |-------|--------------|-----------------------------------------------------------------|
 * | 0-23  | task queue   | task-queue.ts (QUEUE_SLOTS)                                     |
 * | 24    | MAX_WORKERS  | most threads the pool starts                                    |
 * | 25    | THREADS      | entries in the thread list (threads started, not yet seen ended)|
 * | 26    | SETTINGS     | encoded { prefix, initializer, initargs } (one reference)       |
 * | 27    | STARTED      | threads ever started (numbers the names: `<prefix>_<i>`)        |
 * | 28    | THREAD_LIST  | block of THREADS Thread offsets (one reference each)            |
 * | 29    | THREAD_CAP   | its capacity                                                    |
 * | 30    | REPLACE      | 1 when a thread ended abnormally (its replacement is due)       |
 * | 31    | START_FAILS  | pool threads in a row whose isolate could not start             |
 * | 32    | STATS_SHARDS | first of the list of stats shards (pool-stats.ts; one each)     |
 *
 * The thread list, THREADS and the shard list change only under the task queue's LOCK (a
 * shard's counts change only in its pool thread: pool-stats.ts). A thread leaves the
 * list once it is STOPPED, at the next maintenance (_maintain: after shutdown's joins, when the
 * starting thread sees it end, or from a stalled wait), never before: so shutdown({ wait })
 * finds every thread that may still run a task.
 *
 * Threads are started lazily, as CPython does: a submit starts one when more tasks wait than
 * threads are idle, up to maxWorkers. Pool threads are non-daemon threads, as in CPython, but
 * what holds the process open is the pool's work, not its threads: each task counts from its
 * submit until it is settled (TaskQueue.work). A pool never shut down therefore
 * lets the process exit once its work is done, and an idle pool never holds it.
 *
 * A pool whose threads cannot start (their isolate fails to load: a preload that throws, say)
 * does not restart them without end: after MAX_START_FAILURES in a row it is broken, and
 * every pending future fails with BrokenThreadPool naming the cause.
 */

import { setPoolThreadsReader } from '../thread/wait-graph.js';
import { availableParallelism } from 'node:os';
import type { ResourceLimits } from 'node:worker_threads';
import { inspect } from 'node:util';
import { BrokenThreadPool, ThreadError, describeError } from '../errors.js';
import { decodeValue, dropEncoded, encodeToBlock, forEachHandle } from '../shm/codec.js';
import { describe } from '../shm/futex.js';
import { BUILTIN_MODULE, type FunctionDescriptor, type ThreadFunction, builtins, describeFunction } from '../shm/functions.js';
import { Kind, SharedObject, dropReference, isReviving, registerKind, reviveAs, reviveUntracked, wrapperFor } from '../shm/handles.js';
import type { Heap } from '../shm/heap.js';
import { S_ROOTS } from '../shm/heap.js';
import { address } from '../sync/options.js';
import { refuseWhileImporting } from '../thread/bootstrapping.js';
import { Thread, callerModule, checkResourceLimits, keepProcessAlive } from '../thread/thread.js';
import * as B from '../thread/thread-block.js';
import { Future, STOP_INTERRUPT, checkLimit, onStalledWait, settleSurely } from './future.js';
import { disownPoolThread, ownPoolThread } from './task-stopper.js';
import { watchNotices } from '../shm/interrupts.js';
import { runPoolThread } from './pool-thread.js';
import { BROKEN, FULL, NEEDS_THREAD, NO_SPIN, type PutResult, QUEUE_SLOTS, REFUSED, SHUTDOWN, TaskQueue, dropRecord, encodeRecord, recordFuture, recordFutureDone } from './task-queue.js';
import { CANCELLED_TASK, FAILED_TASK, type PoolStats, StatsTotals, claimShardLocked, outcomeOf, releaseShardLocked, shardsOf } from './pool-stats.js';
import { type MapOptions, type MapPlan, readMapArguments, resultsInOrder, resultsInOrderAsync, zip } from './map-results.js';
export type { MapOptions } from './map-results.js';

const MAX_WORKERS = QUEUE_SLOTS;
const THREADS = QUEUE_SLOTS + 1;
const SETTINGS = QUEUE_SLOTS + 2;
const STARTED = QUEUE_SLOTS + 3;
const THREAD_LIST = QUEUE_SLOTS + 4;
const THREAD_CAP = QUEUE_SLOTS + 5;
const REPLACE = QUEUE_SLOTS + 6;
const START_FAILS = QUEUE_SLOTS + 7;
const STATS_SHARDS = QUEUE_SLOTS + 8;
const BLOCK_BYTES = (QUEUE_SLOTS + 9) * 4;

/** Pool threads in a row whose isolate could not start before the pool is broken. */
const MAX_START_FAILURES = 3;

/** Values of the task queue's BROKEN slot: why the pool is broken. */
const BROKEN_BY_INITIALIZER = 1;
const BROKEN_BY_START = 2;
const BROKEN_MESSAGES: Record<number, string> = {
  [BROKEN_BY_INITIALIZER]: 'A thread initializer failed, the thread pool is not usable anymore',
  [BROKEN_BY_START]: "The pool's threads could not start, the thread pool is not usable anymore",
};

/** Root slot: pools created in the process (numbers default prefixes, like Thread-N). */
const POOL_COUNTER = S_ROOTS + 10;

builtins.runPoolThread = runPoolThread;
const POOL_THREAD = { module: BUILTIN_MODULE, name: 'runPoolThread' };

/** Pools this thread has a wrapper for, by block: a stalled wait here maintains them (see maintain()). */
const knownPools = new Map<number, WeakRef<ThreadPoolExecutor>>();

onStalledWait(() => {
  for (const [offset, ref] of knownPools) {
    const pool = ref.deref();
    if (pool === undefined) knownPools.delete(offset);
    else pool._maintain();
  }
});

/** A task: a function (or typed module function) of the arguments `A`; its future gets `Awaited<R>`. */
export type TaskFunction<A extends unknown[] = any[], R = unknown> = ThreadFunction<(...args: A) => R>;

/** `map(fn, ...iterables)`: one iterable per parameter of `fn`. */
export type MapIterables<A extends unknown[]> = { [K in keyof A]: Iterable<A[K]> };

/**
 * Options of `new ThreadPoolExecutor(...)`. `initargs` are checked against the initializer's
 * parameters, and are required when it has required ones.
 */
export type ThreadPoolOptions<I extends unknown[] = unknown[]> = {
  /** Most threads the pool runs. @default min(32, availableParallelism() + 4) */
  maxWorkers?: number;
  /** Threads are named `<prefix>_<i>`. @default "ThreadPoolExecutor-<n>" */
  threadNamePrefix?: string;
  /** Runs once in each pool thread before its first task; if it throws, the pool is broken. */
  initializer?: TaskFunction<I>;
  /**
   * Backpressure: `submit` blocks (and `submitAsync` waits) while this many tasks are queued
   * (not yet running). Nothing is thrown away. @default unbounded
   */
  maxQueue?: number;
  /** Node's worker resourceLimits for each pool thread: a thread over its memory limit dies, its task fails, the pool replaces it. */
  resourceLimits?: ResourceLimits;
} & ([] extends I
  ? {
      /** Arguments for the initializer. */
      initargs?: Readonly<I>;
    }
  : {
      /** Arguments for the initializer (required: it has required parameters). */
      initargs: Readonly<I>;
    });

interface Settings {
  prefix: string;
  initializer: FunctionDescriptor | undefined;
  initargs: unknown[];
  resourceLimits: ResourceLimits | undefined;
}

/** Options of `pool.submitWith(...)` (beyond Python). */
export interface SubmitOptions {
  /**
   * Milliseconds the task may run (counted from when it starts): then its future fails with
   * TimeoutError and the task is interrupted.
   */
  timeout?: number;
  /** Aborting it cancels the task: a queued one is not run; a running one is interrupted. */
  signal?: AbortSignal;
  /** A task still running this long (ms) after its interrupt has its isolate terminated and replaced. */
  killAfter?: number;
}

/**
 * A pool of threads that run tasks. `I`, the initializer's parameters, exists only to check
 * `initargs` in the constructor (it is inferred from the options).
 */
export class ThreadPoolExecutor<I extends unknown[] = unknown[]> extends SharedObject {
  /** @internal */ readonly _queue: TaskQueue;
  /** Function ids this thread has registered with the pool: by function object, and by source or module key. */
  #functionIds = new WeakMap<object, number>();
  #functionIdsByKey = new Map<string, number>();
  #settings: Settings | undefined;
  /** Threads this wrapper started (its isolate is their parent: it alone sees how they ended). */
  #startedHere = new Map<number, Thread>();

  /**
   * @throws RangeError when maxWorkers <= 0; TypeError for a bad initializer or initargs.
   */
  constructor(options?: ThreadPoolOptions<I>);
  constructor(options: ThreadPoolOptions<any[]> = {}) {
    let settings: Settings | undefined;
    let maxWorkers = 0;
    let maxQueue = 0;
    if (!isReviving()) {
      if (typeof options !== 'object' || options === null) throw new TypeError(`ThreadPoolExecutor(options): expected an options object, got ${describe(options)}`);
      maxWorkers = options.maxWorkers ?? Math.min(32, availableParallelism() + 4);
      if (typeof maxWorkers !== 'number' || !Number.isInteger(maxWorkers)) throw new TypeError(`ThreadPoolExecutor: maxWorkers must be an integer, got ${describe(maxWorkers)}`);
      if (maxWorkers <= 0) throw new RangeError(`ThreadPoolExecutor: maxWorkers must be greater than 0, got ${maxWorkers}`);
      if (maxWorkers > 0x7fffffff) throw new RangeError(`ThreadPoolExecutor: maxWorkers must be at most 2147483647, got ${maxWorkers}`);
      const initargs = (options.initargs ?? []) as unknown[];
      if (!Array.isArray(initargs)) throw new TypeError(`ThreadPoolExecutor: initargs must be an array, got ${describe(initargs)}`);
      if (options.threadNamePrefix !== undefined && typeof options.threadNamePrefix !== 'string') {
        throw new TypeError(`ThreadPoolExecutor: threadNamePrefix must be a string, got ${describe(options.threadNamePrefix)}`);
      }
      if (options.maxQueue !== undefined) maxQueue = checkMaxQueue(options.maxQueue);
      settings = {
        prefix: options.threadNamePrefix ?? '',
        initializer: options.initializer === undefined ? undefined : describeFunction(options.initializer, 'ThreadPoolExecutor initializer'),
        initargs,
        resourceLimits: checkResourceLimits(options.resourceLimits, 'ThreadPoolExecutor'),
      };
    }
    super(Kind.Executor, BLOCK_BYTES);
    const h = this._heap;
    this._queue = new TaskQueue(h, this._offset >> 2);
    if (this._fresh && settings !== undefined) {
      // Numbered only once the options are known good, so that failed constructions use no number.
      settings.prefix ||= `ThreadPoolExecutor-${Atomics.add(h.i32, POOL_COUNTER, 1)}`;
      this._queue.init();
      h.i32[this.base + SETTINGS] = encodeToBlock(h, settings, 'ThreadPoolExecutor options');
      h.i32[this.base + MAX_WORKERS] = maxWorkers;
      this._queue.setMaxQueue(maxQueue);
      this.#settings = settings;
    }
    knownPools.set(this._offset, new WeakRef(this));
  }

  private get base(): number {
    return this._offset >> 2;
  }

  /** The most threads this pool runs. */
  get maxWorkers(): number {
    return this._queue.get(MAX_WORKERS);
  }

  /**
   * Schedules `fn(...args)` on a pool thread and returns its Future (awaitable).
   * @throws ThreadError "cannot schedule new futures after shutdown"; BrokenThreadPool after an
   *   initializer failed; TypeError when an argument cannot be sent (naming its path).
   */
  submit<A extends unknown[], R>(fn: TaskFunction<A, R>, ...args: A): Future<Awaited<R>> {
    this.checkOpen();
    const id = this.functionId(fn);
    const future = new Future<Awaited<R>>();
    this.queueTask(future, id, args, false, 'args');
    return future;
  }

  /**
   * `submit` that never blocks the event loop: with `maxQueue`, it waits for room (without a
   * maxQueue it is `submit` in a Promise). It resolves once the task is queued, with
   * `{ future }`: a Future is awaitable, so a Promise resolved with one would wait for the
   * task's result instead (`const { future } = await pool.submitAsync(fn, x)`).
   */
  async submitAsync<A extends unknown[], R>(fn: TaskFunction<A, R>, ...args: A): Promise<{ future: Future<Awaited<R>> }> {
    this.checkOpen();
    const id = this.functionId(fn);
    const future = new Future<Awaited<R>>();
    await this.queueTaskAsync(future, id, args);
    return { future };
  }

  /**
   * `submit` with limits for this task (beyond Python): a `timeout` (from when it starts; its
   * future then fails with TimeoutError and the task is interrupted), a `signal` that cancels
   * it (interrupting it if running), and `killAfter` ms after an interrupt before its isolate is
   * terminated and replaced (for tasks that never wait: a CPU loop).
   */
  submitWith<A extends unknown[], R>(options: SubmitOptions, fn: TaskFunction<A, R>, ...args: A): Future<Awaited<R>> {
    const { timeout, killAfter, signal } = checkSubmitOptions(options);
    this.checkOpen();
    const id = this.functionId(fn);
    const future = new Future<Awaited<R>>();
    future._setLimits(timeout, killAfter);
    if (signal?.aborted) {
      future.cancel(); // never queued
      return future;
    }
    this.queueTask(future, id, args, false, 'args');
    if (signal !== undefined) followSignal(future as Future<unknown>, signal, killAfter);
    return future;
  }

  /**
   * Like `Array.prototype.map` over zipped iterables, run on the pool: all tasks are submitted
   * at once; results come back in order. The first task error is raised when its result is
   * reached, and the tasks not yet started are cancelled.
   * @throws TimeoutError when a result is not ready `timeout` ms after the call.
   */
  map<A extends unknown[], R>(fn: TaskFunction<A, R>, ...iterables: MapIterables<A>): IterableIterator<Awaited<R>>;
  map<A extends unknown[], R>(fn: TaskFunction<A, R>, ...iterablesAndOptions: [...MapIterables<A>, MapOptions]): IterableIterator<Awaited<R>>;
  map(fn: ThreadFunction, ...iterablesAndOptions: unknown[]): IterableIterator<unknown> {
    return resultsInOrder(this.submitMap(fn, iterablesAndOptions));
  }

  /** The async twin of `map`: `for await (const r of pool.mapAsync(fn, items))`. */
  mapAsync<A extends unknown[], R>(fn: TaskFunction<A, R>, ...iterables: MapIterables<A>): AsyncIterableIterator<Awaited<R>>;
  mapAsync<A extends unknown[], R>(fn: TaskFunction<A, R>, ...iterablesAndOptions: [...MapIterables<A>, MapOptions]): AsyncIterableIterator<Awaited<R>>;
  mapAsync(fn: ThreadFunction, ...iterablesAndOptions: unknown[]): AsyncIterableIterator<unknown> {
    return resultsInOrderAsync(this.submitMap(fn, iterablesAndOptions));
  }

  /**
   * Stops accepting tasks. With `cancelFutures`, tasks not yet started are cancelled; with
   * `wait` (the default), returns when the pool's threads have finished every started task
   * (whichever thread started them).
   */
  shutdown(options: { wait?: boolean; cancelFutures?: boolean } = {}): void {
    if (typeof options !== 'object' || options === null) throw new TypeError(`ThreadPoolExecutor.shutdown(options): expected an options object, got ${describe(options)}`);
    // Closed first, as CPython does: a submit racing us is refused, or queued before and cancelled.
    this._queue.close(0);
    if (options.cancelFutures) this.cancelPending();
    if (!(options.wait ?? true)) return;
    for (const thread of this.threadsToJoin()) thread.join();
    this._maintain(); // the ended threads leave the list
  }

  /**
   * What the pool is doing and has done, from any thread (the numbers are in shared memory):
   * `threads` alive and how many of them are `idle`; tasks `queued`; tasks that `completed`
   * (returned), `failed` (threw, timed out, their thread died, or the pool broke) and were
   * `cancelled`; and the distributions of `waitTime` (submit → start) and `runTime` (start →
   * its thread is done with it), in ms: `count`, `mean` and `max` exact, `p50` and `p99` within
   * 9.1% (from a histogram of 4 buckets per doubling, never above `max`).
   *
   * A task is counted before its future is settled, so once you have seen a future done its
   * task is in the counts, except for one whose thread died (counted once the pool sees the
   * death) and one that timed out (counted as failed once it ends). A queued task cancelled
   * meanwhile counts as cancelled at once. The numbers are read while tasks go on: each is a
   * snapshot, the set of them is not one instant. Reading costs O(threads + queued).
   * @example
   * const pool = new ThreadPoolExecutor({ maxWorkers: 2 });
   * await Promise.all([1, 2, 3].map((x) => pool.submit((n: number) => n * 2, x)));
   * const { completed, runTime } = pool.stats(); // completed === 3, runTime.count === 3
   */
  stats(): PoolStats {
    const h = this._heap;
    return this._queue.locked((i32) => {
      const list = i32[this.base + THREAD_LIST]! >> 2;
      let threads = 0;
      for (const offset of i32.subarray(list, list + i32[this.base + THREADS]!)) {
        if (Atomics.load(i32, (offset >> 2) + B.STATE) !== B.STOPPED) threads++;
      }
      const totals = new StatsTotals();
      this._queue.addOutcomesLocked(totals);
      totals.addShards(h, i32[this.base + STATS_SHARDS]!);
      const doneInQueue = this._queue.doneInQueueLocked();
      return totals.result(threads, Math.min(threads, this._queue.idleLocked()), this._queue.size() - doneInQueue, doneInQueue);
    });
  }

  [Symbol.dispose](): void {
    this.shutdown({ wait: true });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.shutdown({ wait: false });
    for (const thread of this.threadsToJoin()) await thread.joinAsync();
    this._maintain();
  }

  override toString(): string {
    const state = this._queue.get(BROKEN) ? 'broken' : this._queue.get(SHUTDOWN) ? 'shut down' : 'running';
    return `<threadkit.ThreadPoolExecutor at ${address(this._offset)}: ${state}, threads=${this._queue.get(THREADS)}/${this.maxWorkers}, queued=${this._queue.size()}>`;
  }

  [inspect.custom](): string {
    return this.toString();
  }

  // ---- internals (also used by the pool threads) -------------------------------------------

  /**
   * @internal Idle threads sleep at once instead of spinning ~100 µs for the next task: for a
   * pool whose tasks arrive from the network (a Redis worker), where the spin only burns CPU.
   */
  _sleepWhenIdle(): void {
    Atomics.store(this._heap.i32, this.base + NO_SPIN, 1); // (read by each idle thread before it parks: no wake-up involved)
  }

  /** @internal the pool thread's initializer and its args */
  _initializer(): { fn: FunctionDescriptor; args: unknown[] } | undefined {
    const settings = this.settings();
    return settings.initializer === undefined ? undefined : { fn: settings.initializer, args: settings.initargs };
  }

  /** @internal an initializer failed (or threads cannot start): the pool is broken, queued futures fail with BrokenThreadPool */
  _breakPool(cause: unknown, why = BROKEN_BY_INITIALIZER): void {
    // As CPython logs "Exception in initializer:": said once, by the thread that breaks the pool.
    const first = this._queue.close(why);
    if (first && why === BROKEN_BY_INITIALIZER) process.stderr.write(`Exception in initializer:\n${cause instanceof Error ? (cause.stack ?? describeError(cause)) : inspect(cause)}\n`);
    const message = `${BROKEN_MESSAGES[why]}${why === BROKEN_BY_START ? `: ${describeError(cause)}` : ''}`;
    const error = new BrokenThreadPool(message, { cause });
    const drained = this._queue.drain((records) => {
      // Those not cancelled meanwhile fail below; counted as they leave the queue.
      const done = records.filter((record) => recordFutureDone(this._heap, record)).length;
      this._queue.countLocked(CANCELLED_TASK, done);
      this._queue.countLocked(FAILED_TASK, records.length - done);
    });
    for (const record of drained) {
      this._queue.work(-1); // the task leaves the pool: it no longer holds the process
      const future = recordFuture(this._heap, record) as Future;
      if (future.done()) continue; // cancelled meanwhile
      // A cause that cannot cross threads (a field holding a function, nested too deep) is described instead.
      settleSurely(future, error, true, (whyNot) => new BrokenThreadPool(`${message} (its error could not be sent: ${describeError(whyNot)})`));
    }
  }

  /** @internal a pool thread's isolate is exiting under a task: the next maintenance starts a replacement */
  _threadDied(): void {
    // A flag nobody sleeps on: _maintain() polls it (from the event loop or a stalled wait).
    Atomics.store(this._heap.i32, this.base + REPLACE, 1);
  }

  /**
   * @internal Drops the STOPPED threads from the list and, when one of them died under a task
   * (or `startThread`), starts threads for queued tasks. Runs when this thread sees a pool
   * thread end, after shutdown's joins, and from waits that stall (a thread blocked in
   * `result()` is the only one left to start a replacement when its event loop cannot run).
   */
  _maintain(startThread = false): void {
    // A blocked wait here cannot see our threads' isolates exit: look at them (thread.ts).
    for (const thread of this.#startedHere.values()) thread._checkIsolateAlive(true);
    const removed = this.removeThreads((i32, offset) => Atomics.load(i32, (offset >> 2) + B.STATE) === B.STOPPED);
    if (this.countStartFailures(removed)) return;
    // (REPLACE is a polled flag: exchange so that one maintenance acts on each death.)
    const replace = Atomics.exchange(this._heap.i32, this.base + REPLACE, 0) === 1 || removed.length > 0 || startThread;
    if (replace && this._queue.size() > 0) this.adjustThreadCount();
  }

  /** @internal a shard of the pool's stats for the pool thread `owner` to count in (0: none, the heap is full) */
  _claimStatsShard(owner: number): number {
    return this._queue.locked((i32) => {
      const { shard, added } = claimShardLocked(this._heap, i32[this.base + STATS_SHARDS]!, owner);
      if (added) this._heap.i32[this.base + STATS_SHARDS] = shard;
      return shard;
    });
  }

  /** @internal a pool thread's body runs: its isolate started, so earlier start failures were not a pattern */
  _threadStarted(): void {
    // A count only _maintain reads: nobody sleeps on it.
    Atomics.store(this._heap.i32, this.base + START_FAILS, 0);
  }

  /**
   * Counts the removed threads whose isolate could not start; at MAX_START_FAILURES in a row
   * the pool is broken (returns true) instead of starting them again without end.
   */
  private countStartFailures(removed: number[]): boolean {
    let failure: Error | undefined;
    let failures = 0;
    for (const offset of removed) {
      const thread = this.#startedHere.get(offset);
      this.#startedHere.delete(offset);
      if (thread?._startFailure === undefined) continue;
      failure = thread._startFailure;
      failures++;
    }
    if (failures === 0) return false;
    if (Atomics.add(this._heap.i32, this.base + START_FAILS, failures) + failures < MAX_START_FAILURES) return false;
    this._breakPool(failure, BROKEN_BY_START);
    return true;
  }

  /** Takes the listed threads that `match` off the list (dropping its references); returns their offsets. */
  private removeThreads(match: (i32: Int32Array, offset: number) => boolean): number[] {
    const removed = this._queue.locked((i32) => this.removeThreadsLocked(i32, (offset) => match(i32, offset)));
    for (const offset of removed) {
      settleOrphanedTask(this._queue, this._heap, offset, this.#startedHere.get(offset)?._deathError);
      dropReference(offset);
    }
    return removed;
  }

  /** Removes (under LOCK) the listed threads that `match`; returns them (each still holding the list's reference). */
  private removeThreadsLocked(i32: Int32Array, match: (offset: number) => boolean): number[] {
    const count = i32[this.base + THREADS]!;
    if (count === 0) return [];
    const list = i32[this.base + THREAD_LIST]! >> 2;
    const removed: number[] = [];
    let kept = 0;
    for (let i = 0; i < count; i++) {
      const offset = i32[list + i]!;
      if (match(offset)) removed.push(offset);
      else i32[list + kept++] = offset;
    }
    i32[this.base + THREADS] = kept;
    // Their shards are free for the next pool thread (it goes on counting in them).
    for (const offset of removed) releaseShardLocked(this._heap, i32[this.base + STATS_SHARDS]!, offset);
    return removed;
  }

  /**
   * After close(): yields each listed thread once, for the caller to join before asking for
   * the next; ends when none is left to join. When none is left but tasks are still queued (a
   * submit accepted just before the close that has not started its thread yet, or a thread
   * that died), starts a thread for them first: shutdown({ wait }) returns only once every
   * accepted task has run, as CPython's does.
   */
  private *threadsToJoin(): Generator<Thread> {
    const joined = new Set<Thread>();
    for (;;) {
      const { started, starting } = this.threads();
      const threads = started.filter((thread) => !joined.has(thread));
      for (const thread of threads) {
        joined.add(thread);
        yield thread;
      }
      if (threads.length > 0) continue;
      if (starting > 0) {
        // A submitter listed a thread and is starting it (microseconds): wait for that.
        sleepBriefly();
        continue;
      }
      if (this._queue.size() === 0) return;
      this._maintain(true);
    }
  }

  /**
   * This thread's wrappers of the listed threads that were started, and how many listed
   * threads are not started yet (a submitter starts them right after listing them).
   */
  private threads(): { started: Thread[]; starting: number } {
    // Wrapped under LOCK: outside it a thread could leave and its block be freed.
    return this._queue.locked((i32) => {
      const list = i32[this.base + THREAD_LIST]! >> 2;
      const started: Thread[] = [];
      let starting = 0;
      for (const offset of i32.subarray(list, list + i32[this.base + THREADS]!)) {
        if (Atomics.load(i32, (offset >> 2) + B.STATE) === B.INITIAL) starting++;
        else started.push(wrapperFor(offset) as Thread);
      }
      return { started, starting };
    });
  }

  private settings(): Settings {
    if (this.#settings === undefined) {
      const h = this._heap;
      h.ensureMapped(h.topBytes());
      const block = h.i32[this.base + SETTINGS]!;
      // Each decode adopts one reference per handle; the stored settings keep their own.
      forEachHandle(h.buf, block, (offset) => h.retain(offset));
      this.#settings = decodeValue(h.buf, block) as Settings;
    }
    return this.#settings;
  }

  private checkOpen(): void {
    refuseWhileImporting('submit a task');
    const broken = this._queue.get(BROKEN);
    if (broken) throw new BrokenThreadPool(BROKEN_MESSAGES[broken] ?? BROKEN_MESSAGES[BROKEN_BY_INITIALIZER]!);
    if (this._queue.get(SHUTDOWN)) throw new ThreadError('cannot schedule new futures after shutdown');
  }

  /** Queues one task for `future`; refused (TypeError, or the pool closed meanwhile) it queues nothing. */
  private queueTask(future: Future<unknown>, id: number, args: unknown, chunked: boolean, root: string): void {
    const record = encodeRecord(this._heap, future, id, args, chunked, root);
    future._setQueuedIn(this._offset);
    // Counted before a pool thread can take it (and uncounted when it is settled).
    this._queue.work(1);
    let queued: PutResult;
    try {
      // maxQueue: wait for room, then put again (another submitter may take it first).
      while ((queued = this._queue.put(record)) === FULL) this._queue.waitForRoom(this._offset);
    } catch (error) {
      this._queue.work(-1);
      dropRecord(this._heap, record); // the heap is full, or the wait for room was interrupted: nothing was queued
      throw error;
    }
    this.afterPut(queued, record);
  }

  /** The Promise twin of queueTask (a wait for room does not block the event loop). */
  private async queueTaskAsync(future: Future<unknown>, id: number, args: unknown): Promise<void> {
    const record = encodeRecord(this._heap, future, id, args, false, 'args');
    future._setQueuedIn(this._offset);
    this._queue.work(1);
    let queued: PutResult;
    try {
      while ((queued = this._queue.put(record)) === FULL) await this._queue.waitForRoomAsync(this._offset);
    } catch (error) {
      this._queue.work(-1);
      dropRecord(this._heap, record);
      throw error;
    }
    this.afterPut(queued, record);
  }

  private afterPut(queued: PutResult, record: number): void {
    if (queued === REFUSED) {
      // Shut down or broken while the args were encoded: nothing was queued.
      this._queue.work(-1);
      recordFuture(this._heap, record);
      this.checkOpen();
    }
    keepProcessAlive(); // (in the main thread: its keep-alive may have ended while the pool was idle)
    if (queued === NEEDS_THREAD) this.adjustThreadCount();
  }

  /**
   * The pool's id for a function, registering it (shipped once) the first time. A closure
   * written inline in a loop is a new object each time: its source text finds it again.
   */
  private functionId(fn: unknown): number {
    if (typeof fn === 'object' && fn !== null) {
      const key = `module:${String((fn as { module?: unknown }).module)}#${String((fn as { name?: unknown }).name)}`;
      const known = this.#functionIdsByKey.get(key);
      if (known !== undefined) return known;
    }
    if (typeof fn === 'function') {
      const known = this.#functionIds.get(fn);
      if (known !== undefined) return known;
      // (Only sources without import() are kept by source: those also depend on their module.)
      // Found by source, it is not added to the WeakMap: inline closures would add one entry per
      // submit (~400 ns a set, and work for the GC later); the lookup by source costs ~100 ns.
      const bySource = this.#functionIdsByKey.get(Function.prototype.toString.call(fn));
      if (bySource !== undefined) return bySource;
    }
    const descriptor = describeFunction(fn, 'task function');
    if (descriptor.kind === 'source' && /\bimport\s*\(/.test(descriptor.source)) descriptor.origin = callerModule();
    const key = descriptor.kind === 'source' ? descriptor.source : `module:${descriptor.module}#${descriptor.name}`;
    const id = this._queue.addFunction(descriptor);
    if (descriptor.kind === 'source' && descriptor.origin === undefined) this.#functionIdsByKey.set(key, id);
    if (descriptor.kind === 'module') this.#functionIdsByKey.set(key, id);
    if (typeof fn === 'function') this.#functionIds.set(fn, id);
    return id;
  }

  /** CPython's _adjust_thread_count: a new thread (when more tasks wait than threads are idle, see put()) up to maxWorkers. */
  private adjustThreadCount(): void {
    const queue = this._queue;
    if (queue.get(THREADS) >= this.maxWorkers) return;
    const prefix = this.settings().prefix;
    const thread = queue.locked((i32) => {
      if (i32[this.base + THREADS]! >= i32[this.base + MAX_WORKERS]!) return undefined;
      const index = i32[this.base + STARTED]!;
      i32[this.base + STARTED] = index + 1;
      const made = new Thread({ name: `${prefix}_${index}`, target: POOL_THREAD, args: [this], daemon: false, resourceLimits: this.settings().resourceLimits });
      // Non-daemon as in CPython, but its pool's work holds the process, not the thread (registry.ts).
      Atomics.or(i32, (made._offset >> 2) + B.FLAGS, B.POOL);
      this.addThreadLocked(made._offset);
      return made;
    });
    if (thread === undefined) return;
    // This isolate keeps the clock of its tasks' timeouts and kills (task-stopper.ts): known
    // before the thread runs a task that may ask for one.
    ownPoolThread(thread, () => this._maintain(true));
    try {
      thread._start();
    } catch (error) {
      disownPoolThread(thread);
      this.removeThreads((_, offset) => offset === thread._offset); // it never started
      throw error;
    }
    this.#startedHere.set(thread._offset, thread);
    watchNotices();
    // Its end, seen here, takes it off the list (and replaces it if it died under a task).
    void thread
      ._whenEnded()
      .then(() => {
        disownPoolThread(thread);
        this._maintain();
      })
      .catch((error: unknown) => process.stderr.write(`threadkit: ThreadPoolExecutor could not start a replacement thread: ${describeError(error)}\n`));
  }

  /** Appends a thread (adding the list's reference), growing the list as needed. Under LOCK. */
  private addThreadLocked(offset: number): void {
    const h = this._heap;
    const count = h.i32[this.base + THREADS]!;
    if (count === h.i32[this.base + THREAD_CAP]) {
      const capacity = Math.max(4, count * 2);
      const bigger = h.alloc(capacity * 4, Kind.Bytes);
      const old = h.i32[this.base + THREAD_LIST]!;
      if (old !== 0) {
        h.i32.copyWithin(bigger >> 2, old >> 2, (old >> 2) + count);
        dropReference(old);
      }
      h.i32[this.base + THREAD_LIST] = bigger;
      h.i32[this.base + THREAD_CAP] = capacity;
    }
    h.retain(offset);
    h.i32[(h.i32[this.base + THREAD_LIST]! >> 2) + count] = offset;
    h.i32[this.base + THREADS] = count + 1;
  }

  private cancelPending(): void {
    // Counted as they leave the queue (all end cancelled: see below), before they are cancelled.
    for (const record of this._queue.drain((records) => this._queue.countLocked(CANCELLED_TASK, records.length))) {
      this._queue.work(-1); // the task leaves the pool: it no longer holds the process
      (recordFuture(this._heap, record) as Future).cancel();
    }
  }

  private submitMap(fn: unknown, rest: unknown[]): MapPlan {
    const { iterables, deadline, chunksize, timeout } = readMapArguments(rest, 'ThreadPoolExecutor.map');
    this.checkOpen();
    const id = this.functionId(fn);
    const futures: Future<unknown>[] = [];
    let chunk: unknown[][] = [];
    const flush = (): void => {
      if (chunk.length === 0) return;
      const future = new Future();
      try {
        if (chunksize > 1) this.queueTask(future, id, chunk, true, 'chunk');
        else this.queueTask(future, id, chunk[0], false, `items[${futures.length}]`);
      } catch (error) {
        // CPython's map submits everything first: an item that cannot be sent cancels the rest.
        for (const f of futures) f.cancel();
        throw error;
      }
      futures.push(future);
      chunk = [];
    };
    for (const args of zip(iterables)) {
      chunk.push(args);
      if (chunk.length >= chunksize) flush();
    }
    flush();
    return { futures, deadline, chunked: chunksize > 1, timeout, what: 'ThreadPoolExecutor.map' };
  }
}

/**
 * A stopped pool thread whose TASK slot still names a future died under it without running its
 * exit hook (out of memory, terminated): nobody else will settle that future, so every way of
 * waiting for it (result, await, callbacks, waitAsync, asCompletedAsync) would wait for ever.
 * Fail it, and release what the thread held for it.
 */
function settleOrphanedTask(queue: TaskQueue, h: Heap, threadBlock: number, why: Error | undefined): void {
  const offset = Atomics.exchange(h.i32, (threadBlock >> 2) + B.TASK, 0);
  if (offset === 0) return;
  // Adopts the dead thread's reference on the future, dropped below.
  const future = reviveUntracked(offset, () => new Future());
  try {
    // Killed after cancel({ interrupt, killAfter }): cancelled, as asked. (Timed out: done already.)
    if ((future._stopFlags() & STOP_INTERRUPT) !== 0) future._cancelRunning();
    else if (!future.done()) {
      const cause = why === undefined ? '' : `: ${why.message}`;
      future.setException(new ThreadError(`the pool thread running this task died before it finished (its isolate ended abruptly: out of memory, or terminated)${cause}`, why === undefined ? undefined : { cause: why }));
    }
  } catch {
    // settled meanwhile
  } finally {
    const outcome = outcomeOf(future);
    queue.locked(() => queue.countLocked(outcome === -1 ? FAILED_TASK : outcome, 1));
    dropReference(offset);
    queue.work(-1); // the task left the pool
  }
}

function checkMaxQueue(max: unknown): number {
  if (typeof max !== 'number' || !Number.isInteger(max)) throw new TypeError(`ThreadPoolExecutor: maxQueue must be an integer, got ${describe(max)}`);
  if (max <= 0 || max > 0x7fffffff) throw new RangeError(`ThreadPoolExecutor: maxQueue must be between 1 and 2147483647, got ${max}`);
  return max;
}

function checkSubmitOptions(options: SubmitOptions): { timeout: number; killAfter: number; signal: AbortSignal | undefined } {
  if (typeof options !== 'object' || options === null) throw new TypeError(`submitWith(options, fn, ...args): expected an options object such as { timeout: 1000 }, got ${describe(options)}`);
  const { timeout, killAfter, signal } = options;
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw new TypeError(`submitWith: signal must be an AbortSignal, got ${describe(signal)}`);
  for (const key of Object.keys(options)) {
    if (key !== 'timeout' && key !== 'killAfter' && key !== 'signal') throw new TypeError(`submitWith: unknown option "${key}" (known: timeout, signal, killAfter)`);
  }
  return {
    // (A timeout of 0 would be "none" in the slot: the smallest is 1 ms.)
    timeout: timeout === undefined || timeout === Infinity ? 0 : Math.max(1, checkLimit(timeout, 'submitWith: timeout')),
    killAfter: killAfter === undefined ? -1 : checkLimit(killAfter, 'submitWith: killAfter'),
    signal,
  };
}

/** An abort of `signal` cancels the task (interrupting it if running); the listener goes when the future is done. */
function followSignal(future: Future<unknown>, signal: AbortSignal, killAfter: number): void {
  const onAbort = (): void => {
    future.cancel(killAfter >= 0 ? { interrupt: true, killAfter } : { interrupt: true });
  };
  signal.addEventListener('abort', onAbort, { once: true });
  future.addDoneCallback(() => signal.removeEventListener('abort', onAbort));
}

/** Sleeps 1 ms (this thread only). */
function sleepBriefly(): void {
  Atomics.wait(sleepWord, 0, 0, 1); // nobody notifies this word: a plain timed sleep
}
const sleepWord = new Int32Array(new SharedArrayBuffer(4));

registerKind(Kind.Executor, {
  name: 'ThreadPoolExecutor',
  revive: (offset) => reviveAs(offset, () => new ThreadPoolExecutor()),
  destroy: (h, offset) => {
    new TaskQueue(h, offset >> 2).destroy();
    const base = offset >> 2;
    const settings = h.i32[base + SETTINGS]!;
    dropEncoded(h.buf, settings);
    dropReference(settings);
    // (A pool thread holds the pool while it runs: a pool is freed only once its list is empty.)
    const list = h.i32[base + THREAD_LIST]!;
    if (list !== 0) dropReference(list);
    for (const shard of shardsOf(h, h.i32[base + STATS_SHARDS]!)) dropReference(shard);
  },
});

/**
 * For deadlock detection (thread/wait-graph.ts): the blocks of a pool's threads, or undefined
 * when the pool may still start another thread (then a queued task will run). Read without
 * the pool's lock: the list may be replaced meanwhile, so every entry is checked to be a thread.
 */
setPoolThreadsReader((h, pool) => {
  const i32 = h.i32;
  const base = pool >> 2;
  const count = Atomics.load(i32, base + THREADS);
  if (count < Atomics.load(i32, base + MAX_WORKERS)) return undefined;
  const list = Atomics.load(i32, base + THREAD_LIST);
  if (list <= 0 || h.kindOf(list) !== Kind.Bytes || h.capacity(list) < count * 4) return undefined;
  const threads: number[] = [];
  for (let i = 0; i < count; i++) threads.push(Atomics.load(i32, (list >> 2) + i));
  return threads.every((offset) => offset > 0 && h.kindOf(offset) === Kind.Thread) ? threads : undefined;
});
