/**
 * Thread dumps: dumpThreads() (every live thread, main first, what each waits on and holds,
 * the wait-for cycles, the printed form), wait stacks (configureThreads({ waitStacks })), the
 * hang watchdog dumpThreadsLater() / cancelDumpThreadsLater() in a child process, and bad input.
 *
 * How a test sees a thread block: the thread sets an Event just before its blocking call, and
 * the test polls dumpThreads() (with a short sleepAsync, bounded by a generous deadline) until
 * the thread's wait shows. Every thread is released and joined before its test ends.
 */

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  Barrier,
  Condition,
  Event,
  Future,
  Lock,
  Queue,
  RLock,
  Semaphore,
  SharedValue,
  Thread,
  ThreadPoolExecutor,
  type ThreadDump,
  type ThreadSnapshot,
  cancelDumpThreadsLater,
  configureThreads,
  currentThread,
  dumpThreads,
  dumpThreadsLater,
  enumerate,
  mainThread,
  sleepAsync,
} from 'threadkit';

/** Every wait in a thread is bounded by this, so that a failing test cannot hang the suite. */
const LONG = 30_000;
/** How long a test polls for a thread's wait to show before it fails. */
const POLL_MS = 10_000;

const ROOT = fileURLToPath(new URL('..', import.meta.url));

let names = 0;
/** A thread name no other test uses. */
function uniqueName(what: string): string {
  return `dump-${what}-${process.pid}-${names++}`;
}

function start<R = unknown>(name: string, target: (...args: never[]) => unknown, args: unknown[], daemon = false): Thread<R> {
  const t = new Thread({ name, target: target as never, args, daemon }) as Thread<R>;
  t.start();
  return t;
}

function snapshotOf(dump: ThreadDump, ident: number | undefined): ThreadSnapshot | undefined {
  return dump.threads.find((t) => t.ident === ident);
}

/**
 * Polls dumpThreads() until `thread` shows a wait of `kind` (and `more`, when given, holds of
 * the dump), and returns that dump and the thread's snapshot; fails, printing the last dump,
 * if it does not show within POLL_MS.
 */
async function untilWaiting(thread: Thread | number, kind: string, more: (s: ThreadSnapshot, d: ThreadDump) => boolean = () => true): Promise<{ dump: ThreadDump; snapshot: ThreadSnapshot }> {
  const ident = typeof thread === 'number' ? thread : thread.ident;
  assert.ok(ident !== undefined, 'the thread has started');
  const deadline = performance.now() + POLL_MS;
  for (;;) {
    const dump = dumpThreads();
    const snapshot = snapshotOf(dump, ident);
    if (snapshot?.waitingOn?.kind === kind && more(snapshot, dump)) return { dump, snapshot };
    if (performance.now() > deadline) {
      assert.fail(`thread ${ident} never showed a wait on ${kind} within ${POLL_MS} ms; its snapshot: ${JSON.stringify(snapshot)}\nlast dump:\n${dump.toString()}`);
    }
    await sleepAsync(2);
  }
}

/** Waits (in the main thread, without blocking its event loop) until `event` is set. */
async function until(event: Event, what: string): Promise<void> {
  assert.equal(await event.waitAsync({ timeout: LONG }), true, `${what} within ${LONG} ms`);
}

/** Joins each thread (bounded) and checks it ended. */
function joinAll(...threads: Thread[]): void {
  for (const t of threads) {
    t.join(LONG);
    assert.equal(t.isAlive(), false, `${t.name} ended`);
  }
}

/**
 * Runs `body` with deadlock detection off (the default, but the environment may set it:
 * THREADKIT_DEADLOCK_DETECTION), so that the threads of a cycle go to sleep and the cycle stays
 * for a dump to find; the mode from the environment is restored after.
 */
async function withDetectionOff<T>(body: () => Promise<T> | T): Promise<T> {
  const detection = (process.env.THREADKIT_DEADLOCK_DETECTION || 'off') as 'off' | 'warn' | 'raise';
  configureThreads({ deadlockDetection: 'off' });
  try {
    return await body();
  } finally {
    configureThreads({ deadlockDetection: detection });
  }
}

