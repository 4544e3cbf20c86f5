/**
 * Faults on demand (threadkit/testing): a pool thread's isolate killed under its task, the heap
 * full at the moment a thread or a task finishes, isolates that fail to start, a Condition
 * waiter whose isolate exits, values that fail to decode where they are received. In every case every waiter settles and the heap stays usable.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  BrokenThreadPool,
  Condition,
  Event,
  Future,
  HeapExhaustedError,
  LifoQueue,
  Lock,
  PriorityQueue,
  Queue,
  SimpleQueue,
  Thread,
  ThreadError,
  ThreadPoolExecutor,
  asCompletedAsync,
  enumerate,
  stackSize,
  waitAsync,
} from 'threadkit';
import { collectingHook } from './helpers.js';
import { failNextAllocations, failNextDecodes, failNextIsolateStarts, killIsolate } from 'threadkit/testing';

let prefixes = 0;

/** A pool with one thread blocked in a task (until `gate` is set), and that thread's Thread object. */
function blockedPool(): { pool: ThreadPoolExecutor; gate: Event; blocked: Future<unknown>; thread: () => Thread } {
  const prefix = `faults-${process.pid}-${prefixes++}`;
  const pool = new ThreadPoolExecutor({ maxWorkers: 1, threadNamePrefix: prefix });
  const gate = new Event();
  const started = new Event();
  const blocked = pool.submit(
    (started: Event, gate: Event) => {
      started.set();
      gate.wait();
      return 'not killed';
    },
    started,
    gate,
  );
  started.wait();
  const thread = (): Thread => enumerate().find((t) => t.name === `${prefix}_0`)!;
  return { pool, gate, blocked, thread };
}

describe('a pool thread whose isolate dies under its task (as out of memory would)', () => {
  it('every way of waiting for the task settles with a ThreadError, and the pool goes on', async () => {
    await collectingHook(async () => {
      const { pool, blocked, thread } = blockedPool();
      // (Wrapped: a Future is a thenable, and resolving a Promise with one adopts its outcome.)
      const callback = new Promise<Future<unknown>[]>((resolve) => blocked.addDoneCallback((f) => resolve([f])));
      const awaited = Promise.resolve(blocked).then(
        () => 'fulfilled',
        (error: unknown) => error,
      );
      const waited = waitAsync([blocked]);
      const completed = (async () => {
        const out: Future<unknown>[] = [];
        for await (const f of asCompletedAsync([blocked])) out.push(f as Future<unknown>);
        return out;
      })();
      const resultAsync = blocked.resultAsync().then(
        () => 'fulfilled',
        (error: unknown) => error,
      );
      await killIsolate(thread());
      for (const error of [await awaited, await resultAsync]) {
        assert.ok(error instanceof ThreadError, `got ${String(error)}`);
        assert.match(error.message, /the pool thread running this task died before it finished/);
      }
      assert.deepEqual(await callback, [blocked]);
      assert.equal((await waited).done.size, 1);
      assert.deepEqual(await completed, [blocked]);
      assert.ok(blocked.exception() instanceof ThreadError);
      // The pool starts a replacement thread and runs the next task.
      assert.equal(pool.submit((x: number) => x * 2, 21).result(), 42);
      pool.shutdown();
    });
  });

  it('a blocking result() in the thread that started the pool settles too', async () => {
    await collectingHook(async () => {
      const { pool, blocked, thread } = blockedPool();
      const killed = killIsolate(thread());
      assert.throws(() => blocked.result(), (error: unknown) => error instanceof ThreadError && /died/.test(error.message));
      await killed;
      assert.equal(pool.submit((x: number) => x + 1, 1).result(), 2);
      pool.shutdown();
    });
  });
});

