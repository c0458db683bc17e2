// @ts-check
/**
 * A fake OpenAI Realtime API (GA interface) on api.openai.com, in workerd.
 *
 * `GET /v1/realtime?model=…` with `Upgrade: websocket` and `Authorization: Bearer sk-fake-openai-key`
 * answers 101 (401 for another key, 400 without `model` or with the beta interface's
 * `OpenAI-Beta: realtime=v1` header, 426 without the upgrade). The socket then speaks like the real
 * one: `session.created` first; `session.update` → `session.updated` with the effective session
 * (an `error` unless both audio formats are `audio/pcmu`, or when a tool is not a function with a
 * valid, unique name and an object schema for its parameters); `conversation.item.create` →
 * `conversation.item.added` + `conversation.item.done` (assistant text must be `output_text`, user
 * and system text `input_text`, a `function_call_output` must name a call the model made);
 * `conversation.item.truncate` → `conversation.item.truncated` (an `error` past the audio sent);
 * `response.create` while a response is active → the `conversation_already_has_active_response`
 * error; `response.cancel` ends the active response at once (`response.done` with status
 * `cancelled`, reason `client_cancelled`), or without one is the `response_cancel_not_active` error.
 * A response streams `response.created`, `response.output_item.added`,
 * `conversation.item.added`, `response.content_part.added`, `response.output_audio_transcript.delta`,
 * the `response.output_audio.delta`s, `response.output_audio.done`,
 * `response.output_audio_transcript.done`, `response.content_part.done`,
 * `response.output_item.done`, `conversation.item.done` (none of these when the response's scripted
 * text is empty: the model only calls a tool), then (when the script says so) a function call item
 * with `response.function_call_arguments.delta`/`.done` — only of a tool the session declared, as
 * the model can call no other —, and `response.done` with the output items and usage.
 *
 * Server VAD, deterministically: a μ-law frame (one `input_audio_buffer.append`) is speech when any
 * byte is other than 0xFF or 0x7F (the two μ-law silences). `speech_start_frames` speech frames in a
 * row → `input_audio_buffer.speech_started` (and, as with `interrupt_response`, the active response
 * is cancelled: `response.done` with status `cancelled`); then `speech_stop_frames` silent frames in
 * a row → `input_audio_buffer.speech_stopped`, `input_audio_buffer.committed`, the user item
 * (`conversation.item.added`/`.done`), `conversation.item.input_audio_transcription.completed` with
 * the script's next caller turn, and (as with `create_response`) a new response.
 *
 * Control, from tests (all JSON):
 *   POST /_fake/realtime/script  a script for the sessions to come; fields (all optional):
 *     match                 only sessions whose instructions contain this text use the script
 *                           (default: every session no other script matches); the latest posted
 *                           script with the same `match` replaces the earlier one
 *     responses             transcripts of the model's responses, in order; the last one repeats
 *     audio_deltas          `response.output_audio.delta` events per response (3); a list gives each
 *                           response its own, in order, the last one repeating
 *     audio_bytes_per_delta μ-law bytes in each (160 = 20 ms)
 *     delta_interval_ms     pause before each delta after the first (0: all at once)
 *     caller_turns          transcripts of the caller's turns, in order; the last one repeats
 *     speech_start_frames   speech frames in a row that start a caller turn (3)
 *     speech_stop_frames    silent frames in a row that end it (5)
 *     end_call_after_turn   the response to the caller's Nth turn (1-based) calls end_call (null)
 *     tool_call_after_turn  the response to the caller's Nth turn calls `tool_name` (null), with `{}`;
 *                           if the session did not declare it, that turn's end_call (if any) instead
 *     tool_name             the tool it calls (null)
 *     usage                 every finished response's usage by kind, as the API details it:
 *                           `{ input_token_details: { text_tokens, audio_tokens, cached_tokens_details:
 *                           { text_tokens, audio_tokens } }, output_token_details: { text_tokens,
 *                           audio_tokens } }` (120 text tokens in, 80 audio tokens out, none cached);
 *                           the totals and `cached_tokens` are summed from it
 *     drop_after_events     close the socket (1011) after sending this many server events (null)
 *     drop_sessions         only the first N sessions using the script drop (null: all)
 *     refuse_session        answer `session.update` with an `error` event of this message (null)
 *     ignore_session_update never answer `session.update` (false)
 *   GET /_fake/realtime/sessions[?match=text]  every session (or those whose instructions contain
 *     the text), oldest first: `{ id, model, script_match, instructions, client_events,
 *     server_events, sent_audio, errors, closed }`. `client_events` are the events received, in
 *     order, as sent, except `input_audio_buffer.append`, recorded as `{ type, bytes, sha256 }`;
 *     `server_events` the types sent; `sent_audio` each audio delta as `{ item_id, bytes, sha256 }`;
 *     `errors` the `error` events sent; `closed` `{ by, code, reason }` or null. Hashes are SHA-256
 *     hex of the base64 text, so a test can check that audio passed through untouched.
 */

