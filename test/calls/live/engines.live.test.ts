import { describe, expect, it, vi } from "vitest";
import { VOICE_ENGINES, type VoiceEngineName } from "../../../src/calls/call";
import { liveSessions } from "../../fakes/live-client";
import { realtimeSessions, sha256Hex } from "../../fakes/realtime-client";
import { reportCallStatus, reportMachineDetection, twilioCallFor } from "../../fakes/twilio-peer";
import { api } from "../../helpers";
import { answer, FRAME_BYTES, greeted, placeLiveCall, say, streamUp, twilioUpdates, WAIT, waitUntilEnded, webhooks } from "./support";

/**
 * The live call's behaviours that every voice engine must hold, end to end against the fakes, once
 * per engine (the agent's `engine`): the greeting first, every caller frame to the model, the
 * goodbye played before the hang-up, the tools, the voicemail message, a reconnect. Then GPT-Live's
 * own: barge-in by the bridge (held audio dropped, Twilio cleared at the caller's first speech), and
 * the session's unasked ends. What is checked is what the peers saw: protocol messages, frame
 * counts, API bodies.
 */

const VOICEMAIL_MESSAGE = "Hi John, this is Acme Inc about your appointment on Thursday. Please call us back.";
const TRANSFER_TO = "+14155550199";

/** A model session as both fakes can tell it, whichever engine the call ran on. */
interface ModelSession {
  /** SHA-256 of each caller frame appended, in order. */
  callerAudio: string[];
  /** SHA-256 of each agent audio delta sent, in order. */
  agentAudio: string[];
  /** The client's events but audio, in order (GPT-Live's `session.start` first). */
  control: Array<Record<string, any>>;
  tools: string[];
  /** Earlier turns given to the session, as `[role, text]`. */
  history: Array<[string, string]>;
  errors: unknown[];
  closed: { by: string; code: number; reason: string } | null;
}

async function modelSessions(engine: VoiceEngineName, marker: string): Promise<ModelSession[]> {
  if (engine === "openai-realtime") {
    return (await realtimeSessions(marker)).map((session) => ({
      callerAudio: session.client_events.filter((event) => event.type === "input_audio_buffer.append").map((event) => event.sha256),
      agentAudio: session.sent_audio.map((audio) => audio.sha256),
      control: session.client_events.filter((event) => event.type !== "input_audio_buffer.append"),
      tools: (session.client_events[0]?.session?.tools ?? []).map((tool: { name: string }) => tool.name),
      history: session.client_events.filter((event) => event.type === "conversation.item.create" && event.item.type === "message").map((event) => [event.item.role, event.item.content[0].text]),
      errors: session.errors,
      closed: session.closed,
    }));
  }
  return (await liveSessions(marker)).map((session) => ({
    callerAudio: session.client_events.filter((event) => event.type === "session.input_audio.append").map((event) => event.sha256),
    agentAudio: session.sent_audio.map((audio) => audio.sha256),
    control: [session.start!, ...session.client_events.filter((event) => event.type !== "session.input_audio.append")],
    tools: (session.start?.session?.delegation?.responses?.tools ?? []).map((tool: { name: string }) => tool.name),
    history: (session.start?.session?.input ?? []).map((item: any) => [item.role, item.content[0].text]),
    errors: session.errors,
    closed: session.closed,
  }));
}

/** The outputs the call gave the model's tool calls, parsed. */
function toolOutputs(session: ModelSession): unknown[] {
  return session.control.filter((event) => ["conversation.item.create", "response.item.create"].includes(event.type) && event.item.type === "function_call_output").map((event) => JSON.parse(event.item.output));
}

const turns = (n: { transcript: Array<{ role: string; text: string }> }) => n.transcript.map((turn) => [turn.role, turn.text]);
const mediaHashes = (messages: Array<{ event: string; media?: { payload: string } }>) => Promise.all(messages.filter((message) => message.event === "media").map((message) => sha256Hex(message.media!.payload)));

