/**
 * Futex helpers over Int32 words of the heap: blocking waits (`Atomics.wait`), Promise waits
 * (`Atomics.waitAsync`) with AbortSignal, deadlines that never end a wait early, and the
 * timeout validation every primitive shares.
 *
 * Callers always use the futex the same way: read the word, decide to sleep, then sleep only
 * while the word still holds the value they read. A waker changes the word before it notifies,
 * so a wake-up that happens between the read and the sleep makes the sleep return at once.
 */

export type WaitResult = 'ok' | 'not-equal' | 'timed-out';

/** The largest timeout accepted (ms): Python's `threading.TIMEOUT_MAX`, in milliseconds. */
export const TIMEOUT_MAX = 9_223_372_036_854;

/** How many times a contended fast path re-reads a word before it parks the thread. */
export const SPIN_LIMIT = 100;

/** How long a waiter re-reads its futex word before it sleeps, by default (µs). */
export const WAIT_SPIN_MICROS = 5;

/** Re-reads the word for up to `micros`; true as soon as it no longer holds `expected`. */
export function spinUntilChanged(i32: Int32Array, index: number, expected: number, micros: number): boolean {
  if (micros <= 0) return false;
  const until = performance.now() + micros / 1000;
  do {
    for (let i = 0; i < 64; i++) if (Atomics.load(i32, index) !== expected) return true;
  } while (performance.now() < until);
  return false;
}

/** Monotonic deadline for a timeout in ms (Infinity for none). */
export function deadlineAfter(timeoutMs: number): number {
  return timeoutMs === Infinity ? Infinity : performance.now() + timeoutMs;
}

/** Milliseconds left until `deadline` (0 when passed). */
export function msUntil(deadline: number): number {
  if (deadline === Infinity) return Infinity;
  const left = deadline - performance.now();
  return left > 0 ? left : 0;
}

/**
 * Sleeps while `i32[index] === expected`, until woken or `deadline`. Returns 'timed-out' only
 * once the deadline has really passed: Atomics.wait can return a little early, so it loops on the
 * remaining time. A return of 'ok' may be spurious; callers re-check their condition.
 */
export function futexWait(i32: Int32Array, index: number, expected: number, deadline: number, spinMicros = WAIT_SPIN_MICROS): WaitResult {
  // A wake usually comes within microseconds when the other thread is running: re-read the
  // word for a while before paying for a sleep (parking and waking across cores costs tens of
  // microseconds on both sides here).
  if (spinUntilChanged(i32, index, expected, spinMicros)) return 'not-equal';
  for (;;) {
    const left = msUntil(deadline);
    if (left === 0) return 'timed-out';
    const result = Atomics.wait(i32, index, expected, left);
    if (result !== 'timed-out') return result;
  }
}

/** Wakes up to `count` threads sleeping on `i32[index]` (all when omitted). */
export function futexWake(i32: Int32Array, index: number, count = Infinity): number {
  return Atomics.notify(i32, index, count);
}

// ---- Promise waits ---------------------------------------------------------------------

/**
 * A pending `Atomics.waitAsync` does not keep Node's event loop alive, so a program whose
 * main code awaits a lock another (daemon) thread holds would simply exit. While any Promise
 * wait is pending we keep one ref'd timer, as a blocked Python thread keeps its process alive.
 */
let pendingAsyncWaits = 0;
let keepAlive: ReturnType<typeof setInterval> | undefined;

/** Timers of our own that hold the loop (0 or 1): an isolate's leftover check leaves it out. */
export function loopHolders(): number {
  return keepAlive === undefined ? 0 : 1;
}

function holdLoop(): void {
  if (pendingAsyncWaits++ === 0) keepAlive = setInterval(() => {}, 1 << 30);
}

function releaseLoop(): void {
  if (--pendingAsyncWaits === 0 && keepAlive !== undefined) {
    clearInterval(keepAlive);
    keepAlive = undefined;
  }
}

/**
 * The Promise twin of `futexWait`. It holds the event loop open while it waits, unless
 * `holdLoopOpen` is false (a watcher that must not keep the process alive). With a signal, an abort rejects with `signal.reason`; the
 * abandoned waiter is then flushed by waking every waiter on the word, so it cannot swallow a
 * single-waiter notify meant for someone else (the others re-check and sleep again).
 */
export async function futexWaitAsync(
  i32: Int32Array,
  index: number,
  expected: number,
  deadline: number,
  signal?: AbortSignal,
  holdLoopOpen = true,
): Promise<WaitResult> {
  signal?.throwIfAborted();
  for (;;) {
    const left = msUntil(deadline);
    if (left === 0) return 'timed-out';
    const waiting = Atomics.waitAsync(i32, index, expected, left);
    if (!waiting.async) {
      if (waiting.value !== 'timed-out') return waiting.value;
      continue;
    }
    const result = holdLoopOpen ? await awaitWake(i32, index, waiting.value, signal) : await waiting.value;
    if (result !== 'timed-out') return result;
  }
}

function awaitWake(
  i32: Int32Array,
  index: number,
  wake: Promise<'ok' | 'timed-out'>,
  signal: AbortSignal | undefined,
): Promise<'ok' | 'timed-out'> {
  holdLoop();
  if (signal === undefined) return wake.finally(releaseLoop);
  return new Promise((resolve, reject) => {
    let aborted = false;
    const onAbort = (): void => {
      aborted = true;
      releaseLoop();
      reject(signal.reason);
      futexWake(i32, index);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    void wake.then((value) => {
      if (aborted) return;
      signal.removeEventListener('abort', onAbort);
      releaseLoop();
      resolve(value);
    });
  });
}

// ---- argument checks shared by every primitive ---------------------------------------------

/** Checks a `timeout` (ms) that must be a non-negative number or Infinity; undefined = forever. */
export function checkTimeout(timeout: number | undefined, what: string): number {
  if (timeout === undefined || timeout === null) return Infinity;
  if (typeof timeout !== 'number' || Number.isNaN(timeout)) {
    throw new TypeError(`${what}: timeout must be a number of milliseconds, got ${describe(timeout)}`);
  }
  return timeout;
}

/**
 * A timeout where Python treats negative values as 0 (Condition.wait, Event.wait, queue
 * get/put with a timeout…).
 */
export function timeoutOrZero(timeout: number | undefined, what: string): number {
  const t = checkTimeout(timeout, what);
  if (t > TIMEOUT_MAX && t !== Infinity) throw new RangeError(`${what}: timeout ${t} is larger than TIMEOUT_MAX (${TIMEOUT_MAX} ms)`);
  return t < 0 ? 0 : t;
}

export function describe(value: unknown): string {
  if (typeof value === 'string') return clip(JSON.stringify(value));
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'function') return `function ${value.name || '(anonymous)'}`;
  if (value === null || typeof value !== 'object') return String(value);
  const proto = Object.getPrototypeOf(value);
  // Class instances (shared objects among them) by their own description, never by walking them.
  if (proto !== Object.prototype && proto !== Array.prototype && proto !== null) {
    const text = typeof (value as { toString?: unknown }).toString === 'function' ? String(value) : '';
    return clip(text && text !== '[object Object]' ? text : `a ${proto?.constructor?.name ?? 'object'}`);
  }
  try {
    return clip(JSON.stringify(value) ?? String(value));
  } catch {
    return Object.prototype.toString.call(value);
  }
}

function clip(text: string): string {
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}
