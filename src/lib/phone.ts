// The max metadata checks a number's digits against its country's number ranges; the default (min)
// one only checks the length. Both accept the fictional 555-01xx numbers the simulator uses.
import parsePhoneNumber from "libphonenumber-js/max";

const E164_PATTERN = /^\+[1-9]\d{7,14}$/;

export type E164Result = { ok: true; e164: string; country: string | undefined } | { ok: false; message: string };

/** Accepts only strict E.164 (`+` and 8–15 digits, nothing else) that is a valid number for its country. */
export function parseE164(value: string): E164Result {
  if (!E164_PATTERN.test(value)) {
    return { ok: false, message: "must be E.164: + then the country code and number, 8 to 15 digits, no spaces or punctuation (e.g. +14155552671)" };
  }
  const phone = parsePhoneNumber(value);
  if (!phone) return { ok: false, message: "has an unknown country calling code" };
  if (!phone.isValid()) return { ok: false, message: `is not a valid phone number for country code +${phone.countryCallingCode}` };
  return { ok: true, e164: phone.number, country: phone.country };
}

/** ISO 3166 country of a stored E.164 number; undefined for non-geographic numbers (e.g. +800). */
export function countryOfE164(e164: string): string | undefined {
  return parsePhoneNumber(e164)?.country;
}
