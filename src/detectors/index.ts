/*
 * The built-in detector catalogue (README, "Built-in detectors") and the
 * named validators a custom `pattern:` rule may use (`validator: luhn`).
 *
 * One detector per file in this directory; this file only lists them. The
 * catalogue is checked when the module loads (unique snake_case names, lower
 * case keywords, sane numbers) and fails loudly, so a broken detector never
 * reaches a running server. Every built-in writes its flags inline (`(?i:...)`)
 * and leaves `flags` unset, so all patterns can share one RE2.Set compiled
 * with the 'u' flag.
 */
import type { Detector } from './types';
import { usSsn, validateSsn } from './us-ssn';
import { creditCard, validateCard } from './credit-card';
import { iban, validateIban } from './iban';
import { emailAddress, validateEmail } from './email-address';
import { phoneNumber, validatePhone } from './phone-number';
import { ipv4, validateIpv4 } from './ipv4';
import { ipv6, validateIpv6 } from './ipv6';
import { ukNino, validateNino } from './uk-nino';
import { nlBsn, validateBsn } from './nl-bsn';
import { esDniNie, validateDniNie } from './es-dni-nie';
import { frNir, validateNir } from './fr-nir';
import { itCodiceFiscale, validateCodiceFiscale } from './it-codice-fiscale';
import { deSteuerId, validateSteuerId } from './de-steuer-id';
import { plPesel, validatePesel } from './pl-pesel';
import { sePersonnummer, validatePersonnummer } from './se-personnummer';
import { privateKey } from './private-key';
import { awsAccessKey } from './aws-access-key';
import { elfproefBsn, iso7064Mod11_10, iso7064Mod97_10, luhn, mod11, mod97, verhoeff } from './checksums';

export type { Detector } from './types';

const ALL: readonly Detector[] = [
  usSsn, creditCard, iban, emailAddress, phoneNumber, ipv4, ipv6, ukNino, nlBsn, esDniNie, frNir,
  itCodiceFiscale, deSteuerId, plPesel, sePersonnummer, privateKey, awsAccessKey,
];

function checkCatalogue(list: readonly Detector[]): ReadonlyMap<string, Detector> {
  const map = new Map<string, Detector>();
  for (const d of list) {
    const fail = (why: string): never => {
      throw new Error(`detector ${d.name}: ${why}`);
    };
    if (!/^[a-z0-9_]+$/.test(d.name)) fail('name must be [a-z0-9_]+');
    if (map.has(d.name)) fail('duplicate name');
    if (!d.pattern) fail('empty pattern');
    if (d.flags && /[^imsy]/.test(d.flags)) fail(`unsupported flags '${d.flags}'`);
    for (const k of d.keywords) if (k !== k.toLowerCase() || k.trim() !== k || !k) fail(`keyword '${k}' must be lower case and trimmed`);
    if (!(d.within >= 0) || !(d.maxLength > 0)) fail('within and maxLength must be positive numbers');
    if (!d.samples.hit.length || !d.samples.miss.length) fail('needs hit and miss samples');
    map.set(d.name, d);
  }
  return map;
}

/** Built-in detectors by name (`detector: us_ssn`), in catalogue order. */
export const DETECTORS: ReadonlyMap<string, Detector> = checkCatalogue(ALL);

/**
 * Validators for custom `pattern:` rules. Each takes the whole match text.
 * In luhn, iso7064_mod11_10, mod11, elfproef and verhoeff, space, '-', '.'
 * and '/' inside the number are skipped and any other non-digit fails; the
 * two mod 97 checks skip spaces and dashes and take letters as 10..35.
 *  - luhn: Luhn mod 10 (cards, IMEI, Swedish/Canadian IDs); last digit is the check digit.
 *  - mod97: IBAN-style ISO 7064 MOD 97-10: first four characters moved to the end, letters = 10..35, remainder 1 (also RF creditor references).
 *  - iso7064_mod97_10: the same without moving characters (LEI, ISO 17442).
 *  - iso7064_mod11_10: ISO 7064 hybrid MOD 11,10 (German Steuer-ID, Croatian OIB); last digit is the check digit.
 *  - mod11: weighted modulus 11, ISBN-10 convention: weights 1, 2, 3, ... from the right (the check digit has weight 1, 'X' = 10 allowed there), the sum a multiple of 11.
 *  - elfproef: the Dutch BSN 11-check (9 digits, weights 9..2 and -1).
 *  - verhoeff: Verhoeff dihedral check (Aadhaar); last digit is the check digit.
 *  - plus every built-in detector's own validator under the detector's name
 *    (iban, credit_card, us_ssn, nl_bsn, ...), for patterns that find the same
 *    kind of value in a local format.
 */
export const VALIDATORS: ReadonlyMap<string, (s: string) => boolean> = new Map<string, (s: string) => boolean>([
  ['luhn', luhn],
  ['mod97', mod97],
  ['iso7064_mod97_10', iso7064Mod97_10],
  ['iso7064_mod11_10', iso7064Mod11_10],
  ['mod11', mod11],
  ['elfproef', elfproefBsn],
  ['verhoeff', verhoeff],
  ['us_ssn', validateSsn],
  ['credit_card', validateCard],
  ['iban', validateIban],
  ['email_address', validateEmail],
  ['phone_number', validatePhone],
  ['ipv4', validateIpv4],
  ['ipv6', validateIpv6],
  ['uk_nino', validateNino],
  ['nl_bsn', validateBsn],
  ['es_dni_nie', validateDniNie],
  ['fr_nir', validateNir],
  ['it_codice_fiscale', validateCodiceFiscale],
  ['de_steuer_id', validateSteuerId],
  ['pl_pesel', validatePesel],
  ['se_personnummer', validatePersonnummer],
]);
