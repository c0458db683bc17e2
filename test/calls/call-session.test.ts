import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { CallParams } from "../../src/calls/call";
import type { CallSession } from "../../src/calls/call-session";
import { createDb } from "../../src/db/client";
import { notifications } from "../../src/db/schema";
import { nowIso, randomHex, uuidv7 } from "../../src/lib/ids";
import { createAgent, createCustomer, getNotification, placeSimulatedCall, QUICKSTART_AGENT, QUICKSTART_OPENING, QUICKSTART_VARIABLES, quickstartCustomer, storedEvents, waitUntilEnded } from "../fixtures";
import { api, signup } from "../helpers";

const HOUR_MS = 3_600_000;
/** No model runs a simulated call: zero usage of the engine's model, at no cost. */
const SIMULATED_USAGE = {
  engine: "openai-realtime",
  model: "gpt-realtime",
  delegation_model: null,
  model_seconds: null,
  input_tokens: 0,
  output_tokens: 0,
  tokens: { input_text: 0, cached_input_text: 0, input_audio: 0, cached_input_audio: 0, output_text: 0, output_audio: 0 },
  estimated_cost_usd: 0,
};
/** Longer than a whole simulated call at the tests' time scale (0.01: about 65 ms). */
const PAST_THE_PACING_MS = 200;

function expectEnvelopes(events: Array<{ event_name: string; payload: string }>, notification: { id: string; customer_id: string }) {
  for (const event of events) {
    const envelope = JSON.parse(event.payload);
    expect(Object.keys(envelope)).toEqual(["event_id", "event_name", "created_at", "customer_id", "notification_id", "data"]);
    expect(envelope).toMatchObject({ event_id: expect.stringMatching(/^[0-9a-f-]{36}$/), event_name: event.event_name, customer_id: notification.customer_id, notification_id: notification.id });
    expect(Date.parse(envelope.created_at)).not.toBeNaN();
  }
  return events.map((event) => JSON.parse(event.payload).data);
}

function expectTimestampsInOrder(n: { created_at: string; started_at: string | null; answered_at: string | null; ended_at: string | null }) {
  const times = [n.created_at, n.started_at, n.answered_at, n.ended_at].filter((t): t is string => t !== null).map(Date.parse);
  expect(times).toEqual([...times].sort((a, b) => a - b));
}