describe('dumpThreads(): the threads', () => {
  it('lists every live thread, main first, with name, ident, nativeId, daemon flag and state', async () => {
    const gate = new Event();
    const readyA = new Event();
    const readyB = new Event();
    const a = start(uniqueName('plain'), (r: Event, g: Event, long: number) => (r.set(), g.wait(long)), [readyA, gate, LONG]);
    const b = start(uniqueName('daemon'), (r: Event, g: Event, long: number) => (r.set(), g.wait(long)), [readyB, gate, LONG], true);
    try {
      await until(readyA, 'a started');
      await until(readyB, 'b started');
      await untilWaiting(a, 'Event');
      await untilWaiting(b, 'Event');
      const listed = enumerate();
      const dump = dumpThreads();
      const main = dump.threads[0]!;
      assert.equal(main.name, 'MainThread');
      assert.equal(main.ident, mainThread().ident);
      assert.equal(main.ident, currentThread().ident);
      assert.equal(main.nativeId, mainThread().nativeId);
      assert.equal(main.daemon, false);
      assert.equal(main.state, 'running', 'the calling thread is running');
      assert.equal(main.waitingOn, undefined);
      assert.deepEqual(main.holding, []);
      for (const [t, daemon] of [
        [a, false],
        [b, true],
      ] as const) {
        const s = snapshotOf(dump, t.ident);
        assert.ok(s, `${t.name} is in the dump:\n${dump.toString()}`);
        assert.equal(s.name, t.name);
        assert.equal(s.ident, t.ident);
        assert.equal(s.nativeId, t.nativeId);
        assert.equal(typeof s.nativeId, 'number');
        assert.equal(s.daemon, daemon);
        assert.equal(s.state, 'waiting');
      }
      // Start order: a was started before b.
      assert.ok(dump.threads.findIndex((s) => s.ident === a.ident) < dump.threads.findIndex((s) => s.ident === b.ident));
      // Every thread enumerate() listed, and still alive after the dump, is in it; no ident twice.
      const idents = dump.threads.map((s) => s.ident);
      assert.equal(new Set(idents).size, idents.length, `no ident twice: ${idents.join(', ')}`);
      for (const t of listed) if (t.isAlive()) assert.ok(idents.includes(t.ident!), `${t.name} (ident ${t.ident}) is in the dump`);
      // A thread not started is not in it.
      const notStarted = new Thread({ name: uniqueName('not-started') });
      assert.equal(
        dump.threads.some((s) => s.name === notStarted.name),
        false,
      );
    } finally {
      gate.set();
      joinAll(a, b);
    }
  });

  it('dumpThreads() from a thread: the caller is running (with its stack), main shows its join of it', async () => {
    const t = start<{ threads: ThreadSnapshot[]; text: string; me: number }>(
      uniqueName('dumper'),
      async (mainIdent: number, pollMs: number) => {
        const { dumpThreads, getIdent, sleep } = await import('threadkit');
        const me = getIdent();
        const deadline = performance.now() + pollMs;
        // Main blocks in join() right after start(): poll until its wait shows.
        for (;;) {
          const dump = dumpThreads();
          const main = dump.threads.find((s) => s.ident === mainIdent);
          if (main?.waitingOn?.kind === 'join' || performance.now() > deadline) return { threads: dump.threads, text: dump.toString(), me };
          sleep(1);
        }
      },
      [mainThread().ident, POLL_MS],
    );
    t.join(LONG);
    const { threads, text, me } = t.result!;
    assert.equal(me, t.ident);
    assert.equal(threads[0]!.name, 'MainThread', text);
    assert.equal(threads[0]!.state, 'waiting', text);
    const joining = threads[0]!.waitingOn;
    assert.equal(joining?.kind, 'join', text);
    assert.ok(joining.object.includes(t.name), `the join names the thread: ${joining.object}`);
    assert.equal(joining.owner, t.ident, text);
    const self = threads.find((s) => s.ident === me);
    assert.ok(self, text);
    assert.equal(self.state, 'running');
    assert.equal(self.waitingOn, undefined);
    assert.equal(typeof self.stack, 'string', "the calling thread's own stack is always there");
  });

  it("the caller's own stack names the function that called dumpThreads()", () => {
    function dumpFromThisFunction(): ThreadDump {
      return dumpThreads();
    }
    const main = dumpFromThisFunction().threads[0]!;
    assert.match(main.stack ?? '', /dumpFromThisFunction/);
    assert.doesNotMatch(main.stack ?? '', /[\\/]thread[\\/]dump\./, "threadkit's own frames are left out");
  });
});