import { apiError, base64Bytes, hashedAudio, hashedClientEvents, ScriptRegistry } from "./openai-sessions.mjs";

const API_KEY = "sk-fake-openai-key";
const MULAW_SILENCES = new Set([0xff, 0x7f]);

/**
 * @typedef {{
 *   match: string | null, responses: string[], audio_deltas: number | number[], audio_bytes_per_delta: number,
 *   delta_interval_ms: number, caller_turns: string[], speech_start_frames: number,
 *   speech_stop_frames: number, end_call_after_turn: number | null, tool_call_after_turn: number | null, tool_name: string | null,
 *   usage: Usage, drop_after_events: number | null,
 *   drop_sessions: number | null, refuse_session: string | null, ignore_session_update: boolean,
 * }} Script
 */

/**
 * @typedef {{
 *   input_token_details: { text_tokens: number, audio_tokens: number, cached_tokens_details: { text_tokens: number, audio_tokens: number } },
 *   output_token_details: { text_tokens: number, audio_tokens: number },
 * }} Usage
 */

/** @type {Script} */
const DEFAULT_SCRIPT = {
  match: null,
  responses: ["Hello! This is a test call."],
  audio_deltas: 3,
  audio_bytes_per_delta: 160,
  delta_interval_ms: 0,
  caller_turns: ["Yes, that works for me."],
  speech_start_frames: 3,
  speech_stop_frames: 5,
  end_call_after_turn: null,
  tool_call_after_turn: null,
  tool_name: null,
  usage: {
    input_token_details: { text_tokens: 120, audio_tokens: 0, cached_tokens_details: { text_tokens: 0, audio_tokens: 0 } },
    output_token_details: { text_tokens: 0, audio_tokens: 80 },
  },
  drop_after_events: null,
  drop_sessions: null,
  refuse_session: null,
  ignore_session_update: false,
};

/** @type {ScriptRegistry<Script>} */
const scripts = new ScriptRegistry();

/**
 * @typedef {{ id: string, type: string, role?: string, audioBytes: number, call_id?: string, name?: string }} Item
 * @typedef {{ id: string, messageItem: Item | null, callItem: Item | null, text: string, finished: boolean, usage: Script["usage"] }} ActiveResponse
 * @typedef {{
 *   id: string, model: string, socket: WebSocket, script: Script, scriptEntry: { script: Script, sessionsUsing: number } | null,
 *   config: Record<string, any>, instructions: string | null,
 *   clientEvents: Array<Record<string, unknown>>, appendPayloads: Map<Record<string, unknown>, string>,
 *   serverEvents: string[], sentAudio: Array<{ item_id: string, payload: string }>, errors: Array<Record<string, unknown>>,
 *   closed: { by: string, code: number, reason: string } | null, dropsAfter: number | null,
 *   items: Map<string, Item>, lastItemId: string | null, response: ActiveResponse | null, responseCount: number,
 *   callerTurns: number, appendedBytes: number,
 *   vad: { speaking: boolean, run: number, itemId: string | null },
 * }} Session
 */

