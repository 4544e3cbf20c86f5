/**
 * Barrier: CPython's `threading.Barrier` in shared memory, with CPython's algorithm: a
 * Condition over a Lock, a count of threads inside, and a state machine.
 *
 * | slot | field     | meaning                                                            |
 * |------|-----------|--------------------------------------------------------------------|
 * | 0    | state     | FILLING 0, DRAINING 1, RESETTING -1, BROKEN -2                     |
 * | 1    | count     | threads inside wait()                                              |
 * | 2    | parties   | threads needed to trip the barrier                                 |
 * | 3    | cond      | offset of the Condition (one reference)                            |
 * | 4    | action    | offset of the encoded action descriptor, 0 for none (one reference)|
 * | 6-7  | timeout   | default timeout in ms (Float64; Infinity for none)                 |
 *
 * Every field is read and written with the condition's lock held, so the lock orders them;
 * waking is the condition's job. The action runs once per generation, in the last thread to
 * arrive, with the lock held (as in CPython). It travels as a self-contained function, or as a
 * module function: then every thread that gets the barrier starts importing the module at
 * once (imports are asynchronous, and the action must run synchronously in wait()); a thread
 * threadkit starts, or a pool task, runs only once the imports its arguments began have
 * finished (actionsLoading), and waitAsync waits for the import itself. A sync wait() in the
 * thread that made the barrier, before its event loop has run once, may find it still loading:
 * it then breaks the barrier with an error that says so.
 */

import { inspect } from 'node:util';
import { BrokenBarrierError, InterruptedError, ThreadError, describeError } from '../errors.js';
import { decodeValue, encodeValue } from '../shm/codec.js';
import { describe, timeoutOrZero } from '../shm/futex.js';
import { type FunctionDescriptor, type ThreadFunction, compileSource, describeFunction, explainMissingName } from '../shm/functions.js';
import { Kind, SharedObject, dropReference, isReviving, registerKind, reviveAs, wrapperFor } from '../shm/handles.js';
import { Condition } from './condition.js';
import { WaitKind } from '../shm/wait-site.js';
import { reassertInterrupt } from '../shm/interrupts.js';
import { Lock } from './lock.js';
import { address } from './options.js';

const STATE = 0;
const COUNT = 1;
const PARTIES = 2;
const COND = 3;
const ACTION = 4;
const TIMEOUT_F64 = 3; // Float64 slot 3 of the block = bytes 24..31

const FILLING = 0;
const DRAINING = 1;
const RESETTING = -1;
const BROKEN = -2;

// ---- module-function actions, imported in each thread ---------------------------------------

/** Actions imported (or being imported, or that failed to) in this thread, by `module#name`. */
const actions = new Map<string, (() => unknown) | Promise<void> | Error>();
/** Imports under way in this thread (see actionsLoading). */
const loading = new Set<Promise<void>>();

type Importer = (url: string, what: string) => Promise<Record<string, unknown>>;
let importer: Importer = (url) => import(url) as Promise<Record<string, unknown>>;

/** The thread layer's importer (installs the TypeScript loader when a module needs it). */
export function setActionImporter(fn: Importer): void {
  importer = fn;
}

/** Barriers this thread received whose action it has not looked at yet (see the constructor). */
let uninspected: Barrier[] = [];

function inspectActions(): void {
  if (uninspected.length === 0) return;
  const barriers = uninspected;
  uninspected = [];
  for (const barrier of barriers) barrier._inspectAction();
}

/** Resolves once every action import this thread has begun has finished (undefined when none is under way). */
export function actionsLoading(): Promise<unknown> | undefined {
  inspectActions();
  return loading.size === 0 ? undefined : Promise.allSettled(loading);
}

function actionKey(descriptor: FunctionDescriptor & { kind: 'module' }): string {
  return `${descriptor.module}#${descriptor.name}`;
}

