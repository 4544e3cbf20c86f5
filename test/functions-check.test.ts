/**
 * Self-contained functions, checked in the thread that sends them and compiled where they were
 * written: an outer variable is refused by new Thread(), submit(), map() and the pool's
 * initializer (a TypeError naming it, with advice that fits how it is used); globals, the
 * function's own bindings, and what tsx and esbuild emit are not; the verdict is cached by
 * source text; and an error thrown in a shipped function has a stack frame that names the test
 * file and the line of its `throw` (the .ts line: the tests run under tsx).
 */

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { transformSync } from 'esbuild';
import { type ExceptHookArgs, Barrier, Thread, ThreadPoolExecutor, setExcepthook } from 'threadkit';
import { fixtureTask } from './fixtures/located-functions.js';

// Outer names that the functions below must not capture.
const secret = 42;
function helper(x: number): number {
  return x + 1;
}
class Helper {}

const pool = new ThreadPoolExecutor({ maxWorkers: 2 });
after(() => pool.shutdown());

/** The 1-based line of this file (or `file`) that holds `marker`. */
function lineOf(marker: string, file = fileURLToPath(import.meta.url)): number {
  const lines = readFileSync(file, 'utf8').split('\n');
  const found = lines.flatMap((line, i) => (line.includes(marker) && !line.includes('lineOf(') ? [i + 1] : []));
  assert.equal(found.length, 1, `the marker "${marker}" must mark one line`);
  return found[0]!;
}

/** The message of what `body` throws (it must throw). */
function thrown(body: () => unknown): string {
  try {
    body();
  } catch (error) {
    return (error as Error).message;
  }
  assert.fail('expected an error');
}

