/**
 * ThreadPoolExecutor: submit, module functions, thread naming and lazy start, initializers,
 * map/mapAsync, shutdown and disposal, broken pools, pool threads whose isolate dies, and pools
 * used from other threads. After CPython's Lib/test/test_concurrent_futures (executor.py,
 * test_thread_pool.py, test_shutdown.py, test_init.py), in our own words.
 */

import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  Barrier,
  BrokenExecutor,
  BrokenThreadPool,
  CancelledError,
  Event,
  Future,
  Lock,
  Semaphore,
  SharedValue,
  Thread,
  ThreadError,
  ThreadPoolExecutor,
  TimeoutError,
  type ExceptHookArgs,
  heapStats,
  setExcepthook,
  sharedArray,
  wait,
} from 'threadkit';
import { poolThreadNames, runFixture, settle } from './fixtures/futures-helpers.js';
import { since, sleepSync, startThread } from './helpers.js';

/** Waits in threads are bounded, so that a failing test cannot hang the suite. */
const LONG = 10_000;

const TASKS = new URL('./fixtures/tasks.mjs', import.meta.url);
const task = (name: string): { module: URL; name: string } => ({ module: TASKS, name });

let prefixes = 0;
/** A thread name prefix no other pool in this file uses. */
function uniquePrefix(what: string): string {
  return `${what}-${process.pid}-${prefixes++}`;
}

/** A thread that sets `event` after `ms` (only so that a waiter is likely blocked first). */
function setLater(event: Event, ms = 30): Thread {
  return startThread(
    (e: Event, delay: number) => {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, delay);
      e.set();
    },
    [event, ms],
  );
}

/** A task that waits for `gate`, then returns `value`. */
const gated = (gate: Event, value: unknown): unknown => {
  gate.wait();
  return value;
};

/** A task that returns once its pool says it is shut down (it polls; gives up after `long` ms). */
const untilShutDown = (pool: ThreadPoolExecutor, long: number): string => {
  const deadline = Date.now() + long;
  while (!String(pool).includes(': shut down,')) {
    if (Date.now() > deadline) return 'never saw the shutdown';
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
  }
  return 'saw the shutdown';
};

describe('ThreadPoolExecutor.submit', () => {
  it('runs a self-contained function with its args; returns a Future with the result', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 2 });
    const f = pool.submit((x: number, y: { k: number[] }) => x + y.k.length, 40, { k: [1, 2] });
    assert.ok(f instanceof Future);
    assert.equal(f.result(), 42);
    assert.equal(f.done(), true);
  });

  it('awaits an async task function: the future gets the settled value or error', async () => {
    await using pool = new ThreadPoolExecutor({ maxWorkers: 2 });
    const ok = pool.submit(async (x: number) => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      return x * 2;
    }, 21);
    const bad = pool.submit(async () => {
      await new Promise((resolve) => setTimeout(resolve, 1));
      throw new TypeError('async failure');
    });
    assert.equal(await ok, 42);
    await assert.rejects(async () => bad, { name: 'TypeError', message: 'async failure' });
  });

  it('a task that throws: result() throws its error (class, message), exception() returns it', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    const f = pool.submit((n: number) => {
      throw new RangeError(`bad ${n}`);
    }, 7);
    assert.throws(() => f.result(), { name: 'RangeError', message: 'bad 7' });
    const error = f.exception();
    assert.ok(error instanceof RangeError);
    assert.match(String(f), /state=finished raised/);
  });

  it('runs module functions: { module: URL or path, name }, sync and async', async () => {
    await using pool = new ThreadPoolExecutor({ maxWorkers: 2 });
    assert.equal(pool.submit(task('multiply'), 6, 7).result(), 42);
    assert.equal(pool.submit({ module: fileURLToPath(TASKS), name: 'multiply' }, 3, 5).result(), 15);
    assert.equal(pool.submit({ module: TASKS.href, name: 'multiply' }, 2, 5).result(), 10);
    assert.equal(await pool.submit(task('slowDouble'), 21), 42);
    assert.throws(() => pool.submit(task('fail'), 'from the module').result(), { name: 'RangeError', message: 'from the module' });
  });

  it('a missing export, a non-function export or a missing module fails the future with TypeError', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    assert.throws(() => pool.submit(task('noSuchExport')).result(), { name: 'TypeError', message: /no exported function "noSuchExport"/ });
    assert.throws(() => pool.submit(task('notAFunction')).result(), { name: 'TypeError', message: /"notAFunction"/ });
    assert.throws(() => pool.submit({ module: new URL('./fixtures/missing.mjs', import.meta.url), name: 'x' }).result(), { name: 'TypeError', message: /cannot import module/ });
    assert.equal(pool.submit(task('multiply'), 2, 2).result(), 4, 'the pool still works');
  });

  it('runs a module function from a TypeScript module in a fresh pool thread (a new process: no warm isolate has tsx yet)', () => {
    const { stdout, stderr, status } = runFixture('typescript-task.ts');
    assert.equal(status, 0, stderr);
    assert.deepEqual(JSON.parse(stdout.trim()), { ok: true, value: 42 });
  });

  it('a self-contained task can import() relative to the module that submitted it', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    const f = pool.submit(async (x: number) => {
      const specifier: string = './fixtures/tasks.mjs';
      const tasks = (await import(specifier)) as { multiply: (a: number, b: number) => number };
      return tasks.multiply(x, 2);
    }, 21);
    assert.equal(f.result(), 42);
  });

  it('a task can import the package: import("threadkit") works inside', async () => {
    await using pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    const isMain = await pool.submit(async () => (await import('threadkit')).isMainThread);
    assert.equal(isMain, false);
  });

  it('rejects what is not a task function: TypeError', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    assert.throws(() => pool.submit(5 as never), { name: 'TypeError', message: /task function must be a function or \{ module, name \}/ });
    assert.throws(() => pool.submit(Math.max), { name: 'TypeError', message: /native or bound function/ });
    assert.throws(() => pool.submit(class Task {} as never), { name: 'TypeError', message: /is a class/ });
    assert.throws(() => pool.submit({ module: TASKS, name: '' }), TypeError);
  });

  it('an argument that cannot be sent: TypeError from submit, naming the value; the pool still works', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    assert.throws(() => pool.submit((a: number, b: unknown) => [a, b], 1, { handler: () => 1 }), { name: 'TypeError', message: /\.handler: function handler\(\) could not be cloned/ });
    assert.throws(() => pool.submit((s: unknown) => s, new SharedArrayBuffer(8)), TypeError);
    assert.equal(pool.submit((x: number) => x, 3).result(), 3);
  });

  it('an argument that cannot be sent: the error names the path as args[1].handler', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    assert.throws(() => pool.submit((a: number, b: unknown) => [a, b], 1, { handler: () => 1 }), { name: 'TypeError', message: /^args\[1\]\.handler: / });
  });

  it('a result that cannot be sent fails the future with TypeError naming it', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    const f = pool.submit(() => ({ callback: () => 1 }));
    assert.throws(() => f.result(), { name: 'TypeError', message: /result\.callback/ });
  });

  it('shared objects travel by reference, in args and in results', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 2 });
    const event = new Event();
    const counter = new SharedValue('int32');
    const lock = new Lock();
    const results = [1, 2, 3].map(() =>
      pool.submit(
        (e: Event, c: SharedValue<'int32'>, l: Lock) => {
          c.add(1);
          e.set();
          return { lock: l };
        },
        event,
        counter,
        lock,
      ),
    );
    const returned = results.map((f) => f.result().lock);
    assert.equal(counter.value, 3);
    assert.equal(event.isSet(), true);
    lock.acquire();
    assert.deepEqual(
      returned.map((l) => l.locked()),
      [true, true, true],
      'the returned lock is the same lock',
    );
    lock.release();
  });

  it('a Future passed to a task is the same Future: the task completes it, main sees it', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    const side = new Future<string>();
    const f = pool.submit((s: Future<string>) => {
      s.setResult('set by the task');
      return [s];
    }, side);
    const [back] = f.result();
    assert.equal(side.result(), 'set by the task');
    assert.equal(String(back), String(side), 'the same block');
  });

  it('a shared object sent as a task argument comes back as the same object (===)', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    const lock = new Lock();
    const side = new Future<number>();
    const [lockBack, futureBack] = pool.submit((l: Lock, s: Future<number>) => [l, s], lock, side).result();
    assert.ok(lockBack === lock, 'the lock came back as another object');
    assert.ok(futureBack === side, 'the future came back as another object');
  });
});

