/**
 * wait(), waitAsync(), asCompleted() and asCompletedAsync() over futures in every state, plain
 * futures completed by other threads, and pool futures. After CPython's
 * Lib/test/test_concurrent_futures/test_wait.py and test_as_completed.py, in our own words.
 *
 * A cancelled future counts as done (it is in `done`, and asCompleted yields it) whether or not
 * an executor has noticed the cancellation yet; it never counts as an exception.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ALL_COMPLETED,
  Event,
  FIRST_COMPLETED,
  FIRST_EXCEPTION,
  Future,
  ThreadError,
  ThreadPoolExecutor,
  TimeoutError,
  type ExceptHookArgs,
  asCompleted,
  asCompletedAsync,
  setExcepthook,
  wait,
  waitAsync,
} from 'threadkit';
import { since, startThread } from './helpers.js';

/** Waits in threads are bounded, so that a failing test cannot hang the suite. */
const LONG = 10_000;

type State = 'pending' | 'running' | 'cancelled' | 'cancelledAndNotified' | 'failed' | 'succeeded';

function futureIn(state: State): Future<number> {
  const f = new Future<number>();
  if (state === 'running') f.setRunningOrNotifyCancel();
  if (state === 'cancelled' || state === 'cancelledAndNotified') f.cancel();
  if (state === 'cancelledAndNotified') f.setRunningOrNotifyCancel();
  if (state === 'failed') f.setException(new RangeError('failed future'));
  if (state === 'succeeded') f.setResult(42);
  return f;
}

