/**
 * PriorityQueue: CPython's `queue.PriorityQueue`, a Queue whose `get` returns the smallest item
 * first, ordered as Python orders values: numbers (and booleans, as 0/1) and bigints by value,
 * strings by code point, Dates by time, arrays element by element (so `[priority, data]` works),
 * and items that compare equal come out in insertion order (stable). One lock guards the
 * storage, a binary min-heap of item blocks. Each item lives in a block of its own holding its
 * insertion number, a "primary" number for the common cases, a sort key, and (only when the key
 * cannot rebuild the item) the item's codec record. Comparisons read the blocks in shared
 * memory and decode nothing: first the primary numbers, then the keys, then insertion order.
 *
 * Item block (payload; 8-aligned):
 *
 * | bytes            | field    | meaning                                                       |
 * |------------------|----------|---------------------------------------------------------------|
 * | 0..8             | seq      | Float64 insertion number (from the queue's SEQ slot)            |
 * | 8..12            | record   | record header (records.ts types), or KEYED: the key is the item |
 * | 12..16           | keyBytes | size of the key                                               |
 * | 16..24           | primary  | Float64: the item if a number, the first element if an array starting with one |
 * | 24..28           | class    | 0 none, 1 number, 2 array led by a number                      |
 * | 32..32+keyBytes  | key      | the sort key (below)                                          |
 * | then, 4-aligned  | payload  | the record's payload (not for KEYED items)                     |
 *
 * Sort key, a tag byte per value: NUM + float64; FALSE, TRUE (compare as 0 and 1, as Python's
 * bool); BIG + u32 length + decimal digits; STR + u32 length + UTF-8 (byte order is code point
 * order); DATE + float64; ARR + u32 count + elements; NONE + u8 length + a type name (objects,
 * null, undefined, shared objects: no order). A key without NONE is the item itself: such items
 * (numbers, strings, `[priority, "label"]`…) are never run through the value codec.
 *
 * Comparing a NONE item, or values of different kinds (number against string, array against
 * number…), raises TypeError in `put` and leaves the queue unchanged. Two NONE elements inside
 * arrays count as equal, so `[1, {…}]` and `[1, {…}]` come out in insertion order (Python would
 * compare the dicts and raise). `get` never raises: pairs that were never compared and cannot be
 * (possible only with such mixed items) are ordered by insertion.
 *
 * Storage (the queue block's STORE / CAP; TAIL holds the number of items): an Int32 array of
 * item block offsets, a binary min-heap.
 */

import { dropEncoded } from '../shm/codec.js';
import { heap } from '../shm/current.js';
import { Kind, dropReference, reviveAs } from '../shm/handles.js';
import type { Heap } from '../shm/heap.js';
import { Flavor, registerFlavor } from './flavors.js';
import { CAP, SEQ, STORE, TAIL } from './layout.js';
import {
  DECODE_ITEM,
  R,
  Staged,
  type FastBuffer,
  decodePrivate,
  dropRecord,
  explainExhausted,
  round4,
  setItemBlockDropper,
  setTakenBlock,
  shortAscii,
  stageItem,
  writePayload,
} from './records.js';
import { nextPow2 } from './ring.js';
import { Queue } from './queue.js';

const K_NUM = 1;
const K_BIG = 2;
const K_STR = 3;
const K_DATE = 4;
const K_ARR = 5;
const K_NONE = 6;
const K_FALSE = 7;
const K_TRUE = 8;

/** Record type of an item that its key rebuilds (no codec record). */
const KEYED = 15;
/** Primary classes. */
const P_NONE = 0;
const P_NUMBER = 1;
const P_ARRAY = 2;

/** Arrays nested deeper than this get no order (a guard against cyclic arrays). */
const MAX_DEPTH = 32;
/** First heap array (bytes: 64 items). */
const FIRST_ARRAY = 256;
const ITEM_HEADER = 32;

// ---- building keys ------------------------------------------------------------------------------------