describe('ThreadPoolExecutor threads', () => {
  it('maxWorkers defaults to min(32, availableParallelism() + 4); RangeError when <= 0; TypeError when not an integer', () => {
    const pool = new ThreadPoolExecutor();
    assert.equal(pool.maxWorkers, Math.min(32, availableParallelism() + 4));
    pool.shutdown();
    assert.equal(new ThreadPoolExecutor({ maxWorkers: 3 }).maxWorkers, 3);
    for (const n of [0, -1]) assert.throws(() => new ThreadPoolExecutor({ maxWorkers: n }), { name: 'RangeError', message: /maxWorkers must be greater than 0/ });
    assert.throws(() => new ThreadPoolExecutor({ maxWorkers: 1.5 }), TypeError);
    assert.throws(() => new ThreadPoolExecutor({ initargs: 'x' as never }), TypeError);
    assert.throws(() => new ThreadPoolExecutor({ initializer: 42 as never }), TypeError);
  });

  it('threads are named <prefix>_<i>, as a task sees from inside', () => {
    const prefix = uniquePrefix('named');
    using pool = new ThreadPoolExecutor({ maxWorkers: 2, threadNamePrefix: prefix });
    // Two tasks that meet at a barrier run on two different threads.
    const barrier = new Barrier(2, { timeout: 30_000 });
    const names = [0, 1].map(() =>
      pool.submit(async (b: Barrier) => {
        b.wait();
        return (await import('threadkit')).currentThread().name;
      }, barrier),
    );
    assert.deepEqual(names.map((f) => f.result()).sort(), [`${prefix}_0`, `${prefix}_1`]);
    assert.deepEqual(poolThreadNames(prefix), [`${prefix}_0`, `${prefix}_1`]);
  });

  it('the default prefix is ThreadPoolExecutor-<n>, with a new n for each pool', () => {
    const numbers = [0, 1].map(() => {
      using pool = new ThreadPoolExecutor({ maxWorkers: 1 });
      const name = pool.submit(task('threadName')).result() as string;
      const match = /^ThreadPoolExecutor-(\d+)_0$/.exec(name);
      assert.ok(match, name);
      return Number(match[1]);
    });
    assert.notEqual(numbers[0], numbers[1]);
  });

  it('default prefixes stay unique when pools are created in different threads', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    const mainName = pool.submit(task('threadName')).result() as string;
    const upTo = Number(/^ThreadPoolExecutor-(\d+)_0$/.exec(mainName)![1]);
    // A thread creates as many default pools as main has, and names a thread of each.
    const t = startThread<string[]>(
      async (count: number, tasks: string) => {
        const { ThreadPoolExecutor } = await import('threadkit');
        const names: string[] = [];
        for (let i = 0; i <= count; i++) {
          const p = new ThreadPoolExecutor({ maxWorkers: 1 });
          names.push((await p.submit({ module: tasks, name: 'threadName' })) as string);
          p.shutdown();
        }
        return names;
      },
      [upTo, TASKS.href],
    );
    t.join();
    assert.ok(!t.result!.includes(mainName), `${mainName} was used again in another thread: ${t.result!.join(', ')}`);
  });

  it("pool threads are non-daemon threads, as in CPython (the pool's work holds the process, not its threads)", () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    assert.equal(pool.submit(async () => (await import('threadkit')).currentThread().daemon).result(), false);
  });

  it('threads start lazily: none before the first task, one for one task', () => {
    const prefix = uniquePrefix('lazy');
    using pool = new ThreadPoolExecutor({ maxWorkers: 4, threadNamePrefix: prefix });
    assert.deepEqual(poolThreadNames(prefix), []);
    assert.match(String(pool), /threads=0\/4/);
    assert.equal(pool.submit((x: number) => x * 2, 21).result(), 42);
    assert.deepEqual(poolThreadNames(prefix), [`${prefix}_0`]);
    assert.match(String(pool), /threads=1\/4/);
  });

  it('a pool that runs one task at a time reuses its idle thread (CPython test_idle_thread_reuse)', () => {
    const counts = [0, 1, 2, 3, 4].map(() => {
      const prefix = uniquePrefix('reuse');
      using pool = new ThreadPoolExecutor({ threadNamePrefix: prefix });
      for (let i = 0; i < 10; i++) assert.equal(pool.submit((x: number) => x * 2, i).result(), i * 2);
      return poolThreadNames(prefix).length;
    });
    assert.deepEqual(counts, [1, 1, 1, 1, 1], 'threads started by pools that ran 10 tasks one at a time');
  });

  it('a saturated pool starts exactly maxWorkers threads (CPython test_saturation)', () => {
    const prefix = uniquePrefix('saturated');
    using pool = new ThreadPoolExecutor({ maxWorkers: 4, threadNamePrefix: prefix });
    const semaphore = new Semaphore(0);
    const futures = Array.from({ length: 60 }, () => pool.submit((s: Semaphore) => s.acquire(), semaphore));
    assert.equal(poolThreadNames(prefix).length, 4);
    assert.match(String(pool), /threads=4\/4/);
    semaphore.release(60);
    for (const f of futures) assert.equal(f.result(), true);
    assert.equal(poolThreadNames(prefix).length, 4);
  });

  it('initializer(...initargs) runs once in each thread before its first task (module function)', () => {
    const token = `init-${process.pid}-${Math.random()}`;
    using pool = new ThreadPoolExecutor({ maxWorkers: 2, initializer: task('rememberInit'), initargs: [token] });
    const barrier = new Barrier(2, { timeout: 30_000 });
    const seen = [0, 1].map(() =>
      pool.submit((b: Barrier, t: string) => {
        b.wait(); // two tasks at once: two threads, two initializers
        const g = globalThis as { __threadkitInitToken?: string; __threadkitInitRuns?: Record<string, number> };
        return [g.__threadkitInitToken, g.__threadkitInitRuns?.[t]];
      }, barrier, token),
    );
    assert.deepEqual(
      seen.map((f) => f.result()),
      [
        [token, 1],
        [token, 1],
      ],
    );
    assert.equal(pool.submit(task('initState')).result(), token);
  });

  it('a shared object in initargs stays valid after the pool threads end', () => {
    const { status, stdout, stderr } = runFixture('initargs-shared-object.ts');
    assert.equal(status, 0, stderr.split('\n').slice(0, 8).join('\n'));
    assert.equal(stdout.trim(), 'ok');
  });

  it('a self-contained and an async initializer work too; the initializer finishes before the first task', async () => {
    const token = `self-${Math.random()}`;
    await using pool = new ThreadPoolExecutor({
      maxWorkers: 1,
      initializer: async (t: string) => {
        await new Promise((resolve) => setTimeout(resolve, 10));
        (globalThis as { __threadkitSelfInit?: string }).__threadkitSelfInit = t;
      },
      initargs: [token],
    });
    assert.equal(await pool.submit(() => (globalThis as { __threadkitSelfInit?: string }).__threadkitSelfInit), token);
  });
});

