/**
 * Queue throughput, items per second: one producer thread puts N small items, one consumer
 * thread gets them (and checks a sum, so no item can be lost or doubled unnoticed). Timed in the
 * main thread from the moment both threads pass a start Barrier to the consumer's last get.
 * Items: int32s, short ASCII strings (from a table of 1000, so the producer does not spend its
 * time building strings), small objects `{ id, name, tags: [..] }` (from a table too).
 *
 * threadkit's SimpleQueue and Queue (unbounded, and bounded to 1000 with taskDone per item, the
 * CPython worker idiom) against: CPython's queue.Queue / SimpleQueue between two threads (python3
 * in the same run); a raw one-way postMessage stream between two plain Workers (what a
 * message-passing queue costs); and a raw shared-memory single-producer single-consumer ring of
 * int32 between two plain Workers, both spinning (the limit: no encoding, no locks, no sleeps).
 *
 * Run alone: `node --import tsx bench/queue.ts`.
 */

import { Worker } from 'node:worker_threads';
import { Barrier, Queue, SimpleQueue, Thread } from 'threadkit';
import { type Row, isMain, runAlone, runPython } from './lib.js';

/** Items per measured run, per item kind; every configuration keeps its best of RUNS runs. */
const N: Record<Kind, number> = { int: 2_000_000, string: 1_000_000, object: 500_000 };
const RUNS = 3;
type Kind = 'int' | 'string' | 'object';
const KINDS: Kind[] = ['int', 'string', 'object'];

/** Self-contained (sent as source): builds the item table for a kind and its checksum function. */
const producer = (q: SimpleQueue<unknown>, n: number, kind: string, start: Barrier, bounded: boolean): number => {
  const table: unknown[] = [];
  for (let i = 0; i < 1000; i++) table.push(kind === 'int' ? i : kind === 'string' ? `item-${i}` : { id: i, name: 'x', tags: ['a', 'b'] });
  start.wait();
  if (kind === 'int') for (let i = 0; i < n; i++) q.put(i);
  else for (let i = 0; i < n; i++) q.put(table[i % 1000]);
  void bounded;
  return n;
};

const consumer = (q: Queue<unknown>, n: number, kind: string, start: Barrier, taskDone: boolean): number => {
  let sum = 0;
  start.wait();
  if (kind === 'int') {
    for (let i = 0; i < n; i++) {
      sum += q.get() as number;
      if (taskDone) q.taskDone();
    }
  } else if (kind === 'string') {
    for (let i = 0; i < n; i++) {
      sum += (q.get() as string).length;
      if (taskDone) q.taskDone();
    }
  } else {
    for (let i = 0; i < n; i++) {
      sum += (q.get() as { id: number }).id;
      if (taskDone) q.taskDone();
    }
  }
  return sum;
};

function expectedSum(kind: Kind, n: number): number {
  let sum = 0;
  for (let i = 0; i < n; i++) sum += kind === 'int' ? i : kind === 'string' ? `item-${i % 1000}`.length : i % 1000;
  return sum;
}

/** One run: returns items per second. */
function threadkitRun(make: () => Queue<unknown> | SimpleQueue<unknown>, kind: Kind, taskDone: boolean): number {
  const n = N[kind];
  const q = make();
  const start = new Barrier(3);
  const p = new Thread({ target: producer, args: [q, n, kind, start, taskDone], daemon: true, name: 'bench-producer' });
  const c = new Thread<number>({ target: consumer, args: [q, n, kind, start, taskDone], daemon: true, name: 'bench-consumer' });
  p.start();
  c.start();
  start.wait();
  const t0 = performance.now();
  c.join();
  const ms = performance.now() - t0;
  p.join();
  if (c.result !== expectedSum(kind, n)) throw new Error(`queue bench (${kind}): the consumer's sum ${c.result} is not ${expectedSum(kind, n)}`);
  if (taskDone && (q as Queue).unfinishedTasks !== 0) throw new Error('queue bench: unfinished tasks left');
  return (n / ms) * 1000;
}

function best(run: () => number): number {
  let top = 0;
  for (let i = 0; i < RUNS; i++) top = Math.max(top, run());
  return top;
}

// ---- raw anchors: plain Workers --------------------------------------------------------------------

