/**
 * Future: the state machine (PENDING → RUNNING → FINISHED, CANCELLED → CANCELLED_AND_NOTIFIED),
 * blocking and async waits, done callbacks, and a Future shared by reference between threads.
 * After CPython's Lib/test/test_concurrent_futures/test_future.py, in our own words.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import { inspect } from 'node:util';
import { CancelledError, Event, Future, InvalidStateError, Lock, Semaphore, ThreadError, TimeoutError, currentThread } from 'threadkit';
import { captureStderr, settle } from './fixtures/futures-helpers.js';
import { runThreads, since, sleepSync, startThread } from './helpers.js';

const ADDRESS = /^<Future at (0x[0-9a-f]+) /;

function addressOf(f: Future<unknown>): string {
  return ADDRESS.exec(String(f))?.[1] ?? '';
}

/** A future in each of CPython's five states. */
function futureIn(state: 'pending' | 'running' | 'cancelled' | 'cancelledAndNotified' | 'failed' | 'succeeded'): Future<number> {
  const f = new Future<number>();
  if (state === 'running') f.setRunningOrNotifyCancel();
  if (state === 'cancelled' || state === 'cancelledAndNotified') f.cancel();
  if (state === 'cancelledAndNotified') f.setRunningOrNotifyCancel();
  if (state === 'failed') f.setException(new RangeError('failed future'));
  if (state === 'succeeded') f.setResult(42);
  return f;
}

