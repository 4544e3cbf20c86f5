/** The files through which a dump is asked for from outside (kept tiny: the CLI imports it). */

import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Where a dump of process `pid` is asked for (the request file) and written (the output): the
 * way in from outside when the main thread is blocked. Node runs signal handlers (and
 * `--report-on-signal`) on the main thread's event loop, which a blocked `join()` holds, so a
 * daemon thread polls for the request file instead, as the JVM's attach mechanism does.
 */
export function dumpRequestPaths(pid: number): { request: string; output: string } {
  const base = join(tmpdir(), `threadkit-dump-${pid}`);
  return { request: `${base}.request`, output: `${base}.txt` };
}

