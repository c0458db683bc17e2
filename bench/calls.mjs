// @ts-check
// The live-call benchmark: N concurrent 20-second calls through `npm run dev` and, interleaved in
// the same invocation, through the floor Worker (bench/floor), with Twilio and OpenAI faked in
// their own worker threads (one monotonic clock for both ends of every relay: lib/clock.mjs).
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { placeStreamCall } from "./lib/place-call.mjs";
import { FRAME_MS } from "./lib/audio.mjs";
import { AGENT_RESPONSES, CALLER_SPEECH, phoneFor } from "./lib/call-script.mjs";
import { now } from "./lib/clock.mjs";
import { startDevServer } from "./lib/dev-server.mjs";
import { startFakeThread } from "./lib/fake-threads.mjs";
import { machineCpu, waitForQuietMachine } from "./lib/proc.mjs";
import { profileSummary, startProfile } from "./lib/profile.mjs";
import { startReferenceBridge } from "./lib/reference-bridge.mjs";
import { fmt, markdownTable, summarize } from "./lib/stats.mjs";
import { sleep, waitUntil } from "./lib/wait.mjs";

export const description = "N concurrent live calls (Twilio Media Streams ⇄ a Durable Object ⇄ OpenAI Realtime or GPT-Live): ours and the floor Worker, interleaved and repeated — relay latency, barge-in, greeting, frames lost, CPU, status callbacks, and the ratios ours / floor";

const ACCOUNT_SID = "AC" + "0b".repeat(16);
const AUTH_TOKEN = "bench-twilio-auth-token-0123456789";
const FROM_NUMBER = "+14155550000";
const OPENAI_KEY = "sk-bench-openai-key";
const REALTIME_MODEL = "gpt-realtime";

/**
 * Absolute targets of each round. `localBargeInMs`: GPT-Live says nothing when the caller starts,
 * so the bridge's own detector hears it, on the second loud frame (40 ms of speech): one 20 ms
 * frame after the onset, plus the relay.
 */
const TARGETS = { relayP99Ms: 1, bargeInMs: 2, localBargeInMs: 25, greetingOverheadMs: 20, framesLost: 0, recordingCpuRatio: 1.1 };
/** Issue 13's targets: ours ÷ the floor measured beside it (at 10 and 50 calls; 1 call is shown, not judged). */
const FLOOR_RATIOS = { relayP99: 1.25, bargeInP99: 1.5, cpuPerCallMinute: 1.2, statusCallbackP50: 2 };
/** A fake whose event-loop delay p99 is above this share of the relay p99 it measured may have set that p99 itself. */
const HARNESS_LOOP_SHARE_WARNING = 0.25;
/** `--engine`: the voice engines each round runs on, one after the other (the agent's `engine`). */
const ENGINE_MODES = /** @type {Record<string, string[]>} */ ({ "openai-realtime": ["openai-realtime"], "openai-live": ["openai-live"], both: ["openai-realtime", "openai-live"] });
/** `--record`: which of our rounds run with an agent that records its calls. */
const RECORD_MODES = /** @type {Record<string, boolean[]>} */ ({ off: [false], on: [true], both: [false, true] });
/** Frames sent this long after the stream's start count as steady state (set-up is over). */
const STEADY_AFTER_MS = 3000;
/** Mid-call: steady state, and this long before the caller hangs up (a call's end writes its recording). */
const MID_CALL_BEFORE_END_MS = 1000;

/**
 * One call of a round, put together at the round's end from what both fakes saw.
 * @typedef {object} CallRecord
 * @property {number} index
 * @property {string} key
 * @property {string} phone
 * @property {boolean} recording placed with an agent that records its calls
 * @property {string} engine the voice engine of the call's agent
 * @property {string | null} notificationId
 * @property {string | null} createError
 * @property {{ answeredAt: number | null; endedAt: number | null } | null} twilio
 * @property {number | null} placedAfterMs when its placing (ours: the API's answer) was done, ms from the round's start
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
 * @property {[string, number][]} callbacks status callbacks: the status, and sent → our answer in ms
 * @property {[number, string][]} timeline protocol events other than audio, for `--samples`
 * @property {number} agentFramesSent
 * @property {{ t: number; interrupting: boolean; clearAt: number | null }[]} speechStarts
 * @property {number} unmatchedClears
 * @property {{ audioEndMs: number; sentMs: number }[]} truncates
 * @property {number} modelSessions
 * @property {string[]} problems
 * @property {any} notification the final state from the API
 */

/**
 * @typedef {{ p50: number; p99: number; max: number; utilization?: number }} LoopDelay event-loop delay, ms
 * @typedef {{ target: "ours" | "floor" | "reference"; direct: boolean; n: number; engine: string; recording: boolean; repeat: number; warmup: boolean }} RoundPlan
 */

