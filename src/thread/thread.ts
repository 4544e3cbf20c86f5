/**
 * Thread: CPython's `threading.Thread` on a worker isolate. Its record lives in the shared heap
 * (thread-block.ts), so `join()` is a futex wait on the state word (it works whether or not this
 * thread's event loop is free), any thread can see it (`enumerate()`), and a Thread travels
 * between threads by reference like every shared object.
 *
 * The thread that started a thread (its parent) owns the Thread object the user built: when the
 * thread ends, the parent copies back the subclass's fields (`this.result = …` in run()), calls
 * the excepthook for an error that escaped run(), and returns the isolate to the warm pool —
 * in `join()` if it joins, else from its event loop.
 */

import { existsSync, readlinkSync } from 'node:fs';
import { inspect } from 'node:util';
import type { ResourceLimits } from 'node:worker_threads';
import { ThreadError, describeError } from '../errors.js';
import { decodeReceived, dropEncoded, encodeToBytes, encodeToBlock } from '../shm/codec.js';
import { allocateIdent, currentIdent, heap, isHeapCreator } from '../shm/current.js';
import { HeapExhaustedError, S_MAIN_IDENT, S_NEXT_THREAD_NO } from '../shm/heap.js';
import { deadlineAfter, describe, futexWaitAsync, msUntil, timeoutOrZero } from '../shm/futex.js';
import { type FunctionDescriptor, type ThreadFunction, compileSource, describeFunction } from '../shm/functions.js';
import { Kind, SharedObject, dropReference, isReviving, registerKind, rememberIdentity, reviveAs, wrapperFor } from '../shm/handles.js';
import type { ThreadInit } from '../runtime/messages.js';
import { writeOutputDirectly } from '../runtime/output.js';
import { type PooledWorker, bootFailure, isolateTid, releaseIsolate, runOnIsolate } from '../runtime/pool.js';
import { bundled, typescriptLoader, workerEntry } from '../runtime/spawn.js';
import { refuseWhileImporting } from './bootstrapping.js';
import { reportThreadException } from './excepthook.js';
import { WaitKind, beginWait, endWait, isInterruptibleWait, park, parkAsync, setWaitRecordBlock } from '../shm/wait-site.js';
import { WHOLE_THREAD, requestInterrupt, takeInterrupt, threadSignal } from '../shm/interrupts.js';
import { MAIN_BLOCK, NON_DAEMON, liveCount, liveThreadBlocks, registerThread, unregisterThread } from './registry.js';
import * as B from './thread-block.js';
import { setTraceThreadName, wake } from '../shm/trace-ring.js';
import { setGuardBlock } from '../shm/kill-guard.js';

/**
 * What a thread runs, typed: a function (or typed module function) of the arguments `A` that
 * returns `R` or a promise of it.
 */
export type ThreadTarget<R = unknown, A extends readonly unknown[] = any[]> = ThreadFunction<(...args: A) => R | PromiseLike<R>>;

/**
 * Options of `new Thread(...)`. `args` are checked against the target's parameters, and are
 * required when it has required parameters; an unannotated target's parameters take their
 * types from `args`.
 */
export type ThreadOptions<R = unknown, A extends readonly unknown[] = any[]> = {
  /** What the thread runs: a self-contained function or `{ module, name }`. */
  target?: ThreadTarget<R, A>;
  /** Default "Thread-N", or "Thread-N (targetName)"; N counts threads process-wide. Made a string with String(). */
  name?: string;
  /** Daemon threads do not keep the process alive. @default inherited from the creating thread */
  daemon?: boolean;
  /**
   * Node's worker `resourceLimits` (heap sizes in MB, stack size): a thread that goes over
   * its memory limit dies with a ThreadError saying so (its isolate is not reused).
   */
  resourceLimits?: ResourceLimits;
} & ([] extends A
  ? {
      /** Arguments for the target, copied to the thread (shared objects by reference). */
      args?: Readonly<A>;
    }
  : {
      /** Arguments for the target (required: it has required parameters), copied to the thread. */
      args: Readonly<A>;
    });

const LIMIT_NAMES = ['maxOldGenerationSizeMb', 'maxYoungGenerationSizeMb', 'codeRangeSizeMb', 'stackSizeMb'];

