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
import { type SpawnSyncOptionsWithStringEncoding, type SpawnSyncReturns, spawnSync } from 'node:child_process';
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
import { LONG, POLL_MS, joinAll, snapshotOf, until, untilWaiting, withDetectionOff } from './helpers/waiting.js';

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

// Thread targets shared by several tests: self-contained (sent to the thread as source text),
// everything they use comes in their args. Each says so on `ready` just before it blocks.

/** Waits for `gate` (bounded): 'released', or 'timed out'. */
const waitForGate = (ready: Event, gate: Event, long: number) => (ready.set(), gate.wait(long) ? 'released' : 'timed out');

/** Takes `lock` (`depth` times), then waits for `gate` (bounded), and lets the lock go. */
const holdUntilGate = (ready: Event, lock: Lock | RLock, depth: number, gate: Event, long: number) => {
  for (let i = 0; i < depth; i++) lock.acquire();
  ready.set();
  gate.wait(long);
  for (let i = 0; i < depth; i++) lock.release();
};

/** Takes `lock` (sleeps until its holder lets it go) and lets it go. */
const takeLock = (ready: Event, lock: Lock | RLock) => {
  ready.set();
  lock.acquire();
  lock.release();
};

/** Waits for the future's result, and returns it. */
const resultOf = (ready: Event, future: Future<string>) => (ready.set(), future.result());

/** What a test saw of a blocked thread: the dump in which its wait showed, and its snapshot there. */
interface Shown {
  dump: ThreadDump;
  snapshot: ThreadSnapshot;
}

/**
 * One thread in a blocking call: starts a thread named uniqueName(`what`) on
 * `target(ready, ...args)`, which sets `ready` just before its blocking call; waits until it
 * started and its wait of `kind` shows (and `more`, when given), and runs `check` on that.
 * Then, whatever happened, `release()` ends its wait and the thread is joined. Returns the
 * thread, ended, for its result.
 */
async function blocked<R>(spec: {
  what: string;
  target: (ready: Event, ...args: never[]) => R;
  args: unknown[];
  kind: string;
  more?: (s: ThreadSnapshot, d: ThreadDump) => boolean;
  daemon?: boolean;
  check: (shown: Shown, t: Thread<Awaited<R>>) => void | Promise<void>;
  release: () => unknown;
}): Promise<Thread<Awaited<R>>> {
  const ready = new Event();
  const t = start<Awaited<R>>(uniqueName(spec.what), spec.target, [ready, ...spec.args], spec.daemon);
  try {
    await until(ready, `${t.name} started`);
    await spec.check(await untilWaiting(t, spec.kind, spec.more), t);
  } finally {
    spec.release();
    joinAll(t);
  }
  return t;
}

/**
 * A thread `what`-holder that holds `lock` (`depth` times) until the test is over, and a thread
 * `what`-waiter that waits for it: `check` runs once the waiter's wait of `kind` shows.
 */
async function heldAndWaitedFor(what: string, lock: Lock | RLock, depth: number, kind: string, check: (shown: Shown, holder: Thread) => void): Promise<void> {
  const holding = new Event();
  const gate = new Event();
  const holder = start(uniqueName(`${what}-holder`), holdUntilGate, [holding, lock, depth, gate, LONG]);
  try {
    await until(holding, `the holder took the ${what}`);
    await blocked({ what: `${what}-waiter`, target: takeLock, args: [lock], kind, check: (shown) => check(shown, holder), release: () => gate.set() });
  } finally {
    gate.set();
    joinAll(holder);
  }
}

/**
 * A one-thread pool (thread names starting with uniqueName(`what`)) whose thread runs a task
 * that waits for a gate: `body` runs once the task runs, and the pool is shut down after,
 * whatever happens.
 */
