/**
 * The value codec: JavaScript values ↔ bytes, with structured-clone semantics, and shared
 * objects (Lock, Queue, Future, …) written as handles so they travel by reference.
 *
 * Format: a tag byte per value, little-endian numbers. Containers and other objects get an index
 * in order of first appearance; a repeated or cyclic reference is written as BACKREF(index), so
 * cycles and shared sub-objects survive as in `structuredClone`.
 *
 * Values arrive as `structuredClone` gives them: an own `__proto__` key stays an own data
 * property (never the received object's prototype), strings arrive exactly (a string that is not
 * well-formed UTF-16, a lone surrogate, travels as UTF-16 code units instead of UTF-8), and a
 * sparse array keeps its holes. Both sides apply the same limits: a value nests at most
 * MAX_DEPTH containers deep, and the encoder refuses (RangeError in the sending thread, naming
 * the path) whatever the decoder could not rebuild, so bytes that were sent always decode.
 *
 * Chosen over msgpackr and v8.serialize by measurement (bench/codec.ts, README "Benchmarks"):
 * it writes handles natively, names the path of a value that cannot be cloned, and decodes
 * straight from shared memory.
 */

import { errorClasses } from '../errors.js';
import { describe } from './futex.js';
import { heap } from './current.js';
import type { Heap } from './heap.js';
import { Kind, SharedObject, dropReference, receiveSharedView, retainForTransfer, reviveHandle, sharedViewBlock } from './handles.js';

const enum Tag {
  Undefined = 0,
  Null = 1,
  False = 2,
  True = 3,
  Int32 = 4,
  Float64 = 5,
  AsciiShort = 6, // u8 length, one byte per char
  String = 7, // u32 byte length, UTF-8
  BigInt = 8, // sign u8, then ascii hex of the magnitude
  Array = 9, // u32 length, items
  Object = 10, // u32 count, (key, value)*
  Map = 11,
  Set = 12,
  Date = 13,
  RegExp = 14,
  ArrayBuffer = 15,
  TypedArray = 16, // u8 kind, u32 byte length, bytes
  DataView = 17,
  Error = 18,
  Handle = 19, // u32 offset
  BackRef = 20, // u32 index
  SharedView = 21, // u8 kind, u32 block, u32 byte offset, u32 length: a sharedArray by reference
  String16 = 22, // u32 code unit count, UTF-16LE: a string that is not well-formed (lone surrogates)
  SparseArray = 23, // u32 length, then items and Holes runs: an array with holes
  Holes = 24, // u32 count: that many missing elements (only inside a SparseArray)
  Boxed = 25, // then the primitive's value: a Number, String, Boolean or BigInt object
}

/**
 * How deep a value may nest: arrays, objects, Maps, Sets and Errors inside each other, the root
 * counting as level 1. The encoder refuses a deeper value in the sending thread, so the decoder
 * (which recurses once or twice per level) never meets one. Measured in a fresh thread on the
 * smallest stack threadkit gives a thread (1 MiB; main has 984 KiB), with its code not yet
 * optimized: decoding 1,000 levels uses 35-50% of it for arrays, objects, Maps and Sets, 61%
 * for a chain of Error causes; encoding uses at most 70% (sparse arrays). test/codec-fuzz.test.ts
 * sends values this deep through a thread on that stack. (`structuredClone` has no fixed limit:
 * it throws when the stack runs out, past about 1,600 levels on 1 MiB.)
 */
export const MAX_DEPTH = 1000;

const typedArrayKinds = [
  Int8Array,
  Uint8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
] as const;

/** Why a value could not be encoded, with the path from the root to it. */
class NotCloneable extends Error {
  readonly segments: string[] = [];
  constructor(readonly what: string) {
    super(what);
  }
}

/** A value past a limit both sides share (depth, sizes): a RangeError for the caller. */
class OverLimit extends NotCloneable {}

/** A value threadkit refuses to send (a fake shared object, an object inside itself): a TypeError, with its own words. */
class Refused extends NotCloneable {}

/** The path for a message: long paths (a deep value's) keep their two ends. */
function pathText(root: string, segments: string[]): string {
  if (segments.length <= 16) return root + segments.join('');
  return `${root}${segments.slice(0, 8).join('')}…${segments.slice(-4).join('')}`;
}

/** The number value of an array index key ('0', '17'), or -1 for any other key. */
function arrayIndex(key: string): number {
  const n = Number(key);
  return Number.isInteger(n) && n >= 0 && n < 4294967295 && String(n) === key ? n : -1;
}

/** Builds a value's own data property, as structuredClone does (no setter, no `__proto__` magic). */
function defineField(o: object, key: string, value: unknown): void {
  Object.defineProperty(o, key, { value, writable: true, enumerable: true, configurable: true });
}

function pathSegment(key: string | number): string {
  if (typeof key === 'number') return `[${key}]`;
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
}

// ---- encoder ------------------------------------------------------------------------------

/** Objects of one value an encoder tracks without a Map (see Encoder.seenSmall). */
const SEEN_SMALL = 64;