let kbuf = Buffer.allocUnsafeSlow(256);
let kpos = 0;
/** False once the key holds a NONE: then it cannot rebuild the item. */
let kpure = true;
/**
 * Keys being built: a getter or Proxy trap in an item runs user code in the middle of
 * `_stage`, and that code may put to a PriorityQueue. A nested `_stage` builds its key in a
 * buffer of its own and gives the outer one back its buffer and position (see _stage).
 */
let keysInProgress = 0;
const kf64 = new Float64Array(1);
const kf64b = new Uint8Array(kf64.buffer);

function kensure(extra: number): void {
  if (kpos + extra <= kbuf.length) return;
  const bigger = Buffer.allocUnsafeSlow(Math.max(kbuf.length * 2, kpos + extra));
  kbuf.copy(bigger, 0, 0, kpos);
  kbuf = bigger;
}

function kf64Write(tag: number, x: number): void {
  kensure(9);
  const at = kpos;
  kbuf[at] = tag;
  kf64[0] = x;
  for (let i = 0; i < 8; i++) kbuf[at + 1 + i] = kf64b[i]!;
  kpos = at + 9;
}

function kTextWrite(tag: number, s: string): void {
  const n = s.length;
  kensure(5 + n * 3);
  const at = kpos;
  kbuf[at] = tag;
  let written = 0;
  if (n <= 64) {
    // Short ASCII in JavaScript (a native call costs more than the loop).
    while (written < n) {
      const c = s.charCodeAt(written);
      if (c >= 0x80) break;
      kbuf[at + 5 + written] = c;
      written++;
    }
  }
  if (written < n) written = (kbuf as unknown as FastBuffer).utf8Write(s, at + 5, n * 3);
  kbuf.writeUInt32LE(written, at + 1);
  kpos = at + 5 + written;
}

function kNoneWrite(value: unknown): void {
  kpure = false;
  let name: string;
  if (value === null) name = 'null';
  else if (typeof value !== 'object') name = typeof value;
  else {
    const proto = Object.getPrototypeOf(value) as { constructor?: { name?: unknown } } | null;
    const ctor = proto === null || proto === Object.prototype ? 'object' : proto.constructor?.name;
    name = typeof ctor === 'string' && ctor !== '' ? ctor : 'object';
  }
  name = name.replace(/[^\x20-\x7e]/g, '?').slice(0, 40);
  kensure(2 + name.length);
  kbuf[kpos] = K_NONE;
  kbuf[kpos + 1] = name.length;
  for (let i = 0; i < name.length; i++) kbuf[kpos + 2 + i] = name.charCodeAt(i);
  kpos += 2 + name.length;
}

function writeKey(value: unknown, depth: number): void {
  switch (typeof value) {
    case 'number':
      return kf64Write(K_NUM, value);
    case 'boolean':
      kensure(1);
      kbuf[kpos++] = value ? K_TRUE : K_FALSE;
      return;
    case 'bigint':
      return kTextWrite(K_BIG, value.toString());
    case 'string':
      // A lone surrogate cannot be UTF-8: the key orders it as U+FFFD, the codec record carries it.
      if (!value.isWellFormed()) kpure = false;
      return kTextWrite(K_STR, value);
    case 'object':
      if (Array.isArray(value) && depth < MAX_DEPTH) {
        const n = value.length;
        kensure(5);
        kbuf[kpos] = K_ARR;
        kbuf.writeUInt32LE(n, kpos + 1);
        kpos += 5;
        for (let i = 0; i < n; i++) writeKey(value[i], depth + 1);
        return;
      }
      if (value instanceof Date && Object.getPrototypeOf(value) === Date.prototype) return kf64Write(K_DATE, value.getTime());
      return kNoneWrite(value);
    default:
      return kNoneWrite(value);
  }
}

// ---- reading keys in shared memory -------------------------------------------------------------------

/** The views the key readers use (set from the heap before each use). */
let u8: Uint8Array;
let dv: DataView;
/** Cursors into the two keys being compared (also the decoder's cursor: ca). */
let ca = 0;
let cb = 0;
/** Where two values that cannot be ordered were met (for the message). */
let badA = 0;
let badB = 0;
const INCOMPARABLE = 2;