/** 0 … n-1 in a random order that is the same on every run (xorshift32 from `seed`). */
function shuffled(n: number, seed: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  let x = seed;
  for (let i = n - 1; i > 0; i--) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const j = (x >>> 0) % (i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

/** Timers holding this thread's event loop (a pending Promise wait holds one: futex.ts). */
function timersHeld(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

/** Waits (at most LONG ms, turn by turn of the event loop) until no more timers than `count` hold the loop. */
async function untilTimersHeld(count: number): Promise<void> {
  const t0 = performance.now();
  while (timersHeld() > count && since(t0) < LONG) await new Promise((resolve) => setTimeout(resolve, 1));
  assert.equal(timersHeld(), count, 'something still holds the event loop');
}

/** Set equality by identity (never deepEqual on shared objects). */
function sameSet(actual: Set<Future<unknown>>, expected: Future<unknown>[], what: string): void {
  assert.equal(actual.size, expected.length, `${what}: ${actual.size} futures, expected ${expected.length}`);
  for (const f of expected) assert.ok(actual.has(f), `${what} lacks ${String(f)}`);
}

/** A task that waits for `gate`, then returns `value`. */
const gated = (gate: Event, value: unknown): unknown => {
  gate.wait();
  return value;
};

describe('wait', () => {
  it('ALL_COMPLETED (the default): every kind of done future counts, pool futures included', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 2 });
    const f1 = pool.submit((a: number, b: number) => {
      if (b === 0) throw new RangeError('division by zero');
      return a / b;
    }, 2, 0);
    const f2 = pool.submit((a: number, b: number) => a * b, 2, 21);
    const all = [futureIn('succeeded'), futureIn('cancelledAndNotified'), futureIn('cancelled'), futureIn('failed'), f1, f2];
    const { done, notDone } = wait(all, { returnWhen: ALL_COMPLETED });
    sameSet(done, all, 'done');
    assert.equal(notDone.size, 0);
    const byDefault = wait(all);
    sameSet(byDefault.done, all, 'done (default returnWhen)');
  });

  it('the same future twice counts once (CPython issue 20369)', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    const f = pool.submit((a: number, b: number) => a * b, 1, 2);
    const { done, notDone } = wait([f, f], { returnWhen: ALL_COMPLETED });
    sameSet(done, [f], 'done');
    assert.equal(notDone.size, 0);
  });

  it('FIRST_COMPLETED: returns once one future is done', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 2 });
    const gate = new Event();
    const fast = pool.submit((a: number, b: number) => a * b, 21, 2);
    const blocked = pool.submit(gated, gate, 'late');
    const pending = new Future();
    const { done, notDone } = wait([pending, fast, blocked], { returnWhen: FIRST_COMPLETED });
    sameSet(done, [fast], 'done');
    sameSet(notDone, [pending, blocked], 'notDone');
    gate.set();
    assert.equal(blocked.result(), 'late');
  });

  it('FIRST_COMPLETED with some already done: returns those at once', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    const gate = new Event();
    const blocked = pool.submit(gated, gate, 1);
    const notified = futureIn('cancelledAndNotified');
    const succeeded = futureIn('succeeded');
    const { done, notDone } = wait([notified, succeeded, blocked], { returnWhen: FIRST_COMPLETED });
    sameSet(done, [notified, succeeded], 'done');
    sameSet(notDone, [blocked], 'notDone');
    gate.set();
    blocked.result();
  });

  it('a cancelled future counts as done: FIRST_COMPLETED returns with it at once', () => {
    const cancelled = futureIn('cancelled');
    const pending = new Future();
    const { done, notDone } = wait([cancelled, pending], { returnWhen: FIRST_COMPLETED });
    sameSet(done, [cancelled], 'done');
    sameSet(notDone, [pending], 'notDone');
  });

  it('FIRST_COMPLETED wakes when another thread cancels a future', () => {
    const a = new Future();
    const b = new Future();
    const go = new Event();
    const t = startThread(
      (f: Future, g: Event) => {
        g.wait();
        f.cancel();
      },
      [b, go],
    );
    go.set();
    const { done, notDone } = wait([a, b], { returnWhen: FIRST_COMPLETED });
    sameSet(done, [b], 'done');
    sameSet(notDone, [a], 'notDone');
    t.join();
  });

  it('FIRST_EXCEPTION: returns when a future fails, not before', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 3 });
    const fails = new Event();
    const gate = new Event();
    const f1 = pool.submit((a: number, b: number) => a * b, 2, 21);
    const f2 = pool.submit((e: Event) => {
      e.wait();
      throw new Error('this is an exception');
    }, fails);
    const f3 = pool.submit(gated, gate, 3);
    // f2 fails only after f1 is done.
    const t = startThread(
      (first: Future<number>, e: Event) => {
        first.result();
        e.set();
      },
      [f1, fails],
    );
    const { done, notDone } = wait([f1, f2, f3], { returnWhen: FIRST_EXCEPTION });
    sameSet(done, [f1, f2], 'done');
    sameSet(notDone, [f3], 'notDone');
    t.join();
    gate.set();
    assert.equal(f3.result(), 3);
  });

  it('FIRST_EXCEPTION with some already complete: cancelled futures are done, but not exceptions', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 2 });
    const gate = new Event();
    const divides = pool.submit((a: number, b: number) => {
      if (b === 0) throw new RangeError('division by zero');
      return a / b;
    }, 21, 0);
    const blocked = pool.submit(gated, gate, 'late');
    const succeeded = futureIn('succeeded');
    const cancelled = futureIn('cancelled');
    const notified = futureIn('cancelledAndNotified');
    const { done, notDone } = wait([succeeded, cancelled, notified, divides, blocked], { returnWhen: FIRST_EXCEPTION });
    sameSet(done, [succeeded, cancelled, notified, divides], 'done');
    sameSet(notDone, [blocked], 'notDone');
    gate.set();
    blocked.result();
  });

  it('FIRST_EXCEPTION with one already failed: returns at once', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    const gate = new Event();
    const blocked = pool.submit(gated, gate, 1);
    const failed = futureIn('failed');
    const { done, notDone } = wait([failed, blocked], { returnWhen: FIRST_EXCEPTION });
    sameSet(done, [failed], 'done');
    sameSet(notDone, [blocked], 'notDone');
    gate.set();
    blocked.result();
  });

  it('FIRST_EXCEPTION: a future that failed with `throw undefined` counts as failed (its exception is undefined)', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    const release = new Event();
    // `later` completes only once released (or after LONG ms): a wait that does not count the
    // failure as one waits for it.
    const later = new Future<number>();
    const completer = startThread(
      (f: Future<number>, r: Event, long: number) => {
        r.wait(long);
        f.setResult(1);
      },
      [later, release, LONG],
    );
    try {
      const thrown = pool.submit(() => {
        throw undefined;
      });
      const first = wait([thrown, later], { returnWhen: FIRST_EXCEPTION });
      sameSet(first.done, [thrown], 'done (a task that threw undefined)');
      sameSet(first.notDone, [later], 'notDone (a task that threw undefined)');
      assert.equal(thrown.exception(0), undefined);
      assert.throws(
        () => thrown.result(0),
        (e: unknown) => e === undefined,
      );

      const set = new Future<number>();
      set.setException(undefined);
      const second = wait([later, set], { returnWhen: FIRST_EXCEPTION });
      sameSet(second.done, [set], 'done (setException(undefined))');
      sameSet(second.notDone, [later], 'notDone (setException(undefined))');
    } finally {
      release.set();
      completer.join();
    }
  });

  it('FIRST_EXCEPTION with no failure waits for every future', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 2 });
    const gate = new Event();
    const slow = pool.submit(gated, gate, 'slow');
    const cancelled = futureIn('cancelled');
    const succeeded = futureIn('succeeded');
    const t = startThread(
      (g: Event) => {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
        g.set();
      },
      [gate],
    );
    const { done, notDone } = wait([cancelled, succeeded, slow], { returnWhen: FIRST_EXCEPTION });
    sameSet(done, [cancelled, succeeded, slow], 'done');
    assert.equal(notDone.size, 0);
    t.join();
  });

  it('timeout: returns after `timeout` ms (never early) with the unfinished futures in notDone', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    const gate = new Event();
    const blocked = pool.submit(gated, gate, 'x');
    const finished = [futureIn('cancelledAndNotified'), futureIn('failed'), futureIn('succeeded')];
    const t0 = performance.now();
    const { done, notDone } = wait([...finished, blocked], { timeout: 50, returnWhen: ALL_COMPLETED });
    assert.ok(since(t0) >= 50, `returned after ${since(t0)} ms`);
    sameSet(done, finished, 'done');
    sameSet(notDone, [blocked], 'notDone');

    const now = wait([...finished, blocked], { timeout: 0 });
    sameSet(now.notDone, [blocked], 'notDone with timeout 0');
    const negative = wait([blocked], { timeout: -1, returnWhen: FIRST_COMPLETED });
    sameSet(negative.notDone, [blocked], 'a negative timeout counts as 0');
    gate.set();
    blocked.result();
  });

  it('wakes when another thread completes a plain future', () => {
    const futures = [new Future<number>(), new Future<number>()];
    const t = startThread(
      (fs: Future<number>[]) => {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
        fs[1]!.setResult(1);
        fs[0]!.setException(new Error('second'));
      },
      [futures],
    );
    const { done } = wait(futures);
    sameSet(done, futures, 'done');
    t.join();
  });

  it('100 futures released at once all count (CPython test_pending_calls_race)', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 4 });
    const event = new Event();
    const futures = Array.from({ length: 100 }, () => pool.submit((e: Event) => e.wait(), event));
    event.set();
    const { done, notDone } = wait(futures, { returnWhen: ALL_COMPLETED });
    assert.equal(done.size, 100);
    assert.equal(notDone.size, 0);
  });

  it('with one worker, a blocking wait() and asCompleted() over a task that ends its pool thread (process.exit) and one queued behind it: both settle', async () => {
    const reports: ExceptHookArgs[] = [];
    // The pool threads' deaths are reported from the event loop: collect them here.
    const reported = new Promise<void>((resolve) =>
      setExcepthook((args) => {
        reports.push(args);
        if (reports.length === 2) resolve();
      }),
    );
    const pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    try {
      const exiting = pool.submit(() => process.exit(6));
      const behind = pool.submit(() => 'behind');
      // Bounded only so that the suite cannot hang; nothing here waits on this thread's event loop.
      const { notDone } = wait([exiting, behind], { timeout: LONG });
      assert.equal(notDone.size, 0, `${[...notDone].map(String).join(', ')} never settled`);
      assert.ok(exiting.exception(0) instanceof ThreadError, String(exiting.exception(0)));
      assert.match(String(exiting.exception(0)), /process\.exit\(6\)/);
      assert.equal(behind.result(0), 'behind');

      const exiting2 = pool.submit(() => process.exit(7));
      const behind2 = pool.submit(() => 'behind 2');
      const yielded = [...asCompleted([exiting2, behind2], LONG)];
      assert.equal(yielded.length, 2);
      assert.match(String(exiting2.exception(0)), /process\.exit\(7\)/);
      assert.equal(behind2.result(0), 'behind 2');
    } finally {
      pool.shutdown();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([reported, new Promise((resolve) => (timer = setTimeout(resolve, LONG)))]);
      clearTimeout(timer);
      setExcepthook(undefined);
    }
  });

  it('takes any iterable; no futures returns two empty sets at once', () => {
    const a = futureIn('succeeded');
    const b = futureIn('failed');
    function* both(): Generator<Future<number>> {
      yield a;
      yield b;
    }
    sameSet(wait(new Set([a, b])).done, [a, b], 'from a Set');
    sameSet(wait(both()).done, [a, b], 'from a generator');
    const empty = wait([], { returnWhen: FIRST_COMPLETED });
    assert.equal(empty.done.size + empty.notDone.size, 0);
  });

  it('rejects what is not an iterable of futures, and a bad returnWhen', () => {
    assert.throws(() => wait(5 as never), TypeError);
    assert.throws(() => wait([Promise.resolve(1)] as never), TypeError);
    assert.throws(() => wait([futureIn('succeeded')], { returnWhen: 'FIRST_DONE' as never }), RangeError);
    assert.throws(() => wait([futureIn('pending')], { timeout: Number.NaN }), TypeError);
  });
});

