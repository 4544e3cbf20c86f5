/**
 * Where a self-contained function was written, so that the thread that compiles its source text
 * can put it at the same place: its stack frames then name the user's file, line and column
 * instead of `eval at compileSource (…), <anonymous>:3:35`.
 *
 * The sending thread asks V8 through an in-process inspector session (synchronous for a session
 * of the same thread): `[[FunctionLocation]]` gives the function's script and position, a stack
 * trace or the debugger's script list gives the script's URL. The position is in the code V8
 * runs, which under tsx (or any transpiler) is not the file the user wrote: the script's source
 * map, when Node has one (`module.findSourceMap`), is cut down to the function (its positions
 * made relative to the text) and sent along; the receiving thread compiles the text with that
 * map inline, so that Node's source-map support shows the original file and line.
 * Without a map (plain JavaScript), the text is compiled at its own line and column.
 *
 * All of it is best effort: without an inspector (Bun, Deno, a Node built without one), or when
 * anything fails, the function is compiled as before.
 */

import { createRequire, findSourceMap } from 'node:module';

/** Where a function's source text starts, and (when the script has one) its source map, cut down to the function. */
export interface FunctionLocation {
  /** The script's URL: the compiled code's `//# sourceURL`. */
  url: string;
  /** 0-based line of the text's first character in the script. */
  line: number;
  /** 0-based column of the text's first character. */
  column: number;
  /** The script's source map cut down to the function, when Node has one for the script. */
  map?: FunctionMap;
}

/**
 * A source map (version 3 fields) of a function's text alone: its generated positions count
 * from the text's first character (line 0, column 0), not from the script's.
 */
export interface FunctionMap {
  sources: string[];
  names: string[];
  mappings: string;
}

type Post = (method: string, params?: object) => any;

interface InspectorModule {
  Session: new () => { connect(): void; disconnect(): void; post(method: string, params: object, callback: (error: Error | null, result: any) => void): void; on(event: string, listener: (message: any) => void): unknown };
}

let inspector: InspectorModule | null | undefined;
/**
 * Milliseconds the debugger's script list may still cost this thread (it is the slow way to a
 * script's URL: a few ms each time, 20 the first; code made by `new Function` in a loop would
 * pay it for every function).
 */
let debuggerBudgetMs = 100;
/** scriptId → URL, for the scripts seen so far. */
const scriptUrls = new Map<string, string>();
const HOLDER = Symbol.for('threadkit.locateFunction');

function loadInspector(): InspectorModule | null {
  if (inspector !== undefined) return inspector;
  try {
    inspector = createRequire(import.meta.url)('node:inspector') as InspectorModule;
    if (typeof inspector.Session !== 'function') inspector = null;
  } catch {
    inspector = null;
  }
  return inspector;
}

/**
 * Runs `work` with a session connected to this thread's inspector, disconnected after (a session
 * left connected would make every console call report to the inspector too). Undefined when
 * there is none, or when its replies do not come synchronously (then it is not tried again).
 */
function withSession<T>(work: (post: Post, on: (event: string, listener: (message: any) => void) => void) => T): T | undefined {
  const module = loadInspector();
  if (module === null) return undefined;
  let session: InstanceType<InspectorModule['Session']>;
  try {
    session = new module.Session();
    session.connect();
  } catch {
    inspector = null;
    return undefined;
  }
  const post: Post = (method, params = {}) => {
    let done = false;
    let failure: Error | null = null;
    let reply: any;
    session.post(method, params, (error, result) => {
      done = true;
      failure = error;
      reply = result;
    });
    if (!done) {
      inspector = null; // an inspector that answers later is no use here
      throw new Error('the inspector did not answer synchronously');
    }
    if (failure !== null) throw failure as Error;
    return reply;
  };
  try {
    return work(post, (event, listener) => session.on(event, listener));
  } catch {
    return undefined;
  } finally {
    try {
      session.disconnect();
    } catch {
      // (nothing to do)
    }
  }
}

