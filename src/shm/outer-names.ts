/**
 * Which outer names a self-contained function uses: its source text is parsed (acorn) and its
 * identifiers resolved against its own scopes (parameters, declarations, with hoisting; block,
 * catch, class and function scopes). What is left are names it expects from outside: globals,
 * or outer variables that do not exist in the thread that compiles the text.
 *
 * Not references: property names (`a.b`, `{ b: 1 }`, methods, class members), labels,
 * `import.meta` / `new.target`, `this`, `super`, `arguments` in a function. A name that the
 * function tests with `typeof name` is treated as guarded everywhere in it (`typeof window !==
 * 'undefined' && window.x` is a feature test, not a mistake).
 */

import { createRequire } from 'node:module';
import { isMainThread } from 'node:worker_threads';
import type { Options } from 'acorn';

/** A name the function uses but does not declare. */
export interface OuterName {
  name: string;
  /** Called (`name()`, `new name()`, name`…`) at least once: a function or class. */
  called: boolean;
}

/** What the parse found. */
export interface SourceFacts {
  /** Free names, in order of first use (guarded ones and `arguments` left out). */
  outer: OuterName[];
  /** Offset in the source of the `(` that V8 reports as a non-arrow function's position (0 for arrows). */
  positionOffset: number;
}

const OPTIONS: Options = { ecmaVersion: 'latest', sourceType: 'script', allowReturnOutsideFunction: false };

let acorn: typeof import('acorn') | null | undefined;

/** True when a bundler merged this file into another (then acorn is in the bundle, not in node_modules). */
const BUNDLED = !/\/shm\/outer-names\.[cm]?[jt]s(\?.*)?$/.test(import.meta.url);

function importParser(): void {
  acorn = null;
  import('acorn').then(
    (module) => {
      acorn = module;
    },
    () => undefined,
  );
}

// In a bundle, the main thread starts importing it at once (the import takes a turn of the event loop).
if (BUNDLED && isMainThread) importParser();

/**
 * acorn, loaded on first use: required, not imported, so that a thread that never sends a
 * function does not pay for loading a parser (~7 ms). In a bundle (or where it cannot be
 * required) it is imported instead, which a bundler bundles: null until that import has
 * finished (functions sent before are not checked).
 */
export function parser(): typeof import('acorn') | null {
  if (acorn === undefined) {
    if (BUNDLED) {
      importParser();
    } else {
      try {
        acorn = createRequire(import.meta.url)('acorn') as typeof import('acorn');
      } catch {
        importParser();
      }
    }
  }
  return acorn ?? null;
}

/**
 * The facts of a function's source (`Function.prototype.toString` text), or undefined when it
 * does not parse (acorn is older than the engine, or the text is not a function expression or
 * method): then nothing is checked, and the thread reports what fails.
 * @param method the text is method shorthand (`run() {…}`, `async *gen() {…}`, `get x() {…}`).
 */
export function analyzeSource(source: string, method: boolean): SourceFacts | undefined {
  const acorn = parser();
  if (acorn === null) return undefined;
  const prefix = method ? '({' : '(';
  let program: any;
  try {
    program = acorn.parse(`${prefix}${source}${method ? '})' : ')'}`, OPTIONS);
  } catch {
    return undefined;
  }
  const statement = program.body[0];
  if (program.body.length !== 1 || statement?.type !== 'ExpressionStatement') return undefined;
  let fn: any = statement.expression;
  let methodKey: any;
  if (method) {
    if (fn.type !== 'ObjectExpression' || fn.properties.length !== 1) return undefined;
    methodKey = fn.properties[0];
    fn = methodKey.value;
  }
  if (fn?.type !== 'ArrowFunctionExpression' && fn?.type !== 'FunctionExpression') return undefined;
  const tracker = new Tracker();
  const root = new Scope(undefined, true);
  // compileSource turns a method `m() {…}` into `function m() {…}`: inside, `m` is the function.
  if (methodKey !== undefined && !methodKey.computed && methodKey.key.type === 'Identifier') root.names.add(methodKey.key.name);
  tracker.fn(fn, root);
  const outer: OuterName[] = [];
  for (const [name, called] of tracker.free) {
    // (`arguments` in a top-level arrow is the compiled wrapper's: not an error in the thread.)
    if (!tracker.guarded.has(name) && name !== 'arguments') outer.push({ name, called });
  }
  return { outer, positionOffset: fn.type === 'ArrowFunctionExpression' ? 0 : parenOffset(acorn, source, fn, prefix.length) };
}