describe('ThreadPoolExecutor.map', () => {
  it('yields the results in order, zipping several iterables (the shortest ends it)', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 3 });
    const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
    assert.deepEqual([...pool.map((x: number, y: number) => x ** y, range(10), range(10))], range(10).map((i) => i ** i));
    function* letters(): Generator<string> {
      yield* ['a', 'b', 'c', 'd'];
    }
    assert.deepEqual([...pool.map((n: number, s: string, t: boolean | number) => `${s}${n}${t}`, range(10), letters(), new Set([true, false, 1]))], ['a0true', 'b1false', 'c21']);
    assert.deepEqual([...pool.map((x: number) => x, [])], []);
    assert.deepEqual([...pool.map(() => 1)], [], 'no iterables, no calls');
  });

  it('runs module functions and async functions', async () => {
    await using pool = new ThreadPoolExecutor({ maxWorkers: 2 });
    assert.deepEqual([...pool.map(task('multiply'), [1, 2, 3], [4, 5, 6])], [4, 10, 18]);
    assert.deepEqual([...pool.map(task('slowDouble'), [1, 2, 3])], [2, 4, 6]);
  });

  it('chunksize gives the same results; each chunk runs as one task on one thread', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 2 });
    const items = Array.from({ length: 20 }, (_, i) => i);
    assert.deepEqual([...pool.map((x: number, y: number) => x * y, items, items, { chunksize: 3 })], items.map((i) => i * i));
    const names = [...pool.map(async (i: number) => [i, (await import('threadkit')).currentThread().name], items, { chunksize: 5 })] as [number, string][];
    assert.deepEqual(
      names.map(([i]) => i),
      items,
    );
    for (let chunk = 0; chunk < 4; chunk++) {
      const inChunk = new Set(names.slice(chunk * 5, chunk * 5 + 5).map(([, name]) => name));
      assert.equal(inChunk.size, 1, `chunk ${chunk} ran on ${[...inChunk].join(', ')}`);
    }
  });

  it('with chunksize an error fails its whole chunk: the results before that chunk come, then the error', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 2 });
    const got: number[] = [];
    const it = pool.map(
      (i: number) => {
        if (i === 7) throw new RangeError('item 7');
        return i;
      },
      Array.from({ length: 12 }, (_, i) => i),
      { chunksize: 5 },
    );
    assert.throws(() => {
      for (const value of it) got.push(value);
    }, { name: 'RangeError', message: 'item 7' });
    assert.deepEqual(got, [0, 1, 2, 3, 4]);
  });

  it('rejects a bad chunksize (RangeError) and a non-iterable (TypeError)', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    for (const chunksize of [0, -1, 1.5]) assert.throws(() => pool.map((x: number) => x, [1], { chunksize }), RangeError, String(chunksize));
    assert.throws(() => pool.map((x: number) => x, 5 as never), TypeError);
    assert.throws(() => pool.map((x: number) => x, [1], null as never), TypeError);
  });

  it('an item that cannot be sent: TypeError naming items[2]; the tasks queued for the items before it are cancelled, none is left queued', () => {
    const pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    const started = new Event();
    const gate = new Event();
    // The only thread is busy: the tasks map() queues for items 0 and 1 wait in the queue.
    const blocker = pool.submit(
      (s: Event, g: Event) => {
        s.set();
        g.wait();
        return 'blocker';
      },
      started,
      gate,
    );
    assert.equal(started.wait(LONG), true, 'the blocking task started');
    const ran = new SharedValue('int32');
    try {
      assert.throws(
        () =>
          pool.map(
            (item: unknown, counter: SharedValue<'int32'>) => {
              counter.add(1);
              return item;
            },
            [1, 2, { handler: () => 3 }, 4],
            [ran, ran, ran, ran],
          ),
        { name: 'TypeError', message: /^items\[2\]\S*\.handler: function handler\(\) could not be cloned/ },
      );
    } finally {
      gate.set();
    }
    pool.shutdown({ wait: true });
    assert.equal(blocker.result(0), 'blocker');
    assert.equal(ran.value, 0, 'the tasks of the items before the refused one ran (they were not cancelled)');
    assert.match(String(pool), /: shut down, threads=0\/1, queued=0>$/);
  });

  it('submits every task at the call, without iteration (CPython issue 11777)', () => {
    const counter = new SharedValue('int32');
    const pool = new ThreadPoolExecutor({ maxWorkers: 2 });
    pool.map(
      (c: SharedValue<'int32'>) => c.add(1),
      Array.from({ length: 10 }, () => counter),
    );
    pool.shutdown({ wait: true });
    assert.equal(counter.value, 10);
  });

  it('raises the first task error when its result is reached, and cancels the tasks after it', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    const ran = sharedArray(Int32Array, 6);
    const inTwo = new Event();
    const gate = new Event();
    const items = Array.from({ length: 6 }, (_, i) => i);
    const results = pool.map(
      (i: number, r: Int32Array, started: Event, g: Event) => {
        r[i] = 1;
        if (i === 1) throw new RangeError('item 1');
        if (i === 2) {
          started.set();
          g.wait();
        }
        return i;
      },
      items,
      items.map(() => ran),
      items.map(() => inTwo),
      items.map(() => gate),
    );
    assert.deepEqual(results.next(), { value: 0, done: false });
    inTwo.wait(); // the one thread is inside item 2: items 3-5 are still queued
    assert.throws(() => results.next(), { name: 'RangeError', message: 'item 1' });
    gate.set();
    pool.shutdown({ wait: true });
    assert.deepEqual([...ran], [1, 1, 1, 0, 0, 0], 'items 3-5 were cancelled before they started');
    assert.deepEqual(results.next(), { value: undefined, done: true });
  });

  it('timeout: TimeoutError once `timeout` ms have passed since the call (never early), and the rest is cancelled', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    const gate = new Event();
    const ran = sharedArray(Int32Array, 3);
    const first = pool.submit(gated, gate, 'first'); // keeps the one thread busy
    const t0 = performance.now();
    const results = pool.map(
      (i: number, r: Int32Array) => {
        r[i] = 1;
        return i;
      },
      [1, 2],
      [ran, ran],
      { timeout: 50 },
    );
    assert.throws(() => results.next(), TimeoutError);
    assert.ok(since(t0) >= 50, `TimeoutError after ${since(t0)} ms`);
    gate.set();
    assert.equal(first.result(), 'first');
    pool.shutdown({ wait: true });
    assert.deepEqual([...ran], [0, 0, 0], 'the mapped tasks never ran (CPython test_executor_map_current_future_cancel)');
  });

  it('timeout 0 with a busy pool: TimeoutError at the first result', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    const gate = new Event();
    const busy = pool.submit(gated, gate, 'busy');
    assert.throws(() => pool.map((x: number) => x, [1, 2], { timeout: 0 }).next(), TimeoutError);
    gate.set();
    assert.equal(busy.result(), 'busy');
  });

  it('mapAsync: results in order through for await, errors and timeouts reject', async () => {
    await using pool = new ThreadPoolExecutor({ maxWorkers: 2 });
    const out: number[] = [];
    for await (const v of pool.mapAsync((x: number, y: number) => x + y, [1, 2, 3, 4], [10, 20, 30, 40])) out.push(v);
    assert.deepEqual(out, [11, 22, 33, 44]);

    const chunked: number[] = [];
    for await (const v of pool.mapAsync((x: number) => x * 2, [1, 2, 3, 4, 5], { chunksize: 2 })) chunked.push(v);
    assert.deepEqual(chunked, [2, 4, 6, 8, 10]);

    const failing = pool.mapAsync(
      (x: number) => {
        if (x === 2) throw new TypeError('two');
        return x;
      },
      [1, 2, 3],
    );
    assert.deepEqual(await failing.next(), { value: 1, done: false });
    await assert.rejects(failing.next(), { name: 'TypeError', message: 'two' });

    const gate = new Event();
    const t0 = performance.now();
    const slow = pool.mapAsync(gated, [gate], ['late'], { timeout: 30 });
    await assert.rejects(slow.next(), TimeoutError);
    assert.ok(since(t0) >= 30);
    gate.set();
  });

  it('mapAsync: leaving the loop early cancels the tasks not yet started', async () => {
    await using pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    const ran = sharedArray(Int32Array, 5);
    const inOne = new Event();
    const gate = new Event();
    const items = [0, 1, 2, 3, 4];
    for await (const v of pool.mapAsync(
      (i: number, r: Int32Array, started: Event, g: Event) => {
        r[i] = 1;
        if (i === 1) {
          started.set();
          g.wait();
        }
        return i;
      },
      items,
      items.map(() => ran),
      items.map(() => inOne),
      items.map(() => gate),
    )) {
      assert.equal(v, 0);
      inOne.wait(); // the one thread is inside item 1: items 2-4 are still queued
      break;
    }
    gate.set();
    pool.shutdown({ wait: true });
    assert.deepEqual([...ran.slice(2)], [0, 0, 0]);
  });
});