describe('dumpThreads(): what a blocked thread waits on', () => {
  it('Lock: the waiter shows the Lock and its holder; the holder lists it in holding', async () => {
    const lock = new Lock();
    const holding = new Event();
    const ready = new Event();
    const gate = new Event();
    const holder = start(
      uniqueName('lock-holder'),
      (l: Lock, h: Event, g: Event, long: number) => {
        l.acquire();
        h.set();
        g.wait(long);
        l.release();
      },
      [lock, holding, gate, LONG],
    );
    let waiter: Thread | undefined;
    try {
      await until(holding, 'the holder took the lock');
      waiter = start(
        uniqueName('lock-waiter'),
        (l: Lock, r: Event) => {
          r.set();
          l.acquire();
          l.release();
        },
        [lock, ready],
      );
      await until(ready, 'the waiter started');
      const { dump, snapshot } = await untilWaiting(waiter, 'Lock');
      assert.equal(snapshot.state, 'waiting');
      assert.equal(snapshot.waitingOn!.object, String(lock));
      assert.match(snapshot.waitingOn!.object, /^<locked threadkit\.Lock object at 0x[0-9a-f]+>$/);
      assert.equal(snapshot.waitingOn!.owner, holder.ident);
      assert.deepEqual(snapshot.holding, []);
      const h = snapshotOf(dump, holder.ident)!;
      assert.deepEqual(h.holding, [String(lock)]);
    } finally {
      gate.set();
      joinAll(holder, ...(waiter ? [waiter] : []));
    }
    assert.equal(lock.locked(), false);
  });

  it('Lock held by the main thread: owner is main, and main lists it in holding', async () => {
    const lock = new Lock();
    const ready = new Event();
    lock.acquire();
    const waiter = start(
      uniqueName('lock-waiter-main'),
      (l: Lock, r: Event) => {
        r.set();
        l.acquire();
        l.release();
      },
      [lock, ready],
    );
    try {
      await until(ready, 'the waiter started');
      const { dump, snapshot } = await untilWaiting(waiter, 'Lock');
      assert.equal(snapshot.waitingOn!.owner, mainThread().ident);
      assert.ok(dump.threads[0]!.holding.includes(String(lock)), `main holds ${String(lock)}: ${JSON.stringify(dump.threads[0]!.holding)}`);
    } finally {
      lock.release();
      joinAll(waiter);
    }
  });

  it('RLock: the waiter shows the RLock and its holder', async () => {
    const rlock = new RLock();
    const holding = new Event();
    const ready = new Event();
    const gate = new Event();
    const holder = start(
      uniqueName('rlock-holder'),
      (l: RLock, h: Event, g: Event, long: number) => {
        l.acquire();
        l.acquire();
        h.set();
        g.wait(long);
        l.release();
        l.release();
      },
      [rlock, holding, gate, LONG],
    );
    let waiter: Thread | undefined;
    try {
      await until(holding, 'the holder took the rlock');
      waiter = start(
        uniqueName('rlock-waiter'),
        (l: RLock, r: Event) => {
          r.set();
          l.acquire();
          l.release();
        },
        [rlock, ready],
      );
      await until(ready, 'the waiter started');
      const { dump, snapshot } = await untilWaiting(waiter, 'RLock');
      assert.equal(snapshot.waitingOn!.object, String(rlock));
      assert.match(snapshot.waitingOn!.object, /threadkit\.RLock object owner=\d+ count=2/);
      assert.equal(snapshot.waitingOn!.owner, holder.ident);
      assert.deepEqual(snapshotOf(dump, holder.ident)!.holding, [String(rlock)]);
    } finally {
      gate.set();
      joinAll(holder, ...(waiter ? [waiter] : []));
    }
  });

  it('Condition.wait: kind Condition, the Condition named; no owner', async () => {
    const cond = new Condition();
    const ready = new Event();
    const flag = new Event();
    const t = start(
      uniqueName('condition'),
      (c: Condition, r: Event, f: Event, long: number) => {
        c.acquire();
        try {
          r.set();
          return c.waitFor(() => f.isSet(), long);
        } finally {
          c.release();
        }
      },
      [cond, ready, flag, LONG],
    );
    try {
      await until(ready, 'the thread started');
      const { snapshot } = await untilWaiting(t, 'Condition');
      assert.equal(snapshot.waitingOn!.object, String(cond));
      assert.equal(snapshot.waitingOn!.owner, undefined);
      // A dump taken once the wait showed (one that overlapped the release may still list the
      // lock: see the test "holding and waitingOn are read at one moment" below).
      const again = snapshotOf(dumpThreads(), t.ident)!;
      assert.equal(again.waitingOn?.kind, 'Condition');
      assert.deepEqual(again.holding, [], 'a Condition waiter has released its lock');
    } finally {
      flag.set();
      cond.acquire();
      cond.notifyAll();
      cond.release();
      joinAll(t);
    }
    assert.equal(t.result, true);
  });

  it('Semaphore.acquire', async () => {
    const sem = new Semaphore(0);
    const ready = new Event();
    const t = start(
      uniqueName('semaphore'),
      (s: Semaphore, r: Event, long: number) => {
        r.set();
        return s.acquire({ timeout: long });
      },
      [sem, ready, LONG],
    );
    try {
      await until(ready, 'the thread started');
      const { snapshot } = await untilWaiting(t, 'Semaphore');
      assert.equal(snapshot.waitingOn!.object, String(sem));
      assert.equal(snapshot.waitingOn!.owner, undefined);
    } finally {
      sem.release();
      joinAll(t);
    }
    assert.equal(t.result, true);
  });

  it('Event.wait', async () => {
    const ev = new Event();
    const ready = new Event();
    const t = start(
      uniqueName('event'),
      (e: Event, r: Event) => {
        r.set();
        return e.wait();
      },
      [ev, ready],
    );
    try {
      await until(ready, 'the thread started');
      const { snapshot } = await untilWaiting(t, 'Event');
      assert.equal(snapshot.state, 'waiting');
      assert.equal(snapshot.waitingOn!.object, String(ev));
      assert.match(snapshot.waitingOn!.object, /^<threadkit\.Event at 0x[0-9a-f]+: unset>$/);
      assert.equal(snapshot.waitingOn!.owner, undefined);
    } finally {
      ev.set();
      joinAll(t);
    }
  });

  it('Barrier.wait: kind Barrier (not Condition), the Barrier named', async () => {
    const barrier = new Barrier(2);
    const ready = new Event();
    const t = start(
      uniqueName('barrier'),
      (b: Barrier, r: Event, long: number) => {
        r.set();
        return b.wait(long);
      },
      [barrier, ready, LONG],
    );
    try {
      await until(ready, 'the thread started');
      const { snapshot } = await untilWaiting(t, 'Barrier', (s) => s.waitingOn!.object === String(barrier));
      assert.match(snapshot.waitingOn!.object, /^<threadkit\.Barrier at 0x[0-9a-f]+: waiters=1\/2>$/);
    } finally {
      barrier.wait(LONG);
      joinAll(t);
    }
  });

  it('Queue.get on an empty queue', async () => {
    const q = new Queue<number>();
    const ready = new Event();
    const t = start(
      uniqueName('queue-get'),
      (q: Queue<number>, r: Event) => {
        r.set();
        return q.get();
      },
      [q, ready],
    );
    try {
      await until(ready, 'the thread started');
      const { snapshot } = await untilWaiting(t, 'Queue.get');
      assert.equal(snapshot.waitingOn!.object, String(q));
      assert.match(snapshot.waitingOn!.object, /^<threadkit\.Queue at 0x[0-9a-f]+: qsize=0\b/);
    } finally {
      q.put(7);
      joinAll(t);
    }
    assert.equal(t.result, 7);
  });

  it('Queue.put on a full queue', async () => {
    const q = new Queue<number>(1);
    q.put(1);
    const ready = new Event();
    const t = start(
      uniqueName('queue-put'),
      (q: Queue<number>, r: Event) => {
        r.set();
        q.put(2);
      },
      [q, ready],
    );
    try {
      await until(ready, 'the thread started');
      const { snapshot } = await untilWaiting(t, 'Queue.put');
      assert.equal(snapshot.waitingOn!.object, String(q));
      assert.match(snapshot.waitingOn!.object, /qsize=1\b/);
    } finally {
      assert.equal(q.get(), 1);
      joinAll(t);
      assert.equal(q.get(), 2);
    }
  });

  it('Queue.join', async () => {
    const q = new Queue<number>();
    q.put(1);
    const ready = new Event();
    const t = start(
      uniqueName('queue-join'),
      (q: Queue<number>, r: Event) => {
        r.set();
        q.join();
      },
      [q, ready],
    );
    try {
      await until(ready, 'the thread started');
      const { snapshot } = await untilWaiting(t, 'Queue.join');
      assert.equal(snapshot.waitingOn!.object, String(q));
    } finally {
      q.get();
      q.taskDone();
      joinAll(t);
    }
  });

  it('Future.result() of a running pool task: kind Future, owner the pool thread; the idle pool thread after', async () => {
    const prefix = uniqueName('pool');
    const pool = new ThreadPoolExecutor({ maxWorkers: 1, threadNamePrefix: prefix });
    const gate = new Event();
    const running = new Event();
    const ready = new Event();
    let t: Thread | undefined;
    try {
      const future = pool.submit(
        (r: Event, g: Event, long: number) => {
          r.set();
          return g.wait(long) ? 'released' : 'timed out';
        },
        running,
        gate,
        LONG,
      );
      await until(running, 'the task started');
      const poolThread = enumerate().find((p) => p.name === `${prefix}_0`);
      assert.ok(poolThread, `the pool thread ${prefix}_0 is listed`);
      t = start(
        uniqueName('future-waiter'),
        (f: Future<string>, r: Event) => {
          r.set();
          return f.result();
        },
        [future, ready],
      );
      await until(ready, 'the waiter started');
      const { dump, snapshot } = await untilWaiting(t, 'Future');
      assert.equal(snapshot.waitingOn!.object, String(future));
      assert.match(snapshot.waitingOn!.object, /state=running>$/);
      assert.equal(snapshot.waitingOn!.owner, poolThread.ident);
      assert.equal(snapshotOf(dump, poolThread.ident)!.waitingOn?.kind, 'Event', 'the pool thread waits on the gate');
      gate.set();
      joinAll(t);
      assert.equal(t.result, 'released');
      // Its task done, the pool thread waits for work.
      const idle = await untilWaiting(poolThread.ident!, 'work (an idle pool thread)');
      assert.equal(idle.snapshot.waitingOn!.object, '');
      assert.equal(idle.snapshot.waitingOn!.owner, undefined);
    } finally {
      gate.set();
      pool.shutdown({ wait: true });
      if (t) joinAll(t);
    }
  });

  it('futures wait(): kind wait', async () => {
    const future = new Future<number>();
    const ready = new Event();
    const t = start(
      uniqueName('futures-wait'),
      async (f: Future<number>, r: Event, long: number) => {
        const { wait } = await import('threadkit');
        r.set();
        return wait([f], { timeout: long }).done.size;
      },
      [future, ready, LONG],
    );
    try {
      await until(ready, 'the thread started');
      const { snapshot } = await untilWaiting(t, 'wait');
      assert.equal(snapshot.state, 'waiting');
    } finally {
      future.setResult(1);
      joinAll(t);
    }
    assert.equal(t.result, 1);
  });

  it('Thread.join: kind join, the object names the thread, owner its ident', async () => {
    const gate = new Event();
    const readyJoined = new Event();
    const ready = new Event();
    const joined = start(uniqueName('joined'), (r: Event, g: Event, long: number) => (r.set(), g.wait(long)), [readyJoined, gate, LONG]);
    let joiner: Thread | undefined;
    try {
      await until(readyJoined, 'the joined thread started');
      joiner = start(
        uniqueName('joiner'),
        (other: Thread, r: Event) => {
          r.set();
          other.join();
        },
        [joined, ready],
      );
      await until(ready, 'the joiner started');
      const { snapshot } = await untilWaiting(joiner, 'join');
      assert.match(snapshot.waitingOn!.object, /thread/);
      assert.ok(snapshot.waitingOn!.object.includes(joined.name), `the join names the thread: ${snapshot.waitingOn!.object}`);
      assert.equal(snapshot.waitingOn!.owner, joined.ident);
    } finally {
      gate.set();
      joinAll(joined, ...(joiner ? [joiner] : []));
    }
  });

  it('sleep: kind sleep, no object', async () => {
    const stop = new Event();
    const ready = new Event();
    const t = start(
      uniqueName('sleeper'),
      async (s: Event, r: Event) => {
        const { sleep } = await import('threadkit');
        r.set();
        while (!s.isSet()) sleep(20);
      },
      [stop, ready],
    );
    try {
      await until(ready, 'the thread started');
      const { snapshot } = await untilWaiting(t, 'sleep');
      assert.equal(snapshot.state, 'waiting');
      assert.equal(snapshot.waitingOn!.object, '');
      assert.equal(snapshot.waitingOn!.owner, undefined);
    } finally {
      stop.set();
      joinAll(t);
    }
  });

  it('a Promise wait is not recorded: a thread awaiting Event.waitAsync() shows no waitingOn', async () => {
    const ev = new Event();
    const ready = new Event();
    const t = start(
      uniqueName('async-waiter'),
      async (e: Event, r: Event, long: number) => {
        const waiting = e.waitAsync({ timeout: long });
        r.set();
        return await waiting;
      },
      [ev, ready, LONG],
    );
    try {
      await until(ready, 'the thread started');
      for (let i = 0; i < 20; i++) {
        const s = snapshotOf(dumpThreads(), t.ident);
        assert.ok(s, 'the thread is listed');
        assert.equal(s.waitingOn, undefined, `a Promise wait is not a blocking wait: ${JSON.stringify(s)}`);
        assert.equal(s.state, 'running');
        await sleepAsync(5);
      }
    } finally {
      ev.set();
      joinAll(t);
    }
    assert.equal(t.result, true);
  });

  it("a Condition waiter woken while another thread holds the Condition's lock shows that lock and its owner", async () => {
    const cond = new Condition();
    const ready = new Event();
    const t = start(
      uniqueName('condition-reacquire'),
      (c: Condition, r: Event, long: number) => {
        c.acquire();
        try {
          r.set();
          return c.wait(long);
        } finally {
          c.release();
        }
      },
      [cond, ready, LONG],
    );
    let held = false;
    try {
      await until(ready, 'the thread started');
      await untilWaiting(t, 'Condition');
      cond.acquire();
      held = true;
      cond.notify();
      // Woken, it must take the lock again, which main holds.
      const { dump, snapshot } = await untilWaiting(t, 'RLock');
      assert.equal(snapshot.waitingOn!.object, String(cond.lock));
      assert.equal(snapshot.waitingOn!.owner, mainThread().ident);
      assert.ok(dump.threads[0]!.holding.includes(String(cond.lock)));
    } finally {
      if (held) cond.release();
      else {
        cond.acquire();
        cond.notifyAll();
        cond.release();
      }
      joinAll(t);
    }
    assert.equal(t.result, true);
  });

  it('Future.result() of a task still queued (the pool busy): kind Future, no owner, no deadlock', async () => {
    const prefix = uniqueName('busy-pool');
    const pool = new ThreadPoolExecutor({ maxWorkers: 1, threadNamePrefix: prefix });
    const gate = new Event();
    const running = new Event();
    const ready = new Event();
    let t: Thread | undefined;
    try {
      pool.submit((r: Event, g: Event, long: number) => (r.set(), g.wait(long)), running, gate, LONG);
      await until(running, 'the first task started');
      const queued = pool.submit(() => 'queued ran');
      t = start(
        uniqueName('queued-waiter'),
        (f: Future<string>, r: Event) => {
          r.set();
          return f.result();
        },
        [queued, ready],
      );
      await until(ready, 'the waiter started');
      const { dump, snapshot } = await untilWaiting(t, 'Future');
      assert.equal(snapshot.waitingOn!.object, String(queued));
      assert.match(snapshot.waitingOn!.object, /state=pending>$/);
      assert.equal(snapshot.waitingOn!.owner, undefined);
      assert.deepEqual(dump.deadlocks, [], 'the pool thread is not stuck on the waiter');
      gate.set();
      joinAll(t);
      assert.equal(t.result, 'queued ran');
    } finally {
      gate.set();
      pool.shutdown({ wait: true });
      if (t) joinAll(t);
    }
  });

  it(
    "sinceMs is the current wait's: a consumer that gets an item every 30 ms does not show one ever-longer Queue.get",
    async () => {
      const q = new Queue<number | null>();
      const lastReturn = new SharedValue('float64', 0);
      const t = start(
        uniqueName('consumer'),
        (q: Queue<number | null>, last: SharedValue<'float64'>) => {
          let n = 0;
          for (;;) {
            const item = q.get();
            if (item === null) return n;
            n++;
            last.store(Date.now());
          }
        },
        [q, lastReturn],
      );
      try {
        for (let round = 0; round < 6; round++) {
          await untilWaiting(t, 'Queue.get');
          await sleepAsync(30);
          const before = lastReturn.load();
          q.put(round);
          const deadline = performance.now() + POLL_MS;
          while (lastReturn.load() === before) {
            assert.ok(performance.now() < deadline, `round ${round}: the consumer took the item`);
            await sleepAsync(1);
          }
        }
        await untilWaiting(t, 'Queue.get');
        await sleepAsync(30);
        // The wait under way began after the consumer's last return (read before the dump).
        const returned = lastReturn.load();
        const { snapshot } = await untilWaiting(t, 'Queue.get');
        const bound = Date.now() - returned;
        assert.ok(snapshot.waitingOn!.sinceMs <= bound, `sinceMs ${snapshot.waitingOn!.sinceMs} is at most the ${bound} ms since the consumer's last get returned`);
      } finally {
        q.put(null);
        joinAll(t);
      }
      assert.equal(t.result, 6);
    },
  );

  it('sinceMs grows: 50 ms after the wait was seen, sinceMs >= 50', async () => {
    const ev = new Event();
    const ready = new Event();
    const t = start(
      uniqueName('since'),
      (e: Event, r: Event, long: number) => {
        r.set();
        return e.wait(long);
      },
      [ev, ready, LONG],
    );
    try {
      await until(ready, 'the thread started');
      const first = await untilWaiting(t, 'Event');
      const seen = Date.now();
      assert.ok(first.snapshot.waitingOn!.sinceMs >= 0);
      while (Date.now() - seen < 50) await sleepAsync(50 - (Date.now() - seen));
      const { snapshot } = await untilWaiting(t, 'Event');
      assert.ok(snapshot.waitingOn!.sinceMs >= 50, `sinceMs ${snapshot.waitingOn!.sinceMs} >= 50`);
      assert.ok(snapshot.waitingOn!.sinceMs >= first.snapshot.waitingOn!.sinceMs + 50, `sinceMs grew from ${first.snapshot.waitingOn!.sinceMs} to ${snapshot.waitingOn!.sinceMs}`);
    } finally {
      ev.set();
      joinAll(t);
    }
  });

  it('a timed wait (Event.wait(60_000)) is shown as waiting, and is no deadlock', async () => {
    const ev = new Event();
    const ready = new Event();
    const t = start(
      uniqueName('timed'),
      (e: Event, r: Event) => {
        r.set();
        return e.wait(60_000);
      },
      [ev, ready],
    );
    try {
      await until(ready, 'the thread started');
      const { dump, snapshot } = await untilWaiting(t, 'Event');
      assert.equal(snapshot.state, 'waiting');
      assert.equal(snapshot.waitingOn!.object, String(ev));
      assert.deepEqual(dump.deadlocks, []);
    } finally {
      ev.set();
      joinAll(t);
    }
    assert.equal(t.result, true);
  });
});

