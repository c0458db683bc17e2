// @ts-check
// A fake Twilio on 127.0.0.1 that behaves, on the wire, like the real one for an outbound call:
// - REST: POST /2010-04-01/Accounts/{AccountSid}/Calls.json (Basic auth, form parameters, inline
//   `Twiml`), POST …/Calls/{CallSid}.json (`Status=completed` hangs up), GET …/Calls/{CallSid}.json;
//   errors in Twilio's JSON shape {code, message, more_info, status}.
// - Status callbacks to `StatusCallback` for the subscribed `StatusCallbackEvent`s (initiated,
//   ringing, answered → CallStatus in-progress, completed), form-encoded, with `SequenceNumber` and
//   `X-Twilio-Signature` (base64 HMAC-SHA1 of the URL + sorted key/value pairs, keyed with the auth
//   token).
// - The bidirectional Media Stream of `<Connect><Stream url>`: Twilio connects to the URL (signing
//   it, no parameters), sends `connected`, `start` (the `<Parameter>`s as customParameters),
//   `media` every 20 ms (the scenario's caller audio) and finally `stop`, then closes. Audio the
//   server sends is "played" in real time; a `mark` is echoed when the audio before it has played,
//   and `clear` drops the unplayed audio and echoes the pending marks at once.
import { createHmac, randomBytes } from "node:crypto";
import { createServer } from "node:http";
import { now } from "../lib/clock.mjs";
import WebSocket from "ws";
import { FRAME_MS, payloadMs } from "../lib/audio.mjs";
import { closeServer, listenLocal } from "../lib/net.mjs";
import { API_VERSION } from "../lib/place-call.mjs";

const RINGING_AFTER_MS = 80;
const ANSWERED_AFTER_MS = 250;

/**
 * What the harness decides and observes. Every timestamp is `now()` (lib/clock.mjs: one monotonic clock for every thread).
 * @typedef {object} TwilioScenario
 * @property {(to: string) => { index: number; key: string } | null} callFor which bench call dials `to`
 * @property {number} mediaDurationMs how long the callee stays on the line (media frames sent)
 * @property {(index: number, counter: number, atMs: number) => string} callerFrame the caller's audio frame `counter`, at `atMs` into the stream
 *
 * @typedef {object} TwilioObserver
 * @property {(call: FakeCall) => void} [callCreated]
 * @property {(call: FakeCall, t: number) => void} [startSent]
 * @property {(call: FakeCall, payload: string, t: number, counter: number) => void} [mediaSent] caller frame `counter` (from 0) sent
 * @property {(call: FakeCall, status: string, sentAt: number, t: number, httpStatus: number) => void} [statusAnswered] our server answered a status callback
 * @property {(call: FakeCall, payload: string, t: number) => void} [agentMedia]
 * @property {(call: FakeCall, t: number) => void} [clearReceived]
 * @property {(call: FakeCall, name: string, t: number) => void} [markReceived]
 * @property {(call: FakeCall, t: number) => void} [ended]
 * @property {(call: FakeCall | null, problem: string) => void} [problem] a protocol violation by our server
 * @property {(call: FakeCall, label: string, t: number) => void} [event] everything but audio and marks (for timelines)
 */

/**
 * @typedef {object} FakeCall
 * @property {string} sid
 * @property {number} index
 * @property {string} key
 * @property {string} to
 * @property {string} from
 * @property {string} status
 * @property {number} sequenceNumber next status-callback SequenceNumber
 * @property {Set<string>} events subscribed status callback events
 * @property {string | null} statusCallback
 * @property {string} streamUrl
 * @property {Record<string, string>} parameters
 * @property {boolean} machineDetection
 * @property {number} timeLimitMs
 * @property {number | null} answeredAt
 * @property {number | null} endedAt
 * @property {WebSocket | null} socket
 * @property {string} streamSid
 * @property {number} framesSent
 * @property {number} messageSequence next Media Streams sequenceNumber
 * @property {NodeJS.Timeout | null} frameTimer
 * @property {number} playhead when the audio queued so far will have played
 * @property {Map<string, NodeJS.Timeout>} pendingMarks
 * @property {Promise<void>[]} callbacks status callbacks in flight
 */

