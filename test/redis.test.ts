/**
 * RedisExecutor and its workers against a real redis-server (started here on a free loopback
 * port) and real `threadkit worker` processes: results and errors crossing, map, futures mixed
 * with local ones, cancel of queued and running tasks, a worker killed mid-task, attempts,
 * Redis going away and coming back, graceful SIGTERM, process exit, and hostile jobs.
 */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { ThreadPoolExecutor, Lock, asCompleted, wait, CancelledError, ThreadError } from 'threadkit';
import { ConnectionError, RedisExecutor, runWorker } from 'threadkit/redis';
// (The build's codec: the one the 'threadkit' import above uses, so a Lock is its shared object.)
import { encodeValue } from '../dist/shm/codec.js';
import { type RedisServer, type WorkerProcess, REDIS_SERVER, startRedis, startWorker } from './helpers/redis.js';

const TASKS = new URL('./fixtures/redis-tasks.mjs', import.meta.url).href;
const task = (name: string): { module: string; name: string } => ({ module: TASKS, name });
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const scratch = mkdtempSync(join(tmpdir(), 'threadkit-redis-'));
let files = 0;
const scratchFile = (): string => join(scratch, `f${++files}.txt`);
const lines = (path: string): string[] => (existsSync(path) ? readFileSync(path, 'utf8').trim().split('\n').filter(Boolean) : []);