describe("simulated calls, by number", () => {
  it("a normal number is answered by a cooperative person: opening first, result from the schema, three events", async () => {
    const { notification: n, events } = await placeSimulatedCall("+14155550100");
    expect(n).toMatchObject({
      status: "completed",
      call_status: "completed",
      ended_reason: "customer-ended-call",
      answered_by: "human",
      call_result: { confirmed: true, reschedule_request: null },
      error_message: null,
      simulated: true,
      usage: SIMULATED_USAGE,
    });
    expect(n.transcript.map((t: { role: string }) => t.role)).toEqual(["agent", "customer", "agent", "customer"]);
    expect(n.transcript[0].text).toBe(QUICKSTART_OPENING);
    const atMs = n.transcript.map((t: { at_ms: number }) => t.at_ms);
    expect(atMs[0]).toBeGreaterThanOrEqual(0);
    expect(atMs).toEqual([...atMs].sort((a, b) => a - b));
    expect(n.duration_seconds).toBeGreaterThan(0);
    expect(n.duration_seconds).toBeCloseTo((Date.parse(n.ended_at) - Date.parse(n.answered_at)) / 1000, 1);
    expect(n.started_at).not.toBeNull();
    expectTimestampsInOrder(n);

    expect(events.map((e) => e.event_name)).toEqual(["call.started", "call.ended", "call.summary"]);
    const [started, ended, summary] = expectEnvelopes(events, n);
    expect(started).toEqual({ status: "in_progress", attempt: 1, simulated: true });
    expect(ended).toEqual({ status: "completed", ended_reason: "customer-ended-call", attempt: 1, simulated: true });
    expect(summary).toEqual({
      analysis: { confirmed: true, reschedule_request: null },
      transcript: n.transcript.map((t: { role: string; text: string }) => `${t.role === "agent" ? "AI" : "Customer"}: ${t.text}`).join("\n"),
      started_at: n.started_at,
      ended_at: n.ended_at,
      ended_reason: "customer-ended-call",
      duration_seconds: n.duration_seconds,
      opted_out: false,
      consent: null,
      recording_available: false,
      usage: SIMULATED_USAGE,
      simulated: true,
    });
    expect(summary.transcript).toMatch(/^AI: Hi, is this John\? .*\nCustomer: Yes, that works for me\. Thank you!\nAI: .*\nCustomer: Bye!$/);
  });

  it.each([
    ["+14155550101", "busy", "customer-busy"],
    ["+12125550102", "no-answer", "customer-did-not-answer"],
  ])("%s rings and fails as %s, with only call.ended", async (phone, callStatus, endedReason) => {
    const { notification: n, events } = await placeSimulatedCall(phone);
    expect(n).toMatchObject({ status: "failed", call_status: callStatus, ended_reason: endedReason, answered_at: null, answered_by: null, transcript: [], call_result: null, duration_seconds: 0, usage: SIMULATED_USAGE });
    expect(n.started_at).not.toBeNull();
    expectTimestampsInOrder(n);
    expect(events.map((e) => e.event_name)).toEqual(["call.ended"]);
    expect(expectEnvelopes(events, n)).toEqual([{ status: "failed", ended_reason: endedReason, attempt: 1, simulated: true }]);
  });

  it("an openai-live agent's simulated call carries that engine's zero usage: its session seconds and delegation model", async () => {
    const { notification: n, events } = await placeSimulatedCall("+14155550100", { ...QUICKSTART_AGENT, engine: "openai-live" });
    const usage = { ...SIMULATED_USAGE, engine: "openai-live", model: "gpt-live-1", delegation_model: "gpt-4.1-mini", model_seconds: 0 };
    expect(n).toMatchObject({ status: "completed", simulated: true, usage });
    expect(expectEnvelopes(events, n)[2]).toMatchObject({ usage, simulated: true });
  });

  it("a number ending 5550104 fails without ringing, saying why", async () => {
    const { notification: n, events } = await placeSimulatedCall("+16175550104");
    expect(n).toMatchObject({ status: "failed", call_status: "failed", ended_reason: "error", started_at: null, answered_at: null, transcript: [], duration_seconds: 0 });
    expect(n.error_message).toMatch(/could not be connected/);
    expect(events.map((e) => e.event_name)).toEqual(["call.ended"]);
    expect(expectEnvelopes(events, n)).toEqual([{ status: "failed", ended_reason: "error", attempt: 1, simulated: true }]);
  });

  it("a number ending 5550103 reaches voicemail: the agent leaves its rendered voicemail message", async () => {
    const { notification: n, events } = await placeSimulatedCall("+13105550103", { ...QUICKSTART_AGENT, voicemail_message: "Hi {{recipient_first_name}}, please call {{business_name}} back." });
    expect(n).toMatchObject({ status: "completed", call_status: "completed", ended_reason: "voicemail", answered_by: "machine_end_beep", call_result: null });
    expect(n.transcript).toEqual([{ role: "agent", text: "Hi John, please call Acme Inc back.", at_ms: expect.any(Number) }]);
    expect(n.duration_seconds).toBeGreaterThan(0);
    expectTimestampsInOrder(n);
    expect(events.map((e) => e.event_name)).toEqual(["call.started", "call.ended", "call.summary"]);
    const [, ended, summary] = expectEnvelopes(events, n);
    expect(ended).toEqual({ status: "completed", ended_reason: "voicemail", attempt: 1, simulated: true });
    expect(summary).toMatchObject({ analysis: null, transcript: "AI: Hi John, please call Acme Inc back.", ended_reason: "voicemail" });
  });

  it("voicemail without a voicemail message: the agent hangs up", async () => {
    const { notification: n } = await placeSimulatedCall("+13105550103");
    expect(n).toMatchObject({ status: "completed", ended_reason: "voicemail", answered_by: "machine_end_beep", transcript: [], call_result: null });
  });

  it("a result the simulator cannot make fit the schema is null, and error_message says why", async () => {
    const { notification: n } = await placeSimulatedCall("+14155550100", {
      ...QUICKSTART_AGENT,
      output_schema: { type: "object", required: ["code"], properties: { code: { type: "string", pattern: "^[0-9]{6}$" } } },
    });
    expect(n).toMatchObject({ status: "completed", ended_reason: "customer-ended-call", call_result: null });
    expect(n.error_message).toMatch(/does not satisfy the agent's output_schema/);
  });
});

/**
 * A call held still: the notification row as the API writes it, and the Durable Object started with
 * its alarm pushed an hour away, so each `step` runs exactly one step of the simulator.
 */
async function frozenCall(phone = "+14155550100", overrides: Partial<CallParams> = {}) {
  const account = await signup();
  const customer = await createCustomer(account, quickstartCustomer(phone));
  const now = nowIso();
  const id = uuidv7();
  const callId = `call-${randomHex(16)}`;
  await createDb(env.DB).insert(notifications).values({
    id,
    projectId: account.projectId,
    businessId: account.businessId,
    customerId: customer.id,
    agentId: null,
    phoneId: customer.phones[0]!.id,
    targetPhoneE164: phone,
    message: "Your order shipped.",
    context: null,
    variables: {},
    collectFeedback: false,
    maxDurationSeconds: 180,
    renderedPrompt: "Tell John his order shipped.",
    firstMessage: null,
    voicemailMessage: null,
    outputSchema: QUICKSTART_AGENT.output_schema!,
    status: "in_progress",
    callId,
    callStatus: "queued",
    endedReason: null,
    callResult: null,
    transcript: [],
    startedAt: null,
    answeredAt: null,
    endedAt: null,
    durationSeconds: null,
    answeredBy: null,
    simulated: true,
    errorMessage: null,
    createdAt: now,
    updatedAt: now,
  });
  const params: CallParams = {
    notificationId: id,
    projectId: account.projectId,
    customerId: customer.id,
    simulated: true,
    callId,
    retry: null,
    attempt: 1,
    callingWindow: null,
    batchId: null,
    maxConcurrentCalls: 10,
    phoneId: customer.phones[0]!.id,
    phoneE164: phone,
    prompt: "Tell John his order shipped.",
    opening: "Hi John, your order shipped. Did you get the tracking email?",
    voicemailMessage: null,
    outputSchema: QUICKSTART_AGENT.output_schema!,
    maxDurationSeconds: 180,
    transferTo: null,
    record: false,
    screenerReply: "Hi, this is an automated assistant calling from Acme for John Smith.",
    consent: null,
    engine: "openai-realtime",
    ...overrides,
  };
  const stub = env.CALL_SESSION.get(env.CALL_SESSION.idFromName(id));
  await runInDurableObject(stub, async (instance: CallSession, state) => {
    await instance.start(params);
    await state.storage.setAlarm(Date.now() + HOUR_MS);
  });
  const step = () =>
    runInDurableObject(stub, async (instance: CallSession, state) => {
      await instance.alarm();
      if ((await state.storage.getAlarm()) !== null) await state.storage.setAlarm(Date.now() + HOUR_MS);
    });
  return { account, id, stub, step };
}

describe("POST /api/v1/notifications/{id}/cancel", () => {
  it("cancels a queued call: it is never placed", async () => {
    const { account, id, stub } = await frozenCall();
    const res = await api("POST", `/api/v1/notifications/${id}/cancel`, { key: account.key });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id, status: "canceled", call_status: "canceled", ended_reason: "canceled", started_at: null, answered_at: null, duration_seconds: 0 });
    expect(await runDurableObjectAlarm(stub)).toBe(false);
    expect((await storedEvents(id)).map((e) => e.event_name)).toEqual(["call.ended"]);
  });

  it("cancels a ringing call: it is never answered afterwards", async () => {
    const { account, id, stub, step } = await frozenCall();
    await step();
    expect(await getNotification(account, id)).toMatchObject({ status: "in_progress", call_status: "ringing", answered_at: null });

    const res = await api("POST", `/api/v1/notifications/${id}/cancel`, { key: account.key });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id, status: "canceled", call_status: "canceled", ended_reason: "canceled", answered_at: null, answered_by: null, transcript: [], call_result: null, duration_seconds: 0 });
    expect(res.body.started_at).not.toBeNull();

    // Nothing is left to run, and past the rest of the pacing nothing has changed.
    expect(await runDurableObjectAlarm(stub)).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, PAST_THE_PACING_MS));
    expect(await getNotification(account, id)).toEqual(res.body);
    const events = await storedEvents(id);
    expect(events.map((e) => JSON.parse(e.payload).data)).toEqual([{ status: "canceled", ended_reason: "canceled", attempt: 1, simulated: true }]);

    const again = await api("POST", `/api/v1/notifications/${id}/cancel`, { key: account.key });
    expect(again.status).toBe(409);
    expect(again.body.code).toBe("notification_already_ended");
  });

  it("hangs up a live call, keeping what was said", async () => {
    const { account, id, step } = await frozenCall();
    await step(); // ringing
    await step(); // answered
    await step(); // the agent's opening
    const res = await api("POST", `/api/v1/notifications/${id}/cancel`, { key: account.key });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: "canceled", ended_reason: "canceled", answered_by: "human", call_result: null });
    expect(res.body.transcript).toEqual([{ role: "agent", text: "Hi John, your order shipped. Did you get the tracking email?", at_ms: expect.any(Number) }]);
    expect(res.body.duration_seconds).toBeGreaterThan(0);
    const events = await storedEvents(id);
    expect(events.map((e) => e.event_name)).toEqual(["call.started", "call.ended", "call.summary"]);
    expect(JSON.parse(events[2]!.payload).data).toMatchObject({ analysis: null, ended_reason: "canceled", transcript: "AI: Hi John, your order shipped. Did you get the tracking email?" });
  });
});

