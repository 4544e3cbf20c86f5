/**
 * Helpers shared by the benchmarks: a timing loop (`measure`), a runner for Python anchors
 * (`runPython`), and the result table (`Row`, `formatTable`). See bench/README.md for the method.
 */

import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { pathToFileURL } from 'node:url';

// ---- timing ------------------------------------------------------------------------------------

export interface MeasureOptions {
  /** Time to spend measuring, after warm-up (ms). @default 500 */
  minMs?: number;
  /** Warm-up time before measuring (ms), so the JIT has optimized the loop. @default minMs / 5 */
  warmupMs?: number;
  /** Batches to take the median of (more if time allows). @default 7 */
  batches?: number;
}

/**
 * Times `loop(n)`, which must perform the operation `n` times (the loop lives in the caller's
 * code so that no closure call is added per operation). Warms up, sizes a batch so that it
 * takes about `minMs / batches` ms, runs batches until `minMs` ms have passed (at least
 * `batches` of them), and returns the median batch's time per operation, in nanoseconds.
 * @example
 * const ns = measure((n) => { for (let i = 0; i < n; i++) { lock.acquire(); lock.release(); } });
 */
export function measure(loop: (n: number) => void, options: MeasureOptions = {}): number {
  const minMs = options.minMs ?? 500;
  const batches = options.batches ?? 7;
  const warmupMs = options.warmupMs ?? minMs / 5;
  const batchMs = minMs / batches;

  // Size a batch: grow n until one call takes at least half a batch.
  let n = 1;
  for (;;) {
    const elapsed = timeOf(loop, n);
    if (elapsed >= batchMs / 2 || n >= 2 ** 30) break;
    n *= elapsed < batchMs / 16 ? 8 : 2;
  }
  // Warm up (the JIT optimizes the loop meanwhile), then size the batch again on the fast code.
  const warmupEnd = performance.now() + warmupMs;
  while (performance.now() < warmupEnd) loop(n);
  n = Math.max(1, Math.round((n * batchMs) / Math.max(timeOf(loop, n), 1e-3)));

  const samples: number[] = [];
  const end = performance.now() + minMs;
  while (samples.length < batches || performance.now() < end) {
    const start = performance.now();
    loop(n);
    samples.push(((performance.now() - start) * 1e6) / n);
    if (samples.length >= batches * 4) break;
  }
  return median(samples);
}

/**
 * Measures several loops in `passes` interleaved rounds (A B C, A B C, …) and keeps each
 * loop's best round: a burst of load from another process then spoils one round, not one
 * loop's result. Returns ns/op per loop, in the order given.
 */
export function measureInterleaved(loops: ((n: number) => void)[], options: MeasureOptions & { passes?: number } = {}): number[] {
  const passes = options.passes ?? 3;
  const best = loops.map(() => Infinity);
  for (let pass = 0; pass < passes; pass++) {
    loops.forEach((loop, i) => {
      best[i] = Math.min(best[i]!, measure(loop, pass === 0 ? options : { ...options, warmupMs: 0 }));
    });
  }
  return best;
}

