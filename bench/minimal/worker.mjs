// @ts-check
// The minimal trigger (`npm run bench -- api`): `POST /trigger` with a JSON body `{ customer_id }`
// inserts a row into D1, reads it back with its customer's count, hands it to a Durable Object
// (one per row, which stores it), sends a queue message and answers 201 with the row. No auth, no
// validation library, no rate limit: what workerd, D1, a DO and a queue cost under `wrangler dev`.

import { DurableObject } from "cloudflare:workers";

const json = (/** @type {unknown} */ body, status = 200) => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

/** @type {Promise<unknown> | null} once per isolate: the table, created on the fly */
let schema = null;

/**
 * @typedef {{ DB: D1Database; CALL: DurableObjectNamespace<Call>; QUEUE: Queue }} Env
 */

export default {
  /** @param {Request} request @param {Env} env */
  async fetch(request, env) {
    const { pathname } = new URL(request.url);
    if (pathname === "/") return json({ name: "echo-bench-minimal" });
    if (pathname !== "/trigger" || request.method !== "POST") return json({ error: "not found" }, 404);
    const body = /** @type {{ customer_id?: unknown }} */ (await request.json());
    if (typeof body.customer_id !== "string") return json({ error: "customer_id is required" }, 400);
    schema ??= env.DB.prepare("CREATE TABLE IF NOT EXISTS notifications (id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL)").run();
    await schema;
    const id = crypto.randomUUID();
    const now = new Date().toISOString();
    await env.DB.prepare("INSERT INTO notifications (id, customer_id, status, created_at) VALUES (?, ?, 'queued', ?)").bind(id, body.customer_id, now).run();
    const row = await env.DB.prepare("SELECT id, customer_id, status, created_at FROM notifications WHERE id = ?").bind(id).first();
    const call = await env.CALL.get(env.CALL.idFromName(id)).start(id, body.customer_id);
    await env.QUEUE.send({ id });
    return json({ notification: row, call }, 201);
  },

  /** @param {MessageBatch} batch */
  async queue(batch) {
    batch.ackAll();
  },
};

export class Call extends DurableObject {
  /** @param {string} id @param {string} customerId */
  async start(id, customerId) {
    await this.ctx.storage.put("call", { id, customerId, status: "queued" });
    return { callId: id, status: "queued" };
  }
}
