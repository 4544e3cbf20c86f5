/**
 * Deadlock detection (`configureThreads({ deadlockDetection })`): a wait with no timeout that
 * would close a cycle of threads waiting on each other throws DeadlockError in the thread that
 * closes it ('raise'), or prints the cycle once and sleeps on ('warn'). Edges: Lock and RLock
 * (a Condition's lock too) to their holder, join to the joined thread, a Future to the pool
 * thread running it, or to all of its pool's threads while it is queued in a full pool.
 *
 * The order in which threads go to sleep is fixed with Events and by looking at dumpThreads()
 * until a thread sleeps in the expected wait (its record, and its OS thread asleep in the
 * kernel: its own look at the graph is over): the last thread to park is the one that must
 * raise. Every test ends every thread it started (the main thread releases what it holds after
 * the error), and turns detection off again, whatever happens. The last tests are stress
 * tests of the races between threads that look at the graph while it changes.
 */

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  Condition,
  DeadlockError,
  Event,
  type Future,
  Lock,
  Queue,
  RLock,
  Semaphore,
  SharedValue,
  Thread,
  ThreadError,
  ThreadPoolExecutor,
  TimeoutError,
  configureThreads,
  dumpThreads,
  mainThread,
  sleep,
  wait,
  type ThreadSnapshot,
} from 'threadkit';
import { WAITING, detecting, sleepsInKernel, untilAsleep, untilAsleepIn } from './helpers/waiting.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

const HEADER = 'deadlock: this wait would never end; the threads wait on each other:';

/** What `body` threw (it must throw). */
function thrownBy(body: () => unknown): unknown {
  try {
    body();
  } catch (error) {
    return error;
  }
  assert.fail('expected the call to throw');
}

function asDeadlock(error: unknown): DeadlockError {
  assert.ok(error instanceof DeadlockError, `expected a DeadlockError, got ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`);
  assert.ok(error instanceof ThreadError);
  assert.equal(error.name, 'DeadlockError');
  return error;
}

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The names in a cycle, in its order. */
const names = (error: DeadlockError): string[] => error.cycle.map((t) => t.name);

/** A cycle's waits, in its order: [kind, owner] for each thread. */
const waits = (error: DeadlockError): [string | undefined, number | undefined][] => error.cycle.map((s) => [s.waitingOn?.kind, s.waitingOn?.owner]);

/** Checks the message: the header, then one line per thread of the cycle, in the cycle's order. */
function checkMessage(error: DeadlockError): void {
  const lines = error.message.split('\n');
  assert.equal(lines[0], HEADER);
  assert.equal(lines.length, error.cycle.length + 1, error.message);
  error.cycle.forEach((t, i) => {
    assert.ok(t.waitingOn !== undefined, `${t.name} waits on something`);
    const nid = t.nativeId === undefined ? '' : ` nid=${t.nativeId}`;
    const prefix = `  "${escape(t.name)}" ident=${t.ident}${nid}: waiting on ${escape(t.waitingOn.kind)} `;
    assert.match(lines[i + 1]!, new RegExp(`^${prefix}.*\\(for \\d+ ms\\)$`), error.message);
    if (t.waitingOn.kind === 'Lock' || t.waitingOn.kind === 'RLock') {
      assert.match(lines[i + 1]!, new RegExp(`held by ident ${t.waitingOn.owner} \\(for \\d+ ms\\)$`), error.message);
    }
  });
}

/** A thread's idents, known once it started. */
function identOf(t: Thread): number {
  assert.ok(t.ident !== undefined);
  return t.ident;
}

/** What a thread takes and lets go: a Lock, an RLock, or a Condition (its lock). */
interface Lockish {
  acquire(options?: { timeout?: number }): boolean;
  release(): void;
}

// Thread targets shared by several tests: self-contained (sent to the thread as source text),
// everything they use comes in their args.

/**
 * One side of an AB/BA: takes `mine` (`depth` times), says so on `has`, then takes `theirs`
 * (with `timeout`: -1 for none), which another thread holds: sleeps until that one releases it.
 * Lets both go, and returns 'ended normally' (false: its timed wait timed out).
 */
const takeMineThenTheirs = (mine: Lockish, theirs: Lockish, has: Event, depth: number, timeout: number) => {
  for (let i = 0; i < depth; i++) mine.acquire();
  has.set();
  const got = theirs.acquire({ timeout });
  if (got) theirs.release();
  for (let i = 0; i < depth; i++) mine.release();
  return got && 'ended normally';
};

/**
 * Takes `first`, says so on `has`, waits for `go`, then takes `second`: returns the error that
 * wait threw (`first` let go), or 'ended normally'.
 */
const takeFirstThenOnGoSecond = (first: Lock, second: Lock, has: Event, go: Event) => {
  first.acquire();
  has.set();
  go.wait();
  try {
    second.acquire();
  } catch (error) {
    first.release();
    return error;
  }
  second.release();
  first.release();
  return 'ended normally';
};

/**
 * Holds `m` and waits on `cond`: returns what the wait returned (or threw), then lets `m` go.
 */
const waitOnCondHoldingM = (cond: Condition, m: Lock) => {
  m.acquire();
  cond.acquire();
  let outcome: unknown;
  try {
    try {
      outcome = cond.wait();
    } catch (error) {
      outcome = error;
    }
  } finally {
    cond.release(); // the usual pattern: the wait returns (or throws) with the lock held
  }
  if (m.locked()) m.release(); // (unless a notifier had to break the cycle: see there)
  return outcome;
};