describe('dumpThreads(): deadlocks', () => {
  it('two threads in an AB/BA deadlock on two Locks form one cycle; releasing one Lock breaks it', async () => {
    await withDetectionOff(async () => {
      const a = new Lock();
      const b = new Lock();
      const go = new Event();
      const readyA = new Event();
      const readyB = new Event();
      // Each takes its first lock, waits for go, then takes the other (untimed: a timed wait is no deadlock).
      const first = start(
        uniqueName('ab'),
        (mine: Lock, other: Lock, r: Event, g: Event, long: number) => {
          mine.acquire();
          r.set();
          g.wait(long);
          other.acquire();
          other.release();
          // `mine` was released by the main thread to break the cycle.
        },
        [a, b, readyA, go, LONG],
      );
      const second = start(
        uniqueName('ba'),
        (mine: Lock, other: Lock, r: Event, g: Event, long: number) => {
          mine.acquire();
          r.set();
          g.wait(long);
          other.acquire();
          other.release();
          mine.release();
        },
        [b, a, readyB, go, LONG],
      );
      let broken = false;
      try {
        await until(readyA, 'ab took a');
        await until(readyB, 'ba took b');
        go.set();
        const { dump } = await untilWaiting(first, 'Lock', (_s, d) => snapshotOf(d, second.ident)?.waitingOn?.kind === 'Lock' && d.deadlocks.length > 0);
        assert.equal(dump.deadlocks.length, 1, dump.toString());
        const cycle = dump.deadlocks[0]!;
        assert.equal(cycle.length, 2);
        assert.deepEqual(cycle.map((s) => s.ident).sort((x, y) => x - y), [first.ident!, second.ident!].sort((x, y) => x - y));
        const sa = snapshotOf(dump, first.ident)!;
        const sb = snapshotOf(dump, second.ident)!;
        assert.deepEqual([sa.waitingOn!.object, sa.waitingOn!.owner], [String(b), second.ident]);
        assert.deepEqual([sb.waitingOn!.object, sb.waitingOn!.owner], [String(a), first.ident]);
        assert.deepEqual(sa.holding, [String(a)]);
        assert.deepEqual(sb.holding, [String(b)]);
        const text = dump.toString();
        assert.match(text, /Found one deadlock:/);
        assert.doesNotMatch(text, /No deadlock found\./);
        assert.ok(text.includes(`"${first.name}" ident=${first.ident}`));
        assert.ok(text.includes(`held by ident ${second.ident}`));
        // Break it: any thread may release a Lock.
        a.release();
        broken = true;
        joinAll(second, first);
        assert.deepEqual(dumpThreads().deadlocks, []);
      } finally {
        if (!broken) {
          go.set();
          a.release();
          joinAll(second, first);
        }
      }
      assert.equal(a.locked(), false);
      assert.equal(b.locked(), false);
    });
  });

  it('the same AB/BA with timed acquires: both shown waiting on a Lock with its holder, but no deadlock', async () => {
    const a = new Lock();
    const b = new Lock();
    const go = new Event();
    const readyA = new Event();
    const readyB = new Event();
    const target = (mine: Lock, other: Lock, r: Event, g: Event, long: number): boolean => {
      mine.acquire();
      try {
        r.set();
        g.wait(long);
        const got = other.acquire({ timeout: long });
        if (got) other.release();
        return got;
      } finally {
        if (mine.locked()) mine.release();
      }
    };
    const first = start<boolean>(uniqueName('timed-ab'), target, [a, b, readyA, go, LONG]);
    const second = start<boolean>(uniqueName('timed-ba'), target, [b, a, readyB, go, LONG]);
    try {
      await until(readyA, 'timed-ab took a');
      await until(readyB, 'timed-ba took b');
      go.set();
      const { dump, snapshot } = await untilWaiting(first, 'Lock', (_s, d) => snapshotOf(d, second.ident)?.waitingOn?.kind === 'Lock');
      assert.equal(snapshot.waitingOn!.owner, second.ident);
      assert.equal(snapshotOf(dump, second.ident)!.waitingOn!.owner, first.ident);
      assert.deepEqual(dump.deadlocks, [], 'a timed wait ends by itself: no deadlock');
      assert.match(dump.toString(), /No deadlock found\./);
    } finally {
      go.set();
      // Break it: release the first thread's lock; the second gets it, ends, and frees the other.
      if (a.locked()) a.release();
      joinAll(second, first);
    }
    assert.equal(second.result, true);
  });

  it('a cycle through join(): main joins a thread that waits on a Lock main holds (found and broken by a third thread)', async () => {
    await withDetectionOff(() => {
      const lock = new Lock();
      const ready = new Event();
      lock.acquire();
      const stuck = start(
        uniqueName('needs-main-lock'),
        (l: Lock, r: Event) => {
          r.set();
          l.acquire();
          l.release();
        },
        [lock, ready],
      );
      ready.wait(LONG);
      // Main is about to block in join(): a helper polls for the cycle, then releases main's lock.
      const helper = start<{ cycles: [string, number, string | undefined, number | undefined][][]; text: string }>(
        uniqueName('breaker'),
        async (l: Lock, pollMs: number) => {
          const { dumpThreads, sleep } = await import('threadkit');
          const deadline = performance.now() + pollMs;
          let dump = dumpThreads();
          while (dump.deadlocks.length === 0 && performance.now() < deadline) {
            sleep(2);
            dump = dumpThreads();
          }
          l.release();
          return { cycles: dump.deadlocks.map((cycle) => cycle.map((t) => [t.name, t.ident, t.waitingOn?.kind, t.waitingOn?.owner] as [string, number, string | undefined, number | undefined])), text: dump.toString() };
        },
        [lock, POLL_MS],
      );
      // Untimed (a timed wait is no deadlock): the helper releases the lock after its poll, found or not.
      stuck.join();
      helper.join(LONG);
      assert.equal(stuck.isAlive(), false);
      const { cycles, text } = helper.result!;
      assert.equal(cycles.length, 1, text);
      const byName = new Map(cycles[0]!.map((t) => [t[0], t]));
      assert.deepEqual(byName.get('MainThread'), ['MainThread', mainThread().ident, 'join', stuck.ident], text);
      assert.deepEqual(byName.get(stuck.name), [stuck.name, stuck.ident, 'Lock', mainThread().ident], text);
      assert.equal(cycles[0]!.length, 2, text);
      assert.equal(lock.locked(), false);
    });
  });

  it('a pool thread waiting on a task queued behind it in its own one-thread pool: a cycle of one; cancelling the task breaks it', async () => {
    await withDetectionOff(async () => {
      const prefix = uniqueName('self-pool');
      const pool = new ThreadPoolExecutor({ maxWorkers: 1, threadNamePrefix: prefix });
      const submitted = new Event();
      try {
        const outer = pool.submit(
          (p: ThreadPoolExecutor, s: Event) => {
            const inner = p.submit(() => 'inner ran');
            s.set();
            try {
              return inner.result();
            } catch (error) {
              return `inner: ${(error as Error).name}`;
            }
          },
          pool,
          submitted,
        );
        await until(submitted, 'the task submitted the inner task');
        const poolThread = enumerate().find((t) => t.name === `${prefix}_0`);
        assert.ok(poolThread);
        const { dump, snapshot } = await untilWaiting(poolThread.ident!, 'Future', (_s, d) => d.deadlocks.length > 0);
        assert.match(snapshot.waitingOn!.object, /state=pending>$/);
        assert.equal(snapshot.waitingOn!.owner, undefined, 'a queued task has no one thread that runs it');
        assert.equal(dump.deadlocks.length, 1, dump.toString());
        assert.deepEqual(
          dump.deadlocks[0]!.map((t) => t.ident),
          [poolThread.ident],
        );
        assert.match(dump.toString(), new RegExp(`Found one deadlock:\\n  "${prefix}_0" ident=${poolThread.ident}`));
        pool.shutdown({ wait: false, cancelFutures: true });
        assert.equal(await outer, 'inner: CancelledError');
      } finally {
        pool.shutdown({ wait: true, cancelFutures: true });
      }
    });
  });
  it(
    'holding and waitingOn are read at one moment: a thread is never shown waiting on a Condition while holding its lock',
    () => {
      const run = spawnSync(process.execPath, ['--import', 'tsx', 'test/fixtures/dump-holding-race.ts'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, killSignal: 'SIGTERM' });
      const shown = `status ${run.status} signal ${run.signal}\n--- stdout ---\n${run.stdout}--- stderr ---\n${run.stderr}`;
      assert.equal(run.status, 0, shown);
      const report = JSON.parse(run.stdout.trim().split('\n').pop()!) as { contradiction: boolean; text: string };
      assert.equal(report.contradiction, false, report.text);
    },
  );
});

