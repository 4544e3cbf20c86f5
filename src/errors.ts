/**
 * Every error class threadkit throws. Each is a real class with `name` set, so callers can tell
 * them apart with `instanceof`, and each survives a trip between threads as itself (the codec
 * looks classes up here by name).
 */

/** Misuse of a thread or primitive (CPython's RuntimeError): release of an unlocked lock, start twice, … */
export class ThreadError extends Error {
  override name = 'ThreadError';
}

/** A Barrier was broken (aborted, reset, timed out, or its action failed) while a thread used it. */
export class BrokenBarrierError extends ThreadError {
  override name = 'BrokenBarrierError';
  constructor(message = 'the barrier is broken') {
    super(message);
  }
}

/** `getNowait()` / a non-blocking or timed `get()` found no item. */
export class QueueEmpty extends Error {
  override name = 'QueueEmpty';
}

/** `putNowait()` / a non-blocking or timed `put()` found no free slot. */
export class QueueFull extends Error {
  override name = 'QueueFull';
}

/** The queue was shut down. */
export class QueueShutDown extends Error {
  override name = 'QueueShutDown';
}

/** The future was cancelled. */
export class CancelledError extends Error {
  override name = 'CancelledError';
}

/** A blocking call ran out of time (`hold()`, `result(timeout)`, …). */
export class TimeoutError extends Error {
  override name = 'TimeoutError';
}

/** An operation on a future that its state does not allow (setResult on a done future, …). */
export class InvalidStateError extends Error {
  override name = 'InvalidStateError';
}

/** The executor can no longer run tasks. */
export class BrokenExecutor extends Error {
  override name = 'BrokenExecutor';
}

/** A ThreadPoolExecutor's initializer failed; pending and later tasks fail with this. */
export class BrokenThreadPool extends BrokenExecutor {
  override name = 'BrokenThreadPool';
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
  BrokenBarrierError,
  QueueEmpty,
  QueueFull,
  QueueShutDown,
  CancelledError,
  TimeoutError,
  InvalidStateError,
  BrokenExecutor,
  BrokenThreadPool,
};