describe('waitAsync', () => {
  it('resolves with the same split, without blocking the event loop', async () => {
    const a = new Future<number>();
    const b = new Future<number>();
    // Only the event loop completes b.
    setTimeout(() => b.setResult(2), 5);
    const { done, notDone } = await waitAsync([a, b], { returnWhen: FIRST_COMPLETED });
    sameSet(done, [b], 'done');
    sameSet(notDone, [a], 'notDone');
    const t0 = performance.now();
    const timed = await waitAsync([a, b], { timeout: 30 });
    assert.ok(since(t0) >= 30);
    sameSet(timed.notDone, [a], 'notDone after the timeout');
  });

  it('an abort signal rejects it with the reason', async () => {
    const controller = new AbortController();
    const pending = waitAsync([new Future()], { signal: controller.signal });
    setImmediate(() => controller.abort(new Error('no longer needed')));
    await assert.rejects(pending, /no longer needed/);
  });
});

describe('asCompleted', () => {
  it('yields the finished futures first, then each future as it completes', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 2 });
    const gateA = new Event();
    const gateB = new Event();
    const a = pool.submit(gated, gateA, 'a');
    const b = pool.submit(gated, gateB, 'b');
    const finished = [futureIn('cancelledAndNotified'), futureIn('failed'), futureIn('succeeded')];
    const it = asCompleted([a, ...finished, b]);
    const first = [0, 1, 2].map(() => it.next().value as Future<unknown>);
    sameSet(new Set(first), finished, 'the finished ones first');
    gateB.set();
    assert.ok(it.next().value === b);
    gateA.set();
    assert.ok(it.next().value === a);
    assert.equal(it.next().done, true);
  });

  it('yields every future exactly once', () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 2 });
    const futures = [...Array.from({ length: 20 }, (_, i) => pool.submit((x: number) => x, i)), futureIn('cancelled'), futureIn('succeeded'), futureIn('failed')];
    const seen = [...asCompleted(futures)];
    assert.equal(seen.length, futures.length);
    sameSet(new Set(seen), futures, 'yielded');
  });

  it('a duplicated future is yielded once (CPython issue 20367)', () => {
    const f = new Future<number>();
    const t = startThread((fut: Future<number>) => fut.setResult(1), [f]);
    assert.equal([...asCompleted([f, f, f])].length, 1);
    t.join();
  });

  it('timeout: the finished futures, then TimeoutError "N (of M) futures unfinished"', () => {
    const finished = [futureIn('cancelledAndNotified'), futureIn('succeeded')];
    const futures = [finished[0]!, futureIn('pending'), futureIn('running'), finished[1]!];
    const yielded: Future<number>[] = [];
    assert.throws(
      () => {
        for (const f of asCompleted(futures, 0)) yielded.push(f);
      },
      (e: unknown) => e instanceof TimeoutError && (e as Error).message === '2 (of 4) futures unfinished',
    );
    sameSet(new Set(yielded), finished, 'yielded before the timeout');

    const t0 = performance.now();
    const it = asCompleted([futureIn('succeeded'), new Future()], 40);
    assert.equal(it.next().done, false);
    assert.throws(() => it.next(), { name: 'TimeoutError', message: '1 (of 2) futures unfinished' });
    assert.ok(since(t0) >= 40, `TimeoutError after ${since(t0)} ms`);
  });

  it('a cancelled future counts as done and is yielded, cancelled here or in another thread', () => {
    const cancelledHere = new Future();
    const cancelledThere = new Future();
    const go = new Event();
    const t = startThread(
      (f: Future, g: Event) => {
        g.wait();
        f.cancel();
      },
      [cancelledThere, go],
    );
    const it = asCompleted([cancelledHere, cancelledThere, futureIn('cancelled')]);
    assert.equal((it.next().value as Future).cancelled(), true);
    cancelledHere.cancel();
    assert.ok(it.next().value === cancelledHere);
    go.set();
    assert.ok(it.next().value === cancelledThere);
    assert.equal(it.next().done, true);
    t.join();
  });

  it('no futures: yields nothing; bad arguments: TypeError', () => {
    assert.deepEqual([...asCompleted([])], []);
    assert.throws(() => asCompleted(5 as never).next(), TypeError);
    assert.throws(() => asCompleted([{} as Future]).next(), TypeError);
  });
});