/** @param {import("./run.mjs").SuiteContext} context */
export async function run({ root, benchDir, options, onCleanup, onExitKill, log }) {
  const sizes = (options.calls ?? "1,10,50").split(",").map(Number).filter((n) => n > 0);
  const seconds = Number(options.seconds ?? 20);
  const modelLatencyMs = Number(options["model-latency"] ?? 300);
  const agentSpeed = Number(options["agent-speed"] ?? 2);
  const agentFrameMs = Number(options["agent-frame-ms"] ?? FRAME_MS);
  const jitterMs = Number(options.jitter ?? 0);
  const repeats = Math.max(1, Number(options.rounds ?? 2));
  const mediaDurationMs = seconds * 1000;
  const direct = Boolean(options.direct);
  // --target: both (ours and the floor, interleaved; default), ours, floor, or reference (the Node relay).
  const targetMode = options.target ?? "both";
  if (!["both", "ours", "floor", "reference"].includes(targetMode)) throw new Error(`--target is both, ours, floor or reference, not ${targetMode}`);
  const recordModes = RECORD_MODES[options.record ?? "off"];
  if (!recordModes) throw new Error(`--record is off, on or both, not ${options.record}`);
  // The reference relay speaks the Realtime protocol only.
  const engines = targetMode === "reference" ? ["openai-realtime"] : ENGINE_MODES[options.engine ?? "both"];
  if (!engines) throw new Error(`--engine is openai-realtime, openai-live or both, not ${options.engine}`);
  // One extra round per N of the floor with Twilio connected to its own workerd (skipping wrangler's
  // dev proxy), on the first engine: how much of the floor is the dev proxy. With --direct every round is direct already.
  const floorDirect = !direct && targetMode !== "reference" && targetMode !== "ours" && (options["floor-direct"] ?? "on") !== "off";
  // How the floor's calls arrive. "ours" (default): placed at the moments ours' latest round of the
  // same N placed its calls — ours' go through the API and are dialled one by one over a second or
  // two, the floor's would otherwise all start within a few ms, so that every call's set-up and end
  // fell outside the other calls' audio. "together": all at once (the floor's own pace).
  const floorArrivals = options["floor-arrivals"] ?? "ours";
  if (floorArrivals !== "ours" && floorArrivals !== "together") throw new Error(`--floor-arrivals is ours or together, not ${floorArrivals}`);
  // --floor-trigger=minimal: the floor's calls are placed through the minimal route's work in the
  // floor's own Worker (bench/floor/worker.mjs `POST /trigger`), all at once as ours' through its API,
  // so that its status callbacks and frames share the thread with triggers as ours' do. Not the
  // issue's floor: it tells how much of a gap is the least a trigger costs.
  const floorTriggerMode = options["floor-trigger"] ?? "off";
  if (floorTriggerMode !== "off" && floorTriggerMode !== "minimal") throw new Error(`--floor-trigger is off or minimal, not ${floorTriggerMode}`);
  const floorTrigger = floorTriggerMode === "minimal";
  // --floor-durable: the floor also stores a record per call and deletes its object's storage at the end.
  const floorDurable = Boolean(options["floor-durable"]);

  /** @type {RoundPlan[]} */
  const plan = [];
  /** The rounds of every target, in turn, for `n` calls on `engine` (`repeat`). @param {number} n @param {string} engine @param {number} repeat @param {boolean} warmup */
  const roundsOfEachTarget = (n, engine, repeat, warmup) => {
    if (targetMode === "reference") plan.push({ target: "reference", direct: false, n, engine, recording: false, repeat, warmup });
    if (targetMode === "both" || targetMode === "ours") for (const recording of recordModes) plan.push({ target: "ours", direct, n, engine, recording, repeat, warmup });
    if (targetMode === "both" || targetMode === "floor") plan.push({ target: "floor", direct, n, engine, recording: false, repeat, warmup });
  };
  // --warmup=on (default): one uncounted round of each target and engine first, at the smallest N
  // of 10 or more (or the largest asked), so that no counted round is a target's first — when its
  // isolate compiles the call path and V8 has not optimised it yet (a first 10-call round of ours
  // took ≈ 30 % more CPU a call-minute than its second, the floor's ≈ 5 %).
  if ((options.warmup ?? "on") !== "off") for (const engine of engines) roundsOfEachTarget(sizes.find((n) => n >= 10) ?? Math.max(...sizes), engine, -1, true);
  for (const n of sizes) {
    for (const engine of engines) for (let repeat = 0; repeat < repeats; repeat++) roundsOfEachTarget(n, engine, repeat, false);
    if (floorDirect) plan.push({ target: "floor", direct: true, n, engine: engines[0], recording: false, repeat: 0, warmup: false });
  }
  const roundSeconds = seconds + 7; // placing, finishing, the pause between rounds: a default run took 12 min
  log(`${plan.length} rounds of ${seconds} s calls (about ${Math.round((plan.length * roundSeconds) / 60)} min): ${[...new Set(plan.map((p) => p.target + (p.direct ? " direct" : "")))].join(", ")}; N = ${sizes.join(", ")}; ${engines.join(", ")}; ${repeats} round(s) each`);

  const runId = Date.now().toString(36);
  // Each run has its own directory, so that runs never share a database (or delete each other's).
  const runDir = join(benchDir, ".state", `calls-${runId}`);
  mkdirSync(runDir, { recursive: true });
  log(`run directory: ${runDir}`);

  // The fakes, each in its own worker thread: their per-frame work never waits behind this
  // thread's (API calls, CPU sampling, statistics), nor behind each other's.
  /** @type {Set<number>} */
  const ended = new Set();
  const twilio = await startFakeThread("twilio", {
    runId,
    config: { accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, fromNumber: FROM_NUMBER, mediaDurationMs, jitterMs },
    onEnded: (index) => ended.add(index),
  });
  onCleanup(() => twilio.close());
  const openai = await startFakeThread("openai", {
    runId,
    config: { apiKey: OPENAI_KEY, modelLatencyMs, agentSpeed, agentFrameMs, samples: Boolean(options.samples) },
  });
  onCleanup(() => openai.close());
  log(`fake Twilio on 127.0.0.1:${twilio.port} (thread ${twilio.threadId}), fake OpenAI on 127.0.0.1:${openai.port} (thread ${openai.threadId})`);

  // Both servers start once and stay up for the whole run, so that rounds interleave without restarts.
  /** @type {Partial<Record<RoundPlan["target"], CallTarget>>} */
  const targets = {};
  const targetInput = { root, benchDir, options, twilioPort: twilio.port, openaiPort: openai.port, runId, seconds, onCleanup, onExitKill, log };
  if (plan.some((p) => p.target === "ours")) targets.ours = await workerTarget({ ...targetInput, runDir });
  if (plan.some((p) => p.target === "floor")) targets.floor = await floorTarget({ ...targetInput, runDir: join(runDir, "floor"), durable: floorDurable, trigger: floorTrigger });
  if (plan.some((p) => p.target === "reference")) targets.reference = await referenceTarget(targetInput);
  const allServersCpu = () => Object.values(targets).reduce((sum, target) => {
    const cpu = target?.cpu();
    return sum + (cpu ? cpu.workerd + cpu.other : 0);
  }, 0);

  let nextIndex = 0;
  const results = [];
  /** When ours' latest round of each N placed its calls (ms from the round's start, in order): the floor's arrivals. */
  /** @type {Map<number, number[]>} */
  const oursPlacements = new Map();
  for (const [roundNumber, { target: targetName, direct: roundDirect, n, engine, recording, repeat, warmup }] of plan.entries()) {
    const target = /** @type {CallTarget} */ (targets[targetName]);
    const label = `${targetName}${roundDirect ? " direct" : ""}`;
    log(`round ${roundNumber + 1}/${plan.length}: ${label}, ${n} concurrent call(s) of ${seconds} s on ${engine}${recording ? ", recording on" : ""} (${warmup ? "warm-up, not counted" : `repeat ${repeat + 1}`})`);
    /** @type {CallRecord[]} */
    const round = [];
    for (let i = 0; i < n; i++) {
      const index = nextIndex++;
      round.push({
        index,
        key: `${runId}-${index}`,
        phone: phoneFor(index),
        recording,
        engine,
        notificationId: null,
        createError: null,
        twilio: null,
        placedAfterMs: null,
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
        callbacks: [],
        timeline: [],
        agentFramesSent: 0,
        speechStarts: [],
        unmatchedClears: 0,
        truncates: [],
        modelSessions: 0,
        problems: [],
        notification: null,
      });
    }
    await target.prepare(round);
    await waitForQuietMachine({
      maxCores: Number(options["quiet-cores"] ?? 0.25),
      timeoutMs: Number(options["quiet-timeout"] ?? 600) * 1000,
      ownSeconds: () => {
        const own = process.cpuUsage();
        return (own.user + own.system) / 1e6 + allServersCpu();
      },
      log,
    });
    const reloadsBefore = target.reloads();
    // --direct: the fake Twilio connects straight to the Worker's own workerd, skipping wrangler's
    // dev proxy (looked up every round: a reload of the Worker moves it to another port).
    if (roundDirect && target.innerBaseUrl && target.publicBaseUrl) {
      const inner = await target.innerBaseUrl();
      await twilio.connectTo(target.publicBaseUrl, inner);
      log(`direct: Twilio connects to the Worker's own workerd at ${inner}, skipping wrangler's dev proxy`);
    } else await twilio.connectTo(null, null);

    await Promise.all([twilio.begin(), openai.begin()]);
    const loopDelay = monitorEventLoopDelay({ resolution: 1 });
    loopDelay.enable();
    const cpuBefore = target.cpu();
    const otherServersBefore = allServersCpu() - (cpuBefore ? cpuBefore.workerd + cpuBefore.other : 0);
    const benchCpuBefore = process.cpuUsage();
    const machineBefore = machineCpu();
    const startedAt = now();
    // workerd CPU second by second: set-up, media and finalization cost apart.
    /** @type {[number, number, number][]} */
    const cpuTimeline = [];
    let lastCpu = cpuBefore;
    const cpuSampler = setInterval(() => {
      const sample = target.cpu();
      if (sample && lastCpu) cpuTimeline.push([Math.round((now() - startedAt) / 100) / 10, sample.workerd - sample.proxy - (lastCpu.workerd - lastCpu.proxy), sample.proxy - lastCpu.proxy]);
      lastCpu = sample;
    }, 1000);
    // --profile: the Worker's isolate under the V8 profiler for the whole round.
    const stopProfile = options.profile && !warmup && target.inspectorPort ? await startProfile(root, target.inspectorPort) : null;
    const arrivals = targetName === "floor" && floorArrivals === "ours" && !floorTrigger ? oursPlacements.get(n) : undefined;
    if (arrivals) log(`the floor's calls arrive as ours' did in its latest round of ${n}: placed over ${fmt(arrivals.at(-1) ?? 0, 0)} ms`);
    await Promise.all(
      round.map(async (rec, i) => {
        if (arrivals) await sleep(Math.max(0, startedAt + (arrivals[i] ?? arrivals.at(-1) ?? 0) - now()));
        await target.place(rec);
        rec.placedAfterMs = now() - startedAt;
      }),
    );
    const placed = round.filter((rec) => rec.notificationId);
    log(`${placed.length}/${n} call(s) placed in ${fmt(now() - startedAt, 0)} ms`);
    if (targetName === "ours") oursPlacements.set(n, placed.map((rec) => /** @type {number} */ (rec.placedAfterMs)).sort((a, b) => a - b));

    // Wait for the calls to end on the line, then for each notification to reach its final state.
    if (!(await waitUntil(() => placed.every((rec) => ended.has(rec.index)), mediaDurationMs + 60_000, 250))) {
      log(`${placed.filter((rec) => !ended.has(rec.index)).length} call(s) never ended on the fake Twilio`);
    }
    const cpuAtHangUp = target.cpu();
    await target.finish(placed);
    const [twilioRound, modelRound] = await Promise.all([twilio.end(), openai.end()]);
    clearInterval(cpuSampler);
    if (stopProfile) {
      const profile = await stopProfile();
      const path = join(runDir, `profile-${roundNumber + 1}-${label.replace(" ", "-")}-${n}-${engine}.cpuprofile`);
      writeFileSync(path, JSON.stringify(profile));
      const summary = profileSummary(profile, 25);
      log(`CPU profile: ${fmt(summary.totalMs, 0)} ms of non-idle samples (${path}); by self time:\n${summary.functions.map(([name, micros]) => `  ${fmt(micros / 1000, 1).padStart(8)} ms  ${name}`).join("\n")}`);
    }
    const cpuAfter = target.cpu();
    if (cpuBefore && cpuAtHangUp && cpuAfter) {
      log(`workerd CPU until the last hang-up ${fmt(cpuAtHangUp.workerd - cpuBefore.workerd, 2)} s, after it ${fmt(cpuAfter.workerd - cpuAtHangUp.workerd, 2)} s (the calls' ends, and the final status reads)`);
    }
    const benchCpu = process.cpuUsage(benchCpuBefore);
    const elapsedSeconds = (now() - startedAt) / 1000;
    const machineAfter = machineCpu();
    const otherServersCpu = allServersCpu() - (cpuAfter ? cpuAfter.workerd + cpuAfter.other : 0) - otherServersBefore;
    loopDelay.disable();
    assemble(round, twilioRound.calls, modelRound.calls);
    /** @type {Record<string, LoopDelay>} */
    const harnessLoops = {
      // The histogram holds the interval between the 1 ms sampling timer's runs: the delay is what exceeds the 1 ms.
      main: { p50: Math.max(0, loopDelay.percentile(50) / 1e6 - 1), p99: Math.max(0, loopDelay.percentile(99) / 1e6 - 1), max: Math.max(0, loopDelay.max / 1e6 - 1) },
      twilio: twilioRound.loop,
      openai: modelRound.loop,
    };
    const stray = { frames: twilioRound.stray.frames + modelRound.stray.frames, problems: [...twilioRound.stray.problems, ...modelRound.stray.problems] };

    if (options.samples && !warmup) writeSamples(join(runDir, `samples-${roundNumber + 1}-${label.replace(" ", "-")}-${n}-${engine}${recording ? "-recording" : ""}.json`), round, cpuTimeline);
    const result = summarizeRound({
      target: target.name + (roundDirect ? ", direct" : "") + (options.tmpfs ? ", --tmpfs" : ""),
      targetName,
      direct: roundDirect,
      repeat,
      n,
      engine,
      recording,
      seconds,
      modelLatencyMs,
      round,
      cpuBefore,
      cpuAfter,
      cpuTimeline,
      benchCpu,
      otherServersCpu,
      machineBusy: machineAfter.busy - machineBefore.busy,
      ioWait: machineAfter.iowait - machineBefore.iowait,
      roundSeconds: elapsedSeconds,
      harnessLoops,
      stray,
      reloads: target.reloads() - reloadsBefore,
    });
    if (warmup) log(`warm-up round, not counted: relay p99 ${fmt(result.relay_twilio_to_model_ms.p99)} / ${fmt(result.relay_model_to_twilio_ms.p99)} ms, CPU ${fmt(result.cpu.workerd_seconds_per_call_minute)} s a call-minute, status callback p50 ${fmt(result.status_callback_round_trip_ms.p50)} ms`);
    else {
      results.push(result);
      console.log(`\n${result.markdown}\n`);
    }
    await sleep(2000);
  }

  const recordingComparison = compareRecording(results);
  if (recordingComparison) console.log(`\n${recordingComparison.markdown}\n`);
  const summary = targetMode === "reference" ? null : summarizeRun(results, { sizes, engines, direct, floorDurable, floorTrigger });
  if (summary) console.log(`\n${summary.markdown}\n`);
  // With the floor beside it, the run is judged on issue 13's targets (ratios to the floor, frames
  // lost, greeting overhead); each round's absolute targets are shown in its own table.
  const passed = results.every((result) => result.wrangler_reloads === 0) && (summary ? summary.passed : results.every((result) => result.passed));
  const output = {
    suite: "calls",
    target: targetMode + (direct ? ", --direct" : "") + (floorDurable ? ", --floor-durable" : "") + (floorTrigger ? ", --floor-trigger=minimal" : ""),
    generated_at: new Date().toISOString(),
    machine: { cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model ?? null, node: process.versions.node, platform: `${os.platform()} ${os.release()}` },
    config: { engines, rounds: repeats, floor_direct_round: floorDirect, call_seconds: seconds, model_latency_ms: modelLatencyMs, agent_audio_speed: agentSpeed, agent_delta_ms: agentFrameMs, script_jitter_ms: jitterMs, frame_ms: FRAME_MS, caller_speech_ms: CALLER_SPEECH, agent_responses_ms: AGENT_RESPONSES.map((response) => response.durationMs), targets: TARGETS, floor_ratio_targets: FLOOR_RATIOS },
    rounds: results.map(({ markdown: _markdown, ...rest }) => rest),
    summary: summary?.rows ?? null,
    recording_comparison: recordingComparison?.rows ?? null,
    passed,
  };
  mkdirSync(join(benchDir, "results"), { recursive: true });
  // calls.json is the default run; any other setting gets its own file (calls-direct-n50.json, …).
  const variant = [
    targetMode !== "both" ? targetMode : "",
    direct ? "direct" : "",
    options.tmpfs ? "tmpfs" : "",
    floorDurable ? "floor-durable" : "",
    floorTrigger ? "floor-trigger" : "",
    options.calls ? `n${sizes.join("-")}` : "",
    options.record ? `record-${options.record}` : "",
    options.engine ? `engine-${options.engine}` : "",
    ...["seconds", "rounds", "model-latency", "agent-speed", "agent-frame-ms", "jitter"].map((name) => (options[name] ? `${name}${options[name]}` : "")),
  ].filter(Boolean);
  const file = `calls${variant.map((part) => `-${part}`).join("")}.json`;
  writeFileSync(join(benchDir, "results", file), JSON.stringify(output, null, 2) + "\n");
  log(`results written to bench/results/${file} — ${passed ? "all targets met" : "some targets missed"}`);
  return { passed };
}