class Encoder {
  buf = Buffer.allocUnsafe(4096);
  /** A DataView over `buf` (number writes without Buffer's argument checks). */
  dv: DataView = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
  pos = 0;
  /**
   * Objects met so far in this encode, by index (for back references): the first SEEN_SMALL in
   * an array searched linearly (most values hold a few objects: no hashing, nothing to clear
   * but those slots), the rest in a Map.
   */
  private seenSmall: (object | undefined)[] = new Array<object | undefined>(SEEN_SMALL).fill(undefined);
  private seen = new Map<object, number>();
  private nextIndex = 0;
  /** Handles written during this encode: their in-flight references are undone on failure. */
  private handles: number[] = [];
  /** Containers open around the value being written (at most MAX_DEPTH). */
  private depth = 0;
  /** The shared object the value is being stored into (a queue, a future): it may not hold itself. */
  private self = 0;
  private selfName = '';

  /** True while an encode runs (re-entered, the caller takes a fresh encoder). */
  busy = false;
  /** Set for a value leaving the process (RedisExecutor): a shared object inside is refused. */
  portable = false;

  encode(value: unknown, root: string): Uint8Array {
    const length = this.encodeRaw(value, root); // (first: it may replace `buf` with a bigger one)
    return this.buf.subarray(0, length);
  }

  /**
   * Encodes into `buf` (from byte 0); returns the length. `self`: the block the value will be
   * stored in (named `selfName` in errors), which the value may not contain (see Refused).
   */
  encodeRaw(value: unknown, root: string, self = 0, selfName = ''): number {
    this.self = self;
    this.selfName = selfName;
    this.pos = 0;
    this.nextIndex = 0;
    this.depth = 0;
    // (A new array rather than `length = 0`, a runtime call that costs more than the allocation.)
    if (this.handles.length !== 0) this.handles = [];
    this.busy = true;
    try {
      this.value(value);
    } catch (error) {
      for (const offset of this.handles) dropReference(offset);
      if (error instanceof OverLimit) throw new RangeError(`${pathText(root, error.segments)}: ${error.what}`);
      if (error instanceof Refused) throw new TypeError(`${pathText(root, error.segments)}: ${error.what}`);
      if (error instanceof NotCloneable) {
        throw new TypeError(`${pathText(root, error.segments)}: ${error.what} could not be cloned (cannot be sent to another thread)`);
      }
      throw error;
    } finally {
      this.busy = false;
      this.forgetSeen();
    }
    return this.pos;
  }

  /** The index `o` was given in this encode, or -1. */
  private seenIndex(o: object): number {
    const small = this.seenSmall;
    const n = Math.min(this.nextIndex, SEEN_SMALL);
    for (let i = 0; i < n; i++) if (small[i] === o) return i;
    if (this.nextIndex <= SEEN_SMALL) return -1;
    return this.seen.get(o) ?? -1;
  }

  private remember(o: object): void {
    const index = this.nextIndex++;
    if (index < SEEN_SMALL) this.seenSmall[index] = o;
    else this.seen.set(o, index);
  }

  /** Drops the references to what was encoded (they must not be kept alive by the encoder). */
  private forgetSeen(): void {
    const n = Math.min(this.nextIndex, SEEN_SMALL);
    for (let i = 0; i < n; i++) this.seenSmall[i] = undefined;
    if (this.nextIndex > SEEN_SMALL) this.seen.clear();
  }