function readU32(p: number): number {
  return (u8[p]! | (u8[p + 1]! << 8) | (u8[p + 2]! << 16) | (u8[p + 3]! << 24)) >>> 0;
}

function readText(p: number): string {
  const n = readU32(p + 1);
  const start = p + 5;
  let ascii = n <= 24;
  for (let i = start; ascii && i < start + n; i++) if (u8[i]! >= 0x80) ascii = false;
  if (ascii) return shortAscii(u8, start, n);
  return Buffer.from(u8.buffer, u8.byteOffset + start, n).toString('utf8');
}

/** The size in bytes of the key value at `p`. */
function keySize(p: number): number {
  switch (u8[p]) {
    case K_NUM:
    case K_DATE:
      return 9;
    case K_BIG:
    case K_STR:
      return 5 + readU32(p + 1);
    case K_NONE:
      return 2 + u8[p + 1]!;
    case K_ARR: {
      let at = p + 5;
      for (let n = readU32(p + 1); n > 0; n--) at += keySize(at);
      return at - p;
    }
    default:
      return 1;
  }
}

function isNumeric(tag: number): boolean {
  return tag === K_NUM || tag === K_BIG || tag === K_TRUE || tag === K_FALSE;
}

function numericAt(p: number): number | bigint {
  const tag = u8[p];
  if (tag === K_NUM) return dv.getFloat64(p + 1, true);
  if (tag === K_BIG) return BigInt(readText(p));
  return tag === K_TRUE ? 1 : 0;
}

/**
 * Compares the key values at the cursors: -1, 0 (equal: both cursors moved past them) or 1,
 * or INCOMPARABLE (badA / badB say where).
 */
function compareValues(depth: number): number {
  const ta = u8[ca]!;
  const tb = u8[cb]!;
  if (isNumeric(ta) && isNumeric(tb)) {
    // Mixed number / bigint compare by value with JavaScript's relational operators (exact).
    const x = numericAt(ca);
    const y = numericAt(cb);
    if (x < y) return -1;
    if (x > y) return 1;
    ca += keySize(ca);
    cb += keySize(cb);
    return 0; // equal, or NaN (which Python orders neither way either)
  }
  if (ta !== tb || (ta === K_NONE && depth === 0)) {
    badA = ca;
    badB = cb;
    return INCOMPARABLE;
  }
  switch (ta) {
    case K_STR: {
      const la = readU32(ca + 1);
      const lb = readU32(cb + 1);
      const n = la < lb ? la : lb;
      for (let i = 5; i < n + 5; i++) {
        const d = u8[ca + i]! - u8[cb + i]!;
        if (d !== 0) return d < 0 ? -1 : 1;
      }
      if (la !== lb) return la < lb ? -1 : 1;
      ca += 5 + la;
      cb += 5 + lb;
      return 0;
    }
    case K_DATE: {
      const x = dv.getFloat64(ca + 1, true);
      const y = dv.getFloat64(cb + 1, true);
      if (x < y) return -1;
      if (x > y) return 1;
      ca += 9;
      cb += 9;
      return 0;
    }
    case K_ARR: {
      const na = readU32(ca + 1);
      const nb = readU32(cb + 1);
      ca += 5;
      cb += 5;
      const n = na < nb ? na : nb;
      for (let i = 0; i < n; i++) {
        const c = compareValues(depth + 1);
        if (c !== 0) return c;
      }
      if (na !== nb) return na < nb ? -1 : 1;
      return 0;
    }
    case K_NONE:
      // Inside arrays, values without an order count as equal (see the header comment).
      ca += 2 + u8[ca + 1]!;
      cb += 2 + u8[cb + 1]!;
      return 0;
    default:
      throw new TypeError(`threadkit PriorityQueue: corrupt sort key (tag ${ta})`);
  }
}