/** @type {Session[]} */
const sessions = [];
let counter = 0;

/** @param {string} prefix */
function nextId(prefix) {
  counter += 1;
  return `${prefix}_fake${counter.toString().padStart(6, "0")}`;
}

/** @param {Request} request */
export async function openaiRealtime(request) {
  const url = new URL(request.url);
  if (url.pathname === "/_fake/realtime/script" && request.method === "POST") return postScript(request);
  if (url.pathname === "/_fake/realtime/sessions" && request.method === "GET") return listSessions(url.searchParams.get("match"));
  if (url.pathname === "/v1/realtime") return connect(request, url);
  return apiError(404, `Unknown path ${url.pathname}`, "invalid_request_error", null);
}

/** @param {Request} request */
async function postScript(request) {
  /** @type {Partial<Script>} */
  const body = await request.json();
  const script = { ...DEFAULT_SCRIPT, ...body };
  scripts.post(script);
  return Response.json(script);
}

/** @param {string | null} match */
async function listSessions(match) {
  const chosen = sessions.filter((session) => match === null || (session.instructions ?? "").includes(match));
  const listed = [];
  for (const session of chosen) {
    const clientEvents = await hashedClientEvents(session);
    const sentAudio = [];
    for (const { item_id, payload } of session.sentAudio) sentAudio.push({ item_id, ...(await hashedAudio(payload)) });
    listed.push({
      id: session.id,
      model: session.model,
      script_match: session.scriptEntry?.script.match ?? null,
      instructions: session.instructions,
      client_events: clientEvents,
      server_events: session.serverEvents,
      sent_audio: sentAudio,
      errors: session.errors,
      closed: session.closed,
    });
  }
  return Response.json(listed);
}

/**
 * @param {Request} request
 * @param {URL} url
 */
function connect(request, url) {
  if (request.headers.get("authorization") !== `Bearer ${API_KEY}`) {
    return apiError(401, "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.", "invalid_request_error", "invalid_api_key");
  }
  const model = url.searchParams.get("model");
  if (!model) return apiError(400, "Missing required parameter: 'model'.", "invalid_request_error", "missing_required_parameter");
  if (request.headers.get("openai-beta")?.includes("realtime=v1")) return apiError(400, "This fake speaks the GA Realtime interface only.", "invalid_request_error", null);
  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") return new Response("Upgrade Required", { status: 426 });

  const [client, server] = Object.values(new WebSocketPair());
  server.accept();
  /** @type {Session} */
  const session = {
    id: nextId("sess"),
    model,
    socket: server,
    script: DEFAULT_SCRIPT,
    scriptEntry: null,
    config: defaultSessionConfig(model),
    instructions: null,
    clientEvents: [],
    appendPayloads: new Map(),
    serverEvents: [],
    sentAudio: [],
    errors: [],
    closed: null,
    dropsAfter: null,
    items: new Map(),
    lastItemId: null,
    response: null,
    responseCount: 0,
    callerTurns: 0,
    appendedBytes: 0,
    vad: { speaking: false, run: 0, itemId: null },
  };
  session.config.id = session.id;
  sessions.push(session);
  server.addEventListener("message", (event) => onClientMessage(session, event.data));
  server.addEventListener("close", (event) => {
    session.closed ??= { by: "client", code: event.code, reason: event.reason };
  });
  send(session, { type: "session.created", session: session.config });
  return new Response(null, { status: 101, webSocket: client });
}

