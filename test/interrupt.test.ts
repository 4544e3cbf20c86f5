/**
 * Interrupts (API.md, "Stopping work"): `thread.interrupt()`, `isInterrupted()`, `interrupted()`,
 * `InterruptedError`, `currentThread().signal`.
 *
 * - Every kind of blocking wait, sync and async, in another thread: the thread blocked in it gets
 *   InterruptedError (its class survives the trip back), its flag is then clear, and the
 *   primitive is as it was: a second waiter ("the witness"), blocked after the interrupted one,
 *   still gets what it waits for once it comes (no wake-up, permit, item or notify lost or taken).
 * - The flag: set while the thread is busy, the next wait that would block throws (calls that
 *   return at once do not look); `interrupted()` reads and clears it; threads not started or
 *   ended are not affected; the signal is aborted with an InterruptedError.
 * - Condition, Barrier: the lock is held again when the wait throws; a notify that reached the
 *   interrupted waiter is passed on; a waiter taking its lock back is not interrupted there; an
 *   interrupted party breaks the barrier for the others, but not a generation that has tripped.
 * - Promise waits that listen through the thread's inbox (asCompletedAsync); a Promise wait left
 *   pending by the previous thread of a reused isolate must not take the next thread's interrupt.
 * - Races: a thread interrupted the moment it is about to sleep, many times (never hangs); an
 *   interrupt racing a real wake-up; the main thread interrupted by another thread (sync and
 *   Promise waits); the wait path with deadlock detection on; an interrupted sync put gives back
 *   the item it staged in the shared heap.
 *
 * How a test knows a thread is blocked: the thread sets an Event just before its call, then the
 * test polls dumpThreads() until the thread's wait shows (sync waits) or it has none (Promise
 * waits), and its OS thread sleeps in the kernel twice in a row. No fixed sleep synchronises
 * anything; every wait that must end is bounded, so a bug fails a test instead of hanging it.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import {
  Barrier,
  BoundedSemaphore,
  BrokenBarrierError,
  Condition,
  Event,
  Future,
  InterruptedError,
  LifoQueue,
  Lock,
  type ModuleFunction,
  PriorityQueue,
  Queue,
  QueueEmpty,
  RLock,
  Semaphore,
  SimpleQueue,
  Thread,
  ThreadError,
  currentThread,
  dumpThreads,
  heapStats,
  interrupted,
  mainThread,
} from 'threadkit';
import type { LoopReport, Outcome } from './fixtures/interrupt-waits.js';
import { LONG, detecting, snapshotOf, until, untilParked } from './helpers/waiting.js';

const FIXTURE = new URL('./fixtures/interrupt-waits.ts', import.meta.url).href;
const fixture = (name: string): ModuleFunction<(...args: any[]) => any> => ({ module: FIXTURE, name });

/**
 * How long an interrupted thread may take to end before the test fails (it takes well under a
 * millisecond when the interrupt works): a bound against hanging, not a measurement.
 */
const INTERRUPT_BOUND = 5_000;

type Mode = 'sync' | 'async';
const MODES: Mode[] = ['sync', 'async'];

let names = 0;
const uniqueName = (what: string): string => `intr ${what} #${names++}`;

function show(value: unknown): string {
  if (value instanceof Error) return `${value.name}: ${value.message}`;
  if (typeof value === 'object' && value !== null) {
    return `{ ${Object.entries(value)
      .map(([k, v]) => `${k}: ${show(v)}`)
      .join(', ')} }`;
  }
  return String(value);
}

interface BlockOptions {
  /** The sync wait's kind as dumps show it (sync mode). */
  kind: string;
  /** A bound for the call (the witness's): undefined for none (the interrupted thread's). */
  timeout?: number;
  name?: string;
}

/** Starts a thread that makes the call `what` (fixtures/interrupt-waits.ts), and returns once it is parked in it. */
async function startBlocked(what: string, mode: Mode, objs: unknown[], options: BlockOptions): Promise<Thread<Outcome>> {
  const ready = new Event();
  const name = options.name ?? uniqueName(`${what} ${mode}${options.timeout === undefined ? '' : ' witness'}`);
  const t = new Thread<Outcome>({ name, target: fixture(mode === 'sync' ? 'blockSync' : 'blockAsync'), args: [what, ready, options.timeout, ...objs] });
  t.start();
  await until(ready, `${name} about to wait`);
  await untilParked(t, mode === 'sync' ? options.kind : undefined);
  return t;
}

/** The outcome of a thread that must end (bounded). */
async function outcomeOf(t: Thread<Outcome>, bound = LONG): Promise<Outcome> {
  await t.joinAsync({ timeout: bound });
  assert.equal(t.isAlive(), false, `${t.name} ended (within ${bound} ms)`);
  assert.ok(t.result !== undefined, `${t.name} reported its outcome`);
  return t.result;
}

/** Checks that the call ended with InterruptedError and took the interrupt (the flag is clear). */
function assertInterrupted(outcome: Outcome, what: string): InterruptedError {
  const error = outcome.threw;
  assert.ok(error instanceof InterruptedError, `${what}: expected InterruptedError, got ${show(outcome)}`);
  assert.ok(error instanceof ThreadError, 'InterruptedError extends ThreadError');
  assert.equal(error.name, 'InterruptedError');
  assert.equal(outcome.flagAfter, false, `${what}: the interrupt was taken by the wait (flag clear after it)`);
  return error;
}