/** Rebuilds an item from its key (items without NONE); the cursor is `ca`. */
function decodeKey(): unknown {
  const tag = u8[ca]!;
  switch (tag) {
    case K_NUM: {
      const x = dv.getFloat64(ca + 1, true);
      ca += 9;
      return x;
    }
    case K_DATE: {
      const d = new Date(dv.getFloat64(ca + 1, true));
      ca += 9;
      return d;
    }
    case K_TRUE:
    case K_FALSE:
      ca += 1;
      return tag === K_TRUE;
    case K_STR: {
      const s = readText(ca);
      ca += 5 + readU32(ca + 1);
      return s;
    }
    case K_BIG: {
      const n = BigInt(readText(ca));
      ca += 5 + readU32(ca + 1);
      return n;
    }
    case K_ARR: {
      const n = readU32(ca + 1);
      ca += 5;
      const a: unknown[] = new Array(n);
      for (let i = 0; i < n; i++) a[i] = decodeKey();
      return a;
    }
    default:
      throw new TypeError(`threadkit PriorityQueue: corrupt sort key (tag ${tag})`);
  }
}

function kindName(p: number): string {
  switch (u8[p]) {
    case K_NUM:
      return 'number';
    case K_TRUE:
    case K_FALSE:
      return 'boolean';
    case K_BIG:
      return 'bigint';
    case K_STR:
      return 'string';
    case K_DATE:
      return 'Date';
    case K_ARR:
      return 'array';
    case K_NONE:
      return String.fromCharCode(...u8.subarray(p + 2, p + 2 + u8[p + 1]!));
    default:
      return '?';
  }
}

/** Renders the key value at `p` for a message (short). */
function describeKey(p: number, budget = 60): string {
  switch (u8[p]) {
    case K_NUM:
      return String(dv.getFloat64(p + 1, true));
    case K_TRUE:
      return 'true';
    case K_FALSE:
      return 'false';
    case K_BIG:
      return `${readText(p)}n`;
    case K_STR: {
      const s = readText(p);
      return JSON.stringify(s.length > budget ? `${s.slice(0, budget)}…` : s);
    }
    case K_DATE:
      return `Date(${dv.getFloat64(p + 1, true)})`;
    case K_ARR: {
      const parts: string[] = [];
      let at = p + 5;
      let length = 2;
      for (let n = readU32(p + 1); n > 0; n--) {
        if (length > budget) {
          parts.push('…');
          break;
        }
        const part = describeKey(at, budget - length);
        parts.push(part);
        length += part.length + 2;
        at += keySize(at);
      }
      return `[${parts.join(', ')}]`;
    }
    case K_NONE: {
      const name = kindName(p);
      return name === 'null' || name === 'undefined' ? name : `{${name}}`;
    }
    default:
      return '?';
  }
}

/**
 * Orders two item blocks: the primary numbers when both have one of the same class (the common
 * cases: numbers, `[priority, …]`), then the keys, then insertion. `strict` (a put comparing
 * its new item) raises TypeError for values that cannot be ordered; otherwise they count as
 * equal.
 */
function compareItems(h: Heap, x: number, y: number, strict: boolean, name: string): number {
  const f64 = h.f64;
  const i32 = h.i32;
  const cx = i32[(x >> 2) + 6]!;
  if (cx !== P_NONE && cx === i32[(y >> 2) + 6]) {
    const px = f64[(x >> 3) + 2]!;
    const py = f64[(y >> 3) + 2]!;
    if (px < py) return -1;
    if (px > py) return 1;
    // Equal numbers (or NaN) are equal items: insertion decides.
    if (cx === P_NUMBER) return f64[x >> 3]! < f64[y >> 3]! ? -1 : 1;
  }
  u8 = h.u8;
  dv = h.dv;
  ca = x + ITEM_HEADER;
  cb = y + ITEM_HEADER;
  let c = compareValues(0);
  if (c === INCOMPARABLE) {
    if (strict) {
      throw new TypeError(
        `${name}.put: '<' not supported between instances of '${kindName(badA)}' and '${kindName(badB)}' ` +
          `(comparing the new item ${describeKey(x + ITEM_HEADER)} with the queued item ${describeKey(y + ITEM_HEADER)}); ` +
          'PriorityQueue items must be ordered as Python orders them: numbers, bigints, strings, Dates, or arrays of them compared element by element',
      );
    }
    c = 0;
  }
  if (c !== 0) return c;
  return f64[x >> 3]! < f64[y >> 3]! ? -1 : 1;
}