describe('the heap full at the moment a thread or a task finishes', () => {
  it('a thread still ends: join() returns, and the excepthook gets a HeapExhaustedError', async () => {
    const reports = await collectingHook(async (reports) => {
      const thread = new Thread({
        target: async () => {
          const { failNextAllocations } = await import('threadkit/testing');
          failNextAllocations(1_000); // more than ending could need
          return { result: 'x'.repeat(100) };
        },
      });
      thread.start();
      thread.join();
      failNextAllocations(0);
      assert.equal(thread.isAlive(), false);
      return reports;
    });
    assert.equal(reports.length, 1);
    assert.ok(reports[0]!.excValue instanceof HeapExhaustedError, `got ${String(reports[0]!.excValue)}`);
  });

  it('a task still settles its future, with a HeapExhaustedError, and the pool goes on', () => {
    const pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    try {
      const future = pool.submit(async () => {
        const { failNextAllocations } = await import('threadkit/testing');
        failNextAllocations(1_000);
        return { result: 'x'.repeat(100) };
      });
      const error = future.exception();
      failNextAllocations(0);
      assert.ok(error instanceof HeapExhaustedError, `got ${String(error)}`);
      assert.match(String(future), /raised HeapExhaustedError/);
      assert.equal(pool.submit((x: number) => x * 3, 3).result(), 9);
    } finally {
      failNextAllocations(0);
      pool.shutdown();
    }
  });
});

/**
 * Runs `body` with a stack size no warm isolate has, so that the threads it starts need new
 * isolates (an injected start fault applies to isolate starts, not to warm isolates reused).
 */
async function withFreshIsolates<T>(body: () => Promise<T> | T): Promise<T> {
  const previous = stackSize(4 * 1024 * 1024 + 4096 * ++stackSizes);
  try {
    return await body();
  } finally {
    stackSize(previous);
  }
}
let stackSizes = 0;

describe('isolates that fail to start', () => {
  it('a thread: join() returns and the excepthook names the cause', async () => {
    const reports = await collectingHook((reports) =>
      withFreshIsolates(() => {
        failNextIsolateStarts(1);
        const thread = new Thread({ name: 'unlucky', target: () => 1 });
        thread.start();
        thread.join();
        assert.equal(thread.isAlive(), false);
        return reports;
      }),
    );
    assert.equal(reports.length, 1);
    assert.match(String((reports[0]!.excValue as Error).message), /thread unlucky could not start: .*an injected fault/);
  });

  it('a pool whose threads keep failing breaks, failing every pending future with BrokenThreadPool', async () => {
    await collectingHook(() => withFreshIsolates(() => poolThatCannotStart()));
  });
});

/** Three isolate starts fail: the pool breaks, and every pending future fails with BrokenThreadPool. */
async function poolThatCannotStart(): Promise<void> {
  failNextIsolateStarts(3);
  const pool = new ThreadPoolExecutor({ maxWorkers: 1 });
  const futures = [1, 2, 3].map((x) => pool.submit((x: number) => x, x));
  const outcomes = await Promise.allSettled(futures);
  failNextIsolateStarts(0);
  for (const outcome of outcomes) {
    assert.equal(outcome.status, 'rejected');
    assert.ok((outcome as PromiseRejectedResult).reason instanceof BrokenThreadPool);
    assert.match(((outcome as PromiseRejectedResult).reason as Error).message, /could not start.*injected fault/);
  }
  assert.throws(() => pool.submit((x: number) => x, 4), BrokenThreadPool);
}

describe('a Condition waiter whose isolate exits while it waits', () => {
  it('swallows no notify, and nWaiting counts only live waiters', async () => {
    await collectingHook(async () => {
      const cond = new Condition();
      const inWait = new Event();
      const quitter = new Thread({
        args: [cond, inWait],
        target: async (cond: Condition, inWait: Event) => {
          cond.acquire();
          const waiting = cond.waitAsync();
          inWait.set();
          setTimeout(() => process.exit(0), 20); // ends the isolate while the wait is pending
          await waiting;
        },
      });
      quitter.start();
      inWait.wait();
      quitter.join();
      const woken = new Event();
      const live = new Thread({
        args: [cond, woken],
        target: (cond: Condition, woken: Event) => {
          cond.acquire();
          woken.set(); // (set before the wait: the notify below comes once we are in it)
          const notified = cond.wait(10_000);
          cond.release();
          return notified;
        },
      });
      live.start();
      woken.wait();
      cond.acquire();
      while (cond.nWaiting < 1) {
        cond.release();
        await new Promise((resolve) => setTimeout(resolve, 1));
        cond.acquire();
      }
      assert.equal(cond.nWaiting, 1, 'the waiter whose isolate ended is not counted');
      cond.notify(1);
      cond.release();
      live.join();
      assert.equal(live.result, true, 'the live waiter got the one notify');
    });
  });
});

