// @ts-check
// The live-call benchmark: N concurrent 20-second calls through `npm run dev`, with Twilio and
// OpenAI faked in this process (one clock for both ends of every relay).
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { startFakeOpenAI } from "./fakes/openai.mjs";
import { placeStreamCall, startFakeTwilio } from "./fakes/twilio.mjs";
import { FRAME_MS, makeFrame } from "./lib/audio.mjs";
import { startDevServer } from "./lib/dev-server.mjs";
import { machineCpu, waitForQuietMachine } from "./lib/proc.mjs";
import { startReferenceBridge } from "./lib/reference-bridge.mjs";
import { fmt, markdownTable, summarize } from "./lib/stats.mjs";
import { sleep, waitUntil } from "./lib/wait.mjs";

export const description = "N concurrent live calls (Twilio Media Streams ⇄ our Durable Object ⇄ OpenAI Realtime or GPT-Live), relay latency, barge-in, greeting, frames lost, CPU, each with call recording off and on";

const ACCOUNT_SID = "AC" + "0b".repeat(16);
const AUTH_TOKEN = "bench-twilio-auth-token-0123456789";
const FROM_NUMBER = "+14155550000";
const OPENAI_KEY = "sk-bench-openai-key";
const REALTIME_MODEL = "gpt-realtime";

/**
 * `localBargeInMs`: GPT-Live says nothing when the caller starts, so the bridge's own detector hears
 * it, on the second loud frame (40 ms of speech): one 20 ms frame after the onset, plus the relay.
 */
const TARGETS = { relayP99Ms: 1, bargeInMs: 2, localBargeInMs: 25, greetingOverheadMs: 20, framesLost: 0, recordingCpuRatio: 1.1 };
/** `--engine`: the voice engines each round runs on, one after the other (the agent's `engine`). */
const ENGINE_MODES = /** @type {Record<string, string[]>} */ ({ "openai-realtime": ["openai-realtime"], "openai-live": ["openai-live"], both: ["openai-realtime", "openai-live"] });
/** `--record`: which rounds run with an agent that records its calls. */
const RECORD_MODES = /** @type {Record<string, boolean[]>} */ ({ off: [false], on: [true], both: [false, true] });
/** Frames sent this long after the stream's start count as steady state (set-up is over). */
const STEADY_AFTER_MS = 3000;
/** Mid-call: steady state, and this long before the caller hangs up (a call's end writes its recording). */
const MID_CALL_BEFORE_END_MS = 1000;

/**
 * What the caller says, in ms from the stream start: a turn after the greeting, a barge-in into
 * the agent's answer, another turn, another barge-in. With the default model latency (300 ms) and
 * silence_duration_ms (500 ms), the agent's responses play at about 0.3–3.3 s (greeting),
 * 6.3–11.3 s (cut at 8 s), 9.8–11.8 s, 14.8–18.8 s (cut at 16 s) and 17.4–18.9 s; the model
 * streams them twice as fast as they play, so Twilio holds unplayed audio when the caller cuts in.
 */
const CALLER_SPEECH = [
  [4000, 5500],
  [8000, 9000],
  [13000, 14000],
  [16000, 16600],
];
/** The agent's responses in order (0 = the greeting); later ones are 1 s. */
const AGENT_RESPONSES = [
  { durationMs: 3000, transcript: "Hi, this is Acme calling to confirm your appointment tomorrow at ten. Does that still work?" },
  { durationMs: 5000, transcript: "Great. Just so you know, please bring your insurance card and arrive ten minutes early, and" },
  { durationMs: 2000, transcript: "Of course, go ahead." },
  { durationMs: 4000, transcript: "Thanks, I have noted that you would prefer the afternoon, and I will" },
  { durationMs: 1500, transcript: "Sure. Goodbye!" },
];
const CALLER_TRANSCRIPTS = ["Yes, that works.", "Sorry, one question.", "Could it be in the afternoon instead?", "Thanks, bye."];

/**
 * @typedef {object} CallRecord
 * @property {number} index
 * @property {string} key
 * @property {string} phone
 * @property {boolean} recording placed with an agent that records its calls
 * @property {string} engine the voice engine of the call's agent
 * @property {string | null} notificationId
 * @property {string | null} createError
 * @property {import("./fakes/twilio.mjs").FakeCall | null} twilio
 * @property {number | null} startSentAt
 * @property {number | null} greetingCreateAt when the model got the greeting's response.create
 * @property {number | null} firstDeltaAt when the model sent the greeting's first audio
 * @property {number | null} firstAgentMediaAt when Twilio got the first agent audio
 * @property {number} framesSent
 * @property {number} framesRelayed
 * @property {number[]} up Twilio → model, ms per frame
 * @property {number[]} upSentAt when each of `up` was sent
 * @property {number[]} down model → Twilio, ms per frame
 * @property {number[]} downSentAt
 * @property {number[]} paced model → Twilio, ms per frame held by the bridge's pacing (GPT-Live)
 * @property {[number, string][]} timeline protocol events other than audio, for `--samples`
 * @property {number} agentFramesSent
 * @property {{ t: number; interrupting: boolean; clearAt: number | null }[]} speechStarts
 * @property {number} unmatchedClears
 * @property {{ audioEndMs: number; sentMs: number }[]} truncates
 * @property {number} modelSessions
 * @property {string[]} problems
 * @property {any} notification the final state from the API
 */