/** Where the parameter list's `(` is: V8's position of a non-arrow function. */
function parenOffset(acorn: typeof import('acorn'), source: string, fn: any, shift: number): number {
  const header = source.slice(0, fn.body.start - shift);
  const tokens: { type: string; start: number }[] = [];
  try {
    for (const token of acorn.tokenizer(header, OPTIONS)) tokens.push({ type: token.type.label, start: token.start });
  } catch {
    return 0;
  }
  let depth = 0;
  for (let i = tokens.length - 1; i >= 0; i--) {
    const type = tokens[i]!.type;
    if (type === ')') depth++;
    else if (type === '(' && --depth === 0) return tokens[i]!.start;
  }
  return 0;
}

class Scope {
  readonly names = new Set<string>();
  constructor(
    readonly parent: Scope | undefined,
    /** A function (or class field / static block) scope: where `var` lands. */
    readonly isFunction: boolean,
  ) {}

  has(name: string): boolean {
    return this.names.has(name) || (this.parent?.has(name) ?? false);
  }
}

class Tracker {
  /** Free names in order of first use: name → called. */
  readonly free = new Map<string, boolean>();
  /** Names used as `typeof name`. */
  readonly guarded = new Set<string>();

  private ref(name: string, scope: Scope, called: boolean): void {
    if (scope.has(name)) return;
    if (called || !this.free.has(name)) this.free.set(name, called || (this.free.get(name) ?? false));
  }

  /** A function: its name (expressions), parameters, `arguments`, hoisted declarations, body. */
  fn(node: any, outer: Scope): void {
    let scope = outer;
    if (node.type === 'FunctionExpression' && node.id) {
      scope = new Scope(scope, false);
      scope.names.add(node.id.name);
    }
    scope = new Scope(scope, true);
    if (node.type !== 'ArrowFunctionExpression') scope.names.add('arguments');
    for (const param of node.params) declarePattern(param, scope);
    // Parameter defaults see the parameters and the outside, not the body's declarations.
    for (const param of node.params) this.pattern(param, scope, false);
    if (node.body.type !== 'BlockStatement') {
      this.node(node.body, scope);
      return;
    }
    const body = new Scope(scope, true);
    hoistVars(node.body.body, body);
    declareLexical(node.body.body, body);
    for (const statement of node.body.body) this.node(statement, body);
  }

  private cls(node: any, outer: Scope): void {
    if (node.superClass) this.node(node.superClass, outer);
    const scope = new Scope(outer, false);
    if (node.id) scope.names.add(node.id.name);
    for (const member of node.body.body) {
      if (member.type === 'StaticBlock') {
        const block = new Scope(scope, true);
        hoistVars(member.body, block);
        declareLexical(member.body, block);
        for (const statement of member.body) this.node(statement, block);
        continue;
      }
      if (member.computed) this.node(member.key, scope);
      if (member.type === 'MethodDefinition') this.fn(member.value, scope);
      else if (member.value) this.node(member.value, new Scope(scope, true)); // a field's initializer: a function scope of its own
    }
  }

