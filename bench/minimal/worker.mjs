// @ts-check
// The minimal trigger (`npm run bench -- api`): `POST /trigger` with a JSON body `{ customer_id }`
// inserts a row into D1, reads it back with its customer's count, hands it to a Durable Object
// (one per row, which stores it), sends a queue message and answers 201 with the row. No auth, no
// validation library, no rate limit: what workerd, D1, a DO and a queue cost under `wrangler dev`.
//
// `POST /trigger-as-ours` adds, written as plainly, the work the API contract asks of every trigger
// beyond that, so that `npm run bench -- api` can tell the cost of the contract from the cost of our
// code: the API key's SHA-256 and its D1 read (a round trip of its own: the caller is known before
// anything else), two rate-limit objects (per key, per project), the Idempotency-Key (the body's
// SHA-256, read with the customer in one batch, written with the row in another) and the call object
// created with a location hint, handed the call's parameters, storing them and setting its alarm
// (the bench's triggers are scheduled a day ahead) — and, like ours then, no queue send.

import { DurableObject } from "cloudflare:workers";
import { NOTIFICATIONS_TABLE, NOTIFICATION_INSERT, recordNotification } from "./notification-row.mjs";

const json = (/** @type {unknown} */ body, status = 200) => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

/** @type {Promise<unknown> | null} once per isolate: the tables of `/trigger-as-ours` and the bench's API key */
let schemaAsOurs = null;

/** The key the bench sends to `/trigger-as-ours` (x-api-key). */
const BENCH_API_KEY = "bench-minimal-key";
/** About the size of the parameters ours hands its call object (prompt, opening line, voice, policy…). */
const CALL_PARAMETERS = { script: "x".repeat(2500), opening: "y".repeat(200), fields: Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`field${i}`, `value ${i}`])) };
const DAY_MS = 24 * 3600 * 1000;

const sha256Hex = async (/** @type {string} */ text) => [...new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)))].map((byte) => byte.toString(16).padStart(2, "0")).join("");

/**
 * @typedef {{ DB: D1Database; CALL: DurableObjectNamespace<Call>; LIMITER: DurableObjectNamespace<Limiter>; QUEUE: Queue }} Env
 */

export default {
  /** @param {Request} request @param {Env} env */
  async fetch(request, env) {
    const { pathname } = new URL(request.url);
    if (pathname === "/") return json({ name: "echo-bench-minimal" });
    if (pathname === "/trigger-as-ours" && request.method === "POST") return triggerAsOurs(request, env);
    if (pathname !== "/trigger" || request.method !== "POST") return json({ error: "not found" }, 404);
    const body = /** @type {{ customer_id?: unknown }} */ (await request.json());
    if (typeof body.customer_id !== "string") return json({ error: "customer_id is required" }, 400);
    const id = crypto.randomUUID();
    const row = await recordNotification(env.DB, id, body.customer_id);
    const call = await env.CALL.get(env.CALL.idFromName(id)).start(id, body.customer_id);
    await env.QUEUE.send({ id });
    return json({ notification: row, call }, 201);
  },

  /** @param {MessageBatch} batch */
  async queue(batch) {
    batch.ackAll();
  },
};

/** @param {Request} request @param {Env} env */
async function triggerAsOurs(request, env) {
  schemaAsOurs ??= sha256Hex(BENCH_API_KEY).then((hash) =>
    env.DB.batch([
      env.DB.prepare(NOTIFICATIONS_TABLE),
      env.DB.prepare("CREATE TABLE IF NOT EXISTS api_keys (hash TEXT PRIMARY KEY, project_id TEXT NOT NULL)"),
      env.DB.prepare("CREATE TABLE IF NOT EXISTS idempotency_keys (key TEXT PRIMARY KEY, body_hash TEXT NOT NULL, notification_id TEXT NOT NULL)"),
      env.DB.prepare("INSERT OR IGNORE INTO api_keys (hash, project_id) VALUES (?, 'project-1')").bind(hash),
    ]),
  );
  await schemaAsOurs;
  const keyHash = await sha256Hex(request.headers.get("x-api-key") ?? "");
  const key = /** @type {{ project_id: string } | null} */ (await env.DB.prepare("SELECT project_id FROM api_keys WHERE hash = ?").bind(keyHash).first());
  if (!key) return json({ error: "invalid API key" }, 401);
  for (const counted of [`api-key:${keyHash}`, `notifications:${key.project_id}`]) {
    if (!(await env.LIMITER.get(env.LIMITER.idFromName(counted)).take())) return json({ error: "rate limited" }, 429);
  }
  const body = /** @type {{ customer_id?: unknown }} */ (await request.json());
  if (typeof body.customer_id !== "string") return json({ error: "customer_id is required" }, 400);
  const idempotencyKey = request.headers.get("idempotency-key");
  const customerRead = env.DB.prepare("SELECT count(*) AS calls FROM notifications WHERE customer_id = ?").bind(body.customer_id);
  const id = crypto.randomUUID();
  const now = new Date().toISOString();
  const insert = env.DB.prepare(NOTIFICATION_INSERT).bind(id, body.customer_id, now);
  /** @type {D1Result | undefined} */
  let customer;
  if (idempotencyKey === null) {
    [customer] = await env.DB.batch([customerRead]);
    await env.DB.batch([insert]);
  } else {
    const bodyHash = await sha256Hex(JSON.stringify(body));
    const [replay, read] = await env.DB.batch([env.DB.prepare("SELECT body_hash, notification_id FROM idempotency_keys WHERE key = ?").bind(idempotencyKey), customerRead]);
    if (replay?.results.length) return json({ replayed: replay.results[0] }, 200);
    customer = read;
    await env.DB.batch([insert, env.DB.prepare("INSERT INTO idempotency_keys (key, body_hash, notification_id) VALUES (?, ?, ?)").bind(idempotencyKey, bodyHash, id)]);
  }
  const call = await env.CALL.get(env.CALL.idFromName(id), { locationHint: "wnam" }).schedule({ id, customerId: body.customer_id, ...CALL_PARAMETERS }, Date.now() + DAY_MS);
  return json({ notification: { id, customer_id: body.customer_id, status: "queued", created_at: now, earlier_calls: customer?.results[0] }, call }, 201);
}

export class Call extends DurableObject {
  /** @param {string} id @param {string} customerId */
  async start(id, customerId) {
    await this.ctx.storage.put("call", { id, customerId, status: "queued" });
    return { callId: id, status: "queued" };
  }

  /** `/trigger-as-ours`: stores the call and wakes when it is due. @param {{ id: string }} params @param {number} dueAtMs */
  async schedule(params, dueAtMs) {
    await this.ctx.storage.put("call", params);
    await this.ctx.storage.setAlarm(dueAtMs);
    return { callId: params.id, status: "waiting" };
  }

  async alarm() {}
}

/** `/trigger-as-ours`: one per counted key, counting in memory (as ours' per-request limits do). */
export class Limiter extends DurableObject {
  count = 0;

  async take() {
    this.count += 1;
    return this.count <= 1_000_000;
  }
}
