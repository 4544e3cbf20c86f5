/**
 * Semaphore and BoundedSemaphore: CPython's counting semaphores in shared memory.
 *
 * | slot | field   | meaning                                                         |
 * |------|---------|-----------------------------------------------------------------|
 * | 0    | value   | permits available (the futex word sleepers wait on, while 0)    |
 * | 1    | waiters | threads inside the slow path (a notify is needed only if > 0)   |
 * | 2    | initial | BoundedSemaphore's ceiling                                      |
 *
 * No lost wake-up: a sleeper increments `waiters` before it reads `value` and sleeps only
 * while `value` is 0; `release` adds to `value` before it reads `waiters`. With sequentially
 * consistent atomics either the sleeper sees the new value, or the releaser sees the sleeper.
 */

import { inspect } from 'node:util';
import { heap } from '../shm/current.js';
import { deadlineAfter, describe } from '../shm/futex.js';
import { READY, WaitKind, type WaitLoop, parkUntil, parkUntilAsync } from '../shm/wait-site.js';
import { Kind, SharedObject, isReviving, registerKind, reviveAs } from '../shm/handles.js';
import { type AcquireOptions, type AsyncAcquireOptions, type Held, address, heldBy, holdTimeout, semaphoreAcquireOptions } from './options.js';
import { wake } from '../shm/trace-ring.js';

const VALUE = 0;
const WAITERS = 1;
const INITIAL = 2;

/** The most permits a semaphore's word holds. */
const MAX_PERMITS = 0x7fffffff;

function checkCount(value: unknown, what: string, minimum: number, message: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) throw new TypeError(`${what}: expected an integer, got ${describe(value)}`);
  if (value < minimum) throw new RangeError(`${what}: ${message}, got ${value}`);
  if (value > MAX_PERMITS) throw new RangeError(`${what}: at most ${MAX_PERMITS}, got ${value}`);
  return value;
}

export class Semaphore extends SharedObject {
  /** @internal */ readonly _i32: Int32Array;
  /** @internal */ readonly _base: number;

  /**
   * @param value the initial number of permits.
   * @throws RangeError "semaphore initial value must be >= 0" for a negative value.
   */
  constructor(value = 1) {
    if (!isReviving()) checkCount(value, `${new.target.name}(value)`, 0, 'semaphore initial value must be >= 0');
    super(Kind.Semaphore, 12);
    this._i32 = this._heap.i32;
    this._base = this._offset >> 2;
    if (this._fresh) {
      this._i32[this._base + VALUE] = value;
      this._i32[this._base + INITIAL] = new.target === BoundedSemaphore ? value : -1;
    }
  }

  /**
   * Takes one permit. Blocks while there is none, at most `timeout` ms (negative counts as 0);
   * with `blocking: false` returns at once. Returns true when a permit was taken.
   * @throws RangeError for a timeout with `blocking: false`.
   */
  acquire(options?: AcquireOptions): boolean {
    const timeout = options === undefined ? Infinity : semaphoreAcquireOptions(options, `${this.kindName}.acquire`);
    if (this.tryTake()) return true;
    if (timeout === 0) return false;
    return this.acquireSlow(deadlineAfter(timeout));
  }

  /** The Promise twin of `acquire`. */
  async acquireAsync(options?: AsyncAcquireOptions): Promise<boolean> {
    const timeout = semaphoreAcquireOptions(options, `${this.kindName}.acquireAsync`);
    options?.signal?.throwIfAborted();
    if (this.tryTake()) return true;
    if (timeout === 0) return false;
    return parkUntilAsync(this.waitLoop(), deadlineAfter(timeout), options?.signal);
  }

  /**
   * Returns `n` permits and wakes up to `n` waiting threads.
   * @throws RangeError "n must be one or more" for n < 1, or when the count would pass 2^31 - 1.
   */
  release(n = 1): void {
    checkCount(n, `${this.kindName}.release(n)`, 1, 'n must be one or more');
    const i32 = this._i32;
    const at = this._base + VALUE;
    let value = Atomics.load(i32, at);
    for (;;) {
      // The word is an int32: a count past MAX_PERMITS would wrap negative and wedge acquirers.
      if (value > MAX_PERMITS - n) throw new RangeError(`${this.kindName}.release(${n}): the count would pass ${MAX_PERMITS} (it holds ${value} permits)`);
      const seen = Atomics.compareExchange(i32, at, value, value + n);
      if (seen === value) break;
      value = seen;
    }
    // Stored before the wake below: a waiter either sees the permits or is woken.
    this.wake(n);
  }