  private ensure(extra: number): void {
    if (this.pos + extra <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + extra));
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger;
    this.dv = new DataView(bigger.buffer, bigger.byteOffset, bigger.byteLength);
  }

  private u8(n: number): void {
    this.buf[this.pos++] = n;
  }

  private u32(n: number): void {
    this.dv.setUint32(this.pos, n, true);
    this.pos += 4;
  }

  private value(v: unknown): void {
    this.ensure(16);
    switch (typeof v) {
      case 'number':
        if ((v | 0) === v && !Object.is(v, -0)) {
          this.u8(Tag.Int32);
          this.dv.setInt32(this.pos, v, true);
          this.pos += 4;
        } else {
          this.u8(Tag.Float64);
          this.dv.setFloat64(this.pos, v, true);
          this.pos += 8;
        }
        return;
      case 'string':
        return this.string(v);
      case 'boolean':
        return this.u8(v ? Tag.True : Tag.False);
      case 'undefined':
        return this.u8(Tag.Undefined);
      case 'bigint':
        this.u8(Tag.BigInt);
        this.u8(v < 0n ? 1 : 0);
        return this.string((v < 0n ? -v : v).toString(16));
      case 'object':
        if (v === null) return this.u8(Tag.Null);
        return this.object(v);
      case 'function':
        throw new NotCloneable(`${describe(v)}()`);
      default:
        throw new NotCloneable(`${typeof v} ${String(v)}`);
    }
  }

  private string(s: string): void {
    const n = s.length;
    if (n < 256) {
      this.ensure(2 + n);
      const buf = this.buf;
      const start = this.pos;
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c > 0x7f) break;
        buf[start + 2 + i] = c;
      }
      if (i === n) {
        buf[start] = Tag.AsciiShort;
        buf[start + 1] = n;
        this.pos = start + 2 + n;
        return;
      }
    }
    // (One-byte strings answer isWellFormed() without a scan.)
    if (!s.isWellFormed()) return this.string16(s);
    this.ensure(5 + n * 3);
    this.u8(Tag.String);
    const written = this.buf.write(s, this.pos + 4, 'utf8');
    this.u32(written);
    this.pos += written;
  }

  /** A string with lone surrogates, which UTF-8 cannot carry: its UTF-16 code units as they are. */
  private string16(s: string): void {
    this.ensure(5 + s.length * 2);
    this.u8(Tag.String16);
    this.u32(s.length);
    this.pos += this.buf.write(s, this.pos, 'utf16le');
  }

  /** Opens a container level; past MAX_DEPTH the encode fails (the decoder could not follow). */
  private enter(): void {
    if (++this.depth > MAX_DEPTH) {
      throw new OverLimit(`nested ${this.depth} levels deep; a value sent to another thread may nest at most ${MAX_DEPTH} levels (arrays, objects, Maps, Sets, Errors inside each other)`);
    }
  }

  private object(o: object): void {
    const index = this.seenIndex(o);
    if (index >= 0) {
      this.u8(Tag.BackRef);
      return this.u32(index);
    }
    if (o instanceof SharedObject) {
      if (this.portable) throw new Refused(`${describeShared(o)}: shared objects live in one process's memory and cannot be sent to another machine (send plain values instead)`);
      // Checked before anything is written to the heap (retainForTransfer adds a reference).
      if (!SharedObject._hasBrand(o)) {
        const name = (Object.getPrototypeOf(o) as { constructor?: { name?: string } } | null)?.constructor?.name ?? 'object';
        throw new Refused(`a ${name} made from its prototype alone is not a shared object (build it with its constructor)`);
      }
      if (o._offset === this.self) {
        throw new Refused(
          `${this.selfName} itself: a shared object that holds itself is a reference cycle in shared memory, which is never freed. Send another object (an Event, a second queue), or keep the reference in the thread that has it`,
        );
      }
      this.u8(Tag.Handle);
      const offset = retainForTransfer(o);
      this.handles.push(offset);
      return this.u32(offset);
    }
    this.remember(o);
    if (Array.isArray(o)) return this.array(o);
    const proto = Object.getPrototypeOf(o);
    if (proto === Object.prototype || proto === null) return this.fields(o, Tag.Object);
    if (o instanceof Map) return this.map(o);
    if (o instanceof Set) return this.set(o);
    if (o instanceof Date) {
      this.u8(Tag.Date);
      this.dv.setFloat64(this.pos, o.getTime(), true);
      this.pos += 8;
      return;
    }
    if (o instanceof RegExp) {
      this.u8(Tag.RegExp);
      this.string(o.source);
      return this.string(o.flags);
    }
    if (o instanceof Error) return this.error(o);
    if (ArrayBuffer.isView(o)) return this.view(o);
    if (o instanceof ArrayBuffer) {
      this.u8(Tag.ArrayBuffer);
      return this.bytes(new Uint8Array(o));
    }
    if (o instanceof SharedArrayBuffer) throw new NotCloneable('a SharedArrayBuffer (use sharedArray() for shared memory that travels)');
    if (o instanceof Promise || o instanceof WeakMap || o instanceof WeakSet || o instanceof WeakRef) {
      throw new NotCloneable(`a ${proto.constructor.name}`);
    }
    if (o instanceof Number || o instanceof String || o instanceof Boolean || o instanceof BigInt) return this.boxed(o);
    // Any other class instance travels as its own enumerable fields, as structuredClone does.
    return this.fields(o, Tag.Object);
  }

  private array(a: unknown[]): void {
    this.enter();
    const at = this.pos;
    this.u8(Tag.Array);
    this.u32(a.length);
    for (let i = 0; i < a.length; i++) {
      const v = a[i];
      if (v === undefined && !(i in a)) {
        // A hole: the array travels as a SparseArray (the items so far are written alike).
        this.buf[at] = Tag.SparseArray;
        this.sparseRest(a, i);
        break;
      }
      try {
        this.value(v);
      } catch (error) {
        if (error instanceof NotCloneable) error.segments.unshift(pathSegment(i));
        throw error;
      }
    }
    this.depth--;
  }

  /**
   * The items of `a` from index `from` (a hole) on, missing ones as Holes runs. The indices
   * present come from Object.keys (ascending, before any other key), so an array with a few
   * items and a huge length costs its items, not its length.
   */
  private sparseRest(a: unknown[], from: number): void {
    let next = from;
    for (const key of Object.keys(a)) {
      const i = arrayIndex(key);
      if (i < 0) break;
      if (i < next) continue;
      if (i > next) this.holes(i - next);
      try {
        this.value(a[i]);
      } catch (error) {
        if (error instanceof NotCloneable) error.segments.unshift(pathSegment(i));
        throw error;
      }
      next = i + 1;
    }
    if (next < a.length) this.holes(a.length - next);
  }

  private holes(n: number): void {
    this.ensure(5);
    this.u8(Tag.Holes);
    this.u32(n);
  }

  private fields(o: object, tag: Tag): void {
    this.enter();
    this.keyValues(o, Object.keys(o), tag);
    this.depth--;
  }

  /** `tag`, the number of keys, then each key and its value in `o`. */
  private keyValues(o: object, keys: string[], tag: Tag): void {
    this.ensure(5); // (an Error's extra fields come after its cause: nothing reserved room)
    this.u8(tag);
    this.u32(keys.length);
    for (const key of keys) {
      this.string(key);
      try {
        this.value((o as Record<string, unknown>)[key]);
      } catch (error) {
        if (error instanceof NotCloneable) error.segments.unshift(pathSegment(key));
        throw error;
      }
    }
  }

  private map(m: Map<unknown, unknown>): void {
    this.enter();
    this.u8(Tag.Map);
    this.u32(m.size);
    for (const [k, v] of m) {
      try {
        this.value(k);
        this.value(v);
      } catch (error) {
        if (error instanceof NotCloneable) error.segments.unshift(`.get(${describe(k)})`);
        throw error;
      }
    }
    this.depth--;
  }

  private set(s: Set<unknown>): void {
    this.enter();
    this.u8(Tag.Set);
    this.u32(s.size);
    for (const v of s) {
      try {
        this.value(v);
      } catch (error) {
        if (error instanceof NotCloneable) error.segments.unshift('.<set item>');
        throw error;
      }
    }
    this.depth--;
  }

  private error(e: Error): void {
    this.enter();
    this.u8(Tag.Error);
    this.string(String(e.name));
    this.string(String(e.message));
    this.value(typeof e.stack === 'string' ? e.stack : undefined);
    const hasCause = Object.hasOwn(e, 'cause');
    this.value(hasCause);
    if (hasCause) {
      try {
        this.value(e.cause);
      } catch (error) {
        if (error instanceof NotCloneable) error.segments.unshift('.cause');
        throw error;
      }
    }
    // Extra own fields such as `code` or `errno` come along (written from the error itself: an
    // object collecting them would turn an own `__proto__` key into its prototype).
    const extra = Object.keys(e).filter((key) => key !== 'name' && key !== 'message' && key !== 'stack' && key !== 'cause');
    this.keyValues(e, extra, Tag.Object);
    this.depth--;
  }

  /**
   * A Number, String, Boolean or BigInt object: Boxed, then its primitive value (whose tag says
   * which). An object that only inherits from one of their prototypes travels as its fields.
   */
  private boxed(o: object): void {
    let primitive: unknown;
    try {
      if (o instanceof Number) primitive = Number.prototype.valueOf.call(o);
      else if (o instanceof String) primitive = String.prototype.valueOf.call(o);
      else if (o instanceof Boolean) primitive = Boolean.prototype.valueOf.call(o);
      else primitive = BigInt.prototype.valueOf.call(o);
    } catch {
      return this.fields(o, Tag.Object);
    }
    this.u8(Tag.Boxed);
    this.value(primitive);
  }

  private view(v: ArrayBufferView): void {
    if (v.buffer === heap().sab) return this.sharedView(v);
    if (v.buffer instanceof SharedArrayBuffer) {
      throw new NotCloneable('a view of a SharedArrayBuffer (use sharedArray() for shared memory that travels)');
    }
    const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    if (v instanceof DataView) {
      this.u8(Tag.DataView);
      return this.bytes(bytes);
    }
    const kind = typedArrayKinds.findIndex((T) => v instanceof T);
    if (kind < 0) throw new NotCloneable(`a ${v.constructor.name}`);
    // Node's Buffer is a Uint8Array subclass; it arrives as a Uint8Array, as with structuredClone.
    this.u8(Tag.TypedArray);
    this.u8(kind);
    this.bytes(bytes);
  }

  /** A sharedArray travels by reference: block, position and length, never its contents. */
  private sharedView(v: ArrayBufferView): void {
    if (this.portable) throw new Refused(`a sharedArray() ${v.constructor.name}: shared memory cannot be sent to another machine (send a copy: ${v.constructor.name}.from(it))`);
    const block = sharedViewBlock(v);
    if (block === undefined) throw new NotCloneable('a view of threadkit shared memory that sharedArray() did not return (send the array itself, not a subarray)');
    const kind = typedArrayKinds.findIndex((T) => v instanceof T);
    this.ensure(14);
    this.u8(Tag.SharedView);
    this.u8(kind);
    heap().retain(block);
    this.handles.push(block);
    this.u32(block);
    this.u32(v.byteOffset);
    this.u32(v.byteLength / (kind < 0 ? 1 : typedArrayKinds[kind]!.BYTES_PER_ELEMENT));
  }

  private bytes(bytes: Uint8Array): void {
    if (bytes.length > 0xffffffff) throw new OverLimit(`${bytes.length} bytes of binary data; a value sent to another thread may hold at most 4 GiB - 1 in one buffer`);
    this.ensure(4 + bytes.length);
    this.u32(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }
}

