/**
 * Stopping pool work (API.md, "Stopping work"): `future.cancel({ interrupt, killAfter })`,
 * `pool.submitWith({ timeout, signal, killAfter })`, `maxQueue` backpressure (`submit` blocks,
 * `submitAsync` waits), and `resourceLimits` for Thread and ThreadPoolExecutor.
 *
 * How a test knows where a task is: the task sets an Event when it starts, and, where it matters
 * that it is blocked (not merely about to block), the test polls dumpThreads() until the pool
 * thread shows the wait and its OS thread sleeps in the kernel. No fixed sleep synchronises
 * anything, and no assertion is about how long something took; every wait that must end is
 * bounded, so that a bug fails a test instead of hanging the suite.
 *
 * Task functions are module functions of fixtures/cancel-tasks.ts.
 */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setImmediate as tick, setTimeout as delay } from 'node:timers/promises';
import {
  CancelledError,
  Event,
  Future,
  Lock,
  type ModuleFunction,
  Queue,
  SharedValue,
  Thread,
  ThreadError,
  ThreadPoolExecutor,
  TimeoutError,
  configureThreads,
  enumerate,
  heapStats,
} from 'threadkit';
import { collectingHook } from './helpers.js';
import type { AsyncWait, Caught, Fresh } from './fixtures/cancel-tasks.js';
import { settle } from './fixtures/futures-helpers.js';
import { LONG, until, untilParked } from './helpers/waiting.js';

const FIXTURE = new URL('./fixtures/cancel-tasks.ts', import.meta.url).href;
/** How long a test waits for something that must happen (a timeout, a kill) before it fails: a bound, not a measurement. */
const BOUND = 5_000;

const task = (name: string): ModuleFunction<(...args: any[]) => any> => ({ module: FIXTURE, name });

const blockOnEvent = task('blockOnEvent');
const identity = task('identity');

let prefixes = 0;

/** A pool with a thread name prefix of its own, and a way to find its threads. */
function newPool(options: ConstructorParameters<typeof ThreadPoolExecutor>[0] = {}): { pool: ThreadPoolExecutor; prefix: string; thread: (i?: number) => Thread } {
  const prefix = `cancel-${process.pid}-${prefixes++}`;
  const pool = new ThreadPoolExecutor({ maxWorkers: 1, threadNamePrefix: prefix, ...options });
  const thread = (i = 0): Thread => {
    const found = enumerate().find((t) => t.name === `${prefix}_${i}`);
    assert.ok(found !== undefined, `pool thread ${prefix}_${i} is alive`);
    return found;
  };
  return { pool, prefix, thread };
}

/** The state a task finds at its start when nothing is left of an earlier task's interrupt. */
const FRESH: Fresh = { isInterrupted: false, signalAborted: false, timedWait: 'false', lock: 'false', sleep: 'undefined', interrupted: false };

/** The next tasks on the pool's (only) thread start clean: no flag, a fresh signal, waits not interrupted. */
async function assertNextTaskClean(pool: ThreadPoolExecutor): Promise<void> {
  assert.deepEqual(pool.submit(task('freshState')).result(LONG), FRESH, 'a sync task after it starts clean');
  assert.deepEqual(await pool.submit(task('freshStateAsync')).resultAsync({ timeout: LONG }), { signalAborted: false, sleepAsync: 'slept', signalAfter: false }, 'an async task after it starts clean');
}

/**
 * The heap's use once everything dropped is freed. Taken after a warm-up that did what the test
 * does, short of the kill (the first pool, thread, Promise wait of this process allocate blocks
 * that stay: the main thread's inbox, say), so that what a test leaves behind is exactly what it
 * leaked.
 */
async function heapBaseline(): Promise<{ usedBytes: number; liveBlocks: number }> {
  await warmUp();
  // (Measured here, not in warmUp: its objects are garbage only once it has returned.)
  await settle();
  const { usedBytes, liveBlocks } = heapStats();
  return { usedBytes, liveBlocks };
}

async function warmUp(): Promise<void> {
  const pool = new ThreadPoolExecutor({ maxWorkers: 1 });
  const started = new Event();
  const release = new Event();
  const t = new Thread<number>({ target: task('useShared'), args: [new Queue<number>(), new Lock(), release] });
  t.start();
  const f = pool.submit(task('spinUntilSet'), started, release);
  await until(started, 'the warm-up task started');
  release.set();
  assert.equal(await f.resultAsync({ timeout: LONG }), 'released');
  await t.joinAsync({ timeout: LONG });
  pool.shutdown();
}

/** Settles until the heap's live blocks are back to `baseline` (bounded), and checks that they are. */
async function assertBackTo(baseline: { usedBytes: number; liveBlocks: number }, what: string): Promise<void> {
  let now = heapStats();
  for (let round = 0; round < 20 && now.liveBlocks > baseline.liveBlocks; round++) {
    await settle();
    now = heapStats();
  }
  assert.ok(
    now.liveBlocks <= baseline.liveBlocks,
    `${what}: ${now.liveBlocks - baseline.liveBlocks} blocks (${now.usedBytes - baseline.usedBytes} bytes) more than before, never freed`,
  );
}