describe('ThreadPoolExecutor.shutdown', () => {
  it('shutdown() waits for the running and queued tasks to finish', () => {
    const pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    const gate = new Event();
    const futures = [pool.submit(gated, gate, 0), ...[1, 2, 3].map((i) => pool.submit((x: number) => x, i))];
    const opener = setLater(gate);
    pool.shutdown();
    assert.deepEqual(
      futures.map((f) => f.done()),
      [true, true, true, true],
    );
    assert.deepEqual(
      futures.map((f) => f.result()),
      [0, 1, 2, 3],
    );
    opener.join();
  });

  it('shutdown({ wait: false }) returns at once; queued tasks still run', async () => {
    const pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    const gate = new Event();
    const futures = [pool.submit(gated, gate, 'a'), pool.submit((x: string) => x, 'b')];
    pool.shutdown({ wait: false });
    assert.equal(futures[0]!.done(), false);
    gate.set();
    assert.deepEqual(await Promise.all(futures), ['a', 'b']);
  });

  it('shutdown({ cancelFutures: true }) cancels the queued tasks; the running one completes', () => {
    const pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    const started = new Event();
    const gate = new Event();
    const running = pool.submit(
      (s: Event, g: Event) => {
        s.set();
        g.wait();
        return 'finished';
      },
      started,
      gate,
    );
    const queued = [1, 2, 3, 4].map((i) => pool.submit((x: number) => x, i));
    started.wait();
    pool.shutdown({ cancelFutures: true, wait: false });
    for (const f of queued) {
      assert.equal(f.cancelled(), true);
      assert.throws(() => f.result(0), CancelledError);
    }
    assert.equal(running.running(), true);
    gate.set();
    pool.shutdown({ wait: true });
    assert.equal(running.result(), 'finished');
  });

  it('submit and map after shutdown: ThreadError "cannot schedule new futures after shutdown"; shutdown twice is fine', () => {
    const pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    pool.shutdown();
    assert.throws(() => pool.submit(() => 1), (e: unknown) => e instanceof ThreadError && (e as Error).message === 'cannot schedule new futures after shutdown');
    assert.throws(() => pool.map((x: number) => x, [1]), { name: 'ThreadError', message: 'cannot schedule new futures after shutdown' });
    pool.shutdown();
    pool.shutdown({ wait: false, cancelFutures: true });
  });

  it('the pool threads end at shutdown({ wait: true })', () => {
    const prefix = uniquePrefix('ending');
    const pool = new ThreadPoolExecutor({ maxWorkers: 2, threadNamePrefix: prefix });
    const barrier = new Barrier(2, { timeout: 30_000 });
    for (const f of [0, 1].map(() => pool.submit((b: Barrier) => b.wait(), barrier))) f.result();
    assert.equal(poolThreadNames(prefix).length, 2);
    pool.shutdown({ wait: true });
    assert.deepEqual(poolThreadNames(prefix), []);
  });

  it('after shutdown({ wait: true }) the pool lists no threads: String(pool) says threads=0, here and in another thread', () => {
    const prefix = uniquePrefix('leaving');
    const pool = new ThreadPoolExecutor({ maxWorkers: 2, threadNamePrefix: prefix });
    const barrier = new Barrier(2, { timeout: 30_000 });
    for (const f of [0, 1].map(() => pool.submit((b: Barrier) => b.wait(), barrier))) f.result();
    assert.match(String(pool), /: running, threads=2\/2, queued=0>$/);
    pool.shutdown({ wait: true });
    assert.match(String(pool), /: shut down, threads=0\/2, queued=0>$/);
    assert.deepEqual(poolThreadNames(prefix), []);
    const reader = startThread<string>((p: ThreadPoolExecutor) => String(p), [pool]);
    reader.join();
    assert.match(reader.result ?? 'no result', /: shut down, threads=0\/2, queued=0>$/);
  });

  it('shutdown({ wait: true }) called in another thread waits for the pool threads this thread started; both see threads=0', () => {
    const prefix = uniquePrefix('shut-elsewhere');
    const pool = new ThreadPoolExecutor({ maxWorkers: 2, threadNamePrefix: prefix });
    const barrier = new Barrier(2, { timeout: 30_000 });
    for (const f of [0, 1].map(() => pool.submit((b: Barrier) => b.wait(), barrier))) f.result();
    assert.deepEqual(poolThreadNames(prefix), [`${prefix}_0`, `${prefix}_1`]);
    // Runs until the pool is shut down: the closer's shutdown({ wait: true }) must wait for it.
    const watcher = pool.submit(untilShutDown, pool, LONG);
    const closer = startThread<{ doneAtReturn: boolean; text: string; names: string[] }>(
      async (p: ThreadPoolExecutor, f: Future<string>, pre: string) => {
        const { enumerate } = await import('threadkit');
        p.shutdown({ wait: true });
        return { doneAtReturn: f.done(), text: String(p), names: enumerate().map((t) => t.name).filter((n) => n.startsWith(`${pre}_`)) };
      },
      [pool, watcher, prefix],
    );
    closer.join();
    const seen = closer.result;
    assert.equal(seen?.doneAtReturn, true, 'shutdown({ wait: true }) returned while a task was still running');
    assert.match(seen?.text ?? 'no result', /: shut down, threads=0\/2, queued=0>$/);
    assert.deepEqual(seen?.names, [], 'pool threads still alive after shutdown({ wait: true }) returned');
    assert.equal(watcher.result(0), 'saw the shutdown');
    assert.match(String(pool), /: shut down, threads=0\/2, queued=0>$/);
  });

  it('toString tells the state, the threads and the queue', () => {
    const pool = new ThreadPoolExecutor({ maxWorkers: 3 });
    assert.match(String(pool), /^<threadkit\.ThreadPoolExecutor at 0x[0-9a-f]+: running, threads=0\/3, queued=0>$/);
    pool.shutdown();
    assert.match(String(pool), /^<threadkit\.ThreadPoolExecutor at 0x[0-9a-f]+: shut down, threads=0\/3, queued=0>$/);
  });

  it('`using` shuts the pool down at the end of the block, waiting for its tasks', () => {
    let escaped: ThreadPoolExecutor | undefined;
    let future: Future<unknown> | undefined;
    const gate = new Event();
    {
      using pool = new ThreadPoolExecutor({ maxWorkers: 1 });
      escaped = pool;
      future = pool.submit(gated, gate, 'done in the block');
      setLater(gate);
    }
    assert.equal(future.done(), true);
    assert.equal(future.result(), 'done in the block');
    assert.throws(() => escaped.submit(() => 1), ThreadError);
  });

  it('`await using` shuts the pool down without blocking the event loop', async () => {
    let escaped: ThreadPoolExecutor | undefined;
    let future: Future<unknown> | undefined;
    const gate = new Event();
    {
      await using pool = new ThreadPoolExecutor({ maxWorkers: 1 });
      escaped = pool;
      future = pool.submit(gated, gate, 'async block');
      setTimeout(() => gate.set(), 5); // only the event loop can open the gate
    }
    assert.equal(future.result(0), 'async block');
    assert.throws(() => escaped.submit(() => 1), ThreadError);
  });
});