describe('Future states', () => {
  it('a new future is pending: not running, not done, not cancelled', () => {
    const f = new Future();
    assert.equal(f.running(), false);
    assert.equal(f.done(), false);
    assert.equal(f.cancelled(), false);
    assert.match(String(f), /^<Future at 0x[0-9a-f]+ state=pending>$/);
    assert.equal(inspect(f), String(f));
  });

  it('running(), done() and cancelled() in every state', () => {
    const table = {
      pending: [false, false, false],
      running: [true, false, false],
      cancelled: [false, true, true],
      cancelledAndNotified: [false, true, true],
      failed: [false, true, false],
      succeeded: [false, true, false],
    } as const;
    for (const [state, [running, done, cancelled]] of Object.entries(table)) {
      const f = futureIn(state as keyof typeof table);
      assert.deepEqual([f.running(), f.done(), f.cancelled()], [running, done, cancelled], state);
    }
  });

  it('toString names the state', () => {
    assert.match(String(futureIn('pending')), /^<Future at 0x[0-9a-f]+ state=pending>$/);
    assert.match(String(futureIn('running')), /^<Future at 0x[0-9a-f]+ state=running>$/);
    assert.match(String(futureIn('cancelled')), /^<Future at 0x[0-9a-f]+ state=cancelled>$/);
    assert.match(String(futureIn('cancelledAndNotified')), /^<Future at 0x[0-9a-f]+ state=cancelled>$/);
    assert.match(String(futureIn('failed')), /^<Future at 0x[0-9a-f]+ state=finished raised /);
    assert.match(String(futureIn('succeeded')), /^<Future at 0x[0-9a-f]+ state=finished returned /);
  });

  it('toString names the class of the result or error, as CPython does', () => {
    assert.match(String(futureIn('failed')), /^<Future at 0x[0-9a-f]+ state=finished raised RangeError>$/);
    assert.match(String(futureIn('succeeded')), /^<Future at 0x[0-9a-f]+ state=finished returned number>$/);
  });

  it('cancel(): true from PENDING and on an already cancelled future, false once running or finished', () => {
    const pending = futureIn('pending');
    assert.equal(pending.cancel(), true);
    assert.equal(pending.cancelled(), true);
    assert.equal(pending.cancel(), true, 'cancelling twice is fine');

    const notified = futureIn('cancelledAndNotified');
    assert.equal(notified.cancel(), true);
    assert.equal(notified.cancelled(), true);

    const running = futureIn('running');
    assert.equal(running.cancel(), false);
    assert.equal(running.running(), true, 'still running');

    for (const state of ['failed', 'succeeded'] as const) {
      const f = futureIn(state);
      assert.equal(f.cancel(), false, state);
      assert.equal(f.cancelled(), false, state);
    }
  });

  it('setRunningOrNotifyCancel(): PENDING → RUNNING (true), CANCELLED → CANCELLED_AND_NOTIFIED (false)', () => {
    const f = new Future<number>();
    assert.equal(f.setRunningOrNotifyCancel(), true);
    assert.equal(f.running(), true);
    f.setResult(1);
    assert.equal(f.result(), 1);

    const c = new Future();
    c.cancel();
    assert.equal(c.setRunningOrNotifyCancel(), false);
    assert.equal(c.cancelled(), true);
    assert.equal(c.running(), false);
    assert.throws(() => c.result(0), CancelledError);
  });

  it('setRunningOrNotifyCancel() in any other state is a ThreadError', () => {
    for (const state of ['running', 'cancelledAndNotified', 'failed', 'succeeded'] as const) {
      assert.throws(() => futureIn(state).setRunningOrNotifyCancel(), { name: 'ThreadError', message: /^Future in unexpected state/ }, state);
    }
    assert.ok(new ThreadError('x') instanceof Error);
  });

  it('setResult() finishes a pending or running future; result() returns it, exception() is undefined', () => {
    const f = new Future<{ n: number; list: number[] }>();
    f.setResult({ n: 1, list: [1, 2, 3] });
    assert.equal(f.done(), true);
    assert.deepEqual(f.result(), { n: 1, list: [1, 2, 3] });
    assert.deepEqual(f.result(0), { n: 1, list: [1, 2, 3] });
    assert.equal(f.exception(), undefined);
    assert.equal(f.exception(0), undefined);

    const running = futureIn('running');
    running.setResult(5);
    assert.equal(running.result(), 5);
  });

  it('setException(): result() throws the error, exception() returns it', () => {
    const f = new Future();
    const error = new RangeError('bad value', { cause: new Error('root') });
    f.setException(error);
    assert.equal(f.done(), true);
    assert.throws(() => f.result(), (e: unknown) => e instanceof RangeError && e.message === 'bad value' && (e.cause as Error).message === 'root');
    const got = f.exception() as RangeError;
    assert.ok(got instanceof RangeError);
    assert.equal(got.message, 'bad value');
  });

  it('setResult/setException on a finished or cancelled future: InvalidStateError, the outcome unchanged', () => {
    const f = futureIn('succeeded');
    assert.throws(() => f.setResult(2), (e: unknown) => e instanceof InvalidStateError && /^FINISHED: <Future at 0x[0-9a-f]+ state=finished /.test((e as Error).message));
    assert.throws(() => f.setException(new Error('late')), InvalidStateError);
    assert.equal(f.result(), 42);

    const failed = futureIn('failed');
    assert.throws(() => failed.setException(new Error('again')), InvalidStateError);
    assert.equal((failed.exception() as Error).message, 'failed future');

    for (const state of ['cancelled', 'cancelledAndNotified'] as const) {
      const c = futureIn(state);
      assert.throws(() => c.setResult(1), { name: 'InvalidStateError', message: /^CANCELLED: <Future at 0x[0-9a-f]+ state=cancelled>$/ }, state);
      assert.throws(() => c.setException(new Error('x')), InvalidStateError, state);
      assert.equal(c.cancelled(), true);
    }
  });

  it('a result that cannot cross threads: TypeError naming the path, the future stays pending', () => {
    const f = new Future<unknown>();
    assert.throws(() => f.setResult({ handler: () => 1 }), { name: 'TypeError', message: /result\.handler/ });
    assert.equal(f.done(), false);
    f.setResult('fine');
    assert.equal(f.result(), 'fine');
  });

  it('a shared object inside a result comes back as the same object', () => {
    const f = new Future<{ event: Event; locks: Lock[] }>();
    const event = new Event();
    const lock = new Lock();
    f.setResult({ event, locks: [lock] });
    const value = f.result();
    assert.ok(value.event === event);
    assert.ok(value.locks[0] === lock);
  });
});