async function until(condition: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const workers: WorkerProcess[] = [];
async function worker(url: string, queue: string, extra: string[] = []): Promise<WorkerProcess> {
  const w = await startWorker(url, queue, ['--threads', '2', ...extra]);
  workers.push(w);
  return w;
}

describe('RedisExecutor', { skip: REDIS_SERVER === undefined ? 'redis-server is not installed (.ci/run installs it)' : false, concurrency: 1, timeout: 120_000 }, () => {
  let redis: RedisServer;
  let ex: RedisExecutor;

  before(async () => {
    redis = await startRedis();
    await worker(redis.url, 'main');
    ex = new RedisExecutor({ connection: redis.url, queue: 'main' });
  });

  after(async () => {
    ex?.shutdown({ cancelFutures: true });
    for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGKILL');
    await redis?.kill();
  });

  it('runs a task on a worker: result, and the same Future class as the pool', async () => {
    const f = ex.submit(task('double'), 21);
    assert.equal(await f, 42);
    assert.equal(f.result(), 42);
    assert.equal(f.done(), true);
    assert.match(f.toString(), /state=finished returned number/);
  });

  it('a task error keeps its class, message, stack, cause and fields', () => {
    const f = ex.submit(task('boom'), 'bad input');
    const error = f.exception() as TypeError & { code: string; cause: Error };
    assert.ok(error instanceof TypeError);
    assert.equal(error.message, 'bad input');
    assert.equal(error.code, 'E_BOOM');
    assert.ok(error.cause instanceof RangeError);
    assert.equal(error.cause.message, 'the cause');
    assert.match(error.stack!, /at boom \(.*redis-tasks\.mjs/);
    assert.throws(() => f.result(), TypeError);
  });

  it('map: results in order, with and without chunksize; an error raises at its position', async () => {
    const items = Array.from({ length: 250 }, (_, i) => i);
    assert.deepEqual([...ex.map(task('double'), items)].slice(0, 5), [0, 2, 4, 6, 8]);
    assert.deepEqual([...ex.map(task('double'), items, { chunksize: 40 })], items.map((x) => x * 2));
    const seen: number[] = [];
    assert.throws(
      () => {
        for (const r of ex.map(task('doubleUnless'), [1, 2, 3, 4], [3, 3, 3, 3])) seen.push(r as number);
      },
      (error: unknown) => error instanceof RangeError && error.message === 'no 3',
    );
    assert.deepEqual(seen, [2, 4]);
    const out: unknown[] = [];
    for await (const r of ex.mapAsync(task('double'), [5, 6], { chunksize: 2 })) out.push(r);
    assert.deepEqual(out, [10, 12]);
  });

  it('using and await using shut the executor down at the end of the block; submit after shutdown throws', async () => {
    let kept: RedisExecutor;
    {
      using ux = new RedisExecutor({ connection: redis.url, queue: 'main' });
      kept = ux;
      assert.equal(ux.submit(task('double'), 10).result(), 20);
    }
    assert.match(String(kept), /: shut down>$/);
    assert.throws(() => kept.submit(task('double'), 1), (e: unknown) => e instanceof ThreadError && /cannot schedule new futures after shutdown/.test(e.message));
    {
      await using ax = new RedisExecutor({ connection: redis.url, queue: 'main' });
      kept = ax;
      assert.equal(await ax.submit(task('double'), 11), 22);
    }
    assert.throws(() => kept.map(task('double'), [1]), /cannot schedule new futures after shutdown/);
  });

  it('remote and local futures mix in asCompleted and wait', () => {
    const pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    try {
      const local = pool.submit((x: number) => x + 1, 1);
      const remote = [ex.submit(task('double'), 1), ex.submit(task('double'), 2)];
      const got = [...asCompleted([local, ...remote])].map((f) => f.result()).sort();
      assert.deepEqual(got, [2, 2, 4]);
      const { done, notDone } = wait([local, ...remote]);
      assert.equal(done.size, 3);
      assert.equal(notDone.size, 0);
    } finally {
      pool.shutdown();
    }
  });

  it('refuses what cannot cross machines, naming it', () => {
    assert.throws(() => ex.submit(task('double'), { lock: new Lock() } as never), (e: unknown) => e instanceof TypeError && /^args\[0\]\.lock: a Lock\b.*cannot be sent to another machine/.test(e.message));
    assert.throws(() => ex.submit((x: number) => x, 1), (e: unknown) => e instanceof TypeError && /must be a module function/.test(e.message));
    assert.throws(() => ex.submit(task('double'), () => 1), (e: unknown) => e instanceof TypeError && /args\[0\]/.test(e.message));
    assert.throws(() => new RedisExecutor({ connection: 'localhost:6379', queue: 'q' }), /connection must be a URL such as "redis:\/\/127\.0\.0\.1:6379"/);
    assert.throws(() => new RedisExecutor({ connection: redis.url, queue: 'a:b' }), /queue must be a non-empty name without ":"/);
    assert.throws(() => new RedisExecutor({ connection: redis.url, queue: 'q', attempt: 2 } as never), /unknown option "attempt"/);
    // A result that is a shared object: the task fails with the TypeError, the worker goes on.
    const f = ex.submit(task('sharedResult'));
    assert.throws(() => f.result(), (e: unknown) => e instanceof TypeError && /result\.lock: a Lock/.test(e.message));
    assert.equal(ex.submit(task('double'), 4).result(), 8);
  });

  it('cancel() of a queued task removes its job: it never runs', async () => {
    const marks = scratchFile();
    const idle = new RedisExecutor({ connection: redis.url, queue: 'no-worker-yet' });
    try {
      const cancelled = idle.submit(task('mark'), marks, 'cancelled');
      await sleep(200); // in Redis by now
      assert.equal(cancelled.cancel(), true);
      assert.equal(cancelled.cancelled(), true);
      await sleep(200); // its job removed
      await worker(redis.url, 'no-worker-yet');
      assert.equal(await idle.submit(task('mark'), marks, 'ran'), 'ran');
      assert.deepEqual(lines(marks), ['ran']);
    } finally {
      idle.shutdown({ cancelFutures: true });
    }
  });

  it('cancel() right after submit, even before the executor has connected: no job is left in Redis, and the executor goes on', async () => {
    const quick = new RedisExecutor({ connection: redis.url, queue: 'cancel-at-once' });
    try {
      const futures = Array.from({ length: 300 }, (_, i) => quick.submit(task('double'), i));
      for (const f of futures) assert.equal(f.cancel(), true);
      const kept = quick.submit(task('double'), 7);
      const { Redis } = await import('ioredis');
      const client = new Redis(redis.url);
      try {
        // Jobs are added in order: once the kept one is there, any cancelled one sent would be too.
        let waiting = 0;
        for (let i = 0; i < 500 && waiting === 0; i++, await sleep(20)) waiting = await client.llen('bull:cancel-at-once:wait');
        assert.equal(waiting, 1); // only the kept one
      } finally {
        client.disconnect();
      }
      await worker(redis.url, 'cancel-at-once');
      assert.equal(await kept, 14);
    } finally {
      quick.shutdown({ cancelFutures: true });
    }
  });

  it('a cancel() while shutdown waits for the futures is heard: shutdown returns, and the job is removed', async () => {
    const sx = new RedisExecutor({ connection: redis.url, queue: 'shutdown-wait' });
    const f = sx.submit(task('double'), 1);
    await sleep(200); // sent
    const closing = sx.shutdownAsync(); // waits for f: no worker takes this queue
    await sleep(100);
    assert.equal(f.cancel(), true);
    await closing;
    const { Redis } = await import('ioredis');
    const client = new Redis(redis.url);
    try {
      assert.equal(await client.llen('bull:shutdown-wait:wait'), 0);
    } finally {
      client.disconnect();
    }
  });

  it('cancel({ interrupt: true }) of a running task interrupts it on its worker', async () => {
    const marks = scratchFile();
    const f = ex.submit(task('startThenSleep'), marks, 60_000);
    await until(() => f.running() && lines(marks).length === 1, 'the task to start');
    assert.equal(f.cancel(), false); // running: plain cancel cannot
    assert.equal(f.cancel({ interrupt: true }), true);
    await assert.rejects(Promise.resolve(f), CancelledError);
    assert.equal(f.cancelled(), true);
    assert.equal(ex.submit(task('double'), 5).result(), 10); // the worker goes on
  });

  it('a worker killed mid-task: the task runs again on another worker (at-least-once)', async () => {
    const marks = scratchFile();
    const fast = ['--lock-duration', '2000', '--stalled-interval', '500'];
    const [a, b] = [await worker(redis.url, 'kill', fast), await worker(redis.url, 'kill', fast)];
    const kx = new RedisExecutor({ connection: redis.url, queue: 'kill' });
    try {
      const f = kx.submit(task('startThenSleep'), marks, 1500);
      await until(() => lines(marks).length === 1, 'the task to start');
      const first = Number(lines(marks)[0]);
      const victim = a.child.pid === first ? a : b;
      const survivor = victim === a ? b : a;
      victim.child.kill('SIGKILL');
      assert.equal(await f, survivor.child.pid);
      assert.deepEqual(lines(marks).map(Number), [first, survivor.child.pid]);
    } finally {
      kx.shutdown({ cancelFutures: true });
    }
  });

  it('attempts: after that many starts whose worker died, the future fails with a ThreadError', async () => {
    const marks = scratchFile();
    const fast = ['--lock-duration', '2000', '--stalled-interval', '500'];
    const a = await worker(redis.url, 'attempts', fast);
    const kx = new RedisExecutor({ connection: redis.url, queue: 'attempts', attempts: 1 });
    try {
      const f = kx.submit(task('startThenSleep'), marks, 5000);
      await until(() => lines(marks).length === 1, 'the task to start');
      a.child.kill('SIGKILL');
      await worker(redis.url, 'attempts', fast);
      await assert.rejects(Promise.resolve(f), (e: unknown) => e instanceof ThreadError && /started 1 times, and each time its worker died.*attempts: 1/.test(e.message));
      assert.equal(lines(marks).length, 1); // not run again
    } finally {
      kx.shutdown({ cancelFutures: true });
    }
  });

  it('SIGTERM: a worker finishes its running task, takes no more, and exits 0', async () => {
    const marks = scratchFile();
    const w = await worker(redis.url, 'graceful');
    const gx = new RedisExecutor({ connection: redis.url, queue: 'graceful' });
    try {
      const f = gx.submit(task('startThenSleep'), marks, 800);
      await until(() => lines(marks).length === 1, 'the task to start');
      w.child.kill('SIGTERM');
      assert.equal(await f, w.child.pid);
      assert.equal(await w.exited, 0);
      assert.match(w.stderr(), /closed after 1 job\b/);
    } finally {
      gx.shutdown({ cancelFutures: true });
    }
  });

  it('a second SIGTERM while tasks finish: the worker exits at once (code 1), and the task runs again elsewhere', async () => {
    const marks = scratchFile();
    const fast = ['--lock-duration', '2000', '--stalled-interval', '500'];
    const w = await worker(redis.url, 'twice', fast);
    const tx = new RedisExecutor({ connection: redis.url, queue: 'twice' });
    try {
      const f = tx.submit(task('startThenSleep'), marks, 1500);
      await until(() => lines(marks).length === 1, 'the task to start');
      w.child.kill('SIGTERM');
      await sleep(100);
      w.child.kill('SIGTERM');
      assert.equal(await w.exited, 1);
      assert.match(w.stderr(), /SIGTERM again: exiting without waiting for the running tasks/);
      const other = await worker(redis.url, 'twice', fast);
      assert.equal(await f, other.child.pid);
    } finally {
      tx.shutdown({ cancelFutures: true });
    }
  });

  it('a job threadkit did not write fails clearly, and the worker goes on', async () => {
    const { Queue } = await import('bullmq');
    const { Redis } = await import('ioredis');
    const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
    const queue = new Queue('main', { connection });
    try {
      const failedWith = async (data: unknown): Promise<string> => {
        const job = await queue.add('junk', data);
        for (let i = 0; i < 250 && (await job.isFailed()) === false; i++) await sleep(20);
        return String((await queue.getJob(job.id!))?.failedReason);
      };
      assert.match(await failedWith({ hello: 'world' }), /not a threadkit job/);
      const fields = { module: TASKS, relative: null, name: 'double', chunk: 0, attempts: 1 };
      assert.match(await failedWith({ ...fields, tk: 99, args: '' }), /wire format 99, and this worker reads format 1/);
      // Bytes naming a shared object: an offset in another process's heap, never revived.
      const withHandle = Buffer.from(encodeValue([new Lock()], 'args')).toString('base64');
      assert.match(await failedWith({ ...fields, tk: 1, args: withHandle }), /names shared objects, which only exist in their own process/);
      assert.match(await failedWith({ ...fields, tk: 1, args: Buffer.from([0xff, 0xfe, 0x01]).toString('base64') }), /could not be read/);
      assert.equal(ex.submit(task('double'), 6).result(), 12);
    } finally {
      await queue.close();
      connection.disconnect();
    }
  });

  it('runWorker in a program: runs tasks, close() lets them finish, and its options are checked', async () => {
    await assert.rejects(runWorker({ connection: redis.url, queue: 'q', threads: 2 } as never), /unknown option "threads"/);
    await assert.rejects(runWorker({ connection: redis.url, queue: 'q', maxWorkers: 0 }), /maxWorkers must be a whole number from 1 up, got 0/);
    await assert.rejects(runWorker({ connection: 'http://x', queue: 'q' }), /connection must be a URL such as "redis:\/\/127\.0\.0\.1:6379"/);
    const inProcess = await runWorker({ connection: redis.url, queue: 'in-process', maxWorkers: 1, handleSignals: false });
    const ix = new RedisExecutor({ connection: redis.url, queue: 'in-process' });
    try {
      assert.deepEqual(await Promise.all([ix.submit(task('double'), 1), ix.submit(task('double'), 2)]), [2, 4]);
    } finally {
      await ix.shutdownAsync();
      await inProcess.close();
    }
    await inProcess.closed;
    assert.equal(inProcess.finished, 2);
  });

  it('an executor never used, or shut down before any task, lets its program exit at once (Redis there or not)', () => {
    const script = new URL('./fixtures/redis-idle-client.mjs', import.meta.url).pathname;
    for (const [mode, url] of [['idle', redis.url], ['shutdown', redis.url], ['shutdown', 'redis://127.0.0.1:1'], ['idle', 'redis://127.0.0.1:1']]) {
      const run = spawnSync(process.execPath, [script, mode!, url!], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(run.signal, null, `${mode} at ${url}: the program did not exit by itself: ${run.stderr}`);
      assert.equal(run.status, 0, run.stderr);
      assert.equal(run.stdout.trim(), 'done');
    }
  });

  it('a client program that never calls shutdown exits by itself once its futures are done', () => {
    const script = new URL('./fixtures/redis-exit-client.mjs', import.meta.url);
    const run = spawnSync(process.execPath, [script.pathname, redis.url, 'main'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(run.signal, null, `the client did not exit by itself: ${run.stderr}`);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout.trim(), 'result 100');
  });
});

describe('RedisExecutor with Redis away', { skip: REDIS_SERVER === undefined ? 'redis-server is not installed' : false, concurrency: 1, timeout: 120_000 }, () => {
  let redis: RedisServer;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGKILL');
    await redis?.kill();
  });

  it('pending futures fail with ConnectionError within unreachableTimeout, submits fail at once, and it resumes when Redis is back', async () => {
    await worker(redis.url, 'away');
    const ax = new RedisExecutor({ connection: redis.url, queue: 'away', unreachableTimeout: 1000 });
    try {
      assert.equal(await ax.submit(task('double'), 1), 2);
      const marks = scratchFile();
      const running = ax.submit(task('startThenSleep'), marks, 30_000);
      await until(() => lines(marks).length === 1, 'the task to start');
      await redis.kill();
      await assert.rejects(Promise.resolve(running), (e: unknown) => e instanceof ConnectionError && /has been unreachable for \d+ ms \(unreachableTimeout: 1000 ms\)/.test(e.message));
      await assert.rejects(Promise.resolve(ax.submit(task('double'), 2)), ConnectionError);
      await redis.start();
      // The client reconnects by itself; so does the worker.
      let result: unknown;
      for (let i = 0; i < 100 && result === undefined; i++) {
        try {
          result = await ax.submit(task('double'), 3);
        } catch (error) {
          assert.ok(error instanceof ConnectionError, String(error));
          await sleep(100);
        }
      }
      assert.equal(result, 6);
    } finally {
      ax.shutdown({ cancelFutures: true });
    }
  });

  it('Redis back within unreachableTimeout but without its data: a pending future fails with ConnectionError naming its lost job', async () => {
    await worker(redis.url, 'lost');
    const lx = new RedisExecutor({ connection: redis.url, queue: 'lost', unreachableTimeout: 60_000 });
    try {
      const marks = scratchFile();
      const running = lx.submit(task('startThenSleep'), marks, 30_000);
      await until(() => lines(marks).length === 1, 'the task to start');
      await redis.kill();
      await redis.start(); // empty: no persistence
      await assert.rejects(Promise.resolve(running), (e: unknown) => e instanceof ConnectionError && /job .* is no longer in Redis .*Redis restarted without its data/.test(e.message));
    } finally {
      lx.shutdown({ cancelFutures: true });
    }
  });

  it('Redis unreachable from the start: a clear ConnectionError, no hang', async () => {
    const nowhere = new RedisExecutor({ connection: 'redis://127.0.0.1:1', queue: 'q', unreachableTimeout: 300 });
    try {
      await assert.rejects(Promise.resolve(nowhere.submit(task('double'), 1)), (e: unknown) => e instanceof ConnectionError && /Redis at redis:\/\/127\.0\.0\.1:1 has been unreachable/.test(e.message));
    } finally {
      await nowhere.shutdownAsync(); // returns although Redis never answered
    }
  });
});
