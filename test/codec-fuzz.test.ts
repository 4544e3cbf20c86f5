/**
 * The value codec against `structuredClone`, by property: for arbitrary values (objects, arrays
 * with holes, Maps, Sets, Dates, RegExps, BigInts, typed arrays, boxed primitives, Errors,
 * cycles; strings with lone surrogates; keys such as `__proto__`), what one thread decodes is
 * what `structuredClone` gives, prototypes included. And the limits both sides share: a value
 * nested deeper than the decoder takes is refused in the sending thread, so no item is lost.
 *
 * The codec is internal: these tests reach `encodeValue` / `decodeValue` in the build, as
 * bench/codec.ts does (the same module instances that 'threadkit' loads).
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type ExceptHookArgs, Lock, PriorityQueue, Queue, Thread, setExcepthook, stackSize } from 'threadkit';
import { MAX_DEPTH, decodeValue, dropEncoded, encodeToBytes, encodeValue } from '../dist/shm/codec.js';

/** Waits in threads are bounded, so that a failing test cannot hang the suite. */
const LONG = 20_000;

// ---- arbitraries ------------------------------------------------------------------------------

/** One unit of a string: any code point, a lone surrogate half, or ASCII. */
const unit = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) },
  { weight: 2, arbitrary: fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)) },
  { weight: 3, arbitrary: fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 1 }) },
);

/** Short strings, and long ones (past the codec's short-ASCII path) with the same tails. */
const text = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit, maxLength: 12 }) },
  { weight: 1, arbitrary: fc.tuple(fc.string({ unit, maxLength: 4 }), fc.integer({ min: 200, max: 400 })).map(([s, n]) => 'k'.repeat(n) + s) },
);

/** Object keys: the ones with meaning on Object.prototype or in arrays, and arbitrary text. */
const key = fc.oneof(
  fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty', 'length', '0', '1', '-1', '4294967295', 'name', 'message', 'stack', 'cause', ''),
  text,
);

const number = fc.oneof(fc.integer(), fc.double(), fc.constantFrom(-0, 0, NaN, Infinity, -Infinity, 2 ** 31, -(2 ** 31), 2 ** 31 - 1, 2 ** 53, Number.MIN_VALUE));

const regexp = fc
  .tuple(fc.constantFrom('a+b', '\\d{2,}', '[^]*', '(?<x>.)\\k<x>', '\ud83d', 'ü+', '^$', '', '\\/', '[\\ud800-\\udfff]'), fc.subarray(['d', 'g', 'i', 'm', 's', 'y']), fc.boolean(), fc.nat(5))
  .map(([source, flags, unicode, lastIndex]) => {
    const r = new RegExp(source, flags.join('') + (unicode ? 'u' : ''));
    r.lastIndex = lastIndex;
    return r;
  });

const typedArray = fc.oneof(
  fc.int8Array(), fc.uint8Array(), fc.uint8ClampedArray(), fc.int16Array(), fc.uint16Array(), fc.int32Array(), fc.uint32Array(),
  fc.float32Array(), fc.float64Array(), fc.bigInt64Array(), fc.bigUint64Array(),
  // A view into part of a larger buffer.
  fc.uint8Array({ minLength: 4, maxLength: 20 }).map((a) => new Uint16Array(a.buffer, 2, (a.length - 2) >> 1)),
  fc.uint8Array({ maxLength: 16 }).map((a) => a.buffer),
  fc.uint8Array({ maxLength: 16 }).map((a) => new DataView(a.buffer)),
);

const boxed = fc.oneof(
  number.map((n) => new Number(n)),
  text.map((s) => new String(s)),
  fc.boolean().map((b) => new Boolean(b)),
  fc.bigInt().map((b) => Object(b) as object),
);

const leaf = fc.oneof(
  number,
  text,
  fc.bigInt(),
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.date({ noInvalidDate: false }),
  regexp,
  typedArray,
  boxed,
);

/** A class instance crosses as a plain object of its own enumerable fields. */
class Point {
  constructor(
    public x: unknown,
    public y: unknown,
  ) {}
  get sum(): number {
    return Number(this.x) + Number(this.y);
  }
}

const errorClasses = [Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError];
const NO_CAUSE = Symbol('no cause');