/** Node's Buffer has these (unlisted in its types): string decoding without argument parsing. */
interface FastSlices {
  latin1Slice(start: number, end: number): string;
  utf8Slice(start: number, end: number): string;
  ucs2Slice(start: number, end: number): string;
}

const KEY_CACHE_SIZE = 4096;
const KEY_CACHE_MAX_LENGTH = 32;
const keyCache: (string | undefined)[] = new Array(KEY_CACHE_SIZE).fill(undefined);

// ---- decoder ------------------------------------------------------------------------------

/**
 * A real error object (one that `util.types.isNativeError` and `Object.prototype.toString` know
 * as an error, as structuredClone makes) of `Class`'s prototype, without running `Class`'s own
 * constructor and without capturing a stack here (the sender's replaces it).
 */
function newError(Class: new (message?: string) => Error, message: string): Error {
  const limit = Error.stackTraceLimit;
  try {
    Error.stackTraceLimit = 0;
  } catch {
    // (A frozen Error: the capture costs a little time, nothing else.)
  }
  try {
    return Reflect.construct(Error, [message], Class) as Error;
  } finally {
    if (Error.stackTraceLimit !== limit) Error.stackTraceLimit = limit;
  }
}

class Decoder {
  private buf!: Buffer;
  private dv: DataView = new DataView(new ArrayBuffer(0));
  private pos = 0;
  private refs: unknown[] = [];
  /** Containers open around the value being read (the encoder wrote at most MAX_DEPTH). */
  private depth = 0;
  /**
   * The byte after the last shared object received (its in-flight reference taken over): a
   * failed decode's references are given back or dropped from here, not from `pos` (a handle
   * whose revive threw never took its reference over).
   */
  private received = 0;
  /** threadkit/testing failNextDecodes: fail after the first shared object is received, or at the end. */
  injectedFault = false;