function timeOf(loop: (n: number) => void, n: number): number {
  const start = performance.now();
  loop(n);
  return performance.now() - start;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Somewhere to put results so the JIT cannot drop the work that produced them. */
export const sink: { value: unknown } = { value: undefined };

// ---- Python anchors ----------------------------------------------------------------------------

export type PythonResult = { ok: true; values: Map<string, number>; version: string } | { ok: false; note: string };

/**
 * Runs `python3 -c code` and parses what it prints: every line `label: number` (or one bare
 * number, stored under the label "") becomes an entry, in nanoseconds per operation as the
 * snippet measured them. When python3 is missing or fails, returns a note instead of throwing.
 */
export function runPython(code: string, timeoutMs = 30_000): PythonResult {
  const run = spawnSync('python3', ['-c', code], { encoding: 'utf8', timeout: timeoutMs });
  if (run.error) {
    const missing = (run.error as NodeJS.ErrnoException).code === 'ENOENT';
    return { ok: false, note: missing ? 'python3 not found: Python anchors skipped' : `python3 failed: ${run.error.message}` };
  }
  if (run.status !== 0) return { ok: false, note: `python3 exited with ${run.status ?? run.signal}: ${run.stderr.trim().split('\n').pop()}` };
  const values = new Map<string, number>();
  for (const line of run.stdout.split('\n')) {
    const match = /^\s*(?:([\w .+/-]+):\s*)?(\d+(?:\.\d+)?(?:e[+-]?\d+)?)\s*$/i.exec(line);
    if (match) values.set(match[1]?.trim() ?? '', Number(match[2]));
  }
  if (values.size === 0) return { ok: false, note: `python3 printed no numbers: ${JSON.stringify(run.stdout.slice(0, 200))}` };
  return { ok: true, values, version: pythonVersion() };
}

let cachedPythonVersion: string | undefined;

/** "Python 3.11.7", or "" when python3 is missing. */
export function pythonVersion(): string {
  if (cachedPythonVersion === undefined) {
    const run = spawnSync('python3', ['--version'], { encoding: 'utf8' });
    cachedPythonVersion = run.error ? '' : `${run.stdout}${run.stderr}`.trim();
  }
  return cachedPythonVersion;
}

// ---- results -----------------------------------------------------------------------------------

/**
 * One line of the result table. Times are per operation in `unit`. The ratio is
 * threadkit / anchor (`'time'`: below 1 means threadkit is faster) or anchor / threadkit
 * (`'speedup'`: how many times faster threadkit is).
 */
export interface Row {
  /** The benchmark group: "lock", "pingpong", "codec". */
  group: string;
  /** What one operation is. */
  work: string;
  unit: 'ns' | 'µs' | 'ms';
  /** threadkit's time per operation; undefined when it could not be measured. */
  threadkit: number | undefined;
  /** Short name of the anchor ("raw CAS", "python3 Lock"). */
  anchorName: string;
  anchor: number | undefined;
  /** Which way the ratio is taken. @default 'time' */
  ratio?: 'time' | 'speedup';
  /** The goal for the ratio, e.g. { op: '<=', value: 1.3 }. */
  goal?: { op: '<=' | '>='; value: number };
  /** Anything the reader should know (a skipped anchor, what a row means). */
  note?: string;
}

function formatTime(value: number | undefined, unit: string): string {
  if (value === undefined) return '—';
  const digits = value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${value.toFixed(digits)} ${unit}`;
}

function ratioOf(row: Row): number | undefined {
  if (row.threadkit === undefined || row.anchor === undefined || row.threadkit <= 0 || row.anchor <= 0) return undefined;
  return row.ratio === 'speedup' ? row.anchor / row.threadkit : row.threadkit / row.anchor;
}

function formatRatio(row: Row): string {
  const ratio = ratioOf(row);
  if (ratio === undefined) return '—';
  const what = row.ratio === 'speedup' ? `${row.anchorName} / threadkit` : `threadkit / ${row.anchorName}`;
  let text = `${ratio.toFixed(2)}x (${what})`;
  if (row.goal) {
    const met = row.goal.op === '<=' ? ratio <= row.goal.value : ratio >= row.goal.value;
    text += ` goal ${row.goal.op === '<=' ? '≤' : '≥'} ${row.goal.value}x: ${met ? 'met' : 'MISSED'}`;
  }
  return text;
}

/** The table's cells: work | threadkit | anchor | ratio (| note). */
function cells(row: Row): string[] {
  return [
    `${row.group}: ${row.work}`,
    formatTime(row.threadkit, row.unit),
    row.anchor === undefined ? `— (${row.anchorName})` : `${formatTime(row.anchor, row.unit)} (${row.anchorName})`,
    formatRatio(row),
    row.note ?? '',
  ];
}

const HEADER = ['work', 'threadkit', 'anchor', 'ratio', 'note'];

/** The rows as an aligned plain-text table. */
export function formatTable(rows: Row[]): string {
  const table = [HEADER, ...rows.map(cells)];
  const widths = HEADER.map((_, c) => Math.max(...table.map((r) => r[c]!.length)));
  const line = (r: string[]): string => r.map((cell, c) => cell.padEnd(widths[c]!)).join(' | ').trimEnd();
  return [line(table[0]!), widths.map((w) => '-'.repeat(w)).join('-|-'), ...table.slice(1).map(line)].join('\n');
}

/** The rows as a Markdown table. */
export function formatMarkdown(rows: Row[]): string {
  const escape = (cell: string): string => cell.replace(/\|/g, '\\|');
  const line = (r: string[]): string => `| ${r.map(escape).join(' | ')} |`;
  return [line(HEADER), `|${HEADER.map(() => '---').join('|')}|`, ...rows.map((r) => line(cells(r)))].join('\n');
}

/** One line describing where the numbers come from. */
export function machineLine(): string {
  const cpu = cpus();
  const python = pythonVersion();
  return `Node ${process.version}, ${cpu.length} cores (${cpu[0]?.model ?? 'unknown CPU'}), ${process.platform}/${process.arch}${python ? `, ${python}` : ''}`;
}

// ---- running a file on its own -------------------------------------------------------------------

/** True when the module with this `import.meta.url` is the script node was started with. */
export function isMain(moduleUrl: string): boolean {
  const script = process.argv[1];
  return script !== undefined && pathToFileURL(script).href === moduleUrl;
}

/** What `node --import tsx bench/<file>.ts` does: run, print the table. */
export async function runAlone(run: () => Promise<Row[]> | Row[]): Promise<void> {
  const rows = await run();
  console.log(machineLine());
  console.log(formatTable(rows));
}