describe('ThreadDump.toString()', () => {
  it('one block per thread: "NAME" ident=N, the wait line, holding lines; No deadlock found.', async () => {
    const lock = new Lock();
    const ev = new Event();
    const ready = new Event();
    const name = uniqueName('printer');
    const t = start(
      name,
      (l: Lock, e: Event, r: Event, long: number) => {
        l.acquire();
        r.set();
        e.wait(long);
        l.release();
      },
      [lock, ev, ready, LONG],
      true,
    );
    try {
      await until(ready, 'the thread started');
      const { dump } = await untilWaiting(t, 'Event');
      const text = dump.toString();
      const lines = text.split('\n');
      assert.match(lines[0]!, /^threadkit thread dump \(.+\), \d+ threads:$/);
      assert.match(text, new RegExp(`^"MainThread" ident=${mainThread().ident}( nid=\\d+)? running$`, 'm'));
      const at = lines.findIndex((line) => line.startsWith(`"${name}" ident=${t.ident}`));
      assert.ok(at > 0, text);
      assert.equal(lines[at], `"${name}" ident=${t.ident} nid=${t.nativeId} daemon waiting`);
      assert.match(lines[at + 1]!, /^ {3}waiting on Event <threadkit\.Event at 0x[0-9a-f]+: unset> \(for \d+ ms\)$/);
      assert.ok(lines[at + 1]!.includes(String(ev)), lines[at + 1]);
      assert.equal(lines[at + 2], `   - holding ${String(lock)}`);
      assert.match(text, /\nNo deadlock found\.$/);
      assert.doesNotMatch(text, /Found one deadlock/);
      // One block per thread: one header line each.
      for (const s of dump.threads) assert.equal(lines.filter((line) => line.startsWith(`"${s.name}" ident=${s.ident}`)).length, 1, s.name);
    } finally {
      ev.set();
      joinAll(t);
    }
  });
});