/** The interrupted thread's outcome: InterruptedError, soon. */
async function interruptedOutcome(t: Thread<Outcome>, what: string): Promise<Outcome> {
  const outcome = await outcomeOf(t, INTERRUPT_BOUND);
  assertInterrupted(outcome, what);
  return outcome;
}

/** Runs `body`; whatever happens, runs `release` (which lets every thread of the test end). */
async function releasing(release: () => void, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } finally {
    try {
      release();
    } catch {
      // (already released by the body)
    }
  }
}

/** Waits (without blocking the event loop) until `t` has taken its interrupt (a Promise wait takes it from its event loop). */
async function untilTaken(t: Thread): Promise<void> {
  const deadline = performance.now() + INTERRUPT_BOUND;
  while (t.isInterrupted()) {
    if (performance.now() > deadline) assert.fail(`${t.name} never took its interrupt`);
    await delay(1);
  }
}

// ---- every kind of wait, sync and async ------------------------------------------------------

describe('an interrupt ends the wait a thread is blocked in, and leaves the primitive as it was', () => {
  for (const mode of MODES) {
    describe(`${mode} waits`, () => {
      for (const [name, make] of [
        ['Lock', () => new Lock()],
        ['RLock', () => new RLock()],
      ] as const) {
        it(`${name}.acquire${mode === 'async' ? 'Async' : ''}: InterruptedError; the lock stays the holder's, and the next waiter gets it when it is released`, async () => {
          const lock = make();
          lock.acquire();
          let held = true;
          await releasing(
            () => held && lock.release(),
            async () => {
              const a = await startBlocked(`${name}.acquire`, mode, [lock], { kind: name });
              const b = await startBlocked(`${name}.acquire`, mode, [lock], { kind: name, timeout: LONG });
              a.interrupt();
              await interruptedOutcome(a, `${name}.acquire`);
              assert.equal(lock.locked(), true, 'still held by the main thread');
              assert.equal(b.isAlive(), true, 'the other waiter still waits');
              held = false;
              lock.release();
              assert.equal((await outcomeOf(b)).returned, true, 'the other waiter got the lock (and let it go)');
              assert.equal(lock.locked(), false);
              assert.equal(lock.acquire({ blocking: false }), true, 'free: nobody holds it, nothing marks it');
              lock.release();
            },
          );
        });
      }

      for (const [name, make, take] of [
        ['Semaphore', () => new Semaphore(0), (_s: Semaphore) => {}],
        ['BoundedSemaphore', () => new BoundedSemaphore(1), (s: Semaphore) => assert.equal(s.acquire(), true)],
      ] as const) {
        it(`${name}.acquire${mode === 'async' ? 'Async' : ''}: InterruptedError; the count is unchanged, and a release goes to the next waiter`, async () => {
          const sem = make();
          take(sem);
          await releasing(
            () => sem.release(),
            async () => {
              const a = await startBlocked('Semaphore.acquire', mode, [sem], { kind: 'Semaphore' });
              const b = await startBlocked('Semaphore.acquire', mode, [sem], { kind: 'Semaphore', timeout: LONG });
              a.interrupt();
              await interruptedOutcome(a, `${name}.acquire`);
              assert.equal(sem.value, 0, 'no permit taken or made');
              assert.equal(b.isAlive(), true, 'the other waiter still waits');
              sem.release();
              assert.equal((await outcomeOf(b)).returned, true, 'the other waiter got the permit');
              assert.equal(sem.value, 0);
              assert.equal(sem.acquire({ blocking: false }), false, 'exactly one permit was given, and taken');
            },
          );
        });
      }

      for (const [lockName, makeLock] of [
        ['RLock', () => new RLock()],
        ['Lock', () => new Lock()],
      ] as const) {
        it(`Condition(${lockName}).wait${mode === 'async' ? 'Async' : ''}: InterruptedError with the lock held again; the other waiter still gets a notify`, async () => {
          const cond = new Condition(makeLock());
          let witness: Thread<Outcome> | undefined;
          await releasing(
            () => {
              if (witness?.isAlive() !== true) return;
              cond.acquire();
              cond.notifyAll();
              cond.release();
            },
            async () => {
              const a = await startBlocked('Condition.wait', mode, [cond], { kind: 'Condition' });
              witness = await startBlocked('Condition.wait', mode, [cond], { kind: 'Condition', timeout: LONG });
              a.interrupt();
              const outcome = await interruptedOutcome(a, 'Condition.wait');
              assert.equal(outcome.heldAfter, true, 'the wait threw with the lock held (its release() worked)');
              assert.equal(witness.isAlive(), true);
              assert.equal(cond.acquire({ timeout: LONG }), true, 'the interrupted waiter let the lock go');
              cond.notify(1);
              cond.release();
              const b = await outcomeOf(witness);
              assert.equal(b.returned, true, `the other waiter was notified: ${show(b)}`);
              assert.equal(b.heldAfter, true);
            },
          );
        });
      }

      it(`Condition.waitFor${mode === 'async' ? 'Async' : ''}: InterruptedError with the lock held again`, async () => {
        const cond = new Condition();
        const a = await startBlocked('Condition.waitFor', mode, [cond], { kind: 'Condition' });
        a.interrupt();
        const outcome = await interruptedOutcome(a, 'Condition.waitFor');
        assert.equal(outcome.heldAfter, true, 'the wait threw with the lock held (its release() worked)');
        assert.equal(cond.acquire({ blocking: false }), true, 'and the lock is free now');
        cond.release();
      });

      it(`Event.wait${mode === 'async' ? 'Async' : ''}: InterruptedError; the event stays clear, and set() still wakes the other waiter`, async () => {
        const ev = new Event();
        await releasing(
          () => ev.set(),
          async () => {
            const a = await startBlocked('Event.wait', mode, [ev], { kind: 'Event' });
            const b = await startBlocked('Event.wait', mode, [ev], { kind: 'Event', timeout: LONG });
            a.interrupt();
            await interruptedOutcome(a, 'Event.wait');
            assert.equal(ev.isSet(), false);
            assert.equal(b.isAlive(), true);
            ev.set();
            assert.equal((await outcomeOf(b)).returned, true);
          },
        );
      });

      it(`Barrier.wait${mode === 'async' ? 'Async' : ''}: InterruptedError; the barrier breaks (the other party gets BrokenBarrierError), and reset() mends it`, async () => {
        const barrier = new Barrier(3);
        await releasing(
          () => barrier.abort(),
          async () => {
            const a = await startBlocked('Barrier.wait', mode, [barrier], { kind: 'Barrier' });
            const b = await startBlocked('Barrier.wait', mode, [barrier], { kind: 'Barrier', timeout: LONG });
            a.interrupt();
            await interruptedOutcome(a, 'Barrier.wait');
            const other = await outcomeOf(b);
            assert.ok(other.threw instanceof BrokenBarrierError, `the other party: ${show(other)}`);
            assert.equal(barrier.broken, true);
            assert.equal(barrier.nWaiting, 0);
            barrier.reset();
            assert.equal(barrier.broken, false);
          },
        );
      });

      for (const [name, make] of [
        ['Queue', () => new Queue<number>()],
        ['LifoQueue', () => new LifoQueue<number>()],
        ['PriorityQueue', () => new PriorityQueue<number>()],
        ['SimpleQueue', () => new SimpleQueue<number>()],
      ] as const) {
        it(`${name}.get${mode === 'async' ? 'Async' : ''}: InterruptedError; no item taken: the next item goes to the other getter`, async () => {
          const q = make();
          let witness: Thread<Outcome> | undefined;
          await releasing(
            () => witness?.isAlive() && q.put(-1),
            async () => {
              const a = await startBlocked('Queue.get', mode, [q], { kind: 'Queue.get' });
              witness = await startBlocked('Queue.get', mode, [q], { kind: 'Queue.get', timeout: LONG });
              a.interrupt();
              await interruptedOutcome(a, `${name}.get`);
              assert.equal(q.qsize(), 0);
              assert.equal(witness.isAlive(), true);
              q.put(7);
              assert.equal((await outcomeOf(witness)).returned, 7, 'the other getter got the item');
              assert.equal(q.qsize(), 0);
              q.put(8);
              assert.equal(q.getNowait(), 8, 'the queue works on');
              assert.throws(() => q.getNowait(), QueueEmpty);
            },
          );
        });
      }

      for (const [name, make, order] of [
        ['Queue', () => new Queue<number>(1), [1, 3]],
        ['LifoQueue', () => new LifoQueue<number>(1), [1, 3]],
        ['PriorityQueue', () => new PriorityQueue<number>(1), [1, 3]],
      ] as const) {
        it(`${name}.put${mode === 'async' ? 'Async' : ''} on a full queue: InterruptedError; its item is not put, the other putter's is`, async () => {
          const q = make();
          q.put(1);
          let witness: Thread<Outcome> | undefined;
          await releasing(
            () => {
              while (witness?.isAlive() && q.qsize() > 0) q.getNowait();
            },
            async () => {
              const a = await startBlocked('Queue.put', mode, [q, 2], { kind: 'Queue.put' });
              witness = await startBlocked('Queue.put', mode, [q, 3], { kind: 'Queue.put', timeout: LONG });
              a.interrupt();
              await interruptedOutcome(a, `${name}.put`);
              assert.equal(q.qsize(), 1, 'only the first item is in');
              assert.equal(witness.isAlive(), true);
              const got = [q.get({ timeout: LONG })];
              assert.equal((await outcomeOf(witness)).returned, 'put', 'the other putter put its item');
              got.push(q.get({ timeout: LONG }));
              assert.deepEqual(got, order);
              assert.throws(() => q.getNowait(), QueueEmpty, 'the interrupted item is nowhere');
              assert.equal(q.unfinishedTasks, 2, 'two puts counted');
            },
          );
        });
      }

      for (const [name, make] of [
        ['Queue', () => new Queue<number>()],
        ['LifoQueue', () => new LifoQueue<number>()],
        ['PriorityQueue', () => new PriorityQueue<number>()],
      ] as const) {
        it(`${name}.join${mode === 'async' ? 'Async' : ''}: InterruptedError; the task count is unchanged, and the other joiner returns when it is done`, async () => {
          const q = make();
          q.put(1);
          let done = false;
          await releasing(
            () => {
              if (!done) q.taskDone();
            },
            async () => {
              const a = await startBlocked('Queue.join', mode, [q], { kind: 'Queue.join' });
              const b = await startBlocked('Queue.join', mode, [q], { kind: 'Queue.join', timeout: LONG });
              a.interrupt();
              await interruptedOutcome(a, `${name}.join`);
              assert.equal(q.unfinishedTasks, 1);
              assert.equal(b.isAlive(), true);
              assert.equal(q.get(), 1);
              done = true;
              q.taskDone();
              const other = await outcomeOf(b);
              assert.ok(other.returned === 'joined' || other.returned === true, `the other joiner: ${show(other)}`);
            },
          );
        });
      }

      it(`Thread.join${mode === 'async' ? 'Async' : ''}: InterruptedError; the joined thread runs on, and the other joiner sees it end`, async () => {
        const stop = new Event();
        const joined = new Thread({ name: uniqueName('joined'), target: fixture('liveUntil'), args: [stop] });
        joined.start();
        await releasing(
          () => stop.set(),
          async () => {
            const a = await startBlocked('Thread.join', mode, [joined], { kind: 'join' });
            const b = await startBlocked('Thread.join', mode, [joined], { kind: 'join', timeout: LONG });
            a.interrupt();
            await interruptedOutcome(a, 'Thread.join');
            assert.equal(joined.isAlive(), true);
            assert.equal(b.isAlive(), true);
            stop.set();
            assert.equal((await outcomeOf(b)).returned, false, 'the other joiner saw it end (isAlive() false)');
            await joined.joinAsync({ timeout: LONG });
            assert.equal(joined.result, 'stopped');
          },
        );
      });

      const futureWaits: [string, string, (f: Future<number>) => void, unknown][] = [
        ['Future.result', 'Future', (f) => f.setResult(42), 42],
        ['Future.exception', 'Future', (f) => f.setException(new RangeError('boom')), 'RangeError: boom'],
        ['wait', 'wait', (f) => f.setResult(42), 1],
        ['asCompleted', 'wait', (f) => f.setResult(42), 1],
      ];
      if (mode === 'async') futureWaits.push(['Future.await', 'Future', (f) => f.setResult(42), 42]);
      for (const [what, kind, complete, expected] of futureWaits) {
        const title = mode === 'sync' ? `${what}()` : what === 'Future.await' ? 'await future' : `${what}Async()`;
        it(`${title}: InterruptedError; the future is untouched, and the other waiter gets its outcome`, async () => {
          const f = new Future<number>();
          await releasing(
            () => {
              if (!f.done()) f.cancel();
            },
            async () => {
              const a = await startBlocked(what, mode, [f], { kind });
              // (`await future` has no bound: its witness is resultAsync, bounded.)
              const b = await startBlocked(what === 'Future.await' ? 'Future.result' : what, mode, [f], { kind, timeout: LONG });
              a.interrupt();
              await interruptedOutcome(a, what);
              assert.equal(f.done(), false, 'the future is still pending');
              assert.equal(f.cancelled(), false);
              assert.equal(b.isAlive(), true);
              complete(f);
              const other = await outcomeOf(b);
              const got = other.returned instanceof Error ? show(other.returned) : other.returned;
              assert.equal(got, expected, `the other waiter: ${show(other)}`);
            },
          );
        });
      }

      it(`${mode === 'sync' ? 'sleep' : 'sleepAsync'}: InterruptedError at once`, async () => {
        const a = await startBlocked('sleep', mode, [], { kind: 'sleep' });
        a.interrupt();
        await interruptedOutcome(a, 'sleep');
      });
    });
  }
});

