/**
 * The threading.Thread model on worker isolates, after CPython's Lib/test/test_threading.py in
 * our own words: options and naming, start/join/isAlive, ident and nativeId, results, the three
 * kinds of target (self-contained functions, module functions, subclasses), nested threads,
 * the module functions, the excepthook, and bad input.
 */

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import {
  Barrier,
  Event,
  type ExceptHookArgs,
  Lock,
  SharedValue,
  TIMEOUT_MAX,
  Thread,
  ThreadError,
  activeCount,
  currentThread,
  enumerate,
  excepthook,
  getIdent,
  getNativeId,
  isMainThread,
  mainThread,
  setExcepthook,
} from 'threadkit';
import { runThreads, sleepSync, startThread } from './helpers.js';
import { captureStderr } from './fixtures/futures-helpers.js';
import { Accumulator, AsyncGate, Relocated, SelfAware, Signaller, makeHidden } from './fixtures/thread-subclasses.js';

/** The module-function fixture (TypeScript: threads load it through the inherited tsx loader). */
const MODULE = new URL('./fixtures/module-functions.ts', import.meta.url);

/** Waits in threads are bounded, so that a failing test cannot hang the suite. */
const LONG = 10_000;

/** Runs `body` with a hook that collects what reaches the excepthook, then restores the default. */
function withHook<T>(body: (reports: ExceptHookArgs[]) => T): T {
  const reports: ExceptHookArgs[] = [];
  setExcepthook((args) => {
    reports.push(args);
  });
  try {
    return body(reports);
  } finally {
    setExcepthook(undefined);
  }
}

async function withHookAsync<T>(body: (reports: ExceptHookArgs[]) => Promise<T>): Promise<T> {
  const reports: ExceptHookArgs[] = [];
  setExcepthook((args) => {
    reports.push(args);
  });
  try {
    return await body(reports);
  } finally {
    setExcepthook(undefined);
  }
}

/** What one report says, as text (a report holds a Thread: never compare reports with deepEqual). */
function summary(report: ExceptHookArgs | undefined): string {
  if (report === undefined) return 'no report';
  const value = report.excValue instanceof Error ? report.excValue.message : String(report.excValue);
  return `${report.thread?.name}: ${report.excType}: ${value}`;
}

/** Captures what is written to stderr while `body` runs. */
/**
 * Waits (bounded) until the main thread is the only live thread: a thread that just ended may
 * stay listed for a moment after join() returns (see "known gaps"), and counts must not see it.
 */
function untilOnlyMainThread(): void {
  const deadline = performance.now() + 5000;
  while (activeCount() > 1 && performance.now() < deadline) sleepSync(1);
  assert.deepEqual(
    enumerate().map((t) => t.name),
    ['MainThread'],
  );
}

function threadNumber(name: string): number {
  const match = /^Thread-(\d+)/.exec(name);
  assert.ok(match, `${name} is not a default name`);
  return Number(match[1]);
}

describe('Thread options and naming', () => {
  it('default names are "Thread-N" or "Thread-N (targetName)", N counted process-wide; a given name wins', () => {
    const first = new Thread();
    const n = threadNumber(first.name);
    assert.equal(first.name, `Thread-${n}`);
    function work(): void {}
    assert.equal(new Thread({ target: work }).name, `Thread-${n + 1} (work)`);
    assert.equal(new Thread({ target: { module: MODULE, name: 'describeSelf' } }).name, `Thread-${n + 2} (describeSelf)`);
    // `{ target: () => … }` names the arrow "target": not a name the user gave.
    assert.equal(new Thread({ target: () => 1 }).name, `Thread-${n + 3}`);
    assert.equal(new Thread({ name: 'given', target: work }).name, 'given');
    // A thread draws from the same counter.
    const [inThread] = runThreads<string>(
      async () => {
        const { Thread } = await import('threadkit');
        return new Thread().name;
      },
      [[]],
    );
    assert.equal(inThread, `Thread-${n + 5}`, 'the runner took n + 4, the thread n + 5');
    assert.equal(new Thread().name, `Thread-${n + 6}`);
  });

  it('names as CPython makes them: any value through String(), a missing or empty name gets the default', () => {
    assert.equal(new Thread({ name: 5 as never }).name, '5');
    assert.match(new Thread({ name: '' }).name, /^Thread-\d+$/);
    assert.match(new Thread({ name: '', target: function work() {} }).name, /^Thread-\d+ \(work\)$/);
    const t = new Thread();
    t.name = 42 as never;
    assert.equal(t.name, '42');
  });

  it('refuses bad options: a target that is neither a function nor { module, name }, non-array args, a non-boolean daemon', () => {
    for (const target of [42, 'work', null, {}, { module: 'file:///x.js' }, { name: 'work' }]) {
      assert.throws(() => new Thread({ target: target as never }), { name: 'TypeError', message: /Thread target must be a function or \{ module, name \}/ }, String(target));
    }
    assert.throws(() => new Thread({ target: { module: MODULE, name: '' } }), { name: 'TypeError', message: /non-empty string/ });
    assert.throws(() => new Thread({ target: class Job {} as never }), { name: 'TypeError', message: /is a class/ });
    assert.throws(() => new Thread({ target: Math.max }), { name: 'TypeError', message: /native or bound function/ });
    assert.throws(() => new Thread({ target: (() => 1).bind(null) }), { name: 'TypeError', message: /native or bound function/ });
    assert.throws(() => new Thread({ args: 'abc' as never }), { name: 'TypeError', message: /args must be an array/ });
    assert.throws(() => new Thread({ daemon: 'yes' as never }), { name: 'TypeError', message: /daemon must be a boolean/ });
    assert.throws(() => new Thread(7 as never), { name: 'TypeError', message: /options object/ });
  });

  it('daemon is false in the main thread, inherited from the creating thread elsewhere, and fixed once started', () => {
    assert.equal(mainThread().daemon, false);
    assert.equal(new Thread().daemon, false);
    assert.equal(new Thread({ daemon: true }).daemon, true);
    const inherit = async (): Promise<boolean[]> => {
      const { Thread, currentThread } = await import('threadkit');
      return [currentThread().daemon, new Thread().daemon, new Thread({ daemon: false }).daemon, new Thread({ daemon: true }).daemon];
    };
    const daemonic = new Thread<boolean[]>({ daemon: true, target: inherit });
    const plain = new Thread<boolean[]>({ target: inherit });
    for (const t of [daemonic, plain]) t.start();
    for (const t of [daemonic, plain]) t.join();
    assert.deepEqual(daemonic.result, [true, true, false, true]);
    assert.deepEqual(plain.result, [false, false, false, true]);

    const t = new Thread({ target: () => undefined });
    t.daemon = true;
    assert.equal(t.daemon, true);
    t.daemon = false;
    t.start();
    assert.throws(() => {
      t.daemon = true;
    }, { name: 'ThreadError', message: 'cannot set daemon status of active thread' });
    t.join();
    assert.equal(t.daemon, false);
  });

  it("toString() reads like CPython's repr: initial, started, stopped, daemon, ident", () => {
    const go = new Event();
    const t = new Thread({ name: 'repr', daemon: true, target: (g: Event, long: number) => g.wait(long), args: [go, LONG] });
    assert.equal(String(t), '<Thread(repr, initial daemon)>');
    t.start();
    assert.equal(String(t), `<Thread(repr, started daemon ${t.ident})>`);
    assert.equal(inspect(t), String(t));
    go.set();
    t.join();
    assert.equal(String(t), `<Thread(repr, stopped daemon ${t.ident})>`);
    t.name = 'renamed';
    assert.equal(String(t), `<Thread(renamed, stopped daemon ${t.ident})>`);
    assert.equal(String(new Thread({ name: 'plain' })), '<Thread(plain, initial)>');
    assert.equal(String(mainThread()), `<_MainThread(MainThread, started ${getIdent()})>`);
    assert.equal(String(new SelfAware()).startsWith('<SelfAware(Thread-'), true);
  });
});