/** The configuration a new session starts with, as the real API announces it in session.created. */
function defaultSessionConfig(/** @type {string} */ model) {
  return {
    object: "realtime.session",
    id: "",
    type: "realtime",
    model,
    output_modalities: ["audio"],
    instructions: "You are a helpful, witty, and friendly AI.",
    tools: [],
    tool_choice: "auto",
    max_output_tokens: "inf",
    tracing: null,
    truncation: "auto",
    prompt: null,
    include: null,
    expires_at: Math.floor(Date.now() / 1000) + 3600,
    audio: {
      input: {
        format: { type: "audio/pcm", rate: 24000 },
        transcription: null,
        noise_reduction: null,
        turn_detection: { type: "server_vad", threshold: 0.5, prefix_padding_ms: 300, silence_duration_ms: 500, idle_timeout_ms: null, create_response: true, interrupt_response: true },
      },
      output: { format: { type: "audio/pcm", rate: 24000 }, voice: "alloy", speed: 1 },
    },
  };
}

/**
 * @param {Session} session
 * @param {string | ArrayBuffer} data
 */
function onClientMessage(session, data) {
  if (session.closed) return;
  /** @type {Record<string, any>} */
  let event;
  try {
    event = JSON.parse(typeof data === "string" ? data : new TextDecoder().decode(data));
  } catch {
    return sendError(session, "The server had trouble parsing the event: it is not valid JSON.", "invalid_json", null);
  }
  if (event.type === "input_audio_buffer.append") return onAppend(session, event);
  session.clientEvents.push(event);
  switch (event.type) {
    case "session.update":
      return onSessionUpdate(session, event);
    case "conversation.item.create":
      return onItemCreate(session, event);
    case "conversation.item.truncate":
      return onTruncate(session, event);
    case "response.create":
      if (session.response) {
        return sendError(session, `Conversation already has an active response in progress: ${session.response.id}. Wait until the response is finished before creating a new one.`, "conversation_already_has_active_response", event.event_id);
      }
      return void streamResponse(session, null);
    case "response.cancel":
      if (!session.response) return sendError(session, "Cancellation failed: no active response found.", "response_cancel_not_active", event.event_id);
      return cancelResponse(session, "client_cancelled");
    default:
      return sendError(session, `Invalid value: '${event.type}'. Supported values are the GA Realtime client events.`, "invalid_value", event.event_id, "type");
  }
}

/**
 * @param {Session} session
 * @param {Record<string, any>} event
 */
function onSessionUpdate(session, event) {
  const update = event.session ?? {};
  if (update.type !== "realtime") return sendError(session, "session.type must be 'realtime'.", "invalid_value", event.event_id, "session.type");
  for (const direction of ["input", "output"]) {
    const format = update.audio?.[direction]?.format?.type;
    if (format !== "audio/pcmu") return sendError(session, `This fake wants audio/pcmu, got ${format}.`, "invalid_value", event.event_id, `session.audio.${direction}.format`);
  }
  const tools = update.tools ?? [];
  const names = new Set();
  for (const [index, tool] of (Array.isArray(tools) ? tools : [null]).entries()) {
    const problem = toolProblem(tool, names);
    if (problem) return sendError(session, problem, "invalid_value", event.event_id, `session.tools[${index}]`);
    names.add(tool.name);
  }
  const { audio, ...rest } = update;
  session.config = {
    ...session.config,
    ...rest,
    audio: { input: { ...session.config.audio.input, ...audio.input }, output: { ...session.config.audio.output, ...audio.output } },
  };
  session.instructions = session.config.instructions;
  chooseScript(session);
  if (session.script.refuse_session) return sendError(session, session.script.refuse_session, "invalid_value", event.event_id, "session");
  if (session.script.ignore_session_update) return;
  send(session, { type: "session.updated", session: session.config });
}

/**
 * What is wrong with a declared tool, as the API checks it: a function, with a name of letters,
 * digits, _ and - (at most 64), not declared twice, and a JSON Schema object for its parameters.
 * @param {any} tool
 * @param {Set<string>} declared
 * @returns {string | null}
 */
