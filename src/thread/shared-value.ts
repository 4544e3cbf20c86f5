/**
 * SharedValue and sharedArray: numbers in shared memory that every thread sees.
 *
 * `SharedValue.value` is a plain read and write (so the classic `x += 1` race shows, as with a
 * Python global); `add`, `sub`, `exchange`, `compareExchange`, `load` and `store` are atomic.
 * Integer kinds use Atomics directly; float kinds are updated with a compareExchange loop on
 * their bit pattern, since Atomics has no float operations.
 */

import { inspect } from 'node:util';
import { heap } from '../shm/current.js';
import { describe } from '../shm/futex.js';
import { Kind, SharedObject, isReviving, registerKind, registerSharedView, reviveAs } from '../shm/handles.js';

const kinds = {
  int8: Int8Array,
  uint8: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  float32: Float32Array,
  float64: Float64Array,
  bigint64: BigInt64Array,
  biguint64: BigUint64Array,
} as const;

export type SharedValueKind = keyof typeof kinds;
type ValueOf<K extends SharedValueKind> = K extends 'bigint64' | 'biguint64' ? bigint : number;
type IntegerArray = Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | BigInt64Array | BigUint64Array;

const kindNames = Object.keys(kinds) as SharedValueKind[];

/** Atomics with the element type left to the caller (the kind decides number or bigint). */
const atomics = Atomics as unknown as {
  add(a: IntegerArray, i: number, v: unknown): never;
  sub(a: IntegerArray, i: number, v: unknown): never;
  exchange(a: IntegerArray, i: number, v: unknown): never;
  compareExchange(a: IntegerArray, i: number, expected: unknown, replacement: unknown): never;
  load(a: IntegerArray, i: number): never;
  store(a: IntegerArray, i: number, v: unknown): never;
};
const KIND_SLOT = 2; // Int32 slot after the 8-byte value

export class SharedValue<K extends SharedValueKind = 'float64'> extends SharedObject {
  readonly kind: K;
  private readonly cell: IntegerArray | Float32Array | Float64Array;
  /** For float kinds: the same bytes as integers, for compareExchange on the bit pattern. */
  private readonly bits: Int32Array | BigInt64Array | undefined;

  /**
   * @param kind the number type: 'int32', 'uint32', 'float64', 'bigint64', … @default 'float64'
   * @param initial the starting value. @default 0
   * @throws TypeError for an unknown kind or an initial value of the wrong type.
   */
  constructor(kind: K = 'float64' as K, initial?: ValueOf<K>) {
    if (!isReviving()) {
      if (!(kind in kinds)) throw new TypeError(`SharedValue(kind): expected one of ${kindNames.join(', ')}, got ${describe(kind)}`);
      const big = kind === 'bigint64' || kind === 'biguint64';
      if (initial !== undefined && typeof initial !== (big ? 'bigint' : 'number')) {
        throw new TypeError(`SharedValue(${kind}, initial): expected a ${big ? 'bigint' : 'number'}, got ${describe(initial)}`);
      }
    }
    super(Kind.SharedValue, 16);
    const i32 = this._heap.i32;
    const base = this._offset >> 2;
    if (this._fresh) i32[base + KIND_SLOT] = kindNames.indexOf(kind);
    this.kind = kindNames[i32[base + KIND_SLOT]!] as K;
    const T = kinds[this.kind];
    this.cell = new T(this._heap.sab as unknown as ArrayBuffer, this._offset, 1);
    this.bits = this.kind === 'float64' ? new BigInt64Array(this._heap.sab as unknown as ArrayBuffer, this._offset, 1) : this.kind === 'float32' ? new Int32Array(this._heap.sab as unknown as ArrayBuffer, this._offset, 1) : undefined;
    if (this._fresh && initial !== undefined) this.cell[0] = initial as never;
  }

  /** Plain (non-atomic) read and write: `v.value += 1` from many threads loses updates. */
  get value(): ValueOf<K> {
    return this.cell[0] as ValueOf<K>;
  }

  set value(v: ValueOf<K>) {
    this.cell[0] = v as never;
  }

  /** Atomically adds `n`; returns the previous value (as `Atomics.add`). */
  add(n: ValueOf<K>): ValueOf<K> {
    if (this.bits === undefined) return atomics.add(this.cell as IntegerArray, 0, n);
    return this.update((x) => x + (n as number));
  }

  /** Atomically subtracts `n`; returns the previous value. */
  sub(n: ValueOf<K>): ValueOf<K> {
    if (this.bits === undefined) return atomics.sub(this.cell as IntegerArray, 0, n);
    return this.update((x) => x - (n as number));
  }