describe('broken pools', () => {
  it('an initializer whose error cannot be sent (it holds a function): queued futures still fail with BrokenThreadPool, saying so', () => {
    // The initializer waits at a gate until both tasks are queued (else the second submit could
    // find the pool broken already and throw).
    const gate = new Event();
    const pool = new ThreadPoolExecutor({
      maxWorkers: 1,
      initializer: (g: Event) => {
        g.wait(10_000);
        throw Object.assign(new Error('init failed'), { close: () => 1 });
      },
      initargs: [gate],
    });
    const futures = [pool.submit(() => 1), pool.submit(() => 2)];
    gate.set();
    for (const f of futures) {
      const error = f.exception(LONG);
      assert.ok(error instanceof BrokenThreadPool, String(error));
      assert.match((error as Error).message, /initializer failed.*could not be sent/);
    }
    pool.shutdown();
  });

  it('a failing initializer: the future fails with BrokenThreadPool (its cause the error), later submits throw it', () => {
    const pool = new ThreadPoolExecutor({
      maxWorkers: 2,
      initializer: () => {
        throw new Error('error in initializer');
      },
    });
    const f = pool.submit(() => 'never');
    const error = f.exception();
    assert.ok(error instanceof BrokenThreadPool);
    assert.ok(error instanceof BrokenExecutor);
    assert.match(error.message, /initializer failed/);
    assert.equal((error.cause as Error).message, 'error in initializer');
    assert.throws(() => f.result(), BrokenThreadPool);
    // From here on the pool is broken: submit raises (CPython: BrokenThreadPool).
    assert.throws(() => pool.submit(() => 1), BrokenThreadPool);
    assert.throws(() => pool.map((x: number) => x, [1]), BrokenThreadPool);
    assert.match(String(pool), /: broken,/);
    pool.shutdown();
  });

  it('every queued future fails with BrokenThreadPool; an async initializer that rejects breaks it too', async () => {
    // The initializer waits at a gate until all 20 tasks are queued (a submit after the break throws).
    const gate = new Event();
    const pool = new ThreadPoolExecutor({
      maxWorkers: 1,
      initializer: async (g: Event) => {
        g.wait(10_000);
        await new Promise((resolve) => setTimeout(resolve, 1));
        throw new TypeError('async init failure');
      },
      initargs: [gate],
    });
    const futures = Array.from({ length: 20 }, (_, i) => pool.submit((x: number) => x, i));
    gate.set();
    const outcomes = await Promise.allSettled(futures);
    for (const outcome of outcomes) {
      assert.equal(outcome.status, 'rejected');
      assert.ok((outcome as PromiseRejectedResult).reason instanceof BrokenThreadPool);
    }
    assert.equal(((outcomes[0] as PromiseRejectedResult).reason.cause as Error).message, 'async init failure');
    assert.throws(() => pool.submit(() => 1), BrokenThreadPool);
    pool.shutdown();
  });

  it('a submit that overlaps the pool breaking: its future still settles', async () => {
    const pool = new ThreadPoolExecutor({
      maxWorkers: 1,
      initializer: () => {
        throw new Error('init failed');
      },
    });
    // Another thread submits the pool's first task (its thread's initializer fails) exactly while
    // this thread's submit encodes its argument: a getter releases that thread, then waits for
    // the pool to break. (The getter itself must not encode anything: the encoder is in use.)
    // That thread then stays blocked, like any thread busy with other work: its event loop, which
    // would count the pool thread's end, does not run.
    const go = new Event();
    const release = new Event();
    const other = startThread(
      (p: ThreadPoolExecutor, g: Event, r: Event) => {
        g.wait();
        p.submit(() => 1);
        r.wait();
      },
      [pool, go, release],
    );
    const straddling = {} as { x: number };
    Object.defineProperty(straddling, 'x', {
      enumerable: true,
      get: () => {
        go.set();
        for (let i = 0; i < 10_000 && !String(pool).includes('broken'); i++) sleepSync(1);
        return 1;
      },
    });
    let late: Future<unknown>;
    try {
      late = pool.submit((a: { x: number }) => a.x, straddling);
    } catch (error) {
      release.set();
      other.join();
      assert.ok(error instanceof BrokenThreadPool); // refusing it is fine too
      return;
    }
    assert.match(String(pool), /: broken,/);
    try {
      // Bounded only so that the suite cannot hang: a broken pool fails it at once.
      assert.ok((await late.exceptionAsync({ timeout: 3_000 })) instanceof BrokenThreadPool);
    } finally {
      release.set();
      other.join();
      pool.shutdown({ wait: false, cancelFutures: true });
      late.cancel();
    }
  });
});