/**
 * Where `fn` was written. `source` is its `Function.prototype.toString()` text; V8 places a
 * non-arrow function at its parameter list, `positionOffset` characters into that text.
 */
export function locateFunction(fn: (...args: any[]) => unknown, source: string, positionOffset: number): FunctionLocation | undefined {
  try {
    const found = withSession((post, on) => {
      const holder = globalThis as unknown as Record<symbol, unknown>;
      holder[HOLDER] = fn;
      let location: { scriptId: string; lineNumber: number; columnNumber: number } | undefined;
      try {
        const evaluated = post('Runtime.evaluate', { expression: 'globalThis[Symbol.for("threadkit.locateFunction")]', silent: true });
        const objectId = evaluated?.result?.objectId as string | undefined;
        if (objectId === undefined) return undefined;
        const properties = post('Runtime.getProperties', { objectId, ownProperties: true });
        location = (properties?.internalProperties as { name: string; value?: { value?: any } }[] | undefined)?.find((p) => p.name === '[[FunctionLocation]]')?.value?.value;
      } finally {
        delete holder[HOLDER];
      }
      if (location === undefined) return undefined;
      const url = scriptUrl(location.scriptId, post, on);
      return url === undefined ? undefined : { url, line: location.lineNumber, column: location.columnNumber };
    });
    if (found === undefined || found.url === '') return undefined;
    // From the parameter list back to the text's first character.
    const before = source.slice(0, positionOffset);
    const newlines = countNewlines(before);
    const line = found.line - newlines;
    const column = newlines === 0 ? Math.max(0, found.column - positionOffset) : 0;
    if (line < 0) return undefined;
    const located: FunctionLocation = { url: found.url, line, column };
    addSourceMap(located, source);
    return located;
  } catch {
    return undefined;
  }
}

/**
 * A script's URL. The scripts on the current stack come cheaply (a stack trace, with script ids,
 * of an exception thrown in an evaluation); others from the debugger's list of every script,
 * which costs milliseconds (a function defined in a module that is not on the stack).
 */
function scriptUrl(scriptId: string, post: Post, on: (event: string, listener: (message: any) => void) => void): string | undefined {
  let url = scriptUrls.get(scriptId);
  if (url !== undefined) return url;
  post('Runtime.enable');
  try {
    const thrown = post('Runtime.evaluate', { expression: 'throw new Error()', silent: true });
    for (const frame of thrown?.exceptionDetails?.stackTrace?.callFrames ?? []) {
      if (typeof frame.scriptId === 'string' && typeof frame.url === 'string') scriptUrls.set(frame.scriptId, frame.url);
    }
  } finally {
    post('Runtime.disable');
  }
  url = scriptUrls.get(scriptId);
  if (url !== undefined) return url;
  if (debuggerBudgetMs <= 0) return undefined;
  const t0 = performance.now();
  on('Debugger.scriptParsed', (message) => {
    const params = message?.params;
    if (typeof params?.scriptId === 'string' && typeof params.url === 'string') scriptUrls.set(params.scriptId, params.url);
  });
  try {
    post('Debugger.enable');
    post('Debugger.disable');
  } finally {
    debuggerBudgetMs -= performance.now() - t0;
  }
  return scriptUrls.get(scriptId);
}

