import { describe, expect, it } from "vitest";
import { CallerSpeechDetector } from "../../../src/calls/live/speech-detector";

/** The caller's speech as the bridge hears it for a `local` barge-in engine, frame by frame. */

const frame = (fill: (index: number) => number) => btoa(String.fromCharCode(...Array.from({ length: 160 }, (_, index) => fill(index))));
const silence = frame(() => 0xff);
const otherSilence = frame(() => 0x7f);
/** The tests' SPEECH byte (0x10: a loud sample) in every sample. */
const speech = frame(() => 0x10);
/** A quiet frame with a few loud bytes in it (the benchmark's frame headers, a click). */
const clicky = frame((index) => (index < 6 ? 0x00 : 0xff));
/** Low-level noise: μ-law 0xEF decodes to 16-bit magnitude 132, below the loud-sample floor. */
const hiss = frame((index) => (index % 2 === 0 ? 0xef : 0x6f));

function run(detector: CallerSpeechDetector, frames: string[]) {
  return frames.map((payload) => detector.push(payload));
}

describe("caller speech detector", () => {
  it("speech starts on the second loud frame in a row and stops after 15 quiet ones", () => {
    const detector = new CallerSpeechDetector();
    expect(run(detector, [silence, speech, speech, speech])).toEqual([null, null, "started", null]);
    const quiet = run(detector, Array(15).fill(silence));
    expect(quiet.slice(0, 14)).toEqual(Array(14).fill(null));
    expect(quiet[14]).toBe("stopped");
  });

  it("a pause shorter than the hangover is not the end, and one loud frame is not a start", () => {
    const detector = new CallerSpeechDetector();
    expect(run(detector, [speech, silence, speech, silence])).toEqual([null, null, null, null]);
    expect(run(detector, [speech, speech, ...Array(10).fill(silence), speech, ...Array(14).fill(silence)]).filter(Boolean)).toEqual(["started"]);
  });

  it("never hears the two μ-law silences, a few loud bytes in a quiet frame, or a low hiss", () => {
    const detector = new CallerSpeechDetector();
    expect(run(detector, [...Array(50).fill(silence), ...Array(50).fill(otherSilence), ...Array(50).fill(clicky), ...Array(50).fill(hiss)]).filter(Boolean)).toEqual([]);
  });
});