/** @param {import("./run.mjs").SuiteContext} context */
export async function run({ root, benchDir, options, onCleanup, onExitKill, log }) {
  const rounds = (options.calls ?? "1,10,50").split(",").map(Number).filter((n) => n > 0);
  const seconds = Number(options.seconds ?? 20);
  const modelLatencyMs = Number(options["model-latency"] ?? 300);
  const agentSpeed = Number(options["agent-speed"] ?? 2);
  const agentFrameMs = Number(options["agent-frame-ms"] ?? FRAME_MS);
  // Calls fired together speak in lockstep; --jitter=ms shifts each caller's script by up to that
  // much (spread evenly over the calls), so that their busy moments do not all coincide.
  const jitterMs = Number(options.jitter ?? 0);
  const scriptOffsetMs = (/** @type {number} */ index) => (jitterMs > 0 ? ((index * 7919) % 1000) / 1000 * jitterMs : 0);
  const mediaDurationMs = seconds * 1000;
  // Recording (an agent with record: true) off and on in the same run, so that its cost is measured
  // under the same conditions; the harness's floors have no recording.
  const recordModes = options.target === "reference" || options.target === "floor" ? [false] : RECORD_MODES[options.record ?? "both"];
  if (!recordModes) throw new Error(`--record is off, on or both, not ${options.record}`);
  // The harness's floors relay the Realtime protocol only.
  const engines = options.target === "reference" || options.target === "floor" ? ["openai-realtime"] : ENGINE_MODES[options.engine ?? "both"];
  if (!engines) throw new Error(`--engine is openai-realtime, openai-live or both, not ${options.engine}`);

  /** @type {Map<number, CallRecord>} */
  const records = new Map();
  /** @type {Map<string, number>} */
  const indexByPhone = new Map();
  /** Payloads in flight: Twilio → model and model → Twilio, with their send time. */
  const upInFlight = new Map();
  const downInFlight = new Map();
  const stray = { appends: 0, agentMedia: 0, problems: /** @type {string[]} */ ([]) };
  const runId = Date.now().toString(36);
  // Each run has its own directory, so that runs never share a database (or delete each other's).
  const runDir = join(benchDir, ".state", `calls-${runId}`);
  mkdirSync(runDir, { recursive: true });
  log(`run directory: ${runDir}`);
  /** @type {WeakSet<object>} */
  const countedSessions = new WeakSet();

  const record = (/** @type {number} */ index) => records.get(index);
  const problem = (/** @type {CallRecord | undefined} */ rec, /** @type {string} */ text) => {
    if (rec) {
      if (rec.problems.length < 20) rec.problems.push(text);
    } else if (stray.problems.length < 50) stray.problems.push(text);
  };

  /** Where the fake Twilio really connects for a URL of ours (`--direct` skips wrangler's dev proxy). */
  let connectTo = (/** @type {string} */ url) => url;
  const twilio = await startFakeTwilio({
    connectTo: (url) => connectTo(url),
    accountSid: ACCOUNT_SID,
    authToken: AUTH_TOKEN,
    fromNumber: FROM_NUMBER,
    scenario: {
      callFor: (to) => {
        const index = indexByPhone.get(to);
        return index === undefined ? null : { index, key: /** @type {CallRecord} */ (record(index)).key };
      },
      mediaDurationMs,
      callerFrame: (index, counter, atMs) => {
        const shifted = atMs - scriptOffsetMs(index);
        return makeFrame(index, counter, CALLER_SPEECH.some(([from, to]) => shifted >= from && shifted < to));
      },
    },
    observer: {
      callCreated: (call) => {
        const rec = record(call.index);
        if (rec) rec.twilio = call;
      },
      startSent: (call, t) => {
        const rec = record(call.index);
        if (!rec) return;
        rec.startSentAt = t;
        rec.timeline.push([t, "twilio→ start"]);
      },
      mediaSent: (call, payload, t) => {
        upInFlight.set(payload, t);
        const rec = record(call.index);
        if (rec) rec.framesSent++;
      },
      agentMedia: (call, payload, t) => {
        const delta = downInFlight.get(payload);
        const rec = record(call.index);
        if (delta === undefined || !rec) return void stray.agentMedia++;
        downInFlight.delete(payload);
        rec.firstAgentMediaAt ??= t;
        // Paced audio (GPT-Live) waits in the bridge on purpose: only a response's first frame,
        // which goes out at once, is a relay latency; the rest shows the pacing.
        if (!delta.relayed) return void rec.paced.push(t - delta.t);
        rec.down.push(t - delta.t);
        rec.downSentAt.push(delta.t);
      },
      clearReceived: (call, t) => {
        const rec = record(call.index);
        if (!rec) return;
        const pending = rec.speechStarts.findLast((start) => start.clearAt === null && start.t <= t);
        if (pending) pending.clearAt = t;
        else rec.unmatchedClears++;
      },
      problem: (call, text) => problem(call ? record(call.index) : undefined, `twilio: ${text}`),
      event: (call, label, t) => record(call.index)?.timeline.push([t, label]),
    },
  });
  onCleanup(() => twilio.close());

  const openai = await startFakeOpenAI({
    apiKey: OPENAI_KEY,
    scenario: {
      modelLatencyMs,
      agentSpeed,
      agentFrameMs,
      callFor: (instructions) => {
        const match = /\[bench call (\w+)-(\d+)\]/.exec(instructions);
        if (!match || match[1] !== runId) return null;
        const index = Number(match[2]);
        return record(index) ? { index, key: match[0] } : null;
      },
      response: (_index, number) => AGENT_RESPONSES[number] ?? { durationMs: 1000, transcript: "Okay." },
      callerTranscript: (_index, turn) => CALLER_TRANSCRIPTS[turn] ?? "Mm-hm.",
      agentFrame: (index, counter) => makeFrame(index, counter, true, true, agentFrameMs),
    },
    observer: {
      configured: (session) => {
        const rec = session.call ? record(session.call.index) : undefined;
        if (rec && !countedSessions.has(session)) {
          countedSessions.add(session);
          rec.modelSessions++;
        }
      },
      append: (session, payload, t) => {
        const sent = upInFlight.get(payload);
        // Caller frames carry their call's number, whatever session they arrive on.
        const rec = record(Buffer.from(payload.slice(0, 4), "base64").readUInt16BE(0));
        if (sent === undefined || !rec) return void stray.appends++;
        upInFlight.delete(payload);
        rec.up.push(t - sent);
        rec.upSentAt.push(sent);
        rec.framesRelayed++;
        if (session.call && session.call.index !== rec.index) problem(rec, "caller audio appended to another call's model session");
      },
      deltaSent: (session, payload, t, responseNumber, first) => {
        const rec = session.call ? record(session.call.index) : undefined;
        downInFlight.set(payload, { t, relayed: rec?.engine !== "openai-live" || first });
        if (!rec) return;
        rec.agentFramesSent++;
        if (first && responseNumber === 0) rec.firstDeltaAt = t;
      },
      responseCreateReceived: (session, t, number) => {
        const rec = session.call ? record(session.call.index) : undefined;
        if (rec && number === 0) rec.greetingCreateAt = t;
      },
      speechStarted: (session, t) => {
        const rec = session.call ? record(session.call.index) : undefined;
        // A barge-in is the caller speaking while agent audio is still playing at Twilio.
        if (rec) rec.speechStarts.push({ t, interrupting: rec.twilio !== null && rec.twilio.playhead > t, clearAt: null });
      },
      truncated: (session, truncate) => {
        const rec = session.call ? record(session.call.index) : undefined;
        rec?.truncates.push({ audioEndMs: truncate.audioEndMs, sentMs: truncate.sentMs });
      },
      problem: (session, text) => problem(session?.call ? record(session.call.index) : undefined, `openai: ${text}`),
      event: (session, label, t) => {
        if (session.call) record(session.call.index)?.timeline.push([t, label]);
      },
    },
  });
  onCleanup(() => openai.close());
  log(`fake Twilio on 127.0.0.1:${twilio.port}, fake OpenAI on 127.0.0.1:${openai.port}`);

  const target =
    options.target === "reference"
      ? await referenceTarget({ twilioPort: twilio.port, openaiPort: openai.port, onCleanup, log })
      : options.target === "floor"
        ? await floorTarget({ root, benchDir, runDir, twilioPort: twilio.port, openaiPort: openai.port, onCleanup, onExitKill, log })
        : await workerTarget({ root, runDir, options, twilioPort: twilio.port, openaiPort: openai.port, runId, seconds, onCleanup, onExitKill, log });
  /** `--direct`: the fake Twilio connects straight to the Worker's own workerd, skipping wrangler's dev proxy. */
  const routeAroundDevProxy = async () => {
    if (!options.direct || !target.innerBaseUrl || !target.publicBaseUrl) return;
    // Looked up every round: a reload of the Worker moves it to another port.
    const inner = await target.innerBaseUrl();
    const outer = target.publicBaseUrl;
    connectTo = (url) => url.replace(outer, inner).replace(outer.replace(/^http/, "ws"), inner.replace(/^http/, "ws"));
    log(`--direct: Twilio connects to the Worker's own workerd at ${inner}, skipping wrangler's dev proxy`);
  };

  let nextIndex = 0;
  const results = [];
  for (const { n, engine, recording } of rounds.flatMap((calls) => engines.flatMap((name) => recordModes.map((mode) => ({ n: calls, engine: name, recording: mode }))))) {
    log(`round: ${n} concurrent call(s) of ${seconds} s on ${engine}, recording ${recording ? "on" : "off"}`);
    /** @type {CallRecord[]} */
    const round = [];
    for (let i = 0; i < n; i++) {
      const index = nextIndex++;
      const phone = `+1415555${String(2000 + index).padStart(4, "0")}`;
      /** @type {CallRecord} */
      const rec = {
        index,
        key: `${runId}-${index}`,
        phone,
        recording,
        engine,
        notificationId: null,
        createError: null,
        twilio: null,
        startSentAt: null,
        greetingCreateAt: null,
        firstDeltaAt: null,
        firstAgentMediaAt: null,
        framesSent: 0,
        framesRelayed: 0,
        up: [],
        upSentAt: [],
        down: [],
        downSentAt: [],
        paced: [],
        timeline: [],
        agentFramesSent: 0,
        speechStarts: [],
        unmatchedClears: 0,
        truncates: [],
        modelSessions: 0,
        problems: [],
        notification: null,
      };
      records.set(index, rec);
      indexByPhone.set(phone, index);
      round.push(rec);
    }
    await target.prepare(round);
    await waitForQuietMachine({
      maxCores: Number(options["quiet-cores"] ?? 0.25),
      timeoutMs: Number(options["quiet-timeout"] ?? 600) * 1000,
      ownSeconds: () => {
        const own = process.cpuUsage();
        const dev = target.cpu();
        return (own.user + own.system) / 1e6 + (dev ? dev.workerd + dev.other : 0);
      },
      log,
    });
    const reloadsBefore = target.reloads();
    await routeAroundDevProxy();

    const loopDelay = monitorEventLoopDelay({ resolution: 1 });
    loopDelay.enable();
    const cpuBefore = target.cpu();
    const benchCpuBefore = process.cpuUsage();
    const machineBefore = machineCpu();
    const startedAt = performance.now();
    // workerd CPU second by second: set-up, media and finalization cost apart.
    /** @type {[number, number, number][]} */
    const cpuTimeline = [];
    let lastCpu = cpuBefore;
    const cpuSampler = setInterval(() => {
      const now = target.cpu();
      if (now && lastCpu) cpuTimeline.push([Math.round((performance.now() - startedAt) / 100) / 10, now.workerd - now.proxy - (lastCpu.workerd - lastCpu.proxy), now.proxy - lastCpu.proxy]);
      lastCpu = now;
    }, 1000);
    await Promise.all(round.map((rec) => target.place(rec)));
    const placed = round.filter((rec) => rec.notificationId);
    log(`${placed.length}/${n} notification(s) created in ${fmt(performance.now() - startedAt, 0)} ms`);

    // Wait for the calls to end on the line, then for each notification to reach its final state.
    if (!(await waitUntil(() => placed.every((rec) => rec.twilio?.endedAt != null), mediaDurationMs + 60_000, 250))) {
      log(`${placed.filter((rec) => rec.twilio?.endedAt == null).length} call(s) never ended on the fake Twilio`);
    }
    await twilio.settled();
    await target.finish(placed);
    clearInterval(cpuSampler);
    const cpuAfter = target.cpu();
    const benchCpu = process.cpuUsage(benchCpuBefore);
    const roundSeconds = (performance.now() - startedAt) / 1000;
    const machineAfter = machineCpu();
    const machineBusy = machineAfter.busy - machineBefore.busy;
    const ioWait = machineAfter.iowait - machineBefore.iowait;
    loopDelay.disable();

    if (options.samples) writeSamples(join(runDir, `samples-${n}-${engine}${recording ? "-recording" : ""}.json`), round, cpuTimeline);
    const result = summarizeRound({ target: target.name + (options.direct ? ", --direct" : "") + (options.tmpfs ? ", --tmpfs" : ""), n, engine, recording, seconds, modelLatencyMs, round, cpuBefore, cpuAfter, cpuTimeline, benchCpu, machineBusy, ioWait, roundSeconds, loopDelay, stray, reloads: target.reloads() - reloadsBefore });
    results.push(result);
    console.log(`\n${result.markdown}\n`);
    stray.appends = 0;
    stray.agentMedia = 0;
    stray.problems = [];
    upInFlight.clear();
    downInFlight.clear();
    await sleep(2000);
  }

  const recordingComparison = compareRecording(results);
  if (recordingComparison) console.log(`\n${recordingComparison.markdown}\n`);
  const passed = results.every((result) => result.passed);
  const output = {
    suite: "calls",
    target: target.name + (options.direct ? ", --direct" : ""),
    generated_at: new Date().toISOString(),
    machine: { cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model ?? null, node: process.versions.node, platform: `${os.platform()} ${os.release()}` },
    config: { engines, call_seconds: seconds, model_latency_ms: modelLatencyMs, agent_audio_speed: agentSpeed, agent_delta_ms: agentFrameMs, script_jitter_ms: jitterMs, frame_ms: FRAME_MS, caller_speech_ms: CALLER_SPEECH, agent_responses_ms: AGENT_RESPONSES.map((response) => response.durationMs), targets: TARGETS },
    rounds: results.map(({ markdown: _markdown, ...rest }) => rest),
    recording_comparison: recordingComparison?.rows ?? null,
    passed,
  };
  mkdirSync(join(benchDir, "results"), { recursive: true });
  // calls.json is the default run; any other setting gets its own file (calls-direct-n50.json, …).
  const variant = [
    options.target === "reference" || options.target === "floor" ? options.target : "",
    options.direct ? "direct" : "",
    options.tmpfs ? "tmpfs" : "",
    options.calls ? `n${rounds.join("-")}` : "",
    options.record ? `record-${options.record}` : "",
    options.engine ? `engine-${options.engine}` : "",
    ...["seconds", "model-latency", "agent-speed", "agent-frame-ms", "jitter"].map((name) => (options[name] ? `${name}${options[name]}` : "")),
  ].filter(Boolean);
  const file = `calls${variant.map((part) => `-${part}`).join("")}.json`;
  writeFileSync(join(benchDir, "results", file), JSON.stringify(output, null, 2) + "\n");
  log(`results written to bench/results/${file} — ${passed ? "all targets met" : "some targets missed"}`);
  return { passed };
}