function toolProblem(tool, declared) {
  if (tool === null || typeof tool !== "object" || tool.type !== "function") return "A tool must be an object of type 'function'.";
  if (typeof tool.name !== "string" || !/^[a-zA-Z0-9_-]{1,64}$/.test(tool.name)) return `Invalid tool name ${JSON.stringify(tool.name)}.`;
  if (declared.has(tool.name)) return `Duplicate tool name '${tool.name}'.`;
  if (tool.parameters !== undefined && (tool.parameters === null || typeof tool.parameters !== "object" || tool.parameters.type !== "object")) {
    return `The parameters of tool '${tool.name}' must be a JSON Schema of type 'object'.`;
  }
  return null;
}

/** The latest script whose `match` is in the instructions, else the latest without one. */
function chooseScript(/** @type {Session} */ session) {
  if (session.scriptEntry) return;
  const instructions = session.instructions ?? "";
  const entry = scripts.choose(instructions);
  if (!entry) return;
  session.scriptEntry = entry;
  session.script = entry.script;
  const { drop_after_events: dropAfter, drop_sessions: dropSessions } = entry.script;
  if (dropAfter !== null && (dropSessions === null || entry.sessionsUsing <= dropSessions)) session.dropsAfter = dropAfter;
}

/**
 * @param {Session} session
 * @param {Record<string, any>} event
 */
function onItemCreate(session, event) {
  const item = event.item ?? {};
  const problem = itemProblem(session, item);
  if (problem) return sendError(session, problem, "invalid_value", event.event_id, "item");
  const stored = { ...item, id: item.id ?? nextId("item"), object: "realtime.item", status: "completed" };
  const previous = session.lastItemId;
  session.items.set(stored.id, { id: stored.id, type: stored.type, role: stored.role, audioBytes: 0 });
  session.lastItemId = stored.id;
  send(session, { type: "conversation.item.added", previous_item_id: previous, item: stored });
  send(session, { type: "conversation.item.done", previous_item_id: previous, item: stored });
}

/**
 * @param {Session} session
 * @param {Record<string, any>} item
 * @returns {string | null}
 */
function itemProblem(session, item) {
  if (item.type === "function_call_output") {
    const call = [...session.items.values()].find((candidate) => candidate.type === "function_call" && candidate.call_id === item.call_id);
    if (!call) return `Tool call ID '${item.call_id}' not found in conversation.`;
    return typeof item.output === "string" ? null : "function_call_output.output must be a string.";
  }
  if (item.type !== "message") return `Unsupported item type '${item.type}'.`;
  /** @type {Record<string, string[]>} */
  const allowed = { user: ["input_text", "input_audio", "input_image"], system: ["input_text"], assistant: ["output_text"] };
  const types = allowed[item.role];
  if (!types) return `Invalid role '${item.role}'.`;
  if (!Array.isArray(item.content) || item.content.length === 0) return "A message needs content.";
  for (const part of item.content) {
    if (!types.includes(part.type)) return `Invalid content type '${part.type}' for a ${item.role} message; expected one of ${types.join(", ")}.`;
    if (part.type.endsWith("_text") && typeof part.text !== "string") return "Text content needs a text string.";
  }
  return null;
}

/**
 * @param {Session} session
 * @param {Record<string, any>} event
 */
function onTruncate(session, event) {
  const item = session.items.get(event.item_id);
  if (!item || item.role !== "assistant") return sendError(session, `Item with item_id '${event.item_id}' is not an assistant message in the conversation.`, "invalid_value", event.event_id, "item_id");
  const audioMs = item.audioBytes / 8;
  if (!Number.isInteger(event.audio_end_ms) || event.audio_end_ms < 0 || event.audio_end_ms > audioMs) {
    return sendError(session, `Audio content of ${audioMs}ms is already shorter than ${event.audio_end_ms}ms`, "invalid_value", event.event_id, "audio_end_ms");
  }
  send(session, { type: "conversation.item.truncated", item_id: item.id, content_index: event.content_index, audio_end_ms: event.audio_end_ms });
}

/**
 * @param {Session} session
 * @param {Record<string, any>} event
 */
