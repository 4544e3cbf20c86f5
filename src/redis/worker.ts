/**
 * A worker for RedisExecutor: a BullMQ Worker that runs each job's task on a local
 * ThreadPoolExecutor, so CPU work uses every core of the machine. One process per machine
 * (`npx threadkit worker …` or runWorker) is enough.
 *
 * Delivery is BullMQ's: a job is locked by the worker running it, the lock renewed while it
 * runs; a worker that dies leaves the lock to expire, and another worker's stalled check puts
 * the job back to wait (at-least-once). A job's `attempts` bounds the starts: a start past it
 * fails the job with a ThreadError instead of running the task. Interrupts arrive on a pub/sub
 * channel (one subscription per worker) and reach the task through the pool's own
 * cancel({ interrupt }).
 */

import { ThreadError, describeError } from '../errors.js';
import type { Future } from '../futures/future.js';
import { ThreadPoolExecutor } from '../futures/thread-pool.js';
import { describe } from '../shm/futex.js';
import { interruptChannel } from './bridge.js';
import { type RedisConnection, type RedisClient, checkConnection, describeConnection, loadBullMQ, openRedis } from './connection.js';
import { checkQueueName } from './executor.js';
import { CANCELLED_OUTCOME, decodeArgs, encodeFailure, encodeResult, readJobData, resolveTaskModule } from './wire.js';

export interface RunWorkerOptions {
  /** The executor's connection: `redis://host:6379`, or ioredis options. */
  connection: RedisConnection;
  /** The executor's queue name. */
  queue: string;
  /** Threads of the local pool. @default the pool's default (cores + 4, at most 32) */
  maxWorkers?: number;
  /** Jobs taken at once (more than threads keeps them fed while results travel). @default 2 × the pool's threads */
  concurrency?: number;
  /** BullMQ's key prefix. @default "bull" */
  prefix?: string;
  /** ms a job's lock lasts without renewal: how long after a worker dies its job may run elsewhere. @default 30000 */
  lockDuration?: number;
  /** ms between checks for jobs whose worker died. @default 30000 */
  stalledInterval?: number;
  /** Close gracefully on SIGTERM and SIGINT (finish the running tasks, take no more); a second signal exits at once (code 1). @default true */
  handleSignals?: boolean;
}

/** A running worker. */
export interface RedisWorker {
  /** Takes no more jobs, lets the running tasks finish, then closes the pool and the connections. */
  close(): Promise<void>;
  /** Resolves once the worker is closed (by close() or a signal). */
  readonly closed: Promise<void>;
  /** Jobs finished so far (a map chunk is one job; returned, failed or cancelled). */
  readonly finished: number;
}

/** How long an interrupt for a job this worker has not started yet is remembered (it may be on its way here). */
const EARLY_INTERRUPT_MS = 60_000;

/**
 * Starts a worker and resolves once it is connected and taking jobs.
 * @example
 * const worker = await runWorker({ connection: 'redis://127.0.0.1:6379', queue: 'jobs', maxWorkers: 4 });
 * await worker.closed; // until SIGTERM
 */