/** What `body` returns, or the class and message of what it throws. */
function attempt(body: () => unknown): unknown {
  try {
    return body();
  } catch (error) {
    return `${(error as Error).name}: ${(error as Error).message}`;
  }
}

/** Whether `p` is still pending after the event loop has turned `turns` times. */
async function pendingAfter(p: Promise<unknown>, turns: number): Promise<boolean> {
  let pending = true;
  p.then(
    () => (pending = false),
    () => (pending = false),
  );
  for (let i = 0; i < turns && pending; i++) await tick();
  return pending;
}

// First in the file, before any other test has started a thread: with keepIdleMs 0 no isolate is
// kept warm (none from an earlier test either), so the heap holds nothing of a thread once it has
// ended, and what a killed isolate held shows (as in pool-stress.test.ts).
describe('killAfter: what a killed isolate held is freed', () => {
  before(() => configureThreads({ keepIdleMs: 0 }));
  after(() => configureThreads({ keepIdleMs: 5_000 }));

  it('a CPU loop that never looks: its isolate is terminated, its future ends cancelled, the pool goes on; no excepthook report; the heap back to baseline', async () => {
    const baseline = await heapBaseline();
    const reports = await collectingHook(async (reports) => {
      await (async () => {
        const { pool, thread } = newPool();
        const started = new Event();
        const f = pool.submit(task('spinForever'), started);
        await until(started, 'the task started');
        const victim = thread();
        assert.equal(f.cancel({ interrupt: true, killAfter: 50 }), true);
        await assert.rejects(f.resultAsync({ timeout: LONG }), CancelledError);
        assert.equal(f.cancelled(), true);
        await victim.joinAsync({ timeout: LONG });
        assert.equal(victim.isAlive(), false, 'the killed thread ended');
        assert.equal(pool.submit(identity, 42).result(LONG), 42, 'the pool replaced the thread');
        await assertNextTaskClean(pool);
        pool.shutdown();
      })();
      return reports;
    });
    assert.deepEqual(
      reports.map((r) => `${r.thread?.name}: ${String(r.excValue)}`),
      [],
      'nothing reported for the killed thread',
    );
    await assertBackTo(baseline, 'the heap once the pool was shut down');
  });

  it('killed while it keeps taking internal locks (queue, allocator, futures): another thread goes on using the shared Queue and Lock; the heap back to baseline', async () => {
    const baseline = await heapBaseline();
    await collectingHook(async (reports) => {
      await (async () => {
        const q = new Queue<number>();
        const lock = new Lock();
        const rounds = new SharedValue('int32');
        const stop = new Event();
        const { pool } = newPool();
        // Another thread uses the queue and a lock all along, while the pool's task is killed again and again.
        const other = new Thread<number>({ target: task('useShared'), args: [q, lock, stop] });
        other.start();
        try {
          for (let i = 0; i < 6; i++) {
            const started = new Event();
            const f = pool.submit(task('hammerShared'), started, q, rounds);
            await until(started, 'the hammer started');
            // Killed once it is well into its loop (bounded: a hammer that stalls fails the test).
            const before = rounds.load();
            const deadline = performance.now() + LONG;
            while (rounds.load() < before + 100) {
              assert.ok(performance.now() < deadline, 'the hammer keeps going');
              await delay(1);
            }
            assert.equal(f.cancel({ interrupt: true, killAfter: i % 3 }), true);
            await assert.rejects(f.resultAsync({ timeout: LONG }), CancelledError);
          }
          stop.set();
          await other.joinAsync({ timeout: LONG });
          assert.equal(other.isAlive(), false);
          assert.ok((other.result ?? -1) > 0, `the other thread went on to the end (${other.result} rounds)`);
          // The queue and the lock work here too.
          q.put(-1);
          assert.equal(typeof q.get({ timeout: LONG }), 'number');
          assert.equal(lock.acquire({ timeout: LONG }), true);
          lock.release();
          assert.equal(pool.submit(identity, 'after').result(LONG), 'after');
        } finally {
          stop.set();
          pool.shutdown();
        }
        while (!q.empty()) q.getNowait();
      })();
      assert.deepEqual(reports, []);
    });
    await assertBackTo(baseline, 'the heap once the pool was shut down (what the killed isolates held: Events, Futures, queue items)');
  });
});