/**
 * An AB/BA, the thread's side first: the main thread takes `a` (`depth` times), then thread
 * `name` takes `b` (`depth` times) and wants `a` (takeMineThenTheirs, with `timeout`), and
 * sleeps on it in a wait of `kind`: it parked first, so a wait of the main thread's on `b`
 * closes the cycle. With `body`, runs it then, releases `a` whatever happens, and joins the
 * thread; without, leaves the thread asleep and `a` held. Returns the thread.
 */
function abba(name: string, a: Lockish, b: Lockish, options: { depth?: number; timeout?: number; kind?: string }, body?: (t: Thread) => void): Thread {
  const { depth = 1, timeout = -1, kind = 'Lock' } = options;
  const releaseA = () => {
    for (let i = 0; i < depth; i++) a.release();
  };
  const hasB = new Event();
  const t = new Thread({ name, target: takeMineThenTheirs, args: [b, a, hasB, depth, timeout] });
  for (let i = 0; i < depth; i++) a.acquire();
  t.start();
  try {
    hasB.wait();
    untilAsleepIn(name, kind);
    body?.(t);
  } catch (error) {
    releaseA();
    throw error;
  }
  if (body !== undefined) {
    releaseA();
    t.join();
  }
  return t;
}

describe('configureThreads({ deadlockDetection })', () => {
  it("accepts 'off', 'warn' and 'raise', and nothing else", () => {
    for (const mode of ['off', 'warn', 'raise', 'off'] as const) configureThreads({ deadlockDetection: mode });
    for (const bad of ['on', true, 1, null]) {
      assert.throws(() => configureThreads({ deadlockDetection: bad as never }), { name: 'TypeError', message: /deadlockDetection must be 'off', 'warn' or 'raise'/ });
    }
  });
});

describe('Lock cycles', () => {
  it('AB/BA between the main thread and a thread: the main thread closes the cycle and gets DeadlockError; the thread then gets its lock', async () => {
    await detecting('raise', () => {
      const a = new Lock();
      const b = new Lock();
      // The thread holds B and wants A, which the main thread holds: it sleeps until the main
      // thread releases A.
      const t = abba('dl-ab', a, b, {}, (t) => {
        const error = asDeadlock(thrownBy(() => b.acquire()));
        const main = mainThread();
        assert.deepEqual(names(error), ['MainThread', 'dl-ab'], 'the thread that closes the cycle comes first');
        const [me, other] = error.cycle as [ThreadSnapshot, ThreadSnapshot];
        assert.equal(me.ident, main.ident);
        assert.equal(me.nativeId, main.nativeId);
        assert.equal(other.ident, identOf(t));
        assert.equal(other.nativeId, t.nativeId);
        for (const s of error.cycle) {
          assert.equal(s.state, 'waiting');
          assert.equal(s.daemon, false);
          assert.equal(s.waitingOn?.kind, 'Lock');
          assert.ok(typeof s.waitingOn.sinceMs === 'number' && s.waitingOn.sinceMs >= 0);
        }
        assert.equal(me.waitingOn?.owner, identOf(t), 'the main thread waits on B, held by the thread');
        assert.equal(other.waitingOn?.owner, main.ident, 'the thread waits on A, held by the main thread');
        assert.equal(me.waitingOn?.object, String(b)); // (B is still held: the same text)
        checkMessage(error);
        // The main thread did not sleep and did not take B; the thread still waits.
        assert.ok(b.locked());
        assert.ok(t.isAlive());
      });
      assert.equal(t.result, 'ended normally');
      assert.ok(!a.locked() && !b.locked());
      // Nothing stays armed: the same locks, taken in order, work as before.
      assert.ok(b.acquire());
      b.release();
    });
  });

  it('a cycle of three threads: only the last to park gets DeadlockError, and its cycle names all three in wait-for order', async () => {
    await detecting('raise', () => {
      const locks = [new Lock(), new Lock(), new Lock()];
      const has = [new Event(), new Event(), new Event()];
      const go = [new Event(), new Event(), new Event()];
      const threads = ['dl3-A', 'dl3-B', 'dl3-C'].map((name, i) => new Thread({ name, target: takeFirstThenOnGoSecond, args: [locks[i]!, locks[(i + 1) % 3]!, has[i]!, go[i]!] }));
      for (const t of threads) t.start();
      for (const e of has) e.wait();
      go[0]!.set();
      untilAsleepIn('dl3-A', 'Lock'); // A waits for L2 (B holds it)
      go[1]!.set();
      untilAsleepIn('dl3-B', 'Lock'); // B waits for L3 (C holds it)
      go[2]!.set(); // C wants L1 (A holds it): C closes the cycle
      for (const t of threads) t.join();
      assert.equal(threads[0]!.result, 'ended normally');
      assert.equal(threads[1]!.result, 'ended normally');
      const error = asDeadlock(threads[2]!.result);
      assert.equal(error.cycle.length, 3);
      assert.deepEqual(names(error), ['dl3-C', 'dl3-A', 'dl3-B']);
      const idents = threads.map(identOf);
      assert.deepEqual(
        error.cycle.map((t) => t.ident),
        [idents[2], idents[0], idents[1]],
      );
      // Each waits on a Lock held by the next one in the cycle.
      error.cycle.forEach((t, i) => {
        assert.equal(t.waitingOn?.kind, 'Lock');
        assert.equal(t.waitingOn.owner, error.cycle[(i + 1) % 3]!.ident);
      });
      checkMessage(error);
      assert.ok(locks.every((l) => !l.locked()));
    });
  });

  it('a cycle that closes while the other thread already sleeps in it is found by the later sleeper, even one that slept in another wait first', async () => {
    await detecting('raise', () => {
      // T1 holds A and sleeps on an Event; T2 holds B and sleeps on A (no cycle yet: T1 waits
      // on nobody). The Event wakes T1, which then wants B: T1 parks second, and closes it.
      const a = new Lock();
      const b = new Lock();
      const hasA = new Event();
      const hasB = new Event();
      const wake = new Event();
      const t1 = new Thread({ name: 'dl-late-1', target: takeFirstThenOnGoSecond, args: [a, b, hasA, wake] });
      const t2 = new Thread({ name: 'dl-late-2', target: takeMineThenTheirs, args: [b, a, hasB, 1, -1] });
      t1.start();
      hasA.wait();
      untilAsleepIn('dl-late-1', 'Event');
      t2.start();
      hasB.wait();
      const asleep = untilAsleepIn('dl-late-2', 'Lock');
      assert.equal(asleep.waitingOn?.owner, identOf(t1));
      assert.ok(t2.isAlive(), 'T2 sleeps: T1 waits on an Event, nobody in particular');
      wake.set();
      t1.join();
      t2.join();
      const error = asDeadlock(t1.result);
      assert.equal(t2.result, 'ended normally');
      assert.deepEqual(names(error), ['dl-late-1', 'dl-late-2']);
      assert.equal(error.cycle[0]!.waitingOn?.owner, identOf(t2));
      assert.equal(error.cycle[1]!.waitingOn?.owner, identOf(t1));
      checkMessage(error);
    });
  });
});

