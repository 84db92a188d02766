/*
 * Compiles rule definitions into what the scanner runs: one RE2 per rule
 * (a built-in detector's pattern or the rule's own `pattern:`), one RE2.Set
 * over all of them so clean text costs a single pass, and the keyword
 * matchers. Everything runs on RE2: an admin's pattern can never backtrack
 * catastrophically. A pattern RE2 refuses is a load error at its line.
 */
import RE2 from 're2';
import { DETECTORS, VALIDATORS } from '../detectors';
import type { Detector } from '../detectors/types';
import type { CompiledRule, CompiledRules, RuleDefinition, Scope } from './types';
import type { MvCode } from '../errors';

// The compiled shapes live in types.ts (which RuleSet needs) so the two files do not import each other.
export type { CompiledRule, CompiledRules, Scope } from './types';

/** Default keyword window for custom patterns, in characters either side. */
export const DEFAULT_WITHIN = 300;
/** Assumed longest match of a custom pattern, for carrying context across chunks. */
export const CUSTOM_MAX_LENGTH = 256;

export const DEFAULT_SCOPE: readonly Scope[] = ['subject', 'body', 'attachments'];

/**
 * A match of `maxLength` characters in bytes of UTF-8. Only a pattern that
 * can match a non-ASCII character needs 4 bytes per character: one with a
 * Unicode class, '.', a negated class, a non-ASCII literal or escape, or case
 * folding (which takes 'k' to the Kelvin sign). \d, \s, \w and \b are ASCII in RE2.
 */
export function maxBytes(source: string, flags: string, maxLength: number): number {
  const wide = /\\[pPx]|\.|\[\^|[^\x00-\x7f]|\(\?[a-z]*i/.test(source) || flags.includes('i');
  return wide ? 4 * maxLength : maxLength;
}

export class PatternError extends Error {
  readonly code: MvCode = 'MV_RULE_PATTERN';
  constructor(
    readonly rule: RuleDefinition,
    readonly field: 'pattern' | 'detector' | 'validator' | 'replacement',
    message: string,
  ) {
    super(message);
  }
}

function escapeRe(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
}

/** Between the words of a keyword phrase: what people and programs put there (a space, a line break, '_', '-', '.') or nothing (camelCase). */
const KEYWORD_GAP = '[\\s_.\\-]{0,3}';

/** RE2 source for one keyword: its words, with KEYWORD_GAP between them ("social security" finds social_security, socialSecurity, "social\r\nsecurity"). */
export function keywordSource(word: string): string {
  return word.trim().toLowerCase().split(/\s+/).map(escapeRe).join(KEYWORD_GAP);
}

function keywordAlternatives(words: readonly string[]): string | undefined {
  const uniq = [...new Set(words.map((w) => w.trim().toLowerCase()).filter(Boolean))];
  return uniq.length ? `(?:${uniq.map(keywordSource).join('|')})` : undefined;
}

/** Matches any of `words` (case-insensitive), not glued to a letter or digit on either side. */
export function keywordMatcher(words: readonly string[]): RE2 | undefined {
  const any = keywordAlternatives(words);
  // Word-ish boundaries without lookbehind: a keyword must not be glued to letters.
  return any ? new RE2(`(?:^|[^\\p{L}\\p{N}])${any}(?:$|[^\\p{L}\\p{N}])`, 'iu') : undefined;
}

/** Any of `words` (case-insensitive) anywhere, glued or not: see CompiledRule.keywordPhrases. */
function keywordPhrases(words: readonly string[]): RE2 | undefined {
  const any = keywordAlternatives(words);
  return any ? new RE2(any, 'iu') : undefined;
}

export function compileRule(def: RuleDefinition): CompiledRule {
  let detector: Detector | undefined;
  let source: string;
  let flags = '';
  if (def.detector) {
    detector = DETECTORS.get(def.detector);
    if (!detector) throw new PatternError(def, 'detector', `unknown detector '${def.detector}' (known: ${[...DETECTORS.keys()].join(', ')})`);
    source = detector.pattern;
    flags = detector.flags ?? '';
  } else {
    source = def.pattern!;
  }
  let re: RE2;
  try {
    re = new RE2(source, 'gu' + flags.replace(/[gu]/g, ''));
  } catch (err) {
    throw new PatternError(def, 'pattern', `pattern is not valid RE2: ${(err as Error).message}`);
  }
  if (re.test('')) throw new PatternError(def, 'pattern', 'pattern matches the empty string');
  re.lastIndex = 0;
  let validate: (v: string) => boolean = detector ? (v) => detector!.validate(v) : () => true;
  if (def.validator) {
    const extra = VALIDATORS.get(def.validator);
    if (!extra) throw new PatternError(def, 'validator', `unknown validator '${def.validator}' (known: ${[...VALIDATORS.keys()].join(', ')})`);
    const base = validate;
    validate = (v) => base(v) && extra(v);
  }
  const ruleKeywords = def.keywords ?? [];
  return {
    def,
    detectorName: detector?.name ?? 'pattern',
    re,
    group: (detector as (Detector & { group?: number }) | undefined)?.group ?? 0,
    validate,
    requiresKeyword: detector?.requiresKeyword ? (v) => detector!.requiresKeyword!(v) : () => false,
    keywords: keywordMatcher([...(detector?.keywords ?? []), ...ruleKeywords]),
    keywordPhrases: keywordPhrases([...(detector?.keywords ?? []), ...ruleKeywords]),
    keywordsRequired: ruleKeywords.length > 0,
    within: def.within ?? detector?.within ?? DEFAULT_WITHIN,
    maxLength: detector?.maxLength ?? CUSTOM_MAX_LENGTH,
    maxBytes: maxBytes(source, re.flags, detector?.maxLength ?? CUSTOM_MAX_LENGTH),
    scope: new Set((def.scope as Scope[] | undefined) ?? DEFAULT_SCOPE),
  };
}

/** Builds the scanner's view of already compiled rules. */
export function buildCompiled(rules: CompiledRule[]): CompiledRules {
  const set = rules.length ? new RE2.Set(rules.map((r) => r.re.source), 'u') : undefined;
  const horizon = rules.reduce((h, r) => Math.max(h, r.maxBytes + r.within), 0);
  const maxBytes = rules.reduce((n, r) => Math.max(n, r.maxBytes), 0);
  return { rules, set, horizon, maxBytes };
}

/** Compiles every rule; throws the first PatternError. */
export function compileRules(defs: readonly RuleDefinition[]): CompiledRules {
  return buildCompiled(defs.map(compileRule));
}
