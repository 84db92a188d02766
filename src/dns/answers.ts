/*
 * Reading an answer section: the records of one type that answer the
 * question, after the CNAME chain the resolver put in front of them
 * (RFC 1034 3.6.2: a recursive resolver returns the chain and the data at
 * its end, in one answer). Records at any other owner are ignored, so an
 * answer cannot slip in data for a name nobody asked about.
 */
import type { Answer } from 'dns-packet';
import { canonicalServiceName } from './names';

/** Longer chains than this are treated as broken (resolvers stop near 8-12). */
export const MAX_CNAME_CHAIN = 8;

// Not Extract<>: A, AAAA and CNAME share one answer type whose `type` is a union.
type Of<T extends Answer['type']> = Answer & { type: T };

/** The name the CNAME chain from `qname` ends at, or undefined if it loops, is too long, or names garbage. */
export function chainEnd(answers: readonly Answer[], qname: string): string | undefined {
  let name = qname;
  const seen = new Set([name]);
  for (let hop = 0; ; hop++) {
    const cname = answers.find((a): a is Of<'CNAME'> => a.type === 'CNAME' && canonicalServiceName(a.name) === name);
    if (!cname) return name;
    const next = canonicalServiceName(cname.data);
    if (next === undefined || seen.has(next) || hop >= MAX_CNAME_CHAIN) return undefined;
    seen.add(next);
    name = next;
  }
}

/** The `type` records that answer `qname` (canonical), following CNAMEs. */
export function recordsFor<T extends Answer['type']>(answers: readonly Answer[], qname: string, type: T): Of<T>[] {
  const owner = chainEnd(answers, qname);
  if (owner === undefined) return [];
  return answers.filter((a): a is Of<T> => a.type === type && canonicalServiceName(a.name) === owner);
}
