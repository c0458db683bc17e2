// @ts-check
import { join } from "node:path";
import { startDevServer } from "./lib/dev-server.mjs";
import { fmt, markdownTable } from "./lib/stats.mjs";
import { sleep } from "./lib/wait.mjs";

/**
 * `batches`: one batch of N items (default 1,000) on the call simulator, through `npm run dev`: how
 * long the request takes, how long until the last call was placed, and whether the pacing held —
 * the most calls at once (project's max_concurrent_calls, default 10) and the most starts in one
 * second (TWILIO_CPS) observed from the notifications' own timestamps — and the workerd CPU per
 * placed call (the request, the queue fan-out, the pacers and the calls themselves).
 */

export const description = "a batch of simulated calls: request time, time to the last call, max concurrent calls and starts per second against the limits, CPU per call";

const MAX_CONCURRENT = 10;

/** @param {import("./run.mjs").SuiteContext} context */
export async function run({ root, benchDir, options, onCleanup, onExitKill, log }) {
  const items = Number(options.items ?? 1000);
  const cps = Number(options.cps ?? 20);
  const scale = options.scale ?? "0.1";
  const runDir = join(benchDir, ".state", `batches-${Date.now().toString(36)}`);
  const dev = await startDevServer({
    root,
    runDir,
    log,
    // The simulator (no Twilio credentials), its calls scale× as long as at time scale 1 (≈ 6.5 s).
    vars: { SIMULATOR_TIME_SCALE: scale, TWILIO_CPS: String(cps) },
    onCleanup,
    onExitKill,
  });
  const signup = await dev.api("POST", "/auth/signup", {
    body: { email: `batch-${Date.now()}@example.com`, password: "bench-password-1", first_name: "Bench", last_name: "Mark", business_name: "Acme Clinic", business_summary: "A dental clinic", industry: "Healthcare" },
  });
  if (signup.status !== 201) throw new Error(`signup: ${signup.status} ${JSON.stringify(signup.body)}`);
  const key = signup.body.default_project.api_key;
  const agent = await dev.api("POST", "/api/v1/agents", { key, body: { name: "Reminder", system_prompt: "Remind {{recipient_first_name}} of the appointment.", output_schema: { type: "object", required: ["confirmed"], properties: { confirmed: { type: "boolean" } } } } });
  const customer = await dev.api("POST", "/api/v1/customers", { key, body: { external_id: "bench", first_name: "Ada", last_name: "Bench", phone: "+14155550100" } });
  if (agent.status !== 201 || customer.status !== 201) throw new Error(`agent ${agent.status} / customer ${customer.status}`);

  const cpuBefore = dev.cpu();
  const requestStart = Date.now();
  const created = await dev.api("POST", "/api/v1/notifications/batch", { key, body: { agent_id: agent.body.id, items: Array.from({ length: items }, () => ({ customer_id: customer.body.id })) } });
  const requestMs = Date.now() - requestStart;
  if (created.status !== 202) throw new Error(`batch: ${created.status} ${JSON.stringify(created.body).slice(0, 300)}`);
  const batchId = created.body.batch.id;
  log(`batch of ${items} accepted ${created.body.batch.accepted} in ${requestMs} ms; waiting for its calls (≤ ${MAX_CONCURRENT} at once, ≤ ${cps} starts a second)`);
  for (;;) {
    const batch = await dev.api("GET", `/api/v1/batches/${batchId}`, { key });
    if (batch.body.completed_at) break;
    await sleep(1000);
  }
  const completedMs = Date.now() - requestStart;
  const cpuAfter = dev.cpu();

  /** @type {Array<{ started_at: string | null; ended_at: string | null; status: string }>} */
  const notifications = [];
  for (let cursor = ""; ; ) {
    const response = await fetch(`${dev.baseUrl}/api/v1/notifications?batch_id=${batchId}&limit=200${cursor ? `&cursor=${cursor}` : ""}`, { headers: { "x-api-key": key } });
    notifications.push(...(await response.json()));
    cursor = response.headers.get("x-next-cursor") ?? "";
    if (!cursor) break;
  }
  const placed = notifications.filter((n) => n.started_at !== null);
  const starts = placed.map((n) => Date.parse(/** @type {string} */ (n.started_at))).sort((a, b) => a - b);
  const lastPlacedMs = starts.length ? starts[starts.length - 1] - requestStart : null;
  // Starts per second: the most starts in any one-second window (sliding).
  let maxPerSecond = 0;
  for (let i = 0, j = 0; i < starts.length; i++) {
    while (starts[i] - starts[j] >= 1000) j++;
    maxPerSecond = Math.max(maxPerSecond, i - j + 1);
  }
  // Calls at once: from each call's start to its end.
  const edges = placed.flatMap((n) => [
    [Date.parse(/** @type {string} */ (n.started_at)), 1],
    [Date.parse(/** @type {string} */ (n.ended_at)), -1],
  ]);
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let live = 0;
  let maxLive = 0;
  for (const [, step] of edges) maxLive = Math.max(maxLive, (live += step));
  const workerdCpu = cpuAfter.workerd - cpuBefore.workerd;

  const passed = maxLive <= MAX_CONCURRENT && maxPerSecond <= cps;
  console.log(`\n## batch of ${items} simulated calls (time scale ${scale}) — max_concurrent_calls ${MAX_CONCURRENT}, TWILIO_CPS ${cps}\n`);
  console.log(
    markdownTable(
      ["metric", "value", "limit", "result"],
      [
        ["batch request (ms)", fmt(requestMs, 0), "", "info"],
        ["request → last call placed (s)", fmt(lastPlacedMs === null ? null : lastPlacedMs / 1000, 1), `≥ ${fmt(items / cps, 1)} by CPS alone`, "info"],
        ["request → batch completed (s)", fmt(completedMs / 1000, 1), "", "info"],
        ["calls placed", String(placed.length), String(created.body.batch.accepted), placed.length === created.body.batch.accepted ? "PASS" : "FAIL"],
        ["most calls at once (observed)", String(maxLive), `≤ ${MAX_CONCURRENT}`, maxLive <= MAX_CONCURRENT ? "PASS" : "FAIL"],
        ["most starts in one second (observed)", String(maxPerSecond), `≤ ${cps}`, maxPerSecond <= cps ? "PASS" : "FAIL"],
        ["workerd CPU per placed call (ms)", fmt(placed.length ? (workerdCpu * 1000) / placed.length : null, 1), "", "info"],
      ],
    ),
  );
  console.log(`\n- statuses: ${JSON.stringify(Object.fromEntries([...new Set(notifications.map((n) => n.status))].map((s) => [s, notifications.filter((n) => n.status === s).length])))}`);
  console.log("- starts are the notifications' started_at (ringing, a step after the dial), ends their ended_at.");
  return { passed };
}