/**
 * Recording on against off, round by round of the same size: relay latency (all frames and steady
 * state) and workerd CPU per call-minute, with the CPU ratio (target: at most 1.10).
 * @param {ReturnType<typeof summarizeRound>[]} results
 */
function compareRecording(results) {
  const pairs = results.flatMap((off) => {
    const on = off.recording ? undefined : results.find((other) => other.recording && other.calls === off.calls && other.engine === off.engine);
    return on ? [{ off, on }] : [];
  });
  if (pairs.length === 0) return null;
  const ratio = (/** @type {number | null} */ on, /** @type {number | null} */ off) => (on !== null && off !== null && off > 0 ? on / off : null);
  const rows = pairs.map(({ off, on }) => {
    const workerOnly = (/** @type {typeof off} */ r) => (r.cpu.workerd_seconds !== null && r.cpu.workerd_dev_proxy_seconds !== null && r.cpu.call_minutes > 0 ? (r.cpu.workerd_seconds - r.cpu.workerd_dev_proxy_seconds) / r.cpu.call_minutes : null);
    return {
      calls: off.calls,
      engine: off.engine,
      relay_up_p99_ms: { off: off.relay_twilio_to_model_ms.p99, on: on.relay_twilio_to_model_ms.p99 },
      relay_down_p99_ms: { off: off.relay_model_to_twilio_ms.p99, on: on.relay_model_to_twilio_ms.p99 },
      mid_call_relay_up_p99_ms: { off: off.mid_call_relay_twilio_to_model_ms.p99, on: on.mid_call_relay_twilio_to_model_ms.p99 },
      mid_call_relay_down_p99_ms: { off: off.mid_call_relay_model_to_twilio_ms.p99, on: on.mid_call_relay_model_to_twilio_ms.p99 },
      workerd_cpu_per_call_minute: { off: off.cpu.workerd_seconds_per_call_minute, on: on.cpu.workerd_seconds_per_call_minute, ratio: ratio(on.cpu.workerd_seconds_per_call_minute, off.cpu.workerd_seconds_per_call_minute) },
      worker_cpu_per_call_minute: { off: workerOnly(off), on: workerOnly(on), ratio: ratio(workerOnly(on), workerOnly(off)) },
      // The dev proxy does the same work with recording on or off: its ratio is the drift of the machine between the rounds.
      dev_proxy_cpu_ratio: ratio(on.cpu.workerd_dev_proxy_seconds, off.cpu.workerd_dev_proxy_seconds),
      recordings_stored: on.recordings_stored,
    };
  });
  const pair = (/** @type {{ off: number | null; on: number | null }} */ value) => `${fmt(value.off)} / ${fmt(value.on)}`;
  const table = markdownTable(
    ["calls", "engine", "relay up p99 off / on (ms)", "relay down p99 off / on (ms)", "mid-call up; down p99 off / on (ms)", "workerd CPU s per call-min off / on", "ratio", "Worker's own (no dev proxy) off / on", "ratio", "dev proxy ratio (control)", "recordings stored"],
    rows.map((row) => [
      row.calls,
      row.engine,
      pair(row.relay_up_p99_ms),
      pair(row.relay_down_p99_ms),
      `${pair(row.mid_call_relay_up_p99_ms)}; ${pair(row.mid_call_relay_down_p99_ms)}`,
      pair(row.workerd_cpu_per_call_minute),
      fmt(row.workerd_cpu_per_call_minute.ratio, 2),
      pair(row.worker_cpu_per_call_minute),
      fmt(row.worker_cpu_per_call_minute.ratio, 2),
      fmt(row.dev_proxy_cpu_ratio, 2),
      `${row.recordings_stored} of ${row.calls}`,
    ]),
  );
  return { rows, markdown: `## Recording off / on (target: CPU ratio ≤ ${TARGETS.recordingCpuRatio}, relay p99 within noise)\n\n${table}` };
}

