/**
 * The guard against runaway starts. A thread imports the module of its module-function target,
 * Thread subclass, task function or initializer; if that module starts a thread (or submits a
 * task) at its top level, every thread that imports it starts another, without end. Python's
 * multiprocessing refuses the same thing during its "bootstrapping phase". While a thread imports
 * such a module, starting a thread or submitting a task from this isolate throws a ThreadError
 * that names the module and the fix; the import fails with it, and so the thread (or the task),
 * whose error reaches the thread that started it.
 */

import { ThreadError } from '../errors.js';

/** The module this isolate is importing for a thread, while it is. */
let importing: { url: string; what: string } | undefined;

/** Runs `load` (an import of `url` for `what`) with the guard up. */
export async function guardImport<T>(url: string, what: string, load: () => Promise<T>): Promise<T> {
  const outer = importing;
  importing = { url, what };
  try {
    return await load();
  } finally {
    importing = outer;
  }
}

/**
 * @throws ThreadError when called while this isolate imports a module for a thread.
 * @param action what the caller was about to do ("start a thread", "submit a task").
 */
export function refuseWhileImporting(action: string): void {
  if (importing === undefined) return;
  throw new ThreadError(
    `cannot ${action} while a thread imports ${importing.url} (for ${importing.what}): ` +
      'a module that threads import must not start threads or submit tasks when it is imported, or every thread would start another. ' +
      'Put that code under `if (isMainThread) { … }`, or move the function or class the thread uses into a module of its own.',
  );
}