describe('start, join, isAlive', () => {
  it('start() a second time throws ThreadError "threads can only be started once", also after the thread ended', () => {
    const go = new Event();
    const t = startThread((g: Event, long: number) => g.wait(long), [go, LONG]);
    assert.throws(() => t.start(), { name: 'ThreadError', message: 'threads can only be started once' });
    go.set();
    t.join();
    assert.throws(() => t.start(), { name: 'ThreadError', message: 'threads can only be started once' });
    assert.ok(new ThreadError('x') instanceof Error, 'new ThreadError(\'x\') instanceof Error');
  });

  it('join() before start() and join() of the current thread throw ThreadError', () => {
    assert.throws(() => new Thread().join(), { name: 'ThreadError', message: 'cannot join thread before it is started' });
    assert.throws(() => new Thread().join(10), { name: 'ThreadError', message: 'cannot join thread before it is started' });
    assert.throws(() => currentThread().join(), { name: 'ThreadError', message: 'cannot join current thread' });
    assert.throws(() => mainThread().join(0), { name: 'ThreadError', message: 'cannot join current thread' });
    const [inThread] = runThreads<string>(
      async () => {
        const { currentThread } = await import('threadkit');
        try {
          currentThread().join();
          return 'joined itself';
        } catch (error) {
          return `${(error as Error).name}: ${(error as Error).message}`;
        }
      },
      [[]],
    );
    assert.equal(inThread, 'ThreadError: cannot join current thread');
  });

  it('isAlive() is false before start(), true while the thread runs, false once it ended', () => {
    const go = new Event();
    const t = new Thread({ target: (g: Event, long: number) => g.wait(long), args: [go, LONG] });
    assert.equal(t.isAlive(), false);
    t.start();
    assert.equal(t.isAlive(), true);
    go.set();
    t.join();
    assert.equal(t.isAlive(), false);
    t.join(); // joining an ended thread again returns at once
  });

  it('join(timeout) returns when the time is up and the thread still runs; a negative timeout counts as 0; bad timeouts are refused', () => {
    const go = new Event();
    const t = startThread((g: Event, long: number) => g.wait(long), [go, LONG]);
    t.join(20);
    assert.equal(t.isAlive(), true);
    t.join(-5);
    t.join(0);
    assert.equal(t.isAlive(), true);
    assert.throws(() => t.join(NaN), { name: 'TypeError' });
    assert.throws(() => t.join(TIMEOUT_MAX * 2), { name: 'RangeError', message: /TIMEOUT_MAX/ });
    assert.equal(typeof TIMEOUT_MAX, 'number');
    go.set();
    t.join(TIMEOUT_MAX);
    assert.equal(t.isAlive(), false);
  });

  it("join() never throws the target's error (it goes to the excepthook); result stays undefined", () => {
    withHook((reports) => {
      const t = startThread(() => {
        throw new Error('failed in the thread');
      });
      t.join();
      assert.equal(t.isAlive(), false);
      assert.equal(t.result, undefined);
      assert.equal(reports.length, 1);
      assert.ok(reports[0]!.thread === t, 'reports[0]!.thread === t');
    });
  });

  it('joinAsync() leaves the event loop free, and honours timeout and signal', async () => {
    const go = new Event();
    const t = startThread((g: Event, long: number) => g.wait(long), [go, LONG]);
    await t.joinAsync({ timeout: 20 });
    assert.equal(t.isAlive(), true);
    const controller = new AbortController();
    const pending = t.joinAsync({ signal: controller.signal });
    controller.abort(new Error('stop waiting'));
    await assert.rejects(pending, /stop waiting/);
    assert.equal(t.isAlive(), true);
    // Only the event loop can release the thread: joinAsync must not block it.
    const joined = t.joinAsync();
    setImmediate(() => go.set());
    await joined;
    assert.equal(t.isAlive(), false);
    await assert.rejects(new Thread().joinAsync(), { name: 'ThreadError', message: 'cannot join thread before it is started' });
  });

  it('any thread can join a thread, not only the one that started it', () => {
    const go = new Event();
    const a = startThread((g: Event, long: number) => g.wait(long), [go, LONG]);
    const [seen] = runThreads<[boolean, boolean, Thread]>(
      (a: Thread, g: Event) => {
        const before = a.isAlive();
        g.set();
        a.join();
        return [before, a.isAlive(), a];
      },
      [[a, go]],
    );
    const [before, after, back] = seen!;
    assert.equal(before, true);
    assert.equal(after, false);
    assert.ok(back === a, 'a Thread travels by reference and comes back as the same object');
    a.join();
    assert.equal(a.isAlive(), false);
  });
});

