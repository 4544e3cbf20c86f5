/**
 * How a thread's isolate is started: which code it runs first and which Node flags it gets.
 *
 * Every isolate starts with a small bootstrap (BOOTSTRAP below, compiled from a string, so it
 * cannot be missing): it writes its OS thread id into its mailbox, runs the parent's
 * `--import`/`--require` preloads, then imports threadkit's worker entry. Whatever fails before
 * threadkit's own code runs (a preload that throws, an entry that cannot be found) is written
 * into the mailbox, so a parent blocked in `join()` learns of it (thread.ts), and the isolate
 * exits.
 *
 * A bundled app (esbuild, Rollup: threadkit's files merged into one) has no worker entry file
 * next to threadkit: the isolate then imports the bundle itself, whose copy of threadkit sees
 * `workerData.threadkit` and runs the isolate with a top-level await (bundled-worker.ts) that
 * holds back the rest of the bundle, the app's own code.
 */

import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { NATIVE_ID } from '../thread/thread-block.js';
import { BOOT_TEXT_UNITS, MAILBOX_BOOT_ERROR, MAILBOX_BOOT_TEXT, MAILBOX_TID } from './messages.js';

/** This file's own name: anything else means a bundler merged threadkit into another file. */
const OWN_FILE = /\/runtime\/spawn\.[cm]?[jt]s(\?.*)?$/;

/** True when threadkit runs from inside a bundle. */
export const bundled = !OWN_FILE.test(import.meta.url);

/** What a new isolate imports after its bootstrap: the worker entry, or the bundle itself. */
export const workerEntry = bundled ? import.meta.url : new URL(`./worker-entry${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url).href;

/**
 * The isolate's first code (CommonJS, run with `eval: true`). The mailbox words it writes are
 * read by the parent's liveness checks; after a failure it notifies the thread's state word,
 * so a joiner wakes at once (a joiner that was not asleep yet sees it at its next check).
 */
export const BOOTSTRAP = `
'use strict';
const { workerData } = require('node:worker_threads');
const i32 = new Int32Array(workerData.sab);
const box = workerData.mailbox >> 2;
let tid = -1;
try { tid = Number(require('node:fs').readlinkSync('/proc/thread-self').split('/').pop()) || -1; } catch {}
Atomics.store(i32, box + ${MAILBOX_TID}, tid);
// The first thread's native id, for a parent that reads thread.nativeId right after start().
Atomics.store(i32, (workerData.first.threadBlock >> 2) + ${NATIVE_ID}, tid);
Atomics.notify(i32, (workerData.first.threadBlock >> 2) + ${NATIVE_ID});
async function boot() {
  if (workerData.failStart) throw new Error('an injected fault: threadkit/testing failNextIsolateStarts');
  for (const preload of workerData.preloads) {
    if (preload.kind === 'require') require(preload.specifier);
    else await import(preload.specifier);
  }
  await import(workerData.entry);
}
boot().catch((error) => {
  const text = String((error && error.message) || error).slice(0, ${BOOT_TEXT_UNITS}) || 'unknown error';
  const u16 = new Uint16Array(workerData.sab, (box + ${MAILBOX_BOOT_TEXT}) * 4, text.length);
  for (let i = 0; i < text.length; i++) u16[i] = text.charCodeAt(i);
  Atomics.store(i32, box + ${MAILBOX_BOOT_ERROR}, text.length);
  Atomics.notify(i32, workerData.first.threadBlock >> 2);
  process.exit(1);
});
`;

/** Flags a worker accepts that change how its code loads or warns (V8 and process flags are refused). */
const WORKER_FLAG = /^(--(loader|experimental-loader|conditions|enable-source-maps|no-warnings|disable-warning|trace-warnings|trace-uncaught|pending-deprecation|no-deprecation|experimental-[\w-]+|no-experimental-[\w-]+)|-C)(=|$)/;
const PRELOAD_FLAG = /^(--import|--require|-r)(=|$)/;
const TAKES_VALUE = /^(--import|--require|-r|--loader|--experimental-loader|--conditions|-C|--disable-warning|--input-type)$/;
// (--input-type is read but not passed on: it applies to the main entry only, and a worker refuses it.)

/**
 * The parent's module-loading flags, for threads. Node 20 does not apply `--import tsx`-style
 * loader hooks inside workers (tsx #354) yet still pays to load them, so TypeScript loaders
 * are left out (a thread installs tsx itself when it needs it: `typescriptLoader`); V8 and
 * process flags (`--expose-gc`, `--max-old-space-size`) are refused by workers and left out too.
 */
function filterExecArgv(): { execArgv: string[]; preloads: Preload[] } {
  const execArgv: string[] = [];
  const preloads: Preload[] = [];
  const argv = process.execArgv ?? [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = inline ?? (TAKES_VALUE.test(arg) ? argv[++i] : undefined);
    if (/tsx|ts-node/.test(value ?? arg)) continue;
    if (PRELOAD_FLAG.test(arg) && value !== undefined) {
      preloads.push({ kind: flag === '--import' ? 'import' : 'require', specifier: absoluteSpecifier(value, flag === '--import') });
      continue;
    }
    if (!WORKER_FLAG.test(arg)) continue;
    execArgv.push(arg);
    if (value !== undefined && inline === undefined) execArgv.push(value);
  }
  return { execArgv, preloads };
}

export interface Preload {
  kind: 'import' | 'require';
  specifier: string;
}

/** A relative preload path resolved against the directory the program was started in. */
function absoluteSpecifier(specifier: string, asUrl: boolean): string {
  if (!/^\.{0,2}\//.test(specifier)) return specifier;
  const path = resolve(process.cwd(), specifier);
  return asUrl ? pathToFileURL(path).href : path;
}

const flags = filterExecArgv();
export const workerExecArgv = flags.execArgv;
export const workerPreloads = flags.preloads;

/**
 * When this process runs under tsx, the URL of tsx's registration API, so a thread can install
 * the TypeScript loader itself (lazily: it costs ~150 ms, paid only by threads that import
 * TypeScript). Undefined otherwise.
 */
export let typescriptLoader: string | undefined = findTsx();

/** In a thread: the loader its parent found, passed on to the threads it starts. */
export function inheritTypescriptLoader(loader: string | undefined): void {
  typescriptLoader ??= loader;
}

function findTsx(): string | undefined {
  if (!process.execArgv.some((arg) => /tsx/.test(arg))) return undefined;
  const bases = [pathToFileURL(`${process.cwd()}/`).href, import.meta.url];
  for (const arg of process.execArgv) if (/^file:.*tsx/.test(arg) || /^\/.*tsx/.test(arg)) bases.push(arg.startsWith('/') ? pathToFileURL(arg).href : arg);
  for (const base of bases) {
    try {
      // require.resolve would pick the CommonJS build; read the ESM entry from tsx's exports.
      const require = createRequire(base);
      const manifestPath = require.resolve('tsx/package.json');
      const manifest = require(manifestPath) as { exports?: Record<string, { import?: { default?: string } }> };
      const entry = manifest.exports?.['./esm/api']?.import?.default;
      if (entry !== undefined) return new URL(entry, pathToFileURL(manifestPath)).href;
    } catch {
      // try the next place
    }
  }
  return undefined;
}
