/**
 * What each ThreadPoolExecutor thread runs (a module function, so it is imported once per
 * thread): run the initializer, then take tasks from the pool's shared queue until shutdown.
 * Functions are compiled or imported once per thread, by id.
 */

import { ThreadError } from '../errors.js';
import { heap } from '../shm/current.js';
import { type FunctionDescriptor, compileSource, explainMissingName } from '../shm/functions.js';
import { getNativeId } from '../thread/thread.js';
import { addIsolateExitHook, importModule } from '../thread/body.js';
import type { Future } from './future.js';
import type { ThreadPoolExecutor } from './thread-pool.js';
import { takeRecord } from './task-queue.js';

type Task = (...args: unknown[]) => unknown;

/** The future this thread is running, so that `process.exit()` in a task still settles it. */
let running: Future | undefined;
// Runs from the worker's exit handler before it releases what the isolate holds (the future too).
addIsolateExitHook((code) => {
  try {
    running?.setException(new ThreadError(`process.exit(${code}) was called in a task: it ended the pool thread's isolate`));
  } catch {
    // already settled
  }
});

async function load(descriptor: FunctionDescriptor): Promise<Task> {
  if (descriptor.kind === 'source') {
    const fn = compileSource(descriptor.source, descriptor.origin);
    return (...args: unknown[]) => {
      try {
        return fn(...args);
      } catch (error) {
        throw explainMissingName(error, 'the task function');
      }
    };
  }
  const module = await importModule(descriptor.module, `task function "${descriptor.name}"`);
  const fn = module[descriptor.name];
  if (typeof fn !== 'function') throw new TypeError(`task function: module ${descriptor.module} has no exported function "${descriptor.name}" (found ${typeof fn})`);
  return fn as Task;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

/** The pool thread's body. */
export async function runPoolThread(executor: ThreadPoolExecutor): Promise<void> {
  const initializer = executor._initializer();
  if (initializer !== undefined) {
    try {
      const init = await load(initializer.fn);
      const result = init(...initializer.args);
      if (isThenable(result)) await result;
    } catch (error) {
      executor._breakPool(error);
      return;
    }
  }
  const functions = new Map<number, Task>();
  const h = heap();
  const me = getNativeId();
  for (;;) {
    const record = executor._queue.take();
    if (record === 0) return;
    const [future, fnId, args, chunked] = takeRecord(h, record) as [Future, number, unknown[], boolean];
    if (!future.setRunningOrNotifyCancel()) continue;
    future._setRunner(me);
    running = future;
    try {
      let fn = functions.get(fnId);
      if (fn === undefined) {
        fn = await load(executor._queue.functionDescriptor(fnId) as FunctionDescriptor);
        functions.set(fnId, fn);
      }
      let result: unknown;
      if (chunked) {
        const results: unknown[] = [];
        for (const item of args as unknown[][]) {
          const value = fn(...item);
          results.push(isThenable(value) ? await value : value);
        }
        result = results;
      } else {
        result = fn(...args);
        if (isThenable(result)) result = await result;
      }
      future.setResult(result);
    } catch (error) {
      try {
        future.setException(error);
      } catch (encodeError) {
        future.setException(encodeError);
      }
    } finally {
      running = undefined;
    }
  }
}