describe('RLock and a Condition’s lock', () => {
  it('AB/BA on RLocks held re-entrantly: DeadlockError, waits of kind RLock; releasing every level lets the thread on', async () => {
    await detecting('raise', () => {
      const a = new RLock();
      const b = new RLock();
      // Both sides take their RLock twice.
      const t = abba('dl-rlock', a, b, { depth: 2, kind: 'RLock' }, (t) => {
        const error = asDeadlock(thrownBy(() => b.acquire()));
        assert.deepEqual(names(error), ['MainThread', 'dl-rlock']);
        assert.deepEqual(waits(error), [
          ['RLock', identOf(t)],
          ['RLock', mainThread().ident],
        ]);
        checkMessage(error);
        // The failed acquire added no level: two releases free A.
        assert.throws(() => b.release(), ThreadError, 'the main thread does not own B');
      });
      assert.equal(t.result, 'ended normally');
      assert.ok(!a.locked() && !b.locked());
    });
  });

  it('cond.acquire() is a wait on the Condition’s RLock: it closes a cycle with a thread that holds it and waits on a Lock the caller holds', async () => {
    await detecting('raise', () => {
      const cond = new Condition(); // an RLock
      const m = new Lock();
      // The thread holds the Condition's lock and wants M, which the main thread holds.
      const t = abba('dl-cond-acquire', m, cond, {}, (t) => {
        const error = asDeadlock(thrownBy(() => cond.acquire()));
        assert.deepEqual(names(error), ['MainThread', 'dl-cond-acquire']);
        assert.equal(error.cycle[0]!.waitingOn?.kind, 'RLock');
        assert.equal(error.cycle[0]!.waitingOn.owner, identOf(t));
        assert.equal(error.cycle[0]!.waitingOn.object, String(cond.lock));
        assert.equal(error.cycle[1]!.waitingOn?.kind, 'Lock');
        assert.equal(error.cycle[1]!.waitingOn.owner, mainThread().ident);
        checkMessage(error);
      });
      assert.equal(t.result, 'ended normally');
      assert.ok(!cond.lock.locked());
    });
  });

  for (const LockClass of [Lock, RLock]) {
    const kind = LockClass.name;
    it(`taking the ${kind} back after cond.wait() is a ${kind} wait: a notified waiter that holds M, and a notifier that holds the lock and wants M, make a cycle`, async () => {
      await detecting('raise', () => {
        const cond = new Condition(new LockClass());
        const m = new Lock();
        const name = `dl-cond-wait-${kind}`;
        const t = new Thread({ name, args: [cond, m], target: waitOnCondHoldingM });
        t.start();
        untilAsleepIn(name, 'Condition');
        cond.acquire();
        try {
          cond.notify();
          // The waiter wakes and sleeps again, now to take the lock back from the main thread.
          const waiter = untilAsleepIn(name, kind);
          assert.equal(waiter.waitingOn?.owner, mainThread().ident);
          const error = asDeadlock(thrownBy(() => m.acquire()));
          assert.deepEqual(names(error), ['MainThread', name]);
          assert.deepEqual(waits(error), [
            ['Lock', identOf(t)],
            [kind, mainThread().ident],
          ]);
          assert.equal(error.cycle[1]!.waitingOn?.object, String(cond.lock));
          checkMessage(error);
        } finally {
          cond.release();
        }
        t.join();
        assert.equal(t.result, true, 'the waiter took its lock back and its wait returned: notified');
        assert.ok(!m.locked() && !cond.lock.locked());
      });
    });
  }

  it(
    'a cycle closed by cond.wait() taking its Lock back never ends the wait without the lock: the caller’s finally { cond.release() } cannot free the lock another thread holds',
    async () => {
      await detecting('raise', () => {
        // (A DeadlockError from the re-acquire would end the wait without the lock: the
        // waiter's finally would then release the Lock the main thread holds.)
        const cond = new Condition(new Lock());
        const m = new Lock();
        const waiter = new Thread({ name: 'dl-cond-raise-waiter', args: [cond, m], target: waitOnCondHoldingM });
        // Notifies once the main thread sleeps on M (a Lock's Condition: any thread may notify
        // while the lock is held), so that the waiter is the last to park: taking its lock
        // back closes the cycle. If the two then stay asleep in it (the wait neither raised
        // nor ended), it breaks the cycle by releasing M (any thread may release a Lock).
        const notifier = new Thread({
          name: 'dl-cond-raise-notifier',
          args: [cond, m],
          target: async (cond: Condition, m: Lock) => {
            const { dumpThreads, sleep } = await import('threadkit');
            const { untilAsleepIn } = await import('./helpers/waiting.js');
            // The main thread's record, and its OS thread asleep (twice in a row): its look is over.
            untilAsleepIn('MainThread', 'Lock');
            cond.notify();
            let asleep = 0;
            for (let i = 0; i < 20_000; i++) {
              const threads = dumpThreads().threads;
              const waiter = threads.find((s) => s.name === 'dl-cond-raise-waiter');
              if (waiter === undefined || waiter.state === 'stopped') return 'the wait ended';
              const main = threads.find((s) => s.name === 'MainThread');
              asleep = waiter.waitingOn?.kind === 'Lock' && main?.waitingOn?.kind === 'Lock' ? asleep + 1 : 0;
              if (asleep === 20) {
                m.release();
                return 'broke the cycle';
              }
              sleep(5);
            }
            return 'gave up';
          },
        });
        waiter.start();
        untilAsleepIn('dl-cond-raise-waiter', 'Condition');
        cond.acquire();
        let mainStillHolds: boolean;
        let mainGot: unknown;
        try {
          notifier.start();
          // M comes once the waiter gives up, or once the notifier breaks the cycle; or the
          // main thread's wait, in the cycle too, raises instead of the waiter's.
          try {
            mainGot = m.acquire();
          } catch (error) {
            mainGot = error;
          }
          mainStillHolds = cond.lock.locked();
          if (mainGot === true) m.release();
        } finally {
          if (cond.lock.locked()) cond.release();
        }
        waiter.join();
        notifier.join();
        assert.ok(!(waiter.result instanceof Error), `the wait ended with ${String(waiter.result)}`);
        assert.equal(waiter.result, true, 'the wait returned, notified, with the lock');
        assert.ok(mainStillHolds, 'the waiter’s finally released the lock the main thread holds');
        if (mainGot !== true) {
          const error = asDeadlock(mainGot);
          assert.deepEqual(names(error).sort(), ['MainThread', 'dl-cond-raise-waiter']);
        }
        assert.ok(!m.locked() && !cond.lock.locked());
      });
    },
  );
});