describe('pool threads whose isolate dies', () => {
  const reported: ExceptHookArgs[] = [];
  before(() => setExcepthook((args) => reported.push(args)));
  after(() => setExcepthook(undefined));

  it('a task that calls process.exit(): its future fails saying so; the pool replaces the thread; every other future settles', async () => {
    const prefix = uniquePrefix('exiting');
    const pool = new ThreadPoolExecutor({ maxWorkers: 2, threadNamePrefix: prefix });
    const futures = [
      pool.submit((x: number) => x, 1),
      pool.submit(() => {
        process.exit(3);
      }),
      ...[2, 3, 4, 5].map((i) => pool.submit(async (x: number) => x, i)),
    ];
    const outcomes = await Promise.allSettled(futures);
    const exited = outcomes[1] as PromiseRejectedResult;
    assert.equal(exited.status, 'rejected');
    assert.ok(exited.reason instanceof ThreadError);
    assert.match(exited.reason.message, /process\.exit\(3\) was called in a task/);
    assert.deepEqual(
      outcomes.filter((_, i) => i !== 1).map((o) => (o as PromiseFulfilledResult<unknown>).value),
      [1, 2, 3, 4, 5],
    );
    // The pool goes on with a new thread.
    assert.deepEqual(await Promise.all([6, 7, 8].map((i) => pool.submit((x: number) => x * 2, i))), [12, 14, 16]);
    assert.ok(poolThreadNames(prefix).length <= 2);
    pool.shutdown();
  });

  it('with one worker, the tasks queued behind a process.exit() task run on a new thread (awaited)', async () => {
    const pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    const exiting = pool.submit(() => process.exit(5));
    const behind = [pool.submit(() => 'b'), pool.submit(() => 'c')];
    await assert.rejects(async () => exiting, { name: 'ThreadError', message: /process\.exit\(5\)/ });
    assert.deepEqual(await Promise.all(behind), ['b', 'c']);
    pool.shutdown();
  });

  it('with one worker, a blocking result() of a task queued behind a process.exit() task does not hang', async () => {
    const pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    const exiting = pool.submit(() => process.exit(4));
    const behind = pool.submit(() => 'behind');
    assert.ok(exiting.exception() instanceof ThreadError);
    try {
      // Bounded only so that the suite cannot hang (a new isolate starts in ~100 ms).
      assert.equal(behind.result(10_000), 'behind');
    } finally {
      await behind; // the event loop starts the new thread
      pool.shutdown();
    }
  });

  it('a task that calls process.exit() while nobody holds its future leaves the heap sound', () => {
    const { status, stdout, stderr } = runFixture('exit-with-dropped-future.ts');
    assert.equal(status, 0, stderr.split('\n').slice(0, 8).join('\n'));
    assert.equal(stdout.trim(), 'ok');
  });

  it('an error thrown later by a task\'s timer ends its pool thread: the future running there settles, the pool goes on', async () => {
    const pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    const doomed = pool.submit(() => {
      setTimeout(() => {
        throw new Error('late boom');
      });
      return new Promise(() => {}); // never settles by itself
    });
    const error = await doomed.exceptionAsync();
    assert.ok(error instanceof ThreadError, String(error));
    assert.equal(await pool.submit(() => 'still working'), 'still working');
    pool.shutdown();
  });

  it('...and the future\'s error names the uncaught error that ended the thread', async () => {
    const pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    const doomed = pool.submit(() => {
      setTimeout(() => {
        throw new Error('late boom');
      });
      return new Promise(() => {});
    });
    try {
      assert.match(String(await doomed.exceptionAsync()), /late boom/);
    } finally {
      pool.shutdown();
    }
  });
});