// ---- the flag -----------------------------------------------------------------------------------

describe('the interrupt flag', () => {
  it('set while the thread is busy: isInterrupted() is true; calls that return at once do not look at it; the next wait that would block throws, and clears it', async () => {
    const ready = new Event();
    const go = new Event();
    const blocker = new Event();
    const heldLock = new Lock();
    heldLock.acquire();
    const q = new Queue<string>();
    q.put('item');
    const t = new Thread<Record<string, any>>({
      name: uniqueName('busy'),
      target: fixture('busyThenWait'),
      args: [ready, go, blocker, new Lock(), heldLock, new RLock(), q, new Semaphore(1)],
    });
    t.start();
    try {
      await until(ready, 'the thread is busy');
      assert.equal(t.isInterrupted(), false);
      t.interrupt();
      assert.equal(t.isInterrupted(), true, 'flag set: the thread is in no wait to take it');
      go.set();
      await t.joinAsync({ timeout: LONG });
      assert.equal(t.isAlive(), false);
      const seen = t.result!;
      assert.equal(seen.flagBefore, true, 'the thread sees its flag');
      assert.deepEqual(
        seen.instant,
        { freeLock: true, heldLockNonBlocking: false, rlockTwice: true, setEvent: true, eventTimeout0: false, queueItem: 'item', semaphorePermit: true },
        `calls that return at once: ${show(seen.instant)}`,
      );
      assert.equal(seen.flagAfterInstant, true, 'still set after them');
      assert.ok(seen.blocking instanceof InterruptedError, `the blocking wait: ${show(seen.blocking)}`);
      assert.equal(seen.flagAfter, false, 'cleared by the wait that threw');
      assert.equal(t.isInterrupted(), false);
    } finally {
      go.set();
      heldLock.release();
    }
  });

  it('interrupted() returns true once and clears the flag; a timed wait after it just times out', async () => {
    const ready = new Event();
    const go = new Event();
    const t = new Thread<Record<string, unknown>>({ name: uniqueName('interrupted()'), target: fixture('busyThenInterrupted'), args: [ready, go, new Event()] });
    t.start();
    try {
      await until(ready, 'the thread is busy');
      t.interrupt();
      assert.equal(t.isInterrupted(), true);
      go.set();
      await t.joinAsync({ timeout: LONG });
      assert.deepEqual(t.result, { flag: true, first: true, second: false, flagAfter: false, timedWait: false });
      assert.equal(t.isInterrupted(), false);
    } finally {
      go.set();
    }
  });

  for (const mode of MODES) {
    it(`a wait with a timeout is interrupted too (${mode})`, async () => {
      const ev = new Event();
      try {
        const a = await startBlocked('Event.wait', mode, [ev], { kind: 'Event', timeout: LONG });
        a.interrupt();
        await interruptedOutcome(a, 'Event.wait(timeout)');
      } finally {
        ev.set();
      }
    });
  }

  it('a Condition waiter that was notified and is taking its lock back is not interrupted there: its wait returns true, the interrupt stays for its next wait', async () => {
    const cond = new Condition();
    const a = await startBlocked('Condition.wait', 'sync', [cond], { kind: 'Condition' });
    cond.acquire();
    try {
      cond.notify(1);
      await untilParked(a, 'RLock'); // (the condition's lock, held by us)
      a.interrupt();
      assert.equal(a.isInterrupted(), true, 'not taken: that wait is not interruptible');
    } finally {
      cond.release();
    }
    const outcome = await outcomeOf(a);
    assert.deepEqual(outcome, { returned: true, flagAfter: true, heldAfter: true });
  });

  it('interrupted() in a thread never interrupted is false', () => {
    assert.equal(interrupted(), false);
    assert.equal(currentThread().isInterrupted(), false);
  });

  it('interrupting a thread that has not started, or has ended, has no effect', async () => {
    const t = new Thread<Record<string, unknown>>({ name: uniqueName('not started'), target: fixture('fresh') });
    t.interrupt();
    assert.equal(t.isInterrupted(), false, 'not started: nothing set');
    t.start();
    await t.joinAsync({ timeout: LONG });
    assert.deepEqual(t.result, { flag: false, aborted: false, interrupted: false }, 'the thread started clean');
    t.interrupt();
    assert.equal(t.isInterrupted(), false, 'ended: nothing set');
    assert.equal(t.isAlive(), false);
  });

  it('a thread may interrupt itself: its signal aborts at once, its next wait throws', async () => {
    const t = new Thread<Record<string, unknown>>({ name: uniqueName('self'), target: fixture('selfInterrupt'), args: [new Event()] });
    t.start();
    await t.joinAsync({ timeout: LONG });
    const seen = t.result!;
    assert.equal(seen.aborted, true);
    assert.ok(seen.reason instanceof InterruptedError, `reason: ${show(seen.reason)}`);
    assert.equal(seen.flag, true);
    assert.ok(seen.next instanceof InterruptedError, `next wait: ${show(seen.next)}`);
    assert.equal(seen.flagAfter, false);
  });
});

