/**
 * local(), Timer, SharedValue / sharedArray (and the race lesson), warm isolate reuse and
 * configureThreads, stackSize.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  Barrier,
  type ExceptHookArgs,
  Lock,
  SharedValue,
  Thread,
  Timer,
  configureThreads,
  local,
  setExcepthook,
  sharedArray,
  stackSize,
} from 'threadkit';
import { runThreads, startThread } from './helpers.js';
import { runNode, show } from './fixtures/run-node.js';

const LONG = 10_000;

/** Collects what reaches the excepthook while `body` runs (as text: reports hold Threads). */
function hookReports(body: () => void): string[] {
  const reports: string[] = [];
  setExcepthook(({ thread, excType, excValue }: ExceptHookArgs) => {
    reports.push(`${thread?.name}: ${excType}: ${excValue instanceof Error ? excValue.message : String(excValue)}`);
  });
  try {
    body();
  } finally {
    setExcepthook(undefined);
  }
  return reports;
}

type Bag = { x?: number; who?: string };

describe('local()', () => {
  it('each thread sees only the values it set itself; a thread that receives a local starts empty', () => {
    const data = local<Bag>();
    data.x = 1;
    assert.equal(data.x, 1);
    assert.ok('x' in data, '\'x\' in data');
    const [seen] = runThreads<unknown[]>(
      (d: Bag) => {
        const before = [d.x, 'x' in d, Object.keys(d)];
        d.x = 2;
        d.who = 'thread';
        const after = [d.x, Object.keys(d).sort()];
        delete d.who;
        return [before, after, 'who' in d];
      },
      [[data]],
    );
    assert.deepEqual(seen, [[undefined, false, []], [2, ['who', 'x']], false]);
    assert.equal(data.x, 1, "the thread's value stayed in the thread");
    assert.deepEqual(Object.keys(data), ['x']);
  });

  it('threads using one local at the same time keep separate values', () => {
    const data = local<Bag>();
    const meeting = new Barrier(3, { timeout: LONG });
    const threads = [10, 20].map((mine) =>
      startThread<number | undefined>(
        (d: Bag, b: Barrier, m: number) => {
          d.x = m;
          b.wait();
          b.wait();
          return d.x;
        },
        [data, meeting, mine],
      ),
    );
    data.x = 99;
    meeting.wait();
    data.x = 100; // while both threads are alive and have set theirs
    meeting.wait();
    for (const t of threads) t.join();
    assert.deepEqual(
      threads.map((t) => t.result),
      [10, 20],
    );
    assert.equal(data.x, 100);
  });

  it('a local comes back from a thread as the same object, still with this thread’s values', () => {
    const data = local<Bag>();
    data.who = 'main';
    const [back] = runThreads<Bag>(
      (d: Bag) => {
        d.who = 'thread';
        return d;
      },
      [[data]],
    );
    assert.ok(back === data, 'back === data');
    assert.equal(data.who, 'main');
  });
});