describe('Future.result and exception with timeouts', () => {
  it('on a pending or running future: TimeoutError, and a timed wait never returns early', () => {
    for (const state of ['pending', 'running'] as const) {
      const f = futureIn(state);
      assert.throws(() => f.result(0), TimeoutError, state);
      assert.throws(() => f.exception(0), TimeoutError, state);
      assert.throws(() => f.result(-5), TimeoutError, 'a negative timeout counts as 0');
      const t0 = performance.now();
      assert.throws(() => f.result(40), TimeoutError);
      assert.ok(since(t0) >= 40, `result(40) returned after ${since(t0)} ms`);
      const t1 = performance.now();
      assert.throws(() => f.exception(40), TimeoutError);
      assert.ok(since(t1) >= 40, `exception(40) returned after ${since(t1)} ms`);
    }
  });

  it('on a cancelled future: CancelledError from result() and exception()', () => {
    for (const state of ['cancelled', 'cancelledAndNotified'] as const) {
      const f = futureIn(state);
      assert.throws(() => f.result(0), CancelledError, state);
      assert.throws(() => f.result(), CancelledError, state);
      assert.throws(() => f.exception(0), CancelledError, state);
    }
  });

  it('on a finished future: the outcome at once, whatever the timeout', () => {
    assert.equal(futureIn('succeeded').result(0), 42);
    assert.throws(() => futureIn('failed').result(0), { name: 'RangeError', message: 'failed future' });
    assert.ok(futureIn('failed').exception(0) instanceof RangeError);
  });

  it('rejects a bad timeout', () => {
    const f = new Future();
    assert.throws(() => f.result(Number.NaN), TypeError);
    assert.throws(() => f.exception('5' as never), TypeError);
  });
});

