/**
 * Thread-local data: `local()` returns an object whose properties are per thread. You can pass
 * it to every thread, yet each thread sees only what it stored itself — handy for per-thread
 * state such as a connection, a buffer or "the current request".
 */

import { fileURLToPath } from 'node:url';
import { Barrier, Thread, isMainThread, local } from 'threadkit';

interface RequestContext {
  user?: string;
  handled?: number;
}

/** Each worker stores its own user, waits until all have stored theirs, then reads it back. */
export function handleRequests(context: RequestContext, user: string, requests: number, together: Barrier): string {
  const before = context.user; // nothing yet: this thread has not set it
  context.user = user;
  context.handled = 0;
  together.wait(); // every thread has now written context.user: do they clobber each other? No.
  for (let i = 0; i < requests; i++) context.handled += 1;
  return `${user}: saw user=${String(before)} at first, then user=${context.user}, handled=${context.handled}`;
}

export function main(): string[] {
  const lines: string[] = [];
  const context = local<RequestContext>();
  context.user = 'main';

  const users = ['ann', 'bob', 'cy'];
  const together = new Barrier(users.length);
  const threads = users.map(
    (user, i) => new Thread<string>({ name: user, target: { module: import.meta.url, name: 'handleRequests' }, args: [context, user, (i + 1) * 10, together] }),
  );
  threads.forEach((t) => t.start());
  threads.forEach((t) => t.join());
  for (const t of threads) lines.push(t.result ?? `${t.name}: no result`);
  lines.push(`main thread still sees user=${context.user}, handled=${String(context.handled)}`);
  return lines;
}

if (isMainThread && process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const line of main()) console.log(line);
}
