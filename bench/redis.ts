/**
 * threadkit/redis: RedisExecutor against raw BullMQ doing the same work, on one real
 * redis-server started for the run (test/helpers/redis.ts: a free loopback port, no
 * persistence). The task is `double` from bench/fixtures/double.mjs (x * 2).
 *
 * - 10k trivial tasks, all submitted, then all awaited, timed from the first submit to the last
 *   result. threadkit: `executor.submit` per task, `Promise.all` of `resultAsync()`, run by one
 *   `threadkit worker --threads 2` process (its default concurrency: 2 x threads = 4 jobs).
 *   Anchors: one BullMQ `Worker` (concurrency 4, processor `job.data.x * 2`) in its own process
 *   (bench/fixtures/double.mjs run as a script); the client adds the jobs with `Queue.add` per
 *   job (all at once, then awaited), or with `Queue.addBulk` in batches of 500 (as the
 *   executor's bridge does), and counts the 'completed' events of one `QueueEvents` (checking the
 *   sum of the return values). Jobs carry the bridge's options (removeOnComplete after an hour,
 *   removeOnFail after a day; events stream capped at 100k).
 * - One task's round trip, sequentially (one trip of each contender in turn, the order rotated
 *   every round; the median of 300): threadkit `await executor.submit(double, 21)`; anchors:
 *   `Queue.add` with our own job id, then its 'completed' event through a listener registered
 *   before the add (what the bridge does), and `Queue.add` then `job.waitUntilFinished(events)`
 *   (which also asks Redis whether the job is finished already).
 * - `executor.map(double, 10k items, { chunksize })` for 100 and 1000, against the faster of the
 *   two raw BullMQ 10k-job runs.
 *
 * Every contender has its own queue and its own worker process, all started before the first
 * measurement (the idle ones wait in a blocking Redis call), so that the throughput rounds can be
 * interleaved (A B C, A B C, A B C, each contender's best). Skipped, with a note, when
 * redis-server is not installed.
 *
 * Run alone: `node --import tsx bench/redis.ts` (after `npm run build`: the worker is dist/'s CLI).
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { moduleFunction } from 'threadkit';
import { RedisExecutor } from 'threadkit/redis';
import { REDIS_SERVER, type RedisServer, type WorkerProcess, startRedis, startWorker } from '../test/helpers/redis.js';
import { type Row, isMain, median, runAlone } from './lib.js';

const TASKS = 10_000;
const WARMUP_TASKS = 1_000;
/** Interleaved rounds of the 10k-task runs (each contender keeps its best). */
const PASSES = 3;
/** Sequential round trips per contender (one of each in turn), after a warm-up. */
const ROUND_TRIPS = 300;
const WARMUP_TRIPS = 30;
const CHUNKSIZES = [100, 1000];
/** The worker's threads; its BullMQ concurrency defaults to 2 x threads (src/redis/worker.ts), matched by the raw Worker. */
const THREADS = 2;
const CONCURRENCY = 2 * THREADS;
/** Jobs per addBulk, as the executor's bridge batches them (executor.ts: batch 500). */
const BULK = 500;
/** As the bridge: the events stream keeps this many (BullMQ's default, 10k, may trim 'completed' events of 10k jobs before they are read). */
const EVENTS_KEPT = 100_000;
const JOB_OPTIONS = { removeOnComplete: { age: 3600 }, removeOnFail: { age: 24 * 3600 } };

const FIXTURE = new URL('./fixtures/double.mjs', import.meta.url);
const DOUBLE = moduleFunction<(x: number) => number>(FIXTURE, 'double');
const CLI = fileURLToPath(new URL('../dist/cli/threadkit.js', import.meta.url));

/** Sum of double(i) for i < n. */
const expectedSum = (n: number): number => n * (n - 1);

function checkSum(what: string, sum: number, n: number): void {
  if (sum !== expectedSum(n)) throw new Error(`redis bench (${what}): the results sum to ${sum}, expected ${expectedSum(n)}`);
}

// ---- raw BullMQ --------------------------------------------------------------------------------

/** A raw BullMQ client: a Queue, a QueueEvents, and the 'completed' events routed by job id or counted. */
class RawClient {
  private readonly waiting = new Map<string, (returnvalue: unknown) => void>();
  private counting: { left: number; sum: number; done: (sum: number) => void } | undefined;
  private nextId = 0;

