import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { count, createAgent, createCustomer, QUICKSTART_AGENT, QUICKSTART_VARIABLES, quickstartCustomer } from "../fixtures";
import { api, expectStatus, signup } from "../helpers";

/** Batches (API.md "Batches") on the simulator: items checked one by one, started from a queue, paced, canceled together. */

const WAIT = { timeout: 20_000, interval: 100 };

async function batchCompletedEvents(batchId: string) {
  const { results } = await env.DB.prepare("SELECT payload FROM events WHERE event_name = 'batch.completed' AND payload LIKE ?").bind(`%${batchId}%`).all<{ payload: string }>();
  return results.map((row) => JSON.parse(row.payload));
}

describe("POST /api/v1/notifications/batch", () => {
  it("1,000 items with 3 bad ones: 997 notifications, 3 errors by index; cancel stops the rest; batch.completed once", async () => {
    const account = await signup();
    const agent = await createAgent(account, QUICKSTART_AGENT);
    const customer = await createCustomer(account, { ...quickstartCustomer(), external_id: "crm-42" });
    // Every item brings its doctor; the batch brings the time.
    const items: Array<Record<string, unknown>> = Array.from({ length: 1000 }, (_, index) => ({
      ...(index % 2 === 0 ? { customer_id: customer.id } : { external_id: "crm-42" }),
      variables: { doctor_name: QUICKSTART_VARIABLES.doctor_name },
    }));
    items[10] = { customer_id: "00000000-0000-7000-8000-000000000000", variables: { doctor_name: "Dr. Who" } };
    items[500] = { external_id: "nobody", variables: { doctor_name: "Dr. Who" } };
    items[999] = { customer_id: customer.id };
    const res = await api("POST", "/api/v1/notifications/batch", { key: account.key, body: { agent_id: agent.id, variables: { appointment_time: QUICKSTART_VARIABLES.appointment_time }, items } });
    expect(res.status).toBe(202);
    expect(res.body.batch).toMatchObject({ id: expect.any(String), total: 1000, accepted: 997, rejected: 3 });
    expect(res.body.errors.map((e: { index: number; code: string }) => [e.index, e.code])).toEqual([
      [10, "customer_not_found"],
      [500, "customer_not_found"],
      [999, "missing_variables"],
    ]);
    const batchId = res.body.batch.id;
    expect(await count("notifications", "batch_id = ?", batchId)).toBe(997);

    // Cancel at once: what was not yet dialled is canceled; what was, ends on its own.
    const canceled = await expectStatus(api("POST", `/api/v1/batches/${batchId}/cancel`, { key: account.key }), 200);
    expect(canceled.counts.canceled).toBeGreaterThan(900);
    const done = await vi.waitFor(async () => {
      const batch = await expectStatus(api("GET", `/api/v1/batches/${batchId}`, { key: account.key }), 200);
      expect(batch.completed_at).not.toBeNull();
      return batch;
    }, WAIT);
    expect(done).toMatchObject({ total: 1000, accepted: 997, rejected: 3, counts: { queued: 0, in_progress: 0 } });
    expect(done.counts.canceled + done.counts.completed).toBe(997);
    expect((await batchCompletedEvents(batchId)).map((event) => event.data)).toEqual([{ batch_id: batchId, counts: done.counts }]);

    const listed = await api("GET", `/api/v1/notifications?batch_id=${batchId}&limit=5`, { key: account.key });
    expect(listed.body).toHaveLength(5);
    expect(listed.body.every((n: { batch_id: string }) => n.batch_id === batchId)).toBe(true);
    expect((await api("GET", "/api/v1/batches", { key: account.key })).body.map((b: { id: string }) => b.id)).toEqual([batchId]);
  });

  it("refuses a batch with no items, over 1,000 items, or an item naming no customer (400), and another tenant's batch is a 404", async () => {
    const account = await signup();
    const agent = await createAgent(account, QUICKSTART_AGENT);
    for (const items of [[], Array.from({ length: 1001 }, () => ({ customer_id: "x" })), [{ variables: {} }]]) {
      const res = await api("POST", "/api/v1/notifications/batch", { key: account.key, body: { agent_id: agent.id, items } });
      expect(res.status).toBe(400);
      expect(res.body.code).toBe("validation_error");
    }
    const other = await signup();
    const created = await api("POST", "/api/v1/notifications/batch", { key: account.key, body: { agent_id: agent.id, variables: QUICKSTART_VARIABLES, items: [{ customer_id: "nobody" }] } });
    expect(created.status).toBe(202);
    // None accepted: complete at once.
    expect((await api("GET", `/api/v1/batches/${created.body.batch.id}`, { key: account.key })).body).toMatchObject({ accepted: 0, rejected: 1, completed_at: expect.any(String) });
    expect(await batchCompletedEvents(created.body.batch.id)).toHaveLength(1);
    expect((await api("GET", `/api/v1/batches/${created.body.batch.id}`, { key: other.key })).status).toBe(404);
    expect((await api("POST", `/api/v1/batches/${created.body.batch.id}/cancel`, { key: other.key })).status).toBe(404);
  });

  it("an Idempotency-Key covers the whole batch: a retry replays it and places nothing more", async () => {
    const account = await signup();
    const agent = await createAgent(account, QUICKSTART_AGENT);
    const customer = await createCustomer(account, quickstartCustomer());
    const request = { key: account.key, headers: { "Idempotency-Key": "batch-1" }, body: { agent_id: agent.id, variables: QUICKSTART_VARIABLES, items: [{ customer_id: customer.id }, { customer_id: customer.id }] } };
    const first = await api("POST", "/api/v1/notifications/batch", request);
    expect(first.status).toBe(202);
    const again = await api("POST", "/api/v1/notifications/batch", request);
    expect(again.status).toBe(202);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(again.body).toEqual(first.body);
    expect(await count("batches", "project_id = ?", account.projectId)).toBe(1);
    expect(await count("notifications", "project_id = ?", account.projectId)).toBe(2);
  });
});