  injectFault(): never {
    this.injectedFault = false;
    throw new TypeError('threadkit codec: the value could not be decoded (an injected fault: threadkit/testing failNextDecodes)');
  }

  decode(buf: Buffer, start: number): unknown {
    this.buf = buf;
    if (this.dv.buffer !== buf.buffer || this.dv.byteOffset !== buf.byteOffset || this.dv.byteLength !== buf.byteLength) this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.pos = start;
    this.received = start;
    this.depth = 0;
    // (New arrays rather than `length = 0`, a runtime call that costs more than the allocation.)
    if (this.refs.length !== 0) this.refs = [];
    const value = this.value();
    if (this.refs.length !== 0) this.refs = [];
    return value;
  }

  /**
   * After a decode of `buf` from `start` failed: drops the in-flight references of the handles
   * it had not reached (those before were adopted). Cannot happen for bytes the encoder wrote,
   * short of a receiving thread whose stack is nearly used up, or corrupt bytes.
   */
  dropUnread(buf: Buffer, start: number): void {
    if (this.refs.length !== 0) this.refs = [];
    try {
      new Scanner(buf, start, dropReference, this.received).value();
    } catch {
      // (Corrupt bytes: nothing more can be done.)
    }
  }

  /**
   * After a decode of `buf` from `start` failed: gives the bytes back a reference for each
   * handle it had read (adopted by a wrapper, or dropped because one existed), so that they
   * own all their handles again and can be decoded later or dropped. The handles read are
   * alive: their wrappers are still reachable (no finalizer runs inside this call).
   */
  retainRead(buf: Buffer, start: number): void {
    if (this.refs.length !== 0) this.refs = [];
    const h = heap();
    try {
      new Scanner(buf, start, (offset) => h.retain(offset), 0, this.received).value();
    } catch {
      // (Corrupt bytes: nothing more can be done.)
    }
  }

  private tooDeep(): never {
    throw new TypeError(`threadkit codec: corrupt data (nested more than ${MAX_DEPTH} levels deep at byte ${this.pos - 1})`);
  }

  private u32(): number {
    const n = this.dv.getUint32(this.pos, true);
    this.pos += 4;
    return n;
  }

  private value(): unknown {
    const buf = this.buf;
    const tag = buf[this.pos++] as Tag;
    switch (tag) {
      case Tag.Undefined:
        return undefined;
      case Tag.Null:
        return null;
      case Tag.False:
        return false;
      case Tag.True:
        return true;
      case Tag.Int32: {
        const n = this.dv.getInt32(this.pos, true);
        this.pos += 4;
        return n;
      }
      case Tag.Float64: {
        const n = this.dv.getFloat64(this.pos, true);
        this.pos += 8;
        return n;
      }
      case Tag.AsciiShort:
      case Tag.String:
      case Tag.String16:
        this.pos--;
        return this.string();
      case Tag.BigInt: {
        const negative = buf[this.pos++] === 1;
        const magnitude = BigInt(`0x${this.string()}`);
        return negative ? -magnitude : magnitude;
      }
      case Tag.Array: {
        if (++this.depth > MAX_DEPTH) this.tooDeep();
        const length = this.u32();
        const a: unknown[] = new Array(length);
        this.refs.push(a);
        for (let i = 0; i < length; i++) a[i] = this.value();
        this.depth--;
        return a;
      }
      case Tag.Object: {
        if (++this.depth > MAX_DEPTH) this.tooDeep();
        const o: Record<string, unknown> = {};
        this.refs.push(o);
        this.fieldsInto(o);
        this.depth--;
        return o;
      }
      case Tag.Map: {
        if (++this.depth > MAX_DEPTH) this.tooDeep();
        const m = new Map();
        this.refs.push(m);
        for (let n = this.u32(); n > 0; n--) {
          const k = this.value();
          m.set(k, this.value());
        }
        this.depth--;
        return m;
      }
      case Tag.Set: {
        if (++this.depth > MAX_DEPTH) this.tooDeep();
        const s = new Set();
        this.refs.push(s);
        for (let n = this.u32(); n > 0; n--) s.add(this.value());
        this.depth--;
        return s;
      }
      case Tag.SparseArray:
        return this.sparseArray();
      case Tag.Boxed: {
        const o = Object(this.value()) as object;
        this.refs.push(o);
        return o;
      }
      case Tag.Date: {
        const d = new Date(this.dv.getFloat64(this.pos, true));
        this.pos += 8;
        this.refs.push(d);
        return d;
      }
      case Tag.RegExp: {
        const source = this.string();
        const r = new RegExp(source, this.string());
        this.refs.push(r);
        return r;
      }
      case Tag.ArrayBuffer: {
        const ab = this.bytes().buffer;
        this.refs.push(ab);
        return ab;
      }
      case Tag.TypedArray: {
        const T = typedArrayKinds[buf[this.pos++]!]!;
        const bytes = this.bytes();
        const t = new T(bytes.buffer as ArrayBuffer, 0, bytes.length / T.BYTES_PER_ELEMENT);
        this.refs.push(t);
        return t;
      }
      case Tag.DataView: {
        const dv = new DataView(this.bytes().buffer);
        this.refs.push(dv);
        return dv;
      }
      case Tag.Error:
        return this.error();
      case Tag.Handle: {
        const obj = reviveHandle(this.u32());
        this.received = this.pos;
        if (this.injectedFault) this.injectFault();
        return obj;
      }
      case Tag.BackRef:
        return this.refs[this.u32()];
      case Tag.SharedView: {
        const T = typedArrayKinds[buf[this.pos++]!]!;
        const block = this.u32();
        const byteOffset = this.u32();
        const length = this.u32();
        const view = receiveSharedView(block, () => new T(heap().sab as unknown as ArrayBuffer, byteOffset, length));
        this.received = this.pos;
        this.refs.push(view);
        return view;
      }
      default:
        throw new TypeError(`threadkit codec: corrupt data (tag ${tag} at byte ${this.pos - 1})`);
    }
  }