/** How each fake ends a session unasked right after the greeting ("Hi John, this is Acme.", 3 deltas). */
const LOST_AFTER_GREETING: Array<[VoiceEngineName, string, Record<string, unknown>]> = [
  // Realtime: the socket drops (1011) after the greeting's response.done, its 16th event.
  ["openai-realtime", "the socket drops", { drop_after_events: 16 }],
  // GPT-Live: started, instructions.appended, 3 audio and 5 transcript deltas, usage.updated: then closed.
  ["openai-live", "the session expires", { close_after_events: 11, close_reason: "expired" }],
  ["openai-live", "the connection is lost", { close_after_events: 11, close_reason: "connection_lost" }],
];

describe.each(VOICE_ENGINES)("a live call on %s", (engine) => {
  it("greets first, relays every caller frame untouched, and hangs up with end_call only once the goodbye has played", async () => {
    const call = await placeLiveCall(
      { responses: ["Hi, is this John? Does Thursday at 2 PM still work?", "Wonderful, see you then. Goodbye!"], caller_turns: ["Yes, that works for me."], end_call_after_turn: 1 },
      { agent: { engine } },
    );
    const twilioCall = await twilioCallFor(call.notificationId);
    await answer(twilioCall);
    const { peer, line } = await streamUp(twilioCall);
    await vi.waitFor(() => expect(peer.marks).toHaveLength(1), WAIT);
    // The greeting is the first thing on the line, the model's audio untouched, marked at its end.
    expect(peer.received.slice(0, 4).map((message) => message.event)).toEqual(["media", "media", "media", "mark"]);
    expect(peer.marks[0]!.heardMs).toBe(60);
    const [greeting] = await modelSessions(engine, call.marker);
    expect(await mediaHashes(peer.received)).toEqual(greeting!.agentAudio);

    say(peer, line);
    await peer.closed;
    const n = await waitUntilEnded(call);
    expect(n).toMatchObject({ status: "completed", ended_reason: "assistant-ended-call", answered_by: "human", call_result: { confirmed: true, reschedule_request: null }, error_message: null });
    expect(turns(n)).toEqual([
      ["agent", "Hi, is this John? Does Thursday at 2 PM still work?"],
      ["customer", "Yes, that works for me."],
      ["agent", "Wonderful, see you then. Goodbye!"],
    ]);
    // Hung up only after the goodbye played: its mark came back, uncleared, before the stream closed.
    expect(peer.marks).toHaveLength(2);
    expect(peer.marks[1]).toMatchObject({ heardMs: 120, cleared: false });
    expect(await twilioUpdates(call.notificationId)).toEqual([{ Status: "completed" }]);

    // Every caller frame reached the model, in order, untouched: none lost.
    const [session] = await modelSessions(engine, call.marker);
    const callerHashes = await Promise.all(peer.sent.filter((message) => message.event === "media").map((message) => sha256Hex((message.media as { payload: string }).payload)));
    expect(session!.callerAudio.length).toBeGreaterThan(11);
    expect(session!.callerAudio).toEqual(callerHashes.slice(0, session!.callerAudio.length));
    expect(session!.agentAudio).toHaveLength(6);
    expect(session!.errors).toEqual([]);
    // The session was closed by us: Realtime's socket, GPT-Live's session.close → session.closed.
    expect(session!.closed).toMatchObject(engine === "openai-live" ? { by: "server", code: 1000, reason: "close_requested" } : { by: "client" });
  });

  it("opt_out: the phone is opted out, the model told so, and the call ends once the acknowledgement has played", async () => {
    const call = await placeLiveCall(
      { responses: ["Hi, is this John?", "", "Understood, you won't be called again. Goodbye."], caller_turns: ["Please don't call me again."], tool_call_after_turn: 1, tool_name: "opt_out" },
      { agent: { engine } },
    );
    const twilioCall = await twilioCallFor(call.notificationId);
    await answer(twilioCall);
    const { peer, line } = await greeted(twilioCall);
    say(peer, line);
    await peer.closed;
    const n = await waitUntilEnded(call);
    expect(n).toMatchObject({ status: "completed", ended_reason: "assistant-ended-call", opted_out: true });
    expect(turns(n)).toEqual([
      ["agent", "Hi, is this John?"],
      ["customer", "Please don't call me again."],
      ["agent", "Understood, you won't be called again. Goodbye."],
    ]);
    const [session] = await modelSessions(engine, call.marker);
    expect(toolOutputs(session!)).toEqual([expect.objectContaining({ opted_out: true })]);
    expect(session!.errors).toEqual([]);
    expect(peer.marks.at(-1)).toMatchObject({ heardMs: 120, cleared: false });
    expect(await twilioUpdates(call.notificationId)).toEqual([{ Status: "completed" }]);
    const customer = await api("GET", `/api/v1/customers/${call.customerId}`, { key: call.account.key });
    expect(customer.body.phones).toEqual([expect.objectContaining({ status: "opted_out" })]);
  });

  it("transfer_call: the hand-over line plays, then Twilio dials transfer_to on the live call", async () => {
    const call = await placeLiveCall(
      { responses: ["Hi, is this John?", "", "Please hold while I connect you."], caller_turns: ["Can I talk to a real person?"], tool_call_after_turn: 1, tool_name: "transfer_call" },
      { agent: { engine, transfer_to: TRANSFER_TO } },
    );
    const twilioCall = await twilioCallFor(call.notificationId);
    await answer(twilioCall);
    const { peer, line } = await greeted(twilioCall);
    expect((await modelSessions(engine, call.marker))[0]!.tools).toEqual(["end_call", "opt_out", "transfer_call"]);
    say(peer, line);
    await peer.closed;
    const n = await waitUntilEnded(call);
    expect(n).toMatchObject({ status: "completed", ended_reason: "transferred", error_message: null });
    expect(turns(n).at(-1)).toEqual(["agent", "Please hold while I connect you."]);
    expect(peer.marks.at(-1)).toMatchObject({ heardMs: 120, cleared: false });
    const dial = `<?xml version="1.0" encoding="UTF-8"?><Response><Dial callerId="+14155552671">${TRANSFER_TO}</Dial></Response>`;
    expect(await twilioUpdates(call.notificationId)).toEqual([{ Twiml: dial, TimeLimit: "14400" }]);
  });

  it("voicemail: at the beep the agent is cut off, Twilio cleared, the message spoken word for word, and the call hangs up once it has played", async () => {
    // The greeting (20 s of audio, coming at twice the pace it plays) is still being spoken at the beep.
    const call = await placeLiveCall({ responses: ["Hi, is this John?", VOICEMAIL_MESSAGE], audio_deltas: [1000, 50], delta_interval_ms: 10 }, { voicemailMessage: VOICEMAIL_MESSAGE, agent: { engine } });
    const twilioCall = await twilioCallFor(call.notificationId);
    expect((await reportCallStatus(twilioCall, "in-progress")).status).toBe(204);
    const { peer } = await streamUp(twilioCall);
    await vi.waitFor(() => expect(peer.marks.length).toBeGreaterThanOrEqual(2), WAIT);
    expect((await reportMachineDetection(twilioCall, "machine_end_beep")).status).toBe(204);
    await peer.closed;
    const n = await waitUntilEnded(call);
    expect(n).toMatchObject({ status: "completed", ended_reason: "voicemail", answered_by: "machine_end_beep", call_result: null, error_message: null });
    expect(turns(n)).toEqual([
      ["agent", "Hi, is this John?"],
      ["agent", VOICEMAIL_MESSAGE],
    ]);
    const [session] = await modelSessions(engine, call.marker);
    expect(JSON.stringify(session!.control)).toContain(`word for word, and nothing else: \\"${VOICEMAIL_MESSAGE}\\"`);
    expect(session!.errors).toEqual([]);
    // On the line: the greeting cleared, then exactly the whole message, then the hang-up.
    const clearAt = peer.received.findIndex((message) => message.event === "clear");
    expect(clearAt).toBeGreaterThan(0);
    expect(await mediaHashes(peer.received.slice(clearAt + 1))).toEqual(session!.agentAudio.slice(-50));
    expect(peer.marks.at(-1)).toMatchObject({ heardMs: peer.clears[0]! + 1000, cleared: false });
    expect(await twilioUpdates(call.notificationId)).toEqual([{ Status: "completed" }]);
  });
});

