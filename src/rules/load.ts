/*
 * Loads rules.d/*.yaml in name order into one RuleSet. Every error names
 * `file:line:col` (1-based) so `mailveil rules check` can point an admin at
 * the spot. Loading is all-or-nothing: the caller gets a complete RuleSet or
 * a list of errors, never a partial set, which is what makes reload atomic.
 *
 * Merging across files: `headers.remove`, `internal_networks` and
 * `internal_domains` accumulate; `received` is taken from the last file that
 * sets it; rules accumulate and ids must be unique across the whole set.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv, { type ErrorObject } from 'ajv';
import { LineCounter, parseDocument, isNode, isMap, isScalar, type Document } from 'yaml';
import { ruleFileSchema } from './schema';
import { parseCidr } from '../config/address';
import type { HeaderPolicy, RuleDefinition, RuleSet } from './types';
import { buildCompiled, compileRule, PatternError, type CompiledRule } from './compile';

export interface RuleLoadError {
  file: string;
  line: number;
  col: number;
  message: string;
}

export class RuleSetError extends Error {
  readonly code = 'MV_RULES';
  constructor(readonly errors: RuleLoadError[]) {
    super(errors.map(formatRuleError).join('\n'));
  }
}

export function formatRuleError(e: RuleLoadError): string {
  return `${e.file}:${e.line}:${e.col}: ${e.message}`;
}

const ajv = new Ajv({ allErrors: true, strict: true, strictRequired: false });
ajv.addFormat('cidr', (v: string) => parseCidr(v) !== undefined);
const validateFile = ajv.compile(ruleFileSchema);

export const EMPTY_HEADER_POLICY: HeaderPolicy = {
  remove: [],
  received: 'keep',
  internal_networks: [],
  internal_domains: [],
};

function position(doc: Document, lc: LineCounter, path: (string | number)[], atKey = false): { line: number; col: number } {
  if (atKey && path.length) {
    // Point at the key itself (e.g. a misspelt key), not at its value.
    const parent = path.length > 1 ? doc.getIn(path.slice(0, -1), true) : doc.contents;
    const pair = isMap(parent) ? parent.items.find((p) => isScalar(p.key) && p.key.value === path[path.length - 1]) : undefined;
    if (pair && isNode(pair.key) && pair.key.range) {
      const pos = lc.linePos(pair.key.range[0]);
      return { line: pos.line, col: pos.col };
    }
  }
  // Walk up the path until a node with a source range is found.
  for (let p = path.slice(); ; p.pop()) {
    const node = p.length ? doc.getIn(p, true) : doc.contents;
    if (isNode(node) && node.range) {
      const pos = lc.linePos(node.range[0]);
      return { line: pos.line, col: pos.col };
    }
    if (!p.length) return { line: 1, col: 1 };
  }
}

function describe(err: ErrorObject): { path: (string | number)[]; message: string; atKey?: boolean } {
  const path = err.instancePath.split('/').slice(1).map((s) => (/^\d+$/.test(s) ? Number(s) : s));
  const name = path.length ? String(path[path.length - 1]) : 'file';
  switch (err.keyword) {
    case 'additionalProperties': {
      const key = (err.params as { additionalProperty: string }).additionalProperty;
      return { path: [...path, key], message: `unknown key '${key}'`, atKey: true };
    }
    case 'enum':
      return { path, message: `${name} must be one of: ${(err.params as { allowedValues: unknown[] }).allowedValues.join(', ')}` };
    case 'format':
      return { path, message: `${name} is not an address or CIDR` };
    case 'oneOf':
      return { path, message: 'a rule needs exactly one of detector or pattern' };
    case 'required':
      return { path, message: `missing required key '${(err.params as { missingProperty: string }).missingProperty}'` };
    case 'pattern':
      return { path, message: name === 'reply' ? 'reply must look like "550 5.7.1 text" (4xx/5xx with an enhanced code, ASCII)' : `${name} has an invalid value` };
    default:
      return { path, message: `${name} ${err.message}` };
  }
}

interface ParsedFile {
  headers?: Partial<HeaderPolicy>;
  rules?: Omit<RuleDefinition, 'source'>[];
}

/** Parses and validates one file's text. */
/** Where a rule and each of its keys start, for error messages. */
export type RulePositions = { rule: { line: number; col: number } } & Partial<Record<string, { line: number; col: number }>>;