/** One-way postMessage stream of ints between two Workers: items per second. */
async function postMessageRun(n: number): Promise<number> {
  const source = `
    const { workerData, parentPort } = require('node:worker_threads');
    const { port, role, n } = workerData;
    parentPort.once('message', () => {
      if (role === 'producer') {
        for (let i = 0; i < n; i++) port.postMessage(i);
      }
    });
    if (role === 'consumer') {
      let got = 0, sum = 0;
      port.on('message', (v) => {
        sum += v;
        if (++got === n) { parentPort.postMessage(sum); port.close(); }
      });
    }
    parentPort.postMessage('ready');`;
  const { port1, port2 } = new MessageChannel();
  const p = new Worker(source, { eval: true, workerData: { port: port1, role: 'producer', n }, transferList: [port1], execArgv: [] });
  const c = new Worker(source, { eval: true, workerData: { port: port2, role: 'consumer', n }, transferList: [port2], execArgv: [] });
  await Promise.all([p, c].map((w) => new Promise((resolve) => w.once('message', resolve))));
  const done = new Promise<number>((resolve) => c.once('message', resolve));
  const t0 = performance.now();
  p.postMessage('go');
  const sum = await done;
  const ms = performance.now() - t0;
  await Promise.all([p.terminate(), c.terminate()]);
  if (sum !== (n * (n - 1)) / 2) throw new Error(`postMessage bench: sum ${sum}`);
  return (n / ms) * 1000;
}

/** A single-producer single-consumer ring of int32 in a SharedArrayBuffer, both sides spinning. */
async function spscRun(n: number): Promise<number> {
  const SIZE = 1 << 16;
  const sab = new SharedArrayBuffer(4 * (SIZE + 32));
  const source = `
    const { workerData, parentPort } = require('node:worker_threads');
    const { sab, role, n, size } = workerData;
    const ring = new Int32Array(sab, 128, size);
    const ctl = new Int32Array(sab, 0, 32); // [0]: head (consumer), [16]: tail (producer), [8]: go
    parentPort.postMessage('ready');
    while (Atomics.load(ctl, 8) === 0);
    if (role === 'producer') {
      let tail = 0, headSeen = 0;
      for (let i = 0; i < n; i++) {
        while (tail - headSeen >= size) headSeen = Atomics.load(ctl, 0);
        ring[tail & (size - 1)] = i;
        tail++;
        if ((tail & 63) === 0 || i === n - 1) Atomics.store(ctl, 16, tail);
      }
    } else {
      let head = 0, tailSeen = 0, sum = 0;
      for (let i = 0; i < n; i++) {
        while (head === tailSeen) tailSeen = Atomics.load(ctl, 16);
        sum += ring[head & (size - 1)];
        head++;
        if ((head & 63) === 0) Atomics.store(ctl, 0, head);
      }
      parentPort.postMessage(sum);
    }`;
  const p = new Worker(source, { eval: true, workerData: { sab, role: 'producer', n, size: SIZE }, execArgv: [] });
  const c = new Worker(source, { eval: true, workerData: { sab, role: 'consumer', n, size: SIZE }, execArgv: [] });
  await Promise.all([p, c].map((w) => new Promise((resolve) => w.once('message', resolve))));
  const done = new Promise<number>((resolve) => c.once('message', resolve));
  const ctl = new Int32Array(sab, 0, 32);
  const t0 = performance.now();
  Atomics.store(ctl, 8, 1);
  const sum = await done;
  const ms = performance.now() - t0;
  await Promise.all([p.terminate(), c.terminate()]);
  if (sum !== (n * (n - 1)) / 2) throw new Error(`SPSC bench: sum ${sum}`);
  return (n / ms) * 1000;
}

async function bestAsync(run: () => Promise<number>): Promise<number> {
  let top = 0;
  for (let i = 0; i < RUNS; i++) top = Math.max(top, await run());
  return top;
}

// ---- Python ----------------------------------------------------------------------------------------

