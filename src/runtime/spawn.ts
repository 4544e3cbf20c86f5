/**
 * How a thread's isolate is started: which file it runs and which Node flags it gets.
 */

import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

/** The worker entry: the built JavaScript next to this file. */
export const workerEntry = new URL(`./worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

/** Flags a worker accepts that change how its code loads or warns (V8 and process flags are refused). */
const WORKER_FLAG = /^(--(import|require|loader|experimental-loader|conditions|enable-source-maps|no-warnings|disable-warning|trace-warnings|trace-uncaught|pending-deprecation|no-deprecation|experimental-[\w-]+|no-experimental-[\w-]+)|-r|-C)(=|$)/;
const TAKES_VALUE = /^(--import|--require|-r|--loader|--experimental-loader|--conditions|-C|--disable-warning|--input-type)$/;
// (--input-type is read but not passed on: it applies to the main entry only, and a worker refuses it.)

/**
 * The parent's module-loading flags, for threads. Node 20 does not apply `--import tsx`-style
 * loader hooks inside workers (tsx #354) yet still pays to load them, so TypeScript loaders
 * are left out (a thread installs tsx itself when it needs it: `typescriptLoader`); V8 and
 * process flags (`--expose-gc`, `--max-old-space-size`) are refused by workers and left out too.
 */
function filterExecArgv(): string[] {
  const out: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = TAKES_VALUE.test(arg) ? argv[++i] : undefined;
    if (!WORKER_FLAG.test(arg)) continue;
    if (/tsx|ts-node/.test(value ?? arg)) continue;
    out.push(arg);
    if (value !== undefined) out.push(value);
  }
  return out;
}

export const workerExecArgv = filterExecArgv();

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
