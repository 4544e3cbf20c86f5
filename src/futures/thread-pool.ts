/**
 * ThreadPoolExecutor: CPython's `concurrent.futures.ThreadPoolExecutor` on threadkit threads.
 * Its whole state is in the shared heap (the task queue plus the slots below), so the executor
 * travels by reference: a task can submit to the pool that runs it, or to any pool it is given.
 *
 * | slot | field        | meaning                                                          |
 * |------|--------------|------------------------------------------------------------------|
 * | 0-11 | task queue   | task-queue.ts                                                    |
 * | 12   | MAX_WORKERS  | most threads the pool starts                                     |
 * | 13   | THREADS      | threads started and not ended (compareExchange keeps it ≤ max)   |
 * | 14   | SETTINGS     | encoded { prefix, initializer, initargs } (one reference)        |
 * | 15   | STARTED      | threads ever started (numbers the names: `<prefix>_<i>`)         |
 *
 * Threads are started lazily, as CPython does: a submit starts one when more tasks wait than
 * threads idle, up to maxWorkers. Pool threads are daemon threads.
 */

import { availableParallelism } from 'node:os';
import { inspect } from 'node:util';
import { BrokenThreadPool, ThreadError } from '../errors.js';
import { decodeValue, dropEncoded, encodeToBytes, forEachHandle } from '../shm/codec.js';
import { deadlineAfter, describe, msUntil, timeoutOrZero } from '../shm/futex.js';
import { type FunctionDescriptor, type ThreadFunction, describeFunction } from '../shm/functions.js';
import { Kind, SharedObject, dropReference, isReviving, registerKind, reviveAs } from '../shm/handles.js';
import { address } from '../sync/options.js';
import { Thread, callerModule } from '../thread/thread.js';
import { Future } from './future.js';
import { BROKEN, QUEUE_SLOTS, SHUTDOWN, TaskQueue, encodeRecord, takeRecord } from './task-queue.js';

const MAX_WORKERS = QUEUE_SLOTS;
const THREADS = QUEUE_SLOTS + 1;
const SETTINGS = QUEUE_SLOTS + 2;
const STARTED = QUEUE_SLOTS + 3;
const BLOCK_BYTES = (QUEUE_SLOTS + 4) * 4;

const POOL_THREAD = { module: new URL('./pool-thread.js', import.meta.url).href, name: 'runPoolThread' };

let poolCounter = 0;

export interface ThreadPoolOptions {
  /** Most threads the pool runs. @default min(32, availableParallelism() + 4) */
  maxWorkers?: number;
  /** Threads are named `<prefix>_<i>`. @default "ThreadPoolExecutor-<n>" */
  threadNamePrefix?: string;
  /** Runs once in each pool thread before its first task; if it throws, the pool is broken. */
  initializer?: ThreadFunction;
  initargs?: unknown[];
}

export interface MapOptions {
  /** Milliseconds from the call to map() until a result that is not ready raises TimeoutError. */
  timeout?: number;
  /** Items per task: batches small items so that one task carries several. @default 1 */
  chunksize?: number;
}

interface Settings {
  prefix: string;
  initializer: FunctionDescriptor | undefined;
  initargs: unknown[];
}

export class ThreadPoolExecutor extends SharedObject {
  /** @internal */ readonly _queue: TaskQueue;
  /** Function ids this thread has registered with the pool: by function object, and by source or module key. */
  #functionIds = new WeakMap<object, number>();
  #functionIdsByKey = new Map<string, number>();
  #settings: Settings | undefined;
  /** Pool threads this thread started (joined by shutdown({ wait }) from here). */
  #threads: Thread[] = [];