describe('future.cancel({ interrupt: true }) of a running task', () => {
  it('a task blocked in a wait: plain cancel() is false (CPython); with interrupt it is true, the wait throws, the future ends cancelled', async () => {
    const { pool, thread } = newPool();
    const started = new Event();
    const gate = new Event();
    try {
      const f = pool.submit(blockOnEvent, started, gate);
      await until(started, 'the task started');
      await untilParked(thread(), 'Event');
      assert.equal(f.running(), true);
      assert.equal(f.cancel(), false, 'plain cancel() of a running task');
      assert.equal(f.cancel({ interrupt: false }), false, 'cancel({ interrupt: false }) is plain cancel()');
      assert.equal(f.running(), true, 'still running');
      const callback = new Promise<boolean>((resolve) => f.addDoneCallback((done) => resolve(done.cancelled())));
      assert.equal(f.cancel({ interrupt: true }), true);
      assert.throws(() => f.result(LONG), CancelledError);
      assert.equal(f.cancelled(), true);
      assert.equal(f.done(), true);
      assert.throws(() => f.exception(), CancelledError);
      await assert.rejects(f.resultAsync(), CancelledError);
      assert.equal(await callback, true, 'done callbacks see it cancelled');
      assert.equal(f.cancel({ interrupt: true }), true, 'cancelling it again: true, as for any cancelled future');
      assert.equal(gate.isSet(), false);
      await assertNextTaskClean(pool);
    } finally {
      gate.set();
      pool.shutdown();
    }
  });

  it('the task catches the InterruptedError and returns a value: the future gets that value; its signal was aborted with an InterruptedError', async () => {
    const { pool, thread } = newPool();
    const started = new Event();
    const gate = new Event();
    try {
      const f = pool.submit(task('catchInterrupt'), started, gate);
      await until(started, 'the task started');
      await untilParked(thread(), 'Event');
      assert.equal(f.cancel({ interrupt: true }), true);
      const caught: Caught = f.result(LONG);
      assert.deepEqual(caught, { caught: 'InterruptedError', signalAborted: true, reason: 'InterruptedError', flagAfter: false });
      assert.equal(f.cancelled(), false, 'it finished with its own value');
      await assertNextTaskClean(pool);
    } finally {
      gate.set();
      pool.shutdown();
    }
  });

  for (const rethrow of [true, false]) {
    it(`a CPU loop sees interrupted() true; the task then ${rethrow ? 'throws InterruptedError: the future ends cancelled' : 'returns: the future gets its value'}`, async () => {
      const { pool } = newPool();
      const started = new Event();
      try {
        const f = pool.submit(task('spinUntilInterrupted'), started, rethrow);
        await until(started, 'the task started');
        assert.equal(f.cancel({ interrupt: true }), true);
        if (rethrow) {
          assert.throws(() => f.result(LONG), CancelledError);
          assert.equal(f.cancelled(), true);
        } else {
          assert.equal(f.result(LONG), 'interrupted() was true; flag after: false');
        }
        await assertNextTaskClean(pool);
      } finally {
        pool.shutdown();
      }
    });
  }

  it('a CPU loop that polls currentThread().signal sees it aborted, with an InterruptedError reason', async () => {
    const { pool } = newPool();
    const started = new Event();
    try {
      const f = pool.submit(task('spinUntilSignal'), started);
      await until(started, 'the task started');
      assert.equal(f.cancel({ interrupt: true }), true);
      assert.deepEqual(f.result(LONG), { aborted: true, reason: 'InterruptedError' });
      await assertNextTaskClean(pool);
    } finally {
      pool.shutdown();
    }
  });

  it('a task that never looks at its interrupt and returns: the future gets its value, and the next task on that thread starts with a clean flag and a fresh signal', async () => {
    const { pool } = newPool();
    const started = new Event();
    const release = new Event();
    try {
      const f = pool.submit(task('spinUntilSet'), started, release);
      await until(started, 'the task started');
      assert.equal(f.cancel({ interrupt: true }), true);
      release.set();
      assert.equal(f.result(LONG), 'released', 'it ended by returning, not by the interrupt');
      // The request was never taken: it must not reach the next task.
      await assertNextTaskClean(pool);
    } finally {
      release.set();
      pool.shutdown();
    }
  });

  it('a task that catches the interrupt and fails with an error of its own: the future gets that error (not cancelled)', async () => {
    const { pool, thread } = newPool();
    const started = new Event();
    const gate = new Event();
    try {
      const f = pool.submit(task('failOnInterrupt'), started, gate);
      await until(started, 'the task started');
      await untilParked(thread(), 'Event');
      assert.equal(f.cancel({ interrupt: true }), true);
      assert.throws(() => f.result(LONG), { name: 'RangeError', message: 'my own error after InterruptedError' });
      assert.equal(f.cancelled(), false);
      await assertNextTaskClean(pool);
    } finally {
      gate.set();
      pool.shutdown();
    }
  });

  it('of a queued task: cancelled like cancel(), it never runs', async () => {
    const { pool } = newPool();
    const started = new Event();
    const gate = new Event();
    const ran = new Event();
    const open = new Event();
    open.set();
    try {
      const blocker = pool.submit(blockOnEvent, started, gate);
      await until(started, 'the blocker started');
      const queued = pool.submit(blockOnEvent, ran, open);
      assert.equal(queued.running(), false);
      assert.equal(queued.cancel({ interrupt: true }), true);
      assert.equal(queued.cancelled(), true);
      gate.set();
      assert.equal(blocker.result(LONG), 'the gate opened', 'the running task was not touched');
      assert.equal(pool.submit(identity, 5).result(LONG), 5);
      assert.equal(ran.isSet(), false, 'the cancelled task never ran');
      assert.throws(() => queued.result(0), CancelledError);
    } finally {
      gate.set();
      pool.shutdown();
    }
  });

  it('of a done future: false; of a cancelled one: true', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    const f = pool.submit(identity, 1);
    assert.equal(f.result(LONG), 1);
    assert.equal(f.cancel({ interrupt: true }), false);
    assert.equal(f.cancel({ interrupt: true, killAfter: 0 }), false);
    assert.equal(f.result(), 1);
    const g = new Future();
    assert.equal(g.cancel(), true);
    assert.equal(g.cancel({ interrupt: true }), true);
  });

  it('of a future no pool thread runs (set running by hand, as a custom executor does): false, as cancel() (nothing to interrupt)', () => {
    const f = new Future<number>();
    assert.equal(f.setRunningOrNotifyCancel(), true);
    assert.equal(f.cancel({ interrupt: true }), false);
    assert.equal(f.running(), true);
    f.setResult(3);
    assert.equal(f.result(), 3);
  });

  for (const what of ['sleepAsync', 'acquireAsync', 'await future', 'signal'] as AsyncWait[]) {
    it(`an async task awaiting ${what === 'signal' ? 'its own signal' : what}: the await rejects with InterruptedError, the future ends cancelled`, async () => {
      const { pool, thread } = newPool();
      const started = new Event();
      const lock = new Lock();
      const other = new Future<string>();
      lock.acquire();
      try {
        const obj = what === 'acquireAsync' ? lock : what === 'await future' ? other : undefined;
        const f = pool.submit(task('awaitSomething'), what, started, obj);
        await until(started, 'the task started');
        await untilParked(thread(), undefined);
        assert.equal(f.cancel({ interrupt: true }), true);
        await assert.rejects(f.resultAsync({ timeout: LONG }), CancelledError);
        assert.equal(f.cancelled(), true);
        assert.equal(other.done(), false, 'the awaited future is untouched');
        await assertNextTaskClean(pool);
      } finally {
        lock.release();
        other.cancel();
        pool.shutdown();
      }
    });
  }

  it('bad options: TypeError or RangeError naming the option', () => {
    const f = new Future();
    assert.throws(() => f.cancel(null as never), TypeError);
    assert.throws(() => f.cancel('interrupt' as never), TypeError);
    assert.throws(() => f.cancel({ interrupt: 1 as never }), { name: 'TypeError', message: /interrupt/ });
    assert.throws(() => f.cancel({ interrupt: true, killAfter: -1 }), { name: 'RangeError', message: /killAfter/ });
    assert.throws(() => f.cancel({ interrupt: true, killAfter: 'soon' as never }), { name: 'TypeError', message: /killAfter/ });
    assert.throws(() => f.cancel({ interrupt: true, killAfter: NaN }), { name: 'TypeError', message: /killAfter/ });
    assert.throws(() => f.cancel({ interrupt: true, killAfter: Infinity }), { name: 'RangeError', message: /killAfter/ });
    assert.equal(f.cancelled(), false, 'a refused cancel changes nothing');
  });
});

