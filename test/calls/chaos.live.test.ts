import { abortAllDurableObjects, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { storedEvents } from "../fixtures";
import { reportCallStatus, twilioCallFor } from "../fakes/twilio-peer";
import { api } from "../helpers";
import { refuseDialledLegs, refuseEnding } from "./chaos";
import { ANY_HOUR, answer, getNotification, greeted, placeLiveCall, say, twilioUpdates, WAIT, waitUntilEnded, webhooks } from "./live/support";

/**
 * Every call ends exactly once, whatever breaks: live calls against the fakes of Twilio and OpenAI
 * while the call object is reset, D1 refuses writes, the start fails after the dial, or the
 * extraction never answers. Each case checks what users and peers see: the notification's end and
 * reason, the carrier leg hung up, and each webhook event delivered once. (The model socket dropping
 * for good is in live/live-driver.live.test.ts, "the model session"; a final status callback that
 * never arrives in reconcile.live.test.ts.)
 */

const callObject = (notificationId: string) => env.CALL_SESSION.get(env.CALL_SESSION.idFromName(notificationId));

/** The call object's stored end (how the call ended on the line), while D1 does not have it yet. */
function storedEnding(notificationId: string) {
  return runInDurableObject(callObject(notificationId), async (_instance, state) => (await state.storage.get<{ ending: Record<string, unknown> | null }>("call"))?.ending ?? null);
}

/** Each event of the call was stored once, and delivered once. */
async function expectEventsOnce(call: Parameters<typeof webhooks>[0], names: string[]) {
  expect((await storedEvents(call.notificationId)).map((event) => event.event_name)).toEqual(names);
  return webhooks(call, names);
}

/** A live call answered by a person who has spoken: the greeting, the reply and the agent's answer are stored. */
async function midConversation() {
  const call = await placeLiveCall({ responses: ["Hi John, this is Acme."], caller_turns: ["Yes, that works for me."] });
  const twilioCall = await twilioCallFor(call.notificationId);
  await answer(twilioCall);
  const { peer, line } = await greeted(twilioCall);
  say(peer, line);
  await vi.waitFor(async () => expect((await runInDurableObject(callObject(call.notificationId), (_, state) => state.storage.list({ prefix: "turn:" }))).size).toBe(3), WAIT);
  return { call, twilioCall, peer };
}

/** A call the agent ended after the person spoke, whose extraction never answers (the fake model hangs): its end is stored, the result still due. */
async function extracting() {
  const call = await placeLiveCall({ responses: ["Hi John, this is Acme.", "Thanks, goodbye!"], caller_turns: ["Yes. [extract-hang]"], end_call_after_turn: 1 });
  const twilioCall = await twilioCallFor(call.notificationId);
  await answer(twilioCall);
  const { peer, line } = await greeted(twilioCall);
  say(peer, line);
  await peer.closed;
  await vi.waitFor(async () => expect(await storedEnding(call.notificationId)).toMatchObject({ endedReason: "assistant-ended-call", result: null, extractions: 1 }), WAIT);
  return { call, twilioCall };
}

describe("chaos: a live call still ends exactly once", () => {
  it("the call object is reset mid-call: Twilio's end of the call ends it once, with what was said and its result", async () => {
    const { call, twilioCall, peer } = await midConversation();

    // A deploy resets the object: its sockets go, what it stored stays; Twilio hangs up the stream's call.
    await abortAllDurableObjects();
    await peer.closed;
    expect((await reportCallStatus(twilioCall, "completed", { CallDuration: "9" })).status).toBe(204);

    const n = await waitUntilEnded(call);
    expect(n).toMatchObject({ status: "completed", ended_reason: "customer-ended-call", answered_by: "human", call_result: { confirmed: true, reschedule_request: null } });
    expect(n.transcript.map((turn: { role: string }) => turn.role)).toEqual(["agent", "customer", "agent"]);
    // Twilio reported the leg over: nothing to hang up.
    expect(await twilioUpdates(call.notificationId)).toEqual([]);
    const [, ended] = await expectEventsOnce(call, ["call.started", "call.ended", "call.summary"]);
    expect(ended.data).toEqual({ status: "completed", ended_reason: "customer-ended-call", attempt: 1, simulated: false });
    expect(await runDurableObjectAlarm(callObject(call.notificationId))).toBe(false);
  });

  it("D1 refuses the end three times: the end is kept, retried on the alarm and lands once with its own reason", async () => {
    const { call, twilioCall, peer } = await midConversation();

    const outage = await refuseEnding(call.notificationId);
    try {
      // The caller hangs up while D1 is down; the alarm retries the write (1 s, then 2 s later), and
      // its time passing is never taken for the watchdog's or max duration's: the reason stays.
      peer.stop();
      await vi.waitFor(async () => {
        const ending = await storedEnding(call.notificationId);
        expect(ending).toMatchObject({ endedReason: "customer-ended-call", errorMessage: null });
        expect(ending!.failedWrites).toBeGreaterThanOrEqual(3);
      }, WAIT);
      expect(await getNotification(call)).toMatchObject({ status: "in_progress", ended_reason: null });
      // Twilio's final callback meanwhile changes nothing.
      expect((await reportCallStatus(twilioCall, "completed", { CallDuration: "9" })).status).toBe(204);
    } finally {
      await outage.heal();
    }
    expect(await runDurableObjectAlarm(callObject(call.notificationId))).toBe(true);
    const n = await waitUntilEnded(call);
    expect(n).toMatchObject({ status: "completed", ended_reason: "customer-ended-call", call_result: { confirmed: true, reschedule_request: null }, error_message: null });
    expect(n.transcript).toHaveLength(3);
    const [, ended] = await expectEventsOnce(call, ["call.started", "call.ended", "call.summary"]);
    expect(ended.data.ended_reason).toBe("customer-ended-call");
    expect(await runDurableObjectAlarm(callObject(call.notificationId))).toBe(false);
  });

  it("the start fails right after the dial: the leg is hung up and the notification fails once, with a 502", async () => {
    const phone = "+14155550142";
    const outage = await refuseDialledLegs(phone);
    let call: Awaited<ReturnType<typeof placeLiveCall>>;
    try {
      call = await placeLiveCall({}, { phone });
    } finally {
      await outage.heal();
    }
    expect(call.created.status).toBe(502);
    expect(call.created.body).toMatchObject({ code: "call_start_failed", notification_id: expect.any(String) });
    call.notificationId = call.created.body.notification_id;
    expect(await getNotification(call)).toMatchObject({ status: "failed", call_status: "failed", ended_reason: "error", error_message: "The call could not be started" });
    // The leg Twilio had already placed was hung up before it could ring on.
    expect(await twilioUpdates(call.notificationId)).toEqual([{ Status: "completed" }]);
    const [ended] = await expectEventsOnce(call, ["call.ended"]);
    expect(ended.data).toEqual({ status: "failed", ended_reason: "error", attempt: 1, simulated: false });
    // A callback for the leg reaches an object with no call: the leg still up is hung up again, nothing else changes.
    const twilioCall = await twilioCallFor(call.notificationId);
    expect((await reportCallStatus(twilioCall, "ringing")).status).toBe(204);
    expect(await twilioUpdates(call.notificationId)).toEqual([{ Status: "completed" }, { Status: "completed" }]);
    expect((await storedEvents(call.notificationId)).map((event) => event.event_name)).toEqual(["call.ended"]);
  });

  it("the notification is ended outside the call object: the call's next callback hangs its leg up", async () => {
    const call = await placeLiveCall({});
    const twilioCall = await twilioCallFor(call.notificationId);
    // E.g. the API failed it after a start it took for failed, while the object had dialled.
    await env.DB.prepare("UPDATE notifications SET status = 'failed', call_status = 'failed', ended_reason = 'error' WHERE id = ?").bind(call.notificationId).run();
    expect((await reportCallStatus(twilioCall, "ringing")).status).toBe(204);
    expect(await twilioUpdates(call.notificationId)).toEqual([{ Status: "completed" }]);
    expect(await getNotification(call)).toMatchObject({ status: "failed", call_status: "failed", answered_at: null });
    expect(await storedEvents(call.notificationId)).toEqual([]);
    expect(await runDurableObjectAlarm(callObject(call.notificationId))).toBe(false);
  });

  it("the call object lost its record of a dialled call: a cancel still hangs up the leg, known from D1", async () => {
    const call = await placeLiveCall({});
    const twilioCall = await twilioCallFor(call.notificationId);
    expect((await reportCallStatus(twilioCall, "ringing")).status).toBe(204);
    await runInDurableObject(callObject(call.notificationId), (_, state) => state.storage.deleteAll());
    await abortAllDurableObjects();
    const res = await api("POST", `/api/v1/notifications/${call.notificationId}/cancel`, { key: call.account.key });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: "canceled", ended_reason: "canceled" });
    expect(await twilioUpdates(call.notificationId)).toEqual([{ Status: "completed" }]);
    await expectEventsOnce(call, ["call.ended"]);
  });

  it("the start fails on a notification that had already ended: the Idempotency-Key is freed all the same", async () => {
    const phone = "+14155550143";
    // D1 fails the new notification as soon as it is written (as the object would on its way to a
    // failure) and refuses the leg's CallSid, so the start fails after the notification ended.
    const endsAtOnce = `chaos_${crypto.randomUUID().replaceAll("-", "")}`;
    await env.DB.prepare(
      `CREATE TRIGGER ${endsAtOnce} AFTER INSERT ON notifications WHEN NEW.target_phone_e164 = '${phone}' BEGIN UPDATE notifications SET status = 'failed', call_status = 'failed', ended_reason = 'error' WHERE id = NEW.id; END`,
    ).run();
    const outage = await refuseDialledLegs(phone);
    const key = `chaos-${crypto.randomUUID()}`;
    let first: Awaited<ReturnType<typeof placeLiveCall>>;
    try {
      first = await placeLiveCall({}, { phone, idempotencyKey: key });
    } finally {
      await outage.heal();
      await env.DB.prepare(`DROP TRIGGER ${endsAtOnce}`).run();
    }
    expect(first.created.status).toBe(502);

    // The retry with the same key places a new call instead of replaying the failed one.
    const notification = await getNotification({ ...first, notificationId: first.created.body.notification_id });
    const retry = await api("POST", "/api/v1/notifications", {
      key: first.account.key,
      headers: { "Idempotency-Key": key },
      body: { customer_id: notification.customer_id, agent_id: notification.agent_id, variables: { appointment_time: "Thursday March 20th at 2:00 PM", doctor_name: "Dr. Patel" }, ...ANY_HOUR },
    });
    expect(retry.status).toBe(201);
    expect(retry.headers.get("idempotent-replayed")).toBeNull();
    expect(retry.body.notification.id).not.toBe(notification.id);
  });

  it("the extraction never answers: callbacks and a cancel are answered meanwhile, and the call ends at its time limit once", async () => {
    const { call, twilioCall } = await extracting();

    // The extraction is running outside the call's queue: these are answered before it ends.
    expect((await reportCallStatus(twilioCall, "completed", { CallDuration: "5" })).status).toBe(204);
    const cancel = await api("POST", `/api/v1/notifications/${call.notificationId}/cancel`, { key: call.account.key });
    expect(cancel.status).toBe(409);
    expect(cancel.body).toMatchObject({ code: "notification_already_ended", message: "The notification's call has already ended (its result is being prepared)" });
    expect(await getNotification(call)).toMatchObject({ status: "in_progress" });

    const n = await waitUntilEnded(call);
    expect(n).toMatchObject({ status: "completed", ended_reason: "assistant-ended-call", call_result: null, error_message: "Extracting call_result took longer than 3000 ms" });
    const [, , summary] = await expectEventsOnce(call, ["call.started", "call.ended", "call.summary"]);
    expect(summary.data.analysis).toBeNull();
  });

  it("the call object is reset while it extracts: the extraction starts again from what it stored, and the call ends once", async () => {
    const { call } = await extracting();

    await abortAllDurableObjects();
    // The object's alarm (the extraction's time limit) finds the end it stored, with no extraction running.
    expect(await runDurableObjectAlarm(callObject(call.notificationId))).toBe(true);
    expect(await storedEnding(call.notificationId)).toMatchObject({ endedReason: "assistant-ended-call", result: null, extractions: 2 });
    const n = await waitUntilEnded(call);
    expect(n).toMatchObject({ status: "completed", ended_reason: "assistant-ended-call", call_result: null, error_message: "Extracting call_result took longer than 3000 ms" });
    await expectEventsOnce(call, ["call.started", "call.ended", "call.summary"]);
  });
});