/**
 * @param {{ target: string; n: number; engine: string; recording: boolean; seconds: number; modelLatencyMs: number; round: CallRecord[]; cpuBefore: CpuSample | null; cpuAfter: CpuSample | null; cpuTimeline: [number, number, number][]; benchCpu: NodeJS.CpuUsage; machineBusy: number; ioWait: number; roundSeconds: number; reloads: number; loopDelay: import("node:perf_hooks").IntervalHistogram; stray: { appends: number; agentMedia: number; problems: string[] } }} input
 */
function summarizeRound({ target, n, engine, recording, seconds, modelLatencyMs, round, cpuBefore, cpuAfter, cpuTimeline, benchCpu, machineBusy, ioWait, roundSeconds, reloads, loopDelay, stray }) {
  const up = summarize(round.flatMap((rec) => rec.up));
  const down = summarize(round.flatMap((rec) => rec.down));
  // The first seconds of a call carry its set-up (status callbacks, the stream's start): apart.
  const steadyFrom = (/** @type {CallRecord} */ rec) => (rec.startSentAt ?? 0) + STEADY_AFTER_MS;
  const upSteady = summarize(round.flatMap((rec) => rec.up.filter((_, i) => rec.upSentAt[i] >= steadyFrom(rec))));
  const downSteady = summarize(round.flatMap((rec) => rec.down.filter((_, i) => rec.downSentAt[i] >= steadyFrom(rec))));
  const midCall = (/** @type {CallRecord} */ rec, /** @type {number} */ sentAt) => sentAt >= steadyFrom(rec) && sentAt < (rec.startSentAt ?? 0) + seconds * 1000 - MID_CALL_BEFORE_END_MS;
  const upMidCall = summarize(round.flatMap((rec) => rec.up.filter((_, i) => midCall(rec, rec.upSentAt[i]))));
  const downMidCall = summarize(round.flatMap((rec) => rec.down.filter((_, i) => midCall(rec, rec.downSentAt[i]))));
  /** How long our server took to answer each status callback (its round trip from the fake Twilio). */
  const callbackMs = summarize(
    round.flatMap((rec) =>
      rec.timeline.flatMap(([t, label], i) => {
        const sent = /^twilio→ status (\S+)$/.exec(label);
        if (!sent) return [];
        const answer = rec.timeline.slice(i + 1).find(([, other]) => other.startsWith(`twilio← status ${sent[1]} answered`));
        return answer ? [answer[0] - t] : [];
      }),
    ),
  );
  const bargeIns = round.flatMap((rec) => rec.speechStarts.filter((start) => start.interrupting));
  const bargeIn = summarize(bargeIns.filter((start) => start.clearAt !== null).map((start) => /** @type {number} */ (start.clearAt) - start.t));
  const missingClears = bargeIns.filter((start) => start.clearAt === null).length;
  /** Twilio start → first agent audio at Twilio, minus the time the fake model really took (its latency plus timer slack). */
  const greetings = round
    .filter((rec) => rec.startSentAt !== null && rec.firstAgentMediaAt !== null && rec.greetingCreateAt !== null && rec.firstDeltaAt !== null)
    .map((rec) => {
      const total = /** @type {number} */ (rec.firstAgentMediaAt) - /** @type {number} */ (rec.startSentAt);
      const modelTime = /** @type {number} */ (rec.firstDeltaAt) - /** @type {number} */ (rec.greetingCreateAt);
      return { overhead: total - modelTime, nominal: total - modelLatencyMs, startToCreate: /** @type {number} */ (rec.greetingCreateAt) - /** @type {number} */ (rec.startSentAt) };
    });
  const greeting = summarize(greetings.map((g) => g.overhead));
  const greetingNominal = summarize(greetings.map((g) => g.nominal));
  const startToCreate = summarize(greetings.map((g) => g.startToCreate));
  const framesSent = round.reduce((sum, rec) => sum + rec.framesSent, 0);
  const framesRelayed = round.reduce((sum, rec) => sum + rec.framesRelayed, 0);
  const framesLost = framesSent - framesRelayed;
  const agentFramesSent = round.reduce((sum, rec) => sum + rec.agentFramesSent, 0);
  const agentFramesDelivered = round.reduce((sum, rec) => sum + rec.down.length + rec.paced.length, 0);
  const callMinutes = (round.filter((rec) => rec.twilio?.answeredAt != null).length * seconds) / 60;
  const workerdCpuSeconds = cpuAfter && cpuBefore ? cpuAfter.workerd - cpuBefore.workerd : null;
  const proxyCpuSeconds = cpuAfter && cpuBefore ? cpuAfter.proxy - cpuBefore.proxy : null;
  const otherCpuSeconds = cpuAfter && cpuBefore ? cpuAfter.other - cpuBefore.other : null;
  const cpuPerCallMinute = callMinutes > 0 && workerdCpuSeconds !== null ? workerdCpuSeconds / callMinutes : null;
  const harnessCpuSeconds = (benchCpu.user + benchCpu.system) / 1e6;
  // Whatever else ran on the machine meanwhile (other jobs) competes for the same 2 cores.
  const backgroundCores = Math.max(0, machineBusy - harnessCpuSeconds - (workerdCpuSeconds ?? 0) - (otherCpuSeconds ?? 0)) / roundSeconds;
  const statuses = countBy(round.map((rec) => (rec.createError ? `not created (${rec.createError.slice(0, 80)})` : `${rec.notification?.status ?? "?"}/${rec.notification?.ended_reason ?? "-"}`)));
  const withResult = round.filter((rec) => rec.notification?.call_result && typeof rec.notification.call_result === "object").length;
  const recordingsStored = round.filter((rec) => rec.notification?.recording_available === true).length;
  const problems = [...stray.problems, ...round.flatMap((rec) => rec.problems.map((text) => `call ${rec.index}: ${text}`))];
  const truncates = round.flatMap((rec) => rec.truncates);

  // Realtime's onset is its speech_started (sent at the first speech frame); GPT-Live's is the model
  // receiving the first speech frame, which the bridge hears itself.
  const local = engine === "openai-live";
  const bargeInTargetMs = local ? TARGETS.localBargeInMs : TARGETS.bargeInMs;
  const checks = {
    relay_up_p99: up.p99 !== null && up.p99 <= TARGETS.relayP99Ms,
    relay_down_p99: down.p99 !== null && down.p99 <= TARGETS.relayP99Ms,
    barge_in_p99: bargeIn.p99 !== null && bargeIn.p99 <= bargeInTargetMs && missingClears === 0,
    greeting_overhead_p99: greeting.p99 !== null && greeting.p99 <= TARGETS.greetingOverheadMs,
    frames_lost: framesSent > 0 && framesLost === TARGETS.framesLost,
  };
  const verdict = (/** @type {boolean} */ ok) => (ok ? "PASS" : "FAIL");
  const row = (/** @type {string} */ name, /** @type {ReturnType<typeof summarize>} */ s, /** @type {string} */ target, /** @type {boolean} */ ok) => [name, fmt(s.p50), fmt(s.p99), fmt(s.max), s.count, target, verdict(ok)];
  const table = markdownTable(
    ["metric (ms)", "p50", "p99", "max", "samples", "target", "result"],
    [
      row("relay Twilio → model, per frame", up, `p99 ≤ ${TARGETS.relayP99Ms} ms`, checks.relay_up_p99),
      row(local ? "relay model → Twilio, first frame of each response" : "relay model → Twilio, per frame", down, `p99 ≤ ${TARGETS.relayP99Ms} ms`, checks.relay_down_p99),
      row(`barge-in: ${local ? "speech onset → clear (the bridge's detector)" : "speech_started → clear"}${missingClears ? ` (${missingClears} without clear)` : ""}`, bargeIn, `≤ ${bargeInTargetMs} ms`, checks.barge_in_p99),
      row("greeting overhead: start → first agent audio − model time", greeting, `≤ ${TARGETS.greetingOverheadMs} ms`, checks.greeting_overhead_p99),
      ["caller frames lost (sent → appended)", `${framesLost} of ${framesSent}`, "", "", framesSent, "0", verdict(checks.frames_lost)],
      ["workerd CPU per call-minute (s)", fmt(cpuPerCallMinute), "", "", fmt(callMinutes, 2) + " call-min", "—", "info"],
    ],
  );
  const paced = summarize(round.flatMap((rec) => rec.paced));
  const notes = [
    ...(local ? [`pacing: agent frames after a response's first, model → Twilio p50 ${fmt(paced.p50)} / p99 ${fmt(paced.p99)} ms (${paced.count} frames, held to the bridge's 200 ms lead over playback)`] : []),
    `steady state (frames sent ≥ ${STEADY_AFTER_MS / 1000} s after start): Twilio → model p50 ${fmt(upSteady.p50)} / p99 ${fmt(upSteady.p99)} ms, model → Twilio p50 ${fmt(downSteady.p50)} / p99 ${fmt(downSteady.p99)} ms; status callbacks answered in p50 ${fmt(callbackMs.p50, 1)} / p99 ${fmt(callbackMs.p99, 1)} ms`,
    `mid-call (steady state, and ≥ ${MID_CALL_BEFORE_END_MS / 1000} s before the hang-up): Twilio → model p99 ${fmt(upMidCall.p99)} ms, model → Twilio p99 ${fmt(downMidCall.p99)} ms`,
    ...(reloads ? [`INVALID ROUND: wrangler reloaded the Worker ${reloads} time(s) during it (a source file changed), cutting the calls in flight`] : []),
    `greeting with the nominal ${modelLatencyMs} ms model latency subtracted instead: p50 ${fmt(greetingNominal.p50)} / p99 ${fmt(greetingNominal.p99)} ms; Twilio start → greeting response.create: p50 ${fmt(startToCreate.p50)} / p99 ${fmt(startToCreate.p99)} ms`,
    `agent frames: ${agentFramesDelivered} of ${agentFramesSent} reached Twilio (the rest were cut by barge-ins); truncates: ${truncates.length}; stray appends ${stray.appends}, stray agent media ${stray.agentMedia}`,
    `Worker's workerd CPU per second (cores): ${cpuTimeline.map(([, worker]) => fmt(worker, 2)).join(" ") || "—"}`,
    `workerd CPU ${fmt(workerdCpuSeconds, 2)} s (pids ${cpuAfter?.workerdPids.join(", ") || "none"}; ${fmt(proxyCpuSeconds, 2)} s of it in wrangler's dev proxy), other dev-server processes ${fmt(otherCpuSeconds, 2)} s; this harness ${fmt(harnessCpuSeconds, 2)} s, its event-loop delay p99 ${fmt(loopDelay.percentile(99) / 1e6, 2)} ms (max ${fmt(loopDelay.max / 1e6, 2)} ms)`,
    `machine: ${fmt(machineBusy / roundSeconds, 2)} of ${os.cpus().length} cores busy over the round's ${fmt(roundSeconds, 1)} s (and ${fmt(ioWait / roundSeconds, 2)} waiting for the disk), ${fmt(backgroundCores, 2)} of them by processes outside this benchmark${backgroundCores > 0.2 ? " — WARNING: other load on the machine skews these numbers" : ""}`,
    `notifications: ${Object.entries(statuses).map(([status, count]) => `${count} × ${status}`).join(", ")}; call_result present on ${withResult}; recording_available on ${recordingsStored}`,
    ...(problems.length ? [`protocol problems (${problems.length}): ${problems.slice(0, 12).join(" | ")}${problems.length > 12 ? " | …" : ""}`] : []),
  ];
  const markdown = `## ${n} concurrent call${n === 1 ? "" : "s"} × ${seconds} s on ${engine}, recording ${recording ? "on" : "off"} — ${target}\n\n${table}\n\n${notes.map((note) => `- ${note}`).join("\n")}`;
  return {
    target,
    calls: n,
    engine,
    recording,
    relay_twilio_to_model_ms: up,
    relay_model_to_twilio_ms: down,
    paced_model_to_twilio_ms: local ? summarize(round.flatMap((rec) => rec.paced)) : null,
    steady_state_relay_twilio_to_model_ms: upSteady,
    steady_state_relay_model_to_twilio_ms: downSteady,
    mid_call_relay_twilio_to_model_ms: upMidCall,
    mid_call_relay_model_to_twilio_ms: downMidCall,
    status_callback_round_trip_ms: callbackMs,
    barge_in_ms: { ...bargeIn, missing_clears: missingClears },
    greeting_overhead_ms: greeting,
    greeting_overhead_nominal_ms: greetingNominal,
    start_to_greeting_request_ms: startToCreate,
    caller_frames: { sent: framesSent, relayed: framesRelayed, lost: framesLost },
    agent_frames: { sent: agentFramesSent, delivered: agentFramesDelivered },
    truncates: truncates.length,
    cpu: {
      workerd_seconds: workerdCpuSeconds,
      workerd_dev_proxy_seconds: proxyCpuSeconds,
      other_dev_server_seconds: otherCpuSeconds,
      call_minutes: callMinutes,
      workerd_seconds_per_call_minute: cpuPerCallMinute,
      harness_seconds: harnessCpuSeconds,
      round_seconds: roundSeconds,
      worker_cores_by_second: cpuTimeline.map(([, worker]) => worker),
      dev_proxy_cores_by_second: cpuTimeline.map(([, , proxy]) => proxy),
      machine_busy_cores: machineBusy / roundSeconds,
      machine_iowait_cores: ioWait / roundSeconds,
      background_cores: backgroundCores,
    },
    harness_event_loop_delay_ms: { p99: loopDelay.percentile(99) / 1e6, max: loopDelay.max / 1e6 },
    notifications: statuses,
    call_results: withResult,
    recordings_stored: recordingsStored,
    problems,
    wrangler_reloads: reloads,
    checks,
    passed: reloads === 0 && Object.values(checks).every(Boolean),
    markdown,
  };
}