// ---- the class ------------------------------------------------------------------------------------------

export class PriorityQueue<T = unknown> extends Queue<T> {
  static override readonly _flavor: Flavor = Flavor.Priority;

  override get _name(): string {
    return 'PriorityQueue';
  }

  /**
   * @internal Builds the item's block (primary number, sort key, and the codec record when the
   * key cannot rebuild the item) before any lock is taken: encoding may run user code
   * (getters), and a failure leaves nothing behind.
   */
  override _stage(st: Staged, item: unknown, op: string): Staged {
    if (keysInProgress > 0) return this._stageNested(st, item, op);
    keysInProgress++;
    try {
      return this._stageKeyed(st, item, op);
    } finally {
      keysInProgress--;
    }
  }

  /** A put from user code that runs while another put builds its key: its own buffer, the outer's restored. */
  private _stageNested(st: Staged, item: unknown, op: string): Staged {
    const outer = { buf: kbuf, pos: kpos, pure: kpure };
    kbuf = Buffer.allocUnsafeSlow(256);
    try {
      return this._stageKeyed(st, item, op);
    } finally {
      kbuf = outer.buf;
      kpos = outer.pos;
      kpure = outer.pure;
    }
  }

  private _stageKeyed(st: Staged, item: unknown, op: string): Staged {
    kpos = 0;
    kpure = true;
    writeKey(item, 0);
    const keyBytes = kpos;
    if (!kpure) {
      // An item that cannot be cloned fails here, with its path named.
      stageItem(st, item, this._name, op, true, this._offset);
    } else {
      st.type = KEYED;
      st.len = 0;
    }
    const payloadAt = ITEM_HEADER + round4(keyBytes);
    const h = this._heap;
    let block: number;
    try {
      block = h.alloc(payloadAt + st.len, Kind.Bytes);
    } catch (error) {
      if (st.bytes !== undefined) dropEncoded(st.bytes);
      st.clear();
      throw explainExhausted(error, `${this._name}.${op}: an item of ${payloadAt + st.len} bytes does not fit in the shared heap`);
    }
    h.u8.set(kbuf.subarray(0, keyBytes), block + ITEM_HEADER);
    const len = st.type === KEYED ? 0 : writePayload(h, st, block + payloadAt);
    const base = block >> 2;
    h.i32[base + 2] = st.type | (len << 4);
    h.i32[base + 3] = keyBytes;
    // The primary number: the item itself, or the first element of an array led by a number.
    let cls = P_NONE;
    let primary = 0;
    if (typeof item === 'number' || typeof item === 'boolean') {
      cls = P_NUMBER;
      primary = +item;
    } else if (Array.isArray(item) && item.length > 0 && (typeof item[0] === 'number' || typeof item[0] === 'boolean')) {
      cls = P_ARRAY;
      primary = +item[0];
    }
    h.f64[(block >> 3) + 2] = primary;
    h.i32[base + 6] = cls;
    st.clear();
    st.type = R.ITEM;
    st.len = 0;
    st.block = block;
    return st;
  }