function onAppend(session, event) {
  if (typeof event.audio !== "string") return sendError(session, "Missing required parameter: 'audio'.", "missing_required_parameter", event.event_id, "audio");
  const bytes = base64Bytes(event.audio);
  const record = { type: event.type, bytes: bytes.length };
  session.clientEvents.push(record);
  session.appendPayloads.set(record, event.audio);
  session.appendedBytes += bytes.length;
  const speech = bytes.some((byte) => !MULAW_SILENCES.has(byte));
  const vad = session.vad;
  const { speech_start_frames: startFrames, speech_stop_frames: stopFrames } = session.script;
  if (!vad.speaking) {
    vad.run = speech ? vad.run + 1 : 0;
    if (vad.run < startFrames) return;
    vad.speaking = true;
    vad.run = 0;
    vad.itemId = nextId("item");
    send(session, { type: "input_audio_buffer.speech_started", audio_start_ms: Math.floor(session.appendedBytes / 8), item_id: vad.itemId });
    if (session.response && session.config.audio.input.turn_detection?.interrupt_response) cancelResponse(session, "turn_detected");
    return;
  }
  vad.run = speech ? 0 : vad.run + 1;
  if (vad.run < stopFrames) return;
  endCallerTurn(session);
}

/** Speech stopped: commit the turn, transcribe it and (create_response) answer it. */
function endCallerTurn(/** @type {Session} */ session) {
  const itemId = /** @type {string} */ (session.vad.itemId);
  session.vad = { speaking: false, run: 0, itemId: null };
  session.callerTurns += 1;
  const turns = session.script.caller_turns;
  const transcript = turns[Math.min(session.callerTurns, turns.length) - 1] ?? "";
  const previous = session.lastItemId;
  const item = { id: itemId, object: "realtime.item", type: "message", status: "completed", role: "user", content: [{ type: "input_audio", transcript: null }] };
  session.items.set(itemId, { id: itemId, type: "message", role: "user", audioBytes: 0 });
  session.lastItemId = itemId;
  send(session, { type: "input_audio_buffer.speech_stopped", audio_end_ms: Math.floor(session.appendedBytes / 8), item_id: itemId });
  send(session, { type: "input_audio_buffer.committed", previous_item_id: previous, item_id: itemId });
  send(session, { type: "conversation.item.added", previous_item_id: previous, item });
  send(session, { type: "conversation.item.done", previous_item_id: previous, item });
  send(session, { type: "conversation.item.input_audio_transcription.completed", item_id: itemId, content_index: 0, transcript, usage: { type: "duration", seconds: 1 } });
  if (session.config.audio.input.turn_detection?.create_response && !session.response) void streamResponse(session, session.callerTurns);
}

/**
 * The tool the response to the caller's `afterTurn`-th turn calls: the script's `tool_name`, else
 * its end_call, whichever the session declared first (the model calls no undeclared tool).
 * @param {Session} session
 * @param {number | null} afterTurn
 * @returns {string | null}
 */
function scriptedToolCall(session, afterTurn) {
  if (afterTurn === null) return null;
  const script = session.script;
  const declared = new Set((session.config.tools ?? []).map((/** @type {{ name: string }} */ tool) => tool.name));
  const asked = [afterTurn === script.tool_call_after_turn ? script.tool_name : null, afterTurn === script.end_call_after_turn ? "end_call" : null];
  return asked.find((name) => name !== null && declared.has(name)) ?? null;
}

/**
 * Streams one response; `afterTurn` is the caller turn it answers (null: asked by response.create).
 * @param {Session} session
 * @param {number | null} afterTurn
 */