export function parseRuleFile(text: string, file: string): { value?: ParsedFile; errors: RuleLoadError[]; positions: RulePositions[] } {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const errors: RuleLoadError[] = doc.errors.map((e) => {
    const pos = lc.linePos(e.pos[0]);
    return { file, line: pos.line, col: pos.col, message: e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '') };
  });
  if (errors.length) return { errors, positions: [] };
  const value = (doc.toJS() ?? {}) as unknown;
  if (!validateFile(value)) {
    const seen = new Set<string>();
    for (const err of validateFile.errors ?? []) {
      // oneOf reports its branches too; keep the summary line only.
      if (err.schemaPath.includes('/oneOf/')) continue;
      const d = describe(err);
      const key = d.path.join('/') + d.message;
      if (seen.has(key)) continue;
      seen.add(key);
      errors.push({ file, ...position(doc, lc, d.path, d.atKey), message: d.message });
    }
    return { errors, positions: [] };
  }
  const parsed = value as ParsedFile;
  const positions = (parsed.rules ?? []).map((r, i) => {
    const pos: RulePositions = { rule: position(doc, lc, ['rules', i]) };
    for (const key of Object.keys(r)) pos[key] = position(doc, lc, ['rules', i, key]);
    return pos;
  });
  return { value: parsed, errors, positions };
}

/** Checks the schema cannot express: keys that only make sense with some actions. */
function ruleProblems(r: RuleDefinition): { key: string; message: string }[] {
  const out: { key: string; message: string }[] = [];
  if (r.reply !== undefined) {
    if (r.action !== 'reject' && r.action !== 'tempfail') out.push({ key: 'reply', message: 'reply is only used by reject and tempfail rules' });
    else {
      const [code, enhanced] = r.reply.split(' ');
      const want = r.action === 'reject' ? '5' : '4';
      if (code[0] !== want) out.push({ key: 'reply', message: `a ${r.action} reply must be a ${want}xx code` });
      else if (enhanced[0] !== code[0]) out.push({ key: 'reply', message: `enhanced status ${enhanced} must be in the class of ${code} (RFC 3463)` });
    }
  }
  if (r.replacement !== undefined && r.action !== 'redact') out.push({ key: 'replacement', message: 'replacement is only used by redact rules' });
  return out;
}

/** Lists the rule files of a directory in load order. */
export function ruleFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((n) => /\.ya?ml$/.test(n) && !n.startsWith('.'))
    .sort()
    .map((n) => join(dir, n));
}

/** Builds the whole RuleSet or throws RuleSetError with every error found. */
export function loadRuleSet(dir: string): RuleSet {
  let files: string[];
  try {
    files = ruleFiles(dir);
  } catch (err) {
    throw new RuleSetError([{ file: dir, line: 1, col: 1, message: `cannot read rules directory: ${(err as NodeJS.ErrnoException).code ?? err}` }]);
  }
  const errors: RuleLoadError[] = [];
  const headers: HeaderPolicy = { remove: [], received: 'keep', internal_networks: [], internal_domains: [] };
  const rules: RuleDefinition[] = [];
  const compiled: CompiledRule[] = [];
  const ids = new Map<string, string>();
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      errors.push({ file, line: 1, col: 1, message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? err}` });
      continue;
    }
    const { value, errors: fileErrors, positions } = parseRuleFile(text, file);
    errors.push(...fileErrors);
    if (!value) continue;
    const h = value.headers ?? {};
    headers.remove.push(...(h.remove ?? []));
    if (h.received) headers.received = h.received;
    headers.internal_networks.push(...(h.internal_networks ?? []));
    headers.internal_domains.push(...(h.internal_domains ?? []));
    (value.rules ?? []).forEach((r, i) => {
      const pos = positions[i];
      const source = { file, line: pos.rule.line };
      const prev = ids.get(r.id);
      if (prev) errors.push({ file, ...(pos.id ?? pos.rule), message: `duplicate rule id '${r.id}' (first defined at ${prev})` });
      ids.set(r.id, `${file}:${source.line}`);
      const def = { ...r, source };
      for (const problem of ruleProblems(def)) errors.push({ file, ...(pos[problem.key] ?? pos.rule), message: problem.message });
      rules.push(def);
      try {
        compiled.push(compileRule(def));
      } catch (err) {
        if (!(err instanceof PatternError)) throw err;
        errors.push({ file, ...(pos[err.field] ?? pos.rule), message: err.message });
      }
    });
  }
  if (errors.length) throw new RuleSetError(errors);
  const uniq = (a: string[]) => [...new Set(a.map((s) => s.trim()))];
  return {
    headers: {
      remove: uniq(headers.remove),
      received: headers.received,
      internal_networks: uniq(headers.internal_networks),
      internal_domains: uniq(headers.internal_domains.map((d) => d.toLowerCase().replace(/^\./, ''))),
    },
    rules,
    compiled: buildCompiled(compiled),
    files,
    loadedAt: new Date(),
  };
}
