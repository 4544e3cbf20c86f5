/**
 * Timelines (startTrace / stopTrace, THREADKIT_TRACE): the Chrome Trace Event JSON checked
 * against the format (every span is whole, every track is named, every flow arrow starts and
 * ends on a span), and against what happened: a wait on a held Lock names the holder and gets
 * an arrow from the release that woke it; pool tasks are spans named by their function; the
 * flight recorder keeps the last events of each thread. THREADKIT_TRACE in a child process that
 * ends by itself, and in one that hangs (the watchdog writes the trace).
 */

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Barrier, Event, Lock, Queue, Thread, ThreadError, ThreadPoolExecutor, isTracing, startTrace, stopTrace } from 'threadkit';
import { untilWaiting } from './helpers/waiting.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface ChromeEvent {
  ph: string;
  name: string;
  cat?: string;
  pid: number;
  tid?: number;
  ts?: number;
  dur?: number;
  id?: number;
  args?: Record<string, unknown>;
}

/** The format's rules, as a viewer relies on them. Returns the events by kind. */
function checkFormat(json: unknown): { spans: ChromeEvent[]; names: Map<number, string>; flows: [ChromeEvent, ChromeEvent][]; counters: ChromeEvent[] } {
  const parsed = JSON.parse(JSON.stringify(json)) as { traceEvents: ChromeEvent[] };
  assert.ok(Array.isArray(parsed.traceEvents), 'traceEvents is an array');
  const names = new Map<number, string>();
  for (const e of parsed.traceEvents) if (e.ph === 'M' && e.name === 'thread_name') names.set(e.tid!, String(e.args!.name));
  const spans = parsed.traceEvents.filter((e) => e.ph === 'X');
  for (const s of spans) {
    assert.ok(typeof s.ts === 'number' && s.ts >= 0 && typeof s.dur === 'number' && s.dur >= 0, `a whole span: ${JSON.stringify(s)}`);
    assert.ok(names.has(s.tid!), `track ${s.tid} has a thread_name`);
  }
  assert.equal(parsed.traceEvents.filter((e) => e.ph === 'B' || e.ph === 'E').length, 0, 'no open begin/end pairs: spans are complete events');
  const on = (e: ChromeEvent): boolean => spans.some((s) => s.tid === e.tid && s.ts! <= e.ts! && e.ts! <= s.ts! + s.dur!);
  const starts = new Map(parsed.traceEvents.filter((e) => e.ph === 's').map((e) => [e.id!, e]));
  const flows: [ChromeEvent, ChromeEvent][] = [];
  for (const f of parsed.traceEvents.filter((e) => e.ph === 'f')) {
    const s = starts.get(f.id!);
    assert.ok(s !== undefined, `flow ${f.id} has its start`);
    assert.ok(on(s) && on(f), `flow ${f.id} starts and ends on spans`);
    assert.ok(s.ts! <= f.ts!, `flow ${f.id} goes forward in time`);
    flows.push([s, f]);
  }
  assert.equal(starts.size, flows.length, 'every flow start has its end');
  return { spans, names, flows, counters: parsed.traceEvents.filter((e) => e.ph === 'C') };
}

/** Two threads take turns on a lock, each holding it while the other sleeps on it. */
function contend(lock: Lock, rounds: number): Thread[] {
  const both = new Barrier(2);
  const threads = ['trace-a', 'trace-b'].map(
    (name) =>
      new Thread({
        name,
        target: (l: Lock, n: number, both: Barrier) => {
          const until = (ms: number): void => {
            const end = performance.now() + ms;
            while (performance.now() < end);
          };
          both.wait(); // (both running: they overlap)
          for (let i = 0; i < n; i++) {
            l.acquire();
            until(1);
            l.release();
          }
        },
        args: [lock, rounds, both],
      }),
  );
  for (const t of threads) t.start();
  for (const t of threads) t.join();
  return threads;
}

