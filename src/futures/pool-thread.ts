/**
 * What each ThreadPoolExecutor thread runs (a module function, so it is imported once per
 * thread): run the initializer, then take tasks from the pool's shared queue until shutdown.
 * Functions are compiled or imported once per thread, by id.
 *
 * The loop never returns to the event loop while tasks keep coming, so nothing it touches per
 * task may depend on finalizers: the future is wrapped untracked and its reference dropped as
 * soon as the task is settled. When the queue stays empty for a moment, the thread lets its
 * event loop run once (finalizers of the tasks' arguments, timers a task set) before sleeping.
 */

import { InterruptedError, ThreadError, describeError } from '../errors.js';
import { clearInterrupt, resetThreadSignal } from '../shm/interrupts.js';
import { awaitTermination } from '../shm/kill-guard.js';
import { TraceType, traceEvent, traceGen, traceName } from '../shm/trace-ring.js';
import { heap } from '../shm/current.js';
import { type FunctionDescriptor, compileSource, explainMissingName } from '../shm/functions.js';
import { dropReference, reviveUntracked } from '../shm/handles.js';
import { actionsLoading } from '../sync/barrier.js';
import { type CallbackOwner, callbackOwner, setCallbackOwner } from '../thread/callback-owners.js';
import { currentThread, getNativeId } from '../thread/thread.js';
import * as B from '../thread/thread-block.js';
import { addIsolateExitHook, importModule } from '../thread/body.js';
import { Future, STOP_INTERRUPT, settleSurely } from './future.js';
import { taskEnding, taskStarting } from './task-stopper.js';
import type { ThreadPoolExecutor } from './thread-pool.js';
import { dropArgs, readHeader, takeArgs } from './task-queue.js';

type Task = (...args: unknown[]) => unknown;

/** How long an idle pool thread waits for a task before it lets its event loop run once (ms). */
const IDLE_BEFORE_YIELD_MS = 1;

/** This isolate's pool thread, so that an isolate exit (process.exit(), an uncaught error) still settles its task and leaves the pool. */
let current: { executor: ThreadPoolExecutor; running: Future | undefined; finishing: boolean } | undefined;

// Runs from the worker's exit handler before it releases what the isolate holds.
addIsolateExitHook((code, uncaught) => {
  if (current === undefined) return;
  const { executor, running, finishing } = current;
  current = undefined;
  // (TASK is taken with an exchange: whoever takes it settles the future, once.)
  const task = (currentThread()._offset >> 2) + B.TASK;
  if (running !== undefined && Atomics.exchange(heap().i32, task, 0) !== 0) {
    const error =
      uncaught === undefined
        ? new ThreadError(`process.exit(${code}) was called in a task: it ended the pool thread's isolate`)
        : new ThreadError(`an uncaught error ended the pool thread's isolate: ${describeError(uncaught)}`, { cause: uncaught });
    settle(running, error, true);
    dropReference(running._offset);
    executor._queue.work(-1); // the task left the pool
  }
  if (finishing) executor._queue.notFinishing();
  executor._threadDied();
});