describe('ident and nativeId', () => {
  it('ident is undefined before start(), then non-zero and unique among live threads; getIdent() in the thread agrees', () => {
    const barrier = new Barrier(5, { timeout: LONG });
    const threads = [0, 1, 2, 3].map(
      () =>
        new Thread<number[]>({
          target: async (b: Barrier) => {
            const { currentThread, getIdent } = await import('threadkit');
            const idents = [getIdent(), currentThread().ident ?? 0];
            b.wait();
            return idents;
          },
          args: [barrier],
        }),
    );
    for (const t of threads) assert.equal(t.ident, undefined);
    for (const t of threads) t.start();
    // All four are alive (held at the barrier) while we look.
    const idents = threads.map((t) => t.ident);
    assert.ok(threads.every((t) => t.isAlive()), 'threads.every((t) => t.isAlive())');
    for (const ident of idents) assert.ok(Number.isInteger(ident) && ident !== 0, `ident ${ident}`);
    assert.equal(new Set([...idents, getIdent()]).size, 5, `idents ${idents} and main's ${getIdent()} must differ`);
    barrier.wait();
    for (const t of threads) t.join();
    threads.forEach((t, i) => assert.deepEqual(t.result, [idents[i], idents[i]]));
    assert.equal(mainThread().ident, getIdent());
    assert.equal(currentThread().ident, getIdent());
  });

  it("nativeId is the OS thread id (Linux TID): a task of this process while it runs; getNativeId() in the thread agrees", () => {
    assert.equal(getNativeId(), process.pid, "the main thread's TID is the process id");
    assert.equal(mainThread().nativeId, process.pid);
    const started = new Event();
    const go = new Event();
    const t = new Thread<number>({
      target: async (s: Event, g: Event, long: number) => {
        const { getNativeId } = await import('threadkit');
        s.set();
        g.wait(long);
        return getNativeId();
      },
      args: [started, go, LONG],
    });
    assert.equal(t.nativeId, undefined);
    t.start();
    assert.equal(started.wait(LONG), true);
    const tid = t.nativeId;
    assert.ok(tid !== undefined && Number.isInteger(tid) && tid > 0 && tid !== process.pid, `nativeId ${tid}`);
    assert.ok(existsSync(`/proc/${process.pid}/task/${tid}`), `/proc/${process.pid}/task/${tid} exists`);
    go.set();
    t.join();
    assert.equal(t.result, tid);
    assert.equal(t.nativeId, tid, 'kept after the end');
  });
});

describe('results', () => {
  it('result is what the target returned, a Promise awaited', () => {
    const values = runThreads<unknown>(async (x: number, kind: string) => (kind === 'async' ? Promise.resolve(x * 2) : { x, list: [x] }), [
      [21, 'async'],
      [5, 'sync'],
    ]);
    assert.deepEqual(values, [42, { x: 5, list: [5] }]);
    const t = new Thread({ target: () => 'done' });
    assert.equal(t.result, undefined);
    t.start();
    t.join();
    assert.equal(t.result, 'done');
  });

  it('an async target keeps the thread alive until its promise settles', () => {
    const gate = new Event();
    const t = startThread<string>(
      async (g: Event, long: number) => {
        await g.waitAsync({ timeout: long });
        return 'settled';
      },
      [gate, LONG],
    );
    t.join(20);
    assert.equal(t.isAlive(), true, 'still waiting for its promise');
    gate.set();
    t.join();
    assert.equal(t.isAlive(), false);
    assert.equal(t.result, 'settled');
  });

  it('a result that cannot be cloned goes to the excepthook, naming the path to it', () => {
    withHook((reports) => {
      const t = startThread(() => ({ ok: 1, f: function handler(): number {
        return 1;
      } }));
      t.join();
      assert.equal(t.result, undefined);
      assert.equal(reports.length, 1);
      assert.match(summary(reports[0]), /: TypeError: .*result\.f: function handler\(\) could not be cloned/);
    });
  });
});

