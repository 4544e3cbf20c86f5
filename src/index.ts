/**
 * threadkit: Python's threading, queue and concurrent.futures for TypeScript, on real threads.
 * The public surface, nothing else.
 */

import { isMainThread as nodeIsMainThread } from 'node:worker_threads';

export { ThreadError, DeadlockError, InterruptedError, BrokenBarrierError, QueueEmpty, QueueFull, QueueShutDown, CancelledError, TimeoutError, InvalidStateError, BrokenExecutor, BrokenThreadPool } from './errors.js';
export { TIMEOUT_MAX } from './shm/futex.js';
export { configureHeap } from './shm/current.js';
export { HeapExhaustedError, type HeapOptions } from './shm/heap.js';
export type { ModuleFunction, SelfContainedFunction, ThreadFunction } from './shm/functions.js';
export { moduleFunction } from './shm/module-function.js';
export { Lock } from './sync/lock.js';
export { RLock } from './sync/rlock.js';
export { Condition, type WaitOptions } from './sync/condition.js';
export { Semaphore, BoundedSemaphore } from './sync/semaphore.js';
export { Event, type EventWaitOptions } from './sync/event.js';
export { Barrier, type BarrierOptions, type BarrierWaitOptions } from './sync/barrier.js';
export type { AcquireOptions, AsyncAcquireOptions, Held } from './sync/options.js';
export { Thread, type ThreadOptions, type ThreadTarget, currentThread, mainThread, enumerate, activeCount, getIdent, getNativeId, interrupted } from './thread/thread.js';
export { stackSize } from './thread/stack-size.js';
export { excepthook, setExcepthook, type ExceptHook, type ExceptHookArgs } from './thread/excepthook.js';
export { Timer } from './thread/timer.js';
export { sleep, sleepAsync } from './thread/sleep.js';
export { local } from './thread/local.js';
export { configureThreads, type ThreadsConfig } from './thread/configure.js';
export { dumpThreads, type ThreadDump, type ThreadSnapshot } from './thread/dump.js';
import './thread/deadlock.js';
import { listenForDumpRequestsFromEnv } from './thread/watchdog.js';
export { dumpThreadsLater, cancelDumpThreadsLater } from './thread/watchdog.js';
export { startTrace, stopTrace, isTracing, Trace, type TraceOptions } from './trace/trace.js';
import { traceFromEnvironment } from './trace/trace.js';
export { heapStats, type HeapStats } from './thread/stats.js';
export { SharedValue, sharedArray, type SharedValueKind } from './thread/shared-value.js';

/** True in the program's main thread, false in threads (Node's `isMainThread`). */
export const isMainThread: boolean = nodeIsMainThread;
export { Future, type FutureWaitOptions } from './futures/future.js';
export { ThreadPoolExecutor, type ThreadPoolOptions, type MapOptions, type MapIterables, type TaskFunction, type SubmitOptions } from './futures/thread-pool.js';
export type { PoolStats, DurationStats } from './futures/pool-stats.js';
export type { CancelOptions } from './futures/future.js';
export { wait, waitAsync, asCompleted, asCompletedAsync, FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED, type ReturnWhen, type WaitResult } from './futures/wait.js';
export { Queue } from './queue/queue.js';
export { LifoQueue } from './queue/lifo.js';
export { PriorityQueue } from './queue/priority.js';
export { SimpleQueue } from './queue/simple.js';
export type { QueueOptions, QueueAsyncOptions, QueueJoinOptions } from './queue/options.js';

// Last: in a bundle, a thread's isolate runs from here (runtime/bundled-worker.ts).
import './runtime/bundled-worker.js';

// THREADKIT_DUMP_ON_REQUEST=1: dumps asked for from outside (after every module above is loaded).
listenForDumpRequestsFromEnv();
// THREADKIT_TRACE=out: the whole run traced, written at exit.
traceFromEnvironment();
