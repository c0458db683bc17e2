import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createAgent, createCustomer, getNotification, QUICKSTART_AGENT, QUICKSTART_VARIABLES, quickstartCustomer, storedEvents } from "../fixtures";
import { ANY_HOUR } from "../calls/live/support";
import { api, signup, type Account } from "../helpers";
import { callObjectSettled, reportCallStatus, twilioCallFor, type FakeTwilioCall } from "../fakes/twilio-peer";

/**
 * A status callback is answered once the call's object has queued it; its D1 writes and events
 * follow in the object's own order. What a user sees once the object's queued work has run is what
 * it was when the callback waited for them.
 */

async function placedCall(): Promise<{ account: Account; notificationId: string; call: FakeTwilioCall }> {
  const account = await signup();
  const agent = await createAgent(account, QUICKSTART_AGENT);
  const customer = await createCustomer(account, quickstartCustomer());
  const created = await api("POST", "/api/v1/notifications", { key: account.key, body: { customer_id: customer.id, agent_id: agent.id, variables: QUICKSTART_VARIABLES, ...ANY_HOUR } });
  expect(created.status).toBe(201);
  const notificationId: string = created.body.notification.id;
  return { account, notificationId, call: await twilioCallFor(notificationId) };
}

function callObject(notificationId: string) {
  return env.CALL_SESSION.get(env.CALL_SESSION.idFromName(notificationId));
}

/** Holds the call object's operation queue until the returned function is called. */
async function holdCallObject(notificationId: string): Promise<() => void> {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  await runInDurableObject(callObject(notificationId), (instance) => {
    void (instance as unknown as { lifecycle: { run(body: () => Promise<void>): Promise<unknown> } }).lifecycle.run(() => gate);
  });
  return release;
}

const eventNames = async (notificationId: string) => (await storedEvents(notificationId)).map((event) => event.event_name);

describe("status callbacks are answered once queued, applied after", () => {
  it("answers 204 while the object is busy, and applies the callbacks in order once it is free", async () => {
    const { account, notificationId, call } = await placedCall();
    const release = await holdCallObject(notificationId);

    // Answered although the object cannot apply anything yet: nothing is in D1.
    expect((await reportCallStatus(call, "ringing", {}, { settle: false })).status).toBe(204);
    expect((await reportCallStatus(call, "in-progress", { AnsweredBy: "human" }, { settle: false })).status).toBe(204);
    expect(await getNotification(account, notificationId)).toMatchObject({ status: "in_progress", call_status: "queued", started_at: null, answered_at: null });
    expect(await eventNames(notificationId)).toEqual([]);

    release();
    await callObjectSettled(notificationId);
    const n = await getNotification(account, notificationId);
    expect(n).toMatchObject({ status: "in_progress", call_status: "in-progress", answered_by: "human" });
    expect(n.started_at).not.toBeNull();
    expect(await eventNames(notificationId)).toEqual(["call.started"]);
  });

  it("callbacks in quick succession, duplicated and out of order: one call.started, one call.ended, in that order, nothing after the end", async () => {
    const { account, notificationId, call } = await placedCall();
    const initiated = { SequenceNumber: "0" };
    const ringing = { SequenceNumber: "1" };
    const answered = { SequenceNumber: "2", AnsweredBy: "human" };
    const completed = { SequenceNumber: "3", CallDuration: "4" };
    const release = await holdCallObject(notificationId);
    const sent: Array<[string, Record<string, string>]> = [
      ["ringing", ringing],
      ["initiated", initiated], // older than the ringing before it
      ["in-progress", answered],
      ["in-progress", answered], // a duplicate
      ["completed", completed],
      ["ringing", ringing], // late, after the end
      ["completed", completed],
    ];
    for (const [status, params] of sent) expect((await reportCallStatus(call, status, params, { settle: false })).status).toBe(204);
    expect(await eventNames(notificationId)).toEqual([]);
    release();
    await callObjectSettled(notificationId);

    const n = await getNotification(account, notificationId);
    expect(n).toMatchObject({ status: "completed", call_status: "completed", answered_by: "human" });
    expect(await eventNames(notificationId)).toEqual(["call.started", "call.ended", "call.summary"]);
    // The object forgot the call.
    await runInDurableObject(callObject(notificationId), async (_instance, state) => expect([...(await state.storage.list())]).toEqual([]));
  });
});