// ---- the signal ---------------------------------------------------------------------------------

describe('currentThread().signal', () => {
  it('is aborted, with an InterruptedError reason, when the thread is interrupted out of a sync wait', async () => {
    const ready = new Event();
    const blocker = new Event();
    const t = new Thread<Record<string, unknown>>({ name: uniqueName('signal sync'), target: fixture('signalAroundSyncWait'), args: [ready, blocker] });
    t.start();
    try {
      await until(ready, 'about to wait');
      await untilParked(t, 'Event');
      t.interrupt();
      await t.joinAsync({ timeout: INTERRUPT_BOUND });
      const seen = t.result!;
      assert.equal(seen.before, false);
      assert.ok(seen.threw instanceof InterruptedError, `the wait: ${show(seen.threw)}`);
      assert.equal(seen.aborted, true);
      assert.ok(seen.reason instanceof InterruptedError, `reason: ${show(seen.reason)}`);
      assert.equal(seen.same, true, 'one signal per thread');
    } finally {
      blocker.set();
    }
  });

  it('is aborted, with an InterruptedError reason, when the thread is interrupted out of a Promise wait', async () => {
    const ready = new Event();
    const blocker = new Event();
    const t = new Thread<Record<string, unknown>>({ name: uniqueName('signal async'), target: fixture('signalAroundAsyncWait'), args: [ready, blocker] });
    t.start();
    try {
      await until(ready, 'about to wait');
      await untilParked(t, undefined);
      t.interrupt();
      await t.joinAsync({ timeout: INTERRUPT_BOUND });
      const seen = t.result!;
      assert.equal(seen.before, false);
      assert.ok(seen.threw instanceof InterruptedError, `the wait: ${show(seen.threw)}`);
      assert.equal(seen.aborted, true);
      assert.ok(seen.reason instanceof InterruptedError, `reason: ${show(seen.reason)}`);
    } finally {
      blocker.set();
    }
  });

  it('is aborted when the thread is in no threadkit wait (its event loop idle); the flag stays set, and its next wait throws', async () => {
    const ready = new Event();
    const blocker = new Event();
    const t = new Thread<Record<string, unknown>>({ name: uniqueName('signal idle'), target: fixture('signalWhileIdle'), args: [ready, blocker] });
    t.start();
    try {
      await until(ready, 'listening to its signal');
      await untilParked(t, undefined);
      t.interrupt();
      await t.joinAsync({ timeout: INTERRUPT_BOUND });
      assert.equal(t.isAlive(), false, 'the signal was aborted');
      const seen = t.result!;
      assert.ok(seen.reason instanceof InterruptedError, `reason: ${show(seen.reason)}`);
      assert.equal(seen.flagWhenAborted, true, 'the flag is left for the next wait');
      assert.ok(seen.next instanceof InterruptedError, `the next wait: ${show(seen.next)}`);
      assert.equal(seen.flagAfter, false);
    } finally {
      blocker.set();
    }
  });

  it('read after an interrupt ended a wait, it is aborted too ("aborted either way")', async () => {
    const ready = new Event();
    const blocker = new Event();
    const t = new Thread<Record<string, unknown>>({ name: uniqueName('signal late'), target: fixture('signalReadAfterInterrupt'), args: [ready, blocker] });
    t.start();
    try {
      await until(ready, 'about to wait');
      await untilParked(t, 'Event');
      t.interrupt();
      await t.joinAsync({ timeout: INTERRUPT_BOUND });
      const seen = t.result!;
      assert.ok(seen.threw instanceof InterruptedError, `the wait: ${show(seen.threw)}`);
      assert.equal(seen.aborted, true, 'the thread was interrupted: its signal, read afterwards, is aborted');
      assert.ok(seen.reason instanceof InterruptedError, `reason: ${show(seen.reason)}`);
    } finally {
      blocker.set();
    }
  });
});

