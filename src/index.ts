/**
 * threadkit: Python's threading, queue and concurrent.futures for TypeScript, on real threads.
 * The public surface, nothing else.
 */

export { ThreadError, BrokenBarrierError, QueueEmpty, QueueFull, QueueShutDown, CancelledError, TimeoutError, InvalidStateError, BrokenExecutor, BrokenThreadPool } from './errors.js';
export { TIMEOUT_MAX } from './shm/futex.js';
export { configureHeap } from './shm/current.js';
export { HeapExhaustedError, type HeapOptions } from './shm/heap.js';
export type { ModuleFunction, SelfContainedFunction, ThreadFunction } from './shm/functions.js';
export { Lock } from './sync/lock.js';
export { RLock } from './sync/rlock.js';
export { Condition, type WaitOptions } from './sync/condition.js';
export { Semaphore, BoundedSemaphore } from './sync/semaphore.js';
export { Event, type EventWaitOptions } from './sync/event.js';
export { Barrier, type BarrierOptions, type BarrierWaitOptions } from './sync/barrier.js';
export type { AcquireOptions, AsyncAcquireOptions, Held } from './sync/options.js';
export { Thread, type ThreadOptions } from './thread/thread.js';
export { heapStats } from './thread/stats.js';
export { SharedValue, sharedArray, type SharedValueKind } from './thread/shared-value.js';