describe('an outer variable is refused in the sending thread', () => {
  it('by new Thread(), before start(): a value, to pass in args', () => {
    assert.throws(() => new Thread({ target: () => secret }).start(), {
      name: 'TypeError',
      message:
        /^Thread target uses "secret", which is not defined in the thread: a self-contained function is sent as source text, so it cannot capture outer variables\. secret is used as a value: pass it in args/,
    });
  });

  it('by submit(), map(), mapAsync() and the pool initializer, and the pool keeps working', () => {
    const task = /^task function uses "secret", which is not defined in the thread: .* pass it in args/;
    assert.throws(() => pool.submit(() => secret), { name: 'TypeError', message: task });
    assert.throws(() => pool.map((x: number) => x + secret, [1, 2]), { name: 'TypeError', message: task });
    assert.throws(() => pool.mapAsync((x: number) => x * secret, [1, 2]), { name: 'TypeError', message: task });
    assert.throws(() => new ThreadPoolExecutor({ maxWorkers: 1, initializer: () => void secret }), {
      name: 'TypeError',
      message: /^ThreadPoolExecutor initializer uses "secret"/,
    });
    assert.throws(() => new Barrier(1, { action: () => void secret }), { name: 'TypeError', message: /^Barrier action uses "secret"/ });
    assert.equal(pool.submit((x: number) => x + 1, secret).result(), 43);
  });

  it('a name that is called is a function: define it inside, or use a module function (not "pass it in args")', () => {
    for (const message of [thrown(() => pool.submit((x: number) => helper(x), 1)), thrown(() => new Thread({ target: () => new Helper() }))]) {
      assert.match(message, /^(task function|Thread target) uses "(helper|Helper)", which is not defined in the thread: /);
      assert.match(message, /(helper|Helper) is called like a function: define it inside the function, or use a module function \{ module: import\.meta\.url, name: '<exported function>' \}/);
      assert.doesNotMatch(message, /pass it in args/);
    }
  });

  it("require (a CommonJS module's, not a global): import inside instead", () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- the mistake under test
    assert.match(thrown(() => pool.submit(() => require('node:path'))), /^task function uses "require", .*use await import\(\.\.\.\) inside the function/);
  });

  it('names the first outer name and lists the others', () => {
    assert.match(thrown(() => pool.submit(() => secret + helper(secret))), /^task function uses "secret", .*\(it also uses "helper"\)$/);
  });

  it('is reported once per call, whatever was cached (a refused function stays refused)', () => {
    const again = (): number => secret * 2;
    for (let i = 0; i < 3; i++) assert.throws(() => pool.submit(again), /uses "secret"/);
  });

  it('a helper that the compiler added (and the thread does not supply) is named as such', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'threadkit-esbuild-'));
    try {
      // esbuild lowers object spread for an old target with a module-level helper, __spreadValues.
      const { code } = transformSync('export const spread = (o) => ({ ...o, added: 1 });', { target: 'es2017', format: 'esm' });
      assert.match(code, /__spreadValues\(/);
      const file = join(dir, 'lowered.mjs');
      writeFileSync(file, code);
      const { spread } = (await import(pathToFileURL(file).href)) as { spread: (o: object) => object };
      assert.match(thrown(() => pool.submit(spread, { a: 1 })), /^task function uses "(__spread\w+)", .*"\1" looks like a helper that a compiler \(tsc, esbuild, tsx\) added/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('no false positives: these pass the check and run in a pool thread', () => {
  async function run(fn: (...args: any[]) => unknown, ...args: unknown[]): Promise<unknown> {
    return await pool.submit(fn, ...args);
  }

  it('globals: Math, console, fetch, setTimeout, Atomics, SharedArrayBuffer, structuredClone, process, Buffer, URL, TextEncoder', async () => {
    const result = await run(async () => {
      await new Promise((resolve) => setTimeout(resolve, 1));
      const cells = new Int32Array(new SharedArrayBuffer(8));
      Atomics.add(cells, 0, 5);
      return [
        Math.max(1, 2),
        typeof console.log,
        typeof fetch,
        cells[0],
        structuredClone({ a: [1] }).a[0],
        typeof process.pid,
        Buffer.from('abc').length,
        new URL('https://example.com/x').host,
        new TextEncoder().encode('é').length,
        JSON.stringify([globalThis === globalThis, Number.isInteger(1), undefined, NaN]),
      ];
    });
    assert.deepEqual(result, [2, 'function', 'function', 5, 1, 'number', 3, 'example.com', 2, '[true,true,null,null]']);
  });

  it('typeof guards: typeof undefinedThing, and a guarded feature test', async () => {
    // @ts-expect-error -- not declared anywhere: that is the point
    assert.equal(await run(() => typeof undefinedThing), 'undefined');
    // @ts-expect-error -- no window in Node
    assert.equal(await run(() => (typeof window !== 'undefined' ? window.location.href : 'no window')), 'no window');
  });

  it('parameters, destructuring with defaults, rest, and defaults that use earlier parameters', async () => {
    const fn = ({ a, b: [c, ...d] = [] }: { a: number; b?: number[] }, e = a + c!, ...rest: number[]) => [a, c, d, e, rest];
    assert.deepEqual(await run(fn, { a: 1, b: [2, 3, 4] }), [1, 2, [3, 4], 3, []]);
    assert.deepEqual(await run(fn, { a: 1, b: [2] }, 10, 11, 12), [1, 2, [], 10, [11, 12]]);
  });

  it('inner functions (hoisted), classes with fields, getters, statics, private members and static blocks', async () => {
    const fn = (n: number) => {
      const early = twice(n); // hoisted function declaration
      var late; // eslint-disable-line no-var
      late = 'var';
      class Counter {
        static created = 0;
        static {
          var inBlock = 1; // eslint-disable-line no-var
          Counter.created += inBlock;
        }
        #count = 0;
        step = n;
        get count(): number {
          return this.#count;
        }
        add(): this {
          this.#count += this.step;
          return this;
        }
      }
      function twice(x: number): number {
        return x * 2;
      }
      const Named = class Inner {
        self(): string {
          return Inner.name;
        }
      };
      return [early, late, new Counter().add().add().count, Counter.created, new Named().self()];
    };
    assert.deepEqual(await run(fn, 3), [6, 'var', 6, 1, 'Inner']);
  });

  it('this, arguments, new.target, and a named function expression that calls itself', async () => {
    const fn = function factorial(this: unknown, n: number): unknown[] {
      const self = (k: number): number => (k <= 1 ? 1 : k * (factorial.call(undefined, k - 1)[0] as number));
      return [self(n), typeof this, arguments.length, new.target === undefined];
    };
    assert.deepEqual(await run(fn, 4), [24, 'undefined', 1, true]);
  });

  it('await import(...), labels, object keys and shorthand methods named like outer variables, optional chaining', async () => {
    const fn = async (o?: { a?: { b: number } }) => {
      const { basename } = await import('node:path');
      let found = -1;
      outer: for (let i = 0; i < 3; i++) {
        for (let j = 0; j < 3; j++) {
          if (i * j === 2) {
            found = i * 10 + j;
            break outer;
          }
          if (j > i) continue outer;
        }
      }
      const keys = { secret: 1, helper: 2, Helper() {
        return 3;
      }, get getter() {
        return 4;
      } };
      const member = { value: keys }.value.secret;
      return [basename('/a/b.txt'), found, keys.secret + keys.helper + keys.Helper() + keys.getter, member, o?.a?.b ?? 'none'];
    };
    assert.deepEqual(await run(fn), ['b.txt', 12, 10, 1, 'none']);
  });

  it('async and generator functions, catch parameters, switch cases, for-of and for-in bindings', async () => {
    const fn = async () => {
      async function* numbers(): AsyncGenerator<number> {
        yield 1;
        yield 2;
      }
      function* letters(): Generator<string> {
        yield* ['a', 'b'];
      }
      let sum = 0;
      for await (const n of numbers()) sum += n;
      const out: string[] = [];
      for (const letter of letters()) out.push(letter);
      for (const key in { x: 1 }) out.push(key);
      let caught = '';
      try {
        throw new RangeError('r');
      } catch ({ name }: any) {
        caught = name as string;
      }
      switch (sum) {
        case 3: {
          const inCase = 'three';
          out.push(inCase);
          break;
        }
        default:
          out.push('other');
      }
      return [sum, out.join(''), caught];
    };
    assert.deepEqual(await run(fn), [3, 'abxthree', 'RangeError']);
  });

  it("tsx's __name(...) calls (an inner named function and arrow under keepNames)", async () => {
    const fn = (n: number) => {
      function inner(): number {
        return n + 1;
      }
      const arrow = (): number => inner() * 2;
      return [inner.name, arrow.name, arrow()];
    };
    assert.match(fn.toString(), /__name\(/, 'the tests run under tsx: the text carries __name calls');
    assert.deepEqual(await run(fn, 1), ['inner', 'arrow', 4]);
  });

  it('esbuild-lowered code: `using` (the thread supplies __using and __callDispose), keepNames', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'threadkit-esbuild-'));
    try {
      const source = `export const task = (n) => {
        const log = [];
        { using r = { [Symbol.dispose]() { log.push('disposed'); } }; log.push('used ' + n); }
        const named = () => log.length;
        return [...log, named.name, named()];
      };`;
      const { code } = transformSync(source, { target: 'es2022', format: 'esm', keepNames: true, supported: { using: false } });
      const file = join(dir, 'lowered.mjs');
      writeFileSync(file, code);
      const { task } = (await import(pathToFileURL(file).href)) as { task: (n: number) => unknown };
      assert.match(task.toString(), /__using\(/);
      assert.deepEqual(await run(task, 7), ['used 7', 'disposed', 'named', 2]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the verdict is cached by source text', () => {
  it('a second submit, a new pool and a Thread with the same source do not parse it again', () => {
    const acorn = createRequire(import.meta.url)('acorn') as { parse: (...args: unknown[]) => unknown };
    const parse = acorn.parse;
    let parses = 0;
    acorn.parse = (...args: unknown[]) => {
      parses++;
      return parse(...args);
    };
    const other = new ThreadPoolExecutor({ maxWorkers: 1 });
    try {
      // A source text no other test has: made here, by the Function constructor.
      const make = new Function(`return (x) => x + ${Math.floor(Math.random() * 1e9)} - x`) as () => (x: number) => number;
      const first = make();
      const value = pool.submit(first, 1).result();
      assert.equal(parses, 1, 'the first submit parses the source');
      assert.equal(pool.submit(make(), 2).result(), value);
      assert.equal(other.submit(make(), 3).result(), value);
      const t = new Thread({ target: make(), args: [4] });
      t.start();
      t.join();
      assert.equal(t.result, value);
      assert.equal(parses, 1, 'later functions with the same text are not parsed again');
    } finally {
      acorn.parse = parse;
      other.shutdown();
    }
  });
});

describe('stack traces name the file and line where the function was written', () => {
  /** The frame of `stack` that names this test file, with its line. */
  function frameLine(stack: string | undefined, file = 'functions-check.test.ts'): number | undefined {
    const match = new RegExp(`${file.replace(/\./g, '\\.')}:(\\d+):\\d+`).exec(stack ?? '');
    return match ? Number(match[1]) : undefined;
  }

  it('a Thread target (self-contained): the throw line, not eval at compileSource', () => {
    const reports: ExceptHookArgs[] = [];
    setExcepthook((args) => void reports.push(args));
    try {
      const t = new Thread({
        target: (n: number) => {
          if (n > 0) {
            throw new Error('thrown in a thread target'); // marker: thread-throw
          }
        },
        args: [1],
      });
      t.start();
      t.join();
    } finally {
      setExcepthook(undefined);
    }
    assert.equal(reports.length, 1);
    const stack = (reports[0]!.excValue as Error).stack;
    assert.equal(frameLine(stack), lineOf('marker: thread-throw'), stack);
    assert.doesNotMatch(stack!.split('\n')[1]!, /eval at compileSource|<anonymous>/);
  });

  it('a pool task: an arrow, a function expression with a comment and blank lines before the throw', () => {
    const arrow = (n: number): number => {
      if (n > 0) throw new Error('thrown in a pool task'); // marker: arrow-throw
      return n;
    };
    const expression = function task(n: number): number {
      // a comment, then a blank line: transpiled code has neither

      if (n > 0) {
        throw new RangeError('thrown in a function expression'); // marker: expression-throw
      }
      return n;
    };
    for (const [fn, marker] of [
      [arrow, 'arrow-throw'],
      [expression, 'expression-throw'],
    ] as const) {
      const error = (() => {
        try {
          pool.submit(fn, 1).result();
        } catch (e) {
          return e as Error;
        }
        assert.fail('expected the task to fail');
      })();
      assert.equal(frameLine(error.stack), lineOf(`marker: ${marker}`), error.stack);
    }
  });

  it('a method written in another module, which is not on the stack when it is sent', async () => {
    const error = await pool.submit(fixtureTask.throwsInFixture, 5).then(
      () => assert.fail('expected the task to fail'),
      (e: unknown) => e as Error,
    );
    const fixture = fileURLToPath(new URL('./fixtures/located-functions.ts', import.meta.url));
    assert.match(error.message, /thrown in the fixture \(5\)/);
    assert.equal(frameLine(error.stack, 'located-functions.ts'), lineOf('marker: fixture-throw', fixture), error.stack);
  });
});