describe('pools and other threads', () => {
  it('a task can create a pool of its own and submit to it', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    const f = pool.submit(async (x: number) => {
      const { ThreadPoolExecutor } = await import('threadkit');
      const inner = new ThreadPoolExecutor({ maxWorkers: 2 });
      try {
        const values = await Promise.all([inner.submit((y: number) => y * 2, x), inner.submit((y: number) => y + 1, x)]);
        return values;
      } finally {
        inner.shutdown();
      }
    }, 21);
    assert.deepEqual(f.result(), [42, 22]);
  });

  it('a task can submit to the pool that runs it (the executor is an argument)', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 2 });
    const f = pool.submit((p: ThreadPoolExecutor, x: number) => p.submit((y: number) => y * 10, x).result() + 1, pool, 4);
    assert.equal(f.result(), 41);
  });

  it('the executor passed to a thread is the same object there and back; the thread submits to it', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 2 });
    const t = startThread<{ back: ThreadPoolExecutor; future: Future<number>; value: number }>(
      (p: ThreadPoolExecutor) => {
        const future = p.submit((x: number) => x * 3, 5);
        return { back: p, future, value: future.result() };
      },
      [pool],
    );
    t.join();
    const { back, future, value } = t.result!;
    assert.ok(back === pool);
    assert.equal(value, 15);
    assert.ok(future instanceof Future);
    assert.equal(future.result(), 15);
    assert.equal(pool.submit((x: string) => x, 'from main').result(), 'from main');
  });

  it('four threads submit to one pool at once: every result is right', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 3 });
    const threads = [0, 1, 2, 3].map((k) =>
      startThread<number>(
        (p: ThreadPoolExecutor, base: number) => {
          const fs = Array.from({ length: 500 }, (_, i) => p.submit((x: number) => x * 2, base + i));
          return fs.reduce((sum, f) => sum + f.result(), 0);
        },
        [pool, k * 1000],
      ),
    );
    for (const t of threads) t.join();
    const expected = (k: number): number => Array.from({ length: 500 }, (_, i) => 2 * (k * 1000 + i)).reduce((a, b) => a + b, 0);
    assert.deepEqual(
      threads.map((t) => t.result),
      [0, 1, 2, 3].map(expected),
    );
  });

  it('shutdown({ wait: true }) waits for tasks running on pool threads that another thread started', () => {
    const pool = new ThreadPoolExecutor({ maxWorkers: 2 });
    const gate = new Event();
    const t = startThread<{ future: Future<string> }>(
      (p: ThreadPoolExecutor, g: Event) => ({
        future: p.submit((e: Event) => {
          e.wait();
          return 'done';
        }, g),
      }),
      [pool, gate],
    );
    t.join();
    const { future } = t.result!;
    const opener = setLater(gate, 100);
    pool.shutdown({ wait: true });
    const doneAtShutdown = future.done();
    opener.join();
    assert.equal(future.result(), 'done');
    assert.equal(doneAtShutdown, true, 'shutdown returned while the task was still running');
  });

  it('a pool created in a thread: main lists its threads, and main\'s shutdown({ wait: true }) joins them', () => {
    const prefix = uniquePrefix('made-in-thread');
    const maker = startThread<{ pool: ThreadPoolExecutor; values: number[] }>(
      async (pre: string, long: number) => {
        const { Barrier, ThreadPoolExecutor } = await import('threadkit');
        const pool = new ThreadPoolExecutor({ maxWorkers: 2, threadNamePrefix: pre });
        const barrier = new Barrier(2, { timeout: long });
        const futures = [0, 1].map((i) =>
          pool.submit(
            (b: { wait(): unknown }, x: number) => {
              b.wait();
              return x;
            },
            barrier,
            i,
          ),
        );
        return { pool, values: futures.map((f) => f.result()) };
      },
      [prefix, LONG],
    );
    maker.join();
    assert.ok(maker.result !== undefined, 'the thread returned its pool');
    const { pool, values } = maker.result;
    assert.deepEqual(values, [0, 1]);
    assert.match(String(pool), /: running, threads=2\/2, queued=0>$/);
    assert.deepEqual(poolThreadNames(prefix), [`${prefix}_0`, `${prefix}_1`]);
    // Runs until the pool is shut down: shutdown({ wait: true }) must wait for it.
    const watcher = pool.submit(untilShutDown, pool, LONG);
    pool.shutdown({ wait: true });
    assert.equal(watcher.done(), true, 'shutdown({ wait: true }) returned while a task was still running');
    assert.equal(watcher.result(0), 'saw the shutdown');
    assert.match(String(pool), /: shut down, threads=0\/2, queued=0>$/);
    assert.deepEqual(poolThreadNames(prefix), []);
  });

  it('threads submit while another thread shuts the pool down: each submit is refused with ThreadError or its future settles (5 rounds)', () => {
    for (let round = 0; round < 5; round++) {
      const pool = new ThreadPoolExecutor({ maxWorkers: 2 });
      const start = new Barrier(4, { timeout: LONG });
      const going = new Event();
      const submitters = [0, 1, 2].map(() =>
        startThread<{ futures: Future<number>[]; refusal: string }>(
          (p: ThreadPoolExecutor, b: Barrier, g: Event) => {
            const futures: Future<number>[] = [];
            b.wait();
            // Until refused: the closer shuts the pool down once any submitter has made 50
            // submits (or after LONG), however long it waits for the core.
            for (let i = 0; ; i++) {
              try {
                futures.push(p.submit((x: number) => x, i));
              } catch (error) {
                return { futures, refusal: `${(error as Error).name}: ${(error as Error).message}` };
              }
              if (i === 50) g.set(); // submits are under way: the closer may go
            }
          },
          [pool, start, going],
        ),
      );
      const closer = startThread(
        (p: ThreadPoolExecutor, b: Barrier, g: Event, long: number) => {
          b.wait();
          g.wait(long);
          p.shutdown();
        },
        [pool, start, going, LONG],
      );
      for (const t of [...submitters, closer]) t.join();
      const outcomes = submitters.map((t, i) => {
        assert.ok(t.result !== undefined, `round ${round}: submitter ${i} returned nothing`);
        return t.result;
      });
      assert.deepEqual(
        outcomes.map((o) => o.refusal),
        [0, 1, 2].map(() => 'ThreadError: cannot schedule new futures after shutdown'),
        `round ${round}`,
      );
      const futures = outcomes.flatMap((o) => o.futures);
      // Bounded only so that the suite cannot hang: every future here was accepted before the shutdown.
      const { notDone } = wait(futures, { timeout: LONG });
      assert.equal(notDone.size, 0, `round ${round}: ${notDone.size} of ${futures.length} accepted futures never settled`);
      for (const [k, o] of outcomes.entries()) {
        const wrong = o.futures.findIndex((f, i) => f.result(0) !== i);
        assert.equal(wrong, -1, `round ${round}: submitter ${k}, future ${wrong} has a wrong result`);
      }
      assert.match(String(pool), /: shut down, threads=\d+\/2, queued=0>$/, `round ${round}`);
    }
  });

  it('a submit whose argument is being encoded while another thread shuts the pool down: refused with ThreadError, or its future settles', () => {
    const prefix = uniquePrefix('straddled');
    const pool = new ThreadPoolExecutor({ maxWorkers: 1, threadNamePrefix: prefix });
    assert.equal(pool.submit((x: number) => x, 1).result(), 1); // a pool thread is up
    const go = new Event();
    const closed = new Event();
    // The closer shuts the pool down while this thread's submit is encoding its argument (the
    // getter lets it go and waits for it), and lets the submit go on only once the pool's
    // thread has ended: no thread is left to run a task queued after the shutdown.
    const closer = startThread(
      async (p: ThreadPoolExecutor, g: Event, c: Event, pre: string, long: number) => {
        const { enumerate } = await import('threadkit');
        g.wait(long);
        p.shutdown({ wait: true });
        const deadline = Date.now() + long;
        while (enumerate().some((t) => t.name.startsWith(`${pre}_`)) && Date.now() < deadline) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
        c.set();
      },
      [pool, go, closed, prefix, LONG],
    );
    const straddling = {} as { x: number };
    Object.defineProperty(straddling, 'x', {
      enumerable: true,
      get: () => {
        go.set();
        closed.wait(LONG);
        return 2;
      },
    });
    let late: Future<unknown> | undefined;
    try {
      late = pool.submit((a: { x: number }) => a.x, straddling);
    } catch (error) {
      assert.ok(error instanceof ThreadError && error.message === 'cannot schedule new futures after shutdown', `submit threw ${String(error)}`);
    } finally {
      closer.join();
    }
    assert.equal(closed.isSet(), true, 'the closer finished its shutdown');
    // Bounded only so that the suite cannot hang.
    if (late !== undefined) assert.equal(late.result(3_000), 2);
  });
});

