// @ts-check
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { startDevServer } from "./lib/dev-server.mjs";
import { runLoad } from "./lib/load.mjs";
import { fmt, markdownTable } from "./lib/stats.mjs";
import { machineCpu } from "./lib/proc.mjs";
import { profileSummary, startProfile } from "./lib/profile.mjs";

/**
 * `api`: `POST /api/v1/notifications` under load (autocannon, N connections for D seconds, in a
 * child process) against a minimal route doing what a trigger must at least do (`bench/minimal`:
 * a D1 insert + select, a Durable Object RPC, a queue send), both under `wrangler dev` at once,
 * in interleaved rounds after a warm-up of each. Every request must be a 2xx: a round with any
 * other answer fails loudly.
 */

export const description = "POST /api/v1/notifications vs a minimal D1 + DO + queue route, same concurrency, interleaved rounds: requests/s, p50/p99, workerd CPU per request, ratio";

/** High enough never to refuse a bench request; the bench says so. */
const UNLIMITED = "1000000/10s";
const CUSTOMERS = 20;

/** @param {import("./run.mjs").SuiteContext} context */
export async function run({ root, benchDir, options, onCleanup, onExitKill, log }) {
  const connections = Number(options.connections ?? 10);
  const durationSeconds = Number(options.duration ?? 10);
  const rounds = Math.max(2, Number(options.rounds ?? 2));
  const warmupSeconds = Number(options.warmup ?? 3);
  // "scheduled" (default): each trigger is scheduled a day ahead, so its call object stores it and
  // sets its alarm, and no call runs during the load. "now": placed at once on the simulator (the
  // pacers' slot and start, then the call object's alarm), its simulated call slowed down 100×.
  const mode = options.mode ?? "scheduled";
  const idempotency = options.idempotency !== "off";
  // --direct: the load goes to each Worker's own workerd, skipping wrangler's dev proxy (a hop
  // production does not have), to show how much of either target's cost is that proxy.
  const direct = Boolean(options.direct);
  const id = Date.now().toString(36);

  const [ours, minimal] = await Promise.all([
    startDevServer({
      root,
      runDir: join(benchDir, ".state", `api-${id}`),
      log,
      vars: { SIMULATOR_TIME_SCALE: "100", TWILIO_CPS: "1000", RATE_LIMIT_API_KEY: UNLIMITED, RATE_LIMIT_NOTIFICATIONS: UNLIMITED },
      onCleanup,
      onExitKill,
    }),
    startDevServer({
      root,
      runDir: join(benchDir, ".state", `api-minimal-${id}`),
      config: join(benchDir, "minimal", "wrangler.toml"),
      expectName: "echo-bench-minimal",
      vars: {},
      log,
      onCleanup,
      onExitKill,
    }),
  ]);

  // Ours: the quickstart's account, agent and customers.
  const signup = await ours.api("POST", "/auth/signup", {
    body: { email: `api-${id}@example.com`, password: "bench-password-1", first_name: "Bench", last_name: "Mark", business_name: "Acme Clinic", business_summary: "A dental clinic", industry: "Healthcare" },
  });
  if (signup.status !== 201) throw new Error(`signup: ${signup.status} ${JSON.stringify(signup.body)}`);
  const key = signup.body.default_project.api_key;
  const projectId = signup.body.default_project.id;
  const project = await ours.api("PATCH", `/api/v1/projects/${projectId}`, { key, body: { max_concurrent_calls: 1000 } });
  if (project.status !== 200) throw new Error(`project: ${project.status} ${JSON.stringify(project.body)}`);
  const agent = await ours.api("POST", "/api/v1/agents", {
    key,
    body: {
      name: "Appointment Reminder",
      system_prompt: "You are a friendly assistant calling {{recipient_first_name}} on behalf of {{business_name}} to confirm the appointment on {{appointment_time}} with {{doctor_name}}.",
      output_schema: { type: "object", required: ["confirmed"], properties: { confirmed: { type: "boolean" } } },
    },
  });
  if (agent.status !== 201) throw new Error(`agent: ${agent.status} ${JSON.stringify(agent.body)}`);
  const customerIds = [];
  for (let i = 0; i < CUSTOMERS; i++) {
    const customer = await ours.api("POST", "/api/v1/customers", { key, body: { external_id: `bench-${i}`, first_name: "John", last_name: `Smith${i}`, phone: `+1415555${String(1000 + i)}` } });
    if (customer.status !== 201) throw new Error(`customer: ${customer.status} ${JSON.stringify(customer.body)}`);
    customerIds.push(customer.body.id);
  }
  const scheduledAt = new Date(Date.now() + 24 * 3600 * 1000).toISOString();
  const oursJob = {
    url: `${ours.baseUrl}/api/v1/notifications`,
    headers: { "x-api-key": key },
    bodies: customerIds.map((customer_id) => ({
      customer_id,
      agent_id: agent.body.id,
      variables: { appointment_time: "Thursday March 20th at 2:00 PM", doctor_name: "Dr. Patel" },
      ...(mode === "scheduled" ? { scheduled_at: scheduledAt } : {}),
    })),
    idempotencyKeys: idempotency,
  };
  const minimalJob = { url: `${minimal.baseUrl}/trigger`, headers: {}, bodies: customerIds.map((customer_id) => ({ customer_id })), idempotencyKeys: false };
  // The minimal route with the work the contract asks of a scheduled trigger (bench/minimal/worker.mjs):
  // how much of ours' cost is that work, how much our code. Informational; the target is against the minimal route.
  const asOursJob = mode === "scheduled" ? { url: `${minimal.baseUrl}/trigger-as-ours`, headers: { "x-api-key": "bench-minimal-key" }, bodies: customerIds.map((customer_id) => ({ customer_id })), idempotencyKeys: idempotency } : null;
  if (direct) {
    for (const [job, server] of /** @type {const} */ ([[oursJob, ours], [minimalJob, minimal], [asOursJob, minimal]])) {
      if (!job) continue;
      const url = new URL(job.url);
      url.port = String(await server.innerPort());
      job.url = url.href;
    }
    log(`direct: ours at ${oursJob.url}, minimal at ${minimalJob.url} (each Worker's own workerd)`);
  }
  const targets = { ours: { server: ours, job: oursJob }, minimal: { server: minimal, job: minimalJob }, ...(asOursJob ? { "minimal-as-ours": { server: minimal, job: asOursJob } } : {}) };

  log(`warm-up: ${warmupSeconds} s each`);
  for (const target of Object.values(targets)) {
    const warm = await runLoad({ ...target.job, connections, durationSeconds: warmupSeconds });
    if (warm.non2xx > 0 || warm.errors > 0) throw new Error(`warm-up of ${target.job.url}: ${warm.non2xx} non-2xx, ${warm.errors} errors: ${warm.sampleErrors.join(" | ")}`);
  }

  if (options.profile) {
    // One extra round of each under the inspector's CPU profiler (not counted): where the CPU goes.
    for (const [name, target] of Object.entries(targets)) {
      const stop = await startProfile(root, /** @type {number} */ (target.server.inspectorPort));
      const load = await runLoad({ ...target.job, connections, durationSeconds });
      const profile = await stop();
      const path = join(benchDir, ".state", `api-${id}-${name}.cpuprofile`);
      writeFileSync(path, JSON.stringify(profile));
      const summary = profileSummary(profile, 20);
      console.log(`\n## CPU profile of ${name}: ${fmt(summary.totalMs, 0)} ms of non-idle samples for ${load.ok} requests, ${fmt(summary.totalMs / load.ok, 2)} ms each (${path})\n`);
      console.log(markdownTable(["self time (ms)", "function"], summary.functions.map(([fn, micros]) => [fmt(micros / 1000, 1), fn])));
      console.log("");
      console.log(markdownTable(["self time (ms)", "script"], summary.scripts.map(([script, micros]) => [fmt(micros / 1000, 1), script])));
    }
  }

  /** @type {Array<{ target: string; round: number; rps: number; p50: number; p99: number; non2xx: number; errors: number; cpuMsPerRequest: number; workerCpuMsPerRequest: number; otherCores: number; ok: number }>} */
  const results = [];
  for (let round = 1; round <= rounds; round++) {
    for (const [name, target] of Object.entries(targets)) {
      const cpuBefore = target.server.cpu();
      const machineBefore = machineCpu().busy;
      const ownBefore = ours.cpu().workerd + minimal.cpu().workerd;
      const load = await runLoad({ ...target.job, connections, durationSeconds });
      const cpuAfter = target.server.cpu();
      const cpuMs = (cpuAfter.workerd - cpuBefore.workerd) * 1000;
      // Without wrangler's dev proxy: the Worker's own workerd (with D1, the objects and the queue).
      const workerCpuMs = cpuMs - (cpuAfter.proxy - cpuBefore.proxy) * 1000;
      // Other processes' load during the round (everything but both dev servers' workerd; the load process counts as other).
      const otherCores = (machineCpu().busy - machineBefore - (ours.cpu().workerd + minimal.cpu().workerd - ownBefore)) / load.seconds;
      results.push({ target: name, round, rps: load.rps, p50: load.p50, p99: load.p99, non2xx: load.non2xx, errors: load.errors + load.timeouts, cpuMsPerRequest: load.ok ? cpuMs / load.ok : NaN, workerCpuMsPerRequest: load.ok ? workerCpuMs / load.ok : NaN, otherCores, ok: load.ok });
      log(`round ${round} ${name}: ${fmt(load.rps, 1)} req/s, p50 ${load.p50} ms, p99 ${load.p99} ms, non-2xx ${load.non2xx}, errors ${load.errors + load.timeouts}`);
      if (load.non2xx > 0 || load.errors > 0 || load.timeouts > 0) {
        throw new Error(`round ${round} of ${name} had ${load.non2xx} non-2xx answers and ${load.errors + load.timeouts} errors (statuses ${JSON.stringify(load.statusCodes)}): ${load.sampleErrors.join(" | ")}`);
      }
    }
  }

  const median = (/** @type {number[]} */ values) => {
    const sorted = [...values].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  };
  const of = (/** @type {string} */ name) => results.filter((r) => r.target === name);
  const summary = Object.fromEntries(
    Object.keys(targets).map((name) => [
      name,
      { rps: median(of(name).map((r) => r.rps)), bestRps: Math.max(...of(name).map((r) => r.rps)), p50: median(of(name).map((r) => r.p50)), p99: median(of(name).map((r) => r.p99)), cpuMsPerRequest: median(of(name).map((r) => r.cpuMsPerRequest)), workerCpuMsPerRequest: median(of(name).map((r) => r.workerCpuMsPerRequest)) },
    ]),
  );
  const ratio = summary.ours.rps / summary.minimal.rps;
  const passed = ratio >= 0.8;

  console.log(`\n## POST /api/v1/notifications vs the minimal route — ${connections} connections, ${durationSeconds} s rounds, ${rounds} interleaved rounds each, mode ${mode}${idempotency ? ", an Idempotency-Key per request" : ""}${direct ? ", direct (no dev proxy)" : ""}\n`);
  console.log(
    markdownTable(
      ["round", "target", "req/s", "p50 ms", "p99 ms", "non-2xx", "workerd CPU ms/req", "of it the Worker's workerd", "other load (cores)"],
      results.map((r) => [String(r.round), r.target, fmt(r.rps, 1), String(r.p50), String(r.p99), String(r.non2xx), fmt(r.cpuMsPerRequest, 2), fmt(r.workerCpuMsPerRequest, 2), fmt(r.otherCores, 2)]),
    ),
  );
  console.log("");
  console.log(
    markdownTable(
      ["median of rounds", "req/s", "p50 ms", "p99 ms", "workerd CPU ms/req", "of it the Worker's workerd"],
      Object.entries(summary).map(([name, s]) => [name, fmt(s.rps, 1), fmt(s.p50, 0), fmt(s.p99, 0), fmt(s.cpuMsPerRequest, 2), fmt(s.workerCpuMsPerRequest, 2)]),
    ),
  );
  console.log(`\n- ratio ours / minimal (median req/s): ${fmt(ratio, 2)}× — target ≥ 0.80×: ${passed ? "PASS" : "FAIL"}`);
  console.log(`- ours: SIMULATOR_TIME_SCALE=100, TWILIO_CPS=1000, RATE_LIMIT_API_KEY and RATE_LIMIT_NOTIFICATIONS ${UNLIMITED}, max_concurrent_calls 1000; ${CUSTOMERS} customers round-robin.`);
  /** One target against another: requests/s and CPU per request (all workerd, and the Worker's alone). @param {typeof summary[string]} a @param {typeof summary[string]} b */
  const compared = (a, b) =>
    `req/s ${fmt(a.rps / b.rps, 2)}×, CPU per request ${fmt(a.cpuMsPerRequest / b.cpuMsPerRequest, 2)}× (the Worker's workerd alone ${fmt(a.workerCpuMsPerRequest / b.workerCpuMsPerRequest, 2)}×)`;
  console.log(`- ours / minimal: ${compared(summary.ours, summary.minimal)}.`);
  const asOurs = summary["minimal-as-ours"];
  if (asOurs) console.log(`- the contract's work (minimal-as-ours / minimal): ${compared(asOurs, summary.minimal)}; our code (ours / minimal-as-ours): ${compared(summary.ours, asOurs)}.`);
  console.log("- workerd CPU is every workerd process of that dev server (wrangler's dev proxy included) over the round, per 2xx; the Worker's workerd leaves the dev proxy out; 'other load' is the rest of the machine (the load process included).");
  return { passed };
}