describe('Future across threads', () => {
  it('main creates it, a thread sets the result, main result() (blocked) returns it', () => {
    const f = new Future<{ from: string; at: number[] }>();
    const t = startThread(
      (fut: Future<{ from: string; at: number[] }>) => {
        // Give the main thread time to block in result() (the outcome does not depend on it).
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 30);
        fut.setResult({ from: 'thread', at: [1, 2] });
      },
      [f],
    );
    assert.deepEqual(f.result(), { from: 'thread', at: [1, 2] });
    t.join();
  });

  it('main creates it, a thread sets an exception; the error keeps its class, message and cause', async () => {
    const f = new Future();
    const t = startThread(
      async (fut: Future) => {
        const { InvalidStateError } = await import('threadkit');
        fut.setException(new InvalidStateError('from the thread', { cause: new TypeError('root cause') } as never));
      },
      [f],
    );
    t.join();
    assert.throws(() => f.result(), (e: unknown) => e instanceof InvalidStateError && e.message === 'from the thread' && (e.cause as Error) instanceof TypeError);
  });

  it('the reverse: a thread creates it and hands it over; main waits, the thread completes it', async () => {
    const box = new Future<Future<string>>();
    const go = new Event();
    const t = startThread(
      async (b: Future<Future<string>>, g: Event) => {
        const { Future } = await import('threadkit');
        const inner = new Future<string>();
        b.setResult(inner);
        g.wait();
        inner.setResult('completed by its creator');
      },
      [box, go],
    );
    const inner = box.result();
    assert.ok(inner instanceof Future);
    assert.equal(inner.done(), false);
    go.set();
    assert.equal(await inner, 'completed by its creator');
    assert.equal(inner.result(), 'completed by its creator');
    t.join();
  });

  it('a thread blocked in result() returns what main sets', () => {
    const f = new Future<number[]>();
    const waiting = new Event();
    const t = startThread<number>(
      (fut: Future<number[]>, w: Event) => {
        w.set();
        return fut.result().reduce((a, b) => a + b, 0);
      },
      [f, waiting],
    );
    waiting.wait();
    f.setResult([1, 2, 3, 4]);
    t.join();
    assert.equal(t.result, 10);
  });

  it('threads asleep in result() stay asleep through RUNNING and all wake at FINISHED, with async waiters of main', async () => {
    const f = new Future<number>();
    const ready = new Semaphore(0);
    const sleepers = [1, 2, 3].map((k) =>
      startThread<number>(
        (fut: Future<number>, r: Semaphore, n: number) => {
          r.release();
          return fut.result() * n;
        },
        [f, ready, k],
      ),
    );
    const awaited = f.resultAsync({ timeout: 60_000 }); // the async wait on the future's own word
    const called = new Promise<number>((resolve) => f.addDoneCallback((done) => resolve(done.result())));
    for (let i = 0; i < 3; i++) ready.acquire();
    sleepSync(20); // long past their spin: asleep
    assert.equal(f.setRunningOrNotifyCancel(), true);
    sleepSync(20);
    assert.ok(sleepers.every((t) => t.isAlive()), 'RUNNING woke nobody for good');
    f.setResult(7);
    for (const t of sleepers) t.join(10_000); // bounded: a lost wake-up fails instead of hanging
    assert.ok(sleepers.every((t) => !t.isAlive()), 'FINISHED woke every sleeper');
    assert.deepEqual(
      sleepers.map((t) => t.result),
      [7, 14, 21],
    );
    assert.equal(await awaited, 7);
    assert.equal(await called, 7);
  });

  it('a thread waiting on each of 2,000 futures completed at once by main never misses a completion', () => {
    const N = 2000;
    const futures = Array.from({ length: N }, () => new Future<number>());
    const waiter = startThread<number>(
      (fs: Future<number>[]) => {
        let sum = 0;
        // Bounded, so that a lost wake-up fails the test instead of hanging it.
        for (const fut of fs) sum += fut.result(10_000);
        return sum;
      },
      [futures],
    );
    for (const [i, f] of futures.entries()) {
      if (i % 2 === 0) f.setRunningOrNotifyCancel();
      f.setResult(i);
      // A random pause (~0–2 µs), so that completions land before, during and after its waits.
      for (let spin = 0, n = Math.random() * 2000; spin < n; spin++);
    }
    waiter.join();
    assert.equal(waiter.result, (N * (N - 1)) / 2);
  });

  it('cancel() in main wakes a thread blocked in result() with CancelledError', () => {
    const f = new Future();
    const waiting = new Event();
    const t = startThread<string>(
      (fut: Future, w: Event) => {
        w.set();
        try {
          fut.result();
          return 'returned';
        } catch (error) {
          return `${(error as Error).name} ${fut.cancelled()}`;
        }
      },
      [f, waiting],
    );
    waiting.wait();
    assert.equal(f.cancel(), true);
    t.join();
    assert.equal(t.result, 'CancelledError true');
  });

  it('a thread cancels it; main sees it cancelled', () => {
    const f = new Future();
    const [cancelled] = runThreads<boolean>((fut: Future) => fut.cancel(), [[f]]);
    assert.equal(cancelled, true);
    assert.equal(f.cancelled(), true);
    assert.throws(() => f.result(), CancelledError);
  });

  it('travels by reference: sent to a thread and back, it is the same object', () => {
    const f = new Future<number>();
    const [back] = runThreads<Future<number>[]>((fut: Future<number>) => {
      fut.setResult(3);
      return [fut]; // wrapped: a Future returned bare would be awaited (it is thenable)
    }, [[f]]);
    assert.ok(back![0] === f);
    assert.equal(f.result(), 3);
  });

  it('the state is shared: a thread sees RUNNING, then FINISHED', () => {
    const f = new Future<number>();
    f.setRunningOrNotifyCancel();
    const [seen] = runThreads<boolean[]>((fut: Future<number>) => [fut.running(), fut.done(), fut.cancel()], [[f]]);
    assert.deepEqual(seen, [true, false, false]);
    f.setResult(1);
    const [after] = runThreads<unknown[]>((fut: Future<number>) => [fut.running(), fut.done(), fut.result(0)], [[f]]);
    assert.deepEqual(after, [false, true, 1]);
  });

  it('setting it twice from two threads: exactly one wins, the other gets InvalidStateError', () => {
    for (let round = 0; round < 20; round++) {
      const f = new Future<number>();
      const outcomes = runThreads<string>(
        (fut: Future<number>, n: number) => {
          try {
            fut.setResult(n);
            return 'set';
          } catch (error) {
            return (error as Error).name;
          }
        },
        [[f, 1], [f, 2]],
      );
      assert.deepEqual([...outcomes].sort(), ['InvalidStateError', 'set']);
      assert.equal(f.result(), outcomes[0] === 'set' ? 1 : 2);
    }
  });
});