describe('pool memory', () => {
  it('futures of finished tasks are freed while the pool lives (CPython test_no_stale_references)', async () => {
    const pool = new ThreadPoolExecutor({ maxWorkers: 2 });
    try {
      pool.submit((x: number) => x, 0).result(); // threads started, function registered
      await settle();
      const before = heapStats().usedBytes;
      const submitAll = (): void => {
        const futures = Array.from({ length: 20_000 }, (_, i) => pool.submit((x: number) => x, i));
        const { notDone } = wait(futures);
        assert.equal(notDone.size, 0);
      };
      submitAll();
      await settle();
      const grown = heapStats().usedBytes - before;
      assert.ok(grown < 16 * 1024, `the heap grew by ${grown} bytes for 20,000 finished tasks nobody holds`);
    } finally {
      pool.shutdown();
    }
  });

  it('the task queue gives back the memory of a burst once it empties', async () => {
    const pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    const gate = new Event();
    try {
      pool.submit((x: number) => x, 0).result(); // the thread started, the function registered
      await settle();
      const before = heapStats().usedBytes;
      const burst = (): void => {
        // The only thread waits at the gate while 20,000 tasks queue up behind it.
        const blocker = pool.submit((g: Event) => g.wait(), gate);
        const futures = Array.from({ length: 20_000 }, (_, i) => pool.submit((x: number) => x, i));
        assert.match(String(pool), /queued=2000[01]>$/, 'the burst is queued');
        gate.set();
        assert.equal(blocker.result(), true);
        assert.equal(wait(futures).notDone.size, 0);
      };
      burst();
      await settle();
      const grown = heapStats().usedBytes - before;
      assert.ok(grown < 16 * 1024, `the heap grew by ${grown} bytes after a burst of 20,000 queued tasks ran`);
    } finally {
      pool.shutdown();
    }
  });
});
