/**
 * RedisExecutor: the Executor interface (submit, map, shutdown) over BullMQ on Redis. Tasks
 * run on workers (`threadkit worker`, runWorker) on any machine that has the code; the futures
 * are threadkit's own, so they mix with local ones in wait() and asCompleted(), and block or
 * await like them. The executor's Redis work happens in its bridge thread (bridge.ts).
 */

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { QueueShutDown, ThreadError } from '../errors.js';
import { Future } from '../futures/future.js';
import { type MapOptions, type MapPlan, readMapArguments, resultsInOrder, resultsInOrderAsync, zip } from '../futures/map-results.js';
import type { MapIterables, TaskFunction } from '../futures/thread-pool.js';
import { describe } from '../shm/futex.js';
import { describeFunction } from '../shm/functions.js';
import { SimpleQueue } from '../queue/simple.js';
import { holdProcess } from '../thread/registry.js';
import { Thread, keepProcessAlive } from '../thread/thread.js';
import { type BridgeSettings, CLOSE, type InboxMessage, SUBMIT } from './bridge.js';
import { type RedisConnection, checkConnection, describeConnection } from './connection.js';
import { jobData } from './wire.js';

export interface RedisExecutorOptions {
  /** `redis://host:6379` (rediss:// for TLS), or ioredis options `{ host, port, password, … }` (no functions: they cross to the bridge thread). */
  connection: RedisConnection;
  /** The BullMQ queue's name: workers started with the same name run the tasks. */
  queue: string;
  /** BullMQ's key prefix. @default "bull" */
  prefix?: string;
  /**
   * Times a task may start: a worker that dies mid-task (killed, out of memory, its machine
   * gone) leaves it to run again on another, up to this many starts in all; then its future
   * fails with a ThreadError. A task that throws is not run again. @default 3
   */
  attempts?: number;
  /**
   * Milliseconds Redis may be unreachable (down, restarting, network) before the pending
   * futures fail with ConnectionError; submits fail at once after that, until it is back.
   * @default 10000
   */
  unreachableTimeout?: number;
}

let executors = 0;

export class RedisExecutor {
  readonly queue: string;
  readonly #connection: RedisConnection;
  readonly #attempts: number;
  readonly #inbox = new SimpleQueue<InboxMessage>();
  readonly #bridge: Thread;
  #shutdown = false;

