/**
 * Value codec throughput: one encode plus one decode of the same value, in ns. threadkit's
 * internal codec (the one that carries thread args, results and queue items) against msgpackr
 * (`pack`/`unpack`; a `Packr` with its defaults, which adds records and keeps
 * `structuredClone: false`; a `Packr` with `structuredClone: true`, the same semantics as
 * threadkit's: cycles, shared references, Map/Set/Date/RegExp/Error) and Node's
 * `v8.serialize`/`v8.deserialize` (the structured clone that postMessage uses).
 *
 * threadkit's codec is internal, so it is imported from the build (`npm run build` first).
 * Run alone: `node --import tsx bench/codec.ts`.
 */

import { deepStrictEqual } from 'node:assert';
import v8 from 'node:v8';
import { Packr, pack, unpack } from 'msgpackr';
import { decodeValue, encodeValue } from '../dist/shm/codec.js';
import { type Row, isMain, measureInterleaved, runAlone, sink } from './lib.js';

/** Per measurement; each codec is measured PASSES times, interleaved, and keeps its best. */
const MIN_MS = 80;
const PASSES = 3;

interface Sample {
  name: string;
  value: unknown;
}

function samples(): Sample[] {
  const records = Array.from({ length: 20 }, (_, i) => ({ id: i, name: `item-${i}`, tags: ['a', 'b'] }));
  const bytes = encodeValue(records).length;
  return [
    { name: 'small int', value: 42 },
    { name: 'short string', value: 'hello, world' },
    { name: 'small object', value: { id: 1, name: 'x', tags: ['a', 'b'] } },
    { name: `20 small records (${bytes} B encoded)`, value: records },
  ];
}

/**
 * A codec is given as a loop factory: each one is its own function literal, so the JIT keeps
 * separate feedback for each codec's calls instead of one megamorphic call site shared by all.
 * Every loop keeps the last result so the work cannot be dropped.
 */
interface Codec {
  name: string;
  roundTrip: (value: unknown) => unknown;
  loop: (value: unknown) => (n: number) => void;
}

const packr = new Packr();
const cloningPackr = new Packr({ structuredClone: true });

const threadkit: Codec = {
  name: 'threadkit',
  roundTrip: (v) => decodeValue(encodeValue(v)),
  loop: (v) => (n) => {
    let last: unknown;
    for (let i = 0; i < n; i++) last = decodeValue(encodeValue(v));
    sink.value = last;
  },
};

const anchors: Codec[] = [
  {
    name: 'msgpackr pack/unpack',
    roundTrip: (v) => unpack(pack(v)),
    loop: (v) => (n) => {
      let last: unknown;
      for (let i = 0; i < n; i++) last = unpack(pack(v));
      sink.value = last;
    },
  },
  {
    name: 'msgpackr Packr()',
    roundTrip: (v) => packr.unpack(packr.pack(v)),
    loop: (v) => (n) => {
      let last: unknown;
      for (let i = 0; i < n; i++) last = packr.unpack(packr.pack(v));
      sink.value = last;
    },
  },
  {
    name: 'msgpackr Packr structuredClone',
    roundTrip: (v) => cloningPackr.unpack(cloningPackr.pack(v)),
    loop: (v) => (n) => {
      let last: unknown;
      for (let i = 0; i < n; i++) last = cloningPackr.unpack(cloningPackr.pack(v));
      sink.value = last;
    },
  },
  {
    name: 'v8.serialize',
    roundTrip: (v) => v8.deserialize(v8.serialize(v)),
    loop: (v) => (n) => {
      let last: unknown;
      for (let i = 0; i < n; i++) last = v8.deserialize(v8.serialize(v));
      sink.value = last;
    },
  },
];

export function run(): Row[] {
  const rows: Row[] = [];
  const codecs = [threadkit, ...anchors];
  for (const sample of samples()) {
    for (const codec of codecs) deepStrictEqual(codec.roundTrip(sample.value), sample.value, `${codec.name} does not round-trip ${sample.name}`);
    const [ours, ...theirs] = measureInterleaved(codecs.map((codec) => codec.loop(sample.value)), { minMs: MIN_MS, passes: PASSES });
    anchors.forEach((anchor, i) => {
      rows.push({ group: 'codec', work: `${sample.name} encode+decode`, unit: 'ns', threadkit: ours, anchorName: anchor.name, anchor: theirs[i] });
    });
  }
  return rows;
}

if (isMain(import.meta.url)) await runAlone(run);