/**
 * How calls are placed: through our Worker under `npm run dev` (the benchmark), or through the
 * in-process reference bridge (the harness's own floor, `--target=reference`).
 * @typedef {object} CallTarget
 * @property {string} name
 * @property {(round: CallRecord[]) => Promise<void>} prepare
 * @property {(rec: CallRecord) => Promise<void>} place sets notificationId, or createError
 * @property {(placed: CallRecord[]) => Promise<void>} finish waits for the final states
 * @property {() => CpuSample | null} cpu
 * @property {() => number} reloads times the Worker was reloaded so far
 * @property {string} [publicBaseUrl] PUBLIC_BASE_URL
 * @property {() => Promise<string>} [innerBaseUrl] the Worker's own workerd, behind wrangler's dev proxy
 *
 * @typedef {{ workerd: number; proxy: number; other: number; workerdPids: number[] }} CpuSample
 */

/**
 * @param {{ root: string; runDir: string; options: Record<string, string>; twilioPort: number; openaiPort: number; runId: string; seconds: number; onCleanup: (cleanup: () => Promise<void> | void) => void; onExitKill: (kill: () => void) => void; log: (line: string) => void }} input
 * @returns {Promise<CallTarget>}
 */
async function workerTarget({ root, runDir, options, twilioPort, openaiPort, runId, seconds, onCleanup, onExitKill, log }) {
  const dev = await startDevServer({
    root,
    runDir,
    // --tmpfs: the local D1 database and Durable Object storage in memory, to tell disk waits apart.
    persistDir: options.tmpfs ? join("/dev/shm", `echo-bench-${runId}`) : undefined,
    log,
    vars: {
      TWILIO_ACCOUNT_SID: ACCOUNT_SID,
      TWILIO_AUTH_TOKEN: AUTH_TOKEN,
      TWILIO_FROM_NUMBER: FROM_NUMBER,
      TWILIO_API_BASE_URL: `http://127.0.0.1:${twilioPort}`,
      OPENAI_API_KEY: OPENAI_KEY,
      OPENAI_BASE_URL: `http://127.0.0.1:${openaiPort}/v1`,
      OPENAI_REALTIME_MODEL: REALTIME_MODEL,
      PUBLIC_BASE_URL: "http://127.0.0.1:{PORT}",
      // This suite measures the relay of concurrent calls, not the API's limits and pacing: lift them.
      RATE_LIMIT_API_KEY: "1000000/10s",
      RATE_LIMIT_NOTIFICATIONS: "1000000/10s",
      TWILIO_CPS: "1000",
    },
    onCleanup,
    onExitKill,
  });
  log(`npm run dev ready at ${dev.baseUrl}`);

  // One account and agent; customers per round.
  const signup = await dev.api("POST", "/auth/signup", {
    body: { email: `bench-${runId}@example.com`, password: "bench-password-1", first_name: "Bench", last_name: "Mark", business_name: "Acme Clinic", business_summary: "A dental clinic", industry: "Healthcare" },
  });
  if (signup.status !== 201) throw new Error(`signup: ${signup.status} ${JSON.stringify(signup.body)}`);
  const key = signup.body.default_project.api_key;
  const agentBody = {
    name: "Appointment confirmation",
    system_prompt: "You are calling {{recipient_first_name}} on behalf of {{business_name}} to confirm an appointment. Keep it short. [bench call {{bench_call}}]",
    output_schema: {
      type: "object",
      required: ["confirmed"],
      properties: { confirmed: { type: "boolean", description: "Whether the appointment is confirmed" }, reschedule_request: { type: "string", description: "A preferred new time, if any" } },
    },
  };
  /** The same agent on each engine, recording its calls or not. */
  /** @type {Map<string, string>} */
  const agentIds = new Map();
  for (const engine of ENGINE_MODES.both) {
    for (const record of [false, true]) {
      const agent = await dev.api("POST", "/api/v1/agents", { key, body: { ...agentBody, record, engine } });
      if (agent.status !== 201) throw new Error(`agent: ${agent.status} ${JSON.stringify(agent.body)}`);
      agentIds.set(`${engine}/${record}`, agent.body.id);
    }
  }
  const project = await dev.api("PATCH", `/api/v1/projects/${signup.body.default_project.id}`, { key, body: { max_concurrent_calls: 1000 } });
  if (project.status !== 200) throw new Error(`project: ${project.status} ${JSON.stringify(project.body)}`);
  /** @type {Map<number, string>} */
  const customerIds = new Map();
  const finalStatuses = new Set(["completed", "failed", "canceled"]);

  return {
    name: "worker (npm run dev)",
    async prepare(round) {
      await inBatches(round, 10, async (rec) => {
        const customer = await dev.api("POST", "/api/v1/customers", { key, body: { external_id: `bench-${rec.key}`, first_name: `Caller${rec.index}`, last_name: "Bench", phone: rec.phone } });
        if (customer.status !== 201) throw new Error(`customer: ${customer.status} ${JSON.stringify(customer.body)}`);
        customerIds.set(rec.index, customer.body.id);
      });
    },
    async place(rec) {
      const created = await dev.api("POST", "/api/v1/notifications", {
        key,
        body: { customer_id: customerIds.get(rec.index), agent_id: agentIds.get(`${rec.engine}/${rec.recording}`), variables: { bench_call: rec.key }, max_duration_seconds: Math.max(60, seconds * 3), ignore_calling_hours: true },
      });
      if (created.status === 201) rec.notificationId = created.body.notification.id;
      else rec.createError = `${created.status} ${JSON.stringify(created.body)}`;
    },
    async finish(placed) {
      const final = await waitUntil(
        async () => {
          await inBatches(
            placed.filter((rec) => !finalStatuses.has(rec.notification?.status)),
            10,
            async (rec) => (rec.notification = (await dev.api("GET", `/api/v1/notifications/${rec.notificationId}`, { key })).body),
          );
          return placed.every((rec) => finalStatuses.has(rec.notification?.status));
        },
        90_000,
        1000,
      ).catch(() => false); // a failed status request ends the wait, as a timeout does
      if (!final) log("some notifications did not reach a final state within 90 s");
    },
    cpu: () => dev.cpu(),
    reloads: () => dev.reloads,
    publicBaseUrl: dev.baseUrl,
    innerBaseUrl: async () => `http://127.0.0.1:${await dev.innerPort()}`,
  };
}