describe('join', () => {
  it('two threads joining each other: the second to join gets DeadlockError, and the first one’s join then returns', async () => {
    await detecting('raise', () => {
      const mailbox = new Queue();
      const go = new Event();
      const first = new Thread({
        name: 'dl-join-1',
        args: [mailbox],
        target: (mailbox: Queue) => {
          const other = mailbox.get() as Thread;
          other.join();
          return `joined ${other.name}`;
        },
      });
      const second = new Thread({
        name: 'dl-join-2',
        args: [first, go],
        target: (first: Thread, go: Event) => {
          go.wait();
          try {
            first.join();
          } catch (error) {
            return error;
          }
          return 'joined';
        },
      });
      first.start();
      second.start();
      mailbox.put(second);
      const joining = untilAsleepIn('dl-join-1', 'join');
      assert.equal(joining.waitingOn?.owner, identOf(second));
      go.set();
      first.join();
      second.join();
      assert.equal(first.result, 'joined dl-join-2');
      const error = asDeadlock(second.result);
      assert.deepEqual(names(error), ['dl-join-2', 'dl-join-1']);
      assert.deepEqual(waits(error), [
        ['join', identOf(first)],
        ['join', identOf(second)],
      ]);
      checkMessage(error);
    });
  });

  it('a thread may join the main thread (mainThread().join()); doing so while the main thread joins it raises DeadlockError in that thread', async () => {
    await detecting('raise', () => {
      const t = new Thread({
        name: 'dl-join-main',
        target: async () => {
          const { mainThread } = await import('threadkit');
          const { untilAsleepIn } = await import('./helpers/waiting.js');
          // Until the main thread sleeps in its join (its record, and its OS thread asleep twice
          // in a row: its look is over), so that this thread closes the cycle.
          untilAsleepIn('MainThread', 'join');
          try {
            mainThread().join();
          } catch (error) {
            return error;
          }
          return 'joined the main thread';
        },
      });
      t.start();
      t.join(); // no error here: the main thread parked first
      const error = asDeadlock(t.result);
      assert.deepEqual(names(error), ['dl-join-main', 'MainThread']);
      assert.deepEqual(waits(error), [
        ['join', mainThread().ident],
        ['join', identOf(t)],
      ]);
      checkMessage(error);
    });
  });
});

