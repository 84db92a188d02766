/*
 * The stage order, in one place. `mailveil serve --print-pipeline` prints it
 * and the startup log line repeats it.
 *
 *   client ─► pass 1: analyzers ─► spool        (as bytes arrive)
 *             decide                             (findings ─► one verdict)
 *             pass 2: spool ─► rewriters ─► next hop, final "." last
 */
import { headerScan } from './header-scan';
import { dlpScan } from './dlp-scan';
import { redact } from './redact';
import { decide } from './decide';
import { anonymiseHeaders } from './anonymise-headers';
import { verdictHeader } from './verdict-header';
import { smtpEncode } from './smtp-encode';
import type { Analyzer, Decider, Rewriter } from './stage';

export const PIPELINE: { pass1: readonly Analyzer[]; decide: readonly Decider[]; pass2: readonly Rewriter[] } = {
  pass1: [headerScan, dlpScan],
  decide: [decide],
  // smtp-encode must stay last: it makes the bytes safe for the wire.
  // redact first: it works on the original MIME structure.
  pass2: [redact, anonymiseHeaders, verdictHeader, smtpEncode],
};

export function describePipeline(): string[] {
  return [
    `pass 1: client -> ${[...PIPELINE.pass1.map((s) => s.name), 'spool'].join(' -> ')}`,
    `decide: ${PIPELINE.decide.map((s) => s.name).join(' -> ')}`,
    `pass 2: spool -> ${[...PIPELINE.pass2.map((s) => s.name), 'next-hop'].join(' -> ')}`,
  ];
}