// ---- Promise waits that listen another way ----------------------------------------------------------

describe('Promise waits that do not sleep on a word', () => {
  it('asCompletedAsync() when another thread already listens to the future (its fallback wait): InterruptedError, and the interrupt is not swallowed', async () => {
    const f = new Future<number>();
    await releasing(
      () => {
        if (!f.done()) f.cancel();
      },
      async () => {
        // The first thread to await a future gets its completion through its inbox; a second one waits another way.
        const listener = await startBlocked('Future.await', 'async', [f], { kind: 'Future' });
        const a = await startBlocked('asCompleted', 'async', [f], { kind: 'wait' });
        a.interrupt();
        await a.joinAsync({ timeout: INTERRUPT_BOUND });
        assert.equal(a.isAlive(), false, `the interrupted asCompletedAsync() ended (its flag is now ${a.isInterrupted() ? 'still set' : 'clear: the interrupt was taken, and lost'})`);
        assertInterrupted(a.result!, 'asCompletedAsync');
        assert.equal(listener.isAlive(), true);
        f.setResult(1);
        assert.equal((await outcomeOf(listener)).returned, 1);
      },
    );
  });
});

// ---- an isolate reused by the next thread -----------------------------------------------------

describe('a reused isolate', () => {
  it("a Promise wait left pending by the isolate's previous thread does not take the next thread's interrupt", async () => {
    const never = new Event();
    const blocker = new Event();
    try {
      let previous: Thread<number> | undefined;
      let t: Thread<Record<string, unknown>> | undefined;
      const ready = new Event();
      // The next thread started after one ends runs in its isolate (kept idle for reuse); try a few times.
      for (let attempt = 0; attempt < 5; attempt++) {
        previous = new Thread<number>({ name: uniqueName('leaves a wait'), target: fixture('leavePendingWait'), args: [never] });
        previous.start();
        await previous.joinAsync({ timeout: LONG });
        t = new Thread<Record<string, unknown>>({ name: uniqueName('next in the isolate'), target: fixture('signalWhileIdle'), args: [ready, blocker] });
        t.start();
        await until(ready, 'listening to its signal');
        if (snapshotOf(dumpThreads(), t.ident)?.nativeId === previous.result) break;
        blocker.set(); // not the same isolate: let this one go, and try again
        t.interrupt();
        await t.joinAsync({ timeout: LONG });
        blocker.clear();
        ready.clear();
        t = undefined;
      }
      assert.ok(t !== undefined, 'a thread ran in the isolate of the one before it');
      await untilParked(t, undefined);
      t.interrupt();
      const deadline = performance.now() + INTERRUPT_BOUND;
      while (t.isAlive() && performance.now() < deadline) await delay(1);
      assert.equal(t.isAlive(), false, `the next wait of the interrupted thread threw (its flag: ${t.isInterrupted() ? 'set' : 'clear: taken by the previous thread\'s wait'})`);
      await t.joinAsync(); // (its result is received here: isAlive() turns false before that)
      const seen = t.result!;
      assert.equal(seen.flagWhenAborted, true, 'the interrupt is left for its next wait');
      assert.ok(seen.next instanceof InterruptedError, `its next wait: ${show(seen.next)}`);
    } finally {
      blocker.set();
      never.set();
    }
  });
});

