// @ts-check
// A fake (Twilio or OpenAI) in its own worker thread, so that its per-frame work never waits
// behind the harness's orchestration, nor behind the other fake. It keeps what it observes per
// call in plain number arrays and hands it over once, at the end of a round; the only message per
// call during a round is the fake Twilio's "this call ended". Timestamps are lib/clock.mjs's
// `now()` (CLOCK_MONOTONIC), the same clock in every thread.
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { parentPort, workerData } from "node:worker_threads";
import { makeFrame, payloadMs } from "../lib/audio.mjs";
import { AGENT_RESPONSES, CALLER_TRANSCRIPTS, callerSpeaks, frameId, indexForPhone } from "../lib/call-script.mjs";
import { startFakeOpenAI } from "./openai.mjs";
import { STREAM_CALL_STATUS_EVENTS } from "../lib/place-call.mjs";
import { startFakeTwilio } from "./twilio.mjs";

/**
 * What the fake Twilio saw of one call.
 * @typedef {object} TwilioCallData
 * @property {number} index
 * @property {number | null} answeredAt
 * @property {number | null} endedAt
 * @property {number | null} startSentAt
 * @property {number} framesSent
 * @property {number[]} upSentAt send time of caller frame `counter`, by counter
 * @property {number[]} agentCounter agent frames received, their counter …
 * @property {number[]} agentAt … and when
 * @property {number[]} playing [start, end, start, end, …]: when agent audio was playing (a clear ends it)
 * @property {number[]} clears when each `clear` came
 * @property {[string, number][]} callbacks each status callback's status and how long our server took to answer it (ms)
 * @property {[number, string][]} timeline
 * @property {string[]} problems
 *
 * What the fake model saw of one call.
 * @typedef {object} ModelCallData
 * @property {number} index
 * @property {number} sessions
 * @property {number[]} appendCounter caller frames appended, their counter …
 * @property {number[]} appendAt … and when
 * @property {number[]} deltaCounter agent frames sent, their counter …
 * @property {number[]} deltaAt … when …
 * @property {number[]} deltaRelayed … and whether it is a relay latency (1) or paced by the bridge (0: GPT-Live after a response's first)
 * @property {number | null} greetingCreateAt
 * @property {number | null} firstDeltaAt
 * @property {number[]} speechStarts when the caller's speech began (Realtime: speech_started sent; GPT-Live: first speech frame received)
 * @property {{ audioEndMs: number; sentMs: number }[]} truncates
 * @property {[number, string][]} timeline
 * @property {string[]} problems
 */

const port = /** @type {import("node:worker_threads").MessagePort} */ (parentPort);
const { kind, runId, config } = workerData;
const samplesWanted = Boolean(config.samples);

/** @type {Map<number, any>} */
let calls = new Map();
const stray = { frames: 0, problems: /** @type {string[]} */ ([]) };
const loop = monitorEventLoopDelay({ resolution: 1 });
let elu = performance.eventLoopUtilization();

const strayProblem = (/** @type {string} */ text) => {
  if (stray.problems.length < 50) stray.problems.push(text);
};
const pushProblem = (/** @type {any} */ data, /** @type {string} */ text) => {
  if (data.problems.length < 20) data.problems.push(text);
};

/** @returns {TwilioCallData} */
const twilioCall = (/** @type {number} */ index) => {
  let data = calls.get(index);
  if (!data) {
    data = { index, answeredAt: null, endedAt: null, startSentAt: null, framesSent: 0, upSentAt: [], agentCounter: [], agentAt: [], playing: [], clears: [], callbacks: [], timeline: [], problems: [] };
    calls.set(index, data);
  }
  return data;
};
/** @returns {ModelCallData} */
const modelCall = (/** @type {number} */ index) => {
  let data = calls.get(index);
  if (!data) {
    data = { index, sessions: 0, appendCounter: [], appendAt: [], deltaCounter: [], deltaAt: [], deltaRelayed: [], greetingCreateAt: null, firstDeltaAt: null, speechStarts: [], truncates: [], timeline: [], problems: [] };
    calls.set(index, data);
  }
  return data;
};