  private constructor(
    readonly queue: Queue,
    readonly events: QueueEvents,
    private readonly clients: Redis[],
  ) {
    events.on('completed', ({ jobId, returnvalue }) => {
      const value = typeof returnvalue === 'string' ? (JSON.parse(returnvalue) as unknown) : returnvalue;
      const waiter = this.waiting.get(jobId);
      if (waiter !== undefined) {
        this.waiting.delete(jobId);
        waiter(value);
      } else if (this.counting !== undefined) {
        const c = this.counting;
        c.sum += value as number;
        if (--c.left === 0) {
          this.counting = undefined;
          c.done(c.sum);
        }
      }
    });
  }

  static async open(url: string, name: string): Promise<RawClient> {
    const client = new Redis(url, { maxRetriesPerRequest: null, connectionName: `bench-bullmq-queue:${name}` });
    const eventsClient = new Redis(url, { maxRetriesPerRequest: null, connectionName: `bench-bullmq-events:${name}` });
    const queue = new Queue(name, { connection: client, streams: { events: { maxLen: EVENTS_KEPT } } });
    // A fresh queue: its events from the first.
    const events = new QueueEvents(name, { connection: eventsClient, lastEventId: '0-0' });
    await queue.waitUntilReady();
    await events.waitUntilReady();
    return new RawClient(queue, events, [client, eventsClient]);
  }

  /** n jobs double(0..n-1), added one `add` each (all at once) or by addBulk; resolves with the results' sum once all completed. */
  async runAll(n: number, bulk: boolean): Promise<number> {
    if (this.counting !== undefined) throw new Error('one run at a time');
    const done = new Promise<number>((resolve) => (this.counting = { left: n, sum: 0, done: resolve }));
    if (bulk) {
      const adding: Promise<unknown>[] = [];
      for (let start = 0; start < n; start += BULK) {
        const jobs = [];
        for (let i = start; i < Math.min(n, start + BULK); i++) jobs.push({ name: 'double', data: { x: i }, opts: JOB_OPTIONS });
        adding.push(this.queue.addBulk(jobs));
      }
      await Promise.all(adding);
    } else {
      const adding: Promise<unknown>[] = new Array(n);
      for (let i = 0; i < n; i++) adding[i] = this.queue.add('double', { x: i }, JOB_OPTIONS);
      await Promise.all(adding);
    }
    return done;
  }

  /** One job, its result through a 'completed' listener registered before the add (our own job id). */
  one(x: number): Promise<unknown> {
    const jobId = `rt-${this.nextId++}`;
    const result = new Promise<unknown>((resolve) => this.waiting.set(jobId, resolve));
    return this.queue.add('double', { x }, { ...JOB_OPTIONS, jobId }).then(() => result);
  }

  /** One job, its result through `job.waitUntilFinished`. */
  async oneWaitUntilFinished(x: number): Promise<unknown> {
    const job = await this.queue.add('double', { x }, JOB_OPTIONS);
    return job.waitUntilFinished(this.events);
  }

  async close(): Promise<void> {
    await this.events.close();
    await this.queue.close();
    for (const client of this.clients) client.disconnect();
  }
}

