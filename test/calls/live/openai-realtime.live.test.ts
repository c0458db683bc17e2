import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import type { EngineEvent, EngineSessionConfig } from "../../../src/calls/live/engine";
import { createOpenAIRealtimeEngine } from "../../../src/calls/live/openai-realtime";
import { getConfig } from "../../../src/env";
import { realtimeSessions, realtimeUsage, scriptRealtime, sha256Hex, type FakeRealtimeSession, type RealtimeScript } from "../../fakes/realtime-client";
import { uniqueName } from "../../helpers";

/**
 * The OpenAI Realtime engine against the fake Realtime server (test/fakes/openai-realtime.mjs), with
 * the live project's configuration. Every test scripts the fake for its own sessions only: the
 * script's `match` is a unique marker in the session's instructions.
 */

const openai = getConfig(env).openai;

async function onlySession(match: string): Promise<FakeRealtimeSession> {
  const [session, ...others] = await realtimeSessions(match);
  expect(others).toHaveLength(0);
  return session!;
}

/** A fresh engine, its events as they arrive, and a unique marker scripted in the fake. */
async function setup(fields: RealtimeScript = {}, apiKey = openai.apiKey ?? "") {
  const marker = uniqueName("realtime");
  await scriptRealtime(marker, fields);
  const engine = createOpenAIRealtimeEngine({ ...openai, apiKey }, { connectTimeoutMs: 2_000 });
  const events: EngineEvent[] = [];
  const session: EngineSessionConfig = { instructions: `You call Jane for Acme. [${marker}]`, voice: null, language: null, history: [], tools: ["end_call", "opt_out"] };
  return { marker, engine, events, session, record: (event: EngineEvent) => events.push(event) };
}

function ofType<T extends EngineEvent["type"]>(events: EngineEvent[], type: T): Extract<EngineEvent, { type: T }>[] {
  return events.filter((event): event is Extract<EngineEvent, { type: T }> => event.type === type);
}

/** One 20 ms μ-law frame: 0xFF is silence, anything else is speech to the fake's VAD. */
function frame(fill: (index: number) => number): string {
  return btoa(String.fromCharCode(...Array.from({ length: 160 }, (_, index) => fill(index))));
}
const silence = () => frame(() => 0xff);
const speech = (seed: number) => frame((index) => (seed * 11 + index) % 0x7f);

