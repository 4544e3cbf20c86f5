/**
 * threadkit under Bun and Deno (their `node:worker_threads`, SharedArrayBuffer and Atomics),
 * and three process-level behaviours under Node, Bun and Deno alike: the order of lines
 * printed by threads, lines printed around a process exit, and a pool that is never shut down.
 *
 * The runtimes are the repo's devDependencies (node_modules/.bin/bun, node_modules/.bin/deno).
 * Commands, run from the repo root (cwd matters: that is where 'threadkit' resolves):
 *   node --import tsx <file>
 *   bun <file>                 Bun runs TypeScript itself; 'threadkit' resolves through the
 *                              package's self-reference (package.json "name" + "exports").
 *   deno run -A <file>         No other flag is needed: with a package.json in the directory,
 *                              Deno 2 uses the existing node_modules ("manual" node_modules
 *                              mode), resolves the self-reference to dist/index.js as Node
 *                              does, and does not type-check. -A: threads need read, env and
 *                              sys permissions (and the examples spawn a child process).
 *                              (Deno shows stack traces through the source maps: they name
 *                              src/*.ts even though dist/*.js runs.)
 * Each program runs in a child process with a time limit: one that does not exit by itself
 * fails its test as hung. No timings are asserted.
 */

import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Run, lines, run, show } from './fixtures/apps/run.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'node_modules', '.bin');
const LIMIT_MS = 60_000;

interface Runtime {
  name: 'node' | 'bun' | 'deno';
  command: string;
  /** Arguments before the script's path. */
  prefix: string[];
  /** The examples run under Node in examples.test.ts; here only under Bun and Deno. */
  examples: boolean;
}

const RUNTIMES: Runtime[] = [
  { name: 'node', command: process.execPath, prefix: ['--import', 'tsx'], examples: false },
  { name: 'bun', command: join(BIN, 'bun'), prefix: [], examples: true },
  { name: 'deno', command: join(BIN, 'deno'), prefix: ['run', '-A'], examples: true },
];

const EXAMPLES = readdirSync(join(ROOT, 'examples'))
  .filter((f) => f.endsWith('.ts') && f !== 'tour.ts')
  .sort();

/** Runs `path` (relative to the repo root) under the runtime; fails at once if it is not installed. */
function runUnder(rt: Runtime, path: string, args: string[] = []): Promise<Run> {
  assert.ok(existsSync(rt.command), `${rt.name} is missing: ${rt.command} does not exist; run \`npm ci\` in the repo (${rt.name} is a devDependency)`);
  return run(rt.command, [...rt.prefix, path, ...args], { cwd: ROOT, timeoutMs: LIMIT_MS });
}

/** Fails (showing the run) unless the program exited by itself with `code`. */
function assertExited(r: Run, code: number): void {
  assert.equal(r.timedOut, false, `the program hung: it did not exit by itself within ${r.limitMs / 1000} s\n${show(r)}`);
  assert.equal(r.code, code, `expected exit code ${code}\n${show(r)}`);
}

/** The one line matching `pattern` (fails, showing the run, if there is none). */
function line(r: Run, pattern: RegExp): string {
  const found = lines(r.stdout).find((l) => pattern.test(l));
  assert.ok(found !== undefined, `no line matches ${pattern}\n${show(r)}`);
  return found;
}

/** The first capture group of `pattern` in its line, as a number. */
function number(r: Run, pattern: RegExp): number {
  return Number(pattern.exec(line(r, pattern))![1]);
}

/**
 * Key lines of a few examples, the same as examples.test.ts asserts under Node (only facts that
 * do not depend on the runtime: totals, names, results; never timings or which thread won).
 */