/**
 * @param {{ twilioPort: number; openaiPort: number; onCleanup: (cleanup: () => Promise<void> | void) => void; log: (line: string) => void }} input
 * @returns {Promise<CallTarget>}
 */
async function referenceTarget({ twilioPort, openaiPort, onCleanup, log }) {
  const bridge = await startReferenceBridge({
    twilioBaseUrl: `http://127.0.0.1:${twilioPort}`,
    accountSid: ACCOUNT_SID,
    authToken: AUTH_TOKEN,
    fromNumber: FROM_NUMBER,
    openaiBaseUrl: `http://127.0.0.1:${openaiPort}/v1`,
    openaiKey: OPENAI_KEY,
    model: REALTIME_MODEL,
  });
  onCleanup(() => bridge.close());
  log(`reference bridge (in this process) on 127.0.0.1:${bridge.port}`);
  return {
    name: "reference bridge (harness floor)",
    async prepare() {},
    async place(rec) {
      try {
        rec.notificationId = await bridge.place({ to: rec.phone, instructions: `Confirm the appointment. [bench call ${rec.key}]` });
      } catch (error) {
        rec.createError = String(error);
      }
    },
    async finish() {},
    cpu: () => null,
    reloads: () => 0,
  };
}

/**
 * @param {{ root: string; benchDir: string; runDir: string; twilioPort: number; openaiPort: number; onCleanup: (cleanup: () => Promise<void> | void) => void; onExitKill: (kill: () => void) => void; log: (line: string) => void }} input
 * @returns {Promise<CallTarget>}
 */
