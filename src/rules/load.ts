/*
 * Loads the rule set from two layers, as rspamd's local.d does: the files of
 * rules_dir (shipped, never edited by the admin) in name order, then the
 * files of local_rules_dir (the admin's) in name order. Every error names
 * `file:line:col` (1-based) so `mailveil rules check` can point an admin at
 * the spot; an error about a whole directory names just the directory.
 * Loading is all-or-nothing: the caller gets a complete RuleSet or a list of
 * errors, never a partial set, which is what makes reload atomic.
 *
 * Merging across files (both layers, in load order): `headers.remove`,
 * `internal_networks` and `internal_domains` accumulate; `received` is taken
 * from the last file that sets it. Rule ids are unique within a layer. A
 * local rule with a shipped rule's id replaces that rule whole, in its
 * place; `enabled: false` switches a rule off (a local `id` + `enabled:
 * false` alone switches off the shipped rule of that id). A missing
 * local_rules_dir means no local rules; one that exists but cannot be read
 * is an error.
 *
 * `tls_policy:` (the static TLS map): keys are domains or `.domain`, lower
 * cased, trailing dot dropped. A key is unique within a layer (across its
 * files); a local entry replaces the shipped entry of the same key whole.
 * `require_tls: verified` on a rule sends a message it fires on through
 * step `escalate` (pipeline/stages/escalate.ts): verified TLS or no delivery.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import Ajv, { type ErrorObject } from 'ajv';
import { LineCounter, parseDocument, isNode, isMap, isScalar, type Document } from 'yaml';
import { ruleFileSchema } from './schema';
import { parseCidr } from '../config/address';
import type { HeaderPolicy, RuleDefinition, RuleLayer, RuleSet, RuleSource } from './types';
import { buildCompiled, compileRule, PatternError, type CompiledRule } from './compile';
import type { MvCode } from '../errors';
import { normaliseKey, TLS_LEVELS, type StaticTlsEntry, type TlsLevel } from '../tls/levels';

export interface RuleLoadError {
  file: string;
  /** Absent for an error about a whole directory (missing, unreadable). */
  line?: number;
  col?: number;
  message: string;
}

export class RuleSetError extends Error {
  readonly code: MvCode = 'MV_RULES';
  constructor(readonly errors: RuleLoadError[]) {
    super(errors.map(formatRuleError).join('\n'));
  }
}

