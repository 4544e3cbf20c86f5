/**
 * The pool: 100k trivial tasks submitted, then all awaited (tasks/s), against piscina,
 * tinypool and CPython's ThreadPoolExecutor(2); a single task's round trip (submit, then await
 * its result, one at a time); and a CPU-bound map over 2 workers against 1.
 *
 * Run alone: `node --import tsx bench/pool.ts`.
 */

import { ThreadPoolExecutor } from 'threadkit';
import { type Row, isMain, runAlone, runPython } from './lib.js';

const TASKS = 100_000;
const ROUND_TRIPS = 5_000;
const FIXTURE = new URL('./fixtures/cpu.mjs', import.meta.url);
const CPU = { module: FIXTURE.href, name: 'countPrimes' };

const PYTHON = `
import time
from concurrent.futures import ThreadPoolExecutor
def echo(x): return x
with ThreadPoolExecutor(2) as pool:
    list(pool.map(echo, range(1000)))
    n = 100_000
    t0 = time.perf_counter()
    fs = [pool.submit(echo, i) for i in range(n)]
    for f in fs: f.result()
    print('tasks_per_s:', n / (time.perf_counter() - t0))
    m = 5000
    t0 = time.perf_counter()
    for i in range(m): pool.submit(echo, i).result()
    print('round_trip_us:', (time.perf_counter() - t0) / m * 1e6)
`;

/** Microseconds per task for `TASKS` tasks submitted at once, then all awaited. */
async function throughput(submitAll: (n: number) => Promise<unknown>[]): Promise<number> {
  await Promise.all(submitAll(2000)); // warm up
  let best = Infinity;
  for (let round = 0; round < 2; round++) {
    const t0 = performance.now();
    const results = await Promise.all(submitAll(TASKS));
    best = Math.min(best, (performance.now() - t0) / TASKS);
    if (results.length !== TASKS) throw new Error('lost tasks');
  }
  return best * 1000;
}

async function roundTrip(one: (i: number) => Promise<unknown>): Promise<number> {
  for (let i = 0; i < 500; i++) await one(i);
  const t0 = performance.now();
  for (let i = 0; i < ROUND_TRIPS; i++) await one(i);
  return ((performance.now() - t0) / ROUND_TRIPS) * 1000;
}

async function importOptional<T>(name: string): Promise<T | undefined> {
  try {
    return (await import(name)) as T;
  } catch {
    return undefined;
  }
}

function cpuMap(workers: number): number {
  const pool = new ThreadPoolExecutor({ maxWorkers: workers });
  const chunks = 8;
  const run = (): number => {
    const t0 = performance.now();
    const counts = [...pool.map(CPU, Array.from({ length: chunks }, (_, i) => i), Array(chunks).fill(2_000_000), Array(chunks).fill(chunks))];
    const total = (counts as number[]).reduce((a, b) => a + b, 0);
    if (total !== 148_933) throw new Error(`prime count ${total}, expected 148933`);
    return performance.now() - t0;
  };
  run();
  const best = Math.min(run(), run());
  pool.shutdown();
  return best;
}

export async function run(): Promise<Row[]> {
  const pool = new ThreadPoolExecutor({ maxWorkers: 2 });
  const echo = (x: number): number => x;
  const ours = await throughput((n) => Array.from({ length: n }, (_, i) => pool.submit(echo, i).resultAsync()));
  const oursTrip = await roundTrip((i) => pool.submit(echo, i).resultAsync());
  pool.shutdown();

  const rows: Row[] = [];
  type PiscinaModule = { Piscina: new (o: object) => { run(x: unknown): Promise<unknown>; destroy(): Promise<void> } };
  const piscina = await importOptional<PiscinaModule>('piscina');
  if (piscina) {
    const p = new piscina.Piscina({ filename: FIXTURE.href, minThreads: 2, maxThreads: 2 });
    const tasks = await throughput((n) => Array.from({ length: n }, (_, i) => p.run(i)));
    const trip = await roundTrip((i) => p.run(i));
    await p.destroy();
    rows.push({ group: 'pool', work: `${TASKS / 1000}k trivial tasks, submit all then await all (per task)`, unit: 'µs', threadkit: ours, anchorName: 'piscina', anchor: tasks, ratio: 'speedup', goal: { op: '>=', value: 10 } });
    rows.push({ group: 'pool', work: 'one task round trip (submit, await)', unit: 'µs', threadkit: oursTrip, anchorName: 'piscina', anchor: trip, ratio: 'speedup', note: 'goal ≤ 15 µs' });
  } else {
    rows.push({ group: 'pool', work: `${TASKS / 1000}k trivial tasks (per task)`, unit: 'µs', threadkit: ours, anchorName: 'piscina', anchor: undefined, note: 'piscina not installed' });
  }
  type TinypoolModule = { Tinypool: new (o: object) => { run(x: unknown): Promise<unknown>; destroy(): Promise<void> } };
  const tinypool = await importOptional<TinypoolModule>('tinypool');
  if (tinypool) {
    const p = new tinypool.Tinypool({ filename: FIXTURE.href, minThreads: 2, maxThreads: 2 });
    const tasks = await throughput((n) => Array.from({ length: n }, (_, i) => p.run(i)));
    await p.destroy();
    rows.push({ group: 'pool', work: `${TASKS / 1000}k trivial tasks (per task)`, unit: 'µs', threadkit: ours, anchorName: 'tinypool', anchor: tasks, ratio: 'speedup' });
  } else {
    rows.push({ group: 'pool', work: `${TASKS / 1000}k trivial tasks (per task)`, unit: 'µs', threadkit: ours, anchorName: 'tinypool', anchor: undefined, note: 'tinypool not installed' });
  }
  const python = runPython(PYTHON, 120_000);
  const pyTasks = python.ok ? python.values.get('tasks_per_s') : undefined;
  rows.push({ group: 'pool', work: `${TASKS / 1000}k trivial tasks (per task)`, unit: 'µs', threadkit: ours, anchorName: 'python3 TPE(2)', anchor: pyTasks === undefined ? undefined : 1e6 / pyTasks, ratio: 'speedup', note: python.ok ? undefined : python.note });
  rows.push({ group: 'pool', work: 'one task round trip (submit, result)', unit: 'µs', threadkit: oursTrip, anchorName: 'python3 TPE(2)', anchor: python.ok ? python.values.get('round_trip_us') : undefined, ratio: 'speedup' });

  const one = cpuMap(1);
  const two = cpuMap(2);
  rows.push({ group: 'pool', work: 'CPU-bound map (primes below 2M, 8 chunks), 2 workers', unit: 'µs', threadkit: two * 1000, anchorName: '1 worker', anchor: one * 1000, ratio: 'speedup', goal: { op: '>=', value: 1.9 } });
  return rows;
}

if (isMain(import.meta.url)) await runAlone(run);
