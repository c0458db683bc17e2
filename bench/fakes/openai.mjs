// @ts-check
// A fake OpenAI on 127.0.0.1 speaking the public protocols (GA event names, as in the `openai`
// SDK's resources/realtime types):
// - Realtime WebSocket `GET /v1/realtime?model=…` with `Authorization: Bearer <key>`:
//   `session.created`; `session.update` → `session.updated` (the session merged); caller audio via
//   `input_audio_buffer.append` goes through a server-VAD stand-in (energy per 20 ms frame, the
//   session's `silence_duration_ms` / `prefix_padding_ms`) that emits
//   `input_audio_buffer.speech_started` / `speech_stopped` / `committed`, the user item and its
//   `conversation.item.input_audio_transcription.completed`, interrupts an active response
//   (`interrupt_response`) and answers the turn (`create_response`). `response.create` starts a
//   response that, after the configured model latency, streams `response.output_audio.delta`s
//   (20 ms of μ-law each unless configured otherwise, paced at a multiple of real time) and ends with the `…done` events and `response.done`;
//   `response.cancel`, `conversation.item.truncate` (→ `truncated`, refused past the audio sent),
//   `conversation.item.create` work as documented; anything else is an `error` event.
// - GPT-Live WebSocket `GET /v1/live/sessions` with `Authorization: Bearer <key>` (openai-node's
//   `resources/live` types): `session.start` (audio/pcmu at 8000 Hz both ways, or an `error`) →
//   `session.started`; `session.instructions.append` → `session.instructions.appended` and a
//   response; a response streams `session.output_audio.delta`s after the model latency, paced like
//   Realtime's, with its text as one `session.output_transcript.delta`, then
//   `session.usage.updated`; there is no item id, no done event and no speech-started event: the
//   same energy VAD stops the response under way when the caller starts (server-side barge-in,
//   silently) and, once the caller is quiet for 500 ms, sends their words as a
//   `session.input_transcript.delta` and answers; `session.close` → `session.closed` and the socket
//   closes.
// - `POST /v1/chat/completions`: answers a `response_format: json_schema` request with an object
//   that satisfies the schema.
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import { now } from "../lib/clock.mjs";
import { WebSocketServer } from "ws";
import { payloadIsSpeech, payloadMs } from "../lib/audio.mjs";
import { closeServer, listenLocal } from "../lib/net.mjs";

/**
 * @typedef {object} ModelScenario
 * @property {number} modelLatencyMs time from a response's creation to its first audio
 * @property {number} agentSpeed how much faster than real time the agent's audio is streamed (like the real API, which runs ahead of playback)
 * @property {(instructions: string) => { index: number; key: string } | null} callFor which bench call a session's instructions belong to
 * @property {(index: number, responseNumber: number) => { durationMs: number; transcript: string }} response what the agent says in its n-th response (0 = the greeting)
 * @property {(index: number, turnNumber: number) => string} callerTranscript
 * @property {number} agentFrameMs audio per `response.output_audio.delta`
 * @property {(index: number, counter: number) => string} agentFrame
 *
 * @typedef {object} ModelObserver
 * @property {(session: ModelSession) => void} [connected]
 * @property {(session: ModelSession, config: any) => void} [configured]
 * @property {(session: ModelSession, payload: string, t: number) => void} [append]
 * @property {(session: ModelSession, payload: string, t: number, responseNumber: number, first: boolean) => void} [deltaSent]
 * @property {(session: ModelSession, t: number, interrupting: boolean) => void} [speechStarted]
 * @property {(session: ModelSession, t: number, responseNumber: number) => void} [responseCreateReceived]
 * @property {(session: ModelSession, truncate: { itemId: string; audioEndMs: number; sentMs: number; t: number }) => void} [truncated]
 * @property {(session: ModelSession) => void} [closed]
 * @property {(session: ModelSession, type: string, t: number) => void} [event] every event sent or received but audio (for timelines)
 * @property {(session: ModelSession | null, problem: string) => void} [problem]
 * @property {(body: any) => void} [extraction]
 */

/**
 * @typedef {object} ActiveResponse
 * @property {string} id
 * @property {string} itemId
 * @property {number} number
 * @property {number} frames total frames to stream
 * @property {number} sent frames sent
 * @property {string} transcript
 * @property {NodeJS.Timeout | null} timer
 */