/** `file:line:col: message`, or `dir: message` for a directory-level error. */
export function formatRuleError(e: RuleLoadError): string {
  return e.line === undefined ? `${e.file}: ${e.message}` : `${e.file}:${e.line}:${e.col ?? 1}: ${e.message}`;
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

const TLS_ENTRY_HINT = `must be a level (${TLS_LEVELS.join(', ')}) or { level: LEVEL, match: [names] }`;

function describe(err: ErrorObject): { path: (string | number)[]; message: string; atKey?: boolean } | undefined {
  const path = err.instancePath.split('/').slice(1).map((s) => (/^\d+$/.test(s) ? Number(s) : s));
  const name = path.length ? String(path[path.length - 1]) : 'file';
  if (path[0] === 'tls_policy') {
    if (err.keyword === 'propertyNames') {
      const key = (err.params as { propertyName: string }).propertyName;
      return { path: [...path, key], message: `tls_policy key '${key}' is not a domain or .domain`, atKey: true };
    }
    if (err.schemaPath.includes('/propertyNames/')) return undefined;
    if (path.length === 2 && err.keyword === 'anyOf') return { path, message: `tls_policy entry '${path[1]}' ${TLS_ENTRY_HINT}` };
    if (path.length === 2 && err.schemaPath.includes('/anyOf/')) return undefined; // the anyOf line says it
    if (path[2] === 'level' && err.keyword === 'enum') return { path, message: `tls_policy '${path[1]}': level must be one of: ${TLS_LEVELS.join(', ')}` };
    if (path[2] === 'match') return { path, message: `tls_policy '${path[1]}': match must be a list of certificate names (a name, .domain, hostname, nexthop or dot-nexthop)` };
  }
  switch (err.keyword) {
    case 'additionalProperties': {
      const key = (err.params as { additionalProperty: string }).additionalProperty;
      return { path: [...path, key], message: `unknown key '${key}'`, atKey: true };
    }
    case 'enum':
      return { path, message: `${name} must be one of: ${(err.params as { allowedValues: unknown[] }).allowedValues.join(', ')}` };
    case 'format':
      return { path, message: `${name} is not an address or CIDR` };
    case 'if':
      return undefined; // the else-branch's own errors say what is wrong
    case 'oneOf':
      return { path, message: 'a rule needs exactly one of detector or pattern' };
    case 'required':
      return { path, message: `missing required key '${(err.params as { missingProperty: string }).missingProperty}'` };
    case 'pattern':
      if (name === 'reply') return { path, message: 'reply must look like "550 5.7.1 text" (4xx/5xx with an enhanced code, ASCII)' };
      if (name === 'id' && path[0] === 'rules') return { path, message: 'id must match [a-z0-9-]+ (lower-case letters, digits and hyphens)' };
      return { path, message: `${name} has an invalid value` };
    default:
      return { path, message: `${name} ${err.message}` };
  }
}

type TlsPolicyValue = TlsLevel | { level: TlsLevel; match?: string[] };

interface ParsedFile {
  headers?: Partial<HeaderPolicy>;
  tls_policy?: Record<string, TlsPolicyValue>;
  rules?: Omit<RuleDefinition, 'source'>[];
}

/** Parses and validates one file's text. */
/** Where a rule and each of its keys start, for error messages. */
export type RulePositions = { rule: { line: number; col: number } } & Partial<Record<string, { line: number; col: number }>>;

export function parseRuleFile(
  text: string,
  file: string,
): { value?: ParsedFile; errors: RuleLoadError[]; positions: RulePositions[]; tlsPositions?: Record<string, { line: number; col: number }> } {
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
      if (!d) continue;
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
  const tlsPositions: Record<string, { line: number; col: number }> = {};
  for (const key of Object.keys(parsed.tls_policy ?? {})) tlsPositions[key] = position(doc, lc, ['tls_policy', key], true);
  return { value: parsed, errors, positions, tlsPositions };
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

const INCOMPLETE_RULE = /^(a rule needs exactly one of detector or pattern|missing required key 'action')$/;
const LOCAL_RULE_HINT = ' (a local rule replaces the shipped rule of its id whole; or write just id and enabled: false to switch it off)';

/** A rule as loaded, before the layers are resolved into the final list. */
interface Slot {
  def: RuleDefinition;
  compiled?: CompiledRule;
}

/** `id` + `enabled: false` and nothing to detect: only switches another rule off. */
function isSwitchOff(r: Omit<RuleDefinition, 'source'>): boolean {
  return r.enabled === false && r.detector === undefined && r.pattern === undefined;
}

/**
 * Builds the whole RuleSet from rules_dir and, if given, local_rules_dir, or
 * throws RuleSetError with every error found.
 */
export function loadRuleSet(dir: string, localDir?: string): RuleSet {
  const errors: RuleLoadError[] = [];
  let shippedFiles: string[] = [];
  let localFiles: string[] = [];
  try {
    shippedFiles = ruleFiles(dir);
  } catch (err) {
    errors.push({ file: dir, message: `cannot read rules directory: ${(err as NodeJS.ErrnoException).code ?? err}` });
  }
  if (localDir !== undefined) {
    if (resolve(localDir) === resolve(dir)) errors.push({ file: localDir, message: 'local_rules_dir must not be rules_dir: the local layer overrides the shipped one' });
    else
      try {
        localFiles = ruleFiles(localDir);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // No local dir: no local rules. One that exists but cannot be read is an error.
        if (code !== 'ENOENT') errors.push({ file: localDir, message: `cannot read local rules directory: ${code ?? err}` });
      }
  }
  if (errors.length) throw new RuleSetError(errors);
  const headers: HeaderPolicy = { remove: [], received: 'keep', internal_networks: [], internal_domains: [] };
  const slots: Slot[] = [];
  /** id -> index in slots, across layers (the rule that is live under that id). */
  const index = new Map<string, number>();
  /** Per layer: id -> where it was first defined, for the duplicate check. */
  const seen: Record<RuleLayer, Map<string, string>> = { shipped: new Map(), local: new Map() };
  const tlsPolicy = new Map<string, StaticTlsEntry>();
  /** Per layer: tls_policy key -> where it was first written, for the duplicate check. */
  const tlsSeen: Record<RuleLayer, Map<string, string>> = { shipped: new Map(), local: new Map() };
  const layered: [string, RuleLayer][] = [...shippedFiles.map((f): [string, RuleLayer] => [f, 'shipped']), ...localFiles.map((f): [string, RuleLayer] => [f, 'local'])];
  for (const [file, layer] of layered) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      errors.push({ file, line: 1, col: 1, message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? err}` });
      continue;
    }
    const { value, errors: fileErrors, positions, tlsPositions } = parseRuleFile(text, file);
    // A partial local rule (just a new action, say) is the likely mistake here.
    if (layer === 'local') for (const e of fileErrors) if (INCOMPLETE_RULE.test(e.message)) e.message += LOCAL_RULE_HINT;
    errors.push(...fileErrors);
    if (!value) continue;
    const h = value.headers ?? {};
    headers.remove.push(...(h.remove ?? []));
    if (h.received) headers.received = h.received;
    headers.internal_networks.push(...(h.internal_networks ?? []));
    headers.internal_domains.push(...(h.internal_domains ?? []));
    for (const [rawKey, v] of Object.entries(value.tls_policy ?? {})) {
      const pos = tlsPositions?.[rawKey] ?? { line: 1, col: 1 };
      const key = normaliseKey(rawKey);
      const prev = tlsSeen[layer].get(key);
      if (prev) {
        errors.push({ file, ...pos, message: `duplicate tls_policy entry '${key}' (first written at ${prev})` });
        continue;
      }
      tlsSeen[layer].set(key, `${file}:${pos.line}`);
      const shipped = layer === 'local' ? tlsPolicy.get(key) : undefined;
      const source: StaticTlsEntry['source'] = { file, line: pos.line, layer, ...(shipped?.source ? { replaces: `${shipped.source.file}:${shipped.source.line}` } : {}) };
      if (typeof v !== 'string' && v.match && (v.level === 'none' || v.level === 'may' || v.level === 'encrypt')) {
        errors.push({ file, ...pos, message: `tls_policy '${key}': match is only used at levels dane, dane-only, verify and secure, not ${v.level}` });
        continue;
      }
      const entry: StaticTlsEntry = typeof v === 'string' ? { key, level: v, source } : { key, level: v.level, ...(v.match ? { match: v.match.map(normaliseKey) } : {}), source };
      tlsPolicy.set(key, entry);
    }
    (value.rules ?? []).forEach((r, i) => {
      const pos = positions[i];
      const source: RuleSource = { file, line: pos.rule.line, layer };
      const prev = seen[layer].get(r.id);
      if (prev) {
        errors.push({ file, ...(pos.id ?? pos.rule), message: `duplicate rule id '${r.id}' (first defined at ${prev})` });
        return;
      }
      seen[layer].set(r.id, `${file}:${source.line}`);
      const at = index.get(r.id);
      const shipped = layer === 'local' && at !== undefined ? slots[at].def : undefined;
      if (shipped) source.replaces = `${shipped.source.file}:${shipped.source.line}`;
      const def = { ...r, source } as RuleDefinition;
      const slot: Slot = { def };
      if (isSwitchOff(r)) {
        if (!shipped) {
          errors.push({
            file,
            ...(pos.id ?? pos.rule),
            message:
              layer === 'local'
                ? `no shipped rule has id '${r.id}' to switch off`
                : `rule '${r.id}' has only enabled: false; to switch off a shipped rule, put this in local_rules_dir`,
          });
          return;
        }
      } else {
        for (const problem of ruleProblems(def)) errors.push({ file, ...(pos[problem.key] ?? pos.rule), message: problem.message });
        try {
          slot.compiled = compileRule(def);
        } catch (err) {
          if (!(err instanceof PatternError)) throw err;
          errors.push({ file, ...(pos[err.field] ?? pos.rule), message: err.message });
        }
      }
      // A local rule with a shipped id takes the shipped rule's place, whole.
      if (at !== undefined && shipped) slots[at] = slot;
      else {
        index.set(r.id, slots.length);
        slots.push(slot);
      }
    });
  }
  if (errors.length) throw new RuleSetError(errors);
  const live = slots.filter((s) => s.def.enabled !== false);
  const uniq = (a: string[]) => [...new Set(a.map((s) => s.trim()))];
  return {
    headers: {
      remove: uniq(headers.remove),
      received: headers.received,
      internal_networks: uniq(headers.internal_networks),
      internal_domains: uniq(headers.internal_domains.map((d) => d.toLowerCase().replace(/^\./, ''))),
    },
    rules: live.map((s) => s.def),
    tlsPolicy,
    compiled: buildCompiled(live.map((s) => s.compiled!)),
    files: [...shippedFiles, ...localFiles],
    layers: { shipped: { dir, files: shippedFiles }, local: { dir: localDir, files: localFiles } },
    disabled: slots.filter((s) => s.def.enabled === false).map((s) => ({ id: s.def.id, source: s.def.source })),
    loadedAt: new Date(),
  };
}