  constructor(options: RedisExecutorOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError(`RedisExecutor: expected options { connection, queue }, got ${describe(options)}`);
    const known = ['connection', 'queue', 'prefix', 'attempts', 'unreachableTimeout'];
    for (const key of Object.keys(options)) if (!known.includes(key)) throw new TypeError(`RedisExecutor: unknown option "${key}" (known: ${known.join(', ')})`);
    this.#connection = checkConnection(options.connection, 'RedisExecutor');
    this.queue = checkQueueName(options.queue, 'RedisExecutor');
    const prefix = options.prefix ?? 'bull';
    if (typeof prefix !== 'string' || prefix === '') throw new TypeError(`RedisExecutor: prefix must be a non-empty string, got ${describe(prefix)}`);
    this.#attempts = checkCount(options.attempts ?? 3, 'attempts');
    const settings: BridgeSettings = {
      connection: this.#connection,
      queue: this.queue,
      prefix,
      unreachableTimeout: checkCount(options.unreachableTimeout ?? 10_000, 'unreachableTimeout'),
      batch: 500,
    };
    this.#bridge = new Thread({
      target: { module: bridgeModule(), name: 'runBridge' },
      args: [settings, this.#inbox],
      name: `RedisExecutor-${++executors} (${this.queue})`,
      // It holds nothing itself: each future holds the process from submit until it is done.
      daemon: true,
    });
    this.#bridge.start();
  }

  /**
   * Schedules `fn(...args)` on a worker; returns its Future. `fn` must be a module function
   * (`{ module: import.meta.url, name }`, the workers import it); `args` cross as to a thread,
   * except shared objects, which cannot leave this process.
   * @throws TypeError for an inline function or an argument that cannot be sent; ThreadError after shutdown.
   */
  submit<A extends unknown[], R>(fn: TaskFunction<A, R>, ...args: A): Future<Awaited<R>> {
    const task = this.taskFunction(fn, 'RedisExecutor.submit');
    return this.send(jobData(task, args, false, this.#attempts, 'args')) as Future<Awaited<R>>;
  }

  /**
   * Like the pool's `map`: all tasks are submitted at once (with `chunksize`, each job carries
   * that many items, which the worker runs on its threads); results come back in order.
   * @throws TimeoutError when a result is not ready `timeout` ms after the call.
   */
  map<A extends unknown[], R>(fn: TaskFunction<A, R>, ...iterables: MapIterables<A>): IterableIterator<Awaited<R>>;
  map<A extends unknown[], R>(fn: TaskFunction<A, R>, ...iterablesAndOptions: [...MapIterables<A>, MapOptions]): IterableIterator<Awaited<R>>;
  map(fn: TaskFunction, ...iterablesAndOptions: unknown[]): IterableIterator<unknown> {
    return resultsInOrder(this.submitMap(fn, iterablesAndOptions, 'RedisExecutor.map'));
  }

  /** The async twin of `map`. */
  mapAsync<A extends unknown[], R>(fn: TaskFunction<A, R>, ...iterables: MapIterables<A>): AsyncIterableIterator<Awaited<R>>;
  mapAsync<A extends unknown[], R>(fn: TaskFunction<A, R>, ...iterablesAndOptions: [...MapIterables<A>, MapOptions]): AsyncIterableIterator<Awaited<R>>;
  mapAsync(fn: TaskFunction, ...iterablesAndOptions: unknown[]): AsyncIterableIterator<unknown> {
    return resultsInOrderAsync(this.submitMap(fn, iterablesAndOptions, 'RedisExecutor.mapAsync'));
  }

  /**
   * Stops accepting tasks. With `cancelFutures`, tasks not yet started are cancelled (their
   * jobs removed); with `wait` (the default), returns when every future is done and the
   * executor's connections are closed. Blocks this thread (see also `await using`).
   */
  shutdown(options: { wait?: boolean; cancelFutures?: boolean } = {}): void {
    this.beginShutdown(options, 'shutdown');
    if (options.wait ?? true) this.#bridge.join();
  }

  /** The Promise twin of `shutdown()`: resolves when every future is done and the connections are closed. */
  async shutdownAsync(options: { cancelFutures?: boolean } = {}): Promise<void> {
    this.beginShutdown(options, 'shutdownAsync');
    await this.#bridge.joinAsync();
  }

  [Symbol.dispose](): void {
    this.shutdown({ wait: true });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdownAsync();
  }

  toString(): string {
    return `<threadkit.RedisExecutor queue=${this.queue} at ${describeConnection(this.#connection)}: ${this.#shutdown ? 'shut down' : 'running'}>`;
  }

  [inspect.custom](): string {
    return this.toString();
  }

  // ---- internals ---------------------------------------------------------------------------

  private beginShutdown(options: { cancelFutures?: boolean }, what: string): void {
    if (typeof options !== 'object' || options === null) throw new TypeError(`RedisExecutor.${what}(options): expected an options object, got ${describe(options)}`);
    if (this.#shutdown) return;
    this.#shutdown = true;
    this.#inbox.putNowait([CLOSE, options.cancelFutures === true]);
  }

  private taskFunction(fn: unknown, what: string): { module: string; name: string } {
    const descriptor = describeFunction(fn, `${what}: the task function`);
    if (descriptor.kind !== 'module') {
      throw new TypeError(`${what}: the task function must be a module function { module: import.meta.url, name: '<exported function>' }, which workers import; an inline function is not sent to other machines`);
    }
    return descriptor;
  }

  private send(data: ReturnType<typeof jobData>): Future<unknown> {
    if (this.#shutdown) throw new ThreadError(`cannot schedule new futures after shutdown (${this})`);
    const future = new Future();
    future._setRemote(this.#inbox);
    // Held until the bridge forgets it (done): an unsettled remote future keeps the process alive.
    holdProcess(1);
    keepProcessAlive();
    try {
      this.#inbox.putNowait([SUBMIT, future, data]);
    } catch (error) {
      holdProcess(-1);
      if (!(error instanceof QueueShutDown)) throw error;
      throw new ThreadError(`RedisExecutor: its bridge thread has ended (${this.#bridge.toString()}): no task can be sent`, { cause: error });
    }
    return future;
  }

  private submitMap(fn: unknown, rest: unknown[], what: string): MapPlan {
    const { iterables, deadline, chunksize, timeout } = readMapArguments(rest, what);
    const task = this.taskFunction(fn, what);
    if (this.#shutdown) throw new ThreadError(`cannot schedule new futures after shutdown (${this})`);
    // Encoded first, all of them: an item that cannot be sent fails the call before any job exists.
    const jobs: ReturnType<typeof jobData>[] = [];
    let chunk: unknown[][] = [];
    const flush = (): void => {
      if (chunk.length === 0) return;
      jobs.push(chunksize > 1 ? jobData(task, chunk, true, this.#attempts, 'chunk') : jobData(task, chunk[0]!, false, this.#attempts, `items[${jobs.length}]`));
      chunk = [];
    };
    for (const args of zip(iterables)) {
      chunk.push(args);
      if (chunk.length >= chunksize) flush();
    }
    flush();
    return { futures: jobs.map((data) => this.send(data)), deadline, chunked: chunksize > 1, timeout, what };
  }
}

/**
 * The bridge thread's module, next to this one. A one-file bundle has no such file beside it:
 * refuse at once (the thread would fail to start, and no future would ever settle).
 */
function bridgeModule(): string {
  let url = new URL('./bridge.js', import.meta.url);
  // (Run from the sources, under a TypeScript loader: the .ts beside this one.)
  if (import.meta.url.endsWith('.ts')) url = new URL('./bridge.ts', import.meta.url);
  if (url.protocol === 'file:' && !existsSync(fileURLToPath(url))) {
    throw new Error(`RedisExecutor: its bridge module ${fileURLToPath(url)} is missing (is threadkit inside a one-file bundle? keep it external: esbuild --external:threadkit)`);
  }
  return url.href;
}

function checkQueueName(queue: unknown, what: string): string {
  if (typeof queue !== 'string' || queue === '' || queue.includes(':')) throw new TypeError(`${what}: queue must be a non-empty name without ":", got ${describe(queue)}`);
  return queue;
}

function checkCount(n: unknown, what: string): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 0x7fffffff) throw new RangeError(`RedisExecutor: ${what} must be a whole number from 1 up, got ${describe(n)}`);
  return n;
}

export { checkQueueName };