export async function runWorker(options: RunWorkerOptions): Promise<RedisWorker> {
  const settings = checkWorkerOptions(options);
  const { Worker, UnrecoverableError } = await loadBullMQ();
  const pool = new ThreadPoolExecutor({ maxWorkers: settings.maxWorkers, threadNamePrefix: `threadkit-worker-${settings.queue}` });
  pool._sleepWhenIdle(); // (tasks come at Redis's pace: spinning for the next would only burn CPU)
  const running = new Map<string, Future<unknown>[]>();
  const interruptedEarly = new Map<string, number>();
  let finished = 0;

  const subscriber: RedisClient = await openRedis(settings.connection, `threadkit-worker-interrupts:${settings.queue}`);
  subscriber.on('error', () => {}); // (ioredis reconnects by itself; the Worker reports errors)
  await subscriber.subscribe(interruptChannel(settings.prefix, settings.queue));
  subscriber.on('message', (_channel: string, id: string) => {
    const futures = running.get(id);
    if (futures !== undefined) for (const f of futures) f.cancel({ interrupt: true });
    else interruptedEarly.set(id, Date.now());
  });

  const processJob = async (job: { id?: string; data: unknown; stalledCounter?: number; attemptsStarted?: number }): Promise<string> => {
    const id = job.id ?? '';
    const futures: Future<unknown>[] = [];
    try {
      const data = readJobData(job.data);
      const starts = job.stalledCounter ?? 0;
      if (starts >= data.attempts) {
        throw new ThreadError(`the task was started ${starts} times, and each time its worker died before it finished (attempts: ${data.attempts}); it is not run again`);
      }
      const fn = { module: resolveTaskModule(data), name: data.name };
      const args = decodeArgs(data);
      // (Pushed one by one: a submit that throws part-way leaves the earlier ones to be cancelled below.)
      if (data.chunk === 1) for (const itemArgs of args as unknown[][]) futures.push(pool.submit(fn, ...itemArgs));
      else futures.push(pool.submit(fn, ...args));
      running.set(id, futures);
      const early = interruptedEarly.get(id);
      if (early !== undefined) {
        interruptedEarly.delete(id);
        for (const f of futures) f.cancel({ interrupt: true });
      }
      const results: unknown[] = [];
      for (const f of futures) {
        try {
          results.push(await f);
        } catch (error) {
          if (f.cancelled()) return CANCELLED_OUTCOME;
          throw error;
        }
      }
      return encodeResult(data.chunk === 1 ? results : results[0]);
    } catch (error) {
      for (const f of futures) f.cancel({ interrupt: true }); // (a chunk's other items: their map fails anyway)
      // Unrecoverable: a task's own error is its outcome; BullMQ must not run it again.
      throw new UnrecoverableError(encodeFailure(error));
    } finally {
      running.delete(id);
      finished++;
      forgetOldInterrupts(interruptedEarly);
    }
  };

  const connection = await openRedis(settings.connection, `threadkit-worker:${settings.queue}`);
  connection.on('error', () => {});
  const worker = new Worker(settings.queue, processJob, {
    connection,
    prefix: settings.prefix,
    concurrency: settings.concurrency ?? 2 * pool.maxWorkers,
    lockDuration: settings.lockDuration,
    stalledInterval: settings.stalledInterval,
    // Starts are bounded by each job's own attempts (processJob), not by BullMQ's stall count.
    maxStalledCount: 1_000_000,
  });
  let lastError = '';
  worker.on('error', (error: Error) => {
    const text = describeError(error);
    if (text !== lastError) process.stderr.write(`threadkit worker (${settings.queue} at ${describeConnection(settings.connection)}): ${text}\n`);
    lastError = text;
  });
  await worker.waitUntilReady();

  let resolveClosed!: () => void;
  const closed = new Promise<void>((resolve) => (resolveClosed = resolve));
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      await worker.close(); // waits for the running jobs
      await pool[Symbol.asyncDispose]();
      await subscriber.quit().catch(() => subscriber.disconnect());
      await connection.quit().catch(() => connection.disconnect());
      if (settings.handleSignals) for (const signal of SIGNALS) process.off(signal, onSignal);
      resolveClosed();
    })());
  const onSignal = (signal: NodeJS.Signals): void => {
    if (closing === undefined) {
      void close();
      return;
    }
    // A second signal while running tasks finish: stop now. Their jobs run again elsewhere
    // once their locks expire (at least once).
    process.stderr.write(`threadkit worker ${process.pid}: ${signal} again: exiting without waiting for the running tasks\n`);
    process.exit(1);
  };
  if (settings.handleSignals) for (const signal of SIGNALS) process.on(signal, onSignal);
  return {
    close,
    closed,
    get finished() {
      return finished;
    },
  };
}

const SIGNALS = ['SIGTERM', 'SIGINT'] as const;

function forgetOldInterrupts(early: Map<string, number>): void {
  if (early.size === 0) return;
  const now = Date.now();
  for (const [id, at] of early) if (now - at > EARLY_INTERRUPT_MS) early.delete(id);
}

function checkWorkerOptions(options: RunWorkerOptions): Required<Omit<RunWorkerOptions, 'maxWorkers' | 'concurrency'>> & { maxWorkers: number | undefined; concurrency: number | undefined } {
  if (typeof options !== 'object' || options === null) throw new TypeError(`runWorker: expected options { connection, queue }, got ${describe(options)}`);
  const known = ['connection', 'queue', 'maxWorkers', 'concurrency', 'prefix', 'lockDuration', 'stalledInterval', 'handleSignals'];
  for (const key of Object.keys(options)) if (!known.includes(key)) throw new TypeError(`runWorker: unknown option "${key}" (known: ${known.join(', ')})`);
  const whole = (n: unknown, what: string): number => {
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) throw new RangeError(`runWorker: ${what} must be a whole number from 1 up, got ${describe(n)}`);
    return n;
  };
  const maxWorkers = options.maxWorkers === undefined ? undefined : whole(options.maxWorkers, 'maxWorkers');
  const prefix = options.prefix ?? 'bull';
  if (typeof prefix !== 'string' || prefix === '') throw new TypeError(`runWorker: prefix must be a non-empty string, got ${describe(prefix)}`);
  if (options.handleSignals !== undefined && typeof options.handleSignals !== 'boolean') throw new TypeError(`runWorker: handleSignals must be a boolean, got ${describe(options.handleSignals)}`);
  return {
    connection: checkConnection(options.connection, 'runWorker'),
    queue: checkQueueName(options.queue, 'runWorker'),
    maxWorkers,
    concurrency: options.concurrency === undefined ? undefined : whole(options.concurrency, 'concurrency'),
    prefix,
    lockDuration: whole(options.lockDuration ?? 30_000, 'lockDuration'),
    stalledInterval: whole(options.stalledInterval ?? 30_000, 'stalledInterval'),
    handleSignals: options.handleSignals ?? true,
  };
}