// ---- Condition and Barrier: leaving correctly ----------------------------------------------------

describe('Condition and Barrier', () => {
  for (const mode of MODES) {
    it(`Condition.wait${mode === 'async' ? 'Async' : ''}: a notify that reached the interrupted waiter is passed on to the next one (no lost notify)`, async () => {
      const cond = new Condition();
      let witness: Thread<Outcome> | undefined;
      let mine = false;
      await releasing(
        () => {
          if (mine) cond.release();
          if (witness?.isAlive() !== true) return;
          cond.acquire();
          cond.notifyAll();
          cond.release();
        },
        async () => {
          const a = await startBlocked('Condition.wait', mode, [cond], { kind: 'Condition' });
          witness = await startBlocked('Condition.wait', mode, [cond], { kind: 'Condition', timeout: LONG });
          // Holding the lock: the interrupted waiter cannot leave (it takes the lock back first),
          // so its node is still first in line when we notify one.
          assert.equal(cond.acquire({ timeout: LONG }), true);
          mine = true;
          a.interrupt();
          await untilTaken(a);
          cond.notify(1);
          mine = false;
          cond.release();
          const outcome = await interruptedOutcome(a, 'Condition.wait');
          assert.equal(outcome.heldAfter, true);
          const b = await outcomeOf(witness);
          assert.equal(b.returned, true, `the other waiter got the notify: ${show(b)}`);
        },
      );
    });

    it(`Barrier.wait${mode === 'async' ? 'Async' : ''}: an interrupt that comes as the barrier trips (during its action) does not break the generation that passed`, async () => {
      // (The action runs in the last party, which imported the fixture module: see interruptPartyA there.)
      const barrier = new Barrier(2, { action: () => (globalThis as { __interruptPartyA?: () => void }).__interruptPartyA!() });
      await releasing(
        () => barrier.abort(),
        async () => {
          const a = await startBlocked('Barrier.wait', mode, [barrier], { kind: 'Barrier', name: 'intr-barrier-trip-A' });
          // The last party: a sync wait in a thread that imported the fixture (the action calls it).
          const ready = new Event();
          const b = new Thread<Outcome>({ name: uniqueName('barrier last party'), target: fixture('blockSync'), args: ['Barrier.wait', ready, LONG, barrier] });
          b.start();
          const last = await outcomeOf(b);
          assert.equal(last.returned, 1, `the last party passed: ${show(last)}`);
          const first = await outcomeOf(a);
          // Both parties of one generation see the same thing: it tripped (the last party passed),
          // so the first one passes too, with the interrupt left for its next wait (Java's
          // CyclicBarrier), and the barrier is not left broken for the next generation.
          assert.deepEqual(
            { first: first.threw === undefined ? first.returned : show(first.threw), interruptLeft: first.flagAfter, broken: barrier.broken },
            { first: 0, interruptLeft: true, broken: false },
          );
        },
      );
    });
  }
});