  private string(): string {
    const buf = this.buf;
    const tag = buf[this.pos++];
    if (tag === Tag.AsciiShort) {
      const n = buf[this.pos++]!;
      const start = this.pos;
      this.pos += n;
      if (n < 16) {
        let s = '';
        for (let i = start; i < start + n; i++) s += String.fromCharCode(buf[i]!);
        return s;
      }
      return (buf as unknown as FastSlices).latin1Slice(start, start + n);
    }
    if (tag === Tag.String16) {
      const start = this.pos + 4;
      this.pos = start + 2 * this.u32();
      return (buf as unknown as FastSlices).ucs2Slice(start, this.pos);
    }
    const n = this.u32();
    const start = this.pos;
    this.pos += n;
    return (buf as unknown as FastSlices).utf8Slice(start, start + n);
  }

  private fieldsInto(o: Record<string, unknown>): void {
    for (let n = this.u32(); n > 0; n--) {
      const key = this.key();
      // An own `__proto__` key stays an own key (an assignment would set the prototype).
      if (key === '__proto__') defineField(o, key, this.value());
      else o[key] = this.value();
    }
  }

  /** An array with holes: items, and Holes runs that leave elements out. */
  private sparseArray(): unknown[] {
    if (++this.depth > MAX_DEPTH) this.tooDeep();
    const length = this.u32();
    const a: unknown[] = new Array(length);
    this.refs.push(a);
    for (let i = 0; i < length; ) {
      if (this.buf[this.pos] === Tag.Holes) {
        this.pos++;
        i += this.u32();
      } else {
        a[i++] = this.value();
      }
    }
    this.depth--;
    return a;
  }

  /**
   * An object key. Keys repeat (every record of an array has the same ones), and a string that
   * V8 has seen as a key makes property stores fast, so short ASCII keys come from a small cache
   * indexed by a hash of their bytes (checked byte by byte before use).
   */
  private key(): string {
    const buf = this.buf;
    if (buf[this.pos] !== Tag.AsciiShort || buf[this.pos + 1]! > KEY_CACHE_MAX_LENGTH) return this.string();
    const n = buf[this.pos + 1]!;
    const start = this.pos + 2;
    let hash = n;
    for (let i = start; i < start + n; i++) hash = (Math.imul(hash, 31) + buf[i]!) | 0;
    const slot = (hash >>> 0) & (KEY_CACHE_SIZE - 1);
    const cached = keyCache[slot];
    if (cached !== undefined && cached.length === n) {
      let same = true;
      for (let i = 0; i < n; i++) {
        if (cached.charCodeAt(i) !== buf[start + i]) {
          same = false;
          break;
        }
      }
      if (same) {
        this.pos = start + n;
        return cached;
      }
    }
    const key = this.string();
    keyCache[slot] = key;
    return key;
  }

