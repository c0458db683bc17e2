// @ts-check
/**
 * A fake OpenAI GPT-Live (the Live API's primary WebSocket, as openai-node's `resources/live` types
 * and the public docs describe it) on api.openai.com, in workerd.
 *
 * `GET /v1/live/sessions` with `Upgrade: websocket` and `Authorization: Bearer sk-fake-openai-key`
 * answers 101 (401 for another key, 400 with any query parameter — the model goes in
 * `session.start` —, 426 without the upgrade). The client's first event must be `session.start`,
 * checked strictly: an unknown field anywhere is an `error` (`unknown_parameter`, with its `param`),
 * as are a missing model, an audio format other than `audio/pcmu` at 8000 Hz, a delegation other than
 * `responses`, a tool that is not a function with a valid, unique name (and an object schema), or an
 * `input` message that is not one text part of its role's type (at most 128). Accepted, it answers
 * `session.started` `{session: {id, expires_at, model, status, …the configuration}}`; any other
 * command before that is an `error`.
 *
 * Then, like the real service (no turn detection settings, no speech-started event, no
 * response.done):
 * - `session.instructions.append {content, delegation_id: null}` → `session.instructions.appended`
 *   and the model speaks its next scripted utterance;
 * - an utterance is `session.output_audio.delta`s (base64 μ-law, no item id) sent faster than real
 *   time, with the text as `session.output_transcript.delta` fragments (a word each, after each audio
 *   delta) carrying `start_ms`/`end_ms` on the session's timeline (the caller audio appended so far);
 * - caller audio (`session.input_audio.append`) goes through a VAD stand-in: a frame is speech when a
 *   byte is other than the μ-law silences 0xFF and 0x7F; `speech_start_frames` speech frames in a row
 *   start a caller turn: the utterance under way stops at once (server-side barge-in, no event) and
 *   the turn's first word comes as a `session.input_transcript.delta`; `speech_stop_frames` silent
 *   frames end it: the rest of its words as another delta, then the model answers with its next
 *   utterance and, when the script says so, delegates a tool call to its Responses backend:
 *   `session.delegation.created`, then `response.event`s wrapping `response.created`,
 *   `response.output_item.added`, `response.function_call_arguments.delta`/`.done` and
 *   `response.output_item.done` (a `function_call`, status `completed`) — only of a declared tool;
 * - `response.item.create` with the `function_call_output` of that call, then `response.create` →
 *   `response.event` `response.completed` with the delegated response's token usage; the model then
 *   relays the result (its next utterance), except after end_call;
 * - `session.usage.updated {usage: {seconds}}` (cumulative) after each utterance;
 * - `session.close` → `session.closed {reason: "close_requested", session, usage}`, then the socket
 *   closes (1000).
 *
 * Control, from tests (all JSON):
 *   POST /_fake/live/script  a script for the sessions to come; fields (all optional):
 *     match                 only sessions whose instructions contain this text use the script
 *                           (default: every session no other script matches); the latest posted
 *                           script with the same `match` replaces the earlier one
 *     responses             what the model says, utterance by utterance; the last one repeats
 *     audio_deltas          `session.output_audio.delta`s per utterance (3); a list gives each its own
 *     audio_bytes_per_delta μ-law bytes in each (160 = 20 ms)
 *     delta_interval_ms     pause before each audio delta after the first (0: all at once)
 *     caller_turns          transcripts of the caller's turns, in order; the last one repeats
 *     speech_start_frames   speech frames in a row that start a caller turn (3)
 *     speech_stop_frames    silent frames in a row that end it (5)
 *     end_call_after_turn   the answer to the caller's Nth turn (1-based) delegates end_call (null)
 *     tool_call_after_turn  the answer to the caller's Nth turn delegates `tool_name` (null); if the
 *                           session did not declare it, that turn's end_call (if any) instead
 *     tool_name             the tool it calls (null)
 *     usage_seconds         the session's cumulative seconds in usage events (null: the caller audio
 *                           appended, in whole seconds)
 *     delegation_usage      `{ input_tokens, output_tokens, cached_tokens }` of each delegated
 *                           response ({200, 20, 0})
 *     close_after_events    after this many server events, `session.closed` with `close_reason`,
 *                           then the socket closes (1000) (null)
 *     close_reason          expired | connection_lost | content | remote_hangup ("expired")
 *     drop_after_events     after this many server events, the socket closes (1011) with no
 *                           `session.closed` (null)
 *     drop_sessions         only the first N sessions using the script close or drop (null: all)
 *     refuse_session        answer `session.start` with an `error` of this message (null)
 *     ignore_session_start  never answer `session.start` (false)
 *   GET /_fake/live/sessions[?match=text]  every session (or those whose instructions contain the
 *     text), oldest first: `{ id, model, script_match, instructions, start, client_events,
 *     server_events, sent_audio, errors, closed }`. `start` is the `session.start` event as received;
 *     `client_events` the events received after it, in order, except `session.input_audio.append`,
 *     recorded as `{ type, bytes, sha256 }`; `server_events` the types sent; `sent_audio` each audio
 *     delta as `{ bytes, sha256 }`; `errors` the `error` events sent; `closed` `{ by, code, reason }`
 *     or null. Hashes are SHA-256 hex of the base64 text.
 */