const KEY_LINES: Record<string, (r: Run) => void> = {
  'threads-and-join.ts': (r) => {
    line(r, /^before start: <Thread\(doubler, initial\)>, ident=undefined$/);
    line(r, /^after join: +<Thread\(doubler, stopped \d+\)>, alive=false, result=42$/);
    line(r, /^inside introspector: currentThread\(\)\.ident=\d+ \(same as outside: true\), isMainThread=false$/);
    line(r, /^outside: currentThread\(\)\.name=MainThread$/);
    line(r, /^module function: hello from greeter \(ident \d+, daemon=false\)$/);
    line(r, /^squares: 1, 4, 9, 16 {2}\(names: (Thread-\d+ \(square\)(, )?){4}\)$/);
    line(r, /^join\(20\) on a 300 ms sleeper returned; alive=true$/);
    line(r, /^await joinAsync\(\): alive=false, result=timed-out$/);
  },
  'producer-consumer.ts': (r) => {
    line(r, /^producers put 100 items; queue\.join\(\) returned with unfinishedTasks=0$/);
    const taken = [1, 2, 3].map((i) => number(r, new RegExp(`^consumer-${i} took (\\d+) items$`)));
    assert.equal(
      taken.reduce((a, b) => a + b, 0),
      100,
      show(r),
    );
    line(r, /^consumed 100 items in all, sum 7450 \(expected 7450\)$/);
    const peak = number(r, /^the queue never held more than (\d+) items \(maxsize 5\)$/);
    assert.ok(peak >= 1 && peak <= 5, `peak qsize ${peak}\n${show(r)}`);
    line(r, /^put\(\) after shutdown: QueueShutDown$/);
  },
  'pool.ts': (r) => {
    line(r, /^map: primes per block of 25,000 below 1,000,000: 2762, 2371, 2260, 2199, 2142, 2114, … \(40 blocks\)$/);
    line(r, /^map: total 78498 primes below 1,000,000$/);
    line(r, /^submit: await future -> 9592$/);
    line(r, /^addDoneCallback: primes below 100,000 = 9592$/);
    const finished = line(r, /^asCompleted: /);
    assert.ok(finished.includes('short (168)') && finished.includes('long (49098)'), `${finished}\n${show(r)}`);
    line(r, /^threads: primes_\d+(, primes_\d+)* \(maxWorkers \d+\)$/);
    line(r, /^self-contained task: 6 \* 7 = 42$/);
  },
  'racing-counter.ts': (r) => {
    assert.ok(number(r, /^without a lock: (\d+)/) <= 400_000, show(r));
    line(r, /^with a Lock: +400000 \(exact\)$/);
  },
};

const APPS = 'test/fixtures/apps';

// All runtimes at once (child processes stay at two at a time: run.ts), so that a case that
// hangs costs its 60 s alongside the others, not after them.
describe('runtimes', { concurrency: true }, () => {
  for (const rt of RUNTIMES) {
    describe(rt.name, { concurrency: true }, () => {
      if (rt.examples) {
        for (const example of EXAMPLES) {
          const check = KEY_LINES[example];
          it(`examples/${example}: exits by itself with code 0${check ? ', key lines as under Node' : ', prints something'}`, async () => {
            const r = await runUnder(rt, `examples/${example}`);
            assertExited(r, 0);
            assert.ok(lines(r.stdout).length > 0, `it printed nothing\n${show(r)}`);
            check?.(r);
          });
        }
      }

      it('print order: 4 threads print 50 lines each in turns under a Lock while main is blocked in join(); stdout is 0..199 in order, then done', async () => {
        const r = await runUnder(rt, `${APPS}/print-order.ts`);
        assertExited(r, 0);
        const expected = [...Array.from({ length: 200 }, (_, i) => String(i)), 'done'];
        assert.deepEqual(lines(r.stdout), expected, `the lines are not 0..199 then done, in order\n${show(r)}`);
      });

      it('main joins a thread that printed 20 lines, prints, and calls process.exit(5): every line is there, exit code 5', async () => {
        const r = await runUnder(rt, `${APPS}/thread-exit.ts`, ['main-exits']);
        assertExited(r, 5);
        const out = lines(r.stdout);
        assert.deepEqual(
          out.filter((l) => l.startsWith('thread line ')),
          Array.from({ length: 20 }, (_, i) => `thread line ${i}`),
          `lines of the thread are missing\n${show(r)}`,
        );
        assert.ok(out.includes('main: joined, exiting with 5'), `the main thread's line is missing\n${show(r)}`);
      });

      it('a thread prints 20 lines then calls process.exit(): none of its lines is lost, main goes on', async () => {
        const r = await runUnder(rt, `${APPS}/thread-exit.ts`, ['thread-exits']);
        assertExited(r, 0);
        const out = lines(r.stdout);
        assert.deepEqual(
          out.filter((l) => l.startsWith('thread line ')),
          Array.from({ length: 20 }, (_, i) => `thread line ${i}`),
          `lines of the thread are missing\n${show(r)}`,
        );
        assert.ok(out.includes('main after'), `the main thread's line is missing\n${show(r)}`);
      });

      it('a ThreadPoolExecutor never shut down: submit().result(), await submit(), map(); then the process exits by itself', async () => {
        const r = await runUnder(rt, `${APPS}/pool-no-shutdown.ts`);
        assertExited(r, 0);
        assert.deepEqual(lines(r.stdout), ['1', '2', '1', '4', '9'], show(r));
      });
    });
  }
});
