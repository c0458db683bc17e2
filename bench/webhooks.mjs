// @ts-check
// Webhook delivery under failure: N events (simulated calls' `call.ended`) to a local receiver that
// fails half of all attempts at random, with a shortened retry schedule; then the same deliveries
// replayed at once to a healthy receiver, for the delivery rate at full speed.
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { startDevServer } from "./lib/dev-server.mjs";
import { closeServer, listenLocal } from "./lib/net.mjs";
import { fmt, markdownTable, summarize } from "./lib/stats.mjs";
import { sleep, waitUntil } from "./lib/wait.mjs";

export const description = "N webhook events through the outbox and queue to a receiver failing 50 % of attempts: all delivered, duplicates, event → receipt latency; replay rate to a healthy receiver";

/**
 * One attempt right away, then one a second: with half of all attempts failing, an event is lost
 * only if all 25 of its attempts fail (2^-25 per event), so the run shows that none is lost, not luck.
 */
const SHORT_SCHEDULE = ["0", ...Array.from({ length: 24 }, () => "1")].join(",");

/**
 * A receiver on 127.0.0.1 that answers 500 to `failureRate` of requests at random and 200 to the
 * rest, and remembers when each event first arrived with a 2xx.
 * @param {{ failureRate: number }} behaviour changed between phases
 */
async function startReceiver(behaviour) {
  /** @type {Map<string, { createdAt: number; firstSuccessAt: number; successes: number }>} */
  const events = new Map();
  const counts = { posts: 0, failuresAnswered: 0, successes: 0, badBodies: 0 };
  const server = createServer((request, response) => {
    const chunks = /** @type {Buffer[]} */ ([]);
    request.on("data", (chunk) => chunks.push(chunk));
    request.on("end", () => {
      const receivedAt = Date.now();
      counts.posts++;
      if (Math.random() < behaviour.failureRate) {
        counts.failuresAnswered++;
        response.writeHead(500).end("random failure");
        return;
      }
      let event;
      try {
        event = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        counts.badBodies++;
        response.writeHead(400).end();
        return;
      }
      counts.successes++;
      const seen = events.get(event.event_id);
      if (seen) seen.successes++;
      else events.set(event.event_id, { createdAt: Date.parse(event.created_at), firstSuccessAt: receivedAt, successes: 1 });
      response.writeHead(200).end("ok");
    });
  });
  const port = await listenLocal(server);
  return {
    url: `http://127.0.0.1:${port}/webhooks/echo`,
    events,
    counts,
    reset() {
      events.clear();
      for (const name of /** @type {(keyof typeof counts)[]} */ (Object.keys(counts))) counts[name] = 0;
    },
    close: () => closeServer(server),
  };
}

/**
 * Runs `task(i)` for i in [0, count) with at most `concurrency` at a time.
 * @param {number} count @param {number} concurrency @param {(index: number) => Promise<void>} task
 */
async function pool(count, concurrency, task) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) await task(next++);
    }),
  );
}

