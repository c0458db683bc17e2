import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { CallRecorder, RECORDING_PART_BYTES } from "../../src/calls/live/recorder";
import { firstDifference, readWav, RECORDING_FORMAT } from "../recordings";

/**
 * The live call's recorder on its own, fed as the media bridge feeds it, writing to the local R2
 * bucket (which enforces R2's multipart rules). Its WAV is compared with a model of the timeline
 * written out plainly here: the caller's frames on the left, back to back; each agent chunk on the
 * right from max(now, end of the agent audio before it); a clear drops the agent audio past now.
 */

type Step = { caller: Uint8Array } | { agent: Uint8Array } | { clear: true };

const base64 = (bytes: Uint8Array) => bytes.toBase64();

/** The stereo data the steps should produce, sample frame by sample frame. */
function expectedData(steps: Step[]): Uint8Array {
  const left: number[] = [];
  const right: number[] = [];
  let agentEnd = 0;
  for (const step of steps) {
    const now = left.length;
    if ("caller" in step) left.push(...step.caller);
    else if ("agent" in step) {
      const start = Math.max(now, agentEnd);
      step.agent.forEach((byte, i) => (right[start + i] = byte));
      agentEnd = start + step.agent.length;
    } else {
      for (let i = now; i < agentEnd; i += 1) right[i] = 0xff;
      agentEnd = Math.min(agentEnd, now);
    }
  }
  const data = new Uint8Array(left.length * 2);
  left.forEach((byte, i) => {
    data[2 * i] = byte;
    data[2 * i + 1] = right[i] ?? 0xff;
  });
  return data;
}

async function record(steps: Step[]): Promise<{ key: string; object: R2ObjectBody }> {
  const key = `test/${crypto.randomUUID()}.wav`;
  const recorder = new CallRecorder(env.RECORDINGS, key);
  for (const step of steps) {
    if ("caller" in step) recorder.callerAudio(base64(step.caller));
    else if ("agent" in step) recorder.agentAudio(base64(step.agent));
    else recorder.agentCleared();
  }
  expect(recorder.hasAudio).toBe(steps.some((step) => "caller" in step));
  await recorder.store();
  const object = await env.RECORDINGS.get(key);
  if (!object) throw new Error("no recording stored");
  return { key, object };
}

/** A 20 ms caller frame whose bytes say which frame it is. */
const callerFrame = (n: number) => new Uint8Array(160).map((_, i) => (n * 7 + i) % 0x7f);
/** Agent audio whose bytes are all ≥ 0x80, so they never pass for the caller's. */
const agentChunk = (n: number, bytes: number) => new Uint8Array(bytes).map((_, i) => 0x80 | (n * 13 + i) % 0x7f);