// ---- races -------------------------------------------------------------------------------------

describe('races', () => {
  const loops: [string, () => unknown[], (objs: unknown[]) => void][] = [
    ['Event.wait', () => [new Event()], () => {}],
    [
      'Lock.acquire',
      () => {
        const l = new Lock();
        l.acquire();
        return [l];
      },
      ([l]) => (l as Lock).release(),
    ],
    ['Semaphore.acquire', () => [new Semaphore(0)], () => {}],
    ['Condition.wait', () => [new Condition()], () => {}],
    ['Queue.get', () => [new Queue()], () => {}],
    ['sleep', () => [], () => {}],
  ];
  for (const mode of MODES) {
    for (const [what, make, cleanup] of loops) {
      const n = mode === 'sync' ? 500 : 200;
      it(`${what} (${mode}): interrupted ${n} times, each just as the thread goes back to sleep: every interrupt ends exactly one wait, none hangs`, () => {
        const objs = make();
        const counted = new Semaphore(0);
        const t = new Thread<LoopReport>({ name: uniqueName(`loop ${what} ${mode}`), target: fixture(mode === 'sync' ? 'loopSync' : 'loopAsync'), args: [what, n, counted, ...objs] });
        t.start();
        try {
          for (let i = 0; i < n; i++) {
            t.interrupt();
            assert.equal(counted.acquire({ timeout: INTERRUPT_BOUND }), true, `interrupt ${i} ended a wait (a hang otherwise)`);
          }
          t.join(LONG);
          assert.equal(t.isAlive(), false);
          const report = t.result!;
          assert.deepEqual(report.wrong, [], `only InterruptedError ended the waits: ${show(report.wrong)}`);
          assert.equal(report.interrupts, n);
          assert.equal(report.flagAfter, false);
        } finally {
          cleanup(objs);
          // A loop left behind (a failed assertion): interrupt it until it ends.
          for (let i = 0; t.isAlive() && i < n; i++) {
            t.interrupt();
            counted.acquire({ timeout: 100 });
          }
        }
      });
    }
  }

  /**
   * The interrupted waiter A was first in line, B second; a release (or a put) wakes A, and the
   * interrupt comes at the same moment. Either A took what it was woken for (it returns it; its
   * flag stays set), or it throws and passes the wake-up on: B must get it in the end, without
   * anything taken twice or lost.
   */
  const handOffs: [string, string, () => unknown[], (objs: unknown[]) => void, (objs: unknown[]) => void, (objs: unknown[]) => void][] = [
    [
      'Lock.acquire',
      'Lock',
      () => {
        const l = new Lock();
        l.acquire();
        return [l];
      },
      ([l]) => (l as Lock).release(),
      () => {}, // (the first waiter let it go again: the other one gets it then)
      ([l]) => assert.equal((l as Lock).locked(), false),
    ],
    [
      'Semaphore.acquire',
      'Semaphore',
      () => [new Semaphore(0)],
      ([s]) => (s as Semaphore).release(),
      ([s]) => (s as Semaphore).release(),
      ([s]) => assert.equal((s as Semaphore).value, 0),
    ],
    [
      'Queue.get',
      'Queue.get',
      () => [new Queue()],
      ([q]) => (q as Queue).put('x'),
      ([q]) => (q as Queue).put('x'),
      ([q]) => assert.equal((q as Queue).qsize(), 0),
    ],
  ];
  for (const mode of MODES) {
    for (const [what, kind, make, wake, again, check] of handOffs) {
      it(`${what} (${mode}): an interrupt racing the wake-up of the first waiter: the wake-up is never lost`, async () => {
        for (let round = 0; round < 12; round++) {
          const objs = make();
          const a = await startBlocked(what, mode, objs, { kind });
          const b = await startBlocked(what, mode, objs, { kind, timeout: LONG });
          wake(objs);
          a.interrupt();
          const first = await outcomeOf(a, INTERRUPT_BOUND);
          const aGot = !(first.threw instanceof InterruptedError);
          if (aGot) {
            // (Its interrupt came after its wait, or is left for its next one: its flag may be either.)
            assert.ok(first.returned === true || first.returned === 'x', `round ${round}: the first waiter either got it or was interrupted: ${show(first)}`);
            again(objs); // one more for the other waiter
          } else {
            assertInterrupted(first, what);
          }
          const second = await outcomeOf(b);
          assert.ok(second.returned === true || second.returned === 'x', `round ${round}: the other waiter got it: ${show(second)}`);
          check(objs);
        }
      });
    }
  }
});