async function load(descriptor: FunctionDescriptor): Promise<Task> {
  if (descriptor.kind === 'source') {
    const fn = compileSource(descriptor.source, descriptor.origin, descriptor.at);
    const task = (...args: unknown[]): unknown => {
      try {
        return fn(...args);
      } catch (error) {
        throw explainMissingName(error, 'the task function');
      }
    };
    // Named as the user's function (reports name the task by it).
    Object.defineProperty(task, 'name', { value: descriptor.name });
    return task;
  }
  const module = await importModule(descriptor.module, `task function "${descriptor.name}"`);
  const fn = module[descriptor.name];
  if (typeof fn !== 'function') throw new TypeError(`task function: module ${descriptor.module} has no exported function "${descriptor.name}" (found ${typeof fn})`);
  return fn as Task;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

/** Completes the task's future; what cannot be stored fails it with the reason instead (settleSurely). */
function settle(future: Future, outcome: unknown, failed: boolean): void {
  settleSurely(future, outcome, failed, theReason);
}

/** (Module-level: no closure made per task.) */
const theReason = (whyNot: unknown): unknown => whyNot;

/** The pool thread's body. */
export async function runPoolThread(executor: ThreadPoolExecutor): Promise<void> {
  executor._threadStarted();
  const state = (current = { executor, running: undefined as Future | undefined, finishing: false });
  try {
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
    await runTasks(executor, state);
  } finally {
    // (The pool's list drops this thread once it is STOPPED: see ThreadPoolExecutor._maintain.)
    if (current === state) current = undefined;
  }
}

async function runTasks(executor: ThreadPoolExecutor, state: NonNullable<typeof current>): Promise<void> {
  const functions = new Map<number, Task>();
  const queue = executor._queue;
  const h = heap();
  const me = getNativeId();
  // This thread's TASK slot: a parent that sees our isolate die settles the task named there.
  const myBlock = currentThread()._offset;
  const task = (myBlock >> 2) + B.TASK;
  const threadOwner = callbackOwner();
  const threadName = currentThread().name;
  for (;;) {
    let record = queue.take(performance.now() + IDLE_BEFORE_YIELD_MS, state.finishing);
    state.finishing = false;
    if (record === -1) {
      // Idle for a moment: let the event loop run once (still counted idle), then sleep.
      state.finishing = true;
      await new Promise(setImmediate);
      record = queue.take(Infinity, true);
      state.finishing = false;
    }
    if (record === 0) return;
    const header = readHeader(h, record);
    // The record's reference on the future is ours now; dropped once the task is settled.
    const future = reviveUntracked(header.future, () => new Future());
    let runs = false;
    try {
      runs = future.setRunningOrNotifyCancel();
    } catch {
      // completed by someone else before it ran (a user's setResult): skip it, as cancelled
    }
    if (!runs) {
      dropArgs(h, record);
      dropReference(header.future);
      queue.work(-1); // the task left the pool
      continue;
    }
    future._setRunner(me);
    // A clean flag and a fresh signal for each task; then TASK, then a look at the future's
    // STOP bits (a cancel({ interrupt }) that found no runner yet is seen here: it marked first).
    clearInterrupt();
    resetThreadSignal();
    Atomics.store(h.i32, task, header.future);
    taskStarting(myBlock, future);
    state.running = future;
    // Callbacks the task schedules are its own: one that throws after it ended is reported against it.
    const owner: CallbackOwner = { taskOf: threadName, fn: undefined, ended: false };
    setCallbackOwner(owner);
    let outcome: unknown;
    let failed = false;
    try {
      const args = takeArgs(h, record);
      // Barriers among the args started importing module-function actions (sync/barrier.ts).
      const actions = actionsLoading();
      if (actions !== undefined) await actions;
      let fn = functions.get(header.functionId);
      if (fn === undefined) {
        fn = await load(queue.functionDescriptor(header.functionId) as FunctionDescriptor);
        functions.set(header.functionId, fn);
      }
      owner.fn = fn.name;
      if (traceGen() !== 0) traceEvent(TraceType.TaskBegin, 0, header.future, traceName(fn.name), executor._offset);
      if (header.chunked) {
        const results: unknown[] = [];
        for (const item of args as unknown[][]) {
          const value = fn(...item);
          results.push(isThenable(value) ? await value : value);
        }
        outcome = results;
      } else {
        outcome = fn(...(args as unknown[]));
        if (isThenable(outcome)) outcome = await outcome;
      }
    } catch (error) {
      failed = true;
      outcome = error;
    }
    if (traceGen() !== 0) traceEvent(TraceType.TaskEnd, 0, header.future, failed ? (outcome instanceof InterruptedError ? 2 : 1) : 0, executor._offset);
    // Idle from here on for a submit's count: the caller of result() may submit again at once.
    queue.finishing();
    state.finishing = true;
    state.running = undefined;
    owner.ended = true;
    setCallbackOwner(threadOwner);
    // The task's owner decided to terminate this isolate: wait for it; its death handling
    // settles the future (as cancelled).
    if (!taskEnding(myBlock, header.future)) awaitTermination();
    // Ours to settle unless a parent took it (it cannot while we run: stay exact anyway).
    if (Atomics.exchange(h.i32, task, 0) === 0) continue;
    if (failed && outcome instanceof InterruptedError && (future._stopFlags() & STOP_INTERRUPT) !== 0) {
      // Ended by cancel({ interrupt }): cancelled, as asked (a task that caught the interrupt and
      // returned, or failed otherwise, keeps its own outcome).
      if (!future._cancelRunning()) settle(future, outcome, failed);
    } else {
      settle(future, outcome, failed);
    }
    dropReference(header.future);
    // Settled: the task no longer holds the process. After the settle, so a process whose main
    // thread awaits nothing else exits only once the result is out.
    queue.work(-1);
  }
}