  /** A pattern: binding (declarations, parameters; names declared already) or assignment target (references). */
  private pattern(node: any, scope: Scope, assignment: boolean): void {
    switch (node.type) {
      case 'Identifier':
        if (assignment) this.ref(node.name, scope, false);
        return;
      case 'ObjectPattern':
        for (const property of node.properties) {
          if (property.type === 'RestElement') this.pattern(property.argument, scope, assignment);
          else {
            if (property.computed) this.node(property.key, scope);
            this.pattern(property.value, scope, assignment);
          }
        }
        return;
      case 'ArrayPattern':
        for (const element of node.elements) if (element) this.pattern(element, scope, assignment);
        return;
      case 'RestElement':
        this.pattern(node.argument, scope, assignment);
        return;
      case 'AssignmentPattern':
        this.pattern(node.left, scope, assignment);
        this.node(node.right, scope);
        return;
      default:
        this.node(node, scope); // a member expression target: `a.b = 1`
    }
  }

  private block(statements: any[], outer: Scope): void {
    const scope = new Scope(outer, false);
    declareLexical(statements, scope);
    for (const statement of statements) this.node(statement, scope);
  }

  node(node: any, scope: Scope): void {
    if (node === null || node === undefined) return;
    switch (node.type) {
      case 'Identifier':
        this.ref(node.name, scope, false);
        return;
      case 'Literal':
      case 'ThisExpression':
      case 'Super':
      case 'MetaProperty':
      case 'PrivateIdentifier':
      case 'EmptyStatement':
      case 'DebuggerStatement':
      case 'BreakStatement':
      case 'ContinueStatement':
      case 'TemplateElement':
        return;
      case 'FunctionExpression':
      case 'ArrowFunctionExpression':
      case 'FunctionDeclaration': // declared (hoisted) in its scope already
        this.fn(node, scope);
        return;
      case 'ClassExpression':
      case 'ClassDeclaration':
        this.cls(node, scope);
        return;
      case 'BlockStatement':
        this.block(node.body, scope);
        return;
      case 'StaticBlock':
        return; // (handled in cls)
      case 'VariableDeclaration':
        for (const declarator of node.declarations) {
          this.pattern(declarator.id, scope, false);
          this.node(declarator.init, scope);
        }
        return;
      case 'ForStatement': {
        const head = new Scope(scope, false);
        if (node.init?.type === 'VariableDeclaration' && node.init.kind !== 'var') for (const d of node.init.declarations) declarePattern(d.id, head);
        this.node(node.init, head);
        this.node(node.test, head);
        this.node(node.update, head);
        this.node(node.body, head);
        return;
      }
      case 'ForInStatement':
      case 'ForOfStatement': {
        const head = new Scope(scope, false);
        if (node.left.type === 'VariableDeclaration') {
          if (node.left.kind !== 'var') for (const d of node.left.declarations) declarePattern(d.id, head);
          this.node(node.left, head);
        } else this.pattern(node.left, head, true);
        this.node(node.right, head);
        this.node(node.body, head);
        return;
      }
      case 'SwitchStatement': {
        this.node(node.discriminant, scope);
        const body = new Scope(scope, false);
        const statements = node.cases.flatMap((c: any) => c.consequent);
        declareLexical(statements, body);
        for (const c of node.cases) {
          this.node(c.test, body);
          for (const statement of c.consequent) this.node(statement, body);
        }
        return;
      }
      case 'TryStatement':
        this.node(node.block, scope);
        if (node.handler) {
          const caught = new Scope(scope, false);
          if (node.handler.param) {
            declarePattern(node.handler.param, caught);
            this.pattern(node.handler.param, caught, false);
          }
          this.block(node.handler.body.body, caught);
        }
        this.node(node.finalizer, scope);
        return;
      case 'LabeledStatement':
        this.node(node.body, scope);
        return;
      case 'WithStatement':
        this.node(node.object, scope);
        return; // names inside may be the object's properties: not checked (strict code cannot use `with` anyway)
      case 'MemberExpression':
        this.node(node.object, scope);
        if (node.computed) this.node(node.property, scope);
        return;
      case 'Property':
        if (node.computed) this.node(node.key, scope);
        if (node.kind !== 'init' || node.method) this.fn(node.value, scope);
        else this.node(node.value, scope);
        return;
      case 'UnaryExpression':
        if (node.operator === 'typeof' && node.argument.type === 'Identifier') {
          this.guarded.add(node.argument.name);
          return;
        }
        this.node(node.argument, scope);
        return;
      case 'CallExpression':
      case 'NewExpression':
        if (node.callee.type === 'Identifier') this.ref(node.callee.name, scope, true);
        else this.node(node.callee, scope);
        for (const argument of node.arguments) this.node(argument, scope);
        return;
      case 'TaggedTemplateExpression':
        if (node.tag.type === 'Identifier') this.ref(node.tag.name, scope, true);
        else this.node(node.tag, scope);
        this.node(node.quasi, scope);
        return;
      case 'AssignmentExpression':
        this.pattern(node.left, scope, true);
        this.node(node.right, scope);
        return;
      case 'UpdateExpression':
        this.node(node.argument, scope);
        return;
      default:
        // Everything else: every child node, as an expression or statement.
        for (const key in node) {
          if (key === 'type' || key === 'start' || key === 'end' || key === 'loc' || key === 'range') continue;
          const value = node[key];
          if (Array.isArray(value)) {
            for (const item of value) if (item !== null && typeof item === 'object' && typeof item.type === 'string') this.node(item, scope);
          } else if (value !== null && typeof value === 'object' && typeof value.type === 'string') this.node(value, scope);
        }
    }
  }
}

