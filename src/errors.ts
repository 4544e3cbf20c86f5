/**
 * Every error class threadkit throws. Each is a real class with `name` set, so callers can tell
 * them apart with `instanceof`, and each survives a trip between threads as itself (the codec
 * looks classes up here by name).
 */

/** Misuse of a thread or primitive (CPython's RuntimeError): release of an unlocked lock, start twice, … */
export class ThreadError extends Error {
}

/** One thread as a dump (`dumpThreads()`) and a DeadlockError's cycle show it. */
export interface ThreadSnapshot {
  name: string;
  ident: number;
  nativeId: number | undefined;
  daemon: boolean;
  state: 'starting' | 'running' | 'waiting' | 'stopped';
  waitingOn?: { kind: string; object: string; owner?: number; sinceMs: number };
  holding: string[];
  /** Promise waits (acquireAsync, getAsync, joinAsync, resultAsync, …) this thread has pending (they do not block it). */
  asyncWaits: number;
  stack?: string;
}

/**
 * A wait would have closed a cycle of threads waiting on each other (deadlock detection:
 * `configureThreads({ deadlockDetection: 'raise' })`). Thrown in the thread whose wait closed
 * it, before it sleeps; when that wait must not fail (a Condition taking its lock back), in
 * another thread of the cycle, which is woken for it. `cycle` lists the threads, the one that
 * gets the error first.
 */
export class DeadlockError extends ThreadError {
  cycle: ThreadSnapshot[];
  constructor(message = 'deadlock', cycle: ThreadSnapshot[] = []) {
    super(message);
    this.cycle = cycle;
  }
}

/**
 * The thread was interrupted (`thread.interrupt()`, `future.cancel({ interrupt: true })`, a task's
 * timeout): thrown by the wait it was blocked in, or by its next wait. Java's InterruptedException.
 */
export class InterruptedError extends ThreadError {
  constructor(message = 'the thread was interrupted') {
    super(message);
  }
}

/** A Barrier was broken (aborted, reset, timed out, or its action failed) while a thread used it. */
export class BrokenBarrierError extends ThreadError {
  constructor(message = 'the barrier is broken') {
    super(message);
  }
}

/** `getNowait()` / a non-blocking or timed `get()` found no item. */
export class QueueEmpty extends Error {
  constructor(message = 'the queue is empty', options?: ErrorOptions) {
    super(message, options);
  }
}

/** `putNowait()` / a non-blocking or timed `put()` found no free slot. */
export class QueueFull extends Error {
  constructor(message = 'the queue is full', options?: ErrorOptions) {
    super(message, options);
  }
}

/** The queue was shut down. */
export class QueueShutDown extends Error {
  constructor(message = 'the queue is shut down', options?: ErrorOptions) {
    super(message, options);
  }
}

/** The future was cancelled. */
export class CancelledError extends Error {
}

/** A blocking call ran out of time (`hold()`, `result(timeout)`, …). */
export class TimeoutError extends Error {
}

/** An operation on a future that its state does not allow (setResult on a done future, …). */
export class InvalidStateError extends Error {
}

/** The executor can no longer run tasks. */
export class BrokenExecutor extends Error {
}

/** A ThreadPoolExecutor's initializer failed; pending and later tasks fail with this. */
export class BrokenThreadPool extends BrokenExecutor {
}

/**
 * A remote executor's server (Redis) could not be reached in time: the task's outcome is
 * unknown (it may still run once the server is back). Python's builtin of the same name.
 */
export class ConnectionError extends Error {
}

// Names live on the prototypes (not as instance fields), so an error rebuilt from its parts in
// another thread has the right name without an own property.
for (const Class of [ThreadError, DeadlockError, InterruptedError, BrokenBarrierError, QueueEmpty, QueueFull, QueueShutDown, CancelledError, TimeoutError, InvalidStateError, BrokenExecutor, BrokenThreadPool, ConnectionError]) {
  Object.defineProperty(Class.prototype, 'name', { value: Class.name, writable: true, configurable: true, enumerable: false });
}

/** `Name: message` for an error (whole, unlike `describe`), else its String. */
export function describeError(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** The error classes by name, so a decoded error comes back as its own class. */
export const errorClasses: Record<string, new (message?: string) => Error> = {
  Error,
  TypeError,
  RangeError,
  SyntaxError,
  ReferenceError,
  EvalError,
  URIError,
  ThreadError,
  DeadlockError,
  InterruptedError,
  BrokenBarrierError,
  QueueEmpty,
  QueueFull,
  QueueShutDown,
  CancelledError,
  TimeoutError,
  InvalidStateError,
  BrokenExecutor,
  BrokenThreadPool,
  ConnectionError,
};