describe('wait stacks', () => {
  it('configureThreads({ waitStacks: true }): a blocked thread shows the function it waits in; without it, no stack', async () => {
    async function blockedIn(waitStacks: boolean): Promise<ThreadSnapshot> {
      const ev = new Event();
      const ready = new Event();
      configureThreads({ waitStacks });
      try {
        const t = start(
          uniqueName(`stacks-${waitStacks}`),
          (e: Event, r: Event, long: number) => {
            function waitHereForTheEvent(e: Event): boolean {
              r.set();
              return e.wait(long);
            }
            return waitHereForTheEvent(e);
          },
          [ev, ready, LONG],
        );
        try {
          await until(ready, 'the thread started');
          // The stack is written just after the wait record: with stacks on, wait for it too.
          const { snapshot } = await untilWaiting(t, 'Event', (s) => !waitStacks || s.stack !== undefined);
          if (waitStacks) return snapshot;
          // Without: none shows, now or a moment later.
          assert.equal(snapshot.stack, undefined, JSON.stringify(snapshot));
          await sleepAsync(20);
          return snapshotOf(dumpThreads(), t.ident)!;
        } finally {
          ev.set();
          joinAll(t);
        }
      } finally {
        configureThreads({ waitStacks: false });
      }
    }
    const withStacks = await blockedIn(true);
    assert.equal(typeof withStacks.stack, 'string', JSON.stringify(withStacks));
    assert.match(withStacks.stack!, /waitHereForTheEvent/);
    assert.doesNotMatch(withStacks.stack!, /[\\/]shm[\\/]/, "threadkit's wait site is left out");
    const without = await blockedIn(false);
    assert.equal(without.stack, undefined, JSON.stringify(without));
  });
});

