import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { createAgent, createCustomer, getNotification, QUICKSTART_AGENT, QUICKSTART_VARIABLES, quickstartCustomer, storedEvents, type AgentInput } from "../fixtures";
import { api, signup, type Account } from "../helpers";

/**
 * `retry` (API.md "Scheduling, calling hours and retries") on the simulator: the number 5550101 is
 * always busy, so each attempt ends customer-busy. The delay between attempts is minutes; the tests
 * run the call object's alarm instead of waiting for it.
 */

const BUSY = "+14155550101";
const WAIT = { timeout: 10_000, interval: 20 };

async function notify(body: Record<string, unknown>, agentInput: AgentInput = QUICKSTART_AGENT, phone = BUSY) {
  const account = await signup();
  const agent = await createAgent(account, agentInput);
  const customer = await createCustomer(account, quickstartCustomer(phone));
  const created = await api("POST", "/api/v1/notifications", { key: account.key, body: { customer_id: customer.id, agent_id: agent.id, variables: QUICKSTART_VARIABLES, ...body } });
  return { account, agent, customer, created, id: created.body.notification?.id as string };
}

const callObject = (id: string) => env.CALL_SESSION.get(env.CALL_SESSION.idFromName(id));

/** The notification once it waits for its next attempt (or has ended). */
function waitUntilWaitingOrEnded(account: Account, id: string) {
  return vi.waitFor(async () => {
    const n = await getNotification(account, id);
    expect(n.status === "in_progress" || (n.status === "queued" && n.queued_reason !== "retry")).toBe(false);
    return n;
  }, WAIT);
}

const eventData = async (id: string) => (await storedEvents(id)).map((event) => ({ name: event.event_name, ...JSON.parse(event.payload).data }));