  private bytes(): Uint8Array<ArrayBuffer> {
    const n = this.u32();
    const copy = new Uint8Array(n);
    copy.set(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return copy;
  }

  private error(): Error {
    if (++this.depth > MAX_DEPTH) this.tooDeep();
    const name = this.string();
    const message = this.string();
    // (hasOwn: a name such as 'constructor' or '__proto__' must not pick an inherited member.)
    const Class = Object.hasOwn(errorClasses, name) ? errorClasses[name]! : Error;
    const e = newError(Class, message);
    this.refs.push(e);
    // (Own even when the sender had none, as structuredClone leaves it.)
    Object.defineProperty(e, 'stack', { value: this.value(), writable: true, configurable: true, enumerable: false });
    if (this.value() === true) Object.defineProperty(e, 'cause', { value: this.value(), writable: true, configurable: true, enumerable: false });
    if (e.name !== name) Object.defineProperty(e, 'name', { value: name, writable: true, configurable: true, enumerable: false });
    this.pos++; // the Object tag of the extra fields
    // Defined, not assigned: an error class's prototype may have setters (and `__proto__`).
    for (let n = this.u32(); n > 0; n--) {
      const key = this.key();
      defineField(e, key, this.value());
    }
    this.depth--;
    return e;
  }
}

// ---- scanning (for dropping the handles inside bytes that will never be decoded) ------------

/** Calls `fn` with the offset of every handle inside an encoded value. */
export function forEachHandle(buf: Buffer, start: number, fn: (offset: number) => void): void {
  // Decoding is the simplest exact walk; handles found are reported instead of revived.
  const scanner = new Scanner(buf, start, fn);
  scanner.value();
}

class Scanner {
  /** Only handles whose tag lies in [from, to) are reported. */
  constructor(
    private buf: Buffer,
    private pos: number,
    private fn: (offset: number) => void,
    private from = 0,
    private to = Infinity,
  ) {}

  private reports(tagAt: number): boolean {
    return tagAt >= this.from && tagAt < this.to;
  }

  private u32(): number {
    const n = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return n;
  }

  private skipString(): void {
    const tag = this.buf[this.pos++];
    if (tag === Tag.AsciiShort) this.skip(this.buf[this.pos]! + 1);
    else if (tag === Tag.String16) this.skip(2 * this.u32());
    else this.skip(this.u32());
  }

  /** (Not `this.pos += this.u32()`: that reads `pos` before u32() moves it past the length.) */
  private skip(n: number): void {
    this.pos += n;
  }

