/**
 * What each ThreadPoolExecutor thread runs (a module function, so it is imported once per
 * thread): run the initializer, then take tasks from the pool's shared queue until shutdown.
 * Functions are compiled or imported once per thread, by id.
 *
 * The loop never returns to the event loop while tasks keep coming, so nothing it touches per
 * task may depend on finalizers: the future is wrapped untracked and its reference dropped as
 * soon as the task is settled. When the queue stays empty for a moment, the thread lets its
 * event loop run once (finalizers of the tasks' arguments, timers a task set) before sleeping.
 *
 * Each thread counts its tasks for the pool's stats() in a shard of its own (pool-stats.ts):
 * a task's wait when it starts, its run time and outcome before its future is settled (so that
 * whoever sees the future done sees the task counted). Two clock reads a task: at its start and
 * at its end (that one also dates the next take's idle deadline).
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
import { CANCELLED_TASK, COMPLETED_TASK, FAILED_TASK, type Outcome, countEnd, countOutcome, countStart, localTime, outcomeOf, recountOutcome, sharedClock } from './pool-stats.js';

type Task = (...args: unknown[]) => unknown;

/** How long an idle pool thread waits for a task before it lets its event loop run once (ms). */
const IDLE_BEFORE_YIELD_MS = 1;

/** This isolate's pool thread, so that an isolate exit (process.exit(), an uncaught error) still settles its task and leaves the pool. */
let current: { executor: ThreadPoolExecutor; running: Future | undefined; finishing: boolean; shard: number } | undefined;

// Runs from the worker's exit handler before it releases what the isolate holds.
addIsolateExitHook((code, uncaught) => {
  if (current === undefined) return;
  const { executor, running, finishing, shard } = current;
  current = undefined;
  // (TASK is taken with an exchange: whoever takes it settles the future, once.)
  const task = (currentThread()._offset >> 2) + B.TASK;
  if (running !== undefined && Atomics.exchange(heap().i32, task, 0) !== 0) {
    const error =
      uncaught === undefined
        ? new ThreadError(`process.exit(${code}) was called in a task: it ended the pool thread's isolate`)
        : new ThreadError(`an uncaught error ended the pool thread's isolate: ${describeError(uncaught)}`, { cause: uncaught });
    const known = outcomeOf(running);
    countOutcome(heap(), shard, known === -1 ? FAILED_TASK : known);
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

/** How the task's future will end once settled with what the task did (unless someone settles it first). */
function expectedOutcome(future: Future, failed: boolean, cancelledByInterrupt: boolean): Outcome {
  const known = outcomeOf(future); // (timed out: failed already)
  if (known !== -1) return known;
  if (cancelledByInterrupt) return CANCELLED_TASK;
  return failed ? FAILED_TASK : COMPLETED_TASK;
}

/** The pool thread's body. */
export async function runPoolThread(executor: ThreadPoolExecutor): Promise<void> {
  executor._threadStarted();
  const state = (current = { executor, running: undefined as Future | undefined, finishing: false, shard: 0 });
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
  // (Freed when the pool takes this thread off its list, however it ends.)
  const shard = (state.shard = executor._claimStatsShard(myBlock));
  // sharedClock() at the end of the last task: the idle deadline counts from there.
  let now = sharedClock();
  for (;;) {
    let record = queue.take(localTime(now) + IDLE_BEFORE_YIELD_MS, state.finishing);
    state.finishing = queue.tookDone; // (still idle: see below)
    if (record === -1) {
      // Idle for a moment: let the event loop run once (still counted idle), then sleep.
      state.finishing = true;
      await new Promise(setImmediate);
      record = queue.take(Infinity, true);
      state.finishing = queue.tookDone;
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
      // One the pool never ran counts as cancelled. take() counted it, and this thread as idle,
      // if it was done already; else it was cancelled since (or completed by someone else).
      if (!queue.tookDone) countOutcome(h, shard, CANCELLED_TASK);
      queue.work(-1); // the task left the pool
      now = sharedClock();
      continue;
    }
    const started = sharedClock();
    countStart(h, shard, started - header.submitted);
    future._setRunner(me);
    // A clean flag and a fresh signal for each task; then TASK, then (taskStarting, once its
    // function is loaded) a look at the future's STOP bits: a cancel({ interrupt }) that found no
    // runner yet is seen there (it marked first).
    clearInterrupt();
    resetThreadSignal();
    Atomics.store(h.i32, task, header.future);
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
      // Its timeout counts from here (importing the function's module is not the task's time).
      taskStarting(myBlock, future);
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
    now = sharedClock();
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
    const cancelledByInterrupt = failed && outcome instanceof InterruptedError && (future._stopFlags() & STOP_INTERRUPT) !== 0;
    // Counted before the settle: a caller that sees the future done sees it counted.
    const expected = expectedOutcome(future, failed, cancelledByInterrupt);
    countEnd(h, shard, now - started, expected);
    if (cancelledByInterrupt) {
      // Ended by cancel({ interrupt }): cancelled, as asked (a task that caught the interrupt and
      // returned, or failed otherwise, keeps its own outcome).
      if (!future._cancelRunning()) settle(future, outcome, failed);
    } else {
      settle(future, outcome, failed);
    }
    // Another thread settled it between (its timeout), or its result could not be stored: count what it is.
    const actual = outcomeOf(future);
    if (actual !== expected && actual !== -1) recountOutcome(h, shard, expected, actual);
    dropReference(header.future);
    // Settled: the task no longer holds the process. After the settle, so a process whose main
    // thread awaits nothing else exits only once the result is out.
    queue.work(-1);
  }
}