  /** `using _ = sem.hold();` — one permit for the block. */
  hold(options?: AcquireOptions): Held {
    if (!this.acquire(options)) throw holdTimeout(this.kindName, semaphoreAcquireOptions(options, `${this.kindName}.hold`));
    return heldBy(() => this.release());
  }

  async holdAsync(options?: AsyncAcquireOptions): Promise<Held & AsyncDisposable> {
    if (!(await this.acquireAsync(options))) throw holdTimeout(this.kindName, semaphoreAcquireOptions(options, `${this.kindName}.holdAsync`));
    return heldBy(() => this.release());
  }

  /** Permits available now (an instant's answer; CPython's `_value`). */
  get value(): number {
    return Atomics.load(this._i32, this._base + VALUE);
  }

  protected get kindName(): string {
    return 'Semaphore';
  }

  /** @internal wake sleepers after permits were added (only when someone is in the slow path) */
  protected wake(n: number): void {
    if (Atomics.load(this._i32, this._base + WAITERS) > 0) wake(this._i32, this._base + VALUE, n);
  }

  private tryTake(): boolean {
    const i32 = this._i32;
    const at = this._base + VALUE;
    let value = Atomics.load(i32, at);
    while (value > 0) {
      const seen = Atomics.compareExchange(i32, at, value, value - 1);
      if (seen === value) return true;
      value = seen;
    }
    return false;
  }

  private acquireSlow(deadline: number): boolean {
    return parkUntil(this.waitLoop(), deadline);
  }

  /**
   * The wait for a permit, for acquire() and acquireAsync(): registered in WAITERS (release()
   * notifies only when someone is), take a permit or sleep while the count is 0; a release
   * changes the word before it notifies.
   */
  private waitLoop(): WaitLoop {
    return {
      i32: this._i32,
      waiters: this._base + WAITERS,
      word: this._base + VALUE,
      kind: WaitKind.Semaphore,
      object: this._offset,
      prepare: () => (this.tryTake() ? READY : 0),
    };
  }

  override toString(): string {
    return `<threadkit.${this.kindName} at ${address(this._offset)}: value=${this.value}>`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

/** A Semaphore that refuses to be released above its initial value. */
export class BoundedSemaphore extends Semaphore {
  /**
   * Returns `n` permits.
   * @throws RangeError "Semaphore released too many times" when that would exceed the initial value.
   */
  override release(n = 1): void {
    checkCount(n, 'BoundedSemaphore.release(n)', 1, 'n must be one or more');
    const i32 = this._i32;
    const at = this._base + VALUE;
    const initial = i32[this._base + INITIAL]!;
    let value = Atomics.load(i32, at);
    for (;;) {
      if (value + n > initial) throw new RangeError('Semaphore released too many times');
      const seen = Atomics.compareExchange(i32, at, value, value + n);
      if (seen === value) break;
      value = seen;
    }
    this.wake(n);
  }

  /** The initial (maximum) number of permits. */
  get initialValue(): number {
    return this._i32[this._base + INITIAL]!;
  }

  protected override get kindName(): string {
    return 'BoundedSemaphore';
  }

  override toString(): string {
    return `<threadkit.BoundedSemaphore at ${address(this._offset)}: value=${this.value}/${this.initialValue}>`;
  }
}

registerKind(Kind.Semaphore, {
  name: 'Semaphore',
  revive: (offset) => {
    // The ceiling slot tells the two classes apart: -1 for a plain Semaphore.
    const h = heap();
    h.ensureMapped(offset + 12);
    const bounded = h.i32[(offset >> 2) + INITIAL]! >= 0;
    return reviveAs(offset, () => (bounded ? new BoundedSemaphore() : new Semaphore()));
  },
});