/** Checks Node's worker resourceLimits (each a positive number of MB); undefined for none. */
export function checkResourceLimits(limits: unknown, what: string): ResourceLimits | undefined {
  if (limits === undefined) return undefined;
  if (typeof limits !== 'object' || limits === null) throw new TypeError(`${what}: resourceLimits must be an object such as { maxOldGenerationSizeMb: 64 }, got ${describe(limits)}`);
  const checked: Record<string, number> = {};
  for (const [key, value] of Object.entries(limits)) {
    if (!LIMIT_NAMES.includes(key)) throw new TypeError(`${what}: resourceLimits has no setting "${key}" (known: ${LIMIT_NAMES.join(', ')})`);
    if (value === undefined) continue;
    if (typeof value !== 'number' || !(value > 0) || value === Infinity) throw new RangeError(`${what}: resourceLimits.${key} must be a positive number of MB, got ${describe(value)}`);
    checked[key] = value;
  }
  return checked;
}

/** Own fields of SharedObject that are bookkeeping, not a subclass's state. */
const BOOKKEEPING = new Set(['_heap', '_offset', '_fresh']);

/** How often a blocked `join()` checks that the thread's OS thread still exists (ms). */
const LIVENESS_CHECK_MS = 100;

/** A joiner spins this long (µs) before sleeping: short threads end sooner than a wake-up costs. */
const JOIN_SPIN_MICROS = 200;

/**
 * A thread. `R` is the type of `result`; `A`, the target's parameters, exists only to check
 * `args` in the constructor (both are inferred from the options).
 */
export class Thread<R = unknown, A extends readonly unknown[] = any[]> extends SharedObject {
  /** Where a subclass is exported, when threadkit cannot find it: `static module = import.meta.url`. */
  static module?: string | URL;

  /** What run() returned (awaited), or what a subclass's run() stored here; set when the thread ends. */
  result: R | undefined = undefined;

  #name: string;
  #target: FunctionDescriptor | undefined;
  #args: readonly unknown[];
  /** The target compiled in this thread (set in the thread itself before run()). */
  #fn: ((...args: unknown[]) => unknown) | undefined;
  #classModule: string | undefined;
  /** Set in the parent between start() and the end of the thread. */
  #isolate: PooledWorker | undefined;
  #isParent = false;
  #ended = false;