/** Starts importing a module-function action in this thread (once). */
function loadAction(descriptor: FunctionDescriptor & { kind: 'module' }): void {
  const key = actionKey(descriptor);
  if (actions.has(key)) return;
  const what = `Barrier action "${descriptor.name}"`;
  const load = importer(descriptor.module, what).then(
    (exports) => {
      const fn = exports[descriptor.name];
      actions.set(key, typeof fn === 'function' ? (fn as () => unknown) : new TypeError(`${what}: module ${descriptor.module} has no exported function "${descriptor.name}" (found ${typeof fn})`));
    },
    (error: unknown) => {
      actions.set(key, error instanceof Error ? error : new TypeError(`${what}: ${describeError(error)}`));
    },
  );
  const tracked = load.finally(() => loading.delete(tracked));
  loading.add(tracked);
  actions.set(key, tracked);
}

export interface BarrierOptions {
  /** Called by the last thread to arrive, once per generation, before the others are released. */
  action?: ThreadFunction;
  /** Default timeout (ms) of `wait()`; a wait that runs out breaks the barrier. */
  timeout?: number;
}

export interface BarrierWaitOptions {
  timeout?: number;
  signal?: AbortSignal;
}

export class Barrier extends SharedObject {
  private readonly cond: Condition;
  /** The action, compiled in this thread on first use (compileSource caches by source text), or its module function's descriptor. */
  private action: (() => unknown) | undefined;
  private moduleAction: (FunctionDescriptor & { kind: 'module' }) | undefined;
  private inspected = false;
  private readonly i32: Int32Array;
  private readonly base: number;

  /**
   * @param parties how many threads must call `wait()` to trip the barrier (>= 1).
   * @throws RangeError "parties must be >= 1".
   */
  constructor(parties: number, options: BarrierOptions = {}) {
    let actionBytes: Uint8Array | undefined;
    if (!isReviving()) {
      if (typeof parties !== 'number' || !Number.isInteger(parties)) throw new TypeError(`Barrier(parties): expected an integer, got ${describe(parties)}`);
      if (parties < 1) throw new RangeError(`Barrier(parties): parties must be >= 1, got ${parties}`);
      if (parties > 0x7fffffff) throw new RangeError(`Barrier(parties): parties must be at most 2147483647, got ${parties}`);
      if (typeof options !== 'object' || options === null) throw new TypeError(`Barrier(parties, options): options must be an object, got ${describe(options)}`);
      timeoutOrZero(options.timeout, 'Barrier(timeout)');
      if (options.action !== undefined) {
        actionBytes = encodeValue(describeFunction(options.action, 'Barrier action'), 'Barrier action');
      }
    }
    super(Kind.Barrier, 32);
    this.base = this._offset >> 2;
    if (this._fresh) {
      this.cond = new Condition(new Lock());
      const i32 = this._heap.i32;
      i32[this.base + PARTIES] = parties;
      i32[this.base + COND] = this.cond._offset;
      this._heap.retain(this.cond._offset);
      this._heap.f64[(this._offset >> 3) + TIMEOUT_F64] = timeoutOrZero(options.timeout, 'Barrier(timeout)');
      if (actionBytes !== undefined) {
        const block = this._heap.alloc(actionBytes.length, Kind.Bytes);
        this._heap.u8.set(actionBytes, block);
        this._heap.i32[this.base + ACTION] = block;
      }
    } else {
      this.cond = wrapperFor(this._heap.i32[this.base + COND]!) as Condition;
    }
    // Its waits are the Barrier's, in thread dumps and deadlock detection.
    this.cond._waitKind = WaitKind.Barrier;
    this.cond._waitObject = this._offset;
    // A module-function action: this thread starts importing it (see the module comment). A
    // revived barrier is being decoded as part of a value: its descriptor is decoded after that
    // decode (the decoder is not re-entrant), by the next inspectActions().
    if (this._heap.i32[this.base + ACTION] !== 0) {
      if (this._fresh) this._inspectAction();
      else uninspected.push(this);
    }
    this.i32 = this._heap.i32;
  }

  /** The number of threads needed to trip the barrier. */
  get parties(): number {
    return this.i32[this.base + PARTIES]!;
  }

