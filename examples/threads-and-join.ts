/**
 * Threads and join: start a thread, wait for it with join(), read what its target returned
 * (`thread.result`), and look at name, ident and currentThread() from inside the thread.
 */

import { fileURLToPath } from 'node:url';
import { Thread, currentThread, isMainThread } from 'threadkit';

/** A module function: exported, so a thread can import it (with this module's imports and types). */
export async function describeMe(greeting: string): Promise<string> {
  const me = currentThread(); // inside a thread: that thread's own Thread object
  return `${greeting} from ${me.name} (ident ${me.ident}, daemon=${me.daemon})`;
}

export async function main(): Promise<string[]> {
  const lines: string[] = [];

  // 1. A self-contained target is sent as source text: it may use its parameters and globals.
  const doubler = new Thread<number>({ target: (n: number) => n * 2, args: [21], name: 'doubler' });
  lines.push(`before start: ${doubler}, ident=${doubler.ident}`);
  doubler.start();
  doubler.join(); // like Python's t.join(): blocks until the thread ends
  lines.push(`after join:   ${doubler}, alive=${doubler.isAlive()}, result=${doubler.result}`);

  // 2. currentThread() inside the thread, through `await import('threadkit')`.
  const introspector = new Thread<{ name: string; ident: number | undefined; isMain: boolean }>({
    name: 'introspector',
    target: async () => {
      const { currentThread, isMainThread } = await import('threadkit');
      const me = currentThread();
      return { name: me.name, ident: me.ident, isMain: isMainThread };
    },
  });
  introspector.start();
  introspector.join();
  const seen = introspector.result!;
  lines.push(`inside ${seen.name}: currentThread().ident=${seen.ident} (same as outside: ${seen.ident === introspector.ident}), isMainThread=${seen.isMain}`);
  lines.push(`outside: currentThread().name=${currentThread().name}`);

  // 3. A module function target: { module: import.meta.url, name }.
  const greeter = new Thread<string>({ target: { module: import.meta.url, name: 'describeMe' }, args: ['hello'], name: 'greeter' });
  greeter.start();
  greeter.join();
  lines.push(`module function: ${greeter.result}`);

  // 4. Several threads at once; default names are "Thread-N (targetName)".
  const square = (x: number): number => x * x;
  const squares = [1, 2, 3, 4].map((n) => new Thread<number>({ target: square, args: [n] }));
  squares.forEach((t) => t.start());
  squares.forEach((t) => t.join());
  lines.push(`squares: ${squares.map((t) => t.result).join(', ')}  (names: ${squares.map((t) => t.name).join(', ')})`);

  // 5. A timed join returns when the time is up; check isAlive(). joinAsync() leaves the event loop free.
  const sleeper = new Thread({ name: 'sleeper', target: (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms), args: [300] });
  sleeper.start();
  sleeper.join(20);
  lines.push(`join(20) on a 300 ms sleeper returned; alive=${sleeper.isAlive()}`);
  await sleeper.joinAsync();
  lines.push(`await joinAsync(): alive=${sleeper.isAlive()}, result=${sleeper.result}`);
  return lines;
}

if (isMainThread && process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const line of await main()) console.log(line);
}