/** Twilio's request signature: base64 HMAC-SHA1 over the URL followed by each key+value, keys sorted. */
function twilioSignature(/** @type {string} */ authToken, /** @type {string} */ url, /** @type {Record<string, string>} */ params) {
  const data = Object.keys(params)
    .sort()
    .reduce((text, key) => text + key + params[key], url);
  return createHmac("sha1", authToken).update(data, "utf8").digest("base64");
}

const sid = (/** @type {string} */ prefix) => prefix + randomBytes(16).toString("hex");

function xmlUnescape(/** @type {string} */ text) {
  return text.replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos);/gi, (_, entity) => {
    const named = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" }[String(entity).toLowerCase()];
    if (named) return named;
    return String.fromCodePoint(entity[1].toLowerCase() === "x" ? parseInt(entity.slice(2), 16) : parseInt(entity.slice(1), 10));
  });
}

function xmlAttributes(/** @type {string} */ text) {
  /** @type {Record<string, string>} */
  const attributes = {};
  for (const match of text.matchAll(/([A-Za-z_:][\w:.-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) attributes[match[1]] = xmlUnescape(match[2] ?? match[3] ?? "");
  return attributes;
}

/** The `<Connect><Stream>` of inline TwiML, or an error message. */
function parseStreamTwiml(/** @type {string} */ twiml) {
  if (!/<Response[\s>]/.test(twiml)) return { error: "TwiML has no <Response>" };
  if (!/<Connect[\s>]/.test(twiml)) return { error: "TwiML has no <Connect>: only <Connect><Stream> is bidirectional" };
  const stream = /<Stream\b([^>]*?)\/?>/.exec(twiml);
  if (!stream) return { error: "TwiML has no <Stream>" };
  const url = xmlAttributes(stream[1]).url;
  if (!url) return { error: "<Stream> has no url" };
  if (/\?/.test(url)) return { error: "<Stream url> has a query string, which Twilio drops" };
  /** @type {Record<string, string>} */
  const parameters = {};
  for (const match of twiml.matchAll(/<Parameter\b([^>]*?)\/?>/g)) {
    const attributes = xmlAttributes(match[1]);
    if (attributes.name !== undefined) parameters[attributes.name] = attributes.value ?? "";
  }
  return { url, parameters };
}

/**
 * @param {{ accountSid: string; authToken: string; fromNumber: string; scenario: TwilioScenario; observer?: TwilioObserver; connectTo?: (url: string) => string }} options
 *   `connectTo` maps a URL we were given to the address actually connected to (like a tunnel in
 *   front of the server); requests stay signed for the URL we were given.
 */
export async function startFakeTwilio({ accountSid, authToken, fromNumber, scenario, observer = {}, connectTo = (url) => url }) {
  /** @type {Map<string, FakeCall>} */
  const calls = new Map();
  const callPath = new RegExp(`^/${API_VERSION}/Accounts/([^/]+)/Calls(?:/([^/]+))?\\.json$`);
  const expectedAuth = "Basic " + Buffer.from(`${accountSid}:${authToken}`).toString("base64");

  /** @param {import("node:http").ServerResponse} res @param {number} status @param {unknown} body */
  const json = (res, status, body) => {
    res.writeHead(status, { "content-type": "application/json; charset=utf-8" });
    res.end(JSON.stringify(body));
  };
  /** @param {import("node:http").ServerResponse} res @param {number} status @param {number} code @param {string} message */
  const twilioError = (res, status, code, message) => json(res, status, { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status });

  /** @param {FakeCall} call */
  const resource = (call) => ({
    sid: call.sid,
    account_sid: accountSid,
    api_version: API_VERSION,
    to: call.to,
    to_formatted: call.to,
    from: call.from,
    from_formatted: call.from,
    status: call.status,
    direction: "outbound-api",
    answered_by: call.machineDetection && call.answeredAt !== null ? "human" : null,
    date_created: new Date().toUTCString(),
    date_updated: new Date().toUTCString(),
    start_time: null,
    end_time: null,
    duration: call.endedAt !== null && call.answeredAt !== null ? String(Math.round((call.endedAt - call.answeredAt) / 1000)) : null,
    price: null,
    price_unit: "USD",
    parent_call_sid: null,
    uri: `/${API_VERSION}/Accounts/${accountSid}/Calls/${call.sid}.json`,
  });

  /** Posts a signed status callback for `status` when the call subscribed to `event`. */
  const statusCallback = (/** @type {FakeCall} */ call, /** @type {string} */ event, /** @type {string} */ status) => {
    call.status = status;
    if (!call.statusCallback || !call.events.has(event)) return;
    /** @type {Record<string, string>} */
    const params = {
      AccountSid: accountSid,
      ApiVersion: API_VERSION,
      CallSid: call.sid,
      CallStatus: status,
      Called: call.to,
      Caller: call.from,
      Direction: "outbound-api",
      From: call.from,
      To: call.to,
      CallbackSource: "call-progress-events",
      Timestamp: new Date().toUTCString().replace("GMT", "+0000"),
      SequenceNumber: String(call.sequenceNumber++),
    };
    if (call.machineDetection && call.answeredAt !== null) params.AnsweredBy = "human";
    if (status === "completed" && call.answeredAt !== null) {
      const seconds = Math.round(((call.endedAt ?? now()) - call.answeredAt) / 1000);
      params.CallDuration = String(seconds);
      params.Duration = String(Math.ceil(seconds / 60));
    }
    const url = call.statusCallback;
    const sentAt = now();
    observer.event?.(call, `twilio→ status ${status}`, sentAt);
    const delivery = fetch(connectTo(url), {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", "x-twilio-signature": twilioSignature(authToken, url, params), "user-agent": "TwilioProxy/1.1" },
      body: new URLSearchParams(params).toString(),
    })
      .then(async (response) => {
        await response.arrayBuffer();
        const t = now();
        observer.statusAnswered?.(call, status, sentAt, t, response.status);
        observer.event?.(call, `twilio← status ${status} answered ${response.status}`, t);
        if (!response.ok) observer.problem?.(call, `status callback ${status} → HTTP ${response.status}`);
      })
      .catch((error) => observer.problem?.(call, `status callback ${status} failed: ${error.message}`));
    call.callbacks.push(delivery);
  };

  /** @param {FakeCall} call @param {Record<string, unknown>} message */
  const sendStreamMessage = (call, message) => {
    if (call.socket?.readyState === WebSocket.OPEN) call.socket.send(JSON.stringify(message));
  };

  /** Ends the call once: `stop` and close on the stream, then the completed callback. */
  const endCall = (/** @type {FakeCall} */ call) => {
    if (call.endedAt !== null) return;
    call.endedAt = now();
    if (call.frameTimer) clearTimeout(call.frameTimer);
    for (const timer of call.pendingMarks.values()) clearTimeout(timer);
    call.pendingMarks.clear();
    if (call.socket) {
      sendStreamMessage(call, { event: "stop", sequenceNumber: String(call.messageSequence++), streamSid: call.streamSid, stop: { accountSid, callSid: call.sid } });
      if (call.socket.readyState === WebSocket.OPEN || call.socket.readyState === WebSocket.CONNECTING) call.socket.close(1000);
    }
    observer.ended?.(call, call.endedAt);
    observer.event?.(call, "twilio→ stop", call.endedAt);
    statusCallback(call, "completed", call.answeredAt === null ? "canceled" : "completed");
  };

  /** The callee answers: the answered callback and, at the same time, the Media Stream. */
  const answer = (/** @type {FakeCall} */ call) => {
    if (call.endedAt !== null) return;
    call.answeredAt = now();
    statusCallback(call, "answered", "in-progress");
    const socket = new WebSocket(connectTo(call.streamUrl), { headers: { "x-twilio-signature": twilioSignature(authToken, call.streamUrl, {}) }, perMessageDeflate: false });
    call.socket = socket;
    socket.on("unexpected-response", (_request, response) => {
      observer.problem?.(call, `media stream upgrade answered HTTP ${response.statusCode}`);
      response.resume();
      endCall(call);
    });
    socket.on("error", (error) => observer.problem?.(call, `media stream error: ${error.message}`));
    socket.on("close", () => {
      if (call.endedAt === null) {
        observer.problem?.(call, "our server closed the media stream before the call ended");
        endCall(call);
      }
    });
    socket.on("message", (data, isBinary) => receive(call, data, isBinary));
    socket.on("open", () => {
      observer.event?.(call, "twilio media stream open", now());
      sendStreamMessage(call, { event: "connected", protocol: "Call", version: "1.0.0" });
      const streamStart = now();
      sendStreamMessage(call, {
        event: "start",
        sequenceNumber: String(call.messageSequence++),
        start: {
          accountSid,
          streamSid: call.streamSid,
          callSid: call.sid,
          tracks: ["inbound"],
          customParameters: call.parameters,
          mediaFormat: { encoding: "audio/x-mulaw", sampleRate: 8000, channels: 1 },
        },
        streamSid: call.streamSid,
      });
      observer.startSent?.(call, streamStart);
      const frames = Math.floor(Math.min(scenario.mediaDurationMs, call.timeLimitMs) / FRAME_MS);
      // One frame every 20 ms on a fixed schedule (no drift), like a phone line.
      const sendFrame = () => {
        const counter = call.framesSent;
        if (counter >= frames) return endCall(call);
        const payload = scenario.callerFrame(call.index, counter, counter * FRAME_MS);
        // Twilio's `media` message, written out (the same JSON as JSON.stringify would make: no value needs escaping).
        const message = `{"event":"media","sequenceNumber":"${call.messageSequence++}","media":{"track":"inbound","chunk":"${counter + 1}","timestamp":"${counter * FRAME_MS}","payload":"${payload}"},"streamSid":"${call.streamSid}"}`;
        if (socket.readyState !== WebSocket.OPEN) return;
        const t0 = now();
        socket.send(message);
        call.framesSent++;
        observer.mediaSent?.(call, payload, t0, counter);
        call.frameTimer = setTimeout(sendFrame, Math.max(0, streamStart + (counter + 1) * FRAME_MS - now()));
      };
      sendFrame();
    });
  };

  /** A message from our server on the Media Stream. */
  const receive = (/** @type {FakeCall} */ call, /** @type {import("ws").RawData} */ data, /** @type {boolean} */ isBinary) => {
    const t = now();
    if (isBinary) return observer.problem?.(call, "binary frame on the media stream");
    /** @type {any} */
    let message;
    try {
      message = JSON.parse(String(data));
    } catch {
      return observer.problem?.(call, "media stream message is not JSON");
    }
    if (message.streamSid !== call.streamSid) observer.problem?.(call, `${message.event} with streamSid ${message.streamSid}, expected ${call.streamSid}`);
    if (message.event === "media") {
      const payload = message.media?.payload;
      if (typeof payload !== "string" || payload.length === 0) return observer.problem?.(call, "media without a payload");
      observer.agentMedia?.(call, payload, t);
      call.playhead = Math.max(call.playhead, t) + payloadMs(payload);
    } else if (message.event === "mark") {
      const name = message.mark?.name;
      if (typeof name !== "string") return observer.problem?.(call, "mark without a name");
      observer.markReceived?.(call, name, t);
      const echo = () => {
        call.pendingMarks.delete(name);
        sendStreamMessage(call, { event: "mark", sequenceNumber: String(call.messageSequence++), streamSid: call.streamSid, mark: { name } });
      };
      if (call.pendingMarks.has(name)) observer.problem?.(call, `mark name ${name} reused while pending`);
      call.pendingMarks.set(name, setTimeout(echo, Math.max(0, call.playhead - t)));
    } else if (message.event === "clear") {
      observer.event?.(call, "twilio← clear", t);
      observer.clearReceived?.(call, t);
      call.playhead = t;
      for (const [name, timer] of call.pendingMarks) {
        clearTimeout(timer);
        sendStreamMessage(call, { event: "mark", sequenceNumber: String(call.messageSequence++), streamSid: call.streamSid, mark: { name } });
      }
      call.pendingMarks.clear();
    } else {
      observer.problem?.(call, `unsupported message on a bidirectional stream: ${String(message.event)}`);
    }
  };

  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const match = callPath.exec(url.pathname);
    if (!match) return twilioError(res, 404, 20404, "The requested resource was not found");
    if (req.headers.authorization !== expectedAuth || match[1] !== accountSid) return twilioError(res, 401, 20003, "Authenticate");
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const form = new URLSearchParams(Buffer.concat(chunks).toString("utf8"));

    if (!match[2]) {
      if (req.method !== "POST") return twilioError(res, 405, 20004, "Method not allowed");
      const to = form.get("To");
      const from = form.get("From");
      const twiml = form.get("Twiml");
      if (!to) return twilioError(res, 400, 21201, "No 'To' number is specified");
      if (!from) return twilioError(res, 400, 21603, "A 'From' phone number is required.");
      if (from !== fromNumber) return twilioError(res, 400, 21210, `The source phone number provided, ${from}, is not yet verified for your account.`);
      if (!twiml) return twilioError(res, 400, 21205, "Url parameter is required (or Twiml)");
      const parsed = parseStreamTwiml(twiml);
      if ("error" in parsed) {
        observer.problem?.(null, parsed.error ?? "bad TwiML");
        return twilioError(res, 400, 12100, `Document parse failure: ${parsed.error}`);
      }
      const target = scenario.callFor(to);
      if (!target) return twilioError(res, 400, 21217, `Phone number ${to} is not part of this benchmark`);
      const events = new Set(form.getAll("StatusCallbackEvent").flatMap((value) => value.split(/[\s,]+/)).filter(Boolean));
      if (events.size === 0) events.add("completed");
      const timeLimit = Number(form.get("TimeLimit") ?? 14400);
      /** @type {FakeCall} */
      const call = {
        sid: sid("CA"),
        index: target.index,
        key: target.key,
        to,
        from,
        status: "queued",
        sequenceNumber: 0,
        events,
        statusCallback: form.get("StatusCallback"),
        streamUrl: parsed.url ?? "",
        parameters: parsed.parameters ?? {},
        machineDetection: /^(Enable|DetectMessageEnd)$/.test(form.get("MachineDetection") ?? ""),
        timeLimitMs: (Number.isFinite(timeLimit) ? timeLimit : 14400) * 1000,
        answeredAt: null,
        endedAt: null,
        socket: null,
        streamSid: sid("MZ"),
        framesSent: 0,
        messageSequence: 1,
        frameTimer: null,
        playhead: 0,
        pendingMarks: new Map(),
        callbacks: [],
      };
      calls.set(call.sid, call);
      observer.callCreated?.(call);
      json(res, 201, resource(call));
      setTimeout(() => call.endedAt === null && statusCallback(call, "initiated", "initiated"), 5);
      setTimeout(() => call.endedAt === null && statusCallback(call, "ringing", "ringing"), RINGING_AFTER_MS);
      setTimeout(() => answer(call), ANSWERED_AFTER_MS);
      return;
    }

    const call = calls.get(match[2]);
    if (!call) return twilioError(res, 404, 20404, `The requested resource /${API_VERSION}/Accounts/${accountSid}/Calls/${match[2]}.json was not found`);
    if (req.method === "GET") return json(res, 200, resource(call));
    if (req.method !== "POST") return twilioError(res, 405, 20004, "Method not allowed");
    const status = form.get("Status");
    if (status === "completed" || status === "canceled") {
      if (call.endedAt === null) endCall(call);
      return json(res, 200, resource(call));
    }
    return twilioError(res, 400, 21220, "Invalid call state for this request");
  });
  server.keepAliveTimeout = 30_000;
  const port = await listenLocal(server);

  return {
    port,
    calls,
    /** Status callbacks still being delivered. */
    async settled() {
      await Promise.all([...calls.values()].flatMap((call) => call.callbacks));
    },
    async close() {
      for (const call of calls.values()) {
        if (call.frameTimer) clearTimeout(call.frameTimer);
        for (const timer of call.pendingMarks.values()) clearTimeout(timer);
        call.socket?.terminate();
      }
      server.closeAllConnections();
      await closeServer(server);
    },
  };
}
