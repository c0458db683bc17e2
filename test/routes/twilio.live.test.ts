import { runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createAgent, createCustomer, getNotification, QUICKSTART_AGENT, QUICKSTART_VARIABLES, quickstartCustomer, storedEvents } from "../fixtures";
import { ANY_HOUR } from "../calls/live/support";
import { api, signup, type Account } from "../helpers";
import { callObjectSettled, MediaStreamPeer, reportCallStatus, reportMachineDetection, sendTwilioCallback, twilioCallFor, twilioSignature, type FakeTwilioCall } from "../fakes/twilio-peer";

const PUBLIC_BASE_URL = "https://echo.test";

/** A live notification whose call our Worker has placed on the fake Twilio (queued, nothing heard back yet). */
async function placedCall(): Promise<{ account: Account; notificationId: string; call: FakeTwilioCall }> {
  const account = await signup();
  const agent = await createAgent(account, QUICKSTART_AGENT);
  const customer = await createCustomer(account, quickstartCustomer());
  const created = await api("POST", "/api/v1/notifications", { key: account.key, body: { customer_id: customer.id, agent_id: agent.id, variables: QUICKSTART_VARIABLES, ...ANY_HOUR } });
  expect(created.status).toBe(201);
  const notificationId: string = created.body.notification.id;
  return { account, notificationId, call: await twilioCallFor(notificationId) };
}

async function expectRefused(response: Response, status: number, code: string) {
  expect(response.status).toBe(status);
  expect(await response.json()).toMatchObject({ statusCode: status, code, request_id: expect.any(String) });
}

function ringing(call: FakeTwilioCall): Record<string, string> {
  return { AccountSid: call.account_sid, CallSid: call.sid, CallStatus: "ringing", SequenceNumber: "1" };
}

describe("POST /twilio/status/:notificationId", () => {
  it("refuses a callback without Twilio's signature, or with a wrong one, and changes nothing", async () => {
    const { account, notificationId, call } = await placedCall();
    const before = await getNotification(account, notificationId);
    const url = `${PUBLIC_BASE_URL}/twilio/status/${notificationId}`;
    const params = ringing(call);

    await expectRefused(await sendTwilioCallback(url, params, { signature: null }), 403, "invalid_twilio_signature");
    await expectRefused(await sendTwilioCallback(url, params, { signature: await twilioSignature(url, params, "not-the-auth-token") }), 403, "invalid_twilio_signature");
    // Signed for another notification's callback URL, or for other parameters than the ones sent.
    await expectRefused(await sendTwilioCallback(url, params, { signature: await twilioSignature(`${PUBLIC_BASE_URL}/twilio/status/other`, params) }), 403, "invalid_twilio_signature");
    await expectRefused(await sendTwilioCallback(url, params, { signature: await twilioSignature(url, { ...params, CallStatus: "queued" }) }), 403, "invalid_twilio_signature");

    expect(await getNotification(account, notificationId)).toEqual(before);
  });

  it("refuses a signed body that is not a call status callback with a 400, and changes nothing", async () => {
    const { account, notificationId, call } = await placedCall();
    const before = await getNotification(account, notificationId);
    const url = `${PUBLIC_BASE_URL}/twilio/status/${notificationId}`;

    const garbage = await sendTwilioCallback(url, { hello: "world" });
    expect(garbage.status).toBe(400);
    expect(await garbage.json()).toMatchObject({ statusCode: 400, code: "validation_error", details: expect.arrayContaining([expect.objectContaining({ path: "CallSid" })]) });
    await expectRefused(await sendTwilioCallback(url, { ...ringing(call), CallStatus: "exploded" }), 400, "validation_error");

    expect(await getNotification(account, notificationId)).toEqual(before);
  });

  it("applies a signed callback", async () => {
    const { account, notificationId, call } = await placedCall();
    const response = await reportCallStatus(call, "ringing");
    expect(response.status).toBe(204);
    expect(await getNotification(account, notificationId)).toMatchObject({ status: "in_progress", call_status: "ringing" });
  });
});