describe('Future async waits', () => {
  it('await gives the result without blocking the event loop', async () => {
    const f = new Future<number>();
    const go = new Event();
    const t = startThread(
      (fut: Future<number>, g: Event) => {
        g.wait();
        fut.setResult(7);
      },
      [f, go],
    );
    // Only the event loop can release the thread: a blocked loop would deadlock here.
    setTimeout(() => go.set(), 5);
    assert.equal(await f, 7);
    t.join();
  });

  it('await rejects with the error, or with CancelledError', async () => {
    const failed = new Future();
    setImmediate(() => failed.setException(new TypeError('nope')));
    await assert.rejects(async () => failed, { name: 'TypeError', message: 'nope' });

    const cancelled = new Future();
    setImmediate(() => cancelled.cancel());
    await assert.rejects(async () => cancelled, CancelledError);
  });

  it('then() chains like a promise', async () => {
    const f = new Future<number>();
    f.setResult(20);
    assert.equal(await f.then((v) => v + 1), 21);
    const g = new Future<number>();
    g.setException(new Error('x'));
    assert.equal(await g.then(() => 'ok', (e: unknown) => `caught ${(e as Error).message}`), 'caught x');
  });

  it('resultAsync({ timeout }) resolves when a thread completes it, else rejects with TimeoutError (never early)', async () => {
    const f = new Future<string>();
    const t0 = performance.now();
    await assert.rejects(f.resultAsync({ timeout: 40 }), TimeoutError);
    assert.ok(since(t0) >= 40, `rejected after ${since(t0)} ms`);

    const go = new Event();
    const t = startThread(
      (fut: Future<string>, g: Event) => {
        g.wait();
        fut.setResult('in time');
      },
      [f, go],
    );
    setTimeout(() => go.set(), 5);
    assert.equal(await f.resultAsync({ timeout: 60_000 }), 'in time');
    t.join();
  });

  it('resultAsync({ signal }) rejects with the abort reason; an aborted signal rejects at once', async () => {
    const f = new Future();
    const controller = new AbortController();
    const pending = f.resultAsync({ signal: controller.signal });
    setImmediate(() => controller.abort(new Error('stop waiting')));
    await assert.rejects(pending, /stop waiting/);
    assert.equal(f.done(), false, 'aborting the wait does not touch the future');
    await assert.rejects(f.resultAsync({ signal: AbortSignal.abort(new Error('already')) }), /already/);
    await assert.rejects(f.exceptionAsync({ signal: AbortSignal.abort(new Error('already')) }), /already/);
  });

  it('exceptionAsync: the error, undefined on success, CancelledError when cancelled, TimeoutError when late', async () => {
    const failed = new Future();
    setImmediate(() => failed.setException(new RangeError('r')));
    assert.ok((await failed.exceptionAsync()) instanceof RangeError);
    assert.equal(await futureIn('succeeded').exceptionAsync(), undefined);
    await assert.rejects(futureIn('cancelled').exceptionAsync(), CancelledError);
    await assert.rejects(new Future().exceptionAsync({ timeout: 10 }), TimeoutError);
    await assert.rejects(new Future().resultAsync(null as never), TypeError);
  });

  it('many awaits of futures completed by other threads all resolve', async () => {
    const futures = Array.from({ length: 200 }, () => new Future<number>());
    const t = startThread(
      (fs: Future<number>[]) => {
        for (let i = fs.length - 1; i >= 0; i--) fs[i]!.setResult(i);
      },
      [futures],
    );
    const values = await Promise.all(futures);
    assert.deepEqual(values, futures.map((_, i) => i));
    t.join();
  });

  it('a stale wake-up for a recycled future block does not end an await early', async (t) => {
    // A future awaited, cancelled, then notified (as a pool thread does) is announced twice to
    // this thread's inbox; the second announcement arrives when nobody waits. When the block is
    // reused for a new future, that stale announcement must not resolve an await of the new one.
    async function cancelWhileAwaited(): Promise<string> {
      const f = new Future();
      const awaited = f.resultAsync();
      f.cancel();
      await assert.rejects(awaited, CancelledError);
      f.setRunningOrNotifyCancel();
      return addressOf(f);
    }
    const address = await cancelWhileAwaited();
    await settle();
    const kept: Future<string>[] = [];
    let g = new Future<string>();
    while (addressOf(g) !== address && kept.length < 10_000) {
      kept.push(g);
      g = new Future<string>();
    }
    if (addressOf(g) !== address) return t.skip('the block was not reused');
    const later = (async () => {
      await tick();
      await tick();
      g.setResult('completed later');
    })();
    assert.equal(await g, 'completed later');
    await later;
  });
});

