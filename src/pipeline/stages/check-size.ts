/* Step `check-size`: a message over max_message_size gets 552 5.3.4, after the client's dot (receive.ts). */
import type { Step } from '../message';

export const checkSize: Step = async (m) => (m.tooBig ? { end: { kind: 'too_big' } } : { next: 'decide' });
