import { describe, expect, it } from "vitest";
import { countryOfE164, parseE164 } from "../../src/lib/phone";

describe("parseE164", () => {
  it.each([
    // The quickstart's number and the simulator's magic numbers (fictional 555-01xx exchange).
    ["+14155552671", "US"],
    ["+14155550100", "US"],
    ["+14155550101", "US"],
    ["+14155550102", "US"],
    ["+14155550103", "US"],
    ["+14155550104", "US"],
    ["+12125550101", "US"],
    ["+33612345678", "FR"],
    ["+4915123456789", "DE"],
    ["+12042345678", "CA"],
    // libphonenumber files 07911 under Guernsey, which shares +44 with the UK.
    ["+447911123456", "GG"],
    ["+442012345678", "GB"],
  ])("accepts %s (%s)", (value, country) => {
    expect(parseE164(value)).toEqual({ ok: true, e164: value, country });
  });

  it("accepts a valid non-geographic number without a country", () => {
    expect(parseE164("+80012345678")).toEqual({ ok: true, e164: "+80012345678", country: undefined });
  });

  it.each([
    ["4155552671", "no +"],
    ["+1 415 555 2671", "spaces"],
    ["+1-415-555-2671", "punctuation"],
    ["+1415555", "7 digits"],
    ["+1234567890123456", "16 digits"],
    ["+014155552671", "a leading 0"],
    [" +14155552671", "surrounding space"],
    ["+14155552671\n", "a trailing newline"],
    ["", "nothing"],
  ])("refuses %s (%s) as not E.164", (value) => {
    expect(parseE164(value)).toEqual({ ok: false, message: expect.stringContaining("must be E.164") });
  });

  it.each([
    ["+14150000000", "+1"],
    ["+11234567890", "+1"],
    ["+33712345678", "+33"], // the right length, but no French number starts 07 1
    ["+491234567890", "+49"],
  ])("refuses %s, E.164 but not a number of its country", (value, code) => {
    expect(parseE164(value)).toEqual({ ok: false, message: `is not a valid phone number for country code ${code}` });
  });

  it("refuses a country calling code that does not exist", () => {
    expect(parseE164("+999123456789")).toEqual({ ok: false, message: "has an unknown country calling code" });
  });
});

describe("countryOfE164", () => {
  it("names the country of a stored number", () => {
    expect(countryOfE164("+14155550103")).toBe("US");
    expect(countryOfE164("+33612345678")).toBe("FR");
    expect(countryOfE164("+80012345678")).toBeUndefined();
  });
});