describe("usage on openai-live", () => {
  it("the session's seconds (from session.closed) and the delegated tool call's tokens, priced per session minute and per token, on the notification and in call.summary", async () => {
    const call = await placeLiveCall(
      { responses: ["Hi, is this John?", "Wonderful. Goodbye!"], caller_turns: ["Yes, that works for me."], end_call_after_turn: 1, usage_seconds: 42, delegation_usage: { input_tokens: 200, output_tokens: 20, cached_tokens: 50 } },
      { agent: { engine: "openai-live" } },
    );
    const twilioCall = await twilioCallFor(call.notificationId);
    await answer(twilioCall);
    const { peer, line } = await greeted(twilioCall);
    say(peer, line);
    await peer.closed;
    const n = await waitUntilEnded(call);
    expect(n).toMatchObject({ status: "completed", ended_reason: "assistant-ended-call" });
    expect(n.usage).toEqual({
      engine: "openai-live",
      model: "gpt-live-1",
      delegation_model: "gpt-4.1-mini",
      model_seconds: 42,
      input_tokens: 200,
      output_tokens: 20,
      tokens: { input_text: 150, cached_input_text: 50, input_audio: 0, cached_input_audio: 0, output_text: 20, output_audio: 0 },
      // 0.7 min × $0.05 + 150 × $0.40 + 50 × $0.10 + 20 × $1.60 per 1M tokens (the default list prices).
      estimated_cost_usd: 0.035097,
    });
    const [, , summary] = await webhooks(call, ["call.started", "call.ended", "call.summary"]);
    expect(summary.data.usage).toEqual(n.usage);
  });
});

