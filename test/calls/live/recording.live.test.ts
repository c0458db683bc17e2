import { exports } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { QUICKSTART_OPENING } from "../../fixtures";
import { realtimeSessions } from "../../fakes/realtime-client";
import { twilioCallFor } from "../../fakes/twilio-peer";
import { BASE } from "../../helpers";
import { readWav, RECORDING_FORMAT } from "../../recordings";
import { answer, placeLiveCall, say, streamUp, WAIT, waitUntilEnded, webhooks } from "./support";

/**
 * A recorded live call against the fakes: the WAV the API serves holds, on the left, every frame
 * Twilio sent, as sent; on the right, the agent audio Twilio played — the greeting up to where the
 * caller cut in, never the part the barge-in dropped — in step with the caller.
 */

const decode = (payload: string) => Uint8Array.fromBase64(payload);
const concat = (chunks: Uint8Array[]) => {
  const all = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.length;
  }
  return all;
};
const isSilence = (bytes: Uint8Array) => bytes.every((byte) => byte === 0xff);

describe("a recorded live call", () => {
  it("speaks the disclosure first and stores what the caller heard, the audio cut by a barge-in left out", async () => {
    // Five seconds of greeting sent at once; the caller talks over it, then the agent answers (five seconds again).
    const call = await placeLiveCall({ responses: ["This is a long greeting that the caller will talk over.", "Sorry, go ahead."], audio_deltas: 250 }, { agent: { record: true } });
    const twilioCall = await twilioCallFor(call.notificationId);
    await answer(twilioCall);
    const { peer, line } = await streamUp(twilioCall);
    await vi.waitFor(() => expect(peer.receivedOf("media").length).toBe(250), WAIT);
    await vi.waitFor(() => expect(peer.marks.length).toBeGreaterThanOrEqual(5), WAIT);
    const [session] = await realtimeSessions(call.marker);
    expect(session!.instructions).toContain(`Open the call by saying: "This call is recorded. ${QUICKSTART_OPENING}"`);
    say(peer, line);
    await vi.waitFor(() => expect(peer.receivedOf("clear")).toHaveLength(1), WAIT);
    // The answer starts playing (a mark of it comes back), and the caller hangs up a little later, while it plays.
    const marksAtClear = peer.marks.length;
    await vi.waitFor(() => expect(peer.marks.length).toBeGreaterThan(marksAtClear), WAIT);
    const framesThen = peer.sent.filter((message) => message.event === "media").length;
    await vi.waitFor(() => expect(peer.sent.filter((message) => message.event === "media").length).toBeGreaterThan(framesThen + 10), WAIT);
    peer.stop();

    const n = await waitUntilEnded(call);
    expect(n).toMatchObject({ status: "completed", ended_reason: "customer-ended-call", recording_available: true });
    const [, , summary] = await webhooks(call, ["call.started", "call.ended", "call.summary"]);
    expect(summary.data).toMatchObject({ recording_available: true });

    const res = await exports.default.fetch(new Request(`${BASE}/api/v1/notifications/${call.notificationId}/recording`, { headers: { "x-api-key": call.account.key } }));
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("audio/wav");
    const wav = readWav(new Uint8Array(await res.arrayBuffer()));
    expect(wav.format).toEqual(RECORDING_FORMAT);

    // Left: every caller frame, as Twilio sent it; the call's length is theirs.
    const callerFrames = peer.sent.filter((message) => message.event === "media").map((message) => decode((message.media as { payload: string }).payload));
    expect(wav.sampleFrames).toBe(callerFrames.length * 160);
    expect(wav.left).toEqual(concat(callerFrames));

    // Right: silence, the greeting from its start up to the barge-in, silence, the answer up to the hang-up.
    const clearAt = peer.received.findIndex((message) => message.event === "clear");
    const agentAudio = (messages: typeof peer.received) => concat(messages.filter((message) => message.event === "media").map((message) => decode(message.media!.payload)));
    const greeting = agentAudio(peer.received.slice(0, clearAt));
    const reply = agentAudio(peer.received.slice(clearAt));
    expect(greeting.length).toBe(250 * 160);
    expect(reply.length).toBeGreaterThan(0);
    const right = wav.right;
    const greetingStart = right.findIndex((byte) => byte !== 0xff);
    let heard = 0;
    while (heard < greeting.length && right[greetingStart + heard] === greeting[heard]) heard += 1;
    expect(heard).toBeGreaterThan(0);
    // The rest of the greeting was dropped at Twilio, and is not in the recording either.
    expect(heard).toBeLessThan(greeting.length);
    const afterCut = right.subarray(greetingStart + heard);
    const replyStart = afterCut.findIndex((byte) => byte !== 0xff);
    expect(replyStart).toBeGreaterThan(0);
    const replyHeard = afterCut.subarray(replyStart, replyStart + reply.length);
    expect(replyHeard.length).toBeGreaterThan(10 * 160);
    expect(replyHeard).toEqual(reply.subarray(0, replyHeard.length));
    expect(isSilence(afterCut.subarray(replyStart + replyHeard.length))).toBe(true);
  });
});
