/**
 * Process exit and daemon threads, the default excepthook's output, and isolates that die:
 * each case runs a program of its own (test/fixtures/exit-scenarios.ts) in a child `node`
 * process, and checks its output and exit code.
 */

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type NodeRun, runNode, show } from './fixtures/run-node.js';

const SCENARIOS = 'exit-scenarios.ts';

/** Output lines, without empty ones. */
function lines(text: string): string[] {
  return text.split('\n').filter((line) => line !== '');
}

function assertExited(run: NodeRun, code: number): void {
  assert.equal(run.timedOut, false, `the program hung\n${show(run)}`);
  assert.equal(run.code, code, show(run));
}

describe('threads and the process', { concurrency: true }, () => {
  describe('process exit and daemon threads', { concurrency: true }, () => {
    it('Node exits only after every non-daemon thread has ended, with the exit code main set', async () => {
      const run = await runNode(SCENARIOS, ['non-daemon']);
      assertExited(run, 3);
      assert.deepEqual(lines(run.stdout), ['main: finished', 'worker: finished'], show(run));
      assert.equal(run.stderr, '');
    });

    it('a non-daemon thread started by a thread (and never joined) keeps the process alive too', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'threadkit-exit-'));
      try {
        const mark = join(dir, 'mark');
        const run = await runNode(SCENARIOS, ['nested-non-daemon', mark]);
        assertExited(run, 0);
        assert.deepEqual(lines(run.stdout), ['main: finished (grandchild daemon: false)'], show(run));
        assert.equal(existsSync(mark) ? readFileSync(mark, 'utf8') : 'no mark: the process did not wait', 'grandchild: finished');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('every line a thread prints before it ends reaches stdout, also from threads started by threads', async () => {
      const run = await runNode(SCENARIOS, ['last-words', '8']);
      assertExited(run, 0);
      assert.deepEqual(lines(run.stdout).sort(), Array.from({ length: 8 }, (_, i) => `last words ${i}`), show(run));
    });

    it('every line reaches stdout also when a thread ends right after a burst, or its parent is blocked in join() while it prints', async () => {
      const run = await runNode(SCENARIOS, ['last-words-joined', '4']);
      assertExited(run, 0);
      const expected = ['child', 'parent'].flatMap((who) => Array.from({ length: 4 }, (_, i) => Array.from({ length: 20 }, (_, k) => `${who} ${i} line ${k}`)).flat());
      assert.deepEqual(lines(run.stdout).sort(), expected.sort(), show(run));
    });

    it(
      'daemon threads are stopped when the main program (and every non-daemon thread) has finished',

      async () => {
        const run = await runNode(SCENARIOS, ['daemon']);
        assertExited(run, 0);
        assert.deepEqual(lines(run.stdout), ['main: finished (sleeper daemon: true, alive: true)', 'worker: finished'], show(run));
      },
    );
  });

  describe('errors in threads, seen from outside', { concurrency: true }, () => {
    it('the default excepthook prints "Exception in thread NAME:" and the stack on stderr; the exit code stays 0', async () => {
      const run = await runNode(SCENARIOS, ['excepthook']);
      assertExited(run, 0);
      assert.deepEqual(lines(run.stdout), ['main: joined Thread-1 (boom), alive: false', 'main: finished'], show(run));
      const err = run.stderr;
      assert.match(err, /^Exception in thread Thread-1 \(boom\):\nError: kaboom\n {4}at /, show(run));
      // A hook that throws is reported, then the default hook reports the thread's error.
      assert.match(err, /\nException in threading\.excepthook:\nError: the hook itself failed\n {4}at /, show(run));
      assert.match(err, /\nException in thread second:\nTypeError: async failure\n {4}at /, show(run));
      assert.ok(err.indexOf('the hook itself failed') < err.indexOf('Exception in thread second:'), show(run));
    });

    it('an error in a thread nobody joins, raised after main has finished, is still reported before the process exits', async () => {
      const run = await runNode(SCENARIOS, ['unjoined-failure']);
      assertExited(run, 0);
      assert.deepEqual(lines(run.stdout), ['main: finished'], show(run));
      assert.match(run.stderr, /^Exception in thread orphan:\nError: failed after main finished\n {4}at /, show(run));
    });

    it('a thread whose isolate runs out of memory ends cleanly: the hook reports it, isAlive() turns false, join() and joinAsync() wake', async () => {
      // A small V8 heap (the limit applies to the threads' isolates too) makes it quick.
      const run = await runNode(SCENARIOS, ['out-of-memory'], { nodeArgs: ['--max-old-space-size=64'] });
      assertExited(run, 0);
      const [joined, joinedAsync, next] = lines(run.stdout);
      assert.match(joined ?? '', /^join returned: alive false; hook: hog-join: \w*Error: .*(memory|died)/i, show(run));
      assert.match(joinedAsync ?? '', /^joinAsync returned: alive false; hook: hog-async: \w*Error: .*(memory|died)/i, show(run));
      assert.equal(next, 'next thread: still works', show(run));
    });
  });
});
