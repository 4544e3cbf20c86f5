/**
 * Barrier: work in phases. Four threads each compute their part of a phase, then wait at the
 * barrier; when the last one arrives, the barrier's action runs once (here: it publishes the
 * phase's results and advances the phase counter), and only then are all four released into
 * the next phase.
 *
 * The action runs in whichever thread arrives last, as a self-contained function with no
 * arguments (it is sent as source text): it calls a hook that each worker installs as a global
 * in its own thread, and that hook reaches the shared state.
 */

import { fileURLToPath } from 'node:url';
import { Barrier, Thread, isMainThread, sharedArray } from 'threadkit';

export const WORKERS = 4;
export const PHASES = 5;

/** Shared state of the computation: current cells, next cells, and the phase number. */
interface Grid {
  cells: Float64Array;
  next: Float64Array;
  phase: Int32Array;
  checksums: Float64Array;
}

declare global {
  // Installed by each worker thread in its own isolate, called by the barrier action there.
  var onPhaseEnd: (() => void) | undefined;
}

/** What the action does: copy `next` into `cells`, record the phase's checksum, advance the phase. */
export function endOfPhase(grid: Grid): void {
  grid.cells.set(grid.next);
  grid.checksums[grid.phase[0]!] = grid.cells.reduce((sum, x) => sum + x, 0);
  grid.phase[0]! += 1;
}

/** A worker: in each phase, each cell of its slice becomes the average of itself and its neighbours. */
export function smooth(grid: Grid, barrier: Barrier, index: number): number[] {
  globalThis.onPhaseEnd = () => endOfPhase(grid);
  const n = grid.cells.length;
  const per = n / WORKERS;
  const arrivals: number[] = [];
  for (let p = 0; p < PHASES; p++) {
    for (let i = index * per; i < (index + 1) * per; i++) {
      const left = grid.cells[(i + n - 1) % n]!;
      const right = grid.cells[(i + 1) % n]!;
      grid.next[i] = (left + grid.cells[i]! + right) / 3;
    }
    arrivals.push(barrier.wait()); // everyone has written `next`: the action swaps, then all go on
  }
  return arrivals;
}

export function main(): string[] {
  const lines: string[] = [];
  const grid: Grid = {
    cells: sharedArray(Float64Array, 16),
    next: sharedArray(Float64Array, 16),
    phase: sharedArray(Int32Array, 1),
    checksums: sharedArray(Float64Array, PHASES),
  };
  grid.cells[0] = 48; // one hot cell that spreads out, phase after phase
  // A barrier action must be a self-contained function: this one only uses a global.
  const barrier = new Barrier(WORKERS, { action: () => globalThis.onPhaseEnd!() });

  const threads = Array.from({ length: WORKERS }, (_, i) => new Thread<number[]>({ name: `worker-${i}`, target: { module: import.meta.url, name: 'smooth' }, args: [grid, barrier, i] }));
  threads.forEach((t) => t.start());
  threads.forEach((t) => t.join());

  lines.push(`the action ran ${grid.phase[0]} times for ${PHASES} phases of ${WORKERS} workers`);
  lines.push(`cells after ${PHASES} phases: ${Array.from(grid.cells, (x) => x.toFixed(1)).join(' ')}`);
  lines.push(`sum of the cells after each phase: ${Array.from(grid.checksums, (x) => x.toFixed(1)).join(', ')} (conserved)`);
  const indexes = threads.map((t) => t.result ?? []);
  const distinct = indexes[0]!.every((_, p) => new Set(indexes.map((r) => r[p])).size === WORKERS);
  lines.push(`in every phase the ${WORKERS} threads got distinct arrival indexes from wait(): ${distinct}`);
  lines.push(`barrier: parties=${barrier.parties}, nWaiting=${barrier.nWaiting}, broken=${barrier.broken}`);
  return lines;
}

if (isMainThread && process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const line of main()) console.log(line);
}