const { value } = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small', maxDepth: 5 }, leaf, tie('container')),
  container: fc.oneof(
    fc.array(tie('value'), { maxLength: 5 }),
    fc.sparseArray(tie('value'), { maxLength: 12, maxNumElements: 4 }),
    // One item far out: the array's length is not its cost.
    fc.tuple(tie('value'), fc.integer({ min: 1000, max: 2 ** 32 - 2 })).map(([v, at]) => {
      const a: unknown[] = [];
      a[at] = v;
      return a;
    }),
    fc.dictionary(key, tie('value'), { maxKeys: 5, noNullPrototype: false }),
    fc.array(fc.tuple(tie('value'), tie('value')), { maxLength: 4 }).map((entries) => new Map(entries)),
    fc.array(tie('value'), { maxLength: 4 }).map((items) => new Set(items)),
    fc.tuple(fc.constantFrom(...errorClasses), text, fc.option(tie('value'), { nil: NO_CAUSE })).map(([Class, message, cause]) =>
      cause === NO_CAUSE ? new Class(message) : new Class(message, { cause }),
    ),
    fc.tuple(tie('value'), tie('value')).map(([x, y]) => new Point(x, y)),
    // A cycle and a shared sub-value.
    tie('value').map((v) => {
      const o: Record<string, unknown> = { v, again: v };
      o.self = o;
      return o;
    }),
  ),
}));

/** fc.anything with every kind it can make, our keys and our strings. */
const anything = fc.anything({
  key,
  maxDepth: 4,
  maxKeys: 5,
  stringUnit: unit,
  withBigInt: true,
  withBoxedValues: true,
  withDate: true,
  withMap: true,
  withSet: true,
  withNullPrototype: true,
  withObjectString: true,
  withTypedArray: true,
  withSparseArray: true,
});

// ---- checks -----------------------------------------------------------------------------------

/** Every Error and Date inside `v`, in a fixed walk order (the same for two deep-equal values). */
function errorsAndDates(v: unknown, out: (Error | Date)[] = [], seen = new Set<unknown>()): (Error | Date)[] {
  if (typeof v !== 'object' || v === null || seen.has(v)) return out;
  seen.add(v);
  if (v instanceof Date) out.push(v);
  if (v instanceof Error) {
    out.push(v);
    if (Object.hasOwn(v, 'cause')) errorsAndDates(v.cause, out, seen);
  }
  if (v instanceof Map) for (const [k, x] of v) errorsAndDates(x, errorsAndDates(k, out, seen), seen);
  else if (v instanceof Set) for (const x of v) errorsAndDates(x, out, seen);
  else if (!ArrayBuffer.isView(v)) for (const k of Object.keys(v)) errorsAndDates((v as Record<string, unknown>)[k], out, seen);
  return out;
}

/**
 * `actual` deep-equals `structuredClone(original)`, prototypes included (deepStrictEqual
 * compares them). Errors also keep their stack and whether they have a cause, which
 * deepStrictEqual does not look at; and an invalid Date is equal to an invalid Date, which
 * deepStrictEqual denies (it compares their NaN times with !==).
 */
function assertLikeStructuredClone(actual: unknown, expected: unknown): void {
  const a = errorsAndDates(actual);
  const e = errorsAndDates(expected);
  assert.equal(a.length, e.length, 'errors and dates inside');
  for (const [i, got] of a.entries()) {
    const want = e[i]!;
    assert.equal(Object.getPrototypeOf(got), Object.getPrototypeOf(want), `error or date ${i}: prototype`);
    if (got instanceof Date) {
      assert.ok(Object.is(got.getTime(), (want as Date).getTime()), `date ${i}: ${got.getTime()} instead of ${(want as Date).getTime()}`);
      if (Number.isNaN(got.getTime())) got.setTime((want as Date).setTime(-1));
      continue;
    }
    const error = got as Error;
    const wanted = want as Error;
    assert.equal(error.name, wanted.name, `error ${i}: name`);
    assert.equal(error.message, wanted.message, `error ${i}: message`);
    assert.equal(error.stack, wanted.stack, `error ${i}: stack`);
    assert.equal(Object.hasOwn(error, 'cause'), Object.hasOwn(wanted, 'cause'), `error ${i}: has a cause`);
  }
  assert.deepStrictEqual(actual, expected);
}

function roundTrip(v: unknown): unknown {
  return decodeValue(encodeValue(v));
}

// ---- properties -------------------------------------------------------------------------------

