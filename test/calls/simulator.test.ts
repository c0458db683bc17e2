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
    ["+14155550105", "screener"],
    ["+12125550106", "opt-out"],
    ["+13125550107", "transfer"],
    ["+14155550108", "answered"],
  ])("%s → %s", (phone, outcome) => {
    expect(simulatedOutcome(phone)).toBe(outcome);
  });
});

describe("simulatorScript", () => {
  const base = { opening: "Hello, can you make it?", voicemailMessage: null, screenerReply: "Hi, this is Ava, an automated assistant calling from Acme for John Smith.", transferTo: null };
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

  it("a call screener (5550105): it asks who is calling, the agent answers with its screener reply, then the person's conversation follows", () => {
    const steps = simulatorScript({ ...base, phoneE164: "+14155550105" });
    expect(steps.map((s) => s.action)).toEqual([
      { kind: "ring" },
      { kind: "answer", answeredBy: "human" },
      { kind: "say", role: "customer", text: expect.stringMatching(/screening service.*your name and why you're calling/) },
      { kind: "say", role: "agent", text: base.screenerReply },
      { kind: "say", role: "agent", text: "Hello, can you make it?" },
      { kind: "say", role: "customer", text: expect.stringMatching(/^Yes/) },
      { kind: "say", role: "agent", text: expect.stringContaining("Goodbye") },
      { kind: "say", role: "customer", text: "Bye!" },
      { kind: "end", endedReason: "customer-ended-call" },
    ]);
  });

  it("opt-out (5550106): the person asks not to be called again, is opted out, then acknowledged, and the agent ends the call", () => {
    expect(simulatorScript({ ...base, phoneE164: "+14155550106" }).map((s) => s.action)).toEqual([
      { kind: "ring" },
      { kind: "answer", answeredBy: "human" },
      { kind: "say", role: "agent", text: "Hello, can you make it?" },
      { kind: "say", role: "customer", text: expect.stringContaining("don't call me again") },
      { kind: "opt-out" },
      { kind: "say", role: "agent", text: expect.stringContaining("won't be called again") },
      { kind: "end", endedReason: "assistant-ended-call" },
    ]);
  });

  it("asked for a human (5550107): handed over with transfer_to, else no one is available and the agent ends politely", () => {
    const asked = [{ kind: "ring" }, { kind: "answer", answeredBy: "human" }, { kind: "say", role: "agent", text: "Hello, can you make it?" }, { kind: "say", role: "customer", text: expect.stringContaining("real person") }];
    expect(simulatorScript({ ...base, phoneE164: "+14155550107", transferTo: "+14155550199" }).map((s) => s.action)).toEqual([
      ...asked,
      { kind: "say", role: "agent", text: expect.stringContaining("Please hold while I connect you") },
      { kind: "end", endedReason: "transferred" },
    ]);
    expect(simulatorScript({ ...base, phoneE164: "+14155550107" }).map((s) => s.action)).toEqual([
      ...asked,
      { kind: "say", role: "agent", text: expect.stringMatching(/no one available.*goodbye/) },
      { kind: "end", endedReason: "assistant-ended-call" },
    ]);
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