async function floorTarget({ root, benchDir, runDir, twilioPort, openaiPort, onCleanup, onExitKill, log }) {
  const dev = await startDevServer({
    root,
    runDir,
    config: join(benchDir, "floor", "wrangler.toml"),
    expectName: "echo-bench-floor",
    log,
    vars: { OPENAI_API_KEY: OPENAI_KEY, OPENAI_BASE_URL: `http://127.0.0.1:${openaiPort}/v1` },
    onCleanup,
    onExitKill,
  });
  log(`floor Worker ready at ${dev.baseUrl}`);
  const wsBase = dev.baseUrl.replace(/^http/, "ws");
  return {
    name: "floor Worker (wrangler dev, minimal relay)",
    async prepare() {},
    async place(rec) {
      try {
        await placeStreamCall({
          baseUrl: `http://127.0.0.1:${twilioPort}`,
          accountSid: ACCOUNT_SID,
          authToken: AUTH_TOKEN,
          from: FROM_NUMBER,
          to: rec.phone,
          streamUrl: `${wsBase}/twilio/media/${rec.key}`,
          statusCallback: `${dev.baseUrl}/twilio/status/${rec.key}`,
        });
        rec.notificationId = rec.key;
      } catch (error) {
        rec.createError = String(error);
      }
    },
    async finish() {},
    cpu: () => dev.cpu(),
    reloads: () => dev.reloads,
    publicBaseUrl: dev.baseUrl,
    innerBaseUrl: async () => `http://127.0.0.1:${await dev.innerPort()}`,
  };
}