/** @param {import("./run.mjs").SuiteContext} context */
export async function run({ root, benchDir, options, onCleanup, onExitKill, log }) {
  const eventCount = Number(options.events ?? 1000);
  // Events are produced at a steady rate the dev server sustains on this 2-core machine, so latency
  // measures delivery and retries, not a backlog of notifications waiting for a CPU.
  const eventsPerSecond = Number(options.rate ?? 10);
  const runDir = join(benchDir, ".state", `webhooks-${Date.now().toString(36)}`);
  mkdirSync(runDir, { recursive: true });

  const behaviour = { failureRate: 0.5 };
  const receiver = await startReceiver(behaviour);
  onCleanup(() => receiver.close());

  const server = await startDevServer({
    root,
    runDir,
    log,
    vars: { WEBHOOK_RETRY_SCHEDULE: SHORT_SCHEDULE, SIMULATOR_TIME_SCALE: "0.01" },
    onCleanup,
    onExitKill,
  });

  const signup = await server.api("POST", "/auth/signup", {
    body: { email: `bench-${Date.now()}@example.com`, password: "bench-password-1", first_name: "Bench", last_name: "Mark", business_name: "Bench Inc", business_summary: "Benchmarks", industry: "Software" },
  });
  if (signup.status !== 201) throw new Error(`signup failed: ${signup.status} ${JSON.stringify(signup.body)}`);
  const key = signup.body.default_project.api_key;
  const projectId = signup.body.default_project.id;
  const webhook = await server.api("POST", `/api/v1/projects/${projectId}/webhooks`, { key, body: { url: receiver.url, events: ["call.ended"] } });
  if (webhook.status !== 201) throw new Error(`webhook registration failed: ${webhook.status} ${JSON.stringify(webhook.body)}`);
  const customer = await server.api("POST", "/api/v1/customers", { key, body: { external_id: "bench", first_name: "Pat", last_name: "Bench", phone: "+14155550100" } });
  if (customer.status !== 201) throw new Error(`customer failed: ${customer.status} ${JSON.stringify(customer.body)}`);

  // Phase 1: every simulated call ends with one call.ended event for the endpoint.
  log(`phase 1: ${eventCount} events at ${eventsPerSecond}/s, receiver failing 50 % of attempts, schedule ${SHORT_SCHEDULE.split(",").length} attempts`);
  const phase1Start = Date.now();
  let refused = 0;
  await Promise.all(
    Array.from({ length: eventCount }, async (_, index) => {
      await sleep((index * 1000) / eventsPerSecond);
      const res = await server.api("POST", "/api/v1/notifications", { key, body: { customer_id: customer.body.id, message: "Your order has shipped." } });
      if (res.status !== 201) refused++;
    }),
  );
  const createdIn = (Date.now() - phase1Start) / 1000;
  log(`${eventCount - refused} notifications created in ${createdIn.toFixed(1)} s; waiting for every event`);
  const allArrived = await waitUntil(() => receiver.events.size >= eventCount - refused, 300_000);
  const phase1 = {
    events: eventCount - refused,
    delivered: receiver.events.size,
    all_delivered: allArrived,
    duplicates: 0, // counted below, once late duplicates have had a moment to arrive
    posts: receiver.counts.posts,
    failures_answered: receiver.counts.failuresAnswered,
    latency_ms: summarize([...receiver.events.values()].map((event) => event.firstSuccessAt - event.createdAt)),
    notifications_created_per_second: (eventCount - refused) / createdIn,
  };
  // Late duplicates would arrive after the last first receipt: give them a moment.
  await sleep(3000);
  phase1.duplicates = [...receiver.events.values()].reduce((sum, event) => sum + event.successes - 1, 0);

  // Phase 2: replay every delivery at once (manual retry) to a healthy receiver.
  const deliveryIds = [];
  for (let cursor = null; ; ) {
    const page = await server.api("GET", `/api/v1/projects/${projectId}/webhooks/${webhook.body.id}/deliveries?limit=200${cursor ? `&cursor=${cursor}` : ""}`, { key });
    if (page.status !== 200) throw new Error(`listing deliveries failed: ${page.status} ${JSON.stringify(page.body)}`);
    deliveryIds.push(...page.body.data.map((/** @type {{ id: string }} */ delivery) => delivery.id));
    cursor = page.body.next_cursor;
    if (!cursor) break;
  }
  behaviour.failureRate = 0;
  receiver.reset();
  log(`phase 2: replaying ${deliveryIds.length} deliveries to a healthy receiver`);
  const phase2Start = Date.now();
  let retryRefused = 0;
  await pool(deliveryIds.length, 50, async (index) => {
    const res = await server.api("POST", `/api/v1/projects/${projectId}/webhooks/${webhook.body.id}/deliveries/${deliveryIds[index]}/retry`, { key });
    if (res.status === 202) return;
    retryRefused++;
    if (retryRefused <= 3) log(`a retry was refused: ${res.status} ${JSON.stringify(res.body)}`);
  });
  const requestedIn = (Date.now() - phase2Start) / 1000;
  const replayed = await waitUntil(() => receiver.counts.successes >= deliveryIds.length - retryRefused, 120_000);
  const lastReceipt = Math.max(...[...receiver.events.values()].map((event) => event.firstSuccessAt));
  const drainedIn = (lastReceipt - phase2Start) / 1000;
  const phase2 = {
    deliveries: deliveryIds.length - retryRefused,
    received: receiver.counts.successes,
    refused: retryRefused,
    all_received: replayed,
    retry_requests_seconds: requestedIn,
    seconds_to_last_receipt: drainedIn,
    deliveries_per_second: receiver.counts.successes / drainedIn,
  };

  const latency = phase1.latency_ms;
  console.log(
    "\n" +
      markdownTable(
        ["metric", "value", "target"],
        [
          ["events delivered (50 % failing receiver)", `${phase1.delivered} / ${phase1.events}`, phase1.delivered === eventCount ? "PASS (all)" : "FAIL (all)"],
          ["duplicates received", phase1.duplicates, phase1.duplicates === 0 ? "PASS (0)" : "FAIL (0)"],
          ["attempts (POSTs) / failures answered", `${phase1.posts} / ${phase1.failures_answered}`, "—"],
          ["event → first successful receipt p50 / p99 / max (ms)", `${fmt(latency.p50, 0)} / ${fmt(latency.p99, 0)} / ${fmt(latency.max, 0)}`, "—"],
          ["events produced per second (paced)", fmt(phase1.notifications_created_per_second, 1), "—"],
          [`replay to a healthy receiver: ${phase2.received} deliveries`, `${fmt(phase2.deliveries_per_second, 1)} deliveries/s (last receipt after ${fmt(drainedIn, 2)} s; retries requested in ${fmt(requestedIn, 2)} s)`, "—"],
        ],
      ) +
      "\n",
  );
  mkdirSync(join(benchDir, "results"), { recursive: true });
  writeFileSync(join(benchDir, "results", "webhooks.json"), JSON.stringify({ suite: "webhooks", generated_at: new Date().toISOString(), schedule: SHORT_SCHEDULE, phase1, phase2 }, null, 2));
  return { passed: phase1.delivered === eventCount && phase1.duplicates === 0 && phase2.all_received };
}
