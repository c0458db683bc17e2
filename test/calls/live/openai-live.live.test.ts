import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import type { EngineEvent, EngineSessionConfig } from "../../../src/calls/live/engine";
import { createOpenAILiveEngine } from "../../../src/calls/live/openai-live";
import { getConfig } from "../../../src/env";
import { liveSessions, scriptLive, type FakeLiveSession, type LiveScript } from "../../fakes/live-client";
import { sha256Hex } from "../../fakes/realtime-client";
import { uniqueName } from "../../helpers";

/**
 * The GPT-Live engine against the fake GPT-Live server (test/fakes/openai-live.mjs), with the live
 * project's configuration. Every test scripts the fake for its own sessions only: the script's
 * `match` is a unique marker in the session's instructions.
 */

const openai = getConfig(env).openai;
const WAIT = { timeout: 5_000, interval: 20 };

async function onlySession(match: string): Promise<FakeLiveSession> {
  const [session, ...others] = await liveSessions(match);
  expect(others).toHaveLength(0);
  return session!;
}

/** A fresh engine, its events as they arrive, and a unique marker scripted in the fake. */
async function setup(fields: LiveScript = {}, apiKey = openai.apiKey ?? "") {
  const marker = uniqueName("live");
  await scriptLive(marker, fields);
  const engine = createOpenAILiveEngine({ ...openai, apiKey }, { connectTimeoutMs: 2_000, closeTimeoutMs: 2_000 });
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

/** A caller turn as the fake's VAD hears it: 4 speech frames, then 6 silent ones. */
function callerTurn(engine: { appendCallerAudio(payload: string): void }) {
  for (let i = 0; i < 4; i += 1) engine.appendCallerAudio(speech(i));
  for (let i = 0; i < 6; i += 1) engine.appendCallerAudio(silence());
}

const NO_USAGE = { sessionSeconds: 0, inputTextTokens: 0, inputAudioTokens: 0, cachedInputTextTokens: 0, cachedInputAudioTokens: 0, outputTextTokens: 0, outputAudioTokens: 0 };

describe("GPT-Live engine", () => {
  it("opens the live socket and starts the session: μ-law 8 kHz both ways, the prompt, the voice and the call's tools on a Responses delegation", async () => {
    const { marker, engine, record } = await setup();
    await engine.connect({ instructions: `Be brief. [${marker}]`, voice: "marin", language: "en-US", history: [], tools: ["end_call", "opt_out", "transfer_call"] }, record);
    expect(engine.bargeIn).toBe("local");

    const session = await onlySession(marker);
    const tool = (name: string, description: unknown) => ({ type: "function", name, description, parameters: { type: "object", properties: {}, additionalProperties: false }, strict: true });
    expect(session.start).toEqual({
      type: "session.start",
      session: {
        model: openai.liveModel,
        instructions: `Be brief. [${marker}]`,
        audio: { format: { type: "audio/pcmu", rate: 8000 }, output: { voice: "marin" } },
        delegation: {
          type: "responses",
          responses: {
            model: openai.delegationModel,
            instructions: expect.stringContaining("call the one matching tool"),
            tools: [
              tool("end_call", expect.stringContaining("Hang up")),
              tool("opt_out", expect.stringContaining("not want to be called again")),
              tool("transfer_call", expect.stringContaining("Hand the call over to a person")),
            ],
          },
        },
      },
    });
    expect(session.model).toBe("gpt-live-1");
    expect(session.server_events).toEqual(["session.started"]);
    expect(session.client_events).toEqual([]);
    expect(session.errors).toEqual([]);
    engine.close();
  });

  it("a reconnect's session starts with the conversation so far as input, and resumes rather than greets", async () => {
    const { marker, engine, session, record } = await setup();
    const history: EngineSessionConfig["history"] = [
      { role: "agent", text: "Hi, is this Jane?" },
      { role: "customer", text: "Yes, speaking." },
    ];
    await engine.connect({ ...session, history }, record);
    engine.respond();

    const fake = await vi.waitFor(async () => {
      const found = await onlySession(marker);
      expect(found.client_events).toHaveLength(1);
      return found;
    }, WAIT);
    expect(fake.start!.session.input).toEqual([
      { type: "message", role: "assistant", content: [{ type: "output_text", text: "Hi, is this Jane?" }] },
      { type: "message", role: "user", content: [{ type: "input_text", text: "Yes, speaking." }] },
    ]);
    expect(fake.start!.session.audio).toEqual({ format: { type: "audio/pcmu", rate: 8000 } });
    expect(fake.client_events[0]).toEqual({ type: "session.instructions.append", content: expect.stringMatching(/^The line dropped for a moment/), delegation_id: null });
    expect(fake.errors).toEqual([]);
    engine.close();
  });

  it("the fake is strict: an unknown field or another audio format in session.start is an error, and nothing starts", async () => {
    for (const [session, param] of [
      [{ model: "gpt-live-1", audio: { format: { type: "audio/pcmu", rate: 8000 } }, turn_detection: { type: "server_vad" } }, "session.turn_detection"],
      [{ model: "gpt-live-1", audio: { format: { type: "audio/pcm", rate: 24000 } } }, "session.audio.format"],
      [{ model: "gpt-live-1", audio: { format: { type: "audio/pcmu", rate: 8000 }, input: { transcription: {} } } }, "session.audio.input"],
    ] as const) {
      const response = await fetch("https://api.openai.com/v1/live/sessions", { headers: { Upgrade: "websocket", Authorization: `Bearer ${openai.apiKey}` } });
      expect(response.status).toBe(101);
      const socket = response.webSocket!;
      socket.accept();
      const received: any[] = [];
      socket.addEventListener("message", (event) => received.push(JSON.parse(String(event.data))));
      socket.send(JSON.stringify({ type: "session.start", session }));
      await vi.waitFor(() => expect(received).toHaveLength(1), WAIT);
      expect(received[0]).toMatchObject({ type: "error", error: { param } });
      socket.send(JSON.stringify({ type: "session.instructions.append", content: "Hi", delegation_id: null }));
      await vi.waitFor(() => expect(received).toHaveLength(2), WAIT);
      expect(received[1]).toMatchObject({ type: "error", error: { code: "session_not_started" } });
      socket.close(1000);
    }
    const withQuery = await fetch("https://api.openai.com/v1/live/sessions?model=gpt-live-1", { headers: { Upgrade: "websocket", Authorization: `Bearer ${openai.apiKey}` } });
    expect(withQuery.status).toBe(400);
  });

  it("connect fails, with nothing emitted, when the session is refused, never started, or the key is wrong", async () => {
    const refused = await setup({ refuse_session: "Model gpt-live-1 is not available." });
    await expect(refused.engine.connect(refused.session, refused.record)).rejects.toThrow(/GPT-Live refused the session: invalid_value: Model gpt-live-1 is not available\./);
    const ignored = await setup({ ignore_session_start: true });
    await expect(ignored.engine.connect(ignored.session, ignored.record)).rejects.toThrow(/did not start the session within 2000 ms/);
    const wrongKey = await setup({}, "sk-wrong");
    await expect(wrongKey.engine.connect(wrongKey.session, wrongKey.record)).rejects.toThrow(/GPT-Live refused the connection: 401 Incorrect API key/);
    expect([...refused.events, ...ignored.events, ...wrongKey.events]).toEqual([]);
    await vi.waitFor(async () => expect((await onlySession(refused.marker)).closed).toMatchObject({ by: "client" }), WAIT);
  });

  it("caller audio given before the session started is sent after session.started, in order, untouched: none lost", async () => {
    const { marker, engine, session, record } = await setup();
    const frames = [silence(), speech(1), silence(), speech(2), silence()];
    const connected = engine.connect(session, record);
    for (const payload of frames) engine.appendCallerAudio(payload);
    await connected;
    engine.appendCallerAudio(silence());

    const fake = await vi.waitFor(async () => {
      const found = await onlySession(marker);
      expect(found.client_events).toHaveLength(6);
      return found;
    }, WAIT);
    expect(fake.client_events.map((event) => event.type)).toEqual(Array(6).fill("session.input_audio.append"));
    expect(fake.client_events.map((event) => event.sha256)).toEqual(await Promise.all([...frames, silence()].map(sha256Hex)));
    // Nothing reached the fake before session.start was answered: it would have been an error.
    expect(fake.errors).toEqual([]);
    engine.close();
  });

  it("greets with instructions.append; the audio is one item, its transcript one turn once the output pauses", async () => {
    const { marker, engine, events, session, record } = await setup({ responses: ["Hi Jane, this is Acme calling."], audio_deltas: 4 });
    await engine.connect(session, record);
    engine.respond();

    await vi.waitFor(() => expect(ofType(events, "response_done")).toHaveLength(1), WAIT);
    const audio = ofType(events, "agent_audio");
    expect(audio).toHaveLength(4);
    expect(new Set(audio.map((event) => event.itemId)).size).toBe(1);
    expect(audio.every((event) => event.contentIndex === 0)).toBe(true);
    expect(events.map((event) => event.type)).toEqual(["agent_audio", "agent_audio", "agent_audio", "agent_audio", "agent_transcript", "response_done"]);
    expect(ofType(events, "agent_transcript")).toEqual([{ type: "agent_transcript", itemId: audio[0]!.itemId, text: "Hi Jane, this is Acme calling." }]);
    const fake = await onlySession(marker);
    expect(fake.client_events).toEqual([{ type: "session.instructions.append", content: expect.stringMatching(/^The person has just answered the phone/), delegation_id: null }]);
    expect(await Promise.all(audio.map((event) => sha256Hex(event.payload)))).toEqual(fake.sent_audio.map((sent) => sent.sha256));
    engine.close();
  });

  it("turns from transcript deltas: the caller's first words end the agent's turn and say the caller started; the agent's reply ends the caller's", async () => {
    const { engine, events, session, record } = await setup({ responses: ["Hi Jane, is Thursday fine?", "Great, see you then."], caller_turns: ["Yes, Thursday works for me."] });
    await engine.connect(session, record);
    engine.respond();
    await vi.waitFor(() => expect(ofType(events, "agent_audio")).toHaveLength(3), WAIT);
    // The caller talks before the agent's turn has ended by its pause.
    callerTurn(engine);
    await vi.waitFor(() => expect(ofType(events, "agent_transcript")).toHaveLength(2), WAIT);

    expect(events.filter((event) => event.type !== "agent_audio")).toEqual([
      { type: "agent_transcript", itemId: expect.any(String), text: "Hi Jane, is Thursday fine?" },
      { type: "response_done" },
      { type: "caller_started_speaking" },
      { type: "caller_transcript", itemId: expect.any(String), text: "Yes, Thursday works for me." },
      { type: "agent_transcript", itemId: expect.any(String), text: "Great, see you then." },
      { type: "response_done" },
    ]);
    const [greeting, reply] = ofType(events, "agent_transcript");
    expect(greeting!.itemId).not.toBe(reply!.itemId);
    // The reply's first audio ended the caller's turn, which is reported once that audio is out (not
    // in the same tick: storing the turn there would hold the frame back) and before anything else.
    const callerAt = events.findIndex((event) => event.type === "caller_transcript");
    const replyStartsAt = events.findIndex((event) => event.type === "agent_audio" && event.itemId === reply!.itemId);
    expect(replyStartsAt).toBeGreaterThan(events.findIndex((event) => event.type === "caller_started_speaking"));
    expect(replyStartsAt).toBeLessThan(callerAt);
    expect(events.slice(replyStartsAt, callerAt).every((event) => event.type === "agent_audio" && event.itemId === reply!.itemId)).toBe(true);
    expect(events.slice(callerAt).filter((event) => event.type === "agent_audio").every((event) => event.itemId === reply!.itemId)).toBe(true);
    engine.close();
  });

  it("a delegated tool call: tool_call from response.event, the output and response.create back, then the model relays the result as a turn of its own", async () => {
    const { marker, engine, events, session, record } = await setup({
      responses: ["Hi Jane.", "", "Done: you won't be called again. Goodbye."],
      caller_turns: ["Please don't call me again."],
      tool_call_after_turn: 1,
      tool_name: "opt_out",
      usage_seconds: 42,
      delegation_usage: { input_tokens: 310, output_tokens: 12, cached_tokens: 128 },
    });
    await engine.connect(session, record);
    engine.respond();
    await vi.waitFor(() => expect(ofType(events, "response_done")).toHaveLength(1), WAIT);
    callerTurn(engine);
    const [call] = await vi.waitFor(() => {
      const calls = ofType(events, "tool_call");
      expect(calls).toHaveLength(1);
      return calls;
    }, WAIT);
    expect(call).toEqual({ type: "tool_call", name: "opt_out", toolCallId: expect.stringMatching(/^call_/) });
    engine.completeToolCall(call!.toolCallId, JSON.stringify({ opted_out: true }));
    engine.respond();
    await vi.waitFor(() => expect(ofType(events, "agent_transcript").map((event) => event.text)).toEqual(["Hi Jane.", "Done: you won't be called again. Goodbye."]), WAIT);

    const fake = await onlySession(marker);
    expect(fake.client_events.filter((event) => event.type !== "session.input_audio.append")).toEqual([
      { type: "session.instructions.append", content: expect.any(String), delegation_id: null },
      { type: "response.item.create", item: { type: "function_call_output", call_id: call!.toolCallId, output: '{"opted_out":true}' } },
      // respond() after a tool result asks nothing more: the delegated response goes on by itself.
      { type: "response.create" },
    ]);
    expect(fake.errors).toEqual([]);
    engine.close();
    await vi.waitFor(() => expect(ofType(events, "closed")).toHaveLength(1), WAIT);
    expect(ofType(events, "closed")[0]!.usage).toEqual({ ...NO_USAGE, sessionSeconds: 42, inputTextTokens: 310, cachedInputTextTokens: 128, outputTextTokens: 12 });
  });

  it("speak(): the agent's turn under way ends, and the message is asked for word for word as a turn of its own", async () => {
    const { marker, engine, events, session, record } = await setup({ responses: ["A long greeting.", "Please call Acme back."], audio_deltas: [50, 3] });
    await engine.connect(session, record);
    engine.respond();
    await vi.waitFor(() => expect(ofType(events, "agent_audio")).toHaveLength(50), WAIT);
    engine.speak("Please call Acme back.");
    expect(events.at(-1)).toEqual({ type: "response_done" });
    await vi.waitFor(() => expect(ofType(events, "response_done")).toHaveLength(2), WAIT);
    const audio = ofType(events, "agent_audio");
    expect(new Set(audio.slice(50).map((event) => event.itemId)).size).toBe(1);
    expect(audio[50]!.itemId).not.toBe(audio[0]!.itemId);
    expect(ofType(events, "agent_transcript").map((event) => event.text)).toEqual(["A long greeting.", "Please call Acme back."]);
    const fake = await onlySession(marker);
    expect(fake.client_events[1]).toEqual({ type: "session.instructions.append", content: 'Say exactly this, word for word, and nothing else: "Please call Acme back."', delegation_id: null, event_id: expect.stringMatching(/^echo_speak_/) });
    engine.close();
  });

  it("close(): session.close, the socket kept until session.closed, then closed once with the final usage", async () => {
    const { marker, engine, events, session, record } = await setup({ usage_seconds: 17 });
    await engine.connect(session, record);
    engine.close();
    engine.close();
    engine.respond();
    engine.appendCallerAudio(silence());
    await vi.waitFor(() => expect(ofType(events, "closed")).toHaveLength(1), WAIT);

    expect(events).toEqual([{ type: "closed", error: null, usage: { ...NO_USAGE, sessionSeconds: 17 } }]);
    const fake = await onlySession(marker);
    expect(fake.client_events).toEqual([{ type: "session.close" }]);
    expect(fake.server_events).toEqual(["session.started", "session.closed"]);
    expect(fake.closed).toEqual({ by: "server", code: 1000, reason: "close_requested" });
    await expect(engine.connect(session, record)).rejects.toThrow(/connects once/);
  });

  it.each([
    ["expired", /^GPT-Live session closed: expired$/],
    ["connection_lost", /^GPT-Live session closed: connection_lost$/],
  ] as const)("a session closed unasked (%s) reports what was said, then closed with the error and the usage", async (reason, error) => {
    // session.started, instructions.appended, 3 audio + 2 transcript deltas, usage.updated: then closed.
    const { engine, events, session, record } = await setup({ responses: ["Hi Jane."], close_after_events: 7, close_reason: reason, usage_seconds: 3 });
    await engine.connect(session, record);
    engine.respond();
    await vi.waitFor(() => expect(ofType(events, "closed")).toHaveLength(1), WAIT);
    expect(events.filter((event) => event.type !== "agent_audio")).toEqual([
      { type: "agent_transcript", itemId: expect.any(String), text: "Hi Jane." },
      { type: "response_done" },
      { type: "closed", error: expect.stringMatching(error), usage: { ...NO_USAGE, sessionSeconds: 3 } },
    ]);
    engine.close();
    expect(ofType(events, "closed")).toHaveLength(1);
  });

  it("a dropped socket (no session.closed) is an unexpected end", async () => {
    const { marker, engine, events, session, record } = await setup({ drop_after_events: 2 });
    await engine.connect(session, record);
    engine.respond();
    await vi.waitFor(() => expect(ofType(events, "closed")).toHaveLength(1), WAIT);
    expect(ofType(events, "closed")[0]).toEqual({ type: "closed", error: expect.stringMatching(/ended unexpectedly \(code 1011: fake drop\)/), usage: NO_USAGE });
    expect((await onlySession(marker)).closed).toEqual({ by: "server", code: 1011, reason: "fake drop" });
  });
});