describe('futures: CPython’s documented ThreadPoolExecutor deadlocks', () => {
  for (const how of ['result', 'exception'] as const) {
    it(`a task in a 1-worker pool that waits (${how}()) for a task it submitted: DeadlockError in the task, and the pool goes on`, async () => {
      await detecting('raise', () => {
        const prefix = `dl-pool1-${how}`;
        const pool = new ThreadPoolExecutor({ maxWorkers: 1, threadNamePrefix: prefix });
        try {
          const inners = new Queue();
          const outer = pool.submit(
            (pool: ThreadPoolExecutor, inners: Queue, how: string) => {
              const inner = pool.submit((x: number) => x * 2, 21);
              inners.put(inner);
              return how === 'result' ? inner.result() : inner.exception();
            },
            pool,
            inners,
            how,
          );
          const error = asDeadlock(outer.exception());
          assert.throws(() => outer.result(), DeadlockError);
          assert.deepEqual(names(error), [`${prefix}_0`], 'the pool’s only thread waits on itself');
          assert.equal(error.cycle[0]!.waitingOn?.kind, 'Future');
          assert.match(error.cycle[0]!.waitingOn.object, /state=pending/);
          checkMessage(error);
          // The task queued behind it ran once the pool thread was free again.
          const inner = inners.get() as Future<number>;
          assert.equal(inner.result(), 42);
          assert.equal(pool.submit((x: number) => x + 1, 1).result(), 2);
        } finally {
          pool.shutdown();
        }
      });
    });
  }

  /**
   * Two tasks in a 2-worker pool, each waiting for a task it submitted, queued behind both:
   * `firstSuffix` names the pool thread (`_0` or `_1`) whose task waits first.
   */
  async function nestedWaits(firstSuffix: '_0' | '_1'): Promise<{ error: DeadlockError; lastName: string; firstName: string }> {
    return detecting('raise', () => {
      const prefix = `dl-pool2${firstSuffix}`;
      const firstName = `${prefix}${firstSuffix}`;
      const lastName = `${prefix}${firstSuffix === '_0' ? '_1' : '_0'}`;
      const pool = new ThreadPoolExecutor({ maxWorkers: 2, threadNamePrefix: prefix });
      try {
        const goFirst = new Event();
        const goLast = new Event();
        const running = new Semaphore(0);
        const bothRunning = new Event();
        const outer = async (pool: ThreadPoolExecutor, running: Semaphore, bothRunning: Event, goFirst: Event, goLast: Event, firstName: string) => {
          const { currentThread } = await import('threadkit');
          const me = currentThread().name;
          // Submitted once both outer tasks run (else an inner task could be queued before the
          // second outer task, and run first): queued behind both, both pool threads busy.
          running.release();
          bothRunning.wait();
          const inner = pool.submit((name: string) => name, me);
          (me === firstName ? goFirst : goLast).wait();
          return inner.result();
        };
        const futures = [0, 1].map(() => pool.submit(outer, pool, running, bothRunning, goFirst, goLast, firstName));
        running.acquire();
        running.acquire();
        bothRunning.set();
        goFirst.set();
        untilAsleepIn(firstName, 'Future');
        goLast.set();
        // (wait(): a wait with no holder, so the main thread cannot see the pool's cycle itself.)
        wait(futures);
        const failed = futures.filter((f) => f.exception() !== undefined);
        assert.equal(failed.length, 1, 'exactly one task failed: the one whose thread parked last');
        const error = asDeadlock(failed[0]!.exception());
        const other = futures.find((f) => f !== failed[0])!;
        assert.equal(other.result(), firstName, 'the other task got its inner task’s result once a thread was free');
        assert.equal(error.cycle[0]!.name, lastName);
        for (const s of error.cycle) assert.equal(s.waitingOn?.kind, 'Future');
        checkMessage(error);
        assert.equal(pool.submit((x: number) => x + 1, 1).result(), 2, 'the pool goes on');
        return { error, lastName, firstName };
      } finally {
        pool.shutdown();
      }
    });
  }

  it('two tasks in a 2-worker pool, each waiting for a task queued behind both: the one whose thread parks last gets DeadlockError naming both threads', async () => {
    const { error, lastName, firstName } = await nestedWaits('_0');
    assert.deepEqual(names(error), [lastName, firstName]);
  });

  it(
    'the same, with the pool’s first thread parking last: its cycle names both threads too',
    async () => {
      // (The closing thread is listed first among its pool's threads: the shortest way back,
      // through itself alone, must not be the one reported.)
      const { error, lastName, firstName } = await nestedWaits('_1');
      assert.deepEqual(names(error), [lastName, firstName]);
    },
  );

  it(
    'wait([f]) (concurrent.futures.wait) in a 1-worker pool’s task, on a task it submitted: DeadlockError too',
    async () => {
      await detecting('raise', () => {
        const prefix = 'dl-pool-wait';
        const pool = new ThreadPoolExecutor({ maxWorkers: 1, threadNamePrefix: prefix });
        const outer = pool.submit(async (pool: ThreadPoolExecutor) => {
          const { wait } = await import('threadkit');
          const inner = pool.submit((x: number) => x * 2, 21);
          try {
            wait([inner]);
          } catch (error) {
            return error;
          }
          return 'the wait returned';
        }, pool);
        // A wait that does not raise sleeps: then the queued task is cancelled, which ends it.
        const asleep = () => {
          const t = dumpThreads().threads.find((s) => s.name === `${prefix}_0`);
          return t?.waitingOn?.kind === 'wait' && sleepsInKernel(t.nativeId);
        };
        for (let streak = 0; !outer.done() && streak < 2; sleep(1)) streak = asleep() ? streak + 1 : 0;
        if (!outer.done()) pool.shutdown({ wait: false, cancelFutures: true });
        try {
          const error = asDeadlock(outer.result());
          assert.deepEqual(names(error), [`${prefix}_0`]);
        } finally {
          pool.shutdown();
        }
      });
    },
  );

  it('CPython’s example: a waits on b’s future and b on a’s, in a 2-worker pool: b, which waits last, gets DeadlockError; a gets it from b.result()', async () => {
    await detecting('raise', () => {
      const prefix = 'dl-pool-doc';
      const pool = new ThreadPoolExecutor({ maxWorkers: 2, threadNamePrefix: prefix });
      try {
        const toA = new Queue();
        const toB = new Queue();
        const waitOnOther = (inbox: Queue) => {
          const other = inbox.get() as Future<unknown>;
          return other.result();
        };
        const a = pool.submit(waitOnOther, toA);
        const b = pool.submit(waitOnOther, toB);
        toA.put(b);
        const aWaits = untilAsleep((s) => s.name.startsWith(`${prefix}_`) && s.waitingOn?.kind === 'Future', 'a’s thread asleep on b’s Future');
        toB.put(a);
        wait([a, b]);
        const fromB = asDeadlock(b.exception());
        const fromA = asDeadlock(a.exception());
        assert.equal(fromB.cycle.length, 2);
        assert.equal(fromB.cycle[1]!.name, aWaits.name, 'a’s thread, which waited first, comes second');
        assert.notEqual(fromB.cycle[0]!.name, aWaits.name);
        assert.ok(fromB.cycle.every((s) => s.name.startsWith(`${prefix}_`)));
        // Each waits on a running Future: the thread running it is its owner.
        assert.equal(fromB.cycle[0]!.waitingOn?.owner, fromB.cycle[1]!.ident);
        assert.equal(fromB.cycle[1]!.waitingOn?.owner, fromB.cycle[0]!.ident);
        checkMessage(fromB);
        assert.equal(fromA.message, fromB.message, 'a failed with b’s error (re-raised by b.result())');
        assert.equal(pool.submit((x: number) => x + 1, 1).result(), 2, 'the pool goes on');
      } finally {
        pool.shutdown();
      }
    });
  });
});