/**
 * Puts each call's record together from what the two fakes saw, matching frames by their call
 * number and counter (both fakes stamp with the same monotonic clock).
 * @param {CallRecord[]} round
 * @param {import("./fakes/thread.mjs").TwilioCallData[]} twilioCalls
 * @param {import("./fakes/thread.mjs").ModelCallData[]} modelCalls
 */
function assemble(round, twilioCalls, modelCalls) {
  const byIndex = (/** @type {any[]} */ calls) => new Map(calls.map((call) => [call.index, call]));
  const twilioBy = byIndex(twilioCalls);
  const modelBy = byIndex(modelCalls);
  for (const rec of round) {
    /** @type {import("./fakes/thread.mjs").TwilioCallData | undefined} */
    const tw = twilioBy.get(rec.index);
    /** @type {import("./fakes/thread.mjs").ModelCallData | undefined} */
    const model = modelBy.get(rec.index);
    if (tw) {
      rec.twilio = { answeredAt: tw.answeredAt, endedAt: tw.endedAt };
      rec.startSentAt = tw.startSentAt;
      rec.framesSent = tw.framesSent;
      rec.firstAgentMediaAt = tw.agentAt[0] ?? null;
      rec.callbacks = tw.callbacks;
      rec.timeline.push(...tw.timeline);
      rec.problems.push(...tw.problems);
    }
    if (model) {
      rec.modelSessions = model.sessions;
      rec.greetingCreateAt = model.greetingCreateAt;
      rec.firstDeltaAt = model.firstDeltaAt;
      rec.agentFramesSent = model.deltaCounter.length;
      rec.truncates = model.truncates;
      rec.timeline.push(...model.timeline);
      rec.problems.push(...model.problems);
    }
    // Twilio → model: each caller frame appended, against when Twilio sent it.
    if (tw && model) {
      for (let i = 0; i < model.appendCounter.length; i++) {
        const sent = tw.upSentAt[model.appendCounter[i]];
        if (sent === undefined || sent === null) continue;
        rec.up.push(model.appendAt[i] - sent);
        rec.upSentAt.push(sent);
        rec.framesRelayed++;
      }
      // Model → Twilio: each agent frame Twilio got, against when the model sent it.
      /** @type {Map<number, number>} */
      const deltaByCounter = new Map();
      for (let i = 0; i < model.deltaCounter.length; i++) deltaByCounter.set(model.deltaCounter[i], i);
      for (let i = 0; i < tw.agentCounter.length; i++) {
        const d = deltaByCounter.get(tw.agentCounter[i]);
        if (d === undefined) continue;
        const latency = tw.agentAt[i] - model.deltaAt[d];
        if (model.deltaRelayed[d]) {
          rec.down.push(latency);
          rec.downSentAt.push(model.deltaAt[d]);
        } else rec.paced.push(latency);
      }
      // A barge-in is the caller speaking while agent audio is still playing at Twilio; each clear
      // answers the latest speech start before it that has none yet.
      const playing = (/** @type {number} */ t) => {
        for (let i = 0; i < tw.playing.length; i += 2) if (tw.playing[i] <= t && t < tw.playing[i + 1]) return true;
        return false;
      };
      rec.speechStarts = model.speechStarts.map((t) => ({ t, interrupting: playing(t), clearAt: null }));
      for (const clearAt of tw.clears) {
        const start = rec.speechStarts.findLast((s) => s.clearAt === null && s.t <= clearAt);
        if (start) start.clearAt = clearAt;
        else rec.unmatchedClears++;
      }
    }
  }
}