describe("POST /twilio/amd/:notificationId (the answering machine detection verdict)", () => {
  function machineVerdict(call: FakeTwilioCall): Record<string, string> {
    return { AccountSid: call.account_sid, CallSid: call.sid, AnsweredBy: "machine_end_beep", MachineDetectionDuration: "2400" };
  }

  it("refuses a verdict without Twilio's signature, or with a wrong one, and changes nothing", async () => {
    const { account, notificationId, call } = await placedCall();
    expect((await reportCallStatus(call, "in-progress")).status).toBe(204);
    const before = await getNotification(account, notificationId);
    expect(before).toMatchObject({ call_status: "in-progress", answered_by: "human" });
    const url = `${PUBLIC_BASE_URL}/twilio/amd/${notificationId}`;
    const params = machineVerdict(call);

    await expectRefused(await sendTwilioCallback(url, params, { signature: null }), 403, "invalid_twilio_signature");
    await expectRefused(await sendTwilioCallback(url, params, { signature: await twilioSignature(url, params, "not-the-auth-token") }), 403, "invalid_twilio_signature");
    // Signed for the status callback URL, for another notification, or for another verdict.
    await expectRefused(await sendTwilioCallback(url, params, { signature: await twilioSignature(`${PUBLIC_BASE_URL}/twilio/status/${notificationId}`, params) }), 403, "invalid_twilio_signature");
    await expectRefused(await sendTwilioCallback(url, params, { signature: await twilioSignature(`${PUBLIC_BASE_URL}/twilio/amd/other`, params) }), 403, "invalid_twilio_signature");
    await expectRefused(await sendTwilioCallback(url, params, { signature: await twilioSignature(url, { ...params, AnsweredBy: "human" }) }), 403, "invalid_twilio_signature");
    // Refused before anything else: an unsigned body that is no verdict at all is a 403 too.
    await expectRefused(await sendTwilioCallback(url, { hello: "world" }, { signature: null }), 403, "invalid_twilio_signature");

    expect(await getNotification(account, notificationId)).toEqual(before);
  });

  it("refuses a signed body that is not a detection verdict with a 400, and changes nothing", async () => {
    const { account, notificationId, call } = await placedCall();
    expect((await reportCallStatus(call, "in-progress")).status).toBe(204);
    const before = await getNotification(account, notificationId);
    const url = `${PUBLIC_BASE_URL}/twilio/amd/${notificationId}`;

    const statusCallback = await sendTwilioCallback(url, ringing(call));
    expect(statusCallback.status).toBe(400);
    expect(await statusCallback.json()).toMatchObject({ statusCode: 400, code: "validation_error", details: expect.arrayContaining([expect.objectContaining({ path: "AnsweredBy" })]) });
    await expectRefused(await sendTwilioCallback(url, { ...machineVerdict(call), AnsweredBy: "robot" }), 400, "validation_error");

    expect(await getNotification(account, notificationId)).toEqual(before);
  });

  it("applies a signed verdict", async () => {
    const { account, notificationId, call } = await placedCall();
    expect((await reportCallStatus(call, "in-progress")).status).toBe(204);
    expect((await reportMachineDetection(call, "machine_end_beep")).status).toBe(204);
    // The agent has no voicemail_message, so the machine is hung up on at once.
    expect(await getNotification(account, notificationId)).toMatchObject({ status: "completed", ended_reason: "voicemail", answered_by: "machine_end_beep" });
  });
});

describe("GET /twilio/media/:notificationId (the Media Stream)", () => {
  it("refuses an upgrade without Twilio's signature for the stream URL, or with a wrong one, and changes nothing", async () => {
    const { account, notificationId, call } = await placedCall();
    const before = await getNotification(account, notificationId);
    const streamUrl = `wss://echo.test/twilio/media/${notificationId}`;
    const upgrade = (signature: string | null) =>
      exports.default.fetch(new Request(`https://echo.test/twilio/media/${notificationId}`, { headers: { Upgrade: "websocket", ...(signature === null ? {} : { "X-Twilio-Signature": signature }) } }));

    await expectRefused(await upgrade(null), 403, "invalid_twilio_signature");
    await expectRefused(await upgrade(await twilioSignature(streamUrl, {}, "not-the-auth-token")), 403, "invalid_twilio_signature");
    await expectRefused(await upgrade(await twilioSignature(`wss://echo.test/twilio/media/other`)), 403, "invalid_twilio_signature");
    // Twilio signs the wss:// URL it connected to, not its https:// form.
    await expectRefused(await upgrade(await twilioSignature(`https://echo.test/twilio/media/${notificationId}`)), 403, "invalid_twilio_signature");
    await expect(MediaStreamPeer.connect(call, { signature: null })).rejects.toThrow(/refused: 403/);

    expect(await getNotification(account, notificationId)).toEqual(before);
  });

  it("hands a signed upgrade to the call's Durable Object", async () => {
    const { call } = await placedCall();
    const peer = await MediaStreamPeer.connect(call);
    peer.close();
    await peer.closed;
  });
});

/**
 * A status callback is answered once the call's object has queued it; its D1 writes and events
 * follow in the object's own order. What a user sees once the object's queued work has run is what
 * it was when the callback waited for them.
 */
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