/** CPython: a producer thread puts N items, a consumer thread gets them; best of 3, items/s. */
const PYTHON = `
import queue, threading, time
def run(make, items, n, task_done):
    q = make()
    start = threading.Barrier(3)
    def producer():
        start.wait()
        put = q.put
        for i in range(n):
            put(items[i % 1000])
    def consumer():
        start.wait()
        get = q.get
        if task_done:
            done = q.task_done
            for _ in range(n):
                get(); done()
        else:
            for _ in range(n):
                get()
    threads = [threading.Thread(target=producer), threading.Thread(target=consumer)]
    for t in threads: t.start()
    start.wait()
    t0 = time.perf_counter()
    threads[1].join()
    t1 = time.perf_counter()
    threads[0].join()
    return n / (t1 - t0)
kinds = {
    'int': list(range(1000)),
    'string': ['item-%d' % i for i in range(1000)],
    'object': [{'id': i, 'name': 'x', 'tags': ['a', 'b']} for i in range(1000)],
}
for kind, items in kinds.items():
    for name, make, td in [('Queue', queue.Queue, False), ('SimpleQueue', queue.SimpleQueue, False), ('bounded', lambda: queue.Queue(1000), True)]:
        print('%s %s: %f' % (name, kind, max(run(make, items, 100_000, td) for _ in range(3))))
`;

// ---- the rows -------------------------------------------------------------------------------------

/** Rows carry µs per item so that lib.ts's ratio columns read as speed-ups. */
function usPerItem(itemsPerSecond: number | undefined): number | undefined {
  return itemsPerSecond === undefined ? undefined : 1e6 / itemsPerSecond;
}

function rate(itemsPerSecond: number | undefined): string {
  return itemsPerSecond === undefined ? '—' : `${(itemsPerSecond / 1e6).toFixed(2)} M items/s`;
}

export async function run(): Promise<Row[]> {
  const simple: Record<string, number> = {};
  const fifo: Record<string, number> = {};
  const bounded: Record<string, number> = {};
  for (const kind of KINDS) {
    simple[kind] = best(() => threadkitRun(() => new SimpleQueue(), kind, false));
    fifo[kind] = best(() => threadkitRun(() => new Queue(), kind, false));
    bounded[kind] = best(() => threadkitRun(() => new Queue(1000), kind, true));
  }
  const post = await bestAsync(() => postMessageRun(1_000_000));
  const spsc = await bestAsync(() => spscRun(20_000_000));
  const python = runPython(PYTHON, 120_000);
  const py = (name: string): number | undefined => (python.ok ? python.values.get(name) : undefined);
  const pyNote = python.ok ? `${python.version}, producer thread → consumer thread` : python.note;

  const rows: Row[] = [];
  const add = (work: string, tk: number, anchorName: string, anchor: number | undefined, goal?: number, note?: string): void => {
    rows.push({
      group: 'queue',
      work,
      unit: 'µs',
      threadkit: usPerItem(tk),
      anchorName,
      anchor: usPerItem(anchor),
      ratio: 'speedup',
      ...(goal === undefined ? {} : { goal: { op: '>=' as const, value: goal } }),
      note: `${rate(tk)} vs ${rate(anchor)}${note ? `; ${note}` : ''}`,
    });
  };
  for (const kind of KINDS) {
    add(
      `SimpleQueue ${kind}s, thread → thread (µs/item)`,
      simple[kind]!,
      'python3 SimpleQueue',
      py(`SimpleQueue ${kind}`),
      undefined,
      `${kind === 'int' ? `goal ≥ 3 M items/s: ${simple[kind]! >= 3e6 ? 'met' : 'MISSED'}; ` : ''}CPython's C SimpleQueue under the GIL runs one thread at a time: batches of put then get, no hand-off between cores`,
    );
    add(`Queue ${kind}s, thread → thread (µs/item)`, fifo[kind]!, 'python3 Queue', py(`Queue ${kind}`), 9, pyNote);
    add(`Queue ${kind}s, thread → thread (µs/item)`, fifo[kind]!, 'raw postMessage', post, kind === 'int' ? 4 : undefined, 'postMessage stream of ints between two Workers');
    add(`Queue(1000) ${kind}s + taskDone (µs/item)`, bounded[kind]!, 'python3 Queue(1000)', py(`bounded ${kind}`));
  }
  add('SimpleQueue ints vs the limit (µs/item)', simple.int!, 'raw SPSC int32 ring', spsc, undefined, 'the ring: two spinning Workers, no encoding, no locks');
  return rows;
}

if (isMain(import.meta.url)) await runAlone(run);