describe('dumpThreadsLater(): the hang watchdog (child processes)', () => {
  it('with exit: prints the dump to stderr (main waiting on join), then kills the process with SIGKILL', () => {
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'test/fixtures/dump-watchdog.ts'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, killSignal: 'SIGTERM' });
    const shown = `status ${run.status} signal ${run.signal}\n--- stdout ---\n${run.stdout}--- stderr ---\n${run.stderr}`;
    assert.equal(run.error, undefined, shown);
    assert.equal(run.status, null, shown);
    assert.equal(run.signal, 'SIGKILL', `killed by the watchdog (a SIGTERM means it hung): ${shown}`);
    assert.equal((run.stderr.match(/threadkit thread dump/g) ?? []).length, 1, shown);
    assert.match(run.stderr, /^"MainThread" ident=\d+( nid=\d+)? waiting\n {3}waiting on join .*dump-fixture-blocked/m, shown);
    assert.match(run.stderr, /^"dump-fixture-blocked" ident=\d+ nid=\d+ waiting\n {3}waiting on Event <threadkit\.Event at 0x[0-9a-f]+: unset>/m, shown);
    assert.match(run.stderr, /^"threadkit-watchdog" ident=\d+ nid=\d+ daemon running$/m, shown);
    // While the watchdog is armed, threads record their stacks when a wait begins.
    assert.match(run.stderr, /blockedForeverInHere/, shown);
    assert.match(run.stderr, /No deadlock found\./, shown);
    assert.doesNotMatch(run.stdout, /not reached/, shown);
  });

  it('with repeat: prints again and again until cancelDumpThreadsLater(); the process then exits normally', () => {
    const dir = mkdtempSync(joinPath(tmpdir(), 'threadkit-dump-'));
    const file = joinPath(dir, 'stderr.txt');
    const fd = openSync(file, 'w');
    try {
      const run = spawnSync(process.execPath, ['--import', 'tsx', 'test/fixtures/dump-watchdog-repeat.ts', file], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, killSignal: 'SIGTERM', stdio: ['ignore', 'pipe', fd] });
      const stderr = readFileSync(file, 'utf8');
      const shown = `status ${run.status} signal ${run.signal}\n--- stdout ---\n${run.stdout}--- stderr ---\n${stderr}`;
      assert.equal(run.error, undefined, shown);
      assert.equal(run.signal, null, shown);
      assert.equal(run.status, 0, shown);
      const report = JSON.parse(run.stdout.trim().split('\n').pop()!) as { atCancel: number; later: number };
      assert.ok(report.atCancel >= 2, shown);
      const headers = (stderr.match(/threadkit thread dump/g) ?? []).length;
      assert.ok(headers >= 2, `${headers} dumps: ${shown}`);
      // A dump under way when cancel came may still finish; none begins after.
      assert.ok(report.later <= report.atCancel + 1, shown);
      assert.ok(headers <= report.atCancel + 1, shown);
      assert.match(stderr, /^"MainThread" ident=\d+/m, shown);
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it(
    'the watchdog is one per process: cancelDumpThreadsLater() in main disarms one a thread armed, and a new call replaces it',
    () => {
      const run = spawnSync(process.execPath, ['--import', 'tsx', 'test/fixtures/dump-watchdog-threads.ts'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, killSignal: 'SIGTERM' });
      const shown = `status ${run.status} signal ${run.signal}\n--- stdout ---\n${run.stdout}--- stderr ---\n${run.stderr}`;
      assert.equal(run.status, 0, shown);
      const report = JSON.parse(run.stdout.trim().split('\n').pop()!) as { watchdogsAfterSecondArm: number; goneAfterCancel: boolean };
      assert.equal(report.watchdogsAfterSecondArm, 1, `a new call replaces the watchdog armed before: ${shown}`);
      assert.equal(report.goneAfterCancel, true, `cancelDumpThreadsLater() disarmed it: ${shown}`);
    },
  );
});

