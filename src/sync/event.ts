/**
 * Event: CPython's `threading.Event` in shared memory.
 *
 * | slot | field   | meaning                                                          |
 * |------|---------|------------------------------------------------------------------|
 * | 0    | word    | bit 0: the flag; bits 1..31: a generation bumped by every set()  |
 * | 1    | waiters | threads inside wait (set notifies only if > 0)                   |
 *
 * The generation makes a set/clear race come out as in Python: a waiter woken by `set()`
 * returns true even if `clear()` follows at once, because it compares generations, not the
 * flag. A waiter sleeps only while the word still holds the value it read; `set()` changes the
 * word before it notifies (no lost wake-up). Waiters count themselves before reading the word
 * and `set()` reads the count after writing the word, so a notify is skipped only when no
 * waiter can be asleep.
 */

import { inspect } from 'node:util';
import { deadlineAfter, timeoutOrZero } from '../shm/futex.js';
import { READY, WaitKind, type WaitLoop, parkUntil, parkUntilAsync } from '../shm/wait-site.js';
import { Kind, SharedObject, registerKind, reviveAs } from '../shm/handles.js';
import { address } from './options.js';
import { wake } from '../shm/trace-ring.js';

const WORD = 0;
const WAITERS = 1;
const FLAG = 1;

export interface EventWaitOptions {
  /** Wait at most this many milliseconds (negative counts as 0). `undefined` waits forever. */
  timeout?: number;
  signal?: AbortSignal;
}

export class Event extends SharedObject {
  private readonly i32: Int32Array;
  private readonly base: number;

  /** A new event, initially not set. It travels to other threads by reference. */
  constructor() {
    super(Kind.Event, 8);
    this.i32 = this._heap.i32;
    this.base = this._offset >> 2;
  }

  /** True when the flag is set. */
  isSet(): boolean {
    return (Atomics.load(this.i32, this.base + WORD) & FLAG) !== 0;
  }

  /** Sets the flag and wakes every waiting thread. */
  set(): void {
    const i32 = this.i32;
    let word = Atomics.load(i32, this.base + WORD);
    for (;;) {
      if (word & FLAG) return;
      // Next generation (wrapping in 31 bits) with the flag on.
      const seen = Atomics.compareExchange(i32, this.base + WORD, word, ((word + 2) | FLAG) | 0);
      if (seen === word) break;
      word = seen;
    }
    if (Atomics.load(i32, this.base + WAITERS) > 0) wake(i32, this.base + WORD);
  }

  /** Resets the flag; later `wait` calls block until `set()`. */
  clear(): void {
    Atomics.and(this.i32, this.base + WORD, ~FLAG);
  }

  /**
   * Blocks until the flag is set, at most `timeout` ms (negative counts as 0). Returns true when
   * the flag was set (or a `set()` happened while waiting), false on timeout.
   */
  wait(timeout?: number): boolean {
    const limit = timeoutOrZero(timeout, 'Event.wait');
    if (this.isSet()) return true;
    if (limit === 0) return false;
    return parkUntil(this.waitLoop(), deadlineAfter(limit));
  }

  /** The Promise twin of `wait`: `await event.waitAsync({ timeout: 500, signal })`. */
  async waitAsync(options: EventWaitOptions = {}): Promise<boolean> {
    const limit = timeoutOrZero(options.timeout, 'Event.waitAsync');
    options.signal?.throwIfAborted();
    if (this.isSet()) return true;
    if (limit === 0) return false;
    return parkUntilAsync(this.waitLoop(), deadlineAfter(limit), options.signal);
  }

  /**
   * The wait, for wait() and waitAsync(): registered in WAITERS (set() notifies only when
   * someone is), read the word once; sleep while it still holds that value. Any change is a
   * set() (a clear() alone cannot come between: it only follows a set), so the wait is over.
   */
  private waitLoop(): WaitLoop {
    const i32 = this.i32;
    const word = this.base + WORD;
    let seen: number | undefined;
    return {
      i32,
      waiters: this.base + WAITERS,
      word,
      kind: WaitKind.Event,
      object: this._offset,
      prepare: () => {
        const now = Atomics.load(i32, word);
        if (seen === undefined) {
          if (now & FLAG) return READY;
          seen = now;
        }
        return now === seen ? seen : READY; // set (maybe cleared since)
      },
    };
  }

  override toString(): string {
    return `<threadkit.Event at ${address(this._offset)}: ${this.isSet() ? 'set' : 'unset'}>`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

registerKind(Kind.Event, { name: 'Event', revive: (offset) => reviveAs(offset, () => new Event()) });