describe("the call recorder", () => {
  it("places agent audio back to back from when it is sent, drops what a clear cuts, and writes one stereo μ-law WAV", async () => {
    const steps: Step[] = [];
    let frame = 0;
    const caller = (frames: number) => {
      for (let i = 0; i < frames; i += 1) steps.push({ caller: callerFrame(frame++) });
    };
    // The greeting before the first caller frame: 3 chunks, played from 0, back to back.
    for (let n = 0; n < 3; n += 1) steps.push({ agent: agentChunk(n, 160) });
    caller(5);
    // A long answer sent all at once, faster than it plays, then cut after 4 more frames.
    steps.push({ agent: agentChunk(10, 8000 * 12) });
    caller(4);
    steps.push({ clear: true });
    caller(3);
    // Odd sizes, after a gap of silence; then audio still queued when the call ends.
    steps.push({ agent: agentChunk(20, 333) }, { agent: agentChunk(21, 77) });
    caller(10);
    steps.push({ agent: agentChunk(22, 4000) });
    caller(2);

    const { object } = await record(steps);
    expect(object.httpMetadata?.contentType).toBe("audio/wav");
    const wav = readWav(new Uint8Array(await object.arrayBuffer()));
    expect(wav.format).toEqual(RECORDING_FORMAT);
    expect(wav.sampleFrames).toBe(frame * 160);
    expect(wav.left).toEqual(new Uint8Array(steps.flatMap((step) => ("caller" in step ? [...step.caller] : []))));
    expect(wav.data).toEqual(expectedData(steps));
    // What the clear cut is nowhere: 4 frames of the long answer were heard, the rest was not.
    const answer = agentChunk(10, 8000 * 12);
    expect(wav.right.subarray(5 * 160, 9 * 160)).toEqual(answer.subarray(0, 4 * 160));
    expect(wav.right.subarray(9 * 160, 12 * 160).every((byte) => byte === 0xff)).toBe(true);
  });

  it("keeps agent audio queued seconds ahead of the caller in order, while the call goes on", async () => {
    // A response arriving faster than it plays: 6 s, 3 s of the call, 5 s more, 9 s, then 12 s at once.
    const steps: Step[] = [{ agent: agentChunk(1, 6 * 8000) }];
    let frame = 0;
    const caller = (seconds: number) => {
      for (let i = 0; i < seconds * 50; i += 1) steps.push({ caller: callerFrame(frame++) });
    };
    caller(3);
    steps.push({ agent: agentChunk(2, 5 * 8000) });
    caller(9);
    steps.push({ agent: agentChunk(3, 12 * 8000) });
    caller(14);
    const { object } = await record(steps);
    const wav = readWav(new Uint8Array(await object.arrayBuffer()));
    expect(firstDifference(wav.data, expectedData(steps))).toBe(-1);
    // The first two chunks back to back from 0, the third from when it was sent (the agent was silent since 11 s).
    expect(wav.right.subarray(0, 11 * 8000)).toEqual(new Uint8Array([...agentChunk(1, 6 * 8000), ...agentChunk(2, 5 * 8000)]));
    expect(wav.right.subarray(11 * 8000, 12 * 8000).every((byte) => byte === 0xff)).toBe(true);
    expect(wav.right.subarray(12 * 8000, 24 * 8000)).toEqual(agentChunk(3, 12 * 8000));
  });

  it("streams a long call in parts of R2's size, part 1 with the header written last", async () => {
    // 12 minutes of caller frames (3 parts: 5 MiB, 5 MiB and the rest), the agent talking now and then.
    const steps: Step[] = [];
    const frames = (12 * 60 * 1000) / 20;
    for (let n = 0; n < frames; n += 1) {
      if (n % 500 === 0) steps.push({ agent: agentChunk(n, 8000 * 4) });
      if (n % 500 === 100) steps.push({ clear: true });
      steps.push({ caller: callerFrame(n) });
    }
    const { object } = await record(steps);
    const bytes = new Uint8Array(await object.arrayBuffer());
    expect(bytes.length).toBe(58 + frames * 160 * 2);
    expect(bytes.length).toBeGreaterThan(2 * RECORDING_PART_BYTES);
    // A multipart object's ETag ends with its part count.
    expect(object.etag).toMatch(/-3$/);
    const wav = readWav(bytes);
    expect(wav.sampleFrames).toBe(frames * 160);
    expect(firstDifference(wav.data, expectedData(steps))).toBe(-1);
  });

  it("a call of the longest max_duration_seconds (10 minutes) is two parts, both written at its end", async () => {
    const steps: Step[] = [];
    const frames = (10 * 60 * 1000) / 20;
    for (let n = 0; n < frames; n += 1) {
      if (n % 700 === 0) steps.push({ agent: agentChunk(n, 8000 * 3) });
      steps.push({ caller: callerFrame(n) });
    }
    const { object } = await record(steps);
    expect(object.etag).toMatch(/-2$/);
    const wav = readWav(new Uint8Array(await object.arrayBuffer()));
    expect(wav.sampleFrames).toBe(frames * 160);
    expect(firstDifference(wav.data, expectedData(steps))).toBe(-1);
  });

  it("a call that fills part 1 exactly is one put; one with nothing heard has no audio", async () => {
    const framesInPart1 = (RECORDING_PART_BYTES - 58) / 2;
    const steps: Step[] = [{ caller: new Uint8Array(framesInPart1).fill(0x11) }];
    const { object } = await record(steps);
    expect(object.size).toBe(RECORDING_PART_BYTES);
    expect(object.etag).not.toContain("-");
    expect(readWav(new Uint8Array(await object.arrayBuffer())).sampleFrames).toBe(framesInPart1);

    const silent = new CallRecorder(env.RECORDINGS, `test/${crypto.randomUUID()}.wav`);
    silent.agentAudio(base64(agentChunk(1, 160)));
    expect(silent.hasAudio).toBe(false);
  });
});