describe('bad input', () => {
  it('dumpThreadsLater: a negative, NaN or infinite ms, or options that are not an object, throw and arm nothing', () => {
    assert.throws(() => dumpThreadsLater(-1), { name: 'RangeError', message: /dumpThreadsLater\(ms\): expected a non-negative, finite number of milliseconds, got -1/ });
    assert.throws(() => dumpThreadsLater(Number.NaN), { name: 'RangeError', message: /got NaN/ });
    assert.throws(() => dumpThreadsLater(Infinity), { name: 'RangeError', message: /got Infinity/ });
    assert.throws(() => dumpThreadsLater('100' as never), { message: /dumpThreadsLater\(ms\)/ });
    assert.throws(() => dumpThreadsLater(100, null as never), { name: 'TypeError', message: /dumpThreadsLater\(ms, options\): expected an options object/ });
    assert.throws(() => dumpThreadsLater(100, 5 as never), { name: 'TypeError', message: /got 5/ });
    assert.equal(
      dumpThreads().threads.some((s) => s.name === 'threadkit-watchdog'),
      false,
      'no watchdog was started',
    );
    cancelDumpThreadsLater(); // nothing armed: nothing happens
  });

  it('configureThreads({ waitStacks }) takes only a boolean', () => {
    assert.throws(() => configureThreads({ waitStacks: 'yes' as never }), { name: 'TypeError', message: 'configureThreads: waitStacks must be true or false, got yes' });
    assert.throws(() => configureThreads({ waitStacks: 1 as never }), { name: 'TypeError', message: /got 1/ });
  });
});