describe('waits that cannot close a cycle', () => {
  it('a Lock used as a signal: a thread waiting for a Lock it took itself, released by another thread, gets no DeadlockError', async () => {
    await detecting('raise', () => {
      const signal = new Lock();
      signal.acquire();
      const releaser = new Thread({
        name: 'dl-signal-releaser',
        args: [signal],
        target: (signal: Lock) => {
          const nap = new Int32Array(new SharedArrayBuffer(4));
          Atomics.wait(nap, 0, 0, 50); // (main is then most likely asleep in its second acquire)
          signal.release();
        },
      });
      releaser.start();
      signal.acquire(); // waits for the releaser: the hand-off idiom, not a deadlock
      signal.release();
      releaser.join();
    });
  });

  it('a timed Lock acquire in a would-be cycle returns false after its timeout (either side timed)', async () => {
    await detecting('raise', () => {
      const a = new Lock();
      const b = new Lock();
      // The thread's wait has no timeout; the main thread's, closing the cycle, has one.
      abba('dl-timed-1', a, b, {}, () => {
        assert.equal(b.acquire({ timeout: 50 }), false);
      });

      // The thread's wait has a timeout; the main thread's, closing the cycle, has none: it
      // sleeps until the thread gives up and releases B.
      const timed = abba('dl-timed-2', a, b, { timeout: 200 }, () => {
        assert.equal(b.acquire(), true);
        b.release();
      });
      assert.equal(timed.result, false);
    });
  });

  it('a timed RLock acquire, a timed join and a timed result() in would-be cycles time out instead of raising', async () => {
    await detecting('raise', () => {
      // RLock: the main thread holds A, the thread holds B and waits on A.
      const a = new RLock();
      const b = new RLock();
      abba('dl-timed-rlock', a, b, { kind: 'RLock' }, () => {
        assert.equal(b.acquire({ timeout: 50 }), false);
      });

      // join: the main thread joins the thread (no timeout), the thread joins the main thread with one.
      const joiner = new Thread({
        name: 'dl-timed-join',
        target: async () => {
          const { mainThread } = await import('threadkit');
          const { untilAsleepIn } = await import('./helpers/waiting.js');
          untilAsleepIn('MainThread', 'join');
          mainThread().join(50);
          return mainThread().isAlive();
        },
      });
      joiner.start();
      joiner.join();
      assert.equal(joiner.result, true, 'the timed join returned with the main thread alive');

      // result(timeout) in a 1-worker pool, on a task queued behind the caller.
      const pool = new ThreadPoolExecutor({ maxWorkers: 1, threadNamePrefix: 'dl-timed-pool' });
      try {
        const outer = pool.submit((pool: ThreadPoolExecutor) => {
          const inner = pool.submit(() => 'inner ran');
          try {
            inner.result(50);
          } catch (error) {
            return (error as Error).name;
          }
          return 'no timeout';
        }, pool);
        assert.equal(outer.result(), TimeoutError.name);
      } finally {
        pool.shutdown();
      }
    });
  });

  const noHolder = [
    { kind: 'Event', make: () => new Event(), waitingAs: 'Event' },
    { kind: 'Queue', make: () => new Queue(), waitingAs: 'Queue.get' },
    { kind: 'Condition', make: () => new Condition(new Lock()), waitingAs: 'Condition' },
    { kind: 'Semaphore', make: () => new Semaphore(0), waitingAs: 'Semaphore' },
  ] as const;
  for (const { kind, make, waitingAs } of noHolder) {
    it(`a thread that holds a Lock while it waits on a ${kind} is waiting on nobody: the main thread’s acquire of that Lock sleeps, no error`, async () => {
      await detecting('raise', () => {
        const lock = new Lock();
        const thing = make();
        const holds = new Event();
        const name = `dl-noholder-${kind}`;
        const holder = new Thread({
          name,
          args: [lock, thing, kind, holds],
          target: (lock: Lock, thing: unknown, kind: string, holds: Event) => {
            lock.acquire();
            holds.set();
            if (kind === 'Event') (thing as Event).wait();
            else if (kind === 'Queue') (thing as Queue).get();
            else if (kind === 'Semaphore') (thing as Semaphore).acquire();
            else {
              const cond = thing as Condition;
              cond.acquire();
              cond.wait();
              cond.release();
            }
            lock.release();
            return 'ended normally';
          },
        });
        // Ends the holder's wait once the main thread sleeps on the Lock (only the main thread
        // would, in the program this stands for: a deadlock nobody can see).
        const waker = new Thread({
          name: `${name}-waker`,
          args: [thing, kind],
          target: async (thing: unknown, kind: string) => {
            const { untilAsleepIn } = await import('./helpers/waiting.js');
            untilAsleepIn('MainThread', 'Lock');
            if (kind === 'Event') (thing as { set(): void }).set();
            else if (kind === 'Queue') (thing as { put(x: unknown): void }).put('wake up');
            else if (kind === 'Semaphore') (thing as { release(): void }).release();
            else {
              const cond = thing as { acquire(): boolean; notify(): void; release(): void };
              cond.acquire();
              cond.notify();
              cond.release();
            }
          },
        });
        holder.start();
        holds.wait();
        untilAsleepIn(name, waitingAs);
        waker.start();
        assert.equal(lock.acquire(), true);
        lock.release();
        holder.join();
        waker.join();
        assert.equal(holder.result, 'ended normally');
      });
    });
  }
});