describe("a model session lost mid-call", () => {
  it.each(LOST_AFTER_GREETING)("%s: %s after the greeting: a new session with the conversation so far, and the call goes on", async (engine, _, loss) => {
    const call = await placeLiveCall({ responses: ["Hi John, this is Acme."], caller_turns: ["Yes, that works for me."], end_call_after_turn: 1, drop_sessions: 1, ...loss }, { agent: { engine } });
    const twilioCall = await twilioCallFor(call.notificationId);
    await answer(twilioCall);
    const { peer, line } = await streamUp(twilioCall);
    const sessions = await vi.waitFor(async () => {
      const all = await modelSessions(engine, call.marker);
      expect(all).toHaveLength(2);
      return all;
    }, WAIT);
    expect(sessions[0]!.closed).toMatchObject({ by: "server" });
    expect(sessions[1]!.history).toEqual([["assistant", "Hi John, this is Acme."]]);
    await vi.waitFor(() => expect(peer.marks).toHaveLength(1), WAIT);

    say(peer, line);
    await peer.closed;
    const n = await waitUntilEnded(call);
    expect(n).toMatchObject({ status: "completed", ended_reason: "assistant-ended-call", error_message: null });
    expect(turns(n)).toEqual([
      ["agent", "Hi John, this is Acme."],
      ["customer", "Yes, that works for me."],
      ["agent", "Hi John, this is Acme."],
    ]);
    expect(await twilioUpdates(call.notificationId)).toEqual([{ Status: "completed" }]);
  });

  it("openai-live: lost again after the reconnect, the call ends politely in error with the transcript so far", async () => {
    // Every session expires at its 11th event: the first after the greeting, the second in its reply.
    const call = await placeLiveCall({ responses: ["Hi John, this is Acme."], caller_turns: ["Yes, that works for me."], close_after_events: 11, close_reason: "expired" }, { agent: { engine: "openai-live" } });
    const twilioCall = await twilioCallFor(call.notificationId);
    await answer(twilioCall);
    const { peer, line } = await streamUp(twilioCall);
    await vi.waitFor(async () => expect(await modelSessions("openai-live", call.marker)).toHaveLength(2), WAIT);
    say(peer, line);
    await peer.closed;
    const n = await waitUntilEnded(call);
    expect(n).toMatchObject({ status: "failed", ended_reason: "error", answered_by: "human" });
    expect(n.error_message).toMatch(/^The voice model session was lost and could not be restored: GPT-Live session closed: expired/);
    expect(turns(n).slice(0, 2)).toEqual([
      ["agent", "Hi John, this is Acme."],
      ["customer", "Yes, that works for me."],
    ]);
    expect(await twilioUpdates(call.notificationId)).toEqual([{ Status: "completed" }]);
  });
});