async function withBusyPool(what: string, body: (pool: ThreadPoolExecutor, prefix: string, gate: Event, task: Future<string>) => Promise<void>): Promise<void> {
  const prefix = uniqueName(what);
  const pool = new ThreadPoolExecutor({ maxWorkers: 1, threadNamePrefix: prefix });
  const gate = new Event();
  const running = new Event();
  try {
    const task = pool.submit(waitForGate, running, gate, LONG);
    await until(running, 'the task started');
    await body(pool, prefix, gate, task);
  } finally {
    gate.set();
    pool.shutdown({ wait: true });
  }
}

/**
 * Two threads in an AB/BA on two Locks: `${what}ab` runs target(a, b, readyA, go, LONG) and
 * `${what}ba` target(b, a, readyB, go, LONG); `letGo()` waits until each holds its first lock,
 * then sets `go`.
 */
function abba<R>(what: string, target: (mine: Lock, other: Lock, ready: Event, go: Event, long: number) => R) {
  const a = new Lock();
  const b = new Lock();
  const go = new Event();
  const readyA = new Event();
  const readyB = new Event();
  const first = start<R>(uniqueName(`${what}ab`), target, [a, b, readyA, go, LONG]);
  const second = start<R>(uniqueName(`${what}ba`), target, [b, a, readyB, go, LONG]);
  const letGo = async (): Promise<void> => {
    await until(readyA, `${what}ab took a`);
    await until(readyB, `${what}ba took b`);
    go.set();
  };
  return { a, b, go, first, second, letGo };
}

/** Runs test/fixtures/`fixture` in a child process of its own (SIGTERM after 60 s: it hung). */
function runFixture(fixture: string, args: string[] = [], options: Partial<SpawnSyncOptionsWithStringEncoding> = {}): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, ['--import', 'tsx', `test/fixtures/${fixture}`, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, killSignal: 'SIGTERM', ...options });
}

/** How a child process ended and what it printed, for assertion messages. */
const shownOf = (run: SpawnSyncReturns<string>, stderr = run.stderr): string => `status ${run.status} signal ${run.signal}\n--- stdout ---\n${run.stdout}--- stderr ---\n${stderr}`;

/** The report a fixture prints as its last line of stdout (JSON). */
const reportOf = <T>(run: SpawnSyncReturns<string>): T => JSON.parse(run.stdout.trim().split('\n').pop()!) as T;

/** Runs a fixture that must exit 0: its report, and how it ran (for assertion messages). */
function reportFrom<T>(fixture: string): { report: T; shown: string } {
  const run = runFixture(fixture);
  const shown = shownOf(run);
  assert.equal(run.status, 0, shown);
  return { report: reportOf<T>(run), shown };
}