describe('warm isolate reuse', () => {
  it('a thread on a reused isolate gets a fresh name, ident, currentThread() and local() state', (t) => {
    const data = local<Bag>();
    let reused = 0;
    // Isolate reuse is best effort (a busy machine may start a new isolate): check every pair,
    // and report how many pairs really shared an isolate.
    for (let i = 0; i < 5; i++) {
      const probe = async (d: Bag, value: number) => {
        const { currentThread, getIdent } = await import('threadkit');
        const before = d.x;
        d.x = value;
        return { name: currentThread().name, ident: getIdent(), before };
      };
      const first = new Thread<{ name: string; ident: number; before: number | undefined }>({ target: probe, args: [data, 1] });
      first.start();
      first.join();
      const second = new Thread<{ name: string; ident: number; before: number | undefined }>({ target: probe, args: [data, 2] });
      second.start();
      second.join();
      if (first.nativeId === second.nativeId) reused++;
      assert.deepEqual(first.result, { name: first.name, ident: first.ident, before: undefined });
      assert.deepEqual(second.result, { name: second.name, ident: second.ident, before: undefined }, 'the local starts empty again');
      assert.notEqual(first.ident, second.ident);
      assert.notEqual(first.name, second.name);
    }
    t.diagnostic(`${reused} of 5 pairs ran on the same isolate`);
    if (reused === 0) t.skip('no isolate was reused on this run (the machine is busy): freshness checked on new isolates only');
  });

  it(
    'a hook set with setExcepthook() in a thread does not outlive that thread on a reused isolate',

    (t) => {
      const leaked = new SharedValue('int32');
      const a = new Thread({
        target: async (counter: SharedValue<'int32'>) => {
          const { setExcepthook } = await import('threadkit');
          setExcepthook(() => {
            counter.add(1);
          });
        },
        args: [leaked],
      });
      a.start();
      a.join();
      const b = new Thread<string>({
        target: async () => {
          const { Thread } = await import('threadkit');
          // Whatever the default hook prints here, keep it (and keep it out of the test output).
          const chunks: string[] = [];
          const write = process.stderr.write;
          process.stderr.write = ((chunk: string | Uint8Array) => {
            chunks.push(String(chunk));
            return true;
          }) as typeof process.stderr.write;
          try {
            const failing = new Thread({
              name: 'failing-in-b',
              target: () => {
                throw new Error('for the hook of b');
              },
            });
            failing.start();
            failing.join();
          } finally {
            process.stderr.write = write;
          }
          return chunks.join('');
        },
      });
      b.start();
      b.join();
      t.diagnostic(a.nativeId === b.nativeId ? 'b ran on the isolate a had used' : 'b ran on another isolate');
      assert.equal(leaked.value, 0, "a's hook was called for b's thread");
      assert.match(b.result ?? '', /^Exception in thread failing-in-b:\nError: for the hook of b\n/);
    },
  );

  it('configureThreads({ keepIdleMs: 0 }) starts each thread on a new isolate; bad values are refused', () => {
    assert.throws(() => configureThreads({ keepIdleMs: -1 }), { name: 'RangeError' });
    assert.throws(() => configureThreads({ keepIdleMs: NaN }), { name: 'RangeError' });
    configureThreads({ keepIdleMs: 0 });
    try {
      const tids = new Set<number | undefined>();
      for (let i = 0; i < 3; i++) {
        const t = startThread(() => undefined);
        t.join();
        tids.add(t.nativeId);
      }
      assert.equal(tids.size, 3, 'three OS threads');
    } finally {
      configureThreads({ keepIdleMs: 5000 });
    }
  });
});

describe('Timer', () => {

  it('runs fn with args in a thread after the interval; result is what fn returned', () => {
    const fired = new SharedValue('int32');
    let timer!: Timer;
    const reports = hookReports(() => {
      timer = new Timer(30, (v: SharedValue<'int32'>, n: number) => {
        v.value = n;
        return 'fired';
      }, [fired, 7]);
      assert.match(timer.name, /^Thread-\d+$/);
      assert.equal(timer.interval, 30);
      const t0 = performance.now();
      timer.start();
      timer.join();
      assert.ok(performance.now() - t0 >= 30, 'not before the interval');
    });
    assert.deepEqual(reports, []);
    assert.equal(fired.value, 7);
    assert.equal(timer.result, 'fired');
    assert.equal(timer.isAlive(), false);
  });

  it('cancel() before the interval ends it without calling fn', () => {
    const fired = new SharedValue('int32');
    const reports = hookReports(() => {
      const timer = new Timer(LONG, (v: SharedValue<'int32'>) => {
        v.value = 1;
      }, [fired]);
      timer.start();
      assert.equal(timer.isAlive(), true);
      timer.cancel();
      timer.join();
      assert.equal(timer.isAlive(), false);
      assert.equal(timer.finished.isSet(), true);
    });
    assert.deepEqual(reports, []);
    assert.equal(fired.value, 0);
  });

  it('refuses an interval that is not a number', () => {
    assert.throws(() => new Timer('soon' as never, () => undefined), { name: 'TypeError' });
    assert.throws(() => new Timer(NaN, () => undefined), { name: 'TypeError' });
    assert.equal(new Timer(-5, () => undefined).interval, 0);
  });
});