describe('asCompletedAsync', () => {
  it('for await: the finished futures first, then as they complete; it yields futures, not results', async () => {
    const finished = [futureIn('succeeded'), futureIn('cancelled')];
    const later = [new Future<number>(), new Future<number>()];
    const order: Future<number>[] = [];
    // (TypeScript types a for-await variable as Awaited<Future<R>>, that is R, since a Future is
    // thenable; at run time it is the Future, as the assertion shows.)
    for await (const f of asCompletedAsync([later[0]!, ...finished, later[1]!]) as AsyncIterable<unknown>) {
      assert.ok(f instanceof Future);
      order.push(f as Future<number>);
      // Complete the next one only once the previous has arrived: the order is then known.
      if (order.length === 2) setImmediate(() => later[1]!.setResult(2));
      if (order.length === 3) setImmediate(() => later[0]!.setException(new Error('zero')));
    }
    sameSet(new Set(order.slice(0, 2)), finished, 'the finished ones first');
    assert.ok(order[2] === later[1]);
    assert.ok(order[3] === later[0]);
  });

  it('futures completed by another thread arrive', async () => {
    const futures = Array.from({ length: 50 }, () => new Future<number>());
    const t = startThread(
      (fs: Future<number>[]) => {
        for (const [i, f] of fs.entries()) f.setResult(i);
      },
      [futures],
    );
    const seen = new Set<Future<number>>();
    for await (const f of asCompletedAsync(futures) as AsyncIterable<unknown>) seen.add(f as Future<number>);
    sameSet(seen, futures, 'yielded');
    t.join();
  });

  it('timeout: rejects with TimeoutError "N (of M) futures unfinished", never early', async () => {
    const t0 = performance.now();
    const it = asCompletedAsync([futureIn('succeeded'), new Future(), new Future()], { timeout: 30 });
    assert.equal((await it.next()).done, false);
    await assert.rejects(it.next(), (e: unknown) => e instanceof TimeoutError && (e as Error).message === '2 (of 3) futures unfinished');
    assert.ok(since(t0) >= 30, `rejected after ${since(t0)} ms`);
  });

  it('an abort signal rejects the wait with the reason', async () => {
    const controller = new AbortController();
    const it = asCompletedAsync([new Future()], { signal: controller.signal });
    const next = it.next();
    setImmediate(() => controller.abort(new Error('aborted by the caller')));
    await assert.rejects(next, /aborted by the caller/);
  });

  it('200 000 futures completed in a random order by another thread, some before the first next(), some while it starts, the rest during the iteration: each yielded once, in the order they completed', async () => {
    const n = 200_000;
    const futures = Array.from({ length: n }, () => new Future<number>());
    const order = shuffled(n, 0x5eed);
    const started = new Event();
    const t = startThread(
      (fs: Future<number>[], o: number[], s: Event) => {
        for (let k = 0; k < o.length; k++) {
          if (k === 50_000) s.set();
          fs[o[k]!]!.setResult(o[k]!);
        }
      },
      [futures, order, started],
    );
    try {
      assert.equal(started.wait(LONG), true);
      const yielded: Future<number>[] = [];
      for await (const f of asCompletedAsync(futures) as AsyncIterable<unknown>) yielded.push(f as Future<number>);
      assert.equal(yielded.length, n);
      // One thread completed them one after another: the completion order is `order`.
      for (let k = 0; k < n; k++) {
        if (yielded[k] !== futures[order[k]!]) assert.fail(`yielded #${k} is future ${futures.indexOf(yielded[k]!)}, but future ${order[k]} completed #${k}`);
      }
    } finally {
      t.join();
    }
  });

  it('200 000 tasks of a pool: each future yielded once, done, with its own result', async () => {
    using pool = new ThreadPoolExecutor({ maxWorkers: 2 });
    const n = 200_000;
    const futures = Array.from({ length: n }, (_, i) => pool.submit((x: number) => x, i));
    const index = new Map(futures.map((f, i) => [f, i]));
    const seen = new Uint8Array(n);
    let count = 0;
    for await (const x of asCompletedAsync(futures) as AsyncIterable<unknown>) {
      const f = x as Future<number>;
      const i = index.get(f);
      assert.ok(i !== undefined, 'yielded a future that was not given');
      assert.equal(seen[i], 0, `future ${i} yielded twice`);
      seen[i] = 1;
      count++;
      assert.ok(f.done(), `future ${i} yielded before it was done`);
      assert.equal(f.result(0), i);
    }
    assert.equal(count, n);
  });

  it('a duplicated future is yielded once', async () => {
    const f = new Future<number>();
    const g = futureIn('succeeded');
    const t = startThread((fut: Future<number>) => fut.setResult(1), [f]);
    const seen: unknown[] = [];
    for await (const x of asCompletedAsync([f, g, f, g, f]) as AsyncIterable<unknown>) seen.push(x);
    assert.equal(seen.length, 2);
    sameSet(new Set(seen as Future<number>[]), [f, g], 'yielded');
    t.join();
  });

  it('timeout over many futures: the done ones, then TimeoutError counting the rest; then done, and nothing left holding the event loop', async () => {
    const held = timersHeld();
    const futures = Array.from({ length: 10_000 }, () => new Future<number>());
    for (let i = 0; i < futures.length; i += 2) futures[i]!.setResult(i);
    const it = asCompletedAsync(futures, { timeout: 40 });
    // Completed while the iterator listens (after its first next(), in the same turn: before
    // the timeout however slow the machine), so it arrives before the TimeoutError.
    const late = futures[1]!;
    const yielded = new Set<Future<number>>();
    let error: unknown;
    try {
      for (;;) {
        const r = await it.next();
        if (r.done) break;
        if (yielded.size === 0) late.setResult(1);
        yielded.add(r.value);
      }
    } catch (e) {
      error = e;
    }
    assert.ok(error instanceof TimeoutError, String(error));
    assert.equal((error as Error).message, '4999 (of 10000) futures unfinished');
    assert.equal(yielded.size, 5001);
    for (const f of yielded) assert.ok(f.done());
    assert.ok(yielded.has(late));
    assert.equal((await it.next()).done, true, 'done after the TimeoutError');
    // Completions after the timeout are not reported to anyone, and the inbox lets the loop go.
    futures[3]!.setResult(3);
    assert.equal((await it.next()).done, true);
    await untilTimersHeld(held);
  });

  it('abort over many futures, some yielded already: rejects the waiting next() with the reason; then done, nothing left holding the event loop', async () => {
    const held = timersHeld();
    const controller = new AbortController();
    const futures = Array.from({ length: 10_000 }, () => new Future<number>());
    futures[7]!.setResult(7);
    const it = asCompletedAsync(futures, { signal: controller.signal });
    assert.ok((await it.next()).value === futures[7]);
    const next = it.next(); // waiting now
    futures[9]!.setResult(9);
    assert.ok((await next).value === futures[9]);
    const waiting = it.next();
    setImmediate(() => controller.abort(new Error('aborted by the caller')));
    await assert.rejects(waiting, /aborted by the caller/);
    assert.equal((await it.next()).done, true, 'done after the abort');
    await untilTimersHeld(held);

    // A signal aborted before the first next(): the done futures first, then its reason.
    const f = futureIn('succeeded');
    const early = asCompletedAsync([new Future(), f], { signal: AbortSignal.abort(new Error('too late')) });
    assert.ok((await early.next()).value === f);
    await assert.rejects(early.next(), /too late/);
  });

  it('break out of for await: stops listening to the futures left', async () => {
    const held = timersHeld();
    const futures = Array.from({ length: 1000 }, () => new Future<number>());
    for (let i = 0; i < 3; i++) futures[i]!.setResult(i);
    let count = 0;
    for await (const _ of asCompletedAsync(futures) as AsyncIterable<unknown>) if (++count === 3) break;
    assert.equal(count, 3);
    // 997 futures nobody will complete: nothing may keep waiting for them.
    await untilTimersHeld(held);
  });

  it('several next() calls at once each get their own future', async () => {
    const [a, b] = [new Future<string>(), new Future<string>()];
    const it = asCompletedAsync([a, b]);
    const calls = [it.next(), it.next(), it.next()];
    b.setResult('b');
    setImmediate(() => a.setResult('a'));
    const [first, second, third] = await Promise.all(calls);
    assert.ok(first!.value === b);
    assert.ok(second!.value === a);
    assert.equal(third!.done, true);
  });

  it('a future another thread awaits (through its own inbox) still arrives', async () => {
    const watched = new Future<number>();
    const plain = new Future<number>();
    const listening = new Event();
    const t = startThread(
      async (f: Future<number>, l: Event) => {
        const result = f.resultAsync(); // this thread's inbox is now the future's listener
        l.set();
        return await result;
      },
      [watched, listening],
    );
    try {
      assert.equal(listening.wait(LONG), true);
      const it = asCompletedAsync([watched, plain]);
      const first = it.next();
      setImmediate(() => watched.setResult(1));
      assert.ok((await first).value === watched);
      const second = it.next();
      setImmediate(() => plain.setResult(2));
      assert.ok((await second).value === plain);
      assert.equal((await it.next()).done, true);
    } finally {
      if (!watched.done()) watched.setResult(1);
      t.join();
    }
    assert.equal(t.result, 1);
  });

  it('futures completing during one wait are yielded in completion order', async () => {
    const [a, b, c] = [new Future<string>(), new Future<string>(), new Future<string>()];
    const it = asCompletedAsync([a, b, c]);
    const first = it.next(); // waiting now
    c.setResult('c');
    a.setResult('a'); // both before the waiter wakes
    assert.ok((await first).value === c, 'c completed first');
    assert.ok((await it.next()).value === a);
    b.setResult('b');
    assert.ok((await it.next()).value === b);
  });
});