/** The raw anchor's worker process: one BullMQ Worker (bench/fixtures/double.mjs run as a script). */
async function startRawWorker(url: string, queue: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [fileURLToPath(FIXTURE), url, queue, String(CONCURRENCY)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let text = '';
  child.stdout!.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: string) => {
      text += chunk;
      if (text.includes('ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`the BullMQ worker for ${queue} exited (${code}) before it was ready`)));
  });
  return child;
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

// ---- threadkit -----------------------------------------------------------------------------------

/** n tasks double(0..n-1): submit all, then await all; returns the results' sum. */
async function submitAll(executor: RedisExecutor, n: number): Promise<number> {
  const futures = new Array<Promise<number>>(n);
  for (let i = 0; i < n; i++) futures[i] = executor.submit(DOUBLE, i).resultAsync();
  let sum = 0;
  for (const value of await Promise.all(futures)) sum += value;
  return sum;
}

function mapAll(executor: RedisExecutor, n: number, chunksize: number): number {
  let sum = 0;
  for (const value of executor.map(DOUBLE, Array.from({ length: n }, (_, i) => i), { chunksize })) sum += value;
  return sum;
}

// ---- measuring -----------------------------------------------------------------------------------

/** Milliseconds of one call of `body`, which returns the results' sum for n tasks (checked). */
async function timed(what: string, n: number, body: () => number | Promise<number>): Promise<number> {
  const t0 = performance.now();
  const sum = await body();
  const ms = performance.now() - t0;
  checkSum(what, sum, n);
  return ms;
}

/** µs per trip: [median of single trips, mean of all]. */
function tripStats(samples: number[]): { median: number; mean: number } {
  return { median: median(samples) * 1000, mean: (samples.reduce((a, b) => a + b, 0) / samples.length) * 1000 };
}

const perSecond = (usPerTask: number): string => `${Math.round(1e6 / usPerTask).toLocaleString('en-US')}/s`;

function skipped(note: string): Row[] {
  console.log(`redis: ${note}`);
  return [{ group: 'redis', work: `${TASKS / 1000}k trivial tasks through Redis (per task)`, unit: 'µs', threadkit: undefined, anchorName: 'raw BullMQ', anchor: undefined, note }];
}

export async function run(): Promise<Row[]> {
  if (REDIS_SERVER === undefined) return skipped('redis-server not installed (Debian: apt-get install redis-server): skipped');
  if (!existsSync(CLI)) return skipped('dist/cli/threadkit.js missing (run `npm run build`): skipped');

  const redis: RedisServer = await startRedis();
  const url = redis.url;
  const tag = `b${process.pid.toString(36)}${Date.now().toString(36)}`;
  const name = (what: string): string => `bench-${tag}-${what}`;
  const workers: WorkerProcess[] = [];
  const rawWorkers: ChildProcess[] = [];
  const executors: RedisExecutor[] = [];
  const raws: RawClient[] = [];
  try {
    // Every contender: its own queue, its own worker process, started now.
    const tkQueues = { many: name('tk-many'), trip: name('tk-trip'), map: name('tk-map') };
    const rawQueues = { add: name('bull-add'), bulk: name('bull-bulk'), trip: name('bull-trip') };
    for (const queue of Object.values(tkQueues)) workers.push(await startWorker(url, queue, ['--threads', String(THREADS)]));
    for (const queue of Object.values(rawQueues)) rawWorkers.push(await startRawWorker(url, queue));
    const newExecutor = (queue: string): RedisExecutor => {
      const executor = new RedisExecutor({ connection: url, queue });
      executors.push(executor);
      return executor;
    };
    const tkMany = newExecutor(tkQueues.many);
    const tkTrip = newExecutor(tkQueues.trip);
    const tkMap = newExecutor(tkQueues.map);
    const openRaw = async (queue: string): Promise<RawClient> => {
      const raw = await RawClient.open(url, queue);
      raws.push(raw);
      return raw;
    };
    const rawAdd = await openRaw(rawQueues.add);
    const rawBulk = await openRaw(rawQueues.bulk);
    const rawTrip = await openRaw(rawQueues.trip);

    // ---- 10k tasks, and map ----
    const loops: [string, () => number | Promise<number>][] = [
      ['threadkit submit', () => submitAll(tkMany, TASKS)],
      ['BullMQ add', () => rawAdd.runAll(TASKS, false)],
      ['BullMQ addBulk', () => rawBulk.runAll(TASKS, true)],
      ...CHUNKSIZES.map((chunksize): [string, () => number] => [`threadkit map chunksize ${chunksize}`, () => mapAll(tkMap, TASKS, chunksize)]),
    ];
    // Warm-up: connections, the workers' threads, the task's module imported, the JIT.
    await timed('warm-up', WARMUP_TASKS, () => submitAll(tkMany, WARMUP_TASKS));
    await timed('warm-up', WARMUP_TASKS, () => rawAdd.runAll(WARMUP_TASKS, false));
    await timed('warm-up', WARMUP_TASKS, () => rawBulk.runAll(WARMUP_TASKS, true));
    await timed('warm-up', WARMUP_TASKS, () => mapAll(tkMap, WARMUP_TASKS, 100));
    const best = loops.map(() => Infinity);
    for (let pass = 0; pass < PASSES; pass++) {
      for (let i = 0; i < loops.length; i++) {
        const [what, body] = loops[i]!;
        best[i] = Math.min(best[i]!, await timed(what, TASKS, body));
      }
    }
    const [tkUs, addUs, bulkUs, ...mapUs] = best.map((ms) => (ms * 1000) / TASKS) as [number, number, number, ...number[]];

    // ---- one task's round trip ----
    const trips: [() => Promise<unknown>, number[]][] = [
      [() => tkTrip.submit(DOUBLE, 21).resultAsync(), []],
      [() => rawTrip.one(21), []],
      [() => rawTrip.oneWaitUntilFinished(21), []],
    ];
    for (const [one] of trips) for (let i = 0; i < WARMUP_TRIPS; i++) await one();
    // One trip of each in turn, the order rotated each round: a trip right after another
    // contender's pays for what that one left running (spinning threads), so each takes every place.
    for (let i = 0; i < ROUND_TRIPS; i++) {
      for (let k = 0; k < trips.length; k++) {
        const [one, samples] = trips[(i + k) % trips.length]!;
        const t0 = performance.now();
        const value = await one();
        samples.push(performance.now() - t0);
        if (value !== 42) throw new Error(`redis bench (round trip): got ${String(value)}, expected 42`);
      }
    }
    const [tkTripUs, rawTripUs, waitTripUs] = trips.map(([, samples]) => tripStats(samples)) as [ReturnType<typeof tripStats>, ReturnType<typeof tripStats>, ReturnType<typeof tripStats>];

    const rawBest = Math.min(addUs, bulkUs);
    const rawBestName = addUs <= bulkUs ? 'BullMQ add' : 'BullMQ addBulk';
    const setup = `1 worker process, ${THREADS} threads, concurrency ${CONCURRENCY}; best of ${PASSES}`;
    const rows: Row[] = [
      { group: 'redis', work: `${TASKS / 1000}k trivial tasks, submit all then await all (per task)`, unit: 'µs', threadkit: tkUs, anchorName: 'raw BullMQ add', anchor: addUs, ratio: 'speedup', goal: { op: '>=', value: 0.77 }, note: `${perSecond(tkUs)} vs ${perSecond(addUs)}; ${setup}` },
      { group: 'redis', work: `${TASKS / 1000}k trivial tasks, submit all then await all (per task)`, unit: 'µs', threadkit: tkUs, anchorName: 'raw BullMQ addBulk', anchor: bulkUs, ratio: 'speedup', goal: { op: '>=', value: 0.77 }, note: `${perSecond(tkUs)} vs ${perSecond(bulkUs)}; addBulk of ${BULK} (as the bridge)` },
      { group: 'redis', work: 'one task round trip (submit, await result)', unit: 'µs', threadkit: tkTripUs.median, anchorName: 'BullMQ add + completed event', anchor: rawTripUs.median, ratio: 'speedup', note: `median of ${ROUND_TRIPS}; means ${tkTripUs.mean.toFixed(0)} vs ${rawTripUs.mean.toFixed(0)} µs` },
      { group: 'redis', work: 'one task round trip (submit, await result)', unit: 'µs', threadkit: tkTripUs.median, anchorName: 'BullMQ add + waitUntilFinished', anchor: waitTripUs.median, ratio: 'speedup', note: `median of ${ROUND_TRIPS}; means ${tkTripUs.mean.toFixed(0)} vs ${waitTripUs.mean.toFixed(0)} µs` },
      ...CHUNKSIZES.map((chunksize, i): Row => ({
        group: 'redis',
        work: `map of ${TASKS / 1000}k items, chunksize ${chunksize} (per item)`,
        unit: 'µs',
        threadkit: mapUs[i]!,
        anchorName: `raw ${rawBestName}, 1 job per item`,
        anchor: rawBest,
        ratio: 'speedup',
        note: `${perSecond(mapUs[i]!)} vs ${perSecond(rawBest)}`,
      })),
    ];
    return rows;
  } finally {
    await Promise.all(executors.map((executor) => executor.shutdownAsync().catch(() => {})));
    await Promise.all(raws.map((raw) => raw.close().catch(() => {})));
    await Promise.all([...workers.map((worker) => worker.child), ...rawWorkers].map(stopProcess));
    await redis.kill();
  }
}

if (isMain(import.meta.url)) await runAlone(run);