describe('SharedValue, sharedArray and the race lesson', () => {
  const THREADS = 4;
  const ROUNDS = 50_000;

  it('counter.value += 1 from 4 threads is exact with a Lock (without one it may lose updates)', (t) => {
    const unlocked = new SharedValue('int32');
    runThreads(
      (c: SharedValue<'int32'>, n: number) => {
        for (let i = 0; i < n; i++) c.value += 1;
      },
      Array.from({ length: THREADS }, () => [unlocked, ROUNDS]),
    );
    t.diagnostic(`without a lock: ${unlocked.value} of ${THREADS * ROUNDS}`);

    const lock = new Lock();
    const locked = new SharedValue('int32');
    runThreads(
      (l: Lock, c: SharedValue<'int32'>, n: number) => {
        for (let i = 0; i < n; i++) {
          l.acquire();
          try {
            c.value += 1;
          } finally {
            l.release();
          }
        }
      },
      Array.from({ length: THREADS }, () => [lock, locked, ROUNDS]),
    );
    assert.equal(locked.value, THREADS * ROUNDS);
  });

  it('atomic add is exact without a lock, for integer and float kinds', () => {
    const ints = new SharedValue('int32');
    const floats = new SharedValue('float64', 0.5);
    const bigs = new SharedValue('bigint64', 10n);
    runThreads(
      (i: SharedValue<'int32'>, f: SharedValue<'float64'>, b: SharedValue<'bigint64'>, n: number) => {
        for (let k = 0; k < n; k++) {
          i.add(1);
          f.add(1);
          b.add(1n);
        }
      },
      Array.from({ length: THREADS }, () => [ints, floats, bigs, 10_000]),
    );
    assert.equal(ints.value, THREADS * 10_000);
    assert.equal(floats.load(), THREADS * 10_000 + 0.5);
    assert.equal(bigs.load(), BigInt(THREADS * 10_000) + 10n);
  });

  it('a sharedArray is the same memory in every thread', () => {
    const counts = sharedArray(Int32Array, THREADS);
    const back = runThreads<Int32Array>(
      (c: Int32Array, slot: number) => {
        for (let k = 0; k < 1000; k++) Atomics.add(c, slot, 1);
        Atomics.add(c, 0, 1);
        return c;
      },
      Array.from({ length: THREADS }, (_, slot) => [counts, slot]),
    );
    assert.deepEqual(Array.from(counts), [1000 + THREADS, 1000, 1000, 1000]);
    for (const array of back) {
      assert.ok(array instanceof Int32Array && array.buffer === counts.buffer && array.byteOffset === counts.byteOffset, 'a view of the same memory');
      assert.equal(array.length, THREADS);
    }
    back[1]![3] = 77;
    assert.equal(counts[3], 77);
  });

  it('a sharedArray comes back from a thread as the same array object', () => {
    const counts = sharedArray(Float64Array, 2);
    const [back] = runThreads<Float64Array>((c: Float64Array) => c, [[counts]]);
    assert.ok(back === counts, 'the same object, as for every other shared object');
  });
});

describe('stackSize', () => {
  it('returns the previous size; 0 is the default; below 32768 is a RangeError, a non-integer a TypeError', () => {
    assert.equal(stackSize(), 0);
    assert.equal(stackSize(1 << 20), 0);
    assert.equal(stackSize(), 1 << 20);
    assert.equal(stackSize(0), 1 << 20);
    assert.throws(() => stackSize(32767), { name: 'RangeError' });
    assert.throws(() => stackSize(-1), { name: 'RangeError' });
    assert.throws(() => stackSize(40000.5), { name: 'TypeError' });
    assert.throws(() => stackSize('1m' as never), { name: 'TypeError' });
    assert.equal(stackSize(), 0, 'a refused size changes nothing');
  });

  it('threads started after stackSize(size) get that stack: a smaller one overflows sooner', () => {
    const depth = (): number => {
      let n = 0;
      const dive = (): void => {
        n++;
        dive();
      };
      try {
        dive();
      } catch {
        // out of stack, as intended
      }
      return n;
    };
    const small = (() => {
      stackSize(1 << 20);
      try {
        return runThreads<number>(depth, [[]])[0]!;
      } finally {
        stackSize(0);
      }
    })();
    const normal = runThreads<number>(depth, [[]])[0]!;
    assert.ok(small > 0 && small < normal, `1 MiB stack: depth ${small}; default: depth ${normal}`);
  });
});

describe('stackSize in a process of its own', { concurrency: true }, () => {
  it(
    'stackSize(32768), the documented minimum, gives threads that run (child process)',

    async () => {
      const run = await runNode('exit-scenarios.ts', ['stack-size', '32768']);
      assert.equal(run.code, 0, show(run));
      assert.match(run.stdout, /^joined: alive false, depth \d+/m, show(run));
    },
  );

  it(
    'a stack too small for the isolate never leaves join() hanging (child process)',

    async () => {
      const run = await runNode('exit-scenarios.ts', ['stack-size', '262144']);
      assert.equal(run.timedOut, false, show(run));
      assert.equal(run.code, 0, show(run));
      assert.match(run.stdout, /^joined: alive false/m, show(run));
    },
  );
});