/** @type {(url: string) => string} */
let connectTo = (url) => url;
/** @type {{ port: number; close(): Promise<void>; settled?: () => Promise<void>; sessions?: Set<unknown> }} */
let fake;

if (kind === "twilio") {
  fake = await startFakeTwilio({
    connectTo: (url) => connectTo(url),
    accountSid: config.accountSid,
    authToken: config.authToken,
    fromNumber: config.fromNumber,
    scenario: {
      callFor: (to) => {
        const index = indexForPhone(to);
        return index === null ? null : { index, key: `${runId}-${index}` };
      },
      mediaDurationMs: config.mediaDurationMs,
      callerFrame: (index, counter, atMs) => makeFrame(index, counter, callerSpeaks(index, atMs, config.jitterMs)),
    },
    observer: {
      callCreated: (call) => {
        const data = twilioCall(call.index);
        const asked = [...call.events].sort().join(" ");
        // A stand-in's status callbacks are compared with ours only if both ask for the same ones.
        if (asked !== [...STREAM_CALL_STATUS_EVENTS].sort().join(" ")) pushProblem(data, `asked for status callbacks ${asked}, the stand-ins for ${STREAM_CALL_STATUS_EVENTS.join(" ")}`);
      },
      startSent: (call, t) => {
        const data = twilioCall(call.index);
        data.startSentAt = t;
        data.answeredAt = call.answeredAt;
        data.timeline.push([t, "twilio→ start"]);
      },
      mediaSent: (call, _payload, t, counter) => {
        const data = twilioCall(call.index);
        data.upSentAt[counter] = t;
        data.framesSent++;
      },
      agentMedia: (call, payload, t) => {
        const id = frameId(payload);
        if (!id || id.index !== call.index) return void stray.frames++;
        const data = twilioCall(call.index);
        data.agentCounter.push(id.counter);
        data.agentAt.push(t);
        // The fake moves its playhead after this: audio plays from max(playhead, t) on.
        const end = Math.max(call.playhead, t) + payloadMs(payload);
        if (data.playing.length === 0 || call.playhead <= t) data.playing.push(t, end);
        else data.playing[data.playing.length - 1] = end;
      },
      clearReceived: (call, t) => {
        const data = twilioCall(call.index);
        data.clears.push(t);
        const last = data.playing.length - 1;
        if (last > 0 && data.playing[last] > t) data.playing[last] = t;
      },
      ended: (call, t) => {
        const data = twilioCall(call.index);
        data.endedAt = t;
        data.answeredAt = call.answeredAt;
        port.postMessage({ type: "ended", index: call.index });
      },
      statusAnswered: (call, status, sentAt, t) => void twilioCall(call.index).callbacks.push([status, t - sentAt]),
      problem: (call, text) => (call ? pushProblem(twilioCall(call.index), `twilio: ${text}`) : strayProblem(`twilio: ${text}`)),
      event: (call, label, t) => void twilioCall(call.index).timeline.push([t, label]),
    },
  });
} else {
  const callOf = (/** @type {import("./openai.mjs").ModelSession} */ session) => (session.call ? modelCall(session.call.index) : null);
  /** @type {WeakSet<object>} */
  const counted = new WeakSet();
  fake = await startFakeOpenAI({
    apiKey: config.apiKey,
    scenario: {
      modelLatencyMs: config.modelLatencyMs,
      agentSpeed: config.agentSpeed,
      agentFrameMs: config.agentFrameMs,
      callFor: (instructions) => {
        const match = /\[bench call (\w+)-(\d+)\]/.exec(instructions);
        if (!match || match[1] !== runId) return null;
        return { index: Number(match[2]), key: match[0] };
      },
      response: (_index, number) => AGENT_RESPONSES[number] ?? { durationMs: 1000, transcript: "Okay." },
      callerTranscript: (_index, turn) => CALLER_TRANSCRIPTS[turn] ?? "Mm-hm.",
      agentFrame: (index, counter) => makeFrame(index, counter, true, true, config.agentFrameMs),
    },
    observer: {
      configured: (session) => {
        const data = callOf(session);
        if (data && !counted.has(session)) {
          counted.add(session);
          data.sessions++;
        }
      },
      append: (session, payload, t) => {
        // Caller frames carry their call's number, whatever session they arrive on.
        const id = frameId(payload);
        if (!id) return void stray.frames++;
        const data = modelCall(id.index);
        data.appendCounter.push(id.counter);
        data.appendAt.push(t);
        if (session.call && session.call.index !== id.index) pushProblem(data, "caller audio appended to another call's model session");
      },
      deltaSent: (session, payload, t, responseNumber, first) => {
        const data = callOf(session);
        const id = frameId(payload);
        if (!data || !id) return;
        data.deltaCounter.push(id.counter);
        data.deltaAt.push(t);
        // Paced audio (GPT-Live) waits in the bridge on purpose: only a response's first frame,
        // which goes out at once, is a relay latency; the rest shows the pacing.
        data.deltaRelayed.push(!session.live || first ? 1 : 0);
        if (first && responseNumber === 0) data.firstDeltaAt = t;
      },
      responseCreateReceived: (session, t, number) => {
        const data = callOf(session);
        if (data && number === 0) data.greetingCreateAt = t;
      },
      speechStarted: (session, t) => void callOf(session)?.speechStarts.push(t),
      truncated: (session, truncate) => void callOf(session)?.truncates.push({ audioEndMs: truncate.audioEndMs, sentMs: truncate.sentMs }),
      problem: (session, text) => {
        const data = session ? callOf(session) : null;
        if (data) pushProblem(data, `openai: ${text}`);
        else strayProblem(`openai: ${text}`);
      },
      event: (session, label, t) => {
        if (samplesWanted || label.includes("speech_started")) callOf(session)?.timeline.push([t, label]);
      },
    },
  });
}