/**
 * @typedef {object} ModelSession
 * @property {import("ws").WebSocket} socket
 * @property {string} model
 * @property {any} config
 * @property {{ index: number; key: string } | null} call
 * @property {number} audioMs caller audio appended so far
 * @property {boolean} speaking
 * @property {number} silenceMs
 * @property {string | null} speechItemId
 * @property {number} callerTurns
 * @property {number} responses responses started
 * @property {number} agentFrames agent frames generated
 * @property {ActiveResponse | null} active
 * @property {Map<string, number>} itemAudioMs audio sent per assistant item
 * @property {string | null} lastItemId
 * @property {boolean} live a GPT-Live session (else Realtime)
 */

const id = (/** @type {string} */ prefix) => `${prefix}_${randomBytes(10).toString("hex")}`;
const isObject = (/** @type {unknown} */ value) => typeof value === "object" && value !== null && !Array.isArray(value);

/** @param {any} target @param {any} patch @returns {any} */
function merge(target, patch) {
  if (!isObject(patch)) return patch;
  const result = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) result[key] = isObject(value) && isObject(result[key]) ? merge(result[key], value) : value;
  return result;
}

/** An object that satisfies a (strict) JSON Schema: the fake extraction model's answer. */
function exampleFor(/** @type {any} */ schema) {
  if (!isObject(schema)) return null;
  if (Array.isArray(schema.enum)) return schema.enum[0];
  if ("const" in schema) return schema.const;
  for (const key of ["anyOf", "oneOf"]) if (Array.isArray(schema[key])) return exampleFor(schema[key].find((/** @type {any} */ option) => option.type !== "null") ?? schema[key][0]);
  const types = Array.isArray(schema.type) ? schema.type : [schema.type];
  const type = types.find((/** @type {unknown} */ t) => t !== "null") ?? types[0];
  switch (type) {
    case "object": {
      /** @type {Record<string, unknown>} */
      const value = {};
      for (const [name, property] of Object.entries(schema.properties ?? {})) value[name] = exampleFor(property);
      return value;
    }
    case "array":
      return [];
    case "boolean":
      return true;
    case "integer":
    case "number":
      return schema.minimum ?? 1;
    case "string":
      return schema.format === "date-time" ? new Date(0).toISOString() : "tomorrow at 10";
    default:
      return null;
  }
}

const DEFAULT_SESSION = {
  type: "realtime",
  object: "realtime.session",
  output_modalities: ["audio"],
  instructions: "",
  audio: {
    input: {
      format: { type: "audio/pcm", rate: 24000 },
      transcription: null,
      noise_reduction: null,
      turn_detection: { type: "server_vad", threshold: 0.5, prefix_padding_ms: 300, silence_duration_ms: 500, create_response: true, interrupt_response: true, idle_timeout_ms: null },
    },
    output: { format: { type: "audio/pcm", rate: 24000 }, voice: "alloy", speed: 1 },
  },
  tools: [],
  tool_choice: "auto",
  max_output_tokens: "inf",
  tracing: null,
  truncation: "auto",
  prompt: null,
  include: null,
};

/**
 * @param {{ apiKey: string; scenario: ModelScenario; observer?: ModelObserver }} options
 */