  /** @internal Heap push (the lock is held). Compares first and moves after, so a TypeError changes nothing. */
  override _insert(st: Staged): void {
    const h = this._heap;
    const b = this._base;
    const item = st.block;
    const n = h.i32[b + TAIL]!;
    if ((n + 1) * 4 > h.i32[b + CAP]!) this._growArray((n + 1) * 4);
    const seqAt = (b + SEQ) >> 1;
    const seq = h.f64[seqAt]!;
    h.f64[item >> 3] = seq;
    // Item blocks may have been allocated by other threads after this one last mapped the heap.
    h.ensureMapped(h.topBytes());
    const arr = h.i32[b + STORE]! >> 2;
    // Find the new item's place on the path to the root (this may throw: nothing moved yet).
    let i = n;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (compareItems(h, item, h.i32[arr + parent]!, true, this._name) >= 0) break;
      i = parent;
    }
    const i32 = h.i32;
    for (let j = n; j > i; ) {
      const parent = (j - 1) >> 1;
      i32[arr + j] = i32[arr + parent]!;
      j = parent;
    }
    i32[arr + i] = item;
    i32[b + TAIL] = n + 1;
    h.f64[seqAt] = seq + 1;
  }

  /** @internal Heap pop (the lock is held, an item is there). */
  override _take(): unknown {
    const h = this._heap;
    const b = this._base;
    h.ensureMapped(h.topBytes());
    const i32 = h.i32;
    const arr = i32[b + STORE]! >> 2;
    const n = i32[b + TAIL]! - 1;
    const root = i32[arr]!;
    const last = i32[arr + n]!;
    let i = 0;
    if (n > 0) {
      for (;;) {
        let child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && compareItems(h, i32[arr + child + 1]!, i32[arr + child]!, false, '') < 0) child++;
        const c = i32[arr + child]!;
        if (compareItems(h, c, last, false, '') >= 0) break;
        i32[arr + i] = c;
        i = child;
      }
      i32[arr + i] = last;
    }
    i32[b + TAIL] = n;
    setTakenBlock(root);
    return DECODE_ITEM;
  }

  /** @internal Decodes a taken item block (no lock held) and frees it; puts it back if the decode fails. */
  override _decodeItem(block: number): unknown {
    const h = this._heap;
    let value: unknown;
    try {
      h.ensureMapped(h.topBytes());
      const header = h.i32[(block >> 2) + 2]!;
      if ((header & 15) === KEYED) {
        u8 = h.u8;
        dv = h.dv;
        ca = block + ITEM_HEADER;
        value = decodeKey();
      } else {
        const payloadAt = block + ITEM_HEADER + round4(h.i32[(block >> 2) + 3]!);
        value = decodePrivate(h, header & 15, header >>> 4, payloadAt);
      }
    } catch (error) {
      // The block still holds everything (decodePrivate keeps it whole on failure).
      const st = new Staged();
      st.type = R.ITEM;
      st.block = block;
      throw this._putBack(st, error);
    }
    dropReference(block);
    return value;
  }

  private _growArray(needed: number): void {
    const h = this._heap;
    const b = this._base;
    const oldStore = h.i32[b + STORE]!;
    const oldCap = h.i32[b + CAP]!;
    const cap = Math.max(FIRST_ARRAY, nextPow2(needed), oldCap * 2);
    let store: number;
    try {
      store = h.alloc(cap, Kind.Bytes);
    } catch (error) {
      throw explainExhausted(error, `${this._name}.put: the queue's storage cannot grow to ${cap} bytes`);
    }
    if (oldStore !== 0) {
      h.ensureMapped(oldStore + oldCap);
      h.u8.copyWithin(store, oldStore, oldStore + h.i32[b + TAIL]! * 4);
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
    drainHeap(this._heap, detached[0]!, detached[1]!, detached[2]!);
  }
}

/** Drops what one item block holds (the handles inside its record), then the block. */
function dropItemBlock(block: number, h: Heap): void {
  try {
    h.ensureMapped(h.topBytes());
    const header = h.i32[(block >> 2) + 2]!;
    // A KEYED item holds no handle (its key has no NONE, so no object inside).
    if ((header & 15) !== KEYED) dropRecord(h, header & 15, block + ITEM_HEADER + round4(h.i32[(block >> 2) + 3]!));
  } finally {
    dropReference(block);
  }
}

/** Drops every item of a heap array, then the array. */
function drainHeap(h: Heap, store: number, cap: number, n: number): void {
  if (store === 0) return;
  h.ensureMapped(store + cap);
  try {
    for (let i = 0; i < n; i++) dropItemBlock(h.i32[(store >> 2) + i]!, h);
  } finally {
    dropReference(store);
  }
}

setItemBlockDropper((block) => dropItemBlock(block, heap()));

registerFlavor(
  Flavor.Priority,
  (offset) => reviveAs(offset, () => new PriorityQueue()),
  (h, base) => drainHeap(h, h.i32[base + STORE]!, h.i32[base + CAP]!, h.i32[base + TAIL]!),
);
