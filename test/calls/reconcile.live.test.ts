import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { reconcileCalls } from "../../src/calls/reconcile";
import { count, storedEvents } from "../fixtures";
import { reportCallStatus, twilioCallFor } from "../fakes/twilio-peer";
import { refuseDialledLegs, refuseEndingCallsTo } from "./chaos";
import { getNotification, placeLiveCall, twilioUpdates, webhooks } from "./live/support";

/**
 * The call reconciler (the cron trigger) against live calls on the fake Twilio: a call whose final
 * status callback never came, or whose object never had it, still ends — from what Twilio says of
 * its leg — within the ring timeout + 2 minutes of its trigger, exactly once.
 */

/** A reconciler run as the cron would make it `minutes` from now. */
const reconcileIn = (minutes: number) => reconcileCalls(env, { now: Date.now() + minutes * 60_000 });

/** The fake Twilio's leg moves on with no callback to us: the callback Twilio sent was lost. */
async function dropFinalCallback(callSid: string, callStatus: string) {
  const response = await fetch(`https://api.twilio.com/_fake/calls/${callSid}`, { method: "POST", body: new URLSearchParams({ CallStatus: callStatus }) });
  expect(response.ok).toBe(true);
}

describe("the call reconciler", () => {
  it("a ringing call whose no-answer callback is lost ends failed / customer-did-not-answer once, by the ring timeout + 2 minutes", async () => {
    const call = await placeLiveCall({});
    const twilioCall = await twilioCallFor(call.notificationId);
    expect((await reportCallStatus(twilioCall, "ringing")).status).toBe(204);
    await dropFinalCallback(twilioCall.sid, "no-answer");

    // Not yet due at the first run after the trigger…
    expect(await reconcileIn(1)).toMatchObject({ checked: 0 });
    expect(await getNotification(call)).toMatchObject({ status: "in_progress", call_status: "ringing" });
    // …and ended by the run at the ring timeout (30 s) + 2 minutes.
    expect(await reconcileIn(2.5)).toEqual({ checked: 1, ended: 1 });
    expect(await getNotification(call)).toMatchObject({ status: "failed", call_status: "no-answer", ended_reason: "customer-did-not-answer", answered_at: null });
    const [ended] = await webhooks(call, ["call.ended"]);
    expect(ended.data).toEqual({ status: "failed", ended_reason: "customer-did-not-answer", attempt: 1, simulated: false });
    // Twilio had ended the leg: nothing to hang up. A later run finds nothing to do.
    expect(await twilioUpdates(call.notificationId)).toEqual([]);
    expect(await reconcileIn(10)).toEqual({ checked: 0, ended: 0 });
    expect((await storedEvents(call.notificationId)).map((event) => event.event_name)).toEqual(["call.ended"]);
  });

  it("the call object's own deadline asks Twilio too: a lost busy callback ends the call as busy", async () => {
    const call = await placeLiveCall({});
    const twilioCall = await twilioCallFor(call.notificationId);
    expect((await reportCallStatus(twilioCall, "ringing")).status).toBe(204);
    await dropFinalCallback(twilioCall.sid, "busy");
    // The object's alarm, due at the ring timeout + 30 s, runs now.
    expect(await runDurableObjectAlarm(env.CALL_SESSION.get(env.CALL_SESSION.idFromName(call.notificationId)))).toBe(true);
    expect(await getNotification(call)).toMatchObject({ status: "failed", call_status: "busy", ended_reason: "customer-busy" });
    expect(await twilioUpdates(call.notificationId)).toEqual([]);
    expect((await storedEvents(call.notificationId)).map((event) => event.event_name)).toEqual(["call.ended"]);
  });

  it("a call still ringing on Twilio at the object's deadline is hung up: customer-did-not-answer", async () => {
    const call = await placeLiveCall({});
    const twilioCall = await twilioCallFor(call.notificationId);
    expect((await reportCallStatus(twilioCall, "ringing")).status).toBe(204);
    expect(await runDurableObjectAlarm(env.CALL_SESSION.get(env.CALL_SESSION.idFromName(call.notificationId)))).toBe(true);
    expect(await getNotification(call)).toMatchObject({ status: "failed", ended_reason: "customer-did-not-answer" });
    expect(await twilioUpdates(call.notificationId)).toEqual([{ Status: "completed" }]);
  });

  it("a call that is still running is left alone and looked at again after its deadline", async () => {
    const call = await placeLiveCall({});
    const twilioCall = await twilioCallFor(call.notificationId);
    expect((await reportCallStatus(twilioCall, "ringing")).status).toBe(204);
    // Twilio's leg really is ringing still (a slow network): the call object says so.
    expect(await reconcileIn(2.5)).toEqual({ checked: 1, ended: 0 });
    expect(await getNotification(call)).toMatchObject({ status: "in_progress", call_status: "ringing" });
    expect(await twilioUpdates(call.notificationId)).toEqual([]);
    const [{ reconcile_at: next }] = (await env.DB.prepare("SELECT reconcile_at FROM notifications WHERE id = ?").bind(call.notificationId).all<{ reconcile_at: string }>()).results as [{ reconcile_at: string }];
    expect(Date.parse(next)).toBeGreaterThan(Date.now());
  });

  it("a notification whose start failed and could not even be marked failed is ended by the reconciler, once", async () => {
    const phone = "+14155550144";
    // D1 refuses the leg's CallSid (the start fails after the dial) and any end of the notification.
    const legs = await refuseDialledLegs(phone);
    const ends = await refuseEndingCallsTo(phone);
    let call: Awaited<ReturnType<typeof placeLiveCall>>;
    try {
      call = await placeLiveCall({}, { phone });
      expect(call.created.status).toBe(502);
      call.notificationId = call.created.body.notification_id;
      expect(await getNotification(call)).toMatchObject({ status: "in_progress" });
      // The object hung up what it had dialled, and kept nothing.
      expect(await twilioUpdates(call.notificationId)).toEqual([{ Status: "completed" }]);
    } finally {
      await legs.heal();
      await ends.heal();
    }
    expect(await reconcileIn(2.5)).toEqual({ checked: 1, ended: 1 });
    const n = await getNotification(call);
    expect(n).toMatchObject({ status: "failed", call_status: "failed", ended_reason: "error", error_message: "The call was lost before it could run" });
    const [ended] = await webhooks(call, ["call.ended"]);
    expect(ended.data).toEqual({ status: "failed", ended_reason: "error", attempt: 1, simulated: false });
    expect(await count("notifications", "id = ? AND status = 'in_progress'", call.notificationId)).toBe(0);
  });
});