async function streamResponse(session, afterTurn) {
  const script = session.script;
  const texts = script.responses;
  const text = texts[Math.min(session.responseCount, texts.length - 1)] ?? "";
  session.responseCount += 1;
  const responseIndex = session.responseCount;
  const responseId = nextId("resp");
  /** @type {Item | null} */
  const messageItem = text === "" ? null : { id: nextId("item"), type: "message", role: "assistant", audioBytes: 0 };
  const toolName = scriptedToolCall(session, afterTurn);
  /** @type {ActiveResponse} */
  const response = { id: responseId, messageItem, callItem: null, text, finished: false, usage: script.usage };
  session.response = response;
  send(session, { type: "response.created", response: responseResource(session, response, "in_progress", []) });

  if (messageItem) {
    session.items.set(messageItem.id, messageItem);
    const previous = session.lastItemId;
    session.lastItemId = messageItem.id;
    const ids = { response_id: responseId, item_id: messageItem.id, output_index: 0, content_index: 0 };
    send(session, { type: "response.output_item.added", response_id: responseId, output_index: 0, item: messageResource(messageItem, "in_progress", null) });
    send(session, { type: "conversation.item.added", previous_item_id: previous, item: messageResource(messageItem, "in_progress", null) });
    send(session, { type: "response.content_part.added", ...ids, part: { type: "audio", transcript: "" } });
    send(session, { type: "response.output_audio_transcript.delta", ...ids, delta: text });
    const deltas = [script.audio_deltas].flat();
    const deltaCount = deltas[Math.min(responseIndex, deltas.length) - 1] ?? 0;
    for (let delta = 0; delta < deltaCount; delta += 1) {
      if (delta > 0 && script.delta_interval_ms > 0) await new Promise((resolve) => setTimeout(resolve, script.delta_interval_ms));
      if (response.finished || session.closed) return;
      const payload = mulawChunk(responseIndex, delta, script.audio_bytes_per_delta);
      messageItem.audioBytes += script.audio_bytes_per_delta;
      session.sentAudio.push({ item_id: messageItem.id, payload });
      send(session, { type: "response.output_audio.delta", ...ids, delta: payload });
    }
    if (response.finished || session.closed) return;
    finishMessage(session, response, "completed");
  }
  if (toolName) {
    const callItem = { id: nextId("item"), type: "function_call", call_id: nextId("call"), name: toolName, audioBytes: 0 };
    response.callItem = callItem;
    session.items.set(callItem.id, callItem);
    const outputIndex = messageItem ? 1 : 0;
    const previous = session.lastItemId;
    const callIds = { response_id: responseId, item_id: callItem.id, output_index: outputIndex, call_id: callItem.call_id };
    send(session, { type: "response.output_item.added", response_id: responseId, output_index: outputIndex, item: callResource(callItem, "in_progress", "") });
    send(session, { type: "conversation.item.added", previous_item_id: previous, item: callResource(callItem, "in_progress", "") });
    send(session, { type: "response.function_call_arguments.delta", ...callIds, delta: "{}" });
    send(session, { type: "response.function_call_arguments.done", ...callIds, name: toolName, arguments: "{}" });
    send(session, { type: "response.output_item.done", response_id: responseId, output_index: outputIndex, item: callResource(callItem, "completed", "{}") });
    send(session, { type: "conversation.item.done", previous_item_id: previous, item: callResource(callItem, "completed", "{}") });
    session.lastItemId = callItem.id;
  }
  endResponse(session, response, "completed", null);
}

/**
 * The message item's closing events; an interrupted one is `incomplete`.
 * @param {Session} session
 * @param {ActiveResponse} response
 * @param {"completed" | "incomplete"} status
 */
function finishMessage(session, response, status) {
  const item = response.messageItem;
  if (!item) return;
  const ids = { response_id: response.id, item_id: item.id, output_index: 0, content_index: 0 };
  send(session, { type: "response.output_audio.done", ...ids });
  send(session, { type: "response.output_audio_transcript.done", ...ids, transcript: response.text });
  send(session, { type: "response.content_part.done", ...ids, part: { type: "audio", transcript: response.text } });
  send(session, { type: "response.output_item.done", response_id: response.id, output_index: 0, item: messageResource(item, status, response.text) });
  send(session, { type: "conversation.item.done", item: messageResource(item, status, response.text) });
}

/**
 * The active response ends at once, `cancelled`: a barge-in (with interrupt_response) or a
 * `response.cancel`.
 * @param {Session} session
 * @param {"turn_detected" | "client_cancelled"} reason
 */