  value(): void {
    const tag = this.buf[this.pos++] as Tag;
    switch (tag) {
      case Tag.Int32:
      case Tag.BackRef:
        this.pos += 4;
        return;
      case Tag.Float64:
      case Tag.Date:
        this.pos += 8;
        return;
      case Tag.AsciiShort:
      case Tag.String:
      case Tag.String16:
        this.pos--;
        return this.skipString();
      case Tag.BigInt:
        this.pos++;
        return this.skipString();
      case Tag.Boxed:
        return this.value();
      case Tag.Array:
      case Tag.Set:
        for (let n = this.u32(); n > 0; n--) this.value();
        return;
      case Tag.SparseArray:
        for (let n = this.u32(); n > 0; ) {
          if (this.buf[this.pos] === Tag.Holes) {
            this.pos++;
            n -= this.u32();
          } else {
            this.value();
            n--;
          }
        }
        return;
      case Tag.Map:
        for (let n = this.u32() * 2; n > 0; n--) this.value();
        return;
      case Tag.Object:
        for (let n = this.u32(); n > 0; n--) {
          this.skipString();
          this.value();
        }
        return;
      case Tag.RegExp:
        this.skipString();
        return this.skipString();
      case Tag.ArrayBuffer:
      case Tag.DataView:
        return this.skip(this.u32());
      case Tag.TypedArray:
        this.pos++;
        return this.skip(this.u32());
      case Tag.Error:
        this.skipString();
        this.skipString();
        this.value();
        if (this.buf[this.pos++] === Tag.True) this.value();
        return this.value();
      case Tag.Handle: {
        const offset = this.u32();
        if (this.reports(this.pos - 5)) this.fn(offset);
        return;
      }
      case Tag.SharedView: {
        this.pos++;
        const block = this.u32();
        this.pos += 8;
        if (this.reports(this.pos - 14)) this.fn(block);
        return;
      }
      default:
        return;
    }
  }
}

// ---- public entry points ----------------------------------------------------------------------

const encoder = new Encoder();
const decoder = new Decoder();

/**
 * The thread's encoder, or a new one when it is in use: a getter may itself send something
 * while we encode (a getter that submits a task), and that nested encode needs its own.
 */
function idleEncoder(): Encoder {
  return encoder.busy ? new Encoder() : encoder;
}

/**
 * Encodes `value`; `root` names it in errors (`args` gives "args[1].handler: … could not be
 * cloned"). The result is a view of a scratch buffer, valid until the next encode in this thread.
 * Every handle inside owns one in-flight reference until the bytes are decoded or dropped.
 * @throws TypeError naming the path of a value that cannot cross threads.
 */
export function encodeValue(value: unknown, root = 'value'): Uint8Array {
  return idleEncoder().encode(value, root);
}

/**
 * Encodes `value` straight into a new heap block of kind Bytes, after `headerBytes` bytes the
 * caller fills in; returns the block (the hot paths: task records, future outcomes).
 * @throws TypeError naming the path of a value that cannot cross threads (nothing allocated).
 */
export function encodeToBlock(h: Heap, value: unknown, root: string, headerBytes = 0, self = 0, selfName = ''): number {
  const enc = idleEncoder();
  const length = enc.encodeRaw(value, root, self, selfName);
  let block: number;
  try {
    block = h.alloc(headerBytes + length, Kind.Bytes);
  } catch (error) {
    dropEncoded(enc.buf, 0);
    throw error;
  }
  copyBytes(enc.buf, h.u8, block + headerBytes, length);
  return block;
}

/**
 * Encodes `value` into the thread's scratch buffer and returns that buffer: the bytes are its
 * first `encodedLength()`, valid until the next encode in this thread. For callers that copy
 * them at once: it saves the view `encodeValue` makes (~80 ns).
 * @throws TypeError naming the path of a value that cannot cross threads.
 */
export function encodeToScratch(value: unknown, root: string, self = 0, selfName = ''): Buffer {
  const enc = idleEncoder();
  scratchLength = enc.encodeRaw(value, root, self, selfName);
  return enc.buf;
}

let scratchLength = 0;

/** The length of what the last `encodeToScratch` wrote. */
export function encodedLength(): number {
  return scratchLength;
}

/**
 * Copies `length` bytes from the start of `from` to `to` at `at`: a loop for the small ones
 * (Buffer.copy costs ~300 ns of call overhead, the view TypedArray#set needs ~80 ns).
 */
export function copyBytes(from: Uint8Array, to: Uint8Array, at: number, length: number): void {
  // (Measured: the loop wins below ~48 bytes, the view and memcpy above.)
  if (length > 48) {
    to.set(from.subarray(0, length), at);
    return;
  }
  for (let i = 0; i < length; i++) to[at + i] = from[i]!;
}

/**
 * Encodes `value` for another process (RedisExecutor): fresh bytes that hold no handle.
 * @throws TypeError naming the path of a shared object, or of a value that cannot be cloned.
 */
export function encodePortable(value: unknown, root: string): Uint8Array {
  const enc = idleEncoder();
  enc.portable = true;
  try {
    return Uint8Array.prototype.slice.call(enc.encode(value, root));
  } finally {
    enc.portable = false;
  }
}

/**
 * Decodes bytes from another process (encodePortable's). Bytes that name a handle did not come
 * from encodePortable (a handle is an offset in the sender's heap): refused before anything is
 * revived.
 * @throws TypeError for such bytes, or for bytes that are not an encoded value.
 */
export function decodePortable(bytes: Uint8Array): unknown {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let handles = 0;
  try {
    forEachHandle(b, 0, () => handles++);
    if (handles === 0) return decoder.decode(b, 0);
  } catch (error) {
    throw new TypeError(`threadkit: a value received from another process could not be read (${error instanceof Error ? error.message : String(error)})`);
  }
  throw new TypeError('threadkit: a value received from another process names shared objects, which only exist in their own process');
}

/** "a Lock", "a Queue": a shared object as a message names it. */
function describeShared(o: object): string {
  const name = (Object.getPrototypeOf(o) as { constructor?: { name?: string } } | null)?.constructor?.name ?? 'shared object';
  return `${/^[AEIOU]/.test(name) ? 'an' : 'a'} ${name}`;
}

/** Encodes `value` into a fresh, independent Uint8Array. */
export function encodeToBytes(value: unknown, root = 'value'): Uint8Array {
  return Uint8Array.prototype.slice.call(encodeValue(value, root));
}

/** Decodes a value written by `encodeValue`, starting at byte `start` of `buf`. */
export function decodeValue(buf: Buffer | Uint8Array, start = 0): unknown {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  // Only a container can hold handles, or fail part-way: a lone value skips the guard (a try
  // around every decode costs ~8 ns, 4% of a short string's round trip).
  if (isContainer(b[start]!)) return decodeGuarded(b, start);
  return decoder.decode(b, start);
}

function isContainer(tag: number): boolean {
  return (tag >= Tag.Array && tag <= Tag.Set) || tag === Tag.Error || tag === Tag.SparseArray;
}

/** Decodes a container; if that fails part-way, the handles it had not reached are dropped. */
function decodeGuarded(b: Buffer, start: number): unknown {
  try {
    return decoder.decode(b, start);
  } catch (error) {
    decoder.dropUnread(b, start);
    throw error;
  }
}

/** Decodes to be injected as failures in this thread (threadkit/testing failNextDecodes). */
let injectedDecodeFaults = 0;

/** @internal threadkit/testing: the next `n` values this thread receives fail to decode. */
export function failNextDecodesHere(n: number): void {
  injectedDecodeFaults = n;
}

/**
 * Decodes a value received from another thread: a queue item, a future's outcome, a thread's
 * fields or error. With `keep`, a failed decode leaves the bytes owning every handle inside
 * them (the caller puts them back or drops them); without, it drops the handles it had not
 * reached, as decodeValue does.
 */
export function decodeReceived(buf: Buffer | Uint8Array, start: number, keep: boolean): unknown {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (injectedDecodeFaults > 0) {
    // Fails part-way, as a real failure would: after the first shared object inside is received.
    injectedDecodeFaults--;
    decoder.injectedFault = true;
  } else if (!isContainer(b[start]!)) {
    // A lone value holds at most one handle and cannot fail after receiving it (see decodeValue).
    return decoder.decode(b, start);
  }
  try {
    const value = decoder.decode(b, start);
    if (decoder.injectedFault) decoder.injectFault();
    return value;
  } catch (error) {
    decoder.injectedFault = false;
    if (keep) decoder.retainRead(b, start);
    else decoder.dropUnread(b, start);
    throw error;
  }
}

/** Drops the in-flight references of the handles inside bytes that will never be decoded. */
export function dropEncoded(buf: Buffer | Uint8Array, start = 0): void {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  forEachHandle(b, start, dropReference);
}