describe('killAfter', () => {
  it('a task that ends by its interrupt before killAfter is not killed: its thread runs the next task', async () => {
    const { pool, prefix } = newPool();
    const started = new Event();
    const gate = new Event();
    try {
      const f = pool.submit(blockOnEvent, started, gate);
      await until(started, 'the task started');
      assert.equal(f.cancel({ interrupt: true, killAfter: 100 }), true);
      assert.throws(() => f.result(LONG), CancelledError);
      // The next task outlives the kill's deadline (its own timed wait) on the same thread.
      assert.deepEqual(pool.submit(task('timedWait'), 150).result(LONG), { waited: 'false', thread: `${prefix}_0` }, 'still the first thread: never killed');
      assert.deepEqual(pool.submit(task('timedWait'), 1).result(LONG), { waited: 'false', thread: `${prefix}_0` });
    } finally {
      gate.set();
      pool.shutdown();
    }
  });

});

describe('who keeps the clock of timeouts and kills', () => {
  // The thread that started a pool thread keeps its tasks' clock (task-stopper.ts): from its
  // event loop, or from inside whatever wait it is blocked in.
  it('the owner blocked in result() still keeps the clock: the kill happens, result() throws CancelledError', async () => {
    await collectingHook(async () => {
      const { pool } = newPool();
      const started = new Event();
      try {
        const f = pool.submit(task('spinForever'), started);
        await until(started, 'the task started');
        assert.equal(f.cancel({ interrupt: true, killAfter: 20 }), true);
        assert.throws(() => f.result(LONG), CancelledError);
        assert.equal(pool.submit(identity, 'next').result(LONG), 'next');
      } finally {
        pool.shutdown();
      }
    });
  });

  it('the owner busy (in no wait) when the task starts, then blocked in a wait that is not for a future (Queue.get): the timeout still interrupts the task (5 rounds)', () => {
    const { pool } = newPool();
    const gate = new Event();
    const seen = new Queue<string>();
    try {
      pool.submit(identity, 0).result(LONG); // (the pool thread started here: this thread owns it)
      for (let round = 0; round < 5; round++) {
        const started = new Event();
        const f = pool.submitWith({ timeout: 30 }, task('reportInterrupt'), started, gate, seen);
        // The deadline is announced while this thread is in no wait (it polls, as a CPU loop
        // would); then it blocks in a wait of its own.
        while (!started.isSet()) {
          // poll
        }
        assert.equal(
          attempt(() => seen.get({ timeout: BOUND })),
          'InterruptedError',
          `round ${round}: the task was interrupted while this thread was blocked in Queue.get`,
        );
        assert.ok(f.exception(LONG) instanceof TimeoutError);
      }
    } finally {
      gate.set();
      pool.shutdown();
    }
  });

  it('the owner blocked in pool.shutdown(): the timeout interrupts the task, and shutdown returns', async () => {
    const started = new Event();
    const gate = new Event();
    const seen = new Queue<string>();
    const owner = new Thread<string>({ target: task('timedTaskThenShutdown'), args: [started, gate, seen], daemon: true });
    try {
      owner.start();
      await owner.joinAsync({ timeout: BOUND });
      assert.equal(owner.isAlive(), false, 'pool.shutdown() returned in the owner');
      assert.equal(owner.result, 'TimeoutError');
      assert.equal(seen.getNowait(), 'InterruptedError');
    } finally {
      gate.set();
    }
  });

  it('the owner blocked in pool.shutdown() after cancel({ interrupt, killAfter }) of a CPU loop: the kill happens, and shutdown returns', async () => {
    await collectingHook(async (reports) => {
      const owner = new Thread<string>({ target: task('killThenShutdown'), args: [new Event()], daemon: true });
      owner.start();
      await owner.joinAsync({ timeout: BOUND });
      assert.equal(owner.isAlive(), false, 'pool.shutdown() returned in the owner');
      assert.equal(owner.result, 'cancelled');
      assert.deepEqual(reports, []);
    });
  });

  it('a pool thread started by a Thread that has ended: its tasks still time out, and killAfter still kills', async () => {
    const { pool } = newPool();
    const started = new Event();
    const gate = new Event();
    const seen = new Queue<string>();
    try {
      const starter = new Thread({ target: task('startPoolThread'), args: [pool] });
      starter.start();
      await starter.joinAsync({ timeout: LONG });
      assert.equal(starter.result, 'started');
      const f = pool.submitWith({ timeout: 30 }, task('reportInterrupt'), started, gate, seen);
      assert.equal(await seen.getAsync({ timeout: BOUND }).catch((error: unknown) => `no interrupt: ${String(error)}`), 'InterruptedError', 'the timeout interrupted the task');
      await assert.rejects(f.resultAsync({ timeout: BOUND }), TimeoutError);
      const spinning = new Event();
      const g = pool.submit(task('spinForever'), spinning);
      await until(spinning, 'the CPU loop started');
      assert.equal(g.cancel({ interrupt: true, killAfter: 20 }), true);
      await assert.rejects(g.resultAsync({ timeout: BOUND }), CancelledError, 'killed');
    } finally {
      gate.set();
      pool.shutdown({ wait: false });
    }
  });

});

