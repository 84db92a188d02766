/*
 * What a rule (or the unscannable-message policy) can do to a message.
 * Its own file, below both: the config schema validates `unscannable:`
 * against this list, and the rules are compiled against it, so neither
 * config nor rules has to import the other.
 */
export const ACTIONS = ['monitor', 'tag', 'redact', 'quarantine', 'reject', 'tempfail'] as const;
export type Action = (typeof ACTIONS)[number];