/** Raw per-frame latencies and each call's protocol timeline, in ms from its Twilio `start`. */
function writeSamples(/** @type {string} */ path, /** @type {CallRecord[]} */ round, /** @type {[number, number, number][]} */ cpuTimeline) {
  const rel = (/** @type {number} */ t, /** @type {number | null} */ origin) => Math.round((t - (origin ?? 0)) * 1000) / 1000;
  const calls = round.map((rec) => ({
    index: rec.index,
    up: rec.up.map((latency, i) => [rel(rec.upSentAt[i], rec.startSentAt), Math.round(latency * 1000) / 1000]),
    down: rec.down.map((latency, i) => [rel(rec.downSentAt[i], rec.startSentAt), Math.round(latency * 1000) / 1000]),
    timeline: rec.timeline.sort((a, b) => a[0] - b[0]).map(([t, label]) => [rel(t, rec.startSentAt), label]),
  }));
  // cpu: [seconds since the notifications were posted, Worker's workerd CPU s, dev proxy's CPU s] per second.
  writeFileSync(path, JSON.stringify({ cpu: cpuTimeline, calls }));
}

/** @template T @param {T[]} items @param {number} size @param {(item: T) => Promise<unknown>} task */
async function inBatches(items, size, task) {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(task));
}

/** @param {string[]} values */
function countBy(values) {
  /** @type {Record<string, number>} */
  const counts = {};
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1;
  return counts;
}
