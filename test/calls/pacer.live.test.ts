import { abortAllDurableObjects, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { projectPacerName } from "../../src/calls/pacer";
import { createAgent, createCustomer, getNotification, QUICKSTART_AGENT, QUICKSTART_VARIABLES, quickstartCustomer } from "../fixtures";
import { fakeTwilioCalls, reportCallStatus, type FakeTwilioCall } from "../fakes/twilio-peer";
import { api, expectStatus, signup, type Account } from "../helpers";
import { ANY_HOUR, WAIT } from "./live/support";

/**
 * Pacing (API.md "Pacing") of live calls on the fake Twilio: a project runs at most
 * max_concurrent_calls calls at once and the deployment starts at most TWILIO_CPS a second (5 in the
 * live tests); a call over a limit waits queued (capacity) and starts, in due order, when a slot
 * frees. Calls stay ringing until the test ends them, so what is live is known at every step.
 */

const CPS = 5;

async function project(maxConcurrentCalls: number) {
  const account = await signup();
  await expectStatus(api("PATCH", `/api/v1/projects/${account.projectId}`, { key: account.key, body: { max_concurrent_calls: maxConcurrentCalls } }), 200);
  const agent = await createAgent(account, QUICKSTART_AGENT);
  const customer = await createCustomer(account, quickstartCustomer());
  const responses: Array<{ notification: Record<string, unknown>; call: Record<string, unknown> }> = [];
  const trigger = async () => {
    const res = await api("POST", "/api/v1/notifications", { key: account.key, body: { customer_id: customer.id, agent_id: agent.id, variables: QUICKSTART_VARIABLES, ...ANY_HOUR } });
    expect(res.status).toBe(201);
    responses.push(res.body);
    return res.body.notification.id as string;
  };
  return { account, trigger, responses };
}

/** The Twilio calls dialled for `ids`, in the order they were dialled. */
async function dialled(ids: string[]): Promise<Array<FakeTwilioCall & { notificationId: string; created_at: number }>> {
  const calls = (await fakeTwilioCalls()) as Array<FakeTwilioCall & { created_at: number }>;
  return calls
    .map((call) => ({ ...call, notificationId: String(call.params.StatusCallback).split("/").at(-1)! }))
    .filter((call) => ids.includes(call.notificationId))
    .sort((a, b) => a.created_at - b.created_at);
}

const untilDialled = (ids: string[], count: number) =>
  vi.waitFor(async () => {
    const calls = await dialled(ids);
    expect(calls.length).toBeGreaterThanOrEqual(count);
    return calls;
  }, WAIT);

async function openCalls(account: Account) {
  const { live_calls, queued_calls } = await expectStatus(api("GET", "/api/v1/project", { key: account.key }), 200);
  return { live_calls, queued_calls };
}

describe("pacing", () => {
  it("25 notifications, max_concurrent_calls 10: never more than 10 live, starts spaced by TWILIO_CPS, all placed in due order", async () => {
    const { account, trigger, responses } = await project(10);
    const ids: string[] = [];
    for (let i = 0; i < 25; i++) ids.push(await trigger());

    const first = await untilDialled(ids, 10);
    expect(first).toHaveLength(10);
    // The first ten are dialled one start apart: at most CPS a second.
    expect(first[9]!.created_at - first[0]!.created_at).toBeGreaterThanOrEqual((9 * 1000) / CPS - 50);
    // The first trigger dialled at once; the others answered queued for capacity (a slot, or a start).
    expect(responses[0]!.notification).toMatchObject({ status: "in_progress", queued_reason: null });
    for (const response of responses.slice(1)) expect(response).toMatchObject({ notification: { status: "queued", queued_reason: "capacity" }, call: { status: "queued" } });
    expect(await getNotification(account, ids[10]!)).toMatchObject({ status: "queued", queued_reason: "capacity" });
    expect(await openCalls(account)).toEqual({ live_calls: 10, queued_calls: 15 });

    // Each call that ends frees its slot for the next in line, never more than ten at once.
    for (let ended = 0; ended < 25; ended++) {
      const calls = await dialled(ids);
      expect(calls.length - ended).toBeLessThanOrEqual(10);
      expect((await reportCallStatus(calls[ended]!, "busy")).status).toBe(204);
      if (ended + 10 < 25) await untilDialled(ids, ended + 11);
    }
    const all = await dialled(ids);
    expect(all.map((call) => call.notificationId)).toEqual(ids);
    await vi.waitFor(async () => expect(await openCalls(account)).toEqual({ live_calls: 0, queued_calls: 0 }), WAIT);
  });

  it("a slot held by a call that vanished is reclaimed when its lease runs out", async () => {
    const { account, trigger } = await project(1);
    const vanished = await trigger();
    await untilDialled([vanished], 1);
    const next = await trigger();
    expect(await getNotification(account, next)).toMatchObject({ status: "queued", queued_reason: "capacity" });

    // The first call's object loses everything (it will never free its slot)…
    await runInDurableObject(env.CALL_SESSION.get(env.CALL_SESSION.idFromName(vanished)), (_, state) => state.storage.deleteAll());
    await abortAllDurableObjects();
    // …and its lease runs out: the pacer's alarm reclaims the slot and hands it on.
    const pacer = env.CALL_PACER.get(env.CALL_PACER.idFromName(projectPacerName(account.projectId)));
    await runInDurableObject(pacer, (_, state) => state.storage.put(`holder:${vanished}`, Date.now() - 1));
    expect(await runDurableObjectAlarm(pacer)).toBe(true);
    await untilDialled([next], 1);
    expect(await getNotification(account, next)).toMatchObject({ status: "in_progress" });
  });
});