describe('startTrace / stopTrace', () => {
  it('a wait on a held Lock is a span naming the lock and its holder, with an arrow from the release that woke it', () => {
    startTrace();
    contend(new Lock(), 20);
    const trace = stopTrace();
    assert.equal(isTracing(), false);
    assert.ok(trace.events > 0);
    const { spans, names, flows } = checkFormat(trace.toJSON());
    assert.ok([...names.values()].includes('trace-a') && [...names.values()].includes('trace-b'), `tracks: ${[...names.values()].join(', ')}`);
    const lockWaits = spans.filter((s) => s.cat === 'wait' && s.name === 'Lock');
    assert.ok(lockWaits.length > 0, 'the threads waited on the lock');
    for (const w of lockWaits) {
      assert.match(String(w.args?.object), /^Lock at 0x[0-9a-f]+$/);
      const waiter = names.get(w.tid!);
      assert.ok(w.args?.holder === 'trace-a' || w.args?.holder === 'trace-b', `holder named: ${JSON.stringify(w.args)}`);
      assert.notEqual(w.args?.holder, waiter, 'the holder is the other thread');
    }
    // Each arrow goes from the other thread's wake-up into a wait it ended.
    const handOffs = flows.filter(([s, f]) => spans.some((w) => w.cat === 'wait' && w.name === 'Lock' && w.tid === f.tid && w.ts! <= f.ts! && f.ts! <= w.ts! + w.dur!) && s.tid !== f.tid);
    assert.ok(handOffs.length > 0, `hand-off arrows between the threads: ${flows.length} flows`);
    // Thread lifetimes are spans on their own tracks.
    for (const name of ['trace-a', 'trace-b']) assert.ok(spans.some((s) => s.cat === 'thread' && s.name === name), `lifetime of ${name}`);
  });

  it('pool tasks are spans named by their function, on the pool threads, with a busy-threads counter', async () => {
    startTrace();
    const pool = new ThreadPoolExecutor({ maxWorkers: 2, threadNamePrefix: 'traced-pool' });
    // (Named by module: importing the fixture here would run its program.)
    const squareSlowly = { module: new URL('./fixtures/trace-program.ts', import.meta.url).href, name: 'squareSlowly' };
    const futures = [1, 2, 3, 4].map((x) => pool.submit(squareSlowly, x));
    assert.deepEqual(await Promise.all(futures), [1, 4, 9, 16]);
    pool.shutdown();
    const { spans, names, counters } = checkFormat(stopTrace().toJSON());
    const tasks = spans.filter((s) => s.cat === 'task');
    assert.equal(tasks.length, 4, `task spans: ${JSON.stringify(tasks)}`);
    for (const t of tasks) {
      assert.equal(t.name, 'squareSlowly');
      assert.match(names.get(t.tid!)!, /^traced-pool_\d+$/);
      assert.equal(t.args?.outcome, 'returned');
    }
    const busy = counters.filter((c) => /busy threads/.test(c.name)).map((c) => c.args!.value as number);
    assert.ok(busy.length >= 8 && Math.max(...busy) <= 2 && busy.at(-1) === 0, `busy counter: ${busy.join(' ')}`);
  });

  it('queue depth is a counter', () => {
    startTrace();
    const q = new Queue<number>();
    for (let i = 0; i < 5; i++) q.put(i);
    for (let i = 0; i < 5; i++) q.get();
    const { counters } = checkFormat(stopTrace().toJSON());
    const depth = counters.filter((c) => /^queue at 0x[0-9a-f]+ depth$/.test(c.name)).map((c) => c.args!.value);
    assert.deepEqual(depth, [1, 2, 3, 4, 5, 4, 3, 2, 1, 0]);
  });

  it('a flight recorder: each thread keeps its last maxEvents, and what is kept is still well formed', () => {
    startTrace({ maxEvents: 16 });
    const q = new Queue<number>();
    const t = new Thread({
      name: 'trace-busy',
      target: (queue: Queue<number>) => {
        for (let i = 0; i < 200; i++) queue.put(i);
      },
      args: [q],
    });
    t.start();
    t.join();
    const trace = stopTrace();
    const { spans, names } = checkFormat(trace.toJSON());
    assert.ok(trace.events <= 16 * (names.size + 1), `${trace.events} events kept for ${names.size} threads`);
    assert.ok([...names.values()].includes('trace-busy'));
    assert.ok(spans.length >= 0);
  });

  it('refuses a second start and a stop without a start; checks maxEvents', () => {
    assert.throws(() => stopTrace(), (e: unknown) => e instanceof ThreadError && /no trace is under way/.test(e.message));
    startTrace();
    assert.throws(() => startTrace(), (e: unknown) => e instanceof ThreadError && /already under way/.test(e.message));
    stopTrace();
    assert.throws(() => startTrace({ maxEvents: 3 }), RangeError);
    assert.throws(() => startTrace({ maxEvents: 1.5 }), RangeError);
    assert.throws(() => startTrace(null as never), TypeError);
    assert.equal(isTracing(), false);
  });

  it('a thread blocked when the trace stops shows a wait that is still going on', async () => {
    startTrace();
    const gate = new Event();
    const t = new Thread({ name: 'trace-still', target: (e: Event) => e.wait(), args: [gate] });
    t.start();
    await untilWaiting(t, 'Event');
    const { spans, names } = checkFormat(stopTrace().toJSON());
    gate.set();
    t.join();
    const still = spans.filter((s) => s.cat === 'wait' && s.args?.result === 'still waiting');
    assert.ok(still.some((s) => names.get(s.tid!) === 'trace-still' && s.name === 'Event'), JSON.stringify(still));
  });
});