describe("retry", () => {
  it("busy three times with max_attempts 3: three attempts, each a call.ended, then failed (no call.summary)", async () => {
    const { account, id, created } = await notify({ retry: { max_attempts: 3, delay_minutes: 5 } });
    expect(created.body.notification).toMatchObject({ retry: { max_attempts: 3, delay_minutes: 5, on: ["busy", "no-answer"] }, attempts: [] });

    const first = await waitUntilWaitingOrEnded(account, id);
    expect(first).toMatchObject({ status: "queued", queued_reason: "retry", call_status: "queued", ended_reason: null });
    expect(first.attempts).toEqual([
      { number: 1, call_id: created.body.notification.call_id, status: "failed", ended_reason: "customer-busy", answered_by: null, started_at: expect.any(String), answered_at: null, ended_at: expect.any(String) },
    ]);
    // The next attempt is due delay_minutes after the first ended, under a new call id.
    expect(Date.parse(first.scheduled_for) - Date.parse(first.attempts[0].ended_at)).toBe(5 * 60_000);
    expect(first.call_id).not.toBe(created.body.notification.call_id);

    expect(await runDurableObjectAlarm(callObject(id))).toBe(true);
    const second = await waitUntilWaitingOrEnded(account, id);
    expect(second).toMatchObject({ status: "queued", queued_reason: "retry" });
    expect(await runDurableObjectAlarm(callObject(id))).toBe(true);
    const n = await waitUntilWaitingOrEnded(account, id);
    expect(n).toMatchObject({ status: "failed", call_status: "busy", ended_reason: "customer-busy", queued_reason: null, scheduled_for: null });
    expect(n.attempts.map((a: { number: number; ended_reason: string }) => [a.number, a.ended_reason])).toEqual([
      [1, "customer-busy"],
      [2, "customer-busy"],
      [3, "customer-busy"],
    ]);
    expect(new Set(n.attempts.map((a: { call_id: string }) => a.call_id)).size).toBe(3);
    expect(await eventData(id)).toEqual([
      { name: "call.ended", status: "failed", ended_reason: "customer-busy", attempt: 1, retry_at: first.scheduled_for, simulated: true },
      { name: "call.ended", status: "failed", ended_reason: "customer-busy", attempt: 2, retry_at: second.scheduled_for, simulated: true },
      { name: "call.ended", status: "failed", ended_reason: "customer-busy", attempt: 3, simulated: true },
    ]);
    expect(await runDurableObjectAlarm(callObject(id))).toBe(false);
  });

  it("an outcome retry.on does not name is not tried again", async () => {
    const { account, id } = await notify({ retry: { max_attempts: 3, delay_minutes: 5, on: ["no-answer"] } });
    const n = await waitUntilWaitingOrEnded(account, id);
    expect(n).toMatchObject({ status: "failed", ended_reason: "customer-busy" });
    expect(n.attempts).toHaveLength(1);
  });

  it("a call that reaches the person is not tried again, whatever the policy", async () => {
    const { account, id } = await notify({ retry: { max_attempts: 3, delay_minutes: 5, on: ["busy", "no-answer", "voicemail", "failed"] } }, QUICKSTART_AGENT, "+14155550100");
    const n = await waitUntilWaitingOrEnded(account, id);
    expect(n).toMatchObject({ status: "completed", ended_reason: "customer-ended-call", call_result: { confirmed: true, reschedule_request: null } });
    expect(n.attempts).toEqual([expect.objectContaining({ number: 1, status: "completed", answered_by: "human" })]);
    expect((await eventData(id)).map((event) => [event.name, event.attempt])).toEqual([
      ["call.started", 1],
      ["call.ended", 1],
      ["call.summary", undefined],
    ]);
  });

  it("cancel between attempts stops them: nothing more is dialled", async () => {
    const { account, id } = await notify({ retry: { max_attempts: 3, delay_minutes: 5 } });
    expect(await waitUntilWaitingOrEnded(account, id)).toMatchObject({ status: "queued", queued_reason: "retry" });
    const res = await api("POST", `/api/v1/notifications/${id}/cancel`, { key: account.key });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: "canceled", ended_reason: "canceled", queued_reason: null, scheduled_for: null });
    expect(res.body.attempts).toHaveLength(1);
    expect(await runDurableObjectAlarm(callObject(id))).toBe(false);
    expect((await eventData(id)).map((event) => [event.ended_reason, event.attempt])).toEqual([
      ["customer-busy", 1],
      ["canceled", 2],
    ]);
  });

  it("an agent's retry is the default; the request's own wins", async () => {
    const agentInput = { ...QUICKSTART_AGENT, retry: { max_attempts: 2, delay_minutes: 10, on: ["busy"] } } as AgentInput;
    const fromAgent = await notify({}, agentInput);
    expect(fromAgent.created.body.notification.retry).toEqual({ max_attempts: 2, delay_minutes: 10, on: ["busy"] });
    const agent = await api("GET", `/api/v1/agents/${fromAgent.agent.id}`, { key: fromAgent.account.key });
    expect(agent.body.retry).toEqual({ max_attempts: 2, delay_minutes: 10, on: ["busy"] });
    const fromRequest = await notify({ retry: { max_attempts: 1, delay_minutes: 1 } }, agentInput);
    expect(fromRequest.created.body.notification.retry).toEqual({ max_attempts: 1, delay_minutes: 1, on: ["busy", "no-answer"] });
  });

  it.each([
    [{ max_attempts: 7, delay_minutes: 5 }, "retry.max_attempts"],
    [{ max_attempts: 0, delay_minutes: 5 }, "retry.max_attempts"],
    [{ max_attempts: 2, delay_minutes: 0 }, "retry.delay_minutes"],
    [{ max_attempts: 2, delay_minutes: 1441 }, "retry.delay_minutes"],
    [{ max_attempts: 2, delay_minutes: 5, on: ["sometimes"] }, "retry.on.0"],
    [{ max_attempts: 2, delay_minutes: 5, on: [] }, "retry.on"],
  ])("refuses retry %j (400 at %s), nothing written", async (retry, path) => {
    const { account, created } = await notify({ retry });
    expect(created.status).toBe(400);
    expect(created.body).toMatchObject({ code: "validation_error", details: [expect.objectContaining({ path })] });
    expect((await api("GET", "/api/v1/notifications", { key: account.key })).body).toEqual([]);
  });
});