describe('pool.submitWith', () => {
  it('timeout: a task blocked in a wait past it gets InterruptedError; its future fails with TimeoutError; the pool goes on', async () => {
    const { pool } = newPool();
    const started = new Event();
    const gate = new Event();
    const seen = new Queue<string>();
    try {
      const f = pool.submitWith({ timeout: 30 }, task('reportInterrupt'), started, gate, seen);
      // Blocked here: the owner keeps the clock from inside result().
      assert.throws(() => f.result(LONG), (error: unknown) => error instanceof TimeoutError && /timeout \(30 ms\)/.test(error.message));
      assert.equal(f.cancelled(), false);
      assert.ok(f.exception() instanceof TimeoutError);
      assert.equal(seen.get({ timeout: LONG }), 'InterruptedError', 'the task was interrupted');
      assert.equal(gate.isSet(), false);
      await assertNextTaskClean(pool);
    } finally {
      gate.set();
      pool.shutdown();
    }
  });

  it('timeout with killAfter: a CPU loop past it is killed; its future fails with TimeoutError; the pool goes on', async () => {
    await collectingHook(async (reports) => {
      const { pool } = newPool();
      try {
        const f = pool.submitWith({ timeout: 20, killAfter: 20 }, task('spinForever'), new Event());
        await assert.rejects(f.resultAsync({ timeout: LONG }), TimeoutError);
        assert.equal(pool.submit(identity, 'next').result(LONG), 'next');
      } finally {
        pool.shutdown();
      }
      assert.deepEqual(reports, []);
    });
  });

  it('the timeout counts from when the task starts, not while it is queued; a task that finishes in time gets its result', async () => {
    const { pool } = newPool();
    try {
      // The blocker runs 300 ms by its own timed wait while the timed task waits in the queue.
      const blocker = pool.submit(task('timedWait'), 300);
      const f = pool.submitWith({ timeout: 200 }, identity, 'in time');
      assert.equal(blocker.result(LONG).waited, 'false');
      assert.equal(f.result(LONG), 'in time');
      assert.equal(pool.submitWith({ timeout: 60_000 }, identity, 7).result(LONG), 7);
      assert.equal(pool.submitWith({ timeout: Infinity }, identity, 8).result(LONG), 8);
      assert.equal(pool.submitWith({}, identity, 9).result(LONG), 9);
    } finally {
      pool.shutdown();
    }
  });

  it('a task that finished in time leaves no deadline behind: the next task on the thread outlives it untouched', async () => {
    const { pool, prefix } = newPool();
    try {
      // (The function loaded first: loading it counts in the task's time.)
      assert.equal(pool.submit(identity, 0).result(LONG), 0);
      assert.equal(pool.submitWith({ timeout: 50, killAfter: 50 }, identity, 1).result(LONG), 1);
      // The next task's timed wait outlives the old deadline (and its kill).
      assert.deepEqual(pool.submit(task('timedWait'), 150).result(LONG), { waited: 'false', thread: `${prefix}_0` });
      assert.deepEqual(pool.submit(task('freshState')).result(LONG), FRESH);
    } finally {
      pool.shutdown();
    }
  });

  it('signal: aborting it cancels a queued task (it never runs)', async () => {
    const { pool } = newPool();
    const started = new Event();
    const gate = new Event();
    const ran = new Event();
    const open = new Event();
    open.set();
    try {
      const blocker = pool.submit(blockOnEvent, started, gate);
      await until(started, 'the blocker started');
      const ac = new AbortController();
      const f = pool.submitWith({ signal: ac.signal }, blockOnEvent, ran, open);
      assert.equal(f.done(), false);
      ac.abort();
      assert.equal(f.cancelled(), true);
      gate.set();
      assert.equal(blocker.result(LONG), 'the gate opened');
      assert.equal(pool.submit(identity, 1).result(LONG), 1);
      assert.equal(ran.isSet(), false, 'the cancelled task never ran');
    } finally {
      gate.set();
      pool.shutdown();
    }
  });

  it('signal: aborting it interrupts a running task; its future ends cancelled', async () => {
    const { pool, thread } = newPool();
    const started = new Event();
    const gate = new Event();
    try {
      const ac = new AbortController();
      const f = pool.submitWith({ signal: ac.signal }, blockOnEvent, started, gate);
      await until(started, 'the task started');
      await untilParked(thread(), 'Event');
      ac.abort();
      await assert.rejects(f.resultAsync({ timeout: LONG }), CancelledError);
      await assertNextTaskClean(pool);
    } finally {
      gate.set();
      pool.shutdown();
    }
  });

  it('signal with killAfter: a CPU loop is killed, its future ends cancelled', async () => {
    await collectingHook(async (reports) => {
      const { pool } = newPool();
      const started = new Event();
      try {
        const ac = new AbortController();
        const f = pool.submitWith({ signal: ac.signal, killAfter: 10 }, task('spinForever'), started);
        await until(started, 'the task started');
        ac.abort();
        await assert.rejects(f.resultAsync({ timeout: LONG }), CancelledError);
        assert.equal(pool.submit(identity, 2).result(LONG), 2);
      } finally {
        pool.shutdown();
      }
      assert.deepEqual(reports, []);
    });
  });

  it('an already-aborted signal: the future is cancelled already, the task never runs', () => {
    const { pool } = newPool();
    const ran = new Event();
    const open = new Event();
    open.set();
    try {
      const f = pool.submitWith({ signal: AbortSignal.abort() }, blockOnEvent, ran, open);
      assert.equal(f.cancelled(), true);
      assert.throws(() => f.result(0), CancelledError);
      assert.equal(pool.submit(identity, 3).result(LONG), 3);
      assert.equal(ran.isSet(), false);
    } finally {
      pool.shutdown();
    }
  });

  it('aborting the signal after the task finished changes nothing', () => {
    const { pool } = newPool();
    try {
      const ac = new AbortController();
      const f = pool.submitWith({ signal: ac.signal }, identity, 'kept');
      assert.equal(f.result(LONG), 'kept');
      ac.abort();
      assert.equal(f.cancelled(), false);
      assert.equal(f.result(), 'kept');
    } finally {
      pool.shutdown();
    }
  });

  it('bad options: TypeError or RangeError naming the option; nothing is queued', () => {
    const { pool } = newPool();
    try {
      assert.throws(() => pool.submitWith(null as never, identity, 1), TypeError);
      assert.throws(() => pool.submitWith(5 as never, identity, 1), TypeError);
      assert.throws(() => pool.submitWith({ timeout: -1 }, identity, 1), { name: 'RangeError', message: /timeout/ });
      assert.throws(() => pool.submitWith({ timeout: 'soon' as never }, identity, 1), { name: 'TypeError', message: /timeout/ });
      assert.throws(() => pool.submitWith({ timeout: NaN }, identity, 1), { name: 'TypeError', message: /timeout/ });
      assert.throws(() => pool.submitWith({ killAfter: -5 }, identity, 1), { name: 'RangeError', message: /killAfter/ });
      assert.throws(() => pool.submitWith({ killAfter: 2 ** 40 }, identity, 1), { name: 'RangeError', message: /killAfter/ });
      assert.throws(() => pool.submitWith({ signal: {} as never }, identity, 1), { name: 'TypeError', message: /signal/ });
      assert.throws(() => pool.submitWith({ timeot: 5 } as never, identity, 1), { name: 'TypeError', message: /timeot/ });
      assert.match(String(pool), /queued=0>$/);
      pool.shutdown();
      assert.throws(() => pool.submitWith({ timeout: 5 }, identity, 1), { name: 'ThreadError', message: /cannot schedule new futures after shutdown/ });
    } finally {
      pool.shutdown();
    }
  });
});