describe('Future.addDoneCallback', () => {
  it('runs on setResult, synchronously in the completing thread when it added it', () => {
    const f = new Future<number>();
    const seen: number[] = [];
    f.addDoneCallback((done) => seen.push(done.result()));
    assert.deepEqual(seen, []);
    f.setResult(5);
    assert.deepEqual(seen, [5]);
  });

  it('runs on setException and on cancel', () => {
    const failed = new Future();
    let error: unknown;
    failed.addDoneCallback((done) => (error = done.exception()));
    failed.setException(new Error('test'));
    assert.equal((error as Error).message, 'test');

    const cancelled = new Future();
    let wasCancelled: boolean | undefined;
    cancelled.addDoneCallback((done) => (wasCancelled = done.cancelled()));
    assert.equal(cancelled.cancel(), true);
    assert.equal(wasCancelled, true);
  });

  it('on a future already done: runs at once, synchronously', () => {
    const order: string[] = [];
    futureIn('succeeded').addDoneCallback((f) => order.push(`result ${f.result()}`));
    futureIn('failed').addDoneCallback((f) => order.push(`error ${(f.exception() as Error).message}`));
    futureIn('cancelled').addDoneCallback((f) => order.push(`cancelled ${f.cancelled()}`));
    futureIn('cancelledAndNotified').addDoneCallback((f) => order.push(`notified ${f.cancelled()}`));
    assert.deepEqual(order, ['result 42', 'error failed future', 'cancelled true', 'notified true']);
  });

  it('callbacks run once each, in the order they were added; the notify after cancel does not rerun them', () => {
    const f = new Future();
    const order: number[] = [];
    for (let i = 0; i < 5; i++) f.addDoneCallback(() => order.push(i));
    f.cancel();
    f.setRunningOrNotifyCancel();
    f.cancel();
    assert.deepEqual(order, [0, 1, 2, 3, 4]);
  });

  it('the callback gets the future itself', () => {
    const f = new Future<number>();
    let got: Future<number> | undefined;
    f.addDoneCallback((done) => (got = done));
    f.setResult(1);
    assert.ok(got === f);
  });

  it('a callback that throws is logged to stderr, not raised, and the others still run', () => {
    const f = new Future<number>();
    let after = false;
    f.addDoneCallback(() => {
      throw new Error('doh!');
    });
    f.addDoneCallback(() => (after = true));
    const stderr = captureStderr(() => f.setResult(5));
    assert.equal(after, true);
    assert.equal(f.result(), 5);
    assert.match(stderr, /exception calling callback for <Future at 0x[0-9a-f]+ state=finished/);
    assert.match(stderr, /doh!/);

    const already = captureStderr(() =>
      futureIn('succeeded').addDoneCallback(() => {
        throw new Error('raised at once');
      }),
    );
    assert.match(already, /exception calling callback for/);
    assert.match(already, /raised at once/);
  });

  it('rejects a callback that is not a function', () => {
    assert.throws(() => new Future().addDoneCallback('nope' as never), TypeError);
  });

  it('added in main, completed by a thread: runs later in main, from its event loop', async () => {
    const f = new Future<number>();
    const ran: string[] = [];
    const called = new Promise<void>((resolve) =>
      f.addDoneCallback((done) => {
        ran.push(`${currentThread().name}:${done.result()}`);
        resolve();
      }),
    );
    runThreads((fut: Future<number>) => fut.setResult(8), [[f]]);
    assert.deepEqual(ran, [], 'not run in the completing thread, and not before main yields');
    await called;
    assert.deepEqual(ran, ['MainThread:8']);
  });

  it('added in a thread, completed in main: runs in that thread', () => {
    const f = new Future<number>();
    const added = new Event();
    const t = startThread<[string, number]>(
      async (fut: Future<number>, a: Event) => {
        const { currentThread } = await import('threadkit');
        const ran = new Promise<[string, number]>((resolve) => fut.addDoneCallback((done) => resolve([currentThread().name, done.result()])));
        a.set();
        return ran;
      },
      [f, added],
    );
    added.wait();
    f.setResult(9);
    t.join();
    assert.deepEqual(t.result, [t.name, 9]);
  });

  it('a callback added while another thread completes the future still runs', async () => {
    const f = new Future<number>();
    const go = new Event();
    const completed = new Event();
    const t = startThread(
      (fut: Future<number>, g: Event, c: Event) => {
        g.wait();
        fut.setResult(1);
        c.set();
      },
      [f, go, completed],
    );
    // Make the race certain: once addDoneCallback has found the future pending, it files the
    // callback list in a Map; right then the other thread completes the future.
    const mapSet = Map.prototype.set;
    Map.prototype.set = function (this: Map<unknown, unknown>, key: unknown, value: unknown) {
      if ((value as { future?: unknown } | null | undefined)?.future === f) {
        go.set();
        completed.wait();
      }
      return mapSet.call(this, key, value);
    } as typeof mapSet;
    let ran = 0;
    try {
      f.addDoneCallback(() => ran++);
    } finally {
      Map.prototype.set = mapSet;
    }
    t.join();
    for (let i = 0; i < 20; i++) await tick(); // a callback of a future done elsewhere runs from the event loop
    assert.equal(go.isSet(), true, 'the window was reached');
    assert.equal(ran, 1);
  });

  it('added in a thread, cancelled by main: runs in that thread with cancelled() true', () => {
    const f = new Future();
    const added = new Event();
    const t = startThread<boolean>(
      (fut: Future, a: Event) => {
        const ran = new Promise<boolean>((resolve) => fut.addDoneCallback((done) => resolve(done.cancelled())));
        a.set();
        return ran;
      },
      [f, added],
    );
    added.wait();
    f.cancel();
    t.join();
    assert.equal(t.result, true);
  });
});
