/**
 * LifoQueue: CPython's `queue.LifoQueue`, a Queue whose `get` returns the most recently put item
 * (a stack). Everything but the storage is Queue's (core.ts, queue.ts); both ends of a stack are
 * the same end, so one lock (PUT_WORD) guards puts and gets. The storage is one Bytes block used
 * from its start: records are laid down one after another and each record's header comes
 * *after* its payload, so the top record is found from the top: header at `top - 4`.
 *
 * Stack storage (the queue block's STORE / CAP; TAIL holds `top`, the bytes in use):
 *
 * | bytes                        | content                                        |
 * |------------------------------|------------------------------------------------|
 * | [start, start + round4(len)) | payload (records.ts record types)              |
 * | [.., .. + 4)                 | header word: type \| len << 4                 |
 *
 * The storage doubles when a record does not fit and is given back when the stack empties
 * while larger than SHRINK_ABOVE.
 */

import { Kind, dropReference, reviveAs } from '../shm/handles.js';
import type { Heap } from '../shm/heap.js';
import { Flavor, registerFlavor } from './flavors.js';
import { CAP, STORE, TAIL } from './layout.js';
import { type Staged, dropRecord, explainExhausted, readPayload, round4, writePayload } from './records.js';
import { nextPow2 } from './ring.js';
import { Queue } from './queue.js';

/** First stack storage (bytes), allocated at the first put. */
const FIRST_STACK = 512;

export class LifoQueue<T = unknown> extends Queue<T> {
  static override readonly _flavor: Flavor = Flavor.Lifo;

  override get _name(): string {
    return 'LifoQueue';
  }

  /** @internal push (the lock is held). */
  override _insert(st: Staged): void {
    const h = this._heap;
    const b = this._base;
    let i32 = h.i32;
    let cap = i32[b + CAP]!;
    const top = i32[b + TAIL]!;
    const need = 4 + round4(st.len);
    if (top + need > cap) {
      this._growStack(top + need);
      i32 = h.i32;
      cap = i32[b + CAP]!;
    }
    const store = i32[b + STORE]!;
    h.ensureMapped(store + cap);
    const p = store + top;
    const len = writePayload(h, st, p);
    h.i32[(p + round4(len)) >> 2] = st.type | (len << 4);
    h.i32[b + TAIL] = top + round4(len) + 4;
  }

  /** @internal pop (the lock is held, an item is there). */
  override _take(): unknown {
    const h = this._heap;
    const b = this._base;
    const store = h.i32[b + STORE]!;
    h.ensureMapped(store + h.i32[b + CAP]!);
    const i32 = h.i32;
    const top = i32[b + TAIL]!;
    const header = i32[(store + top - 4) >> 2]!;
    const len = header >>> 4;
    const p = store + top - 4 - round4(len);
    const value = readPayload(h, header & 15, len, p);
    i32[b + TAIL] = p - store;
    return value;
  }

  private _growStack(needed: number): void {
    const h = this._heap;
    const b = this._base;
    const oldStore = h.i32[b + STORE]!;
    const oldCap = h.i32[b + CAP]!;
    const top = h.i32[b + TAIL]!;
    const cap = Math.max(FIRST_STACK, nextPow2(needed), oldCap * 2);
    let store: number;
    try {
      store = h.alloc(cap, Kind.Bytes);
    } catch (error) {
      throw explainExhausted(error, `${this._name}.put: the queue's storage cannot grow to ${cap} bytes`);
    }
    if (oldStore !== 0) {
      h.ensureMapped(oldStore + oldCap);
      h.u8.copyWithin(store, oldStore, oldStore + top);
      dropReference(oldStore);
    }
    h.i32[b + STORE] = store;
    h.i32[b + CAP] = cap;
  }

  /** @internal */
  override _detachAll(i32: Int32Array): number[] {
    const b = this._base;
    const detached = [i32[b + STORE]!, i32[b + CAP]!, i32[b + TAIL]!];
    this._resetStorage(i32);
    return detached;
  }

  /** @internal */
  override _dropDetached(detached: number[]): void {
    drainStack(this._heap, detached[0]!, detached[1]!, detached[2]!);
  }
}

/** Drops every record of a stack storage (from the top), then the storage. */
function drainStack(h: Heap, store: number, cap: number, top: number): void {
  if (store === 0) return;
  h.ensureMapped(store + cap);
  try {
    while (top > 0) {
      const header = h.i32[(store + top - 4) >> 2]!;
      const start = top - 4 - round4(header >>> 4);
      dropRecord(h, header & 15, store + start);
      top = start;
    }
  } finally {
    dropReference(store);
  }
}

registerFlavor(
  Flavor.Lifo,
  (offset) => reviveAs(offset, () => new LifoQueue()),
  (h, base) => drainStack(h, h.i32[base + STORE]!, h.i32[base + CAP]!, h.i32[base + TAIL]!),
);