  /** Threads waiting now (0 while the barrier drains or is broken). */
  get nWaiting(): number {
    return Atomics.load(this.i32, this.base + STATE) === FILLING ? Atomics.load(this.i32, this.base + COUNT) : 0;
  }

  /** True when the barrier is broken. */
  get broken(): boolean {
    return Atomics.load(this.i32, this.base + STATE) === BROKEN;
  }

  /**
   * Waits until `parties` threads have called `wait()`, at most `timeout` ms (default: the
   * barrier's timeout); running out breaks the barrier. Returns this thread's arrival index,
   * 0 … parties-1, different for each thread of a generation.
   * @throws BrokenBarrierError when the barrier is or becomes broken (abort, reset, timeout, a failing action).
   */
  wait(timeout?: number): number {
    const limit = timeout === undefined ? this.defaultTimeout : timeoutOrZero(timeout, 'Barrier.wait');
    using _held = this.cond.hold();
    this.enter();
    const index = this.get(COUNT);
    this.set(COUNT, index + 1);
    try {
      if (index + 1 === this.parties) this.trip();
      else this.awaitTrip(limit);
      return index;
    } finally {
      this.set(COUNT, this.get(COUNT) - 1);
      this.exit();
    }
  }

  /** The Promise twin of `wait`. An abort breaks the barrier, as a timeout does. */
  async waitAsync(options: BarrierWaitOptions = {}): Promise<number> {
    const limit = options.timeout === undefined ? this.defaultTimeout : timeoutOrZero(options.timeout, 'Barrier.waitAsync');
    options.signal?.throwIfAborted();
    // A module-function action must be imported here before this thread may be the one to run it.
    this._inspectAction();
    const importing = this.moduleAction === undefined ? undefined : actions.get(actionKey(this.moduleAction));
    if (importing instanceof Promise) await importing;
    await using _held = await this.cond.holdAsync();
    while (this.get(STATE) === DRAINING || this.get(STATE) === RESETTING) await this.cond.waitAsync();
    if (this.get(STATE) < 0) throw new BrokenBarrierError();
    const index = this.get(COUNT);
    this.set(COUNT, index + 1);
    try {
      if (index + 1 === this.parties) {
        this.trip();
      } else {
        let tripped: boolean;
        try {
          tripped = await this.cond.waitForAsync(() => this.get(STATE) !== FILLING, { timeout: limit, signal: options.signal });
        } catch (error) {
          if (!(error instanceof InterruptedError)) {
            this.breakBarrier();
            throw error;
          }
          this.leaveInterrupted(error);
          tripped = true;
        }
        this.checkTripped(tripped);
      }
      return index;
    } finally {
      this.set(COUNT, this.get(COUNT) - 1);
      this.exit();
    }
  }

  /**
   * Returns the barrier to its empty state; threads waiting in it get BrokenBarrierError.
   */
  reset(): void {
    using _held = this.cond.hold();
    if (this.get(COUNT) > 0) {
      if (this.get(STATE) === FILLING || this.get(STATE) === BROKEN) this.set(STATE, RESETTING);
    } else {
      this.set(STATE, FILLING);
    }
    this.cond.notifyAll();
  }

  /** Breaks the barrier: current and future `wait()` calls fail until `reset()`. */
  abort(): void {
    using _held = this.cond.hold();
    this.breakBarrier();
  }

  private get defaultTimeout(): number {
    return this._heap.f64[(this._offset >> 3) + TIMEOUT_F64]!;
  }

  private get(slot: number): number {
    return this.i32[this.base + slot]!;
  }

  private set(slot: number, value: number): void {
    Atomics.store(this.i32, this.base + slot, value);
  }

  /** Blocks while the previous generation drains or a reset completes. */
  private enter(): void {
    while (this.get(STATE) === DRAINING || this.get(STATE) === RESETTING) this.cond.wait();
    if (this.get(STATE) < 0) throw new BrokenBarrierError();
  }

