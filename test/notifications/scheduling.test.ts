import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { reconcileCalls } from "../../src/calls/reconcile";
import { createAgent, createCustomer, getNotification, QUICKSTART_AGENT, QUICKSTART_VARIABLES, quickstartCustomer, setPhoneStatus, storedEvents, waitUntilEnded } from "../fixtures";
import { api, signup } from "../helpers";

/**
 * `scheduled_at` (API.md "Scheduling"): a notification due later waits `queued` in its call object,
 * whose alarm places the call when it is due. The tests run that alarm instead of waiting for it.
 */

const HOUR_MS = 3_600_000;

async function scheduled(scheduledAt: string, phone = "+14155550100") {
  const account = await signup();
  const agent = await createAgent(account, QUICKSTART_AGENT);
  const customer = await createCustomer(account, quickstartCustomer(phone));
  const created = await api("POST", "/api/v1/notifications", {
    key: account.key,
    body: { customer_id: customer.id, agent_id: agent.id, variables: QUICKSTART_VARIABLES, scheduled_at: scheduledAt },
  });
  const callObject = () => env.CALL_SESSION.get(env.CALL_SESSION.idFromName(created.body.notification?.id));
  return { account, customer, created, callObject };
}

describe("scheduled_at", () => {
  it("waits queued until it is due, then the call runs as any other", async () => {
    const due = new Date(Date.now() + 2 * HOUR_MS);
    const { account, created, callObject } = await scheduled(due.toISOString().replace("Z", "+00:00"));
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      notification: { status: "queued", queued_reason: "scheduled", scheduled_for: due.toISOString(), call_status: "queued", started_at: null },
      call: { status: "queued" },
    });
    const id = created.body.notification.id;
    // Nothing has happened and nothing will before the due time: the object's alarm is set for it.
    expect(await storedEvents(id)).toEqual([]);
    expect(await runInDurableObject(callObject(), (_, state) => state.storage.getAlarm())).toBe(due.getTime());
    const listed = await api("GET", "/api/v1/notifications?status=queued", { key: account.key });
    expect(listed.body.map((n: { id: string }) => n.id)).toEqual([id]);

    expect(await runDurableObjectAlarm(callObject())).toBe(true);
    expect(await getNotification(account, id)).toMatchObject({ status: "in_progress", queued_reason: null, scheduled_for: null });
    const n = await waitUntilEnded(account, id);
    expect(n).toMatchObject({ status: "completed", ended_reason: "customer-ended-call", call_result: { confirmed: true, reschedule_request: null } });
    expect((await storedEvents(id)).map((e) => e.event_name)).toEqual(["call.started", "call.ended", "call.summary"]);
  });

  it("a time in the past, or with another offset, means now", async () => {
    const { created } = await scheduled("2020-01-01T09:00:00-05:00");
    expect(created.status).toBe(201);
    expect(created.body.notification).toMatchObject({ status: "in_progress", queued_reason: null, scheduled_for: null });
  });

  it.each([
    ["without an offset", () => "2026-12-01T09:00:00", /ISO 8601 date and time with an offset/],
    ["not a date", () => "tomorrow morning", /ISO 8601/],
    ["more than 30 days ahead", () => new Date(Date.now() + 31 * 24 * HOUR_MS).toISOString(), /at most 30 days ahead/],
  ])("%s is a 400 and nothing is written", async (_, value, message) => {
    const { account, created } = await scheduled(value());
    expect(created.status).toBe(400);
    expect(created.body).toMatchObject({ code: "validation_error", details: [{ path: "scheduled_at", message: expect.stringMatching(message) }] });
    expect((await api("GET", "/api/v1/notifications", { key: account.key })).body).toEqual([]);
  });

  it("a waiting notification is canceled: nothing is ever dialled", async () => {
    const { account, created, callObject } = await scheduled(new Date(Date.now() + HOUR_MS).toISOString());
    const id = created.body.notification.id;
    const res = await api("POST", `/api/v1/notifications/${id}/cancel`, { key: account.key });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: "canceled", call_status: "canceled", ended_reason: "canceled", queued_reason: null, scheduled_for: null, started_at: null });
    expect(await runDurableObjectAlarm(callObject())).toBe(false);
    expect((await storedEvents(id)).map((e) => JSON.parse(e.payload).data)).toEqual([{ status: "canceled", ended_reason: "canceled", attempt: 1, simulated: true }]);
  });

  it("a phone that opted out while the call waited is not called: the notification fails as opted-out", async () => {
    const { account, customer, created, callObject } = await scheduled(new Date(Date.now() + HOUR_MS).toISOString());
    await setPhoneStatus(account, customer.id, customer.phones[0]!.id, "opted_out");
    expect(await runDurableObjectAlarm(callObject())).toBe(true);
    const n = await getNotification(account, created.body.notification.id);
    expect(n).toMatchObject({ status: "failed", call_status: "canceled", ended_reason: "opted-out", error_message: "The phone number opted out of calls before the call was placed", started_at: null, attempts: [] });
  });

  it("the reconciler leaves a waiting call alone until it is due, and ends one whose object lost it", async () => {
    const { account, created, callObject } = await scheduled(new Date(Date.now() + HOUR_MS).toISOString());
    const id = created.body.notification.id;
    await reconcileCalls(env, { now: Date.now() + 10 * 60_000 });
    expect(await getNotification(account, id)).toMatchObject({ status: "queued", queued_reason: "scheduled" });
    // The object loses what it stored (as a storage failure would), and its memory with it.
    await runInDurableObject(callObject(), (_, state) => state.storage.deleteAll());
    await evictDurableObject(callObject());
    await reconcileCalls(env, { now: Date.now() + 2 * HOUR_MS });
    expect(await getNotification(account, id)).toMatchObject({ status: "failed", ended_reason: "error", error_message: "The call was lost before it could run" });
  });
});