port.on("message", async (/** @type {any} */ message) => {
  try {
    if (message.type === "begin") {
      calls = new Map();
      stray.frames = 0;
      stray.problems = [];
      loop.reset();
      loop.enable();
      elu = performance.eventLoopUtilization();
      port.postMessage({ id: message.id });
    } else if (message.type === "end") {
      if (fake.settled) await fake.settled();
      // Caller frames may still be on their way through the Worker when the fake Twilio hangs up:
      // the model sockets close after the last of them (in order), so wait for that (3 s at most).
      const deadline = Date.now() + 3000;
      while (fake.sessions && fake.sessions.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      loop.disable();
      const utilization = performance.eventLoopUtilization(elu).utilization;
      // The histogram holds the interval between the 1 ms sampling timer's runs: the delay is what exceeds the 1 ms.
      const pct = (/** @type {number} */ p) => Math.max(0, loop.percentile(p) / 1e6 - 1);
      const round = [...calls.values()];
      calls = new Map();
      port.postMessage({ id: message.id, calls: round, stray: { ...stray }, loop: { p50: pct(50), p99: pct(99), max: Math.max(0, loop.max / 1e6 - 1), utilization } });
    } else if (message.type === "connectTo") {
      const { from, to } = message;
      connectTo = from ? (url) => url.replace(from, to).replace(from.replace(/^http/, "ws"), to.replace(/^http/, "ws")) : (url) => url;
      port.postMessage({ id: message.id });
    } else if (message.type === "close") {
      await fake.close();
      port.postMessage({ id: message.id });
      port.close();
    }
  } catch (error) {
    port.postMessage({ id: message.id, error: String(/** @type {Error} */ (error)?.stack ?? error) });
  }
});
port.postMessage({ type: "ready", port: fake.port });