  /** Atomically replaces the value; returns the previous one. */
  exchange(v: ValueOf<K>): ValueOf<K> {
    if (this.bits === undefined) return atomics.exchange(this.cell as IntegerArray, 0, v);
    return this.update(() => v as number);
  }

  /** Atomically sets `replacement` if the value is `expected`; returns the value found. */
  compareExchange(expected: ValueOf<K>, replacement: ValueOf<K>): ValueOf<K> {
    if (this.bits === undefined) return atomics.compareExchange(this.cell as IntegerArray, 0, expected, replacement);
    for (;;) {
      const raw = this.rawBits();
      const found = this.fromBits(raw);
      if (found !== expected && !(Number.isNaN(found) && Number.isNaN(expected))) return found as ValueOf<K>;
      if (atomics.compareExchange(this.bits as IntegerArray, 0, raw, this.toBits(replacement as number)) === raw) return found as ValueOf<K>;
    }
  }

  /** Atomic read. */
  load(): ValueOf<K> {
    if (this.bits === undefined) return atomics.load(this.cell as IntegerArray, 0);
    return this.fromBits(this.rawBits()) as ValueOf<K>;
  }

  /** Atomic write; returns `v`. */
  store(v: ValueOf<K>): ValueOf<K> {
    if (this.bits === undefined) return atomics.store(this.cell as IntegerArray, 0, v);
    atomics.store(this.bits as IntegerArray, 0, this.toBits(v as number));
    return v;
  }

  /**
   * Read-modify-write of a float cell: compareExchange on the raw bits read, retried until no
   * other thread changed the cell in between. Returns the previous value.
   */
  private update(f: (x: number) => number): ValueOf<K> {
    for (;;) {
      const raw = this.rawBits();
      const old = this.fromBits(raw);
      if (atomics.compareExchange(this.bits as IntegerArray, 0, raw, this.toBits(f(old))) === raw) return old as ValueOf<K>;
    }
  }

  private rawBits(): number | bigint {
    return atomics.load(this.bits as IntegerArray, 0) as number | bigint;
  }

  private toBits(x: number): number | bigint {
    if (this.kind === 'float64') {
      scratchF64[0] = x;
      return scratchI64[0]!;
    }
    scratchF32[0] = x;
    return scratchI32[0]!;
  }

  private fromBits(bits: number | bigint): number {
    if (this.kind === 'float64') {
      scratchI64[0] = bits as bigint;
      return scratchF64[0]!;
    }
    scratchI32[0] = bits as number;
    return scratchF32[0]!;
  }

  override toString(): string {
    return `<threadkit.SharedValue ${this.kind} ${String(this.cell[0])}>`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

const scratch = new ArrayBuffer(8);
const scratchF64 = new Float64Array(scratch);
const scratchI64 = new BigInt64Array(scratch);
const scratchF32 = new Float32Array(scratch, 0, 1);
const scratchI32 = new Int32Array(scratch, 0, 1);

registerKind(Kind.SharedValue, { name: 'SharedValue', revive: (offset) => reviveAs(offset, () => new SharedValue()) });
registerKind(Kind.SharedArray, { name: 'SharedArray' });

type TypedArrayClass =
  | Int8ArrayConstructor
  | Uint8ArrayConstructor
  | Uint8ClampedArrayConstructor
  | Int16ArrayConstructor
  | Uint16ArrayConstructor
  | Int32ArrayConstructor
  | Uint32ArrayConstructor
  | Float32ArrayConstructor
  | Float64ArrayConstructor
  | BigInt64ArrayConstructor
  | BigUint64ArrayConstructor;

/**
 * A real typed array whose memory is shared: every thread it is sent to sees the same
 * elements (it travels by reference). Use Atomics on it, or a Lock around plain access.
 * @example
 * const counts = sharedArray(Int32Array, 4);
 * new Thread({ target: (c) => Atomics.add(c, 0, 1), args: [counts] }).start();
 * @throws TypeError for a class that is not a typed array; RangeError for a bad length.
 */
export function sharedArray<T extends TypedArrayClass>(type: T, length: number): InstanceType<T> {
  if (typeof type !== 'function' || !('BYTES_PER_ELEMENT' in type)) throw new TypeError(`sharedArray(type): expected a typed array class such as Float64Array, got ${describe(type)}`);
  if (!Number.isInteger(length) || length < 0) throw new RangeError(`sharedArray(type, length): length must be a non-negative integer, got ${describe(length)}`);
  const h = heap();
  const block = h.alloc(Math.max(8, length * type.BYTES_PER_ELEMENT), Kind.SharedArray);
  const view = new (type as Float64ArrayConstructor)(h.sab as unknown as ArrayBuffer, block, length) as unknown as InstanceType<T>;
  registerSharedView(view, block);
  return view;
}