  /**
   * @throws TypeError when `target` is neither a function nor `{ module, name }`, or `args` is not an array.
   */
  constructor(options?: ThreadOptions<R, A>);
  constructor(options: ThreadOptions = {}) {
    const reviving = isReviving();
    if (!reviving && (typeof options !== 'object' || options === null)) throw new TypeError(`Thread(options): expected an options object, got ${describe(options)}`);
    super(Kind.Thread, B.BLOCK_BYTES);
    const h = this._heap;
    this.#args = [];
    if (!this._fresh) {
      this.#name = B.readName(h, this._offset);
      return;
    }
    const { target, name, args = [], daemon, resourceLimits } = options;
    this.#resourceLimits = checkResourceLimits(resourceLimits, 'Thread');
    this.#target = target === undefined ? undefined : describeThreadTarget(target);
    if (!Array.isArray(args)) throw new TypeError(`Thread args must be an array, got ${describe(args)}`);
    if (daemon !== undefined && typeof daemon !== 'boolean') throw new TypeError(`Thread daemon must be a boolean, got ${describe(daemon)}`);
    this.#args = args;
    // As CPython: any name is made a string; a missing or empty one gets the default.
    this.#name = name === undefined || name === null || (name as unknown) === '' ? defaultName(this.#target) : String(name);
    B.writeName(h, this._offset, this.#name);
    if (daemon ?? currentThread().daemon) h.i32[this.base + B.FLAGS] = B.DAEMON;
    if (new.target !== Thread && !isInternalSubclass(new.target)) this.#classModule = classModule(new.target);
  }

  #resourceLimits: ResourceLimits | undefined;

  /** The thread's name (not unique; for identification). */
  get name(): string {
    // The shared record is the truth: the thread itself may have renamed itself.
    return B.readName(this._heap, this._offset);
  }

  set name(value: string) {
    this.#name = String(value);
    B.writeName(this._heap, this._offset, this.#name);
  }

  /** Daemon threads do not keep the process alive; they are stopped when it exits. */
  get daemon(): boolean {
    return (Atomics.load(this.i32, this.base + B.FLAGS) & B.DAEMON) !== 0;
  }

  set daemon(value: boolean) {
    if (this.state() !== B.INITIAL) throw new ThreadError('cannot set daemon status of active thread');
    if (value) Atomics.or(this.i32, this.base + B.FLAGS, B.DAEMON);
    else Atomics.and(this.i32, this.base + B.FLAGS, ~B.DAEMON);
  }

  /** The thread's ident once started (non-zero, unique among live threads), else undefined. */
  get ident(): number | undefined {
    return Atomics.load(this.i32, this.base + B.IDENT) || undefined;
  }

  /**
   * The OS thread id (Linux TID) once `start()` has returned, else undefined. As CPython's,
   * it is known when start() returns: the isolate's bootstrap publishes it within a
   * millisecond or two of the spawn, and this getter waits for that (start() itself does not,
   * so starting many threads stays parallel).
   */
  get nativeId(): number | undefined {
    const i32 = this.i32;
    const slot = this.base + B.NATIVE_ID;
    // Sleep only while the slot is 0 and the thread STARTED: the bootstrap (or the thread, or a
    // parent handing over a warm isolate) stores the id, then notifies; an isolate that dies
    // first is seen by the liveness check after each slice, and it then stops being STARTED.
    while (Atomics.load(i32, slot) === 0 && this.state() === B.STARTED) {
      park(i32, slot, 0, performance.now() + LIVENESS_CHECK_MS, WaitKind.Internal, 0, false);
      this._checkIsolateAlive(false);
    }
    const id = Atomics.load(i32, slot);
    return id > 0 ? id : undefined;
  }

  /**
   * Starts the thread: an isolate runs `run()` (by default the target with a copy of `args`).
   * @throws ThreadError "threads can only be started once"; TypeError when an arg or a
   *   subclass field cannot be cloned (the thread is then not started or registered).
   */
  start(): void {
    refuseWhileImporting('start a thread');
    this._start();
  }

  /** @internal start() without the import guard: a pool starts its threads from its event loop, which may run during an import. */
  _start(): void {
    if (this.state() !== B.INITIAL || this.#isParent) throw new ThreadError('threads can only be started once');
    const subclass = this.#subclassInit();
    const args = encodeToBytes(this.#args, 'args');
    const h = this._heap;
    ensureMainThread();
    const ident = allocateIdent();
    h.i32[this.base + B.IDENT] = ident;
    h.i32[this.base + B.PARENT] = currentIdent();
    h.retain(this._offset); // the thread's own reference, dropped when it ends
    Atomics.store(h.i32, this.base + B.STATE, B.STARTED);
    registerThread(this._offset);
    rememberIdentity(this);
    this.#isParent = true;
    this.#ended = false;
    const needsBundle = bundled && ((this.#target?.kind === 'module' && this.#target.module === workerEntry) || subclass?.module === workerEntry);
    const init: ThreadInit = { ident, threadBlock: this._offset, name: this.#name, daemon: this.daemon, target: this.#target, args, subclass, typescriptLoader, needsBundle, resourceLimits: this.#resourceLimits };
    try {
      this.#isolate = runOnIsolate(init);
    } catch (error) {
      dropEncoded(args);
      if (subclass) dropEncoded(subclass.fields);
      dropReference(this._offset);
      this.#ended = true; // the caller gets the error; nothing for the excepthook
      this._markDead(error);
      throw error;
    }
    this.#isolate.onExit = (code, error) => this.#isolateExited(code, error);
    childrenAlive++;
    keepProcessAlive();
    writeOutputDirectly(); // the main thread's lines and the threads' share one order from now on
    this.#ending = this.#watchForEnd();
  }

  #ending: Promise<void> | undefined;

  /** @internal In the parent: settles once the thread has ended and its end was handled (never rejects, never holds the loop for a pool thread). */
  _whenEnded(): Promise<void> {
    return this.#ending ?? Promise.resolve();
  }

  /** What the thread runs. Override in a subclass; the default calls the target with the args. */
  run(): unknown {
    if (this.#fn === undefined && this.#target !== undefined) {
      if (this.#target.kind !== 'source') throw new ThreadError('run() of a module-function target runs in its thread: call start()');
      this.#fn = compileSource(this.#target.source);
    }
    return this.#fn?.(...this.#args);
  }

  /**
   * Waits until the thread ends, at most `timeout` ms (negative counts as 0). Never throws the
   * thread's error (that goes to the excepthook); check `isAlive()` after a timed join.
   * @throws ThreadError "cannot join thread before it is started" / "cannot join current thread".
   */
  join(timeout?: number): void {
    const deadline = deadlineAfter(timeoutOrZero(timeout, 'Thread.join'));
    this.#checkJoinable();
    // Sleep only while the state word says STARTED; the thread stores STOPPED, then notifies.
    const outer = beginWait(); // one wait, however many slices
    try {
      while (this.state() === B.STARTED) {
        const slice = Math.min(deadline, performance.now() + LIVENESS_CHECK_MS);
        const woke = park(this.i32, this.base + B.STATE, B.STARTED, slice, WaitKind.Join, this._offset, deadline === Infinity, JOIN_SPIN_MICROS);
        // A wake-up with the thread still STARTED may come from its isolate's bootstrap failing
        // (spawn.ts): look at the isolate then, and after every slice (a death nobody announces).
        if (this.state() === B.STARTED) this._checkIsolateAlive(woke === 'timed-out');
        if (woke === 'timed-out' && msUntil(deadline) === 0) break;
      }
    } finally {
      endWait(outer);
    }
    if (this.state() === B.STOPPED) this.#afterEnd();
  }

  /** The Promise twin of `join`. */
  async joinAsync(options: { timeout?: number; signal?: AbortSignal } = {}): Promise<void> {
    const deadline = deadlineAfter(timeoutOrZero(options.timeout, 'Thread.joinAsync'));
    this.#checkJoinable();
    while (this.state() === B.STARTED) {
      if ((await parkAsync(this.i32, this.base + B.STATE, B.STARTED, deadline, options.signal)) === 'timed-out') break;
    }
    if (this.state() === B.STOPPED) this.#afterEnd();
  }

  /** True from `start()` until run() has returned (or the thread's isolate died). */
  isAlive(): boolean {
    return this.state() === B.STARTED;
  }

  /**
   * Java's `Thread.interrupt`: the threadkit wait this thread is blocked in (any `acquire`,
   * `wait`, `get`, `put`, `join`, `result`, `sleep`, sync or async) ends with InterruptedError;
   * if it is not blocked, its next such wait does. Its `signal` is aborted either way. A thread
   * that is not alive is not affected.
   */
  interrupt(): void {
    if (this.state() !== B.STARTED) return;
    requestInterrupt(this._offset, WHOLE_THREAD, isInterruptibleWait);
  }

  /** Whether this thread has an interrupt that no wait (nor `interrupted()`) has taken yet. */
  isInterrupted(): boolean {
    const request = Atomics.load(this.i32, this.base + B.INTERRUPT);
    return request !== 0 && (request === WHOLE_THREAD || request === Atomics.load(this.i32, this.base + B.TASK));
  }

  /**
   * Aborted when this thread (or, in a pool thread, its running task) is interrupted; pass it to
   * `fetch`, timers, or anything that takes an AbortSignal. Its reason is an InterruptedError.
   * Only the thread itself can read it: `currentThread().signal`.
   */
  get signal(): AbortSignal {
    if (this !== currentThread()) throw new ThreadError(`${this.toString()}.signal: only the thread itself can read its signal (use currentThread().signal inside it)`);
    return threadSignal();
  }

  override toString(): string {
    const state = this.state();
    let status = state === B.INITIAL ? 'initial' : state === B.STARTED ? 'started' : 'stopped';
    if (this.daemon) status += ' daemon';
    if (this.ident !== undefined) status += ` ${this.ident}`;
    return `<${this.constructor.name}(${this.#name}, ${status})>`;
  }

  [inspect.custom](): string {
    return this.toString();
  }

  // ---- internals (also used by the thread side, body.ts) ----------------------------------

  private get i32(): Int32Array {
    return this._heap.i32;
  }

  private get base(): number {
    return this._offset >> 2;
  }

  private state(): number {
    return Atomics.load(this.i32, this.base + B.STATE);
  }

  /** @internal the thread side: what run() calls by default */
  _setTargetForRun(fn: ((...args: unknown[]) => unknown) | undefined, args: readonly unknown[]): void {
    this.#fn = fn;
    this.#args = args;
  }

  /** @internal own fields a subclass added (copied to the thread and back) */
  _ownFields(): Record<string, unknown> {
    const fields: Record<string, unknown> = {};
    for (const key of Object.keys(this)) if (!BOOKKEEPING.has(key)) fields[key] = (this as Record<string, unknown>)[key];
    return fields;
  }

  /**
   * @internal The thread (or its parent, for a dead isolate) marks it stopped with an error
   * that the parent reports. Exactly one caller wins.
   */
  _markDead(error: unknown): void {
    const h = this._heap;
    if (!claimEnding(h, this._offset)) return;
    storeException(h, this._offset, error);
    publishStopped(h, this._offset);
  }

  #subclassInit(): ThreadInit['subclass'] {
    if (this.#classModule === undefined) return undefined;
    return { module: this.#classModule, name: this.constructor.name, fields: encodeToBytes(this._ownFields(), 'fields') };
  }

  #checkJoinable(): void {
    if (this.state() === B.INITIAL) throw new ThreadError('cannot join thread before it is started');
    if (this._offset === currentThread()._offset) throw new ThreadError('cannot join current thread');
  }

  /** In the parent, when the thread has ended: fields back, excepthook, isolate back to the pool. Once. */
  #afterEnd(): void {
    if (!this.#isParent || this.#ended) return;
    this.#ended = true;
    const h = this._heap;
    let fieldsError: unknown;
    try {
      const fields = takeEncoded(h, this._offset, B.RESULT) as Record<string, unknown> | undefined;
      if (fields !== undefined) Object.assign(this, fields);
    } catch (error) {
      fieldsError = new ThreadError(`the fields of thread ${this.name} could not be received in this thread: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
    const failed = Atomics.load(h.i32, this.base + B.EXCEPTION) !== 0;
    let error: unknown;
    try {
      error = takeEncoded(h, this._offset, B.EXCEPTION);
    } catch (decodeError) {
      error = new ThreadError(`thread ${this.name} failed, and its error could not be received in this thread: ${decodeError instanceof Error ? decodeError.message : String(decodeError)}`, { cause: decodeError });
    }
    childrenAlive--;
    if (this.#isolate !== undefined && this.#isolate.worker.threadId >= 0) releaseIsolate(this.#isolate);
    this.#isolate = undefined;
    // Neither is lost: a thread that failed and whose fields did not decode reports both.
    if (fieldsError !== undefined) reportThreadException(this, fieldsError);
    if (failed && !this.#deathExpected) reportThreadException(this, error);
  }

  /** From the event loop: notice the end of a thread nobody joins. */
  async #watchForEnd(): Promise<void> {
    // A non-daemon thread holds this isolate's event loop open until it ends (so its error is
    // still reported if it fails after the main code finished); a daemon thread must not.
    // (A pool thread holds it through the pool's work instead, registry.ts.)
    const holdLoop = !this.daemon && (Atomics.load(this.i32, this.base + B.FLAGS) & B.POOL) === 0;
    while (this.state() === B.STARTED) await futexWaitAsync(this.i32, this.base + B.STATE, B.STARTED, Infinity, undefined, holdLoop);
    this.#afterEnd();
  }

  #isolateExited(code: number, error: Error | undefined): void {
    if (this.state() === B.STARTED) {
      const failure = this.#isolate === undefined ? undefined : bootFailure(this.#isolate);
      this._deathError = failure !== undefined ? this.#cannotStart(failure) : this.#explainDeath(code, error);
      this._markDead(this._deathError);
    }
    this.#isolate = undefined;
    this.#afterEnd();
  }

  /**
   * @internal In the parent, whose blocked waits cannot see the isolate's exit event: ends the
   * thread with an error when its isolate could not load threadkit, or (`checkOsThread`, a
   * /proc lookup) when its OS thread is gone.
   */
  _checkIsolateAlive(checkOsThread: boolean): void {
    const isolate = this.#isolate;
    if (isolate === undefined || this.state() !== B.STARTED) return;
    const failure = bootFailure(isolate);
    if (failure !== undefined) {
      this._markDead(this.#cannotStart(failure));
      return;
    }
    if (!checkOsThread) return;
    const tid = this.nativeId ?? isolateTid(isolate);
    if (tid === undefined || tid < 0 || existsSync(`/proc/self/task/${tid}`)) return;
    this._markDead(new ThreadError(`the thread's isolate died (OS thread ${tid} is gone): out of memory or killed`));
  }

  /** @internal in the parent: why the isolate ended under the thread (a pool names it in the task's error) */
  _deathError: Error | undefined;

  #explainDeath(code: number, error: Error | undefined): Error {
    if ((error as { code?: unknown } | undefined)?.code === 'ERR_WORKER_OUT_OF_MEMORY') {
      const limits = this.#resourceLimits === undefined ? '' : ` (resourceLimits ${JSON.stringify(this.#resourceLimits)})`;
      return new ThreadError(`thread ${this.#name} ran out of memory${limits} and was ended: ${error!.message}`, { cause: error });
    }
    return error ?? new ThreadError(`the thread's isolate exited with code ${code} before the thread ended`);
  }

  #cannotStart(why: string): ThreadError {
    const error = new ThreadError(`thread ${this.#name} could not start: its isolate failed to load threadkit: ${why}`);
    this.#startFailure = error;
    return error;
  }

  #startFailure: ThreadError | undefined;

  #deathExpected = false;

  /** @internal its parent is about to terminate its isolate on purpose (a pool task's killAfter): its end is not reported */
  _expectDeath(): void {
    this.#deathExpected = true;
  }

  /** @internal threadkit/testing: ends the thread's isolate at once, as out-of-memory would (no exit handlers run). */
  _terminateIsolate(): Promise<number> {
    if (this.#isolate === undefined) throw new ThreadError(`${this.toString()}: this thread did not start it, or its isolate has ended`);
    return this.#isolate.worker.terminate();
  }

  /** @internal set in the parent when the thread's isolate could not load threadkit (the pool counts these) */
  get _startFailure(): ThreadError | undefined {
    return this.#startFailure;
  }
}

registerKind(Kind.Thread, {
  name: 'Thread',
  revive: (offset) => reviveAs(offset, () => new Thread()),
  destroy: (h, offset) => {
    for (const slot of [B.RESULT, B.EXCEPTION]) {
      const block = h.i32[(offset >> 2) + slot]!;
      if (block === 0 || block === NO_ROOM) continue;
      dropEncoded(h.buf, block);
      dropReference(block);
    }
    // A stack recorded at a wait the thread never woke from (its isolate died in it).
    const stack = h.i32[(offset >> 2) + B.STACK]!;
    if (stack > 0) dropReference(stack);
  },
});

// ---- ending a thread: exactly once, everything published before STOPPED --------------------------

/**
 * Claims the right to end a thread: its own epilogue and a parent that saw its isolate die may
 * race; the first to set the ENDING flag publishes the outcome, the other does nothing.
 */
export function claimEnding(h: ReturnType<typeof heap>, block: number): boolean {
  return (Atomics.or(h.i32, (block >> 2) + B.FLAGS, B.ENDING) & B.ENDING) === 0;
}

/**
 * The last step of ending: leave the live list, then store STOPPED and wake joiners. A joiner
 * that sees STOPPED therefore finds the outcome stored and the thread gone from enumerate().
 */
export function publishStopped(h: ReturnType<typeof heap>, block: number): void {
  unregisterThread(block);
  Atomics.store(h.i32, (block >> 2) + B.STATE, B.STOPPED);
  wake(h.i32, (block >> 2) + B.STATE);
}

// ---- encoded values in a thread block ---------------------------------------------------------

/** Encodes `value` into a new block and stores its offset in `slot` (which owns it). */
export function storeEncoded(h: ReturnType<typeof heap>, block: number, slot: number, value: unknown, root: string): void {
  Atomics.store(h.i32, (block >> 2) + slot, encodeToBlock(h, value, root));
}

/**
 * Stores a thread's error for its parent. An error that cannot cross (a field holding a
 * function, say) must not stop the thread from ending: a ThreadError that describes it is
 * stored instead.
 */
export function storeException(h: ReturnType<typeof heap>, block: number, error: unknown): void {
  try {
    storeEncoded(h, block, B.EXCEPTION, error, 'exception');
    return;
  } catch (encodeError) {
    const what = error instanceof Error ? describeError(error) : describe(error);
    try {
      storeEncoded(h, block, B.EXCEPTION, new ThreadError(`${what} (the error itself could not be sent to another thread: ${(encodeError as Error).message})`), 'exception');
      return;
    } catch {
      // no room in the heap even for that: the marker below needs none
    }
  }
  Atomics.store(h.i32, (block >> 2) + B.EXCEPTION, NO_ROOM);
}

/** An EXCEPTION slot that holds no block: the thread ended while the heap was full (takeEncoded). */
const NO_ROOM = -1;

function takeEncoded(h: ReturnType<typeof heap>, block: number, slot: number): unknown {
  const bytesBlock = Atomics.exchange(h.i32, (block >> 2) + slot, 0);
  if (bytesBlock === 0) return undefined;
  if (bytesBlock === NO_ROOM) return new HeapExhaustedError('the thread ended while the shared heap was full: its error (or its result) could not be stored');
  h.ensureMapped(h.topBytes());
  try {
    return decodeReceived(h.buf, bytesBlock, false);
  } finally {
    dropReference(bytesBlock);
  }
}

/** Threads this isolate started that have not ended (an isolate must not exit under them). */
let childrenAlive = 0;

export function hasLiveChildren(): boolean {
  return childrenAlive > 0;
}

// ---- this thread, the main thread, the live threads ---------------------------------------------

let current: Thread | undefined;

/** @internal the thread side sets the Thread object it runs */
export function setCurrentThread(thread: Thread | undefined): void {
  current = thread;
  setWaitRecordBlock(thread === undefined ? 0 : thread._offset);
  // Only a pool thread's isolate is ever terminated by its owner (killAfter): only its internal
  // sections are published (the guard's seq-cst stores cost other threads ~35 ns a section).
  // (FLAGS' POOL bit is set before the thread starts and never changes: a read, no wait.)
  const pool = thread !== undefined && (Atomics.load(thread._heap.i32, (thread._offset >> 2) + B.FLAGS) & B.POOL) !== 0;
  setGuardBlock(pool ? thread._offset : 0);
  setTraceThreadName(thread === undefined ? '' : thread.name);
}

/** The Thread object of the calling thread (inside a target too). */
export function currentThread(): Thread {
  if (current === undefined) setCurrentThread(ensureMainThread());
  return current!;
}

/**
 * Java's `Thread.interrupted()`: whether the calling thread has been interrupted (or, in a task,
 * its task has), clearing the flag. For loops that never wait: poll it and stop.
 */
export function interrupted(): boolean {
  currentThread();
  return takeInterrupt();
}

/** The main thread (the one that started the program). */
export function mainThread(): Thread {
  const main = ensureMainThread();
  return main;
}

let mainObject: Thread | undefined;

/** The main thread's block is created (and registered) by the thread that created the heap. */
function ensureMainThread(): Thread {
  if (mainObject !== undefined) return mainObject;
  const h = heap();
  const block = Atomics.load(h.i32, MAIN_BLOCK);
  if (block !== 0) {
    mainObject = wrapperFor(block) as Thread;
    return mainObject;
  }
  if (!isHeapCreator()) throw new ThreadError('threadkit: the main thread is not registered');
  mainObject = new _MainThread();
  return mainObject;
}

class _MainThread extends Thread {
  constructor() {
    super({ name: 'MainThread', daemon: false });
    const h = this._heap;
    const base = this._offset >> 2;
    h.i32[base + B.FLAGS] = B.MAIN;
    h.i32[base + B.IDENT] = Atomics.load(h.i32, S_MAIN_IDENT);
    h.i32[base + B.NATIVE_ID] = readNativeId();
    h.i32[base + B.STATE] = B.STARTED;
    h.retain(this._offset); // the root slot's reference
    Atomics.store(h.i32, MAIN_BLOCK, this._offset);
    registerThread(this._offset);
    rememberIdentity(this);
    if (isHeapCreator()) setWaitRecordBlock(this._offset);
  }
}

/** Every live thread in the process, whichever thread started it. */
export function enumerate(): Thread[] {
  ensureMainThread();
  // The live list is newest first: CPython lists threads in start order, MainThread first.
  return liveThreadBlocks().reverse().map((block) => {
    const h = heap();
    h.ensureMapped(block + B.BLOCK_BYTES);
    return reviveHandleAsThread(block);
  });
}

function reviveHandleAsThread(block: number): Thread {
  // liveThreadBlocks added a reference for us: wrapperFor adds another, so drop one.
  const thread = wrapperFor(block) as Thread;
  dropReference(block);
  return thread;
}

/** The number of live threads (the length of `enumerate()`). */
export function activeCount(): number {
  ensureMainThread();
  return liveCount();
}

/** This thread's ident. */
export function getIdent(): number {
  return currentIdent();
}

let nativeId = 0;

/** This thread's OS thread id (Linux TID). */
export function getNativeId(): number {
  return (nativeId ||= readNativeId());
}

export function readNativeId(): number {
  try {
    // "/proc/thread-self" links to "<pid>/task/<tid>".
    return Number(readlinkSync('/proc/thread-self').split('/').pop()) || process.pid;
  } catch {
    return process.pid;
  }
}

// ---- process exit waits for non-daemon threads ------------------------------------------------

let keepingAlive = false;

/**
 * In the main thread: hold the event loop open while any non-daemon thread lives or a pool
 * has work queued or running (threads' isolates are unref'd, registry.ts counts both), so Node
 * exits when only daemon threads and idle pools are left, as Python does. What threads print
 * is written at once (output.ts): nothing else is on its way at exit.
 */
export function keepProcessAlive(): void {
  if (keepingAlive || !isHeapCreator()) return;
  keepingAlive = true;
  void (async () => {
    const h = heap();
    for (;;) {
      const live = Atomics.load(h.i32, NON_DAEMON);
      if (live === 0) break;
      // futexWaitAsync holds the loop open while it waits; changers of the count notify.
      await futexWaitAsync(h.i32, NON_DAEMON, live, Infinity);
    }
    keepingAlive = false;
  })();
}

// ---- names and class modules ---------------------------------------------------------------

function defaultName(target: FunctionDescriptor | undefined): string {
  const n = Atomics.add(heap().i32, S_NEXT_THREAD_NO, 1) + 1;
  // `{ target: () => … }` names the arrow "target": that is not a name the user gave.
  const targetName = target === undefined || target.name === 'target' ? '' : target.name;
  return targetName ? `Thread-${n} (${targetName})` : `Thread-${n}`;
}

/** threadkit's own files: its build, and its sources (stack frames point there under source maps). */
const THREADKIT_FILES = bundled ? [] : [new URL('..', import.meta.url).href, new URL('../../src/', import.meta.url).href];

function isThreadkitFrame(url: string): boolean {
  return THREADKIT_FILES.some((prefix) => url.startsWith(prefix));
}

/** A target's descriptor; a source that imports remembers the calling module (relative specifiers resolve there). */
function describeThreadTarget(target: ThreadFunction): FunctionDescriptor {
  const descriptor = describeFunction(target, 'Thread target');
  if (descriptor.kind === 'source' && /\bimport\s*\(/.test(descriptor.source)) descriptor.origin = callerModule();
  return descriptor;
}

/** The module that called into threadkit (relative `import()` in a target resolves there). */
export function callerModule(): string | undefined {
  for (const url of stackUrls()) if (!isThreadkitFrame(url)) return url;
  return undefined;
}

function stackUrls(): string[] {
  const urls: string[] = [];
  for (const line of (new Error().stack ?? '').split('\n').slice(1)) {
    const match = /\(?((?:file|data|https?):\/\/[^\s)]+?|\/[^\s)]+?)(?::\d+){1,2}\)?$/.exec(line.trim());
    if (match) urls.push(match[1]!.startsWith('/') ? `file://${match[1]}` : match[1]!);
  }
  return urls;
}

/** Where a Thread subclass is defined: `static module`, else its constructor's frame on the stack. */
function classModule(Class: typeof Thread): string {
  // Only the class's own `static module` counts: a base class's does not say where a subclass is.
  if (Object.hasOwn(Class, 'module') && Class.module !== undefined) return Class.module instanceof URL ? Class.module.href : String(Class.module);
  for (const line of (new Error().stack ?? '').split('\n')) {
    if (!line.includes(`new ${Class.name} `)) continue;
    const match = /\(((?:file|data):\/\/[^\s)]+?|\/[^\s)]+?)(?::\d+){1,2}\)$/.exec(line.trim());
    if (match) return match[1]!.startsWith('/') ? `file://${match[1]}` : match[1]!;
  }
  throw new TypeError(`cannot find the module that defines class ${Class.name}: add \`static module = import.meta.url\` to the class (it must be exported)`);
}

function isInternalSubclass(Class: unknown): boolean {
  return Class === _MainThread;
}