function cancelResponse(session, reason) {
  const response = /** @type {ActiveResponse} */ (session.response);
  finishMessage(session, response, "incomplete");
  endResponse(session, response, "cancelled", reason);
}

/**
 * @param {Session} session
 * @param {ActiveResponse} response
 * @param {"completed" | "cancelled"} status
 * @param {string | null} reason
 */
function endResponse(session, response, status, reason) {
  response.finished = true;
  session.response = null;
  /** @type {unknown[]} */
  const output = [];
  if (response.messageItem) output.push(messageResource(response.messageItem, status === "completed" ? "completed" : "incomplete", response.text));
  if (response.callItem) output.push(callResource(response.callItem, "completed", "{}"));
  const resource = responseResource(session, response, status, output);
  send(session, { type: "response.done", response: { ...resource, status_details: reason ? { type: status, reason } : null } });
}

/**
 * @param {Session} session
 * @param {ActiveResponse} response
 * @param {string} status
 * @param {unknown[]} output
 */
function responseResource(session, response, status, output) {
  const finished = status !== "in_progress";
  const { input_token_details: inputDetails, output_token_details: outputDetails } = response.usage;
  const input_tokens = inputDetails.text_tokens + inputDetails.audio_tokens;
  const output_tokens = outputDetails.text_tokens + outputDetails.audio_tokens;
  const cached = inputDetails.cached_tokens_details;
  return {
    object: "realtime.response",
    id: response.id,
    status,
    status_details: null,
    output,
    conversation_id: `conv_${session.id}`,
    output_modalities: ["audio"],
    max_output_tokens: "inf",
    audio: { output: { format: session.config.audio.output.format, voice: session.config.audio.output.voice } },
    usage: finished
      ? { total_tokens: input_tokens + output_tokens, input_tokens, output_tokens, input_token_details: { ...inputDetails, cached_tokens: cached.text_tokens + cached.audio_tokens }, output_token_details: outputDetails }
      : null,
    metadata: null,
  };
}

/**
 * @param {Item} item
 * @param {string} status
 * @param {string | null} transcript
 */
function messageResource(item, status, transcript) {
  return { id: item.id, object: "realtime.item", type: "message", status, role: "assistant", content: transcript === null ? [] : [{ type: "output_audio", transcript }] };
}

/**
 * @param {Item} item
 * @param {string} status
 * @param {string} args
 */
function callResource(item, status, args) {
  return { id: item.id, object: "realtime.item", type: "function_call", status, name: item.name, call_id: item.call_id, arguments: args };
}

/**
 * Sends one server event; the script's drop closes the socket after the Nth.
 * @param {Session} session
 * @param {Record<string, unknown>} event
 */
function send(session, event) {
  if (session.closed) return;
  session.socket.send(JSON.stringify({ event_id: nextId("event"), ...event }));
  session.serverEvents.push(String(event.type));
  if (session.dropsAfter !== null && session.serverEvents.length >= session.dropsAfter) {
    session.closed = { by: "server", code: 1011, reason: "fake drop" };
    session.socket.close(1011, "fake drop");
  }
}

/**
 * @param {Session} session
 * @param {string} message
 * @param {string} code
 * @param {string | null | undefined} clientEventId
 * @param {string | null} [param]
 */
function sendError(session, message, code, clientEventId, param = null) {
  const error = { type: "invalid_request_error", code, message, param, event_id: clientEventId ?? null };
  session.errors.push(error);
  send(session, { type: "error", error });
}


/**
 * Deterministic, varied μ-law bytes for one delta of one response.
 * @param {number} response
 * @param {number} delta
 * @param {number} size
 */
function mulawChunk(response, delta, size) {
  let binary = "";
  for (let i = 0; i < size; i += 1) binary += String.fromCharCode((response * 53 + delta * 29 + i * 7) & 0xff);
  return btoa(binary);
}
