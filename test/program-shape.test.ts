/**
 * Programs as users write them (test/fixtures/program-shape.ts, runaway.ts), each in a child
 * process that must end by itself: pools never shut down, threads whose isolate cannot start,
 * modules that would start threads without end, and what threads print (order, nothing lost).
 */

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type NodeRun, runNode, show } from './fixtures/run-node.js';

const SCENARIOS = 'program-shape.ts';
const THROWING_PRELOAD = fileURLToPath(new URL('./fixtures/throw-in-threads.mjs', import.meta.url));

function lines(text: string): string[] {
  return text.split('\n').filter((line) => line !== '');
}

function assertEnded(run: NodeRun, code: number): void {
  assert.equal(run.timedOut, false, `the program did not end by itself\n${show(run)}`);
  assert.equal(run.code, code, show(run));
}

describe('a pool that is never shut down', { concurrency: true }, () => {
  for (const [scenario, expected] of [
    ['pool-result', ['1']],
    ['pool-map', ['1,4,9']],
    ['pool-as-completed', ['2,3,4']],
    ['pool-await', ['40']],
    ['pool-daemon-flag', ['daemon in task: false', 'daemon in main: false']],
    ['idle-pool-with-timer', ['timer fired, then exit']],
  ] as const) {
    it(`lets the process exit once its work is done: ${scenario}`, async () => {
      const run = await runNode(SCENARIOS, [scenario]);
      assertEnded(run, 0);
      assert.deepEqual(lines(run.stdout), expected, show(run));
      assert.equal(run.stderr, '', show(run));
    });
  }

  it('finishes its queued work before the process exits, as CPython does', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'threadkit-pool-exit-'));
    try {
      const file = join(dir, 'marks');
      const run = await runNode(SCENARIOS, ['pool-queued-work', file]);
      assertEnded(run, 0);
      const marks = lines(readFileSync(file, 'utf8'));
      assert.equal(marks[0], 'main done', 'main finished first (it does not wait)');
      assert.deepEqual(marks.slice(1).sort(), ['task 0', 'task 1', 'task 2', 'task 3', 'task 4', 'task 5']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('threads whose isolate cannot start', { concurrency: true }, () => {
  const preload = { nodeArgs: ['--import', THROWING_PRELOAD] };

  for (const scenario of ['thread-cannot-start', 'thread-cannot-start-async']) {
    it(`join returns and the excepthook names the cause: ${scenario}`, async () => {
      const run = await runNode(SCENARIOS, [scenario], preload);
      assertEnded(run, 0);
      const [hook, joined] = lines(run.stdout);
      assert.match(hook ?? '', /^hook: ThreadError: thread doomed could not start: its isolate failed to load threadkit: this preload refuses to run in a worker$/, show(run));
      assert.equal(joined, 'joined: alive=false', show(run));
    });
  }

  it('a pool whose threads keep failing to start breaks: every pending future fails with BrokenThreadPool naming the cause', async () => {
    const run = await runNode(SCENARIOS, ['pool-cannot-start'], preload);
    assertEnded(run, 0);
    assert.deepEqual(lines(run.stdout), ['result: BrokenThreadPool: true', 'result: BrokenThreadPool: true', 'result: BrokenThreadPool: true', 'submit after: BrokenThreadPool true'], show(run));
  });

  it('…also when the futures are awaited', async () => {
    const run = await runNode(SCENARIOS, ['pool-cannot-start-async'], preload);
    assertEnded(run, 0);
    assert.deepEqual(lines(run.stdout), ['BrokenThreadPool,BrokenThreadPool,BrokenThreadPool'], show(run));
  });
});

describe('a module that starts threads at its top level', { concurrency: true }, () => {
  for (const [mode, what] of [
    ['function', 'a module-function target'],
    ['sub', 'an exported Thread subclass'],
  ] as const) {
    it(`never runs away (${what}): the thread fails with an error that names the module and the fix`, async () => {
      const run = await runNode('runaway.ts', [mode]);
      assertEnded(run, 0);
      assert.deepEqual(lines(run.stdout), ['main: joined, alive=false, result=undefined'], show(run));
      assert.match(run.stderr, /^Exception in thread Thread-\d+( \(work\))?:/m, show(run));
      assert.match(run.stderr, /cannot start a thread while a thread imports file:\/\/\S+\/runaway\.ts/, show(run));
      assert.match(run.stderr, /if \(isMainThread\)/, show(run));
      // One thread was started, and it failed: no second "Exception in thread".
      assert.equal(run.stderr.match(/Exception in thread/g)?.length, 1, show(run));
    });
  }
});

describe('what threads print', { concurrency: true }, () => {
  it('lines printed under a Lock reach stdout in the order they were printed, while main is blocked in join()', async () => {
    const run = await runNode(SCENARIOS, ['ordered-lines', '4']);
    assertEnded(run, 0);
    assert.deepEqual(lines(run.stdout), ['start', ...Array.from({ length: 100 }, (_, i) => `line ${i}`), 'end'], show(run));
  });

  it('nothing a thread printed is lost when it calls process.exit()', async () => {
    const run = await runNode(SCENARIOS, ['exit-in-thread']);
    assertEnded(run, 0);
    assert.deepEqual(lines(run.stdout), [...Array.from({ length: 50 }, (_, i) => `thread line ${i}`), 'main after join'], show(run));
    assert.equal(run.stderr, 'thread to stderr\n', show(run));
  });

  it('nothing is lost when main calls process.exit() or dies of an uncaught error', async () => {
    const exit = await runNode(SCENARIOS, ['main-exits-after-thread-printed']);
    assertEnded(exit, 7);
    assert.deepEqual(lines(exit.stdout), [...Array.from({ length: 50 }, (_, i) => `thread line ${i}`), 'main exits'], show(exit));
    const uncaught = await runNode(SCENARIOS, ['uncaught-in-main']);
    assertEnded(uncaught, 1);
    assert.deepEqual(lines(uncaught.stdout), Array.from({ length: 20 }, (_, i) => `thread line ${i}`), show(uncaught));
    assert.match(uncaught.stderr, /main fails after the thread printed/, show(uncaught));
  });
});

describe('errors thrown by callbacks a thread or task left behind', { concurrency: true }, () => {
  it('a timer of task A that throws after A returned is reported against A, and task B on the same thread is unharmed', async () => {
    const run = await runNode(SCENARIOS, ['late-timer-task']);
    assertEnded(run, 0);
    assert.deepEqual(lines(run.stdout), ['A B'], show(run));
    assert.match(run.stderr, /^Exception in a task of ThreadPoolExecutor-\d+_0 \(function leavesATimer\), from a callback it left scheduled, after it ended:\nError: late error of task A/m, show(run));
  });

  it('a timer a thread left that throws after the thread returned is reported against the thread, not swallowed', async () => {
    const run = await runNode(SCENARIOS, ['late-timer-thread']);
    assertEnded(run, 0);
    assert.deepEqual(lines(run.stdout), ['joined: returned'], show(run));
    assert.match(run.stderr, /^Exception in thread leaves-a-timer, from a callback it left scheduled, after it ended:\nError: late error of the thread/m, show(run));
  });
});

describe('a failing initializer', () => {
  it('is printed once to stderr as CPython logs it ("Exception in initializer:" and the stack), and the futures fail with BrokenThreadPool', async () => {
    const run = await runNode(SCENARIOS, ['initializer-fails']);
    assertEnded(run, 0);
    assert.deepEqual(lines(run.stdout), ['future: BrokenThreadPool', 'future: BrokenThreadPool'], show(run));
    assert.match(run.stderr, /^Exception in initializer:\nError: the initializer failed\n {4}at /, show(run));
    assert.equal(run.stderr.match(/Exception in initializer/g)?.length, 1, show(run));
  });
});