describe("barge-in on openai-live: the bridge's own", () => {
  it("the agent's audio is held to a small lead; at the caller's speech the held audio is dropped and Twilio cleared within one frame", async () => {
    // Five seconds of greeting, all sent at once by the model; the reply is 60 ms.
    const call = await placeLiveCall({ responses: ["This is a long greeting that the caller will talk over.", "Sorry, go ahead."], audio_deltas: [250, 3] }, { agent: { engine: "openai-live" } });
    const twilioCall = await twilioCallFor(call.notificationId);
    await answer(twilioCall);
    const { peer, line } = await streamUp(twilioCall);
    await vi.waitFor(async () => expect((await modelSessions("openai-live", call.marker))[0]!.agentAudio).toHaveLength(250), WAIT);
    await vi.waitFor(() => expect(peer.marks.length).toBeGreaterThanOrEqual(3), WAIT);

    const speechFrom = peer.sent.filter((message) => message.event === "media").length;
    say(peer, line);
    await vi.waitFor(() => expect(peer.receivedOf("clear")).toHaveLength(1), WAIT);
    const clear = peer.receivedOf("clear")[0]!;
    // The detector hears speech on its second loud frame; the clear comes before the frame after it
    // (one more frame of slack for the socket).
    expect(clear.callerFrames).toBeGreaterThanOrEqual(speechFrom + 2);
    expect(clear.callerFrames).toBeLessThanOrEqual(speechFrom + 3);
    // Paced: what Twilio had been given by then is the audio played so far and the 200 ms lead (10
    // frames), give or take two frames, in frames of the call's own clock.
    const greetingMedia = peer.received.slice(0, peer.received.indexOf(clear)).filter((message) => message.event === "media");
    expect(greetingMedia.length).toBeLessThanOrEqual(clear.callerFrames - greetingMedia[0]!.callerFrames + 10 + 2);
    expect(greetingMedia.length).toBeLessThan(250);
    expect(peer.marks.some((mark) => mark.cleared)).toBe(true);

    // Nothing held of the greeting comes after the clear: only the reply to the caller's turn.
    await vi.waitFor(() => expect(peer.received.slice(peer.received.indexOf(clear) + 1).filter((message) => message.event === "media")).toHaveLength(3), WAIT);
    const [session] = await modelSessions("openai-live", call.marker);
    expect(await mediaHashes(peer.received.slice(peer.received.indexOf(clear) + 1))).toEqual(session!.agentAudio.slice(-3));
    expect(session!.control.map((event) => event.type)).not.toContain("conversation.item.truncate");
    expect(session!.errors).toEqual([]);

    // The reply's turn is over (its mark follows it) before the caller hangs up.
    await vi.waitFor(() => expect(peer.received.at(-1)!.event).toBe("mark"), WAIT);
    peer.stop();
    const n = await waitUntilEnded(call);
    expect(n).toMatchObject({ status: "completed", ended_reason: "customer-ended-call" });
    expect(turns(n)).toEqual([
      ["agent", "This is a long greeting that the caller will talk over."],
      ["customer", "Yes, that works for me."],
      ["agent", "Sorry, go ahead."],
    ]);
  });

  it("speech too quiet for the detector still clears Twilio, at the model's first transcribed words", async () => {
    const call = await placeLiveCall({ responses: ["This is a long greeting that the caller will talk over.", "Sorry, go ahead."], audio_deltas: 250 }, { agent: { engine: "openai-live" } });
    const twilioCall = await twilioCallFor(call.notificationId);
    await answer(twilioCall);
    const { peer, line } = await streamUp(twilioCall);
    await vi.waitFor(() => expect(peer.marks.length).toBeGreaterThanOrEqual(3), WAIT);
    // μ-law 0xFE is the quietest sound there is (magnitude 8 of 32767): not silence to the fake's
    // VAD, far below the detector's threshold.
    const speechFrom = peer.sent.filter((message) => message.event === "media").length;
    line.fill(0xfe, speechFrom * FRAME_BYTES, (speechFrom + 6) * FRAME_BYTES);
    await vi.waitFor(() => expect(peer.receivedOf("clear")).toHaveLength(1), WAIT);
    // The fake's VAD needs three frames before its first transcript delta.
    expect(peer.receivedOf("clear")[0]!.callerFrames).toBeGreaterThanOrEqual(speechFrom + 3);
    peer.stop();
    expect(await waitUntilEnded(call)).toMatchObject({ status: "completed", ended_reason: "customer-ended-call" });
  });
});