import { apiError, base64Bytes, hashedAudio, hashedClientEvents, ScriptRegistry } from "./openai-sessions.mjs";

const API_KEY = "sk-fake-openai-key";
const MULAW_SILENCES = new Set([0xff, 0x7f]);
const CLOSE_REASONS = ["close_requested", "expired", "content", "remote_hangup", "connection_lost"];
/** Sessions last an hour here; the real limit is not documented, `expires_at` says it. */
const SESSION_SECONDS = 3600;

/**
 * @typedef {{
 *   match: string | null, responses: string[], audio_deltas: number | number[], audio_bytes_per_delta: number,
 *   delta_interval_ms: number, caller_turns: string[], speech_start_frames: number, speech_stop_frames: number,
 *   end_call_after_turn: number | null, tool_call_after_turn: number | null, tool_name: string | null,
 *   usage_seconds: number | null, delegation_usage: { input_tokens: number, output_tokens: number, cached_tokens: number },
 *   close_after_events: number | null, close_reason: string, drop_after_events: number | null, drop_sessions: number | null,
 *   refuse_session: string | null, ignore_session_start: boolean,
 * }} Script
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
  usage_seconds: null,
  delegation_usage: { input_tokens: 200, output_tokens: 20, cached_tokens: 0 },
  close_after_events: null,
  close_reason: "expired",
  drop_after_events: null,
  drop_sessions: null,
  refuse_session: null,
  ignore_session_start: false,
};

/** @type {ScriptRegistry<Script>} */
const scripts = new ScriptRegistry();