function countNewlines(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

/** The end (exclusive) of `text` placed at line/column. */
function endOf(text: string, line: number, column: number): { line: number; column: number } {
  const last = text.lastIndexOf('\n');
  return last === -1 ? { line, column: column + text.length } : { line: line + countNewlines(text), column: text.length - last - 1 };
}

/** Adds the script's source map, cut down to the function (when Node has a map for the script). */
function addSourceMap(located: FunctionLocation, source: string): void {
  if (typeof findSourceMap !== 'function') return;
  const map = findSourceMap(located.url);
  const payload = map?.payload as { mappings?: unknown; sources?: unknown; names?: unknown } | undefined;
  if (payload === undefined || typeof payload.mappings !== 'string' || !Array.isArray(payload.sources)) return;
  const end = endOf(source, located.line, located.column);
  const segments = segmentsWithin(payload.mappings, located, end);
  if (segments.length === 0) return;
  const sources = new Strings(payload.sources);
  const names = new Strings(Array.isArray(payload.names) ? payload.names : []);
  const lines = new Map<number, Segment[]>();
  for (let i = 0; i < segments.length; i += SEGMENT) {
    // Relative to the text: its first line is line 0, and starts at column 0.
    const line = segments[i]! - located.line;
    const column = line === 0 ? segments[i + 1]! - located.column : segments[i + 1]!;
    const sourceIndex = sources.index(segments[i + 2]!);
    if (sourceIndex === undefined) return;
    const name = segments[i + 5]! < 0 ? -1 : (names.index(segments[i + 5]!) ?? -1);
    let onLine = lines.get(line);
    if (onLine === undefined) lines.set(line, (onLine = []));
    onLine.push([column, sourceIndex, segments[i + 3]!, segments[i + 4]!, name]);
  }
  located.map = { sources: sources.used, names: names.used, mappings: encodeMappings(lines) };
}

/** The strings of a source map's list that segments use, renumbered in order of first use. */
class Strings {
  readonly used: string[] = [];
  readonly #renumbered = new Map<number, number>();
  constructor(readonly all: unknown[]) {}

  index(original: number): number | undefined {
    let index = this.#renumbered.get(original);
    if (index === undefined) {
      const value = this.all[original];
      if (typeof value !== 'string') return undefined;
      index = this.used.push(value) - 1;
      this.#renumbered.set(original, index);
    }
    return index;
  }
}

/** Numbers per segment from segmentsWithin. */
const SEGMENT = 6;

/** [generatedColumn, source, originalLine, originalColumn, name or -1]. */
type Segment = [number, number, number, number, number];

const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const BASE64_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < BASE64.length; i++) BASE64_VALUE[BASE64.charCodeAt(i)] = i;

/**
 * The segments of a source map's `mappings` from `start` (inclusive) to `end` (exclusive), as
 * [generatedLine, generatedColumn, source, originalLine, originalColumn, name or -1]. The
 * segment in force at `start` (the last one before it) is repeated at `start`, so that the
 * function's first characters map as they did.
 */
function segmentsWithin(mappings: string, start: { line: number; column: number }, end: { line: number; column: number }): number[] {
  const out: number[] = [];
  let line = 0;
  let column = 0;
  let source = 0;
  let originalLine = 0;
  let originalColumn = 0;
  let name = 0;
  let before: number[] | undefined; // the last segment before start
  const fields = [0, 0, 0, 0, 0];
  let i = 0;
  const n = mappings.length;
  while (i < n) {
    const c = mappings.charCodeAt(i);
    if (c === 59 /* ; */) {
      line++;
      column = 0;
      i++;
      if (line > end.line) break;
      continue;
    }
    if (c === 44 /* , */) {
      i++;
      continue;
    }
    // One segment: 1, 4 or 5 VLQ fields.
    let count = 0;
    while (i < n) {
      const d = mappings.charCodeAt(i);
      if (d === 44 || d === 59) break;
      let value = 0;
      let shift = 0;
      let digit: number;
      do {
        digit = BASE64_VALUE[mappings.charCodeAt(i++)] ?? -1;
        if (digit < 0) return out; // malformed: keep what was read
        value += (digit & 31) << shift;
        shift += 5;
      } while (digit & 32);
      if (count < 5) fields[count] = value & 1 ? -(value >>> 1) : value >>> 1;
      count++;
    }
    column += fields[0]!;
    if (count >= 4) {
      source += fields[1]!;
      originalLine += fields[2]!;
      originalColumn += fields[3]!;
      if (count >= 5) name += fields[4]!;
      const named = count >= 5 ? name : -1;
      const afterStart = line > start.line || (line === start.line && column >= start.column);
      const beforeEnd = line < end.line || (line === end.line && column < end.column);
      if (!afterStart) before = [line, column, source, originalLine, originalColumn, -1];
      else if (beforeEnd) {
        if (out.length === 0 && before !== undefined && (line !== start.line || column !== start.column)) out.push(start.line, start.column, before[2]!, before[3]!, before[4]!, -1);
        out.push(line, column, source, originalLine, originalColumn, named);
      }
    }
  }
  if (out.length === 0 && before !== undefined) out.push(start.line, start.column, before[2]!, before[3]!, before[4]!, -1);
  return out;
}