// ---- the main thread ----------------------------------------------------------------------------

describe('the main thread', () => {
  for (const [kind, block] of [
    ['Event', (fallback: Event) => fallback.wait()],
    [
      'Queue.get',
      (fallback: Event) => {
        const q = new Queue<string>();
        const t = new Thread({ target: (f: Event, q: Queue<string>) => (f.wait(30_000), q.put('fallback')), args: [fallback, q] });
        t.start();
        try {
          return q.get();
        } finally {
          fallback.set();
          t.join();
        }
      },
    ],
  ] as const) {
    it(`interrupted by another thread while blocked in a sync wait (${kind}): the wait throws InterruptedError`, () => {
      assert.equal(currentThread(), mainThread());
      const done = new Event();
      const fallback = new Event();
      const t = new Thread<string>({ name: uniqueName('main interrupter'), target: fixture('interruptMainWhenAsleep'), args: [kind, done, fallback] });
      t.start();
      let outcome: unknown;
      try {
        outcome = block(fallback);
      } catch (error) {
        outcome = error;
      } finally {
        done.set();
        t.join(LONG);
        interrupted(); // whatever happened, the main thread goes on with its flag clear
      }
      assert.equal(t.result, 'interrupted');
      assert.ok(outcome instanceof InterruptedError, `the main thread's wait: ${show(outcome)}`);
      assert.equal(mainThread().isInterrupted(), false);
    });
  }
});

describe('the main thread, in a Promise wait', () => {
  it('interrupted by another thread while awaiting Event.waitAsync(): it rejects with InterruptedError', async () => {
    const go = new Event();
    const done = new Event();
    const fallback = new Event();
    const t = new Thread<string>({ name: uniqueName('main async interrupter'), target: fixture('interruptMainWhenReady'), args: [go, done, fallback] });
    t.start();
    let outcome: unknown;
    try {
      const waiting = fallback.waitAsync();
      go.set();
      outcome = await waiting;
    } catch (error) {
      outcome = error;
    } finally {
      done.set();
      await t.joinAsync({ timeout: LONG });
      interrupted();
    }
    assert.equal(t.result, 'interrupted');
    assert.ok(outcome instanceof InterruptedError, `the main thread's wait: ${show(outcome)}`);
    assert.equal(mainThread().isInterrupted(), false);
  });
});

// ---- deadlock detection's wait path ---------------------------------------------------------------

describe('with deadlock detection on (the observed wait path)', () => {
  it('an interrupted Lock.acquire and Event.wait still throw InterruptedError', async () => {
    await detecting('raise', async () => {
      const lock = new Lock();
      lock.acquire();
      const ev = new Event();
      try {
        const a = await startBlocked('Lock.acquire', 'sync', [lock], { kind: 'Lock' });
        a.interrupt();
        await interruptedOutcome(a, 'Lock.acquire');
        const b = await startBlocked('Event.wait', 'sync', [ev], { kind: 'Event' });
        b.interrupt();
        await interruptedOutcome(b, 'Event.wait');
      } finally {
        lock.release();
        ev.set();
      }
    });
  });
});

// ---- what an interrupted put leaves behind -----------------------------------------------------------

describe('an interrupted put gives back its staged item', () => {
  for (const [name, make, item] of [
    ['Queue', () => new Queue<string>(1), 'x'.repeat(8192)],
    ['PriorityQueue', () => new PriorityQueue<string>(1), 'y'.repeat(8192)],
  ] as const) {
    it(`${name}.put (sync) of an item held in the shared heap: 200 interrupted puts leave the heap's used bytes where they were`, async () => {
      const q = make();
      q.put('first');
      const n = 200;
      const before = heapStats().usedBytes;
      const t = new Thread<string[]>({ name: uniqueName(`${name} puts`), target: fixture('selfInterruptedPuts'), args: [q, item, n] });
      t.start();
      await t.joinAsync({ timeout: LONG });
      assert.deepEqual(t.result, ['InterruptedError']);
      assert.equal(q.qsize(), 1);
      const grown = heapStats().usedBytes - before;
      assert.ok(grown < (n * item.length) / 4, `used bytes grew by ${grown} after ${n} interrupted puts of ${item.length} characters (a staged item is not given back)`);
    });
  }
});
