/**
 * Exceptions in threads: an error that escapes a thread does not reach join(); it goes to the
 * excepthook of the thread that started it. The default hook prints Python's
 * "Exception in thread NAME:" and the stack on stderr; setExcepthook() installs your own.
 */

import { fileURLToPath } from 'node:url';
import { Lock, Thread, ThreadError, isMainThread, setExcepthook, type ExceptHookArgs } from 'threadkit';

/** Runs `body` and returns what it wrote to stderr (the default hook writes there). */
function captureStderr(body: () => void): string {
  const chunks: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    chunks.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  try {
    body();
  } finally {
    process.stderr.write = write;
  }
  return chunks.join('');
}

/** A module function that misuses a lock: threadkit's own errors cross threads as their class. */
export function releaseTwice(lock: Lock): void {
  lock.acquire();
  lock.release();
  lock.release(); // ThreadError: release unlocked lock
}

export function main(): string[] {
  const lines: string[] = [];

  // 1. The default excepthook (captured here so we can show what it prints).
  const stderr = captureStderr(() => {
    const failing = new Thread({
      name: 'failing',
      target: (n: number) => {
        if (n < 0) throw new RangeError(`negative input: ${n}`);
        return Math.sqrt(n);
      },
      args: [-1],
    });
    failing.start();
    failing.join(); // returns normally: the error went to the hook, before join() returned
    lines.push(`join() returned normally; alive=${failing.isAlive()}, result=${failing.result}`);
  });
  lines.push('the default excepthook wrote to stderr:');
  for (const line of stderr.trim().split('\n').slice(0, 2)) lines.push(`  ${line}`);

  // 2. A custom hook: called in this thread, with the error's class name, the error and the thread.
  const reports: ExceptHookArgs[] = [];
  setExcepthook((args) => reports.push(args));
  try {
    const threads = [
      new Thread({ name: 'typo', target: () => JSON.parse('{oops') }),
      new Thread({ name: 'misuse', target: { module: import.meta.url, name: 'releaseTwice' }, args: [new Lock()] }),
    ];
    threads.forEach((t) => t.start());
    threads.forEach((t) => t.join());
  } finally {
    setExcepthook(undefined); // back to the default hook
  }
  for (const { thread, excType, excValue } of reports.sort((a, b) => (a.thread?.name ?? '').localeCompare(b.thread?.name ?? ''))) {
    const message = excValue instanceof Error ? excValue.message : String(excValue);
    lines.push(`custom hook: thread ${thread?.name} raised ${excType}: ${message}${excValue instanceof ThreadError ? ' (a real ThreadError here too)' : ''}`);
  }

  // 3. A self-contained target cannot capture outer variables: new Thread() refuses it at once,
  //    and the error says what to do instead (here: pass factor in args).
  const factor = 3;
  try {
    new Thread({ name: 'capturing', target: (n: number) => n * factor, args: [2] });
    lines.push('outer variable: (no error?)');
  } catch (error) {
    lines.push(`outer variable: ${(error as Error).name}: ${(error as Error).message.split(':')[0]}`);
  }
  return lines;
}

if (isMainThread && process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const line of main()) console.log(line);
}