/** The names a binding pattern declares. */
function declarePattern(node: any, scope: Scope): void {
  switch (node.type) {
    case 'Identifier':
      scope.names.add(node.name);
      return;
    case 'ObjectPattern':
      for (const property of node.properties) declarePattern(property.type === 'RestElement' ? property.argument : property.value, scope);
      return;
    case 'ArrayPattern':
      for (const element of node.elements) if (element) declarePattern(element, scope);
      return;
    case 'RestElement':
      declarePattern(node.argument, scope);
      return;
    case 'AssignmentPattern':
      declarePattern(node.left, scope);
  }
}

/** `let`, `const`, `class` and (strict code) `function` declarations directly in a statement list. */
function declareLexical(statements: any[], scope: Scope): void {
  for (const statement of statements) {
    if (statement.type === 'VariableDeclaration' && statement.kind !== 'var') for (const d of statement.declarations) declarePattern(d.id, scope);
    else if ((statement.type === 'FunctionDeclaration' || statement.type === 'ClassDeclaration') && statement.id) scope.names.add(statement.id.name);
  }
}

/** `var` declarations anywhere in a function's statements (not in nested functions), into its scope. */
function hoistVars(statements: any[], scope: Scope): void {
  const visit = (node: any): void => {
    if (node === null || node === undefined) return;
    switch (node.type) {
      case 'VariableDeclaration':
        if (node.kind === 'var') for (const d of node.declarations) declarePattern(d.id, scope);
        return;
      case 'BlockStatement':
        node.body.forEach(visit);
        return;
      case 'IfStatement':
        visit(node.consequent);
        visit(node.alternate);
        return;
      case 'ForStatement':
        visit(node.init);
        visit(node.body);
        return;
      case 'ForInStatement':
      case 'ForOfStatement':
        visit(node.left);
        visit(node.body);
        return;
      case 'WhileStatement':
      case 'DoWhileStatement':
      case 'LabeledStatement':
      case 'WithStatement':
        visit(node.body);
        return;
      case 'TryStatement':
        visit(node.block);
        visit(node.handler?.body);
        visit(node.finalizer);
        return;
      case 'SwitchStatement':
        for (const c of node.cases) c.consequent.forEach(visit);
    }
  };
  statements.forEach(visit);
}