/**
 * @typedef {{ id: string, responseId: string, callId: string, name: string, output: string | null }} Delegation
 * @typedef {{
 *   id: string, socket: WebSocket, script: Script, scriptEntry: { script: Script, sessionsUsing: number } | null,
 *   config: Record<string, any> | null, start: Record<string, unknown> | null, instructions: string | null,
 *   clientEvents: Array<Record<string, unknown>>, appendPayloads: Map<Record<string, unknown>, string>,
 *   serverEvents: string[], sentAudio: string[], errors: Array<Record<string, unknown>>,
 *   closed: { by: string, code: number, reason: string } | null, closesAfter: number | null, dropsAfter: number | null,
 *   utterances: number, speaking: { stopped: boolean } | null, callerTurns: number, appendedBytes: number,
 *   vad: { speaking: boolean, run: number, startMs: number }, delegation: Delegation | null,
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
export async function openaiLive(request) {
  const url = new URL(request.url);
  if (url.pathname === "/_fake/live/script" && request.method === "POST") return postScript(request);
  if (url.pathname === "/_fake/live/sessions" && request.method === "GET") return listSessions(url.searchParams.get("match"));
  if (url.pathname === "/v1/live/sessions") return connect(request, url);
  return apiError(404, `Unknown path ${url.pathname}`, "invalid_request_error", null);
}

/** @param {Request} request */
async function postScript(request) {
  /** @type {Partial<Script>} */
  const body = await request.json();
  const script = { ...DEFAULT_SCRIPT, ...body };
  if (!CLOSE_REASONS.includes(script.close_reason)) return apiError(400, `Unknown close_reason ${script.close_reason}`, "invalid_request_error", null);
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
    for (const payload of session.sentAudio) sentAudio.push(await hashedAudio(payload));
    listed.push({
      id: session.id,
      model: session.config?.model ?? null,
      script_match: session.scriptEntry?.script.match ?? null,
      instructions: session.instructions,
      start: session.start,
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
  if (url.search !== "") return apiError(400, "Live sessions take no query parameters: the model goes in session.start.", "invalid_request_error", "unknown_parameter");
  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") return apiError(426, "Expected a WebSocket upgrade.", "invalid_request_error", null);

  const { 0: client, 1: server } = new WebSocketPair();
  server.accept();
  /** @type {Session} */
  const session = {
    id: nextId("sess"),
    socket: server,
    script: DEFAULT_SCRIPT,
    scriptEntry: null,
    config: null,
    start: null,
    instructions: null,
    clientEvents: [],
    appendPayloads: new Map(),
    serverEvents: [],
    sentAudio: [],
    errors: [],
    closed: null,
    closesAfter: null,
    dropsAfter: null,
    utterances: 0,
    speaking: null,
    callerTurns: 0,
    appendedBytes: 0,
    vad: { speaking: false, run: 0, startMs: 0 },
    delegation: null,
  };
  sessions.push(session);
  server.addEventListener("message", (event) => onClientMessage(session, event.data));
  server.addEventListener("close", (event) => {
    session.closed ??= { by: "client", code: event.code, reason: event.reason };
    if (session.speaking) session.speaking.stopped = true;
  });
  return new Response(null, { status: 101, webSocket: client });
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
  if (session.config === null) {
    if (event.type !== "session.start") return sendError(session, `Send session.start first, and wait for session.started; got '${event.type}'.`, "session_not_started", event.event_id);
    return onSessionStart(session, event);
  }
  if (event.type === "session.input_audio.append") return onAppend(session, event);
  session.clientEvents.push(event);
  switch (event.type) {
    case "session.start":
      return sendError(session, "The session has already started; its configuration is immutable.", "session_already_started", event.event_id);
    case "session.instructions.append":
      return onInstructionsAppend(session, event);
    case "response.item.create":
      return onItemCreate(session, event);
    case "response.create":
      return onResponseCreate(session, event);
    case "session.close":
      return closeSession(session, "close_requested", 1000);
    default:
      return sendError(session, `Invalid value: '${event.type}'. Supported values are the Live client events.`, "invalid_value", event.event_id, "type");
  }
}

/**
 * @param {Session} session
 * @param {Record<string, any>} event
 */
function onSessionStart(session, event) {
  session.start = event;
  const problem = startProblem(event);
  if (problem) return sendError(session, problem.message, problem.code, event.event_id, problem.param);
  session.config = event.session;
  session.instructions = event.session.instructions ?? "";
  chooseScript(session);
  if (session.script.refuse_session) {
    session.config = null;
    return sendError(session, session.script.refuse_session, "invalid_value", event.event_id, "session");
  }
  if (session.script.ignore_session_start) return;
  send(session, { type: "session.started", session: sessionResource(session) });
}

/** @param {Session} session */
function sessionResource(session) {
  const config = /** @type {Record<string, any>} */ (session.config);
  return {
    id: session.id,
    expires_at: Math.floor(Date.now() / 1000) + SESSION_SECONDS,
    model: config.model,
    status: "active",
    instructions: config.instructions ?? null,
    audio: { format: config.audio.format, output: { voice: config.audio.output?.voice ?? "marin" } },
    input: config.input ?? [],
    delegation: config.delegation ?? null,
    store: config.store ?? false,
  };
}

const START_KEYS = ["type", "event_id", "session"];
const SESSION_KEYS = ["model", "instructions", "audio", "input", "delegation", "store"];
const AUDIO_KEYS = ["format", "output"];
const FORMAT_KEYS = ["type", "rate"];
const OUTPUT_KEYS = ["voice"];
const DELEGATION_KEYS = ["type", "responses"];
const RESPONSES_KEYS = ["model", "instructions", "max_output_tokens", "parallel_tool_calls", "reasoning", "service_tier", "text", "tool_choice", "tools"];
const TOOL_KEYS = ["type", "name", "description", "parameters", "strict"];
const ITEM_KEYS = ["type", "role", "content", "id", "status"];
const PART_KEYS = ["type", "text"];
/** @type {Record<string, string[]>} */
const PART_TYPES = { developer: ["input_text"], user: ["input_text"], assistant: ["output_text", "text"] };

/**
 * What the service refuses in a `session.start`, first problem only.
 * @param {Record<string, any>} event
 * @returns {{ message: string, code: string, param: string } | null}
 */
function startProblem(event) {
  const session = event.session;
  /** @type {Array<[unknown, string[], string]>} */
  const objects = [
    [event, START_KEYS, ""],
    [session, SESSION_KEYS, "session"],
  ];
  if (!isObject(session)) return { message: "Missing required parameter: 'session'.", code: "missing_required_parameter", param: "session" };
  if (session.audio !== undefined) {
    objects.push([session.audio, AUDIO_KEYS, "session.audio"]);
    if (session.audio?.format !== undefined) objects.push([session.audio.format, FORMAT_KEYS, "session.audio.format"]);
    if (session.audio?.output !== undefined) objects.push([session.audio.output, OUTPUT_KEYS, "session.audio.output"]);
  }
  if (isObject(session.delegation)) {
    objects.push([session.delegation, DELEGATION_KEYS, "session.delegation"]);
    if (session.delegation.responses !== undefined) objects.push([session.delegation.responses, RESPONSES_KEYS, "session.delegation.responses"]);
    for (const [index, tool] of (session.delegation.responses?.tools ?? []).entries()) objects.push([tool, TOOL_KEYS, `session.delegation.responses.tools[${index}]`]);
  }
  for (const [index, item] of (Array.isArray(session.input) ? session.input : []).entries()) {
    objects.push([item, ITEM_KEYS, `session.input[${index}]`]);
    for (const [part, content] of (Array.isArray(item?.content) ? item.content : []).entries()) objects.push([content, PART_KEYS, `session.input[${index}].content[${part}]`]);
  }
  for (const [value, keys, path] of objects) {
    if (!isObject(value)) return { message: `Invalid type for '${path}': expected an object.`, code: "invalid_type", param: path };
    const unknown = Object.keys(/** @type {object} */ (value)).find((key) => !keys.includes(key));
    if (unknown) return { message: `Unknown parameter: '${path ? `${path}.` : ""}${unknown}'.`, code: "unknown_parameter", param: path ? `${path}.${unknown}` : unknown };
  }
  if (typeof session.model !== "string" || session.model === "") return { message: "Missing required parameter: 'session.model'.", code: "missing_required_parameter", param: "session.model" };
  if (session.instructions !== undefined && session.instructions !== null && typeof session.instructions !== "string") return { message: "session.instructions must be a string.", code: "invalid_type", param: "session.instructions" };
  const format = session.audio?.format;
  if (format?.type !== "audio/pcmu" || format?.rate !== 8000) {
    return { message: `This fake wants audio/pcmu at 8000 Hz, got ${format?.type} at ${format?.rate}.`, code: "invalid_value", param: "session.audio.format" };
  }
  if (session.audio?.output?.voice !== undefined && typeof session.audio.output.voice !== "string") return { message: "session.audio.output.voice must be a string.", code: "invalid_type", param: "session.audio.output.voice" };
  const delegation = session.delegation;
  if (delegation !== undefined && delegation !== null) {
    if (delegation.type !== "responses") return { message: "This fake delegates to Responses only: session.delegation.type must be 'responses'.", code: "invalid_value", param: "session.delegation.type" };
    if (typeof delegation.responses?.model !== "string") return { message: "Missing required parameter: 'session.delegation.responses.model'.", code: "missing_required_parameter", param: "session.delegation.responses.model" };
    const names = new Set();
    for (const [index, tool] of (delegation.responses.tools ?? []).entries()) {
      const problem = toolProblem(tool, names);
      if (problem) return { message: problem, code: "invalid_value", param: `session.delegation.responses.tools[${index}]` };
      names.add(tool.name);
    }
  }
  if (session.input !== undefined) {
    if (!Array.isArray(session.input) || session.input.length > 128) return { message: "session.input must be an array of at most 128 messages.", code: "invalid_value", param: "session.input" };
    for (const [index, item] of session.input.entries()) {
      const types = PART_TYPES[item.role];
      if ((item.type ?? "message") !== "message" || !types) return { message: `Invalid input message role '${item.role}'.`, code: "invalid_value", param: `session.input[${index}]` };
      const parts = Array.isArray(item.content) ? item.content : [];
      const part = parts[0];
      if (parts.length !== 1 || typeof part.text !== "string" || !types.includes(part.type ?? "input_text")) {
        return { message: `A ${item.role} message of session.input needs exactly one text part of type ${types.join(" or ")}.`, code: "invalid_value", param: `session.input[${index}].content` };
      }
    }
  }
  return null;
}

/**
 * @param {any} tool
 * @param {Set<string>} declared
 * @returns {string | null}
 */
function toolProblem(tool, declared) {
  if (tool.type !== "function") return "A tool must be an object of type 'function'.";
  if (typeof tool.name !== "string" || !/^[a-zA-Z0-9_-]{1,64}$/.test(tool.name)) return `Invalid tool name ${JSON.stringify(tool.name)}.`;
  if (declared.has(tool.name)) return `Duplicate tool name '${tool.name}'.`;
  if (tool.parameters !== undefined && tool.parameters !== null && (!isObject(tool.parameters) || tool.parameters.type !== "object")) {
    return `The parameters of tool '${tool.name}' must be a JSON Schema of type 'object'.`;
  }
  return null;
}

/** The latest script whose `match` is in the instructions, else the latest without one. */
function chooseScript(/** @type {Session} */ session) {
  const instructions = session.instructions ?? "";
  const entry = scripts.choose(instructions);
  if (!entry) return;
  session.scriptEntry = entry;
  session.script = entry.script;
  const { close_after_events: closeAfter, drop_after_events: dropAfter, drop_sessions: dropSessions } = entry.script;
  if (dropSessions === null || entry.sessionsUsing <= dropSessions) {
    session.closesAfter = closeAfter;
    session.dropsAfter = dropAfter;
  }
}

/**
 * @param {Session} session
 * @param {Record<string, any>} event
 */
function onInstructionsAppend(session, event) {
  if (typeof event.content !== "string" || event.content === "") return sendError(session, "Missing required parameter: 'content'.", "missing_required_parameter", event.event_id, "content");
  if (!("delegation_id" in event)) return sendError(session, "Missing required parameter: 'delegation_id' (null for general context).", "missing_required_parameter", event.event_id, "delegation_id");
  if (event.delegation_id !== null) return sendError(session, "delegation_id must be null with Responses delegation.", "invalid_value", event.event_id, "delegation_id");
  const now = sessionMs(session);
  send(session, { type: "session.instructions.appended", start_ms: now, end_ms: now, ...clientEventId(event) });
  void speak(session, null);
}

/**
 * @param {Session} session
 * @param {Record<string, any>} event
 */
function onItemCreate(session, event) {
  const item = event.item ?? {};
  if (item.type !== "function_call_output") return sendError(session, `This fake takes function_call_output items only, got '${item.type}'.`, "invalid_value", event.event_id, "item.type");
  const delegation = session.delegation;
  if (!delegation || delegation.callId !== item.call_id) return sendError(session, `No function call with call_id '${item.call_id}' is waiting for its output.`, "invalid_value", event.event_id, "item.call_id");
  if (typeof item.output !== "string") return sendError(session, "function_call_output.output must be a string.", "invalid_type", event.event_id, "item.output");
  delegation.output = item.output;
}

/**
 * @param {Session} session
 * @param {Record<string, any>} event
 */
function onResponseCreate(session, event) {
  const delegation = session.delegation;
  if (!delegation || delegation.output === null) return sendError(session, "No delegated response is waiting for tool results.", "no_pending_response", event.event_id);
  session.delegation = null;
  const { input_tokens, output_tokens, cached_tokens } = session.script.delegation_usage;
  const usage = { input_tokens, input_tokens_details: { cached_tokens }, output_tokens, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: input_tokens + output_tokens };
  responseEvent(session, delegation, { type: "response.completed", response: { id: delegation.responseId, object: "response", status: "completed", usage } });
  // The model relays the backend's result; after end_call there is nothing left to say.
  if (delegation.name !== "end_call") void speak(session, null);
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
    vad.startMs = sessionMs(session) - startFrames * 20;
    // Full duplex: the model stops talking when the caller does, and tells nobody.
    if (session.speaking) session.speaking.stopped = true;
    const [first] = callerWords(session, session.callerTurns + 1);
    send(session, { type: "session.input_transcript.delta", delta: first ?? "", start_ms: vad.startMs, end_ms: sessionMs(session) });
    return;
  }
  vad.run = speech ? 0 : vad.run + 1;
  if (vad.run < stopFrames) return;
  vad.speaking = false;
  vad.run = 0;
  session.callerTurns += 1;
  const [, ...rest] = callerWords(session, session.callerTurns);
  if (rest.length > 0) send(session, { type: "session.input_transcript.delta", delta: rest.join(""), start_ms: vad.startMs, end_ms: sessionMs(session) });
  void speak(session, session.callerTurns);
}

/**
 * The words of the caller's `turn`-th turn (1-based), each with its trailing space.
 * @param {Session} session
 * @param {number} turn
 */
function callerWords(session, turn) {
  const turns = session.script.caller_turns;
  return splitWords(turns[Math.min(turn, turns.length) - 1] ?? "");
}

/**
 * The model's next utterance; `afterTurn` is the caller turn it answers (null: asked to speak).
 * @param {Session} session
 * @param {number | null} afterTurn
 */
async function speak(session, afterTurn) {
  const script = session.script;
  const text = script.responses[Math.min(session.utterances, script.responses.length - 1)] ?? "";
  session.utterances += 1;
  const deltas = [script.audio_deltas].flat();
  // An empty utterance is the model saying nothing (it only delegates).
  const deltaCount = text === "" ? 0 : (deltas[Math.min(session.utterances, deltas.length) - 1] ?? 0);
  if (session.speaking) session.speaking.stopped = true;
  const speaking = { stopped: false };
  session.speaking = speaking;
  const words = splitWords(text);
  const startMs = sessionMs(session);
  const msPerDelta = script.audio_bytes_per_delta / 8;
  for (let delta = 0; delta < Math.max(deltaCount, words.length); delta += 1) {
    if (delta > 0 && delta < deltaCount && script.delta_interval_ms > 0) await new Promise((resolve) => setTimeout(resolve, script.delta_interval_ms));
    if (speaking.stopped || session.closed) return;
    if (delta < deltaCount) {
      const payload = mulawChunk(session.utterances, delta, script.audio_bytes_per_delta);
      session.sentAudio.push(payload);
      send(session, { type: "session.output_audio.delta", delta: payload });
    }
    const word = words[delta];
    if (word !== undefined) {
      const wordStart = startMs + Math.min(delta, deltaCount) * msPerDelta;
      send(session, { type: "session.output_transcript.delta", delta: word, start_ms: wordStart, end_ms: wordStart + msPerDelta });
    }
  }
  session.speaking = null;
  const tool = scriptedToolCall(session, afterTurn);
  if (tool) delegate(session, tool);
  send(session, { type: "session.usage.updated", usage: { seconds: usageSeconds(session) } });
}

/**
 * The tool the answer to the caller's `afterTurn`-th turn delegates: the script's `tool_name`, else
 * its end_call, whichever the session declared first (the backend calls no undeclared tool).
 * @param {Session} session
 * @param {number | null} afterTurn
 * @returns {string | null}
 */
function scriptedToolCall(session, afterTurn) {
  if (afterTurn === null) return null;
  const script = session.script;
  const declared = new Set((session.config?.delegation?.responses?.tools ?? []).map((/** @type {{ name: string }} */ tool) => tool.name));
  const asked = [afterTurn === script.tool_call_after_turn ? script.tool_name : null, afterTurn === script.end_call_after_turn ? "end_call" : null];
  return asked.find((name) => name !== null && declared.has(name)) ?? null;
}

/**
 * The model hands a task to its Responses backend, which calls `name` and waits for its output.
 * @param {Session} session
 * @param {string} name
 */
function delegate(session, name) {
  /** @type {Delegation} */
  const delegation = { id: nextId("deleg"), responseId: nextId("resp"), callId: nextId("call"), name, output: null };
  session.delegation = delegation;
  send(session, { type: "session.delegation.created", delegation: { id: delegation.id, type: "delegation", target: "responses", response_id: delegation.responseId }, offset_ms: sessionMs(session) });
  const itemId = nextId("fc");
  const item = { id: itemId, type: "function_call", call_id: delegation.callId, name, arguments: "" };
  responseEvent(session, delegation, { type: "response.created", response: { id: delegation.responseId, object: "response", status: "in_progress" } });
  responseEvent(session, delegation, { type: "response.output_item.added", output_index: 0, item: { ...item, status: "in_progress" } });
  responseEvent(session, delegation, { type: "response.function_call_arguments.delta", item_id: itemId, output_index: 0, delta: "{}" });
  responseEvent(session, delegation, { type: "response.function_call_arguments.done", item_id: itemId, output_index: 0, arguments: "{}" });
  responseEvent(session, delegation, { type: "response.output_item.done", output_index: 0, item: { ...item, arguments: "{}", status: "completed" } });
}

/**
 * @param {Session} session
 * @param {Delegation} delegation
 * @param {Record<string, unknown>} event
 */
function responseEvent(session, delegation, event) {
  send(session, { type: "response.event", delegation_id: delegation.id, event: { ...event, sequence_number: session.serverEvents.length } });
}

/** @param {Session} session */
function usageSeconds(session) {
  return session.script.usage_seconds ?? Math.floor(session.appendedBytes / 8000);
}

/**
 * `session.closed` with its reason and the final usage, then the socket closes.
 * @param {Session} session
 * @param {string} reason
 * @param {number} code
 */
function closeSession(session, reason, code) {
  if (session.closed) return;
  if (session.speaking) session.speaking.stopped = true;
  session.closesAfter = null;
  session.dropsAfter = null;
  send(session, { type: "session.closed", reason, session: sessionResource(session), usage: { seconds: usageSeconds(session) } });
  if (session.closed) return;
  session.closed = { by: "server", code, reason };
  session.socket.close(code, reason);
}

/** Where the session's timeline is: the caller audio appended so far (it streams in real time). */
function sessionMs(/** @type {Session} */ session) {
  return Math.floor(session.appendedBytes / 8);
}

/**
 * Sends one server event; the script's close or drop follows the Nth.
 * @param {Session} session
 * @param {Record<string, unknown>} event
 */
function send(session, event) {
  if (session.closed) return;
  session.socket.send(JSON.stringify({ event_id: nextId("event"), ...event }));
  session.serverEvents.push(String(event.type));
  const sent = session.serverEvents.length;
  if (session.closesAfter !== null && sent >= session.closesAfter) closeSession(session, session.script.close_reason, 1000);
  else if (session.dropsAfter !== null && sent >= session.dropsAfter) {
    session.closed = { by: "server", code: 1011, reason: "fake drop" };
    if (session.speaking) session.speaking.stopped = true;
    session.socket.close(1011, "fake drop");
  }
}

/**
 * @param {Session} session
 * @param {string} message
 * @param {string} code
 * @param {string | null | undefined} clientEventIdValue
 * @param {string | null} [param]
 */
function sendError(session, message, code, clientEventIdValue, param = null) {
  const error = { type: "invalid_request_error", code, message, ...(param ? { param } : {}), ...(clientEventIdValue ? { client_event_id: clientEventIdValue } : {}) };
  session.errors.push(error);
  send(session, { type: "error", error });
}

/** @param {Record<string, any>} event */
function clientEventId(event) {
  return typeof event.event_id === "string" ? { client_event_id: event.event_id } : {};
}


/** @param {string} text */
function splitWords(text) {
  return text.match(/\S+\s*/g) ?? [];
}

/** @param {unknown} value @returns {value is Record<string, any>} */
function isObject(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Deterministic, varied μ-law bytes for one delta of one utterance.
 * @param {number} utterance
 * @param {number} delta
 * @param {number} size
 */
function mulawChunk(utterance, delta, size) {
  let binary = "";
  for (let i = 0; i < size; i += 1) binary += String.fromCharCode((utterance * 61 + delta * 31 + i * 7) & 0xff);
  return btoa(binary);
}