describe("the call's Durable Object", () => {
  it("survives eviction mid-call with its transcript", async () => {
    const { account, id, stub, step } = await frozenCall();
    for (let i = 0; i < 4; i++) await step(); // ringing, answered, opening, reply
    await evictDurableObject(stub);
    await step(); // the agent's goodbye, from a fresh instance
    await evictDurableObject(stub);
    await runInDurableObject(stub, (_instance, state) => state.storage.setAlarm(Date.now()));
    const n = await waitUntilEnded(account, id);
    expect(n).toMatchObject({ status: "completed", ended_reason: "customer-ended-call", answered_by: "human", call_result: { confirmed: true, reschedule_request: null } });
    expect(n.transcript.map((t: { role: string; text: string }) => [t.role, t.text])).toEqual([
      ["agent", "Hi John, your order shipped. Did you get the tracking email?"],
      ["customer", "Yes, that works for me. Thank you!"],
      ["agent", "Wonderful, you're all set. Thank you for your time, and have a great day. Goodbye!"],
      ["customer", "Bye!"],
    ]);
    const atMs = n.transcript.map((t: { at_ms: number }) => t.at_ms);
    expect(atMs).toEqual([...atMs].sort((a, b) => a - b));
    expect((await storedEvents(id)).map((e) => e.event_name)).toEqual(["call.started", "call.ended", "call.summary"]);
  });

  it("keeps nothing once the call has ended: no record, no turns, no alarm", async () => {
    const { account, id, stub, step } = await frozenCall();
    for (let i = 0; i < 4; i++) await step(); // ringing, answered, opening, reply: two turns stored
    expect((await runInDurableObject(stub, (_instance, state) => state.storage.list())).size).toBe(3);
    await runInDurableObject(stub, (_instance, state) => state.storage.setAlarm(Date.now()));
    expect((await waitUntilEnded(account, id)).transcript).toHaveLength(4);
    await expect
      .poll(() => runInDurableObject(stub, async (_instance, state) => ({ keys: [...(await state.storage.list()).keys()], alarm: await state.storage.getAlarm() })))
      .toEqual({ keys: [], alarm: null });
  });

  it("hangs up at max_duration_seconds with exceeded-max-duration", async () => {
    const { account, id, step } = await frozenCall("+14155550100", { maxDurationSeconds: 0.001 });
    await step(); // ringing
    await step(); // answered: the deadline is now earlier than the agent's first words
    await step();
    const n = await getNotification(account, id);
    expect(n).toMatchObject({ status: "completed", call_status: "completed", ended_reason: "exceeded-max-duration", answered_by: "human", transcript: [], call_result: null });
    expect((await storedEvents(id)).map((e) => JSON.parse(e.payload).data.ended_reason ?? e.event_name)).toEqual(["call.started", "exceeded-max-duration", "exceeded-max-duration"]);
  });

  it("ends exactly once: a call whose notification already ended stops at its next step and emits nothing", async () => {
    const { account, id, stub, step } = await frozenCall();
    await step(); // ringing
    // The notification ends outside this object (e.g. the API gave up on a start it thought failed).
    await env.DB.prepare("UPDATE notifications SET status = 'failed', call_status = 'failed', ended_reason = 'error' WHERE id = ?").bind(id).run();
    await step(); // would answer
    expect(await getNotification(account, id)).toMatchObject({ status: "failed", call_status: "failed", answered_at: null });
    expect(await storedEvents(id)).toEqual([]);
    expect(await runDurableObjectAlarm(stub)).toBe(false);
  });
});