describe('dumpThreads(): the threads', () => {
  it('lists every live thread, main first, with name, ident, nativeId, daemon flag and state', async () => {
    const gate = new Event();
    const readyA = new Event();
    const readyB = new Event();
    const a = start(uniqueName('plain'), waitForGate, [readyA, gate, LONG]);
    const b = start(uniqueName('daemon'), waitForGate, [readyB, gate, LONG], true);
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
    await heldAndWaitedFor('lock', lock, 1, 'Lock', ({ dump, snapshot }, holder) => {
      assert.equal(snapshot.state, 'waiting');
      assert.equal(snapshot.waitingOn!.object, String(lock));
      assert.match(snapshot.waitingOn!.object, /^<locked threadkit\.Lock object at 0x[0-9a-f]+>$/);
      assert.equal(snapshot.waitingOn!.owner, holder.ident);
      assert.deepEqual(snapshot.holding, []);
      const h = snapshotOf(dump, holder.ident)!;
      assert.deepEqual(h.holding, [String(lock)]);
    });
    assert.equal(lock.locked(), false);
  });

  it('Lock held by the main thread: owner is main, and main lists it in holding', async () => {
    const lock = new Lock();
    lock.acquire();
    await blocked({
      what: 'lock-waiter-main',
      target: takeLock,
      args: [lock],
      kind: 'Lock',
      check: ({ dump, snapshot }) => {
        assert.equal(snapshot.waitingOn!.owner, mainThread().ident);
        assert.ok(dump.threads[0]!.holding.includes(String(lock)), `main holds ${String(lock)}: ${JSON.stringify(dump.threads[0]!.holding)}`);
      },
      release: () => lock.release(),
    });
  });

  it('RLock: the waiter shows the RLock and its holder', async () => {
    const rlock = new RLock();
    await heldAndWaitedFor('rlock', rlock, 2, 'RLock', ({ dump, snapshot }, holder) => {
      assert.equal(snapshot.waitingOn!.object, String(rlock));
      assert.match(snapshot.waitingOn!.object, /threadkit\.RLock object owner=\d+ count=2/);
      assert.equal(snapshot.waitingOn!.owner, holder.ident);
      assert.deepEqual(snapshotOf(dump, holder.ident)!.holding, [String(rlock)]);
    });
  });

  it('Condition.wait: kind Condition, the Condition named; no owner', async () => {
    const cond = new Condition();
    const flag = new Event();
    const t = await blocked({
      what: 'condition',
      target: (r: Event, c: Condition, f: Event, long: number) => {
        c.acquire();
        try {
          r.set();
          return c.waitFor(() => f.isSet(), long);
        } finally {
          c.release();
        }
      },
      args: [cond, flag, LONG],
      kind: 'Condition',
      check: ({ snapshot }, t) => {
        assert.equal(snapshot.waitingOn!.object, String(cond));
        assert.equal(snapshot.waitingOn!.owner, undefined);
        // A dump taken once the wait showed (one that overlapped the release may still list the
        // lock: see the test "holding and waitingOn are read at one moment" below).
        const again = snapshotOf(dumpThreads(), t.ident)!;
        assert.equal(again.waitingOn?.kind, 'Condition');
        assert.deepEqual(again.holding, [], 'a Condition waiter has released its lock');
      },
      release: () => {
        flag.set();
        cond.acquire();
        cond.notifyAll();
        cond.release();
      },
    });
    assert.equal(t.result, true);
  });

  it('Semaphore.acquire', async () => {
    const sem = new Semaphore(0);
    const t = await blocked({
      what: 'semaphore',
      target: (r: Event, s: Semaphore, long: number) => (r.set(), s.acquire({ timeout: long })),
      args: [sem, LONG],
      kind: 'Semaphore',
      check: ({ snapshot }) => {
        assert.equal(snapshot.waitingOn!.object, String(sem));
        assert.equal(snapshot.waitingOn!.owner, undefined);
      },
      release: () => sem.release(),
    });
    assert.equal(t.result, true);
  });

  it('Event.wait', async () => {
    const ev = new Event();
    await blocked({
      what: 'event',
      target: (r: Event, e: Event) => (r.set(), e.wait()),
      args: [ev],
      kind: 'Event',
      check: ({ snapshot }) => {
        assert.equal(snapshot.state, 'waiting');
        assert.equal(snapshot.waitingOn!.object, String(ev));
        assert.match(snapshot.waitingOn!.object, /^<threadkit\.Event at 0x[0-9a-f]+: unset>$/);
        assert.equal(snapshot.waitingOn!.owner, undefined);
      },
      release: () => ev.set(),
    });
  });

  it('Barrier.wait: kind Barrier (not Condition), the Barrier named', async () => {
    const barrier = new Barrier(2);
    await blocked({
      what: 'barrier',
      target: (r: Event, b: Barrier, long: number) => (r.set(), b.wait(long)),
      args: [barrier, LONG],
      kind: 'Barrier',
      more: (s) => s.waitingOn!.object === String(barrier),
      check: ({ snapshot }) => {
        assert.match(snapshot.waitingOn!.object, /^<threadkit\.Barrier at 0x[0-9a-f]+: waiters=1\/2>$/);
      },
      release: () => barrier.wait(LONG),
    });
  });

  it('Queue.get on an empty queue', async () => {
    const q = new Queue<number>();
    const t = await blocked({
      what: 'queue-get',
      target: (r: Event, q: Queue<number>) => (r.set(), q.get()),
      args: [q],
      kind: 'Queue.get',
      check: ({ snapshot }) => {
        assert.equal(snapshot.waitingOn!.object, String(q));
        assert.match(snapshot.waitingOn!.object, /^<threadkit\.Queue at 0x[0-9a-f]+: qsize=0\b/);
      },
      release: () => q.put(7),
    });
    assert.equal(t.result, 7);
  });

  it('Queue.put on a full queue', async () => {
    const q = new Queue<number>(1);
    q.put(1);
    await blocked({
      what: 'queue-put',
      target: (r: Event, q: Queue<number>) => (r.set(), q.put(2)),
      args: [q],
      kind: 'Queue.put',
      check: ({ snapshot }) => {
        assert.equal(snapshot.waitingOn!.object, String(q));
        assert.match(snapshot.waitingOn!.object, /qsize=1\b/);
      },
      release: () => assert.equal(q.get(), 1),
    });
    assert.equal(q.get(), 2);
  });

  it('Queue.join', async () => {
    const q = new Queue<number>();
    q.put(1);
    await blocked({
      what: 'queue-join',
      target: (r: Event, q: Queue<number>) => (r.set(), q.join()),
      args: [q],
      kind: 'Queue.join',
      check: ({ snapshot }) => {
        assert.equal(snapshot.waitingOn!.object, String(q));
      },
      release: () => {
        q.get();
        q.taskDone();
      },
    });
  });

  it('Future.result() of a running pool task: kind Future, owner the pool thread; the idle pool thread after', async () => {
    await withBusyPool('pool', async (_pool, prefix, gate, future) => {
      const poolThread = enumerate().find((p) => p.name === `${prefix}_0`);
      assert.ok(poolThread, `the pool thread ${prefix}_0 is listed`);
      const t = await blocked({
        what: 'future-waiter',
        target: resultOf,
        args: [future],
        kind: 'Future',
        check: ({ dump, snapshot }) => {
          assert.equal(snapshot.waitingOn!.object, String(future));
          assert.match(snapshot.waitingOn!.object, /state=running>$/);
          assert.equal(snapshot.waitingOn!.owner, poolThread.ident);
          assert.equal(snapshotOf(dump, poolThread.ident)!.waitingOn?.kind, 'Event', 'the pool thread waits on the gate');
        },
        release: () => gate.set(),
      });
      assert.equal(t.result, 'released');
      // Its task done, the pool thread waits for work.
      const idle = await untilWaiting(poolThread.ident!, 'work (an idle pool thread)');
      assert.equal(idle.snapshot.waitingOn!.object, '');
      assert.equal(idle.snapshot.waitingOn!.owner, undefined);
    });
  });

  it('futures wait(): kind wait', async () => {
    const future = new Future<number>();
    const t = await blocked({
      what: 'futures-wait',
      target: async (r: Event, f: Future<number>, long: number) => {
        const { wait } = await import('threadkit');
        r.set();
        return wait([f], { timeout: long }).done.size;
      },
      args: [future, LONG],
      kind: 'wait',
      check: ({ snapshot }) => {
        assert.equal(snapshot.state, 'waiting');
      },
      release: () => future.setResult(1),
    });
    assert.equal(t.result, 1);
  });

  it('Thread.join: kind join, the object names the thread, owner its ident', async () => {
    const gate = new Event();
    const readyJoined = new Event();
    const joined = start(uniqueName('joined'), waitForGate, [readyJoined, gate, LONG]);
    try {
      await until(readyJoined, 'the joined thread started');
      await blocked({
        what: 'joiner',
        target: (r: Event, other: Thread) => (r.set(), other.join()),
        args: [joined],
        kind: 'join',
        check: ({ snapshot }) => {
          assert.match(snapshot.waitingOn!.object, /thread/);
          assert.ok(snapshot.waitingOn!.object.includes(joined.name), `the join names the thread: ${snapshot.waitingOn!.object}`);
          assert.equal(snapshot.waitingOn!.owner, joined.ident);
        },
        release: () => gate.set(),
      });
    } finally {
      gate.set();
      joinAll(joined);
    }
  });

  it('sleep: kind sleep, no object', async () => {
    const stop = new Event();
    await blocked({
      what: 'sleeper',
      target: async (r: Event, s: Event) => {
        const { sleep } = await import('threadkit');
        r.set();
        while (!s.isSet()) sleep(20);
      },
      args: [stop],
      kind: 'sleep',
      check: ({ snapshot }) => {
        assert.equal(snapshot.state, 'waiting');
        assert.equal(snapshot.waitingOn!.object, '');
        assert.equal(snapshot.waitingOn!.owner, undefined);
      },
      release: () => stop.set(),
    });
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
    let held = false;
    const t = await blocked({
      what: 'condition-reacquire',
      target: (r: Event, c: Condition, long: number) => {
        c.acquire();
        try {
          r.set();
          return c.wait(long);
        } finally {
          c.release();
        }
      },
      args: [cond, LONG],
      kind: 'Condition',
      check: async (_shown, t) => {
        cond.acquire();
        held = true;
        cond.notify();
        // Woken, it must take the lock again, which main holds.
        const { dump, snapshot } = await untilWaiting(t, 'RLock');
        assert.equal(snapshot.waitingOn!.object, String(cond.lock));
        assert.equal(snapshot.waitingOn!.owner, mainThread().ident);
        assert.ok(dump.threads[0]!.holding.includes(String(cond.lock)));
      },
      release: () => {
        if (held) cond.release();
        else {
          cond.acquire();
          cond.notifyAll();
          cond.release();
        }
      },
    });
    assert.equal(t.result, true);
  });

  it('Future.result() of a task still queued (the pool busy): kind Future, no owner, no deadlock', async () => {
    await withBusyPool('busy-pool', async (pool, _prefix, gate) => {
      const queued = pool.submit(() => 'queued ran');
      const t = await blocked({
        what: 'queued-waiter',
        target: resultOf,
        args: [queued],
        kind: 'Future',
        check: ({ dump, snapshot }) => {
          assert.equal(snapshot.waitingOn!.object, String(queued));
          assert.match(snapshot.waitingOn!.object, /state=pending>$/);
          assert.equal(snapshot.waitingOn!.owner, undefined);
          assert.deepEqual(dump.deadlocks, [], 'the pool thread is not stuck on the waiter');
        },
        release: () => gate.set(),
      });
      assert.equal(t.result, 'queued ran');
    });
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
    await blocked({
      what: 'since',
      target: (r: Event, e: Event, long: number) => (r.set(), e.wait(long)),
      args: [ev, LONG],
      kind: 'Event',
      check: async (first, t) => {
        const seen = Date.now();
        assert.ok(first.snapshot.waitingOn!.sinceMs >= 0);
        while (Date.now() - seen < 50) await sleepAsync(50 - (Date.now() - seen));
        const { snapshot } = await untilWaiting(t, 'Event');
        assert.ok(snapshot.waitingOn!.sinceMs >= 50, `sinceMs ${snapshot.waitingOn!.sinceMs} >= 50`);
        assert.ok(snapshot.waitingOn!.sinceMs >= first.snapshot.waitingOn!.sinceMs + 50, `sinceMs grew from ${first.snapshot.waitingOn!.sinceMs} to ${snapshot.waitingOn!.sinceMs}`);
      },
      release: () => ev.set(),
    });
  });

  it('a timed wait (Event.wait(60_000)) is shown as waiting, and is no deadlock', async () => {
    const ev = new Event();
    const t = await blocked({
      what: 'timed',
      target: (r: Event, e: Event) => (r.set(), e.wait(60_000)),
      args: [ev],
      kind: 'Event',
      check: ({ dump, snapshot }) => {
        assert.equal(snapshot.state, 'waiting');
        assert.equal(snapshot.waitingOn!.object, String(ev));
        assert.deepEqual(dump.deadlocks, []);
      },
      release: () => ev.set(),
    });
    assert.equal(t.result, true);
  });
});