describe('THREADKIT_TRACE (child processes)', () => {
  it('traces a whole run: out.json and out.html are written at exit', () => {
    const dir = mkdtempSync(join(tmpdir(), 'threadkit-trace-'));
    const out = join(dir, 'run');
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'test/fixtures/trace-program.ts'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, env: { ...process.env, THREADKIT_TRACE: out } });
    const shown = `status ${run.status} signal ${run.signal}\n${run.stdout}\n${run.stderr}`;
    assert.equal(run.status, 0, shown);
    assert.deepEqual(JSON.parse(run.stdout.trim()), { results: [1, 4, 9, 16, 25, 36] });
    assert.match(run.stderr, /trace of \d+ events written to .*run\.json and .*run\.html/);
    const { spans, names, flows } = checkFormat(JSON.parse(readFileSync(`${out}.json`, 'utf8')));
    for (const name of ['MainThread', 'turns-a', 'turns-b']) assert.ok([...names.values()].includes(name), `track ${name}: ${[...names.values()].join(', ')}`);
    assert.ok(spans.some((s) => s.cat === 'task' && s.name === 'squareSlowly'));
    assert.ok(spans.some((s) => s.cat === 'wait' && s.name === 'Lock' && typeof s.args?.holder === 'string'));
    assert.ok(flows.length > 0);
    const html = readFileSync(`${out}.html`, 'utf8');
    assert.match(html, /^<!doctype html>/i);
    assert.ok(html.includes('turns-a'), 'the page holds the trace');
  });

  it('a program that hangs: the watchdog writes the trace before it ends the process', () => {
    const dir = mkdtempSync(join(tmpdir(), 'threadkit-trace-'));
    const out = join(dir, 'hang');
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'test/fixtures/trace-hang.ts'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, env: { ...process.env, THREADKIT_TRACE: out } });
    const shown = `status ${run.status} signal ${run.signal}\n${run.stdout}\n${run.stderr}`;
    assert.equal(run.signal, 'SIGKILL', shown);
    assert.ok(existsSync(`${out}.json`) && existsSync(`${out}.html`), shown);
    const { spans } = checkFormat(JSON.parse(readFileSync(`${out}.json`, 'utf8')));
    assert.ok(spans.some((s) => s.cat === 'wait' && s.name === 'Event' && s.args?.result === 'still waiting'), 'the blocked wait is in the trace');
    assert.ok(spans.some((s) => s.cat === 'wait' && s.name === 'join' && s.args?.result === 'still waiting'), "the main thread's join too");
  });
});