describe('self-contained function targets', () => {
  it('a target that uses a name the check cannot see is missing (a global of this thread only) fails in the thread, naming the variable and how to pass it', () => {
    // (An outer variable is refused by new Thread(): functions-check.test.ts.)
    const holder = globalThis as { secret?: number };
    holder.secret = 42;
    try {
      withHook((reports) => {
        // @ts-expect-error -- a global of this thread only
        const t = startThread(() => secret);
        t.join();
        assert.equal(reports.length, 1);
        const { excType, excValue } = reports[0]!;
        assert.equal(excType, 'ReferenceError');
        const message = (excValue as Error).message;
        assert.match(message, /uses "secret", which is not defined in the thread/);
        assert.match(message, /cannot capture outer variables/);
        assert.match(message, /Pass secret in args/);
        assert.match(message, /module function \{ module: import\.meta\.url, name:/);
      });
    } finally {
      delete holder.secret;
    }
  });

  it('function declarations, async functions, method shorthand and arrows all work', () => {
    function minusOne(x: number): number {
      return x - 1;
    }
    async function plusOne(x: number): Promise<number> {
      return x + 1;
    }
    const methods = {
      triple(x: number): number {
        return x * 3;
      },
    };
    const arrow = (x: number): number => x * x;
    const targets = [minusOne, plusOne, methods.triple, arrow];
    const threads = targets.map((target) => new Thread<number>({ target, args: [5] }));
    for (const t of threads) t.start();
    for (const t of threads) t.join();
    assert.deepEqual(
      threads.map((t) => t.result),
      [4, 6, 15, 25],
    );
    assert.match(threads[2]!.name, /^Thread-\d+ \(triple\)$/);
  });

  it('await import() with an absolute URL loads a module, TypeScript included', () => {
    const [got] = runThreads<[string, number]>(
      async (url: string) => {
        const m = (await import(url)) as typeof import('./fixtures/module-functions.js');
        return [m.tag, m.describeSelf(4).doubled];
      },
      [[MODULE.href]],
    );
    assert.deepEqual(got, ['module-functions.ts', 8]);
  });

  it(
    'a target may hold a lock with `using` (the README example)',

    () => {
      withHook((reports) => {
        const lock = new Lock();
        const counter = new SharedValue('int32');
        runThreads(
          (l: Lock, c: SharedValue<'int32'>) => {
            for (let i = 0; i < 1000; i++) {
              using _held = l.hold();
              c.value += 1;
            }
          },
          [
            [lock, counter],
            [lock, counter],
          ],
        );
        assert.deepEqual(reports.map(summary), []);
        assert.equal(counter.value, 2000);
      });
    },
  );

  it(
    'a relative await import() resolves against the module that created the thread',

    () => {
      withHook((reports) => {
        // The specifier is relative to this test file ('.js' maps to the '.ts' file under tsx).
        const threads = ['./fixtures/module-functions.ts', './fixtures/module-functions.js'].map(
          (specifier) => new Thread<string>({ target: async (spec: string) => ((await import(spec)) as { tag: string }).tag, args: [specifier] }),
        );
        for (const t of threads) t.start();
        for (const t of threads) t.join();
        assert.deepEqual(reports.map(summary), []);
        assert.deepEqual(
          threads.map((t) => t.result),
          ['module-functions.ts', 'module-functions.ts'],
        );
      });
    },
  );
});

describe('module function targets', () => {
  it('{ module, name } imports a TypeScript module in the thread; module as URL string, URL or path', () => {
    const byHref = new Thread({ target: { module: MODULE.href, name: 'describeSelf' }, args: [21] });
    const byUrl = new Thread<number>({ target: { module: MODULE, name: 'asyncDouble' }, args: [8] });
    const byPath = new Thread({ target: { module: fileURLToPath(MODULE), name: 'describeSelf' }, args: [1], name: 'by-path' });
    for (const t of [byHref, byUrl, byPath]) t.start();
    for (const t of [byHref, byUrl, byPath]) t.join();
    assert.deepEqual(byHref.result, { name: byHref.name, ident: byHref.ident, inThread: true, doubled: 42 });
    assert.equal(byUrl.result, 16);
    assert.deepEqual(byPath.result, { name: 'by-path', ident: byPath.ident, inThread: true, doubled: 2 });
  });

  it('a module or an export that does not exist is reported through the excepthook, naming both', () => {
    withHook((reports) => {
      const missingModule = new URL('./fixtures/no-such-module.ts', import.meta.url);
      const threads = [
        new Thread({ target: { module: missingModule, name: 'describeSelf' } }),
        new Thread({ target: { module: MODULE, name: 'noSuchExport' } }),
        new Thread({ target: { module: MODULE, name: 'tag' } }),
      ];
      for (const t of threads) t.start();
      for (const t of threads) t.join();
      assert.equal(reports.length, 3, reports.map(summary).join('\n'));
      const byThread = threads.map((t) => reports.find((r) => r.thread === t));
      const [noModule, noExport, notFunction] = byThread.map((r) => (r?.excValue as Error | undefined)?.message ?? '');
      assert.match(noModule!, /describeSelf/);
      assert.ok(noModule!.includes(missingModule.href), noModule);
      assert.match(noExport!, /noSuchExport/);
      assert.ok(noExport!.includes(MODULE.href), noExport);
      assert.match(notFunction!, /"tag" \(found string\)/);
      for (const t of threads) assert.equal(t.isAlive(), false);
    });
  });
});

describe('Thread subclasses', () => {
  it("own fields are copied to the thread at start() and back when run() ends (this.result = …; join(); result)", () => {
    const t = new Accumulator([1, 2, 3, 4]);
    t.items.push(5);
    assert.equal(t.name, 'accumulator');
    t.start();
    t.join();
    assert.equal(t.total, 15);
    assert.equal(t.result, 150);
    assert.deepEqual(t.log, ['ran in accumulator']);
    assert.deepEqual(t.items, [1, 2, 3, 4, 5]);
    assert.ok(t instanceof Accumulator, 't instanceof Accumulator');
  });

  it('shared objects in fields travel by reference and come back as the same objects', () => {
    const started = new Event();
    const go = new Event();
    const t = new Signaller(started, go);
    t.start();
    assert.equal(started.wait(LONG), true, 'the thread set the Event the main thread holds');
    assert.equal(t.isAlive(), true);
    go.set();
    t.join();
    assert.ok(t.started === started, 't.started === started');
    assert.ok(t.go === go, 't.go === go');
  });

  it('currentThread() in run() is the thread object itself', () => {
    const t = new SelfAware();
    t.start();
    t.join();
    assert.deepEqual(t.result, { same: true, name: t.name, ctor: 'SelfAware', ident: t.ident });
  });

  it('an async run() keeps the thread alive until its promise settles', () => {
    const gate = new Event();
    const t = new AsyncGate(gate);
    t.start();
    t.join(20);
    assert.equal(t.isAlive(), true);
    gate.set();
    t.join();
    assert.equal(t.isAlive(), false);
    assert.equal(t.result, 'settled');
  });

  it('static module = … says where the thread imports the class from', () => {
    withHook((reports) => {
      const t = new Relocated();
      t.start();
      t.join();
      assert.deepEqual(reports.map(summary), []);
      assert.equal(t.result, 'ran the class from thread-subclass-alt.ts');
    });
  });

  it('a class that is not exported fails in the thread with a clear error (through the excepthook)', () => {
    withHook((reports) => {
      const t = makeHidden();
      t.start();
      t.join();
      assert.equal(reports.length, 1);
      assert.ok(reports[0]!.thread === t, 'reports[0]!.thread === t');
      assert.equal(reports[0]!.excType, 'TypeError');
      assert.match((reports[0]!.excValue as Error).message, /Thread subclass Hidden is not exported from file:\/\/\S*thread-subclasses\.ts: export the class/);
      assert.equal(t.isAlive(), false);
    });
  });

  it('a field that cannot be cloned is refused at start(), naming the path; the thread is not registered', () => {
    untilOnlyMainThread();
    const t = new SelfAware();
    (t as unknown as { handler: () => void }).handler = function handler(): void {};
    assert.throws(() => t.start(), { name: 'TypeError', message: /^fields\.handler: function handler\(\) could not be cloned/ });
    assert.equal(t.isAlive(), false);
    assert.equal(t.ident, undefined);
    assert.equal(activeCount(), 1);
    assert.ok(!enumerate().some((x) => x === t), '!enumerate().some((x) => x === t)');
  });
});

describe('nested threads', () => {
  it('a thread starts and joins threads; enumerate() everywhere sees every live thread; currentThread() is right at each level', () => {
    untilOnlyMainThread();
    const ready = new Barrier(3, { timeout: LONG });
    const go = new Event();
    const parent = new Thread({
      name: 'nest-parent',
      args: [ready, go, LONG],
      target: async (ready: Barrier, go: Event, long: number) => {
        const tk = await import('threadkit');
        const child = new tk.Thread<{ me: string; seen: string[]; parentIdent: number | undefined }>({
          name: 'nest-child',
          args: [ready, go, long],
          target: async (ready: Barrier, go: Event, long: number) => {
            const tk = await import('threadkit');
            ready.wait();
            go.wait(long);
            const parent = tk.enumerate().find((t) => t.name === 'nest-parent');
            return { me: tk.currentThread().name, seen: tk.enumerate().map((t) => t.name).sort(), parentIdent: parent?.ident };
          },
        });
        child.start();
        ready.wait();
        child.join();
        return { me: tk.currentThread().name, myIdent: tk.getIdent(), child: child.result, childAlive: child.isAlive() };
      },
    });
    parent.start();
    ready.wait();
    // Both are alive now (the child waits for go): the main thread sees the grandchild too.
    const live = enumerate();
    const names = live.map((t) => t.name);
    for (const name of ['MainThread', 'nest-parent', 'nest-child']) assert.ok(names.includes(name), `${name} in ${names}`);
    assert.equal(activeCount(), live.length);
    assert.ok(live.some((t) => t === parent), 'enumerate() gives the Thread object this thread holds');
    assert.ok(live.some((t) => t === mainThread()), 'live.some((t) => t === mainThread())');
    const child = live.find((t) => t.name === 'nest-child')!;
    assert.equal(child.isAlive(), true);
    assert.equal(new Set(live.map((t) => t.ident)).size, live.length, 'idents are unique');
    go.set();
    parent.join();
    assert.deepEqual(parent.result, {
      me: 'nest-parent',
      myIdent: parent.ident,
      child: { me: 'nest-child', seen: [...names].sort(), parentIdent: parent.ident },
      childAlive: false,
    });
    assert.equal(child.isAlive(), false);
  });
});

describe('module functions', () => {
  it('currentThread(), mainThread(), getIdent() and isMainThread, in the main thread and in a thread', () => {
    assert.ok(currentThread() === mainThread(), 'currentThread() === mainThread()');
    assert.equal(mainThread().name, 'MainThread');
    assert.equal(isMainThread, true);
    assert.equal(currentThread().ident, getIdent());
    const t = new Thread({
      name: 'asker',
      target: async () => {
        const tk = await import('threadkit');
        const me = tk.currentThread();
        return {
          isMainThread: tk.isMainThread,
          meName: me.name,
          meIsMain: me === tk.mainThread(),
          identAgrees: me.ident === tk.getIdent(),
          mainName: tk.mainThread().name,
          mainIdent: tk.mainThread().ident,
          main: tk.mainThread(),
          me,
        };
      },
    });
    t.start();
    t.join();
    const r = t.result as { isMainThread: boolean; meName: string; meIsMain: boolean; identAgrees: boolean; mainName: string; mainIdent: number; main: Thread; me: Thread };
    assert.equal(r.isMainThread, false);
    assert.equal(r.meName, 'asker');
    assert.equal(r.meIsMain, false);
    assert.equal(r.identAgrees, true);
    assert.equal(r.mainName, 'MainThread');
    assert.equal(r.mainIdent, getIdent());
    assert.ok(r.main === mainThread(), 'the main thread comes back as the same object');
    assert.ok(r.me === t, 'the thread itself comes back as the Thread object that started it');
  });

  it('activeCount() is the number of live threads (the length of enumerate())', () => {
    untilOnlyMainThread();
    const before = activeCount();
    assert.equal(before, enumerate().length);
    const go = new Event();
    const threads = [0, 1].map(() => startThread((g: Event, long: number) => g.wait(long), [go, LONG]));
    assert.equal(activeCount(), before + 2);
    assert.equal(enumerate().length, before + 2);
    go.set();
    for (const t of threads) t.join();
  });
});

describe('excepthook', () => {
  it('the default hook writes "Exception in thread NAME:" and the stack to stderr', () => {
    const t = new Thread({
      name: 'loud',
      target: () => {
        throw new Error('reported by default');
      },
    });
    const text = captureStderr(() => {
      t.start();
      t.join();
    });
    assert.match(text, /^Exception in thread loud:\nError: reported by default\n {4}at /);
    const direct = captureStderr(() => excepthook({ excType: 'number', excValue: 42, excTraceback: undefined, thread: t }));
    assert.equal(direct, 'Exception in thread loud:\nnumber: 42\n');
  });

  it('setExcepthook(hook) receives excType, excValue, excTraceback and thread, before join() returns', () => {
    withHook((reports) => {
      const t = startThread(() => {
        throw new RangeError('out of range');
      });
      t.join();
      assert.equal(reports.length, 1);
      const { excType, excValue, excTraceback, thread } = reports[0]!;
      assert.equal(excType, 'RangeError');
      assert.ok(excValue instanceof RangeError, 'excValue instanceof RangeError');
      assert.equal(excValue.message, 'out of range');
      assert.match(excTraceback ?? '', /^RangeError: out of range\n {4}at /);
      assert.ok(thread === t, 'thread === t');

      const u = startThread(() => {
        throw 42;
      });
      u.join();
      assert.equal(reports.length, 2);
      assert.equal(reports[1]!.excType, 'number');
      assert.equal(reports[1]!.excValue, 42);
      assert.equal(reports[1]!.excTraceback, undefined);
    });
  });

  it('a hook set in a thread is called in that thread for the threads it started, before its join() returns', () => {
    withHook((mainReports) => {
      const owner = new Thread<string[]>({
        name: 'hook-owner',
        target: async () => {
          const tk = await import('threadkit');
          const reports: string[] = [];
          const child = new tk.Thread({
            name: 'failing-grandchild',
            target: () => {
              throw new Error('deep');
            },
          });
          tk.setExcepthook(({ excType, excValue, thread }) => {
            reports.push(`${thread?.name} ${excType} ${(excValue as Error).message} same=${thread === child} in=${tk.currentThread().name}`);
          });
          child.start();
          child.join();
          return reports.slice();
        },
      });
      owner.start();
      owner.join();
      assert.deepEqual(owner.result, ['failing-grandchild Error deep same=true in=hook-owner']);
      assert.deepEqual(mainReports.map(summary), [], "the main thread's hook is not called");
    });
  });

  it('the hook is called for a thread nobody joins, from the event loop', async () => {
    try {
      const reported = new Promise<ExceptHookArgs>((resolve) => setExcepthook(resolve));
      const t = new Thread({
        name: 'unjoined',
        target: () => {
          throw new Error('nobody joins me');
        },
      });
      t.start();
      const report = await reported;
      assert.ok(report.thread === t, 'report.thread === t');
      assert.equal((report.excValue as Error).message, 'nobody joins me');
      assert.equal(t.isAlive(), false);
    } finally {
      setExcepthook(undefined);
    }
  });

  it('a hook that throws is reported, and the default hook reports the error; setExcepthook(undefined) restores the default', () => {
    setExcepthook(() => {
      throw new Error('broken hook');
    });
    let text: string;
    try {
      text = captureStderr(() => {
        const t = new Thread({
          name: 'under-broken-hook',
          target: () => {
            throw new Error('original');
          },
        });
        t.start();
        t.join();
      });
    } finally {
      setExcepthook(undefined);
    }
    assert.match(text, /^Exception in threading\.excepthook:\nError: broken hook\n/);
    assert.match(text, /\nException in thread under-broken-hook:\nError: original\n/);
    const restored = captureStderr(() => {
      const t = new Thread({
        name: 'after-restore',
        target: () => {
          throw new Error('default again');
        },
      });
      t.start();
      t.join();
    });
    assert.match(restored, /^Exception in thread after-restore:\nError: default again\n/);
    assert.throws(() => setExcepthook(5 as never), { name: 'TypeError', message: /expected a function or undefined/ });
  });

  it('process.exit() in a target ends only that thread: isAlive() turns false, join(), joinAsync() and other joiners wake', async () => {
    await withHookAsync(async (reports) => {
      const go = new Event();
      const exiter = new Thread({
        name: 'exiter',
        args: [go, LONG],
        target: (g: Event, long: number) => {
          g.wait(long);
          process.exit(7);
        },
      });
      exiter.start();
      // Another thread joins it too, and releases it.
      const joiner = startThread<boolean>(
        (t: Thread, g: Event) => {
          g.set();
          t.join();
          return t.isAlive();
        },
        [exiter, go],
      );
      try {
        exiter.join();
        assert.equal(exiter.isAlive(), false);
      } finally {
        go.set();
        joiner.join();
      }
      assert.equal(joiner.result, false, 'the other joiner woke and saw it ended');

      const asyncExiter = startThread(() => {
        process.exit(8);
      });
      await asyncExiter.joinAsync();
      assert.equal(asyncExiter.isAlive(), false);

      const [after] = runThreads<string>(() => 'threads still work', [[]]);
      assert.equal(after, 'threads still work');
      // What the hook said (it may miss one: see the next test).
      for (const report of reports) {
        assert.equal(report.excType, 'ThreadError');
        assert.match(summary(report), /^(exiter|Thread-\d+): ThreadError: process\.exit\([78]\) was called in thread \1/);
      }
    });
  });

  it('a thread whose error cannot be sent (a field holding a function) still ends: join() returns, the report describes the error', () => {
    withHook((reports) => {
      const sync = new Thread({
        name: 'uncloneable-throw',
        target: () => {
          throw Object.assign(new Error('with a method'), { retry: () => 1 });
        },
      });
      const late = new Thread({
        name: 'uncloneable-late',
        target: () => {
          setTimeout(() => {
            throw Object.assign(new Error('late, with a method'), { retry: () => 1 });
          });
          return new Promise(() => {});
        },
      });
      for (const t of [sync, late]) t.start();
      for (const t of [sync, late]) {
        t.join(LONG);
        assert.equal(t.isAlive(), false, `${t.name} still runs`);
      }
      const byName = new Map(reports.map((r) => [r.thread?.name, summary(r)]));
      assert.match(byName.get('uncloneable-throw') ?? 'no report', /ThreadError: Error: with a method \(the error itself could not be sent to another thread: .*retry/);
      assert.match(byName.get('uncloneable-late') ?? 'no report', /ThreadError: .*late, with a method.*could not be sent/);
    });
  });

  it('an error thrown by a timer while the target still runs (its promise pending) ends the thread: the excepthook reports "an uncaught error ended thread NAME\'s isolate: Error: late boom"', () => {
    withHook((reports) => {
      const t = new Thread({
        name: 'late-thrower',
        target: () => {
          setTimeout(() => {
            throw new Error('late boom');
          });
          return new Promise(() => {}); // never settles: only the timer's error ends the thread
        },
      });
      t.start();
      t.join(LONG);
      assert.equal(t.isAlive(), false, 'the thread still runs');
      assert.deepEqual(reports.map(summary), ["late-thrower: ThreadError: an uncaught error ended thread late-thrower's isolate: Error: late boom"]);
      const cause = (reports[0]!.excValue as Error).cause;
      assert.ok(cause instanceof Error, `the cause is ${String(cause)}`);
      assert.equal(cause.message, 'late boom');
      assert.ok(reports[0]!.thread === t, 'report.thread === t');
    });
  });

  it('a target that returns before its timer throws: the thread ends normally (its result, no report), also once the timer has thrown', async () => {
    await withHookAsync(async (reports) => {
      const arm = new Event();
      const fired = new Event();
      const t = new Thread<string>({
        name: 'returns-first',
        args: [arm, fired],
        // The timer throws only once armed, so that it cannot hit a later test's thread.
        target: (a: Event, f: Event) => {
          const timer = setInterval(() => {
            if (!a.isSet()) return;
            clearInterval(timer);
            f.set();
            throw new Error('late boom');
          }, 1);
          return 'returned';
        },
      });
      t.start();
      t.join();
      assert.equal(t.result, 'returned');
      assert.deepEqual(reports.map(summary), [], 'reports after join()');
      // Now the timer throws in the isolate the thread ran on: wait until that isolate is gone.
      arm.set();
      assert.equal(fired.wait(LONG), true, 'the timer ran');
      const deadline = performance.now() + LONG;
      while (existsSync(`/proc/self/task/${t.nativeId}`) && performance.now() < deadline) sleepSync(1);
      assert.equal(existsSync(`/proc/self/task/${t.nativeId}`), false, 'the isolate survived an uncaught error');
      // Let this thread's event loop see the isolate exit (so that no later thread is handed to it).
      const after = startThread<string>(() => 'after');
      await after.joinAsync({ timeout: LONG });
      assert.equal(t.result, 'returned');
      assert.equal(t.isAlive(), false);
      assert.deepEqual(
        reports.filter((r) => r.thread === t).map(summary),
        [],
        'the timer error of a thread that had ended was reported for it',
      );
    });
  });

  it(
    "an error thrown by a finished thread's timer does not end the next thread run on its warm isolate",
    
    async () => {
      await withHookAsync(async (reports) => {
        const arm = new Event();
        const fired = new Event();
        const bomber = startThread<string>(
          (a: Event, f: Event) => {
            const timer = setInterval(() => {
              if (!a.isSet()) return;
              clearInterval(timer);
              f.set();
              throw new Error('late boom');
            }, 1);
            return 'returned';
          },
          [arm, fired],
        );
        bomber.join();
        assert.equal(bomber.result, 'returned');
        // The next thread arms the finished thread's timer, then waits (on its event loop) until it has thrown.
        const innocent = new Thread<string>({
          name: 'innocent',
          args: [arm, fired, LONG],
          target: async (a: Event, f: Event, long: number) => {
            a.set();
            await f.waitAsync({ timeout: long });
            await new Promise((resolve) => setTimeout(resolve, 1));
            return 'innocent done';
          },
        });
        innocent.start();
        await innocent.joinAsync({ timeout: LONG });
        assert.deepEqual(reports.map(summary), [], 'reports');
        assert.equal(innocent.result, 'innocent done');
      });
    },
  );

  it(
    'a thread started after a warm isolate died idle (its previous thread\'s timer threw) runs: join() returns with its result',
    
    async () => {
      await withHookAsync(async (reports) => {
        const arm = new Event();
        const fired = new Event();
        const bomber = startThread<string>(
          (a: Event, f: Event) => {
            const timer = setInterval(() => {
              if (!a.isSet()) return;
              clearInterval(timer);
              f.set();
              throw new Error('late boom');
            }, 1);
            return 'returned';
          },
          [arm, fired],
        );
        bomber.join();
        arm.set();
        assert.equal(fired.wait(LONG), true, 'the timer ran');
        const deadline = performance.now() + LONG;
        while (existsSync(`/proc/self/task/${bomber.nativeId}`) && performance.now() < deadline) sleepSync(1);
        assert.equal(existsSync(`/proc/self/task/${bomber.nativeId}`), false, 'the isolate survived an uncaught error');
        // No event loop turn since the isolate died: this thread has not seen its exit yet.
        const next = new Thread<string>({ name: 'after-the-death', target: () => 'ran' });
        next.start();
        try {
          next.join(10_000); // bounded only so that the suite cannot hang (a new isolate starts in ~100 ms)
          assert.equal(next.isAlive(), false, 'join() returned with the thread still alive');
          assert.equal(next.result, 'ran');
          assert.deepEqual(reports.map(summary), [], 'reports');
        } finally {
          await next.joinAsync({ timeout: LONG });
        }
      });
    },
  );

  it(
    'the excepthook always reports a thread whose isolate ended with process.exit(), before join() returns',

    () => {
      withHook((reports) => {
        let missed = 0;
        for (let i = 0; i < 10; i++) {
          const before = reports.length;
          const t = startThread(() => {
            process.exit(1);
          });
          while (t.isAlive()) {
            // poll: join() right when the thread is marked stopped
          }
          t.join();
          if (reports.length === before) missed++;
        }
        assert.equal(missed, 0, `${missed} of 10 deaths were never reported`);
      });
    },
  );
});

describe('bad input', () => {
  it('args that cannot be cloned (a function, a socket, a symbol, a WeakMap) are refused at start() with the path; the thread is not registered', () => {
    const socket = new net.Socket();
    try {
      const cases: [unknown[], RegExp][] = [
        [[1, { handler(): void {} }], /^args\[1\]\.handler: function handler\(\) could not be cloned/],
        [[socket], /^args\[0\]\.\S+: .* could not be cloned/],
        [[Symbol('s')], /^args\[0\]: symbol Symbol\(s\) could not be cloned/],
        [['ok', [new WeakMap()]], /^args\[1\]\[0\]: a WeakMap could not be cloned/],
      ];
      for (const [args, message] of cases) {
        const t = new Thread({ target: (..._: unknown[]) => 1, args });
        untilOnlyMainThread();
        assert.throws(() => t.start(), { name: 'TypeError', message });
        assert.equal(t.isAlive(), false);
        assert.equal(t.ident, undefined);
        assert.match(String(t), /, initial\)>$/);
        assert.equal(activeCount(), 1);
        assert.ok(!enumerate().some((x) => x === t), '!enumerate().some((x) => x === t)');
      }
    } finally {
      socket.destroy();
    }
  });
});

describe('known gaps', () => {
  it(
    'once join() has returned, the thread is gone from enumerate() and activeCount()',

    () => {
      withHook(() => {
        untilOnlyMainThread();
        let stale = 0;
        for (let i = 0; i < 10; i++) {
          const t = startThread(() => {
            process.exit(1);
          });
          while (t.isAlive()) {
            // poll: join() right when the thread is marked stopped
          }
          t.join();
          if (activeCount() !== 1 || enumerate().some((x) => x === t)) stale++;
        }
        assert.equal(stale, 0, `${stale} of 10 joined threads were still listed`);
      });
    },
  );

  it(
    'a name set inside the thread is the name of the Thread object everywhere',

    () => {
      const renamed = new Event();
      const go = new Event();
      const t = startThread(
        async (r: Event, g: Event, long: number) => {
          const { currentThread } = await import('threadkit');
          currentThread().name = 'renamed inside';
          r.set();
          g.wait(long);
        },
        [renamed, go, LONG],
      );
      try {
        renamed.wait(LONG);
        assert.equal(t.name, 'renamed inside');
        assert.ok(enumerate().some((x) => x.name === 'renamed inside'), 'enumerate().some((x) => x.name === \'renamed inside\')');
      } finally {
        go.set();
        t.join();
      }
    },
  );

  it('a long name arrives whole in the thread', () => {
    const name = `long-${'x'.repeat(199)}`; // 204 bytes: the most the thread table keeps whole
    const t = new Thread<string>({
      name,
      target: async () => (await import('threadkit')).currentThread().name,
    });
    t.start();
    t.join();
    assert.equal(t.result?.length, name.length);
  });
});