describe('codec fuzz: what arrives is what structuredClone gives', () => {
  it('decodeValue(encodeValue(v)) deep-equals structuredClone(v) (objects, sparse arrays, Maps, Sets, Dates, RegExps, BigInts, typed arrays, boxed values, Errors, cycles)', () => {
    fc.assert(
      fc.property(value, (v) => {
        assertLikeStructuredClone(roundTrip(v), structuredClone(v));
      }),
      { numRuns: 1500 },
    );
  });

  it('the same for fc.anything values (every kind it makes, null prototypes, __proto__ keys)', () => {
    fc.assert(
      fc.property(anything, (v) => {
        assertLikeStructuredClone(roundTrip(v), structuredClone(v));
      }),
      { numRuns: 1500 },
    );
  });

  it('strings arrive exactly, lone surrogates included: as values, object keys, Map keys and values, error messages and RegExp sources, short and long', () => {
    fc.assert(
      fc.property(text, (s) => {
        assert.equal(roundTrip(s), s);
        const back = roundTrip({ o: { [s]: s }, m: new Map([[s, [s]]]), e: new Error(s), r: new RegExp(s.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&')) }) as {
          o: Record<string, unknown>;
          m: Map<string, string[]>;
          e: Error;
          r: RegExp;
        };
        assert.deepEqual(Object.keys(back.o), [s]);
        assert.equal(back.o[s], s);
        assert.deepEqual([...back.m.keys()], [s]);
        assert.equal(back.m.get(s)![0], s);
        assert.equal(back.e.message, s);
        assert.equal(back.r.source, new RegExp(s.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&')).source);
      }),
      { numRuns: 1500 },
    );
    for (const s of ['\ud83d', '\udc00', 'a\ud83d', '\ud83d\ud83d', '\udfff\ud800', 'ü\ud83d', '𝄞\ud834', 'x'.repeat(300) + '\ud800']) {
      assert.equal(roundTrip(s), s, JSON.stringify(s));
    }
  });

  it('an own __proto__ key stays an own data property: it never becomes the received object\'s prototype (also in arrays, Maps, errors, null-prototype objects)', () => {
    const polluted = JSON.parse('{"__proto__": {"admin": true}, "name": "bob"}') as Record<string, unknown>;
    const back = roundTrip(polluted) as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(back), Object.prototype);
    assert.equal(back.admin, undefined);
    assert.deepEqual(Object.keys(back), ['__proto__', 'name']);
    assert.deepEqual(Object.getOwnPropertyDescriptor(back, '__proto__'), { value: { admin: true }, writable: true, enumerable: true, configurable: true });
    assertLikeStructuredClone(back, structuredClone(polluted));
    assertLikeStructuredClone(roundTrip([polluted, new Map([[1, polluted]])]), structuredClone([polluted, new Map([[1, polluted]])]));
    const bare = Object.create(null) as Record<string, unknown>;
    Object.defineProperty(bare, '__proto__', { value: 5, enumerable: true, writable: true, configurable: true });
    assertLikeStructuredClone(roundTrip(bare), structuredClone(bare));
    // An error's extra own fields come along as own fields too (structuredClone drops them).
    const error = new TypeError('e') as TypeError & Record<string, unknown>;
    Object.defineProperty(error, '__proto__', { value: { admin: true }, enumerable: true, writable: true, configurable: true });
    error.code = 'E_X';
    const eBack = roundTrip(error) as TypeError & Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(eBack), TypeError.prototype);
    assert.equal(eBack.admin, undefined);
    assert.deepEqual(Object.getOwnPropertyDescriptor(eBack, '__proto__')?.value, { admin: true });
    assert.equal(eBack.code, 'E_X');
    // An error named like an Object.prototype member comes back as an Error, not an Object.
    for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
      const named = new Error('n');
      named.name = name;
      const got = roundTrip(named) as Error;
      assert.equal(Object.getPrototypeOf(got), Error.prototype, name);
      assert.equal(got.name, name);
    }
    assert.equal(({} as Record<string, unknown>).admin, undefined, 'Object.prototype untouched');
  });

  it('values sent to a thread through a Queue and back arrive as structuredClone gives them (property, 100 runs)', () => {
    const inbox = new Queue<unknown>();
    const outbox = new Queue<unknown>();
    const echo = new Thread({
      target: (input: Queue<unknown>, output: Queue<unknown>, timeout: number) => {
        for (;;) {
          const message = input.get({ timeout }) as unknown[] | 'stop';
          if (message === 'stop') return;
          // The item alone: numbers and strings take the queue's own paths, the rest the codec.
          output.put(message[0]);
        }
      },
      args: [inbox, outbox, LONG],
    });
    echo.start();
    try {
      fc.assert(
        fc.property(fc.oneof(value, text, anything), (v) => {
          inbox.put([v]);
          assertLikeStructuredClone(outbox.get({ timeout: LONG }), structuredClone(v));
        }),
        { numRuns: 100 },
      );
    } finally {
      inbox.put('stop');
      echo.join();
    }
    // PriorityQueue keeps strings and [priority, text] items as sort keys: they arrive exactly too.
    const strings = new PriorityQueue<string>();
    for (const item of ['\ud83d', 'b', 'a\udc00']) strings.put(item);
    assert.deepEqual([strings.get(), strings.get(), strings.get()], ['a\udc00', 'b', '\ud83d']);
    const pairs = new PriorityQueue<[number, string]>();
    for (const item of [[2, '\ud800'], [1, 'x\udfff']] as [number, string][]) pairs.put(item);
    assert.deepEqual([pairs.get(), pairs.get()], [[1, 'x\udfff'], [2, '\ud800']]);
  });

  it('bytes that fail to decode part-way drop the references of the shared objects not yet received (no leak)', () => {
    const first = new Lock();
    const last = new Lock();
    const count = (lock: Lock): number => lock._heap.refCount(lock._offset);
    const before = [count(first), count(last)];
    // The byte that differs between the two encodings is the boolean's tag: make it invalid.
    const bytes = encodeToBytes([first, true, last]);
    const other = encodeToBytes([first, false, last]);
    const at = bytes.findIndex((b, i) => b !== other[i]);
    dropEncoded(other);
    assert.deepEqual([count(first), count(last)], [before[0]! + 1, before[1]! + 1], 'in flight');
    bytes[at] = 0xee;
    assert.throws(() => decodeValue(bytes), /corrupt data/);
    assert.deepEqual([count(first), count(last)], before, 'the first was received (this thread holds it already), the last dropped');
  });
});

// ---- depth ------------------------------------------------------------------------------------

type Kind = 'array' | 'sparse' | 'object' | 'map' | 'mapKey' | 'set' | 'error' | 'mixed';
const KINDS: Kind[] = ['array', 'sparse', 'object', 'map', 'mapKey', 'set', 'error', 'mixed'];

/** `levels` containers of one kind inside each other, around the string 'leaf'. */
function nest(kind: Kind, levels: number): unknown {
  let v: unknown = 'leaf';
  for (let i = 0; i < levels; i++) {
    const k = kind === 'mixed' ? KINDS[i % 7]! : kind;
    if (k === 'array') v = [v];
    else if (k === 'sparse') v = [, v]; // eslint-disable-line no-sparse-arrays
    else if (k === 'object') v = { a: v };
    else if (k === 'map') v = new Map([[1, v]]);
    else if (k === 'mapKey') v = new Map([[v, 1]]);
    else if (k === 'set') v = new Set([v]);
    else v = new Error('e', { cause: v });
  }
  return v;
}

/** The number of containers around 'leaf' (a loop: a deep value must not exhaust the test's stack). */
function levelsOf(v: unknown): number {
  let levels = 0;
  while (v !== 'leaf') {
    levels++;
    if (Array.isArray(v)) v = v.length === 2 ? v[1] : v[0];
    else if (v instanceof Map) v = v.keys().next().value === 1 ? v.get(1) : v.keys().next().value;
    else if (v instanceof Set) v = v.values().next().value;
    else if (v instanceof Error) v = v.cause;
    else if (typeof v === 'object' && v !== null && 'a' in v) v = v.a;
    else throw new Error(`not a nest: ${String(v)} after ${levels} levels`);
  }
  return levels;
}

describe('codec limits: the sender is refused what the receiver could not take', () => {
  it('a 6,000-deep array put into a Queue raises RangeError at put, naming the path and the limit; the queue and a Lock inside are unchanged', () => {
    const queue = new Queue<unknown>();
    queue.put('before');
    const lock = new Lock();
    const references = lock._heap.refCount(lock._offset);
    assert.throws(
      () => queue.put([lock, nest('array', 6000)]),
      (error: unknown) => {
        assert.ok(error instanceof RangeError, `a RangeError, got ${String(error)}`);
        assert.match(error.message, /^item\[1\]\[0\]\[0\]/, 'the path from the item');
        assert.match(error.message, new RegExp(`nested ${MAX_DEPTH + 1} levels deep; .*at most ${MAX_DEPTH} levels`));
        return true;
      },
    );
    assert.equal(queue.qsize(), 1, 'nothing was added');
    assert.equal(lock._heap.refCount(lock._offset), references, 'the lock\'s in-flight reference was dropped');
    assert.equal(queue.get(), 'before');
    assert.throws(() => encodeValue(nest('object', MAX_DEPTH + 1), 'value'), /^RangeError: value\.a\.a\.a.*…\.a\.a\.a\.a: nested 1001 levels deep/);
    assert.throws(() => encodeValue(new Map([['k', nest('set', MAX_DEPTH)]]), 'args'), /^RangeError: args\.get\("k"\)\.<set item>/);
  });

  it('a thread that puts a too-deep value gets the RangeError at its put: the item before it stays, nothing is lost or leaked', () => {
    const queue = new Queue<unknown>();
    const lock = new Lock();
    const count = (): number => lock._heap.refCount(lock._offset);
    // The thread's own wrapper of the lock holds a reference until that isolate lets it go:
    // a thread that only receives the lock gives the baseline.
    const receiver = new Thread({ target: (_held: Lock) => undefined, args: [lock] });
    receiver.start();
    receiver.join();
    const baseline = count();
    const t = new Thread<string[]>({
      target: (q: Queue<unknown>, held: Lock) => {
        q.put('first');
        let v: unknown = 'leaf';
        for (let i = 0; i < 6000; i++) v = [v];
        const errors: string[] = [];
        // Twenty refused puts: an in-flight reference kept by each would show as twenty.
        for (let i = 0; i < 20; i++) {
          try {
            q.put([held, v]);
            errors.push('put succeeded');
          } catch (error) {
            errors.push(`${(error as Error).name}: ${(error as Error).message}`);
          }
        }
        return errors;
      },
      args: [queue, lock],
    });
    t.start();
    t.join();
    assert.equal(t.result!.length, 20);
    for (const error of t.result!) assert.match(error, /^RangeError: item\[1\]\[0\].*nested 1001 levels deep/);
    assert.equal(queue.qsize(), 1);
    assert.equal(queue.get(), 'first');
    assert.ok(count() <= baseline, `references: ${count()}, after a thread that only received the lock: ${baseline}`);
  });

  it(`values ${MAX_DEPTH} levels deep (each container kind) cross main → thread → main through Queues, on the smallest thread stack`, () => {
    const previous = stackSize(32768); // the smallest size threadkit accepts (threads get 1 MiB)
    const inbox = new Queue<unknown>();
    const outbox = new Queue<unknown>();
    const t = new Thread({
      target: (input: Queue<unknown>, output: Queue<unknown>, n: number, timeout: number) => {
        for (let i = 0; i < n; i++) output.put(input.get({ timeout }));
      },
      args: [inbox, outbox, KINDS.length, LONG],
    });
    try {
      t.start();
    } finally {
      stackSize(previous);
    }
    try {
      for (const kind of KINDS) {
        inbox.put(nest(kind, MAX_DEPTH));
        assert.equal(levelsOf(outbox.get({ timeout: LONG })), MAX_DEPTH, kind);
      }
    } finally {
      t.join();
    }
  });

  it('a thread target returning a too-deep value fails the thread through the excepthook (join() does not throw); one level less comes back', () => {
    const reports: ExceptHookArgs[] = [];
    setExcepthook((args) => reports.push(args));
    try {
      const make = (levels: number): unknown => {
        let v: unknown = 'leaf';
        for (let i = 0; i < levels; i++) v = [v];
        return v;
      };
      const tooDeep = new Thread({ target: make, args: [6000] });
      tooDeep.start();
      tooDeep.join(); // does not throw
      assert.equal(reports.length, 1, 'one report');
      const { excType, excValue, thread } = reports[0]!;
      assert.equal(thread, tooDeep);
      assert.equal(excType, 'RangeError');
      assert.match((excValue as Error).message, new RegExp(`^thread result\\.result\\[0\\].*nested ${MAX_DEPTH + 1} levels deep; .*at most ${MAX_DEPTH} levels`));
      assert.equal(tooDeep.result, undefined);
      // The result travels inside the thread's fields (one level): MAX_DEPTH - 1 levels come back.
      const fits = new Thread({ target: make, args: [MAX_DEPTH - 1] });
      fits.start();
      fits.join();
      assert.equal(reports.length, 1, 'no new report');
      assert.equal(levelsOf(fits.result), MAX_DEPTH - 1);
    } finally {
      setExcepthook(undefined);
    }
  });
});