describe('maxQueue', () => {
  it('submit blocks (another thread) and submitAsync waits while maxQueue tasks are queued; a take lets them in', async () => {
    const { pool } = newPool({ maxWorkers: 1, maxQueue: 2 });
    const started = new Event();
    const gate = new Event();
    let submitter: Thread<string> | undefined;
    try {
      const blocker = pool.submit(blockOnEvent, started, gate);
      await until(started, 'the blocker started');
      const queued = [pool.submit(identity, 1), pool.submit(identity, 2)];
      assert.match(String(pool), /queued=2>$/);
      submitter = new Thread<string>({ target: task('submitOne'), args: [pool, identity, 3] });
      submitter.start();
      await untilParked(submitter, 'Queue.put');
      const later = pool.submitAsync(identity, 4);
      assert.equal(await pendingAfter(later, 20), true, 'submitAsync waits for room');
      assert.match(String(pool), /queued=2>$/, 'nothing more was queued');
      gate.set();
      assert.equal(blocker.result(LONG), 'the gate opened');
      assert.equal(await (await later).future, 4);
      await submitter.joinAsync({ timeout: LONG });
      assert.equal(submitter.result, 'submitted: 3');
      assert.deepEqual(
        queued.map((q) => q.result(LONG)),
        [1, 2],
      );
    } finally {
      gate.set();
      pool.shutdown();
      submitter?.join(LONG);
    }
  });

  it('submitAsync resolves with { future } (not with the task result), as soon as the task is queued', async () => {
    for (const options of [{}, { maxQueue: 1 }]) {
      const { pool } = newPool(options);
      const started = new Event();
      const gate = new Event();
      try {
        const submitted = pool.submitAsync(blockOnEvent, started, gate);
        await until(started, 'the task started');
        // Queued (running, even): the Promise is resolved without waiting for the task to end.
        assert.equal(await pendingAfter(submitted, 20), false, `submitAsync resolved once the task was queued (${JSON.stringify(options)})`);
        const f: unknown = (await submitted).future;
        assert.ok(f instanceof Future, `a Future, got ${typeof f}: ${String(f)}`);
        gate.set();
        assert.equal(await f, 'the gate opened');
      } finally {
        gate.set();
        pool.shutdown();
      }
    }
  });

  it('stress: many submitters (threads and submitAsync) through a small queue: every task runs exactly once', async () => {
    const { pool } = newPool({ maxWorkers: 2, maxQueue: 3 });
    const runs = new SharedValue('int32');
    const gate = new Event();
    try {
      // Both pool threads started here (their owner): hold them until the submitters are going.
      const holders = [new Event(), new Event()].map((s) => pool.submit(blockOnEvent, s, gate));
      const N = 150;
      const threads = [0, 1, 2, 3].map((k) => {
        const t = new Thread<number>({ target: task('submitMany'), args: [pool, task('counted'), k * 10_000, N, runs] });
        t.start();
        return t;
      });
      const asyncs = Array.from({ length: N }, (_, i) => pool.submitAsync(task('counted'), 100_000 + i, runs));
      gate.set();
      for (const h of holders) assert.equal(h.result(LONG), 'the gate opened');
      const results = await Promise.all(asyncs.map(async (p) => await (await p).future));
      const asyncSum = results.reduce((a, b) => a + b, 0);
      const sumOf = (base: number): number => N * base + (N * (N - 1)) / 2;
      assert.equal(asyncSum, sumOf(100_000));
      for (const [k, t] of threads.entries()) {
        await t.joinAsync({ timeout: LONG });
        assert.equal(t.isAlive(), false);
        assert.equal(t.result, sumOf(k * 10_000), `submitter ${k}: every result`);
      }
      assert.equal(runs.load(), 5 * N, 'each task ran once');
    } finally {
      gate.set();
      pool.shutdown();
    }
  });

  it('shutdown wakes blocked submitters: they get "cannot schedule new futures after shutdown"; what was queued still runs', async () => {
    const { pool } = newPool({ maxWorkers: 1, maxQueue: 1 });
    const started = new Event();
    const gate = new Event();
    const ran = new Event();
    const open = new Event();
    open.set();
    let submitter: Thread<string> | undefined;
    try {
      const blocker = pool.submit(blockOnEvent, started, gate);
      await until(started, 'the blocker started');
      const queued = pool.submit(identity, 'queued');
      submitter = new Thread<string>({ target: task('submitOne'), args: [pool, blockOnEvent, ran, open] });
      submitter.start();
      await untilParked(submitter, 'Queue.put');
      const later = pool.submitAsync(blockOnEvent, ran, open);
      assert.equal(await pendingAfter(later, 20), true);
      pool.shutdown({ wait: false });
      await submitter.joinAsync({ timeout: LONG });
      assert.match(submitter.result ?? '', /^ThreadError: cannot schedule new futures after shutdown/);
      await assert.rejects(later, { name: 'ThreadError', message: /cannot schedule new futures after shutdown/ });
      gate.set();
      assert.equal(blocker.result(LONG), 'the gate opened');
      assert.equal(queued.result(LONG), 'queued');
      pool.shutdown();
      assert.equal(ran.isSet(), false, 'the refused tasks never ran');
    } finally {
      gate.set();
      pool.shutdown();
      submitter?.join(LONG);
    }
  });

  it('a submitter blocked for room is interruptible: InterruptedError, and its task is not queued', async () => {
    const { pool } = newPool({ maxWorkers: 1, maxQueue: 1 });
    const started = new Event();
    const gate = new Event();
    const ran = new Event();
    const open = new Event();
    open.set();
    let submitter: Thread<string> | undefined;
    try {
      const blocker = pool.submit(blockOnEvent, started, gate);
      await until(started, 'the blocker started');
      const queued = pool.submit(identity, 'queued');
      submitter = new Thread<string>({ target: task('submitOne'), args: [pool, blockOnEvent, ran, open] });
      submitter.start();
      await untilParked(submitter, 'Queue.put');
      submitter.interrupt();
      await submitter.joinAsync({ timeout: LONG });
      assert.match(submitter.result ?? '', /^InterruptedError/);
      assert.match(String(pool), /queued=1>$/);
      gate.set();
      assert.equal(blocker.result(LONG), 'the gate opened');
      assert.equal(queued.result(LONG), 'queued');
      assert.equal(pool.submit(identity, 'after').result(LONG), 'after');
      assert.equal(ran.isSet(), false, 'the interrupted submit queued nothing');
    } finally {
      gate.set();
      pool.shutdown();
      submitter?.join(LONG);
    }
  });

  it('bad maxQueue: TypeError or RangeError naming it', () => {
    for (const bad of [0, -1, 2 ** 31]) assert.throws(() => new ThreadPoolExecutor({ maxQueue: bad }), { name: 'RangeError', message: /maxQueue/ });
    for (const bad of [1.5, '2', NaN, null]) assert.throws(() => new ThreadPoolExecutor({ maxQueue: bad as never }), { name: 'TypeError', message: /maxQueue/ });
  });
});