describe('dumpThreads(): deadlocks', () => {
  it('two threads in an AB/BA deadlock on two Locks form one cycle; releasing one Lock breaks it', async () => {
    await withDetectionOff(async () => {
      // Each takes its first lock, waits for go, then takes the other (untimed: a timed wait is no deadlock).
      const { a, b, go, first, second, letGo } = abba('', (mine: Lock, other: Lock, r: Event, g: Event, long: number) => {
        mine.acquire();
        r.set();
        g.wait(long);
        other.acquire();
        other.release();
        // The first thread's `mine` (a) was released by the main thread to break the cycle.
        if (mine.locked()) mine.release();
      });
      let broken = false;
      try {
        await letGo();
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
    const { a, go, first, second, letGo } = abba('timed-', (mine: Lock, other: Lock, r: Event, g: Event, long: number): boolean => {
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
    });
    try {
      await letGo();
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
      const stuck = start(uniqueName('needs-main-lock'), takeLock, [ready, lock]);
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
      const { report } = reportFrom<{ contradiction: boolean; text: string }>('dump-holding-race.ts');
      assert.equal(report.contradiction, false, report.text);
    },
  );
});

describe('ThreadDump.toString()', () => {
  it('one block per thread: "NAME" ident=N, the wait line, holding lines; No deadlock found.', async () => {
    const lock = new Lock();
    const ev = new Event();
    await blocked({
      what: 'printer',
      target: holdUntilGate,
      args: [lock, 1, ev, LONG],
      daemon: true,
      kind: 'Event',
      check: ({ dump }, t) => {
        const name = t.name;
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
      },
      release: () => ev.set(),
    });
  });
});

describe('wait stacks', () => {
  it('configureThreads({ waitStacks: true }): a blocked thread shows the function it waits in; without it, no stack', async () => {
    async function blockedIn(waitStacks: boolean): Promise<ThreadSnapshot> {
      const ev = new Event();
      let seen: ThreadSnapshot | undefined;
      configureThreads({ waitStacks });
      try {
        await blocked({
          what: `stacks-${waitStacks}`,
          target: (r: Event, e: Event, long: number) => {
            function waitHereForTheEvent(e: Event): boolean {
              r.set();
              return e.wait(long);
            }
            return waitHereForTheEvent(e);
          },
          args: [ev, LONG],
          kind: 'Event',
          // The stack is written just after the wait record: with stacks on, wait for it too.
          more: (s) => !waitStacks || s.stack !== undefined,
          check: async ({ snapshot }, t) => {
            if (waitStacks) {
              seen = snapshot;
              return;
            }
            // Without: none shows, now or a moment later.
            assert.equal(snapshot.stack, undefined, JSON.stringify(snapshot));
            await sleepAsync(20);
            seen = snapshotOf(dumpThreads(), t.ident)!;
          },
          release: () => ev.set(),
        });
      } finally {
        configureThreads({ waitStacks: false });
      }
      return seen!;
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
    const run = runFixture('dump-watchdog.ts');
    const shown = shownOf(run);
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
      const run = runFixture('dump-watchdog-repeat.ts', [file], { stdio: ['ignore', 'pipe', fd] });
      const stderr = readFileSync(file, 'utf8');
      const shown = shownOf(run, stderr);
      assert.equal(run.error, undefined, shown);
      assert.equal(run.signal, null, shown);
      assert.equal(run.status, 0, shown);
      const report = reportOf<{ atCancel: number; later: number }>(run);
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
      const { report, shown } = reportFrom<{ watchdogsAfterSecondArm: number; goneAfterCancel: boolean }>('dump-watchdog-threads.ts');
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