  /** The last arrival: run the action, then release everyone (or break on failure). */
  private trip(): void {
    try {
      this.runAction();
      this.set(STATE, DRAINING);
      this.cond.notifyAll();
    } catch (error) {
      this.breakBarrier();
      throw error;
    }
  }

  private awaitTrip(limit: number): void {
    let tripped: boolean;
    try {
      tripped = this.cond.waitFor(() => this.get(STATE) !== FILLING, limit);
    } catch (error) {
      this.leaveInterrupted(error);
      tripped = true;
    }
    this.checkTripped(tripped);
  }

  /**
   * An interrupted wait (the lock held again): if this generation tripped meanwhile, the thread
   * passed, and keeps its interrupt for its next wait (as Java's CyclicBarrier); otherwise the
   * others cannot trip without it, so the barrier breaks and the error is thrown.
   */
  private leaveInterrupted(error: unknown): void {
    if (error instanceof InterruptedError && this.get(STATE) !== FILLING) {
      reassertInterrupt();
      return;
    }
    this.breakBarrier();
    throw error;
  }

  private checkTripped(tripped: boolean): void {
    if (!tripped) {
      this.breakBarrier();
      throw new BrokenBarrierError('the barrier timed out and is now broken');
    }
    if (this.get(STATE) < 0) throw new BrokenBarrierError();
  }

  /** The last thread out of a draining or resetting barrier opens it for the next generation. */
  private exit(): void {
    if (this.get(COUNT) === 0 && (this.get(STATE) === DRAINING || this.get(STATE) === RESETTING)) {
      this.set(STATE, FILLING);
      this.cond.notifyAll();
    }
  }

  private breakBarrier(): void {
    this.set(STATE, BROKEN);
    this.cond.notifyAll();
  }

  /** @internal Reads the action's descriptor; a module function starts importing here. Once. */
  _inspectAction(): void {
    if (this.inspected) return;
    this.inspected = true;
    const block = this._heap.i32[this.base + ACTION]!;
    if (block === 0) return;
    this._heap.ensureMapped(block + this._heap.capacity(block));
    const descriptor = decodeValue(this._heap.buf, block) as FunctionDescriptor;
    if (descriptor.kind !== 'module') return;
    this.moduleAction = descriptor;
    loadAction(descriptor);
  }

  private runAction(): void {
    const block = this.get(ACTION);
    if (block === 0) return;
    inspectActions();
    this._inspectAction();
    if (this.moduleAction !== undefined) {
      const loaded = actions.get(actionKey(this.moduleAction));
      if (loaded instanceof Error) throw loaded;
      if (typeof loaded !== 'function') {
        throw new ThreadError(
          `Barrier action "${this.moduleAction.name}" from ${this.moduleAction.module} is still being imported in this thread (imports are asynchronous; the action runs synchronously): use waitAsync() here, or let this thread's event loop run once after it gets the barrier (await sleepAsync(0))`,
        );
      }
      this.action = loaded;
    }
    if (this.action === undefined) {
      this._heap.ensureMapped(block + this._heap.capacity(block));
      const descriptor = decodeValue(this._heap.buf, block) as FunctionDescriptor & { kind: 'source' };
      this.action = compileSource(descriptor.source, undefined, descriptor.at) as () => unknown;
    }
    try {
      this.action();
    } catch (error) {
      throw explainMissingName(error, 'Barrier action');
    }
  }

  override toString(): string {
    if (this.broken) return `<threadkit.Barrier at ${address(this._offset)}: broken>`;
    return `<threadkit.Barrier at ${address(this._offset)}: waiters=${this.nWaiting}/${this.parties}>`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

registerKind(Kind.Barrier, {
  name: 'Barrier',
  revive: (offset) => reviveAs(offset, () => new Barrier(1)),
  destroy: (heap, offset) => {
    const action = heap.i32[(offset >> 2) + ACTION]!;
    if (action !== 0) dropReference(action);
    dropReference(heap.i32[(offset >> 2) + COND]!);
  },
});
registerKind(Kind.Bytes, { name: 'Bytes' });