  /**
   * @throws RangeError when maxWorkers <= 0; TypeError for a bad initializer or initargs.
   */
  constructor(options: ThreadPoolOptions = {}) {
    let settings: Settings | undefined;
    let maxWorkers = 0;
    if (!isReviving()) {
      if (typeof options !== 'object' || options === null) throw new TypeError(`ThreadPoolExecutor(options): expected an options object, got ${describe(options)}`);
      maxWorkers = options.maxWorkers ?? Math.min(32, availableParallelism() + 4);
      if (typeof maxWorkers !== 'number' || !Number.isInteger(maxWorkers)) throw new TypeError(`ThreadPoolExecutor: maxWorkers must be an integer, got ${describe(maxWorkers)}`);
      if (maxWorkers <= 0) throw new RangeError(`ThreadPoolExecutor: max_workers must be greater than 0, got ${maxWorkers}`);
      const initargs = options.initargs ?? [];
      if (!Array.isArray(initargs)) throw new TypeError(`ThreadPoolExecutor: initargs must be an array, got ${describe(initargs)}`);
      settings = {
        prefix: options.threadNamePrefix ?? `ThreadPoolExecutor-${poolCounter++}`,
        initializer: options.initializer === undefined ? undefined : describeFunction(options.initializer, 'ThreadPoolExecutor initializer'),
        initargs,
      };
    }
    super(Kind.Executor, BLOCK_BYTES);
    const h = this._heap;
    this._queue = new TaskQueue(h, this._offset >> 2);
    if (this._fresh && settings !== undefined) {
      this._queue.init();
      const bytes = encodeToBytes(settings, 'ThreadPoolExecutor options');
      const block = h.alloc(bytes.length, Kind.Bytes);
      h.u8.set(bytes, block);
      h.i32[this.base + SETTINGS] = block;
      h.i32[this.base + MAX_WORKERS] = maxWorkers;
      this.#settings = settings;
    }
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
  submit<A extends unknown[], R>(fn: ((...args: A) => R) | ThreadFunction, ...args: A): Future<Awaited<R>> {
    this.checkOpen();
    const id = this.functionId(fn);
    const future = new Future<Awaited<R>>();
    const record = encodeRecord(this._heap, [future, id, args, false]);
    this._queue.put(record);
    this.adjustThreadCount();
    return future;
  }

  /**
   * Like `Array.prototype.map` over zipped iterables, run on the pool: all tasks are submitted
   * at once; results come back in order. The first task error is raised when its result is
   * reached, and the tasks not yet started are cancelled.
   * @throws TimeoutError when a result is not ready `timeout` ms after the call.
   */
  map<R>(fn: ((...args: any[]) => R) | ThreadFunction, ...iterablesAndOptions: unknown[]): IterableIterator<Awaited<R>> {
    const { futures, deadline, chunked } = this.submitMap(fn, iterablesAndOptions);
    return resultsInOrder(futures, deadline, chunked) as IterableIterator<Awaited<R>>;
  }

  /** The async twin of `map`: `for await (const r of pool.mapAsync(fn, items))`. */
  mapAsync<R>(fn: ((...args: any[]) => R) | ThreadFunction, ...iterablesAndOptions: unknown[]): AsyncIterableIterator<Awaited<R>> {
    const { futures, deadline, chunked } = this.submitMap(fn, iterablesAndOptions);
    return resultsInOrderAsync(futures, deadline, chunked) as AsyncIterableIterator<Awaited<R>>;
  }

  /**
   * Stops accepting tasks. With `cancelFutures`, tasks not yet started are cancelled; with
   * `wait` (the default), returns when the pool's threads have finished every started task.
   */
  shutdown(options: { wait?: boolean; cancelFutures?: boolean } = {}): void {
    if (options.cancelFutures) this.cancelPending();
    this._queue.close(false);
    if (options.wait ?? true) for (const thread of this.#threads) thread.join();
  }

  [Symbol.dispose](): void {
    this.shutdown({ wait: true });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.shutdown({ wait: false });
    for (const thread of this.#threads) await thread.joinAsync();
  }

  override toString(): string {
    const state = this._queue.get(BROKEN) ? 'broken' : this._queue.get(SHUTDOWN) ? 'shut down' : 'running';
    return `<threadkit.ThreadPoolExecutor at ${address(this._offset)}: ${state}, threads=${this._queue.get(THREADS)}/${this.maxWorkers}, queued=${this._queue.size()}>`;
  }

  [inspect.custom](): string {
    return this.toString();
  }

  // ---- internals (also used by the pool threads) -------------------------------------------

  /** @internal the pool thread's initializer and its args */
  _initializer(): { fn: FunctionDescriptor; args: unknown[] } | undefined {
    const settings = this.settings();
    return settings.initializer === undefined ? undefined : { fn: settings.initializer, args: settings.initargs };
  }

  /** @internal an initializer failed: the pool is broken, queued futures fail with BrokenThreadPool */
  _breakPool(cause: unknown): void {
    this._queue.close(true);
    const error = new BrokenThreadPool('A thread initializer failed, the thread pool is not usable anymore', { cause });
    for (const record of this._queue.drain()) {
      const [future] = takeRecord(this._heap, record) as [Future, number, unknown[], boolean];
      try {
        future.setException(error);
      } catch {
        // cancelled meanwhile
      }
    }
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
    if (this._queue.get(BROKEN)) throw new BrokenThreadPool('A thread initializer failed, the thread pool is not usable anymore');
    if (this._queue.get(SHUTDOWN)) throw new ThreadError('cannot schedule new futures after shutdown');
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
      const bySource = this.#functionIdsByKey.get(Function.prototype.toString.call(fn));
      if (bySource !== undefined) {
        this.#functionIds.set(fn, bySource);
        return bySource;
      }
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

  /** CPython's _adjust_thread_count: a new thread when more tasks wait than threads are idle. */
  private adjustThreadCount(): void {
    const queue = this._queue;
    if (queue.size() <= queue.idleThreads()) return;
    const i32 = this._heap.i32;
    for (let count = Atomics.load(i32, this.base + THREADS); count < this.maxWorkers; count = Atomics.load(i32, this.base + THREADS)) {
      if (Atomics.compareExchange(i32, this.base + THREADS, count, count + 1) === count) {
        this.startThread();
        return;
      }
    }
  }

  private startThread(): void {
    const index = Atomics.add(this._heap.i32, this.base + STARTED, 1);
    const thread = new Thread({ name: `${this.settings().prefix}_${index}`, target: POOL_THREAD, args: [this], daemon: true });
    try {
      thread.start();
    } catch (error) {
      Atomics.sub(this._heap.i32, this.base + THREADS, 1);
      throw error;
    }
    this.#threads.push(thread);
    void thread.joinAsync().then(() => this.threadEnded(thread));
  }

  /** A pool thread ended (shutdown, or its isolate died): keep queued work moving. */
  private threadEnded(thread: Thread): void {
    Atomics.sub(this._heap.i32, this.base + THREADS, 1);
    this.#threads = this.#threads.filter((t) => t !== thread);
    if (!this._queue.get(SHUTDOWN) && this._queue.size() > 0) this.adjustThreadCount();
  }

  private cancelPending(): void {
    for (const record of this._queue.drain()) {
      const [future] = takeRecord(this._heap, record) as [Future, number, unknown[], boolean];
      future.cancel();
    }
  }

  private submitMap(fn: unknown, rest: unknown[]): { futures: Future<unknown>[]; deadline: number; chunked: boolean } {
    let options: MapOptions = {};
    const last = rest[rest.length - 1];
    if (rest.length > 0 && typeof last === 'object' && last !== null && !(Symbol.iterator in last)) {
      options = last as MapOptions;
      rest = rest.slice(0, -1);
    }
    const deadline = deadlineAfter(timeoutOrZero(options.timeout, 'ThreadPoolExecutor.map'));
    const chunksize = options.chunksize ?? 1;
    if (!Number.isInteger(chunksize) || chunksize < 1) throw new RangeError(`ThreadPoolExecutor.map: chunksize must be >= 1, got ${describe(chunksize)}`);
    for (const [i, iterable] of rest.entries()) {
      if (typeof iterable !== 'object' || iterable === null || !(Symbol.iterator in iterable)) {
        throw new TypeError(`ThreadPoolExecutor.map: argument ${i + 2} must be an iterable, got ${describe(iterable)}`);
      }
    }
    this.checkOpen();
    const id = this.functionId(fn);
    const futures: Future<unknown>[] = [];
    let chunk: unknown[][] = [];
    const flush = (): void => {
      if (chunk.length === 0) return;
      const future = new Future();
      this._queue.put(encodeRecord(this._heap, chunksize > 1 ? [future, id, chunk, true] : [future, id, chunk[0], false]));
      futures.push(future);
      chunk = [];
      this.adjustThreadCount();
    };
    for (const args of zip(rest as Iterable<unknown>[])) {
      chunk.push(args);
      if (chunk.length >= chunksize) flush();
    }
    flush();
    return { futures, deadline, chunked: chunksize > 1 };
  }
}

function* zip(iterables: Iterable<unknown>[]): Generator<unknown[]> {
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

function* resultsInOrder(futures: Future<unknown>[], deadline: number, chunked: boolean): Generator<unknown> {
  let next = 0;
  try {
    for (; next < futures.length; next++) {
      const value = futures[next]!.result(deadline === Infinity ? undefined : msUntil(deadline));
      if (chunked) yield* value as unknown[];
      else yield value;
    }
  } finally {
    for (let i = next; i < futures.length; i++) futures[i]!.cancel();
  }
}

async function* resultsInOrderAsync(futures: Future<unknown>[], deadline: number, chunked: boolean): AsyncGenerator<unknown> {
  let next = 0;
  try {
    for (; next < futures.length; next++) {
      const value = await futures[next]!.resultAsync({ timeout: deadline === Infinity ? undefined : msUntil(deadline) });
      if (chunked) yield* value as unknown[];
      else yield value;
    }
  } finally {
    for (let i = next; i < futures.length; i++) futures[i]!.cancel();
  }
}

registerKind(Kind.Executor, {
  name: 'ThreadPoolExecutor',
  revive: (offset) => reviveAs(offset, () => new ThreadPoolExecutor()),
  destroy: (h, offset) => {
    new TaskQueue(h, offset >> 2).destroy();
    const settings = h.i32[(offset >> 2) + SETTINGS]!;
    dropEncoded(h.buf, settings);
    dropReference(settings);
  },
});