describe("deadlockDetection: 'off' (the default)", () => {
  it('a real cycle raises nothing: the main thread sleeps until a third thread breaks it', async () => {
    await detecting('off', () => {
      const a = new Lock();
      const b = new Lock();
      // Releases A (held by the main thread: any thread may release a Lock) once the main
      // thread sleeps on B: the cycle is then broken.
      const breaker = new Thread({ name: 'dl-off-breaker', target: { module: WAITING, name: 'releaseWhenAsleep' }, args: [a, 'MainThread', 'Lock', 0] });
      const t = abba('dl-off', a, b, {});
      breaker.start();
      assert.equal(b.acquire(), true, 'no DeadlockError: the wait went on until the cycle was broken');
      b.release();
      t.join();
      breaker.join();
      assert.equal(t.result, 'ended normally');
      assert.ok(!a.locked() && !b.locked());
    });
  });
});

describe("deadlockDetection: 'warn' (in a process of its own, to read stderr)", () => {
  function runWarn(scenario: string): { status: number | null; stdout: string; stderr: string; warnings: string[] } {
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'test/fixtures/deadlock-warn.ts', scenario], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, killSignal: 'SIGKILL' });
    const warnings = run.stderr.split('threadkit warning: ').slice(1);
    return { status: run.status, stdout: run.stdout, stderr: run.stderr, warnings };
  }

  it('the thread that closes a cycle prints it once to stderr and goes on waiting; the program ends normally once the cycle is broken', () => {
    const { status, stdout, stderr, warnings } = runWarn('locks');
    assert.equal(status, 0, stderr);
    assert.match(stdout, /^main: acquired=true$/m, 'the wait went on, and ended with the lock');
    assert.equal(warnings.length, 1, stderr);
    const lines = warnings[0]!.trimEnd().split('\n');
    assert.equal(lines[0], HEADER);
    assert.match(lines[1]!, /^ {2}"MainThread" ident=\d+ nid=\d+: waiting on Lock .* held by ident \d+ \(for \d+ ms\)$/);
    assert.match(lines[2]!, /^ {2}"holder" ident=\d+ nid=\d+: waiting on Lock .* held by ident \d+ \(for \d+ ms\)$/);
    assert.equal(lines[3], "  (deadlockDetection: 'warn': the thread goes on waiting)");
    assert.equal(lines.length, 4);
  });

  it(
    'a cycle through a join is printed once too (the joiner looks again after each slice of its wait)',
    () => {
      // (The joiner closes the cycle and prints it; the main thread's join, which sleeps in
      // slices, finds the same cycle at its next slice: it must not print it again.)
      const { status, stdout, stderr, warnings } = runWarn('join');
      assert.equal(status, 0, stderr);
      assert.match(stdout, /^main: joined$/m);
      assert.equal(warnings.length, 1, stderr);
    },
  );
});