/** @param {(number | null)[]} values */
const median = (values) => {
  const sorted = values.filter((v) => v !== null && Number.isFinite(v)).map(Number).sort((a, b) => a - b);
  if (sorted.length === 0) return null;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
/** @param {(number | null)[]} values */
const best = (values) => {
  const finite = values.filter((v) => v !== null && Number.isFinite(v)).map(Number);
  return finite.length ? Math.min(...finite) : null;
};

/**
 * The run's summary: per N and engine, each metric's median and best over the rounds of ours and
 * of the floor, the ratio ours ÷ floor (of the medians, and of the bests) against issue 13's
 * targets, the floor measured direct beside the proxied one, and the harness's own loop delays.
 * @param {ReturnType<typeof summarizeRound>[]} results
 * @param {{ sizes: number[]; engines: string[]; direct: boolean; floorDurable: boolean; floorTrigger: boolean }} input
 */
function summarizeRun(results, { sizes, engines, direct, floorDurable, floorTrigger }) {
  /** @type {{ key: string; label: string; get: (r: ReturnType<typeof summarizeRound>) => number | null; ratio?: number; absolute?: number; digits?: number }[]} */
  const metrics = [
    { key: "relay_up_p99", label: "relay Twilio → model p99 (ms)", get: (r) => r.relay_twilio_to_model_ms.p99, ratio: FLOOR_RATIOS.relayP99 },
    { key: "relay_down_p99", label: "relay model → Twilio p99 (ms)", get: (r) => r.relay_model_to_twilio_ms.p99, ratio: FLOOR_RATIOS.relayP99 },
    { key: "barge_in_p99", label: "barge-in p99 (ms)", get: (r) => r.barge_in_ms.p99, ratio: FLOOR_RATIOS.bargeInP99 },
    { key: "cpu_per_call_minute", label: "workerd CPU per call-minute (s)", get: (r) => r.cpu.workerd_seconds_per_call_minute, ratio: FLOOR_RATIOS.cpuPerCallMinute },
    { key: "status_callback_p50", label: "status callback p50 (ms)", get: (r) => r.status_callback_round_trip_ms.p50, ratio: FLOOR_RATIOS.statusCallbackP50 },
    { key: "greeting_overhead_p50", label: "greeting overhead p50 (ms)", get: (r) => r.greeting_overhead_ms.p50, absolute: TARGETS.greetingOverheadMs },
    { key: "greeting_overhead_p99", label: "greeting overhead p99 (ms)", get: (r) => r.greeting_overhead_ms.p99, absolute: TARGETS.greetingOverheadMs },
    { key: "frames_lost", label: "caller frames lost (worst round)", get: (r) => r.caller_frames.lost, absolute: 0, digits: 0 },
  ];
  const rows = [];
  const lines = [];
  let passed = true;
  for (const n of sizes) {
    for (const engine of engines) {
      const valid = (/** @type {ReturnType<typeof summarizeRound>} */ r) => r.calls === n && r.engine === engine && !r.recording && r.wrangler_reloads === 0;
      const ours = results.filter((r) => valid(r) && r.target_name === "ours" && r.direct === direct);
      const floor = results.filter((r) => valid(r) && r.target_name === "floor" && r.direct === direct);
      const floorDirect = direct ? [] : results.filter((r) => valid(r) && r.target_name === "floor" && r.direct);
      if (ours.length === 0 && floor.length === 0) continue;
      const judged = n >= 10;
      for (const metric of metrics) {
        const o = ours.map(metric.get);
        const f = floor.map(metric.get);
        const worst = metric.key === "frames_lost";
        const oursMedian = worst ? (o.length ? Math.max(...o.map(Number)) : null) : median(o);
        const floorMedian = worst ? (f.length ? Math.max(...f.map(Number)) : null) : median(f);
        const ratio = metric.ratio && oursMedian !== null && floorMedian ? oursMedian / floorMedian : null;
        const bestOurs = best(o);
        const bestFloor = best(f);
        const bestRatio = metric.ratio && bestOurs !== null && bestFloor ? bestOurs / bestFloor : null;
        const ok = metric.ratio ? ratio !== null && ratio <= metric.ratio : oursMedian !== null && oursMedian <= /** @type {number} */ (metric.absolute);
        const noData = oursMedian === null || (metric.ratio && floorMedian === null);
        const verdict = ours.length === 0 || noData ? "—" : metric.ratio && floor.length === 0 ? "—" : !judged && metric.ratio ? (ok ? "(pass)" : "(fail)") : ok ? "PASS" : "FAIL";
        if (verdict === "FAIL") passed = false;
        const floorDirectValue = floorDirect.length ? median(floorDirect.map(metric.get)) : null;
        rows.push({ calls: n, engine, metric: metric.key, ours: { median: oursMedian, best: bestOurs, rounds: o }, floor: { median: floorMedian, best: bestFloor, rounds: f }, floor_direct: floorDirectValue, ratio, best_ratio: bestRatio, target: metric.ratio ? `≤ ${metric.ratio}× floor` : `≤ ${metric.absolute}`, verdict });
        const d = metric.digits ?? (metric.key === "cpu_per_call_minute" ? 3 : 2);
        lines.push([
          n,
          engine,
          metric.label,
          `${fmt(oursMedian, d)} / ${fmt(bestOurs, d)}`,
          `${fmt(floorMedian, d)} / ${fmt(bestFloor, d)}`,
          floorDirect.length ? fmt(floorDirectValue, d) : "",
          metric.ratio ? `${fmt(ratio, 2)} (${fmt(bestRatio, 2)})` : "",
          metric.ratio ? `≤ ${metric.ratio}×` : metric.key === "frames_lost" ? "0" : `≤ ${metric.absolute} ms`,
          verdict,
        ]);
      }
      // The harness's own event-loop delay, worst p99 over these rounds, per thread.
      const loops = [...ours, ...floor, ...floorDirect].map((r) => r.harness_event_loop_delay_ms);
      const worstP99 = (/** @type {string} */ name) => Math.max(0, ...loops.map((l) => l[name]?.p99 ?? 0));
      const loopText = ["main", "twilio", "openai"].map((name) => `${name} ${fmt(worstP99(name), 2)}`).join(", ");
      const warnings = [...ours, ...floor, ...floorDirect].flatMap((r) => r.harness_loop_warnings).length;
      rows.push({ calls: n, engine, metric: "harness_event_loop_delay_p99_worst_ms", main: worstP99("main"), twilio: worstP99("twilio"), openai: worstP99("openai"), warnings });
      lines.push([n, engine, "harness loop delay p99, worst round (ms)", loopText, "", "", "", `fake ≤ ${HARNESS_LOOP_SHARE_WARNING * 100} % of relay p99`, warnings ? `${warnings} warning(s)` : "ok"]);
    }
  }
  const table = markdownTable(["N", "engine", "metric", "ours median / best", "floor median / best", direct ? "" : "floor direct", "ratio median (best)", "target", "result"], lines);
  const header = `## Summary: ours against the floor${floorTrigger ? " with the minimal trigger in front of each call (--floor-trigger=minimal)" : ""}${floorDurable ? " with a durable record per call (--floor-durable)" : ""}${direct ? " (both direct: Twilio skips wrangler's dev proxy)" : ""}, same run, rounds interleaved\n\nMedian and best over the rounds; ratio = ours ÷ floor of the medians (of the bests in parentheses). Ratio targets are judged at 10 and 50 calls (1 call in parentheses).${direct ? "" : " \"floor direct\": one round of the floor with Twilio connected to its workerd itself, skipping wrangler's dev proxy."}`;
  return { rows, passed, markdown: `${header}\n\n${table}` };
}

/**
 * Recording on against off, round by round of the same size: relay latency (all frames and steady
 * state) and workerd CPU per call-minute, with the CPU ratio (target: at most 1.10).
 * @param {ReturnType<typeof summarizeRound>[]} results
 */
function compareRecording(results) {
  const ours = results.filter((result) => result.target_name === "ours");
  const pairs = ours.flatMap((off) => {
    const on = off.recording ? undefined : ours.find((other) => other.recording && other.calls === off.calls && other.engine === off.engine && other.repeat === off.repeat);
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
 * @param {{ target: string; targetName: string; direct: boolean; repeat: number; n: number; engine: string; recording: boolean; seconds: number; modelLatencyMs: number; round: CallRecord[]; cpuBefore: CpuSample | null; cpuAfter: CpuSample | null; cpuTimeline: [number, number, number][]; benchCpu: NodeJS.CpuUsage; otherServersCpu: number; machineBusy: number; ioWait: number; roundSeconds: number; reloads: number; harnessLoops: Record<string, LoopDelay>; stray: { frames: number; problems: string[] } }} input
 */
function summarizeRound({ target, targetName, direct, repeat, n, engine, recording, seconds, modelLatencyMs, round, cpuBefore, cpuAfter, cpuTimeline, benchCpu, otherServersCpu, machineBusy, ioWait, roundSeconds, reloads, harnessLoops, stray }) {
  const up = summarize(round.flatMap((rec) => rec.up));
  const down = summarize(round.flatMap((rec) => rec.down));
  // The first seconds of a call carry its set-up (status callbacks, the stream's start): apart.
  const steadyFrom = (/** @type {CallRecord} */ rec) => (rec.startSentAt ?? 0) + STEADY_AFTER_MS;
  const upSteady = summarize(round.flatMap((rec) => rec.up.filter((_, i) => rec.upSentAt[i] >= steadyFrom(rec))));
  const downSteady = summarize(round.flatMap((rec) => rec.down.filter((_, i) => rec.downSentAt[i] >= steadyFrom(rec))));
  const midCall = (/** @type {CallRecord} */ rec, /** @type {number} */ sentAt) => sentAt >= steadyFrom(rec) && sentAt < (rec.startSentAt ?? 0) + seconds * 1000 - MID_CALL_BEFORE_END_MS;
  const upMidCall = summarize(round.flatMap((rec) => rec.up.filter((_, i) => midCall(rec, rec.upSentAt[i]))));
  const downMidCall = summarize(round.flatMap((rec) => rec.down.filter((_, i) => midCall(rec, rec.downSentAt[i]))));
  /** How long the server took to answer each status callback (its round trip from the fake Twilio). */
  const callbacks = round.flatMap((rec) => rec.callbacks);
  const callbackMs = summarize(callbacks.map(([, ms]) => ms));
  /** @type {Record<string, ReturnType<typeof summarize>>} */
  const callbackMsByStatus = {};
  for (const status of new Set(callbacks.map(([status]) => status))) callbackMsByStatus[status] = summarize(callbacks.filter(([s]) => s === status).map(([, ms]) => ms));
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
  const backgroundCores = Math.max(0, machineBusy - harnessCpuSeconds - (workerdCpuSeconds ?? 0) - (otherCpuSeconds ?? 0) - otherServersCpu) / roundSeconds;
  // The harness's own load: a fake whose event loop was late by a good part of the p99 it measured may have made that p99.
  // (GPT-Live's model → Twilio p99 has a few samples a call: the per-frame direction is the reference then.)
  const relayP99 = Math.min(up.p99 ?? Infinity, down.count >= 100 ? (down.p99 ?? Infinity) : Infinity);
  const loopWarnings = Object.entries(harnessLoops)
    .filter(([name, delay]) => name !== "main" && Number.isFinite(relayP99) && delay.p99 > HARNESS_LOOP_SHARE_WARNING * relayP99)
    .map(([name, delay]) => `WARNING: the fake ${name}'s event-loop delay p99 (${fmt(delay.p99, 2)} ms) is over ${HARNESS_LOOP_SHARE_WARNING * 100} % of the relay p99 it measured (${fmt(relayP99, 2)} ms): the harness may have set it`);
  const statuses = countBy(round.map((rec) => (rec.createError ? `not created (${rec.createError.slice(0, 80)})` : targetName === "ours" ? `${rec.notification?.status ?? "?"}/${rec.notification?.ended_reason ?? "-"}` : "placed (no notification)")));
  const withResult = round.filter((rec) => rec.notification?.call_result && typeof rec.notification.call_result === "object").length;
  const recordingsStored = round.filter((rec) => rec.notification?.recording_available === true).length;
  const problems = [...stray.problems.map((text) => `stray: ${text}`), ...round.flatMap((rec) => rec.problems.map((text) => `call ${rec.index}: ${text}`))];
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
      row("status callback: sent → answered", callbackMs, "—", true).map((cell, i) => (i === 6 ? "info" : cell)),
    ],
  );
  const paced = summarize(round.flatMap((rec) => rec.paced));
  const notes = [
    ...(local ? [`pacing: agent frames after a response's first, model → Twilio p50 ${fmt(paced.p50)} / p99 ${fmt(paced.p99)} ms (${paced.count} frames, held to the bridge's 200 ms lead over playback)`] : []),
    `steady state (frames sent ≥ ${STEADY_AFTER_MS / 1000} s after start): Twilio → model p50 ${fmt(upSteady.p50)} / p99 ${fmt(upSteady.p99)} ms, model → Twilio p50 ${fmt(downSteady.p50)} / p99 ${fmt(downSteady.p99)} ms`,
    `mid-call (steady state, and ≥ ${MID_CALL_BEFORE_END_MS / 1000} s before the hang-up): Twilio → model p99 ${fmt(upMidCall.p99)} ms, model → Twilio p99 ${fmt(downMidCall.p99)} ms`,
    ...(reloads ? [`INVALID ROUND: wrangler reloaded the Worker ${reloads} time(s) during it (a source file changed), cutting the calls in flight`] : []),
    `greeting with the nominal ${modelLatencyMs} ms model latency subtracted instead: p50 ${fmt(greetingNominal.p50)} / p99 ${fmt(greetingNominal.p99)} ms; Twilio start → greeting response.create: p50 ${fmt(startToCreate.p50)} / p99 ${fmt(startToCreate.p99)} ms`,
    `status callbacks by status, p50 / p99 (ms): ${Object.entries(callbackMsByStatus).map(([status, ms]) => `${status} ${fmt(ms.p50)} / ${fmt(ms.p99)} (${ms.count})`).join(", ") || "—"}`,
    `agent frames: ${agentFramesDelivered} of ${agentFramesSent} reached Twilio (the rest were cut by barge-ins); truncates: ${truncates.length}; stray frames ${stray.frames}`,
    `Worker's workerd CPU per second (cores): ${cpuTimeline.map(([, worker]) => fmt(worker, 2)).join(" ") || "—"}`,
    `workerd CPU ${fmt(workerdCpuSeconds, 2)} s (pids ${cpuAfter?.workerdPids.join(", ") || "none"}; ${fmt(proxyCpuSeconds, 2)} s of it in wrangler's dev proxy), other dev-server processes ${fmt(otherCpuSeconds, 2)} s; the other dev server(s), idle, ${fmt(otherServersCpu, 2)} s; this harness (all threads) ${fmt(harnessCpuSeconds, 2)} s`,
    `harness event-loop delay p50 / p99 / max (ms): ${Object.entries(harnessLoops).map(([name, d]) => `${name} ${fmt(d.p50, 2)} / ${fmt(d.p99, 2)} / ${fmt(d.max, 2)}${d.utilization !== undefined ? ` (loop busy ${fmt(d.utilization * 100, 0)} %)` : ""}`).join("; ")}`,
    ...loopWarnings,
    `machine: ${fmt(machineBusy / roundSeconds, 2)} of ${os.cpus().length} cores busy over the round's ${fmt(roundSeconds, 1)} s (and ${fmt(ioWait / roundSeconds, 2)} waiting for the disk), ${fmt(backgroundCores, 2)} of them by processes outside this benchmark${backgroundCores > 0.2 ? " — WARNING: other load on the machine skews these numbers" : ""}`,
    `notifications: ${Object.entries(statuses).map(([status, count]) => `${count} × ${status}`).join(", ")}; call_result present on ${withResult}; recording_available on ${recordingsStored}`,
    ...(problems.length ? [`protocol problems (${problems.length}): ${problems.slice(0, 12).join(" | ")}${problems.length > 12 ? " | …" : ""}`] : []),
  ];
  const markdown = `## ${targetName}${direct ? " direct" : ""}: ${n} concurrent call${n === 1 ? "" : "s"} × ${seconds} s on ${engine}${recording ? ", recording on" : ""} (repeat ${repeat + 1}) — ${target}\n\n${table}\n\n${notes.map((note) => `- ${note}`).join("\n")}`;
  return {
    target,
    target_name: targetName,
    direct,
    repeat,
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
    status_callback_round_trip_ms_by_status: callbackMsByStatus,
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
      other_servers_seconds: otherServersCpu,
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
    harness_event_loop_delay_ms: harnessLoops,
    harness_loop_warnings: loopWarnings,
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
 * How calls are placed: through our Worker under `npm run dev`, through the floor Worker under
 * `wrangler dev` (bench/floor), or through the in-process reference bridge (`--target=reference`).
 * @typedef {object} CallTarget
 * @property {string} name
 * @property {(round: CallRecord[]) => Promise<void>} prepare
 * @property {(rec: CallRecord) => Promise<void>} place sets notificationId, or createError
 * @property {(placed: CallRecord[]) => Promise<void>} finish waits for the final states
 * @property {() => CpuSample | null} cpu
 * @property {() => number} reloads times the Worker was reloaded so far
 * @property {number} [inspectorPort] the Worker's inspector (`--profile`)
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
    inspectorPort: dev.inspectorPort,
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
 * The floor Worker; `durable` (--floor-durable) and `trigger` (--floor-trigger=minimal) as the run's options say.
 * @param {{ root: string; benchDir: string; runDir: string; options: Record<string, string>; twilioPort: number; openaiPort: number; runId: string; onCleanup: (cleanup: () => Promise<void> | void) => void; onExitKill: (kill: () => void) => void; log: (line: string) => void; durable: boolean; trigger: boolean }} input
 * @returns {Promise<CallTarget>}
 */
async function floorTarget({ root, benchDir, runDir, options, twilioPort, openaiPort, runId, onCleanup, onExitKill, log, durable, trigger }) {
  const dev = await startDevServer({
    root,
    runDir,
    // --tmpfs: as ours' (what the durable floor stores goes to memory too).
    persistDir: options.tmpfs ? join("/dev/shm", `echo-bench-floor-${runId}`) : undefined,
    config: join(benchDir, "floor", trigger ? "wrangler.trigger.toml" : "wrangler.toml"),
    expectName: "echo-bench-floor",
    log,
    vars: {
      OPENAI_API_KEY: OPENAI_KEY,
      OPENAI_BASE_URL: `http://127.0.0.1:${openaiPort}/v1`,
      ...(durable ? { FLOOR_DURABLE: "1" } : {}),
      ...(trigger
        ? {
            TWILIO_API_BASE_URL: `http://127.0.0.1:${twilioPort}`,
            TWILIO_ACCOUNT_SID: ACCOUNT_SID,
            TWILIO_AUTH_TOKEN: AUTH_TOKEN,
            TWILIO_FROM_NUMBER: FROM_NUMBER,
          }
        : {}),
    },
    onCleanup,
    onExitKill,
  });
  log(`floor Worker ready at ${dev.baseUrl}`);
  const wsBase = dev.baseUrl.replace(/^http/, "ws");
  return {
    name: `floor Worker (wrangler dev, minimal relay${durable ? ", a durable record per call" : ""}${trigger ? ", placed through the minimal trigger" : ""})`,
    async prepare() {},
    async place(rec) {
      // The floor relays the engine being measured: Realtime or GPT-Live.
      const streamUrl = `${wsBase}/twilio/media/${rec.engine}/${rec.key}`;
      const statusCallback = `${dev.baseUrl}/twilio/status/${rec.key}`;
      if (trigger) {
        const created = await dev.api("POST", "/trigger", { body: { key: rec.key, to: rec.phone, stream_url: streamUrl, status_callback: statusCallback } });
        if (created.status === 201) rec.notificationId = rec.key;
        else rec.createError = `${created.status} ${JSON.stringify(created.body)}`;
        return;
      }
      try {
        await placeStreamCall({
          baseUrl: `http://127.0.0.1:${twilioPort}`,
          accountSid: ACCOUNT_SID,
          authToken: AUTH_TOKEN,
          from: FROM_NUMBER,
          to: rec.phone,
          streamUrl,
          statusCallback,
        });
        rec.notificationId = rec.key;
      } catch (error) {
        rec.createError = String(error);
      }
    },
    async finish() {},
    cpu: () => dev.cpu(),
    reloads: () => dev.reloads,
    inspectorPort: dev.inspectorPort,
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