export async function startFakeOpenAI({ apiKey, scenario, observer = {} }) {
  let eventCounter = 0;
  /** @type {Set<ModelSession>} */
  const sessions = new Set();
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });

  /** @param {ModelSession} session @param {Record<string, unknown>} event */
  const send = (session, event) => {
    if (session.socket.readyState !== session.socket.OPEN) return;
    session.socket.send(JSON.stringify({ event_id: `event_${++eventCounter}`, ...event }));
    if (event.type !== "response.output_audio.delta" && event.type !== "session.output_audio.delta") observer.event?.(session, `openai→ ${String(event.type)}`, now());
  };
  /** @param {ModelSession} session @param {string} code @param {string} message @param {string | null} [clientEventId] */
  const sendError = (session, code, message, clientEventId = null) => {
    observer.problem?.(session, `error ${code}: ${message}`);
    send(session, { type: "error", error: { type: "invalid_request_error", code, message, param: null, event_id: clientEventId } });
  };

  const turnDetection = (/** @type {ModelSession} */ session) => session.config.audio?.input?.turn_detection ?? null;

  /** @param {ModelSession} session @param {ActiveResponse} response @param {"completed" | "cancelled"} status @param {string | null} reason */
  const finishResponse = (session, response, status, reason) => {
    if (response.timer) clearTimeout(response.timer);
    session.active = null;
    const base = { response_id: response.id, item_id: response.itemId, output_index: 0, content_index: 0 };
    const heard = status === "completed" ? response.transcript : response.transcript.slice(0, Math.ceil((response.transcript.length * response.sent) / Math.max(1, response.frames)));
    const item = {
      id: response.itemId,
      object: "realtime.item",
      type: "message",
      role: "assistant",
      status: status === "completed" ? "completed" : "incomplete",
      content: [{ type: "output_audio", transcript: heard }],
    };
    if (response.sent > 0) {
      send(session, { type: "response.output_audio.done", ...base });
      send(session, { type: "response.output_audio_transcript.done", ...base, transcript: heard });
      send(session, { type: "response.content_part.done", ...base, part: { type: "audio", transcript: heard } });
      send(session, { type: "response.output_item.done", response_id: response.id, output_index: 0, item });
      send(session, { type: "conversation.item.done", previous_item_id: null, item });
    }
    const outputTokens = Math.round((response.sent * scenario.agentFrameMs) / 50) + heard.split(" ").length;
    send(session, {
      type: "response.done",
      response: {
        object: "realtime.response",
        id: response.id,
        status,
        status_details: status === "cancelled" ? { type: "cancelled", reason } : null,
        output: response.sent > 0 ? [item] : [],
        conversation_id: "conv_bench",
        output_modalities: ["audio"],
        max_output_tokens: "inf",
        audio: { output: { format: session.config.audio?.output?.format, voice: session.config.audio?.output?.voice } },
        usage: {
          total_tokens: 200 + outputTokens,
          input_tokens: 200,
          output_tokens: outputTokens,
          input_token_details: { text_tokens: 150, audio_tokens: 50, image_tokens: 0, cached_tokens: 0, cached_tokens_details: { text_tokens: 0, audio_tokens: 0, image_tokens: 0 } },
          output_token_details: { text_tokens: heard.split(" ").length, audio_tokens: Math.round((response.sent * scenario.agentFrameMs) / 50) },
        },
        metadata: null,
      },
    });
  };

  /** Starts the next response: created now, audio after the model latency, paced in real time. */
  const startResponse = (/** @type {ModelSession} */ session) => {
    const number = session.responses++;
    const plan = scenario.response(session.call?.index ?? 0xffff, number);
    /** @type {ActiveResponse} */
    const response = { id: id("resp"), itemId: id("item"), number, frames: Math.max(1, Math.round(plan.durationMs / scenario.agentFrameMs)), sent: 0, transcript: plan.transcript, timer: null };
    session.active = response;
    send(session, {
      type: "response.created",
      response: { object: "realtime.response", id: response.id, status: "in_progress", status_details: null, output: [], conversation_id: "conv_bench", output_modalities: ["audio"], max_output_tokens: "inf", usage: null, metadata: null },
    });
    const firstAudioAt = now() + scenario.modelLatencyMs;
    const base = { response_id: response.id, item_id: response.itemId, output_index: 0, content_index: 0 };
    const streamFrame = () => {
      if (session.active !== response) return;
      if (response.sent === 0) {
        const item = { id: response.itemId, object: "realtime.item", type: "message", role: "assistant", status: "in_progress", content: [] };
        send(session, { type: "response.output_item.added", response_id: response.id, output_index: 0, item });
        send(session, { type: "conversation.item.added", previous_item_id: session.lastItemId, item });
        send(session, { type: "response.content_part.added", ...base, part: { type: "audio", transcript: "" } });
        session.lastItemId = response.itemId;
      }
      const payload = scenario.agentFrame(session.call?.index ?? 0xffff, session.agentFrames++);
      const t = now();
      // Written out rather than JSON.stringify'd: the same JSON (ids are hex, the delta base64), at 2 500 deltas a second.
      if (session.socket.readyState === session.socket.OPEN) session.socket.send(`{"event_id":"event_${++eventCounter}","type":"response.output_audio.delta","response_id":"${response.id}","item_id":"${response.itemId}","output_index":0,"content_index":0,"delta":"${payload}"}`);
      response.sent++;
      session.itemAudioMs.set(response.itemId, response.sent * scenario.agentFrameMs);
      observer.deltaSent?.(session, payload, t, response.number, response.sent === 1);
      if (response.sent === 1) send(session, { type: "response.output_audio_transcript.delta", ...base, delta: response.transcript });
      if (response.sent >= response.frames) return finishResponse(session, response, "completed", null);
      response.timer = setTimeout(streamFrame, Math.max(0, firstAudioAt + (response.sent * scenario.agentFrameMs) / scenario.agentSpeed - now()));
    };
    response.timer = setTimeout(streamFrame, scenario.modelLatencyMs);
    return number;
  };

  /** Server VAD stand-in, fed with each appended frame. */
  const detectVoice = (/** @type {ModelSession} */ session, /** @type {string} */ payload) => {
    const vad = turnDetection(session);
    const frameMs = payloadMs(payload);
    session.audioMs += frameMs;
    if (!vad) return;
    const speech = payloadIsSpeech(payload);
    if (!session.speaking && speech) {
      session.speaking = true;
      session.silenceMs = 0;
      session.speechItemId = id("item");
      const interrupting = session.active !== null;
      const sentAt = now();
      send(session, { type: "input_audio_buffer.speech_started", audio_start_ms: Math.max(0, Math.round(session.audioMs - frameMs - (vad.prefix_padding_ms ?? 300))), item_id: session.speechItemId });
      observer.speechStarted?.(session, sentAt, interrupting);
      if (interrupting && vad.interrupt_response !== false && session.active) finishResponse(session, session.active, "cancelled", "turn_detected");
    } else if (session.speaking && !speech) {
      session.silenceMs += frameMs;
      if (session.silenceMs >= (vad.silence_duration_ms ?? 500)) {
        session.speaking = false;
        const itemId = /** @type {string} */ (session.speechItemId);
        const turn = session.callerTurns++;
        send(session, { type: "input_audio_buffer.speech_stopped", audio_end_ms: Math.round(session.audioMs - session.silenceMs), item_id: itemId });
        send(session, { type: "input_audio_buffer.committed", previous_item_id: session.lastItemId, item_id: itemId });
        const item = { id: itemId, object: "realtime.item", type: "message", role: "user", status: "completed", content: [{ type: "input_audio", transcript: null }] };
        send(session, { type: "conversation.item.added", previous_item_id: session.lastItemId, item });
        send(session, { type: "conversation.item.done", previous_item_id: session.lastItemId, item });
        session.lastItemId = itemId;
        if (session.config.audio?.input?.transcription) {
          const transcript = scenario.callerTranscript(session.call?.index ?? 0xffff, turn);
          setTimeout(() => send(session, { type: "conversation.item.input_audio_transcription.completed", item_id: itemId, content_index: 0, transcript, usage: { type: "duration", seconds: 1 } }), 40);
        }
        if (vad.create_response !== false && !session.active) startResponse(session);
      }
    } else if (speech) {
      session.silenceMs = 0;
    }
  };

  /** @param {ModelSession} session @param {any} event */
  const handle = (session, event) => {
    observer.event?.(session, `→openai ${String(event.type)}`, now());
    switch (event.type) {
      case "session.update": {
        if (!isObject(event.session)) return sendError(session, "invalid_value", "session must be an object", event.event_id);
        if (event.session.type !== undefined && event.session.type !== "realtime") return sendError(session, "invalid_value", `session.type ${event.session.type} is not realtime`, event.event_id);
        session.config = merge(session.config, event.session);
        if (!session.call && typeof session.config.instructions === "string") session.call = scenario.callFor(session.config.instructions);
        observer.configured?.(session, session.config);
        return send(session, { type: "session.updated", session: session.config });
      }
      case "response.create": {
        if (session.active) return sendError(session, "conversation_already_has_active_response", `Conversation already has an active response in progress: ${session.active.id}. Wait until the response is finished before creating a new one.`, event.event_id);
        const t = now();
        const number = startResponse(session);
        return observer.responseCreateReceived?.(session, t, number);
      }
      case "response.cancel": {
        if (!session.active) return sendError(session, "response_cancel_not_active", "Cancellation failed: no active response found", event.event_id);
        return finishResponse(session, session.active, "cancelled", "client_cancelled");
      }
      case "conversation.item.truncate": {
        const sentMs = session.itemAudioMs.get(event.item_id);
        if (sentMs === undefined) return sendError(session, "item_not_found", `Item with item_id not found: ${event.item_id}`, event.event_id);
        if (typeof event.audio_end_ms !== "number" || event.audio_end_ms < 0 || event.audio_end_ms > sentMs) {
          return sendError(session, "invalid_value", `Audio content of ${sentMs}ms is already shorter than ${event.audio_end_ms}ms`, event.event_id);
        }
        observer.truncated?.(session, { itemId: event.item_id, audioEndMs: event.audio_end_ms, sentMs, t: now() });
        return send(session, { type: "conversation.item.truncated", item_id: event.item_id, content_index: event.content_index ?? 0, audio_end_ms: event.audio_end_ms });
      }
      case "conversation.item.create": {
        if (!isObject(event.item)) return sendError(session, "invalid_value", "item must be an object", event.event_id);
        const item = { id: event.item.id ?? id("item"), object: "realtime.item", status: "completed", ...event.item };
        send(session, { type: "conversation.item.added", previous_item_id: session.lastItemId, item });
        send(session, { type: "conversation.item.done", previous_item_id: session.lastItemId, item });
        session.lastItemId = item.id;
        return;
      }
      case "input_audio_buffer.commit":
        return send(session, { type: "input_audio_buffer.committed", previous_item_id: session.lastItemId, item_id: id("item") });
      case "input_audio_buffer.clear":
        return send(session, { type: "input_audio_buffer.cleared" });
      default:
        return sendError(session, "invalid_type", `Invalid value: '${String(event.type)}'. Supported values are documented client events.`, event.event_id);
    }
  };

  /** Where a GPT-Live session's timeline is, in ms: the caller audio appended so far (it streams in real time). */
  const liveMs = (/** @type {ModelSession} */ session) => Math.round(session.audioMs);

  /** A GPT-Live response: audio after the model latency, paced like Realtime's, its text once; no done event. */
  const startLiveResponse = (/** @type {ModelSession} */ session) => {
    const number = session.responses++;
    const plan = scenario.response(session.call?.index ?? 0xffff, number);
    /** @type {ActiveResponse} */
    const response = { id: id("resp"), itemId: "", number, frames: Math.max(1, Math.round(plan.durationMs / scenario.agentFrameMs)), sent: 0, transcript: plan.transcript, timer: null };
    session.active = response;
    const firstAudioAt = now() + scenario.modelLatencyMs;
    const streamFrame = () => {
      if (session.active !== response) return;
      const payload = scenario.agentFrame(session.call?.index ?? 0xffff, session.agentFrames++);
      const t = now();
      if (session.socket.readyState === session.socket.OPEN) session.socket.send(`{"event_id":"event_${++eventCounter}","type":"session.output_audio.delta","delta":"${payload}"}`);
      response.sent++;
      observer.deltaSent?.(session, payload, t, response.number, response.sent === 1);
      if (response.sent === 1) send(session, { type: "session.output_transcript.delta", delta: response.transcript, start_ms: liveMs(session), end_ms: liveMs(session) + plan.durationMs });
      if (response.sent >= response.frames) {
        session.active = null;
        return send(session, { type: "session.usage.updated", usage: { seconds: Math.floor(session.audioMs / 1000) } });
      }
      response.timer = setTimeout(streamFrame, Math.max(0, firstAudioAt + (response.sent * scenario.agentFrameMs) / scenario.agentSpeed - now()));
    };
    response.timer = setTimeout(streamFrame, scenario.modelLatencyMs);
    return number;
  };

  /** GPT-Live decides turns itself: the same energy VAD, with no event at the start of speech. */
  const detectVoiceLive = (/** @type {ModelSession} */ session, /** @type {string} */ payload) => {
    const frameMs = payloadMs(payload);
    session.audioMs += frameMs;
    const speech = payloadIsSpeech(payload);
    if (!session.speaking && speech) {
      session.speaking = true;
      session.silenceMs = 0;
      observer.speechStarted?.(session, now(), session.active !== null);
      // Server-side barge-in: the response stops, and nobody is told.
      if (session.active?.timer) clearTimeout(session.active.timer);
      session.active = null;
    } else if (session.speaking && !speech) {
      session.silenceMs += frameMs;
      if (session.silenceMs >= 500) {
        session.speaking = false;
        const transcript = scenario.callerTranscript(session.call?.index ?? 0xffff, session.callerTurns++);
        send(session, { type: "session.input_transcript.delta", delta: transcript, start_ms: liveMs(session) - 1000, end_ms: liveMs(session) - session.silenceMs });
        startLiveResponse(session);
      }
    } else if (speech) {
      session.silenceMs = 0;
    }
  };

  /** @param {ModelSession} session @param {any} event */
  const handleLive = (session, event) => {
    observer.event?.(session, `→openai ${String(event.type)}`, now());
    if (session.config === null && event.type !== "session.start") return sendError(session, "session_not_started", "Send session.start first.", event.event_id);
    switch (event.type) {
      case "session.start": {
        if (session.config !== null) return sendError(session, "session_already_started", "The session has already started.", event.event_id);
        const config = event.session;
        const format = config?.audio?.format;
        if (typeof config?.model !== "string" || format?.type !== "audio/pcmu" || format?.rate !== 8000) return sendError(session, "invalid_value", "session.model and audio/pcmu at 8000 Hz are required here", event.event_id);
        session.config = config;
        session.model = config.model;
        session.call = scenario.callFor(config.instructions ?? "");
        observer.configured?.(session, config);
        return send(session, { type: "session.started", session: { id: id("sess"), expires_at: Math.floor(Date.now() / 1000) + 3600, status: "active", ...config } });
      }
      case "session.instructions.append": {
        if (typeof event.content !== "string" || event.delegation_id !== null) return sendError(session, "invalid_value", "content (a string) and delegation_id (null) are required", event.event_id);
        send(session, { type: "session.instructions.appended", start_ms: liveMs(session), end_ms: liveMs(session), ...(event.event_id ? { client_event_id: event.event_id } : {}) });
        const t = now();
        if (session.active?.timer) clearTimeout(session.active.timer);
        const number = startLiveResponse(session);
        return observer.responseCreateReceived?.(session, t, number);
      }
      case "session.close": {
        if (session.active?.timer) clearTimeout(session.active.timer);
        session.active = null;
        send(session, { type: "session.closed", reason: "close_requested", usage: { seconds: Math.floor(session.audioMs / 1000) } });
        return session.socket.close(1000);
      }
      default:
        return sendError(session, "invalid_value", `Invalid value: '${String(event.type)}'. Supported values are the Live client events this fake plays.`, event.event_id);
    }
  };

  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (req.headers.authorization !== `Bearer ${apiKey}`) {
      res.writeHead(401, { "content-type": "application/json" });
      return res.end(JSON.stringify({ error: { message: "Incorrect API key provided", type: "invalid_request_error", param: null, code: "invalid_api_key" } }));
    }
    if (req.method === "POST" && url.pathname === "/v1/chat/completions") {
      const chunks = [];
      for await (const chunk of req) chunks.push(chunk);
      /** @type {any} */
      let body;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        res.writeHead(400, { "content-type": "application/json" });
        return res.end(JSON.stringify({ error: { message: "We could not parse the JSON body of your request.", type: "invalid_request_error", param: null, code: null } }));
      }
      observer.extraction?.(body);
      const schema = body.response_format?.type === "json_schema" ? body.response_format.json_schema?.schema : null;
      if (!schema) observer.problem?.(null, "chat completion without response_format json_schema");
      const content = JSON.stringify(schema ? exampleFor(schema) : {});
      res.writeHead(200, { "content-type": "application/json" });
      return res.end(
        JSON.stringify({
          id: id("chatcmpl"),
          object: "chat.completion",
          created: Math.floor(Date.now() / 1000),
          model: body.model ?? "gpt-4.1-mini",
          choices: [{ index: 0, message: { role: "assistant", content, refusal: null, annotations: [] }, logprobs: null, finish_reason: "stop" }],
          usage: { prompt_tokens: 300, completion_tokens: 20, total_tokens: 320 },
          service_tier: "default",
          system_fingerprint: null,
        }),
      );
    }
    res.writeHead(404, { "content-type": "application/json" });
    res.end(JSON.stringify({ error: { message: `Invalid URL (${req.method} ${url.pathname})`, type: "invalid_request_error", param: null, code: null } }));
  });

  server.on("upgrade", (req, socket, head) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const refuse = (/** @type {number} */ status, /** @type {string} */ message) => {
      observer.problem?.(null, `realtime upgrade refused: ${message}`);
      socket.end(`HTTP/1.1 ${status} ${status === 401 ? "Unauthorized" : "Bad Request"}\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n${JSON.stringify({ error: { message, type: "invalid_request_error" } })}`);
    };
    if (url.pathname !== "/v1/realtime" && url.pathname !== "/v1/live/sessions") return refuse(400, `unknown path ${url.pathname}`);
    if (req.headers.authorization !== `Bearer ${apiKey}`) return refuse(401, "Incorrect API key provided");
    const live = url.pathname === "/v1/live/sessions";
    if (live && url.search) return refuse(400, "Live sessions take no query parameters: the model goes in session.start.");
    const model = live ? "" : url.searchParams.get("model");
    if (!live && !model) return refuse(400, "Missing required parameter: 'model'.");
    if (req.headers["openai-beta"]) observer.problem?.(null, `OpenAI-Beta: ${req.headers["openai-beta"]} selects the beta interface, not GA`);
    wss.handleUpgrade(req, socket, head, (ws) => {
      /** @type {ModelSession} */
      const session = {
        socket: ws,
        model,
        config: live ? null : { ...DEFAULT_SESSION, id: id("sess"), model, expires_at: Math.floor(Date.now() / 1000) + 3600 },
        call: null,
        audioMs: 0,
        speaking: false,
        silenceMs: 0,
        speechItemId: null,
        callerTurns: 0,
        responses: 0,
        agentFrames: 0,
        active: null,
        itemAudioMs: new Map(),
        lastItemId: null,
        live,
      };
      sessions.add(session);
      observer.connected?.(session);
      ws.on("message", (data, isBinary) => {
        const t = now();
        if (isBinary) return sendError(session, "invalid_type", "binary frames are not accepted");
        const text = String(data);
        // Caller audio is most of the traffic: time it before anything else.
        if (live) {
          /** @type {any} */
          let event;
          try {
            event = JSON.parse(text);
          } catch {
            return sendError(session, "invalid_json", "The event is not valid JSON");
          }
          if (event.type !== "session.input_audio.append") return handleLive(session, event);
          if (session.config === null) return sendError(session, "session_not_started", "Send session.start first.", event.event_id);
          if (typeof event.audio !== "string") return sendError(session, "missing_required_parameter", "Missing required parameter: 'audio'.", event.event_id);
          observer.append?.(session, event.audio, t);
          return detectVoiceLive(session, event.audio);
        }
        if (text.includes('"input_audio_buffer.append"')) {
          /** @type {any} */
          let event;
          try {
            event = JSON.parse(text);
          } catch {
            return sendError(session, "invalid_json", "The event is not valid JSON");
          }
          if (event.type === "input_audio_buffer.append") {
            if (typeof event.audio !== "string") return sendError(session, "missing_required_parameter", "Missing required parameter: 'audio'.", event.event_id);
            observer.append?.(session, event.audio, t);
            return detectVoice(session, event.audio);
          }
          return handle(session, event);
        }
        /** @type {any} */
        let event;
        try {
          event = JSON.parse(text);
        } catch {
          return sendError(session, "invalid_json", "The event is not valid JSON");
        }
        handle(session, event);
      });
      ws.on("close", () => {
        if (session.active?.timer) clearTimeout(session.active.timer);
        session.active = null;
        sessions.delete(session);
        observer.closed?.(session);
      });
      if (!live) send(session, { type: "session.created", session: session.config });
    });
  });

  const port = await listenLocal(server);
  return {
    port,
    sessions,
    async close() {
      for (const session of sessions) {
        if (session.active?.timer) clearTimeout(session.active.timer);
        session.socket.terminate();
      }
      server.closeAllConnections();
      await closeServer(server);
    },
  };
}