describe('races in the detection (stress)', () => {
  it(
    'no false alarm: a thread that holds A and waits for L, while L’s holder releases it and then waits for A, is no cycle',
    async () => {
      await detecting('raise', () => {
        // Each round: the waiter holds A and waits (on a Semaphore) until the other thread
        // holds L, then takes L; the other thread holds L a little (varied), releases it, then
        // takes A. The waiter holds A while it waits for L; the other never holds L while it
        // waits for A: no cycle can form. The rounds stop at the first alarm.
        // (A look that reads L's holder, then, after L changed hands, that thread's new wait
        // record, finds a cycle that never existed at any one moment.)
        const a = new Lock();
        const l = new Lock();
        const alarms = new SharedValue('int32');
        const stop = new SharedValue('int32');
        const rounds = 20_000;
        type Args = [Lock, Lock, SharedValue<'int32'>, SharedValue<'int32'>, Semaphore, Semaphore, Semaphore, number];
        const args: Args = [a, l, alarms, stop, new Semaphore(0), new Semaphore(0), new Semaphore(0), rounds];
        const holdsL = new Thread({
          name: 'dl-false-holdsL',
          args,
          target: (...[a, l, alarms, stop, ready, go, done, rounds]: Args) => {
            const seen: string[] = [];
            for (let i = 0; i < rounds; i++) {
              ready.acquire();
              l.acquire();
              go.release();
              const spin = (i * 7919) % 20_000;
              for (let s = 0; s < spin; s++);
              l.release();
              try {
                a.acquire();
                a.release();
              } catch (error) {
                alarms.add(1);
                seen.push((error as Error).message);
              }
              const last = alarms.load() > 0;
              if (last) stop.store(1);
              done.release();
              if (last) break;
            }
            return seen;
          },
        });
        const holdsA = new Thread({
          name: 'dl-false-holdsA',
          args,
          target: (...[a, l, alarms, stop, ready, go, done, rounds]: Args) => {
            const seen: string[] = [];
            for (let i = 0; i < rounds; i++) {
              a.acquire();
              ready.release();
              go.acquire();
              try {
                l.acquire();
                l.release();
              } catch (error) {
                alarms.add(1);
                seen.push((error as Error).message);
              }
              a.release();
              done.acquire();
              if (stop.load() !== 0) break;
            }
            return seen;
          },
        });
        holdsL.start();
        holdsA.start();
        holdsL.join();
        holdsA.join();
        assert.deepEqual([holdsA.result, holdsL.result], [[], []]);
      });
    },
  );

  it(
    'no missed cycle: a thread woken for a lock that its holder took back at once sleeps again into a cycle, and one of the two raises',
    async () => {
      await detecting('raise', () => {
        // Each round: T holds M and waits for L; U holds L a little (varied), releases it and
        // takes it back at once, then waits for M. A real cycle every time U wins L back: one
        // of the two must raise. The main thread breaks a cycle both sleep in (it releases M,
        // which T holds), counts it, and ends the rounds.
        // (U looks while T is awake between its two sleeps: T must look again when it sleeps
        // again, or the cycle goes unreported.)
        const m = new Lock();
        const l = new Lock();
        const raised = new SharedValue('int32');
        const stop = new SharedValue('int32');
        const ended = new SharedValue('int32');
        const progress = new SharedValue('int32');
        const rounds = 5000;
        type Args = [Lock, Lock, SharedValue<'int32'>, SharedValue<'int32'>, SharedValue<'int32'>, SharedValue<'int32'>, Semaphore, Semaphore, Semaphore, number];
        const args: Args = [m, l, raised, stop, ended, progress, new Semaphore(0), new Semaphore(0), new Semaphore(0), rounds];
        const t = new Thread({
          name: 'dl-missed-T',
          args,
          target: (...[m, l, raised, , ended, , ready, go, done, rounds]: Args) => {
            for (let i = 0; i < rounds; i++) {
              m.acquire();
              ready.release();
              go.acquire();
              try {
                l.acquire();
                l.release();
              } catch {
                raised.add(1);
              }
              if (m.locked()) m.release(); // (not when the main thread broke a cycle)
              done.acquire();
              if (ended.load() !== 0) break;
            }
          },
        });
        const u = new Thread({
          name: 'dl-missed-U',
          args,
          target: (...[m, l, raised, stop, ended, progress, ready, go, done, rounds]: Args) => {
            for (let i = 0; i < rounds; i++) {
              ready.acquire();
              l.acquire();
              go.release();
              const spin = (i * 7919) % 20_000;
              for (let s = 0; s < spin; s++);
              l.release();
              l.acquire(); // back at once: T, woken, finds it taken and sleeps again
              try {
                m.acquire();
                m.release();
              } catch {
                raised.add(1);
              }
              l.release();
              const last = stop.load() !== 0;
              if (last) ended.store(1);
              progress.add(1);
              done.release();
              if (last) break;
            }
          },
        });
        u.start();
        t.start();
        // Stuck: both in Lock waits at 5 looks in a row, 20 ms apart, with no round ended in
        // between (a round takes well under a millisecond).
        let missed = 0;
        let asleep = 0;
        let rounded = -1;
        while (t.isAlive() || u.isAlive()) {
          t.join(20);
          const threads = dumpThreads().threads;
          const both = ['dl-missed-T', 'dl-missed-U'].every((name) => threads.find((s) => s.name === name)?.waitingOn?.kind === 'Lock');
          const now = progress.load();
          asleep = both && now === rounded ? asleep + 1 : 0;
          rounded = now;
          if (asleep === 5) {
            missed++;
            asleep = 0;
            stop.store(1);
            m.release();
          }
        }
        u.join();
        assert.ok(raised.load() > 0, 'the rounds made cycles');
        assert.equal(missed, 0, 'a cycle both threads slept in, in raise mode');
      });
    },
  );

  it(
    'two threads that close the same cycle at the same moment: exactly one of them gets DeadlockError',
    async () => {
      await detecting('raise', () => {
        const a = new Lock();
        const b = new Lock();
        const arrived = new SharedValue('int32');
        const rounds = 200;
        // Each round: take your own lock, meet the other thread (spinning), take the other's.
        // (Both write their wait records before either looks: without one look at a time,
        // both find the cycle, and both raise.)
        const target = (mine: Lock, theirs: Lock, arrived: SharedValue<'int32'>, rounds: number) => {
          let raised = 0;
          const meet = (n: number) => {
            arrived.add(1);
            while (arrived.load() < n);
          };
          for (let i = 0; i < rounds; i++) {
            mine.acquire();
            meet(4 * i + 2);
            try {
              theirs.acquire();
              theirs.release();
            } catch {
              raised++;
            }
            mine.release();
            meet(4 * i + 4);
          }
          return raised;
        };
        const t1 = new Thread({ name: 'dl-both-1', target, args: [a, b, arrived, rounds] });
        const t2 = new Thread({ name: 'dl-both-2', target, args: [b, a, arrived, rounds] });
        t1.start();
        t2.start();
        t1.join();
        t2.join();
        assert.equal((t1.result as number) + (t2.result as number), rounds, 'one DeadlockError per round');
      });
    },
  );
});