// ---- in the receiving thread --------------------------------------------------------------

/**
 * A map of `source` to itself, where it was written: for text that cannot be compiled at its
 * own line (the first lines of a file). A segment at each word and punctuation mark.
 */
export function identityMap(source: string, at: FunctionLocation): FunctionMap {
  const lines = new Map<number, Segment[]>();
  let line = 0;
  let column = 0;
  let previous = ' ';
  for (const c of source) {
    if (c === '\n') {
      line++;
      column = 0;
    } else {
      if (!/\s/.test(c) && (/\s/.test(previous) || !/[\w$]/.test(c) || !/[\w$]/.test(previous))) {
        let onLine = lines.get(line);
        if (onLine === undefined) lines.set(line, (onLine = []));
        onLine.push([column, 0, at.line + line, line === 0 ? at.column + column : column, -1]);
      }
      column += c.length;
    }
    previous = c;
  }
  return { sources: [at.url], names: [], mappings: encodeMappings(lines) };
}

let sourceMapsTurnedOn = false;

/**
 * The `//# sourceMappingURL=` comment for a function's text compiled at line `line` (column 0)
 * of its script: the map's lines moved down. Node's source-map support is turned on in this
 * thread (the sending thread had it, or it would have found no map).
 */
export function sourceMapComment(map: FunctionMap, line: number): string {
  if (!sourceMapsTurnedOn) {
    sourceMapsTurnedOn = true;
    try {
      const proc = process as { setSourceMapsEnabled?: (on: boolean) => void; sourceMapsEnabled?: boolean };
      if (proc.sourceMapsEnabled !== true) proc.setSourceMapsEnabled?.(true);
    } catch {
      // (stack frames then show the generated positions)
    }
  }
  const json = JSON.stringify({ version: 3, sources: map.sources, names: map.names, mappings: ';'.repeat(line) + map.mappings });
  return `//# sourceMappingURL=data:application/json;base64,${Buffer.from(json).toString('base64')}`;
}

function encodeMappings(lines: Map<number, Segment[]>): string {
  let mappings = '';
  let previousName = 0;
  let previousSource = 0;
  let previousLine = 0;
  let previousColumn = 0;
  const last = Math.max(...lines.keys());
  for (let line = 0; line <= last; line++) {
    if (line > 0) mappings += ';';
    const segments = lines.get(line)?.sort((a, b) => a[0] - b[0]);
    if (segments === undefined) continue;
    let generatedColumn = 0;
    segments.forEach(([column, source, originalLine, originalColumn, name], i) => {
      if (i > 0) mappings += ',';
      mappings += vlq(column - generatedColumn) + vlq(source - previousSource) + vlq(originalLine - previousLine) + vlq(originalColumn - previousColumn);
      if (name >= 0) {
        mappings += vlq(name - previousName);
        previousName = name;
      }
      generatedColumn = column;
      previousSource = source;
      previousLine = originalLine;
      previousColumn = originalColumn;
    });
  }
  return mappings;
}

function vlq(value: number): string {
  let rest = value < 0 ? (-value << 1) | 1 : value << 1;
  let out = '';
  do {
    let digit = rest & 31;
    rest >>>= 5;
    if (rest > 0) digit |= 32;
    out += BASE64[digit];
  } while (rest > 0);
  return out;
}
