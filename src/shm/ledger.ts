/**
 * The held-references ledger: a copy, in the heap, of what an isolate's wrappers hold (handles.ts
 * keeps the table in JavaScript), so that when the isolate dies abruptly (out of memory, a task's
 * `killAfter`), its parent can drop those references for it. Without it, every shared object the
 * dead isolate referred to would stay allocated for ever.
 *
 * One Bytes block per worker isolate, named by its mailbox's LEDGER slot (runtime/messages.ts):
 * [capacity, used], then `capacity` pairs [offset, count] (open addressing, linear probing; a pair
 * whose count went to 0 stays as a tombstone until the table is rebuilt). Only the isolate writes
 * it; its parent reads it only once the isolate is gone (its exit event).
 *
 * Every change is inside a kill-guard section (a kill never lands mid-change), and in the order
 * that can only leak if an out-of-memory death lands mid-change: a reference is counted here
 * after it is taken, and uncounted before it is dropped (handles.ts), so the parent never drops
 * one twice.
 */

import { heap } from './current.js';
import { enterInternal, leaveInternal } from './kill-guard.js';

const CAPACITY = 0;
const USED = 1;
const PAIRS = 2;
const FIRST_CAPACITY = 16;
/** Kind.Bytes (handles.ts; not imported: handles.ts imports this file). */
const BYTES_KIND = 8;

let ledgerSlot = -1;

/** Where this isolate's ledger is named (an Int32 index: its mailbox's LEDGER slot). */
export function setLedgerSlot(index: number): void {
  ledgerSlot = index;
}

function slotOf(i32: Int32Array, table: number, offset: number): number {
  const capacity = i32[(table >> 2) + CAPACITY]!;
  let i = Math.imul(offset >>> 3, 0x9e3779b1) >>> 0;
  for (;;) {
    i &= capacity - 1;
    const at = (table >> 2) + PAIRS + 2 * i;
    const o = i32[at]!;
    if (o === offset || o === 0) return at;
    i++;
  }
}

/** Counts `n` more references the thread holds on `offset`. */
export function ledgerAdd(offset: number, n = 1): void {
  if (ledgerSlot < 0) return;
  enterInternal();
  try {
    const h = heap();
    let table = h.i32[ledgerSlot]!;
    if (table === 0 || 2 * (h.i32[(table >> 2) + USED]! + 1) > h.i32[(table >> 2) + CAPACITY]!) table = rebuild(table);
    const i32 = h.i32;
    const at = slotOf(i32, table, offset);
    if (i32[at] === 0) {
      i32[at] = offset;
      i32[(table >> 2) + USED] = i32[(table >> 2) + USED]! + 1;
    }
    // The count last (a reader skips a pair whose count is 0).
    Atomics.store(i32, at + 1, i32[at + 1]! + n);
  } finally {
    leaveInternal();
  }
}

/** Counts one reference on `offset` less (call it before dropping the reference). */
export function ledgerRemove(offset: number): void {
  if (ledgerSlot < 0) return;
  enterInternal();
  try {
    const i32 = heap().i32;
    const table = i32[ledgerSlot]!;
    if (table === 0) return;
    const at = slotOf(i32, table, offset);
    // Only this isolate writes the ledger and its parent reads it after the isolate died: nobody sleeps on it.
    if (i32[at] === offset && i32[at + 1]! > 0) Atomics.store(i32, at + 1, i32[at + 1]! - 1);
  } finally {
    leaveInternal();
  }
}

/** A bigger (or first) table with the live pairs of `old`; published before `old` is freed. */
function rebuild(old: number): number {
  const h = heap();
  const live: [number, number][] = old === 0 ? [] : pairsOf(h.i32, old);
  let capacity = FIRST_CAPACITY;
  while (capacity < 4 * (live.length + 1)) capacity *= 2;
  const table = h.alloc((PAIRS + 2 * capacity) * 4, BYTES_KIND);
  const i32 = h.i32;
  i32.fill(0, table >> 2, (table >> 2) + PAIRS + 2 * capacity);
  i32[(table >> 2) + CAPACITY] = capacity;
  for (const [offset, count] of live) {
    const at = slotOf(i32, table, offset);
    i32[at] = offset;
    i32[at + 1] = count;
  }
  i32[(table >> 2) + USED] = live.length;
  // Published after the copy (a release store); read only by a parent after our death: no wake owed.
  Atomics.store(i32, ledgerSlot, table);
  if (old !== 0) h.free(old);
  return table;
}

function pairsOf(i32: Int32Array, table: number): [number, number][] {
  const capacity = i32[(table >> 2) + CAPACITY]!;
  const pairs: [number, number][] = [];
  for (let i = 0; i < capacity; i++) {
    const at = (table >> 2) + PAIRS + 2 * i;
    if (i32[at] !== 0 && i32[at + 1]! > 0) pairs.push([i32[at]!, i32[at + 1]!]);
  }
  return pairs;
}

/** The isolate gave back everything it held (its exit): the ledger goes. */
export function ledgerClear(): void {
  if (ledgerSlot < 0) return;
  const h = heap();
  // (An exchange: the ledger is freed once, by whoever takes it. Nobody sleeps on the slot.)
  const table = Atomics.exchange(h.i32, ledgerSlot, 0);
  if (table !== 0) h.free(table);
}

/**
 * In the parent of an isolate that died without giving back what it held: the pairs of its
 * ledger at Int32 index `slot` (each count is references to drop), and the ledger is freed.
 * Empty when the isolate exited normally.
 */
export function takeDeadLedger(slot: number): [number, number][] {
  const h = heap();
  const table = Atomics.exchange(h.i32, slot, 0);
  if (table === 0) return [];
  h.ensureMapped(h.topBytes());
  const pairs = pairsOf(h.i32, table);
  h.free(table);
  return pairs;
}