describe('resourceLimits', () => {
  it('a Thread over its memory limit dies: the excepthook gets a ThreadError saying it ran out of memory', async () => {
    const reports = await collectingHook(async (reports) => {
      const t = new Thread({ name: 'cancel-oom', target: task('allocateForever'), args: [undefined], resourceLimits: { maxOldGenerationSizeMb: 32 } });
      t.start();
      await t.joinAsync({ timeout: LONG });
      assert.equal(t.isAlive(), false, 'the thread ended');
      return reports;
    });
    assert.equal(reports.length, 1, 'one report');
    const [report] = reports;
    assert.ok(report!.excValue instanceof ThreadError, `a ThreadError: ${String(report!.excValue)}`);
    assert.match((report!.excValue as Error).message, /ran out of memory/);
    assert.equal(report!.thread?.name, 'cancel-oom');
  });

  it('a pool task over the limit: only its future fails (ThreadError about memory); the pool replaces the thread and runs the next task', async () => {
    await collectingHook(async () => {
      const { pool } = newPool({ maxWorkers: 1, resourceLimits: { maxOldGenerationSizeMb: 32 } });
      try {
        const started = new Event();
        const f = pool.submit(task('allocateForever'), started);
        const next = pool.submit(identity, 'next');
        await assert.rejects(f.resultAsync({ timeout: LONG }), (error: unknown) => error instanceof ThreadError && /memory/.test(error.message));
        assert.equal(started.isSet(), true);
        assert.equal(await next.resultAsync({ timeout: LONG }), 'next');
        assert.equal(pool.submit(identity, 'after').result(LONG), 'after');
      } finally {
        pool.shutdown();
      }
    });
  });

  it('bad resourceLimits: TypeError or RangeError naming the setting', () => {
    const make = [(limits: unknown) => new Thread({ target: () => 1, resourceLimits: limits as never }), (limits: unknown) => new ThreadPoolExecutor({ resourceLimits: limits as never })];
    for (const construct of make) {
      assert.throws(() => construct('32'), { name: 'TypeError', message: /resourceLimits/ });
      assert.throws(() => construct(null), { name: 'TypeError', message: /resourceLimits/ });
      assert.throws(() => construct({ maxOldGenMb: 32 }), { name: 'TypeError', message: /maxOldGenMb/ });
      assert.throws(() => construct({ maxOldGenerationSizeMb: -1 }), { name: 'RangeError', message: /maxOldGenerationSizeMb/ });
      assert.throws(() => construct({ maxOldGenerationSizeMb: 0 }), { name: 'RangeError', message: /maxOldGenerationSizeMb/ });
      assert.throws(
        () => construct({ stackSizeMb: 'big' }),
        (error: unknown) => (error instanceof TypeError || error instanceof RangeError) && /stackSizeMb/.test(error.message),
      );
    }
  });
});
