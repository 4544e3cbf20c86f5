/**
 * Daemon threads: a non-daemon thread keeps the program alive until it ends (as in Python); a
 * daemon thread does not, and is stopped when the program finishes. To show it for real, this
 * example writes a tiny program to a temporary file, runs it in a child `node` process, and
 * watches when that process exits.
 */

import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Thread, isMainThread } from 'threadkit';

/** How long the child may run: it needs well under a second when daemon threads behave. */
const CHILD_TIMEOUT_MS = 20_000;

/** The child program: a daemon thread that never ends, and a non-daemon thread that takes 300 ms. */
function childProgram(threadkitUrl: string): string {
  return `
import { writeSync } from 'node:fs';
import { Thread } from '${threadkitUrl}';

const forever = new Thread({
  name: 'forever',
  daemon: true,
  target: () => { for (;;) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000); },
});
const slow = new Thread({
  name: 'slow',
  target: async (ms) => {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
    const { writeSync } = await import('node:fs');
    writeSync(1, 'slow (non-daemon) thread: finished, after the main program\\n');
  },
  args: [300],
});
forever.start();
slow.start();
writeSync(1, 'main program: reached its end (forever: daemon=' + forever.daemon + ', alive=' + forever.isAlive() + '; slow: daemon=' + slow.daemon + ')\\n');
`;
}

interface ChildOutcome {
  stdout: string;
  code: number | null;
  killed: boolean;
  ms: number;
}

function runChild(file: string): Promise<ChildOutcome> {
  const started = performance.now();
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [file], { timeout: CHILD_TIMEOUT_MS }, (_error, stdout) => {
      resolve({ stdout, code: child.exitCode, killed: child.killed, ms: performance.now() - started });
    });
  });
}

export async function main(): Promise<string[]> {
  const lines: string[] = [];

  // In this process: the flag, and its inheritance (a thread started by a daemon thread is a daemon).
  const parent = new Thread<boolean>({
    daemon: true,
    target: async () => {
      const { Thread } = await import('threadkit');
      const child = new Thread({ target: () => undefined });
      return child.daemon;
    },
  });
  parent.start();
  parent.join();
  lines.push(`a thread created inside a daemon thread is a daemon too: ${parent.result}`);

  // In a child process: does the never-ending daemon thread keep it alive?
  const dir = mkdtempSync(join(tmpdir(), 'threadkit-daemon-'));
  try {
    const file = join(dir, 'program.mjs');
    writeFileSync(file, childProgram(import.meta.resolve('threadkit')));
    const child = await runChild(file);
    for (const line of child.stdout.trim().split('\n')) lines.push(`child: ${line}`);
    if (child.killed) {
      lines.push(`child process was still running after ${CHILD_TIMEOUT_MS / 1000} s and was killed: the daemon thread kept it alive`);
    } else {
      lines.push(`child process exited by itself with code ${child.code} after ${(child.ms / 1000).toFixed(1)} s: it waited for the non-daemon thread, not for the daemon one`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return lines;
}

if (isMainThread && process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const line of await main()) console.log(line);
}