describe('a value that fails to decode where it is received', () => {
  const kinds = [
    ['Queue', () => new Queue()],
    ['LifoQueue', () => new LifoQueue()],
    ['PriorityQueue', () => new PriorityQueue()],
    ['SimpleQueue', () => new SimpleQueue()],
  ] as const;
  // Small items travel inline in the queue's storage, large ones in a block of their own.
  const payloads = [
    ['small', 'x'],
    ['large', 'x'.repeat(5_000)],
  ] as const;

  for (const [kind, make] of kinds) {
    for (const [size, text] of payloads) {
      for (const how of ['get', 'getAsync'] as const) {
        it(`${kind}.${how} (${size} items): the item goes back into the queue and the get throws`, async () => {
          const q = make() as Queue<[number, { text: string; lock: Lock }]>;
          const locks = [new Lock(), new Lock(), new Lock()];
          const putter = new Thread({
            args: [q, locks, text],
            target: (q: Queue<[number, { text: string; lock: Lock }]>, locks: Lock[], text: string) => {
              for (let i = 0; i < locks.length; i++) q.put([i, { text, lock: locks[i]! }]);
            },
          });
          putter.start();
          putter.join();
          const unfinished = q instanceof Queue ? q.unfinishedTasks : 0;
          failNextDecodes(1);
          const get = (): Promise<[number, { text: string; lock: Lock }]> => (how === 'get' ? Promise.resolve().then(() => q.get()) : q.getAsync());
          await assert.rejects(get(), (error: Error) => {
            assert.ok(error instanceof TypeError, String(error));
            assert.match(error.message, new RegExp(`^${kind}\\.get: the item could not be decoded in this thread; it is back in the queue.*injected fault`));
            return true;
          });
          assert.equal(q.qsize(), 3, 'no item lost');
          if (q instanceof Queue) assert.equal(q.unfinishedTasks, unfinished, 'the item put back is not a new task');
          const got = [await get(), await get(), await get()].sort((a, b) => a[0] - b[0]);
          assert.deepEqual(got.map(([i, v]) => [i, v.text.length]), [[0, text.length], [1, text.length], [2, text.length]]);
          // The locks inside arrive as the same objects. The fault came part-way, after one
          // Lock was received: that Lock has as many references as the others (none leaked by
          // the put-back, none given up twice).
          got.forEach(([i, v]) => assert.equal(v.lock, locks[i]));
          const references = locks.map((lock) => lock._heap.refCount(lock._offset));
          assert.deepEqual(references, [references[0], references[0], references[0]]);
          assert.equal(q.qsize(), 0);
        });
      }
    }
  }

  it("a Future's result() fails once and the outcome is still there", async () => {
    const future = new Future<{ lock: Lock }>();
    const lock = new Lock();
    future.setResult({ lock });
    failNextDecodes(1);
    assert.throws(() => future.result(), /injected fault/);
    assert.equal(future.result().lock, lock);
    failNextDecodes(1);
    await assert.rejects(future.then((v) => v), /injected fault/);
    assert.equal((await future).lock, lock);
  });

  it("a thread whose result fails to decode at its end: join() returns and the excepthook says so", async () => {
    const reports = await collectingHook((reports) => {
      const thread = new Thread({ name: 'undecodable', target: () => ({ answer: 42 }) });
      failNextDecodes(1);
      thread.start();
      thread.join();
      failNextDecodes(0);
      assert.equal(thread.isAlive(), false);
      assert.equal(thread.result, undefined);
      return reports;
    });
    assert.equal(reports.length, 1);
    assert.ok(reports[0]!.excValue instanceof ThreadError);
    assert.match(String(reports[0]!.excValue), /the fields of thread undecodable could not be received in this thread: .*injected fault/);
  });
});
