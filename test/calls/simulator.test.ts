import { describe, expect, it } from "vitest";
import { locationHintForPhone } from "../../src/calls/location";
import { PACING, simulatedOutcome, simulatorScript } from "../../src/calls/simulator";

describe("simulatedOutcome", () => {
  it.each([
    ["+14155550101", "busy"],
    ["+12125550102", "no-answer"],
    ["+13105550103", "voicemail"],
    ["+16175550104", "failed"],
    ["+14155550100", "answered"],
    ["+14155552671", "answered"],
    ["+14155550105", "answered"],
  ])("%s → %s", (phone, outcome) => {
    expect(simulatedOutcome(phone)).toBe(outcome);
  });
});

describe("simulatorScript", () => {
  const base = { opening: "Hello, can you make it?", voicemailMessage: null };
  const kinds = (phone: string, voicemailMessage: string | null = null) => simulatorScript({ ...base, phoneE164: phone, voicemailMessage }).map((s) => s.action.kind);

  it("answered: rings, is answered, four turns starting with the opening, then the customer hangs up", () => {
    const steps = simulatorScript({ ...base, phoneE164: "+14155552671" });
    expect(steps.map((s) => s.action)).toEqual([
      { kind: "ring" },
      { kind: "answer", answeredBy: "human" },
      { kind: "say", role: "agent", text: "Hello, can you make it?" },
      { kind: "say", role: "customer", text: expect.stringMatching(/^Yes/) },
      { kind: "say", role: "agent", text: expect.stringContaining("Goodbye") },
      { kind: "say", role: "customer", text: "Bye!" },
      { kind: "end", endedReason: "customer-ended-call" },
    ]);
    const times = steps.map((s) => s.atSeconds);
    expect(times).toEqual([...times].sort((a, b) => a - b));
    expect(times[1]).toBeCloseTo(PACING.ring + PACING.answer);
    // "A few seconds in all" at time scale 1.
    expect(times.at(-1)).toBeGreaterThan(4);
    expect(times.at(-1)).toBeLessThan(10);
  });

  it("busy, no answer and failure never connect; no answer gives up after about five seconds", () => {
    expect(kinds("+14155550101")).toEqual(["ring", "end"]);
    expect(kinds("+14155550104")).toEqual(["end"]);
    const noAnswer = simulatorScript({ ...base, phoneE164: "+14155550102" });
    expect(noAnswer.map((s) => s.action)).toEqual([{ kind: "ring" }, { kind: "end", endedReason: "customer-did-not-answer" }]);
    expect(noAnswer[1]!.atSeconds).toBeCloseTo(PACING.ring + 5);
  });

  it("voicemail: a machine answers; the agent leaves its voicemail message, or hangs up without one", () => {
    const withMessage = simulatorScript({ ...base, phoneE164: "+14155550103", voicemailMessage: "Please call us back." });
    expect(withMessage.map((s) => s.action)).toEqual([
      { kind: "ring" },
      { kind: "answer", answeredBy: "machine_end_beep" },
      { kind: "say", role: "agent", text: "Please call us back." },
      { kind: "end", endedReason: "voicemail" },
    ]);
    expect(kinds("+14155550103")).toEqual(["ring", "answer", "end"]);
  });
});

describe("locationHintForPhone", () => {
  it.each([
    ["+14155552671", "wnam"],
    ["+12125550100", "enam"],
    ["+16045550100", "wnam"],
    ["+14165550100", "enam"],
    ["+525512345678", "enam"],
    ["+5511987654321", "sam"],
    ["+33612345678", "weur"],
    ["+48601234567", "eeur"],
    ["+971501234567", "me"],
    ["+2348031234567", "afr"],
    ["+8613812345678", "apac"],
    ["+61412345678", "oc"],
    ["+999123", undefined],
    ["not a phone", undefined],
  ])("%s → %s", (phone, hint) => {
    expect(locationHintForPhone(phone)).toBe(hint);
  });
});