describe("an output_schema that cannot be used (a $ref loop, stored before such schemas were refused)", () => {
  const LOOPING_SCHEMA = {
    type: "object",
    required: ["a"],
    properties: { a: { $ref: "#/$defs/x" } },
    $defs: { x: { $ref: "#/$defs/y" }, y: { $ref: "#/$defs/x" } },
  };

  it("the call still ends, once, with every event: call_result null and error_message says why", async () => {
    const account = await signup();
    const agent = await createAgent(account, QUICKSTART_AGENT);
    await env.DB.prepare("UPDATE agents SET output_schema = ? WHERE id = ?").bind(JSON.stringify(LOOPING_SCHEMA), agent.id).run();
    const customer = await createCustomer(account, quickstartCustomer());
    const created = await api("POST", "/api/v1/notifications", { key: account.key, body: { customer_id: customer.id, agent_id: agent.id, variables: QUICKSTART_VARIABLES } });
    expect(created.status).toBe(201);
    const n = await waitUntilEnded(account, created.body.notification.id);
    expect(n).toMatchObject({ status: "completed", ended_reason: "customer-ended-call", answered_by: "human", call_result: null });
    expect(n.error_message).toMatch(/^The agent's output_schema cannot be used: output_schema\.\$defs\.y\.\$ref makes a cycle of \$refs/);
    expect((await storedEvents(n.id)).map((e) => e.event_name)).toEqual(["call.started", "call.ended", "call.summary"]);
  });

  it("a cancel mid-call is answered (200, canceled), not a 500", async () => {
    const { account, id, stub, step } = await frozenCall("+14155550100", { outputSchema: LOOPING_SCHEMA });
    for (let i = 0; i < 4; i++) await step(); // ringing, answered, the opening, the customer's reply
    const res = await api("POST", `/api/v1/notifications/${id}/cancel`, { key: account.key });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: "canceled", ended_reason: "canceled", call_result: null });
    expect(res.body.error_message).toMatch(/^The agent's output_schema cannot be used: /);
    expect((await storedEvents(id)).map((e) => e.event_name)).toEqual(["call.started", "call.ended", "call.summary"]);
    expect(await runDurableObjectAlarm(stub)).toBe(false);
  });
});
