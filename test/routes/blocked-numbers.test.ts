import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { count, createAgent, createCustomer, getNotification, QUICKSTART_AGENT, QUICKSTART_VARIABLES, quickstartCustomer, storedEvents } from "../fixtures";
import { api, expectStatus, signup, type Account } from "../helpers";

/** Blocked numbers (API.md "The person called"): project-level, refused at trigger, re-checked before every dial. */

const HOUR_MS = 3_600_000;
const PHONE = "+14155550100";

const block = (account: Account, body: Record<string, unknown>) => api("POST", "/api/v1/blocked-numbers", { key: account.key, body });
const blockedCount = (projectId: string) => count("blocked_numbers", "project_id = ?", projectId);

async function withCustomer(phone = PHONE) {
  const account = await signup();
  const agent = await createAgent(account, QUICKSTART_AGENT);
  const customer = await createCustomer(account, quickstartCustomer(phone));
  const trigger = (extra: Record<string, unknown> = {}) =>
    api("POST", "/api/v1/notifications", { key: account.key, body: { customer_id: customer.id, agent_id: agent.id, variables: QUICKSTART_VARIABLES, ...extra } });
  return { account, agent, customer, trigger };
}

describe("/api/v1/blocked-numbers", () => {
  it("blocks, lists, gets and unblocks a number", async () => {
    const account = await signup();
    const created = await block(account, { phone: PHONE, reason: "Asked by letter not to be called" });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({ id: expect.any(String), project_id: account.projectId, phone: PHONE, reason: "Asked by letter not to be called", created_at: expect.any(String) });
    const other = await expectStatus(block(account, { phone: "+442079460000" }), 201);
    expect(other.reason).toBeNull();

    expect((await api("GET", "/api/v1/blocked-numbers", { key: account.key })).body).toEqual([other, created.body]);
    expect((await api("GET", `/api/v1/blocked-numbers?phone=${encodeURIComponent(PHONE)}`, { key: account.key })).body).toEqual([created.body]);
    const page = await api("GET", "/api/v1/blocked-numbers?limit=1", { key: account.key });
    expect(page.body).toEqual([other]);
    expect(page.headers.get("x-next-cursor")).toBeTruthy();
    expect((await api("GET", `/api/v1/blocked-numbers/${created.body.id}`, { key: account.key })).body).toEqual(created.body);

    const deleted = await api("DELETE", `/api/v1/blocked-numbers/${created.body.id}`, { key: account.key });
    expect(deleted.status).toBe(204);
    expect((await api("GET", `/api/v1/blocked-numbers/${created.body.id}`, { key: account.key })).body).toMatchObject({ code: "blocked_number_not_found" });
    expect((await api("DELETE", `/api/v1/blocked-numbers/${created.body.id}`, { key: account.key })).status).toBe(404);
    expect(await blockedCount(account.projectId)).toBe(1);
  });

  it.each([
    ["a number that is not E.164", { phone: "415 555 0100" }, "phone"],
    ["a number not valid for its country", { phone: "+1415555010" }, "phone"],
    ["no phone", { reason: "spam" }, "phone"],
    ["an empty reason", { phone: PHONE, reason: " " }, "reason"],
    ["a reason over 500 characters", { phone: PHONE, reason: "x".repeat(501) }, "reason"],
  ])("%s is a 400 and blocks nothing", async (_, body, path) => {
    const account = await signup();
    const res = await block(account, body);
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ code: "validation_error", details: [expect.objectContaining({ path })] });
    expect(await blockedCount(account.projectId)).toBe(0);
  });

  it("a number blocked twice in a project is a 409; another project may block it too", async () => {
    const account = await signup();
    await expectStatus(block(account, { phone: PHONE }), 201);
    const again = await block(account, { phone: PHONE, reason: "again" });
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ code: "blocked_number_exists" });
    expect(await blockedCount(account.projectId)).toBe(1);
    const other = await signup();
    await expectStatus(block(other, { phone: PHONE }), 201);
  });

  it("another tenant's blocked number is a 404 and is not listed", async () => {
    const owner = await signup();
    const created = await expectStatus(block(owner, { phone: PHONE }), 201);
    const stranger = await signup();
    expect((await api("GET", `/api/v1/blocked-numbers/${created.id}`, { key: stranger.key })).status).toBe(404);
    expect((await api("DELETE", `/api/v1/blocked-numbers/${created.id}`, { key: stranger.key })).status).toBe(404);
    expect((await api("GET", "/api/v1/blocked-numbers", { key: stranger.key })).body).toEqual([]);
    expect(await blockedCount(owner.projectId)).toBe(1);
  });
});

describe("a blocked number is never called", () => {
  it("a trigger to it is a 422 number_blocked and writes nothing; once unblocked it is called", async () => {
    const { account, trigger } = await withCustomer();
    const blocked = await expectStatus(block(account, { phone: PHONE }), 201);
    const refused = await trigger();
    expect(refused.status).toBe(422);
    expect(refused.body).toMatchObject({ code: "number_blocked", message: expect.stringContaining("blocked") });
    expect(await count("notifications", "project_id = ?", account.projectId)).toBe(0);

    await expectStatus(api("DELETE", `/api/v1/blocked-numbers/${blocked.id}`, { key: account.key }), 204);
    expect((await trigger()).status).toBe(201);
  });

  it("only the project that blocked it refuses it", async () => {
    const { trigger } = await withCustomer();
    const other = await signup();
    await expectStatus(block(other, { phone: PHONE }), 201);
    expect((await trigger()).status).toBe(201);
  });

  it("a number blocked while its notification waits is not dialled: failed, blocked, one call.ended", async () => {
    const { account, trigger } = await withCustomer();
    const created = await trigger({ scheduled_at: new Date(Date.now() + HOUR_MS).toISOString() });
    expect(created.body.notification).toMatchObject({ status: "queued", queued_reason: "scheduled" });
    const id = created.body.notification.id;
    await expectStatus(block(account, { phone: PHONE }), 201);

    expect(await runDurableObjectAlarm(env.CALL_SESSION.get(env.CALL_SESSION.idFromName(id)))).toBe(true);
    expect(await getNotification(account, id)).toMatchObject({
      status: "failed",
      call_status: "canceled",
      ended_reason: "blocked",
      error_message: "The number was blocked before the call was placed",
      started_at: null,
      attempts: [],
    });
    expect((await storedEvents(id)).map((event) => [event.event_name, JSON.parse(event.payload).data])).toEqual([
      ["call.ended", { status: "failed", ended_reason: "blocked", attempt: 1, simulated: true }],
    ]);
  });

  it("a batch item for a blocked number is reported by index; the rest go ahead", async () => {
    const { account, agent, customer } = await withCustomer();
    const other = await createCustomer(account, { ...quickstartCustomer("+14155550199"), external_id: "other" });
    await expectStatus(block(account, { phone: "+14155550199" }), 201);
    const res = await api("POST", "/api/v1/notifications/batch", {
      key: account.key,
      body: { agent_id: agent.id, variables: QUICKSTART_VARIABLES, items: [{ customer_id: customer.id }, { customer_id: other.id }] },
    });
    expect(res.status).toBe(202);
    expect(res.body.batch).toMatchObject({ total: 2, accepted: 1, rejected: 1 });
    expect(res.body.errors).toEqual([expect.objectContaining({ index: 1, code: "number_blocked" })]);
  });
});