describe("OpenAI Realtime engine", () => {
  it("opens the GA socket and configures μ-law both ways, server VAD, transcription, the prompt and the call's tools", async () => {
    const { marker, engine, record } = await setup();
    await engine.connect({ instructions: `Be brief. [${marker}]`, voice: "marin", language: "en-US", history: [], tools: ["end_call", "opt_out", "transfer_call"] }, record);

    const session = await onlySession(marker);
    expect(session.model).toBe(openai.realtimeModel);
    expect(session.client_events).toEqual([
      {
        type: "session.update",
        session: {
          type: "realtime",
          output_modalities: ["audio"],
          instructions: `Be brief. [${marker}]`,
          audio: {
            input: {
              format: { type: "audio/pcmu" },
              transcription: { model: openai.transcriptionModel, language: "en" },
              turn_detection: { type: "server_vad", create_response: true, interrupt_response: true },
            },
            output: { format: { type: "audio/pcmu" }, voice: "marin" },
          },
          tools: [
            { type: "function", name: "end_call", description: expect.stringContaining("Hang up"), parameters: { type: "object", properties: {}, additionalProperties: false } },
            { type: "function", name: "opt_out", description: expect.stringContaining("not want to be called again"), parameters: { type: "object", properties: {}, additionalProperties: false } },
            { type: "function", name: "transfer_call", description: expect.stringContaining("Hand the call over to a person"), parameters: { type: "object", properties: {}, additionalProperties: false } },
          ],
          tool_choice: "auto",
        },
      },
    ]);
    expect(session.server_events).toEqual(["session.created", "session.updated"]);
    expect(session.errors).toEqual([]);
    engine.close();
  });

  it("leaves voice and transcription language to the model when the agent has none", async () => {
    const { marker, engine, session, record } = await setup();
    await engine.connect(session, record);
    const [update] = (await onlySession(marker)).client_events;
    expect(update!.session.audio.output).toEqual({ format: { type: "audio/pcmu" } });
    expect(update!.session.audio.input.transcription).toEqual({ model: openai.transcriptionModel });
    engine.close();
  });

  it("speaks on respond(): the model's audio reaches the bridge byte for byte, then its transcript", async () => {
    const { marker, engine, events, session, record } = await setup({ responses: ["Hi Jane, it's Acme calling."], audio_deltas: 4, audio_bytes_per_delta: 320 });
    await engine.connect(session, record);
    engine.respond();
    await vi.waitFor(() => expect(ofType(events, "response_done")).toHaveLength(1));

    const fake = await onlySession(marker);
    const audio = ofType(events, "agent_audio");
    expect(audio).toHaveLength(4);
    expect(await Promise.all(audio.map((event) => sha256Hex(event.payload)))).toEqual(fake.sent_audio.map((sent) => sent.sha256));
    expect(fake.sent_audio.map((sent) => sent.bytes)).toEqual([320, 320, 320, 320]);
    const itemId = fake.sent_audio[0]!.item_id;
    expect(audio.every((event) => event.itemId === itemId && event.contentIndex === 0)).toBe(true);
    expect(events.map((event) => event.type)).toEqual(["agent_audio", "agent_audio", "agent_audio", "agent_audio", "agent_transcript", "response_done"]);
    expect(ofType(events, "agent_transcript")).toEqual([{ type: "agent_transcript", itemId, text: "Hi Jane, it's Acme calling." }]);
    engine.close();
  });

  it("never sends response.create while a response is active: a second request waits for response.done", async () => {
    const { marker, engine, events, session, record } = await setup({ responses: ["First.", "Second."], delta_interval_ms: 20 });
    await engine.connect(session, record);
    engine.respond();
    engine.respond(); // asked before the first response even started
    await vi.waitFor(() => expect(ofType(events, "response_done")).toHaveLength(2));
    expect(ofType(events, "agent_transcript").map((event) => event.text)).toEqual(["First.", "Second."]);

    const fake = await onlySession(marker);
    expect(fake.client_events.filter((event) => event.type === "response.create")).toHaveLength(2);
    // The fake answers an overlapping response.create with conversation_already_has_active_response.
    expect(fake.errors).toEqual([]);
    // The second response.create left after the first response.done.
    const serverOrder = fake.server_events.filter((type) => type === "response.created" || type === "response.done");
    expect(serverOrder).toEqual(["response.created", "response.done", "response.created", "response.done"]);
    engine.close();
  });

  it("a response.create that loses the race with a VAD-started response is sent again once that one is done", async () => {
    const { marker, engine, events, session, record } = await setup({ responses: ["Answer to the caller.", "The asked-for one."], delta_interval_ms: 20 });
    await engine.connect(session, record);
    // The caller's turn ends (the fake starts a response) before the engine has heard of it.
    for (const payload of [speech(1), speech(2), speech(3), ...Array.from({ length: 5 }, silence)]) engine.appendCallerAudio(payload);
    engine.respond();
    await vi.waitFor(() => expect(ofType(events, "response_done")).toHaveLength(2));

    const fake = await onlySession(marker);
    const creates = fake.client_events.filter((event) => event.type === "response.create");
    expect(creates).toHaveLength(2);
    expect(fake.errors).toEqual([expect.objectContaining({ code: "conversation_already_has_active_response", event_id: creates[0]!.event_id })]);
    expect(ofType(events, "agent_transcript").map((event) => event.text)).toEqual(["Answer to the caller.", "The asked-for one."]);
    engine.close();
  });

  it("queues what is asked before the socket is open and sends it after the configuration, in order", async () => {
    const { marker, engine, events, session, record } = await setup();
    const connecting = engine.connect(session, record);
    const early = [silence(), speech(1)];
    for (const payload of early) engine.appendCallerAudio(payload);
    engine.respond();
    await connecting;
    await vi.waitFor(() => expect(ofType(events, "response_done")).toHaveLength(1));

    const fake = await onlySession(marker);
    expect(fake.client_events.map((event) => event.type)).toEqual(["session.update", "input_audio_buffer.append", "input_audio_buffer.append", "response.create"]);
    const appended = fake.client_events.filter((event) => event.type === "input_audio_buffer.append");
    expect(appended.map((event) => event.sha256)).toEqual(await Promise.all(early.map(sha256Hex)));
    engine.close();
  });

  it("relays the caller's audio untouched; speech becomes caller_started_speaking, then the caller's transcript and the model's answer", async () => {
    const { marker, engine, events, session, record } = await setup({ caller_turns: ["Yes, Tuesday works."], responses: ["Great, see you Tuesday."] });
    await engine.connect(session, record);
    const frames = [silence(), silence(), speech(1), speech(2), speech(3), speech(4), ...Array.from({ length: 6 }, silence)];
    for (const payload of frames) engine.appendCallerAudio(payload);
    await vi.waitFor(() => expect(ofType(events, "response_done")).toHaveLength(1));

    const fake = await onlySession(marker);
    const appended = fake.client_events.filter((event) => event.type === "input_audio_buffer.append");
    expect(appended.map((event) => event.bytes)).toEqual(frames.map(() => 160));
    expect(appended.map((event) => event.sha256)).toEqual(await Promise.all(frames.map(sha256Hex)));

    expect(fake.server_events).toContain("input_audio_buffer.committed");
    expect(events.map((event) => event.type).filter((type) => type !== "agent_audio")).toEqual(["caller_started_speaking", "caller_transcript", "agent_transcript", "response_done"]);
    expect(ofType(events, "caller_transcript")).toEqual([{ type: "caller_transcript", itemId: expect.stringMatching(/^item_/), text: "Yes, Tuesday works." }]);
    expect(ofType(events, "agent_transcript")[0]!.text).toBe("Great, see you Tuesday.");
    engine.close();
  });

  it("barge-in: the interrupted response ends and truncate tells the model how much the caller heard", async () => {
    const { marker, engine, events, session, record } = await setup({ responses: ["A long opening that the caller will interrupt."], audio_deltas: 50, delta_interval_ms: 20 });
    await engine.connect(session, record);
    engine.respond();
    await vi.waitFor(() => expect(ofType(events, "agent_audio").length).toBeGreaterThanOrEqual(2));
    for (let seed = 1; seed <= 3; seed++) engine.appendCallerAudio(speech(seed));
    await vi.waitFor(() => expect(ofType(events, "response_done")).toHaveLength(1));
    expect(events.findIndex((event) => event.type === "caller_started_speaking")).toBeLessThan(events.findIndex((event) => event.type === "response_done"));
    const { itemId, contentIndex } = ofType(events, "agent_audio")[0]!;
    engine.truncate(itemId, contentIndex, 20.6);

    await vi.waitFor(async () => expect((await onlySession(marker)).server_events).toContain("conversation.item.truncated"));
    const fake = await onlySession(marker);
    expect(fake.client_events.filter((event) => event.type === "conversation.item.truncate")).toEqual([{ type: "conversation.item.truncate", item_id: itemId, content_index: 0, audio_end_ms: 20 }]);
    expect(fake.sent_audio.length).toBeLessThan(50);
    expect(fake.errors).toEqual([]);
    engine.close();
  });

  it("end_call: the model's tool call comes before its response_done, and the acknowledgement is accepted", async () => {
    const { marker, engine, events, session, record } = await setup({ responses: ["Thanks, goodbye!"], end_call_after_turn: 1 });
    await engine.connect(session, record);
    for (const payload of [speech(1), speech(2), speech(3), ...Array.from({ length: 5 }, silence)]) engine.appendCallerAudio(payload);
    await vi.waitFor(() => expect(ofType(events, "response_done")).toHaveLength(1));

    const [endCall] = ofType(events, "tool_call");
    expect(endCall).toEqual({ type: "tool_call", name: "end_call", toolCallId: expect.stringMatching(/^call_/) });
    // After the goodbye's audio and transcript, before its response_done.
    expect(events.map((event) => event.type).slice(-3)).toEqual(["agent_transcript", "tool_call", "response_done"]);

    engine.completeToolCall(endCall!.toolCallId, "ok");
    await vi.waitFor(async () => expect((await onlySession(marker)).server_events.at(-1)).toBe("conversation.item.done"));
    const fake = await onlySession(marker);
    expect(fake.client_events.at(-1)).toEqual({ type: "conversation.item.create", item: { type: "function_call_output", call_id: endCall!.toolCallId, output: "ok" } });
    expect(fake.errors).toEqual([]);
    expect(fake.client_events.filter((event) => event.type === "response.create")).toEqual([]);
    engine.close();
  });

  it("a tool called without a word first (opt_out): the call alone, then the reply asked for after its output speaks", async () => {
    const { marker, engine, events, session, record } = await setup({ responses: ["", "You won't be called again. Goodbye."], tool_call_after_turn: 1, tool_name: "opt_out" });
    await engine.connect(session, record);
    for (const payload of [speech(1), speech(2), speech(3), ...Array.from({ length: 5 }, silence)]) engine.appendCallerAudio(payload);
    await vi.waitFor(() => expect(ofType(events, "response_done")).toHaveLength(1));
    expect(events.map((event) => event.type)).toEqual(["caller_started_speaking", "caller_transcript", "tool_call", "response_done"]);
    const [optOut] = ofType(events, "tool_call");
    expect(optOut).toEqual({ type: "tool_call", name: "opt_out", toolCallId: expect.stringMatching(/^call_/) });

    engine.completeToolCall(optOut!.toolCallId, JSON.stringify({ opted_out: true }));
    engine.respond();
    await vi.waitFor(() => expect(ofType(events, "response_done")).toHaveLength(2));
    expect(ofType(events, "agent_transcript").map((event) => event.text)).toEqual(["You won't be called again. Goodbye."]);
    const fake = await onlySession(marker);
    expect(fake.client_events.filter((event) => event.type !== "input_audio_buffer.append").map((event) => event.type)).toEqual(["session.update", "conversation.item.create", "response.create"]);
    expect(fake.errors).toEqual([]);
    engine.close();
  });

  it("a tool the session did not declare is one the model cannot call: no tool_call", async () => {
    // The agent has no transfer_to: transfer_call is not among the session's tools.
    const { marker, engine, events, session, record } = await setup({ responses: ["I'm sorry, no one is available right now. Goodbye."], tool_call_after_turn: 1, tool_name: "transfer_call" });
    await engine.connect(session, record);
    for (const payload of [speech(1), speech(2), speech(3), ...Array.from({ length: 5 }, silence)]) engine.appendCallerAudio(payload);
    await vi.waitFor(() => expect(ofType(events, "response_done")).toHaveLength(1));
    expect(ofType(events, "tool_call")).toEqual([]);
    expect((await onlySession(marker)).server_events).not.toContain("response.function_call_arguments.done");
    engine.close();
  });

  it("speak(): the response under way is cancelled, and the next one is asked for with the exact words to say", async () => {
    // A greeting far longer than the test (1,000 deltas 20 ms apart), then a short second response.
    const { marker, engine, events, session, record } = await setup({ responses: ["A long greeting over a voicemail's.", "Please call Acme back."], audio_deltas: [1000, 50], delta_interval_ms: 20 });
    await engine.connect(session, record);
    engine.respond();
    await vi.waitFor(() => expect(ofType(events, "agent_audio").length).toBeGreaterThanOrEqual(2));
    engine.speak("Please call Acme back.");
    // The second response trickles in too: 50 deltas 20 ms apart.
    await vi.waitFor(() => expect(ofType(events, "response_done")).toHaveLength(2), { timeout: 5_000 });

    const fake = await onlySession(marker);
    expect(fake.client_events.filter((event) => event.type !== "input_audio_buffer.append")).toEqual([
      expect.objectContaining({ type: "session.update" }),
      expect.objectContaining({ type: "response.create" }),
      { type: "response.cancel" },
      { type: "conversation.item.create", item: { type: "message", role: "system", content: [{ type: "input_text", text: expect.stringContaining('word for word, and nothing else: "Please call Acme back."') }] } },
      expect.objectContaining({ type: "response.create" }),
    ]);
    expect(fake.errors).toEqual([]);
    // The greeting stopped short; the second response was spoken whole.
    const items = [...new Set(fake.sent_audio.map((audio) => audio.item_id))];
    expect(items).toHaveLength(2);
    expect(fake.sent_audio.filter((audio) => audio.item_id === items[0]).length).toBeLessThan(1000);
    expect(fake.sent_audio.filter((audio) => audio.item_id === items[1])).toHaveLength(50);
    engine.close();
  });

  it("restores the conversation after a reconnect: agent turns as assistant output_text, caller turns as user input_text", async () => {
    const { marker, engine, session, record } = await setup();
    const history: EngineSessionConfig["history"] = [
      { role: "agent", text: "Hello, is this Jane?" },
      { role: "customer", text: "Yes, speaking." },
    ];
    await engine.connect({ ...session, history }, record);
    await vi.waitFor(async () => expect((await onlySession(marker)).server_events.filter((type) => type === "conversation.item.done")).toHaveLength(2));

    const fake = await onlySession(marker);
    expect(fake.client_events.slice(1)).toEqual([
      { type: "conversation.item.create", item: { type: "message", role: "assistant", content: [{ type: "output_text", text: "Hello, is this Jane?" }] } },
      { type: "conversation.item.create", item: { type: "message", role: "user", content: [{ type: "input_text", text: "Yes, speaking." }] } },
    ]);
    expect(fake.errors).toEqual([]);
    engine.close();
  });

  it("connect fails on a wrong API key (401), and nothing is emitted", async () => {
    const { marker, engine, events, session, record } = await setup({}, "sk-wrong-key");
    await expect(engine.connect(session, record)).rejects.toThrow(/refused the connection: 401 Incorrect API key/);
    expect(events).toEqual([]);
    expect(await realtimeSessions(marker)).toEqual([]);
  });

  it("connect fails when the model refuses the configuration", async () => {
    const { engine, events, session, record } = await setup({ refuse_session: "Invalid voice." });
    await expect(engine.connect(session, record)).rejects.toThrow(/refused the session: invalid_value: Invalid voice\./);
    expect(events).toEqual([]);
  });

  it("connect fails when the configuration is never accepted in time", async () => {
    const { marker, engine, events, session, record } = await setup({ ignore_session_update: true });
    await expect(engine.connect(session, record)).rejects.toThrow(/did not accept the session within 2000 ms/);
    expect(events).toEqual([]);
    await vi.waitFor(async () => expect((await onlySession(marker)).closed).toMatchObject({ by: "client" }));
  });

  it("close() while connecting makes connect fail, and nothing is emitted", async () => {
    const { engine, events, session, record } = await setup();
    const connecting = engine.connect(session, record);
    engine.close();
    await expect(connecting).rejects.toThrow(/closed before the session was configured/);
    expect(events).toEqual([]);
  });

  it("a dropped socket ends the session once, with an error and the usage so far", async () => {
    // 2 session events + 14 for a 3-delta response, then the drop inside the second response.
    const { marker, engine, events, session, record } = await setup({ drop_after_events: 20, usage: realtimeUsage({ text: 300, audio: 0, cachedText: 0, cachedAudio: 0 }, { text: 0, audio: 150 }) });
    await engine.connect(session, record);
    engine.respond();
    engine.respond();
    await vi.waitFor(() => expect(ofType(events, "closed")).toHaveLength(1));

    expect(ofType(events, "response_done")).toHaveLength(1);
    expect(ofType(events, "closed")).toEqual([{ type: "closed", error: expect.stringMatching(/ended unexpectedly \(code 1011: fake drop\)/), usage: { sessionSeconds: 0, inputTextTokens: 300, inputAudioTokens: 0, cachedInputTextTokens: 0, cachedInputAudioTokens: 0, outputTextTokens: 0, outputAudioTokens: 150 } }]);
    expect((await onlySession(marker)).closed).toEqual({ by: "server", code: 1011, reason: "fake drop" });
    engine.close();
    engine.respond();
    expect(ofType(events, "closed")).toHaveLength(1);
  });

  it("close() ends the session once, without error, with the usage of its responses summed by kind", async () => {
    const { marker, engine, events, session, record } = await setup({ responses: ["One.", "Two."], usage: realtimeUsage({ text: 60, audio: 40, cachedText: 50, cachedAudio: 10 }, { text: 15, audio: 25 }) });
    await engine.connect(session, record);
    engine.respond();
    await vi.waitFor(() => expect(ofType(events, "response_done")).toHaveLength(1));
    engine.respond();
    await vi.waitFor(() => expect(ofType(events, "response_done")).toHaveLength(2));
    engine.close();
    engine.close();

    expect(ofType(events, "closed")).toEqual([{ type: "closed", error: null, usage: { sessionSeconds: 0, inputTextTokens: 120, inputAudioTokens: 80, cachedInputTextTokens: 100, cachedInputAudioTokens: 20, outputTextTokens: 30, outputAudioTokens: 50 } }]);
    await vi.waitFor(async () => expect((await onlySession(marker)).closed).toEqual({ by: "client", code: 1000, reason: "call ended" }));
    await expect(engine.connect(session, record)).rejects.toThrow(/connects once/);
  });
});
