import { vi, expect } from "vitest";
import { createAgent, createCustomer, type AgentInput, getNotification as getNotificationById, QUICKSTART_AGENT, QUICKSTART_VARIABLES, quickstartCustomer, waitUntilEnded as waitUntilNotificationEnded } from "../../fixtures";
import { scriptLive, type LiveScript } from "../../fakes/live-client";
import { realtimeUsage, scriptRealtime, type RealtimeScript } from "../../fakes/realtime-client";
import { MediaStreamPeer, MULAW_SILENCE, reportCallStatus, twilioCallFor, type FakeTwilioCall } from "../../fakes/twilio-peer";
import { api, inbox, signup, uniqueName, type Account } from "../../helpers";
import type { EventName } from "../../../src/webhooks/emit";
import { createEndpoint } from "../../webhooks/support";

/** Live calls placed through the API, and Twilio's side of them played by the test (see live-driver.live.test.ts). */

/**
 * Live calls follow the default calling hours (08:00–21:00 on the callee's clock), which would make
 * a test's call wait or not depending on when the suite runs: the tests that are not about calling
 * hours place theirs at any hour.
 */
export const ANY_HOUR = { ignore_calling_hours: true } as const;

export const WAIT = { timeout: 15_000, interval: 20 };

/**
 * What each of a test's model responses reports having used: 300 text tokens in (200 cached), 120
 * audio in (20 cached), 25 text and 90 audio out.
 */
export const RESPONSE_USAGE = realtimeUsage({ text: 300, audio: 120, cachedText: 200, cachedAudio: 20 }, { text: 25, audio: 90 });

/**
 * A live call's `usage` after `responses` responses of RESPONSE_USAGE, at the live tests' MODEL_PRICES
 * (vitest.config.ts): each response costs (100 × 5 + 200 × 0.5 + 100 × 40 + 20 × 2.5 + 25 × 20 + 90 × 80) / 1M = $0.01235.
 */
export function expectedUsage(responses: number) {
  return {
    engine: "openai-realtime",
    model: "gpt-realtime",
    delegation_model: null,
    model_seconds: null,
    input_tokens: 420 * responses,
    output_tokens: 115 * responses,
    tokens: { input_text: 100 * responses, cached_input_text: 200 * responses, input_audio: 100 * responses, cached_input_audio: 20 * responses, output_text: 25 * responses, output_audio: 90 * responses },
    estimated_cost_usd: Math.round(0.01235 * responses * 1e6) / 1e6,
  };
}
export const FRAME_BYTES = 160;
/** A μ-law byte that is not one of the two silences: the fake's VAD hears speech. */
export const SPEECH = 0x10;

export interface LiveCall {
  account: Account;
  /** In the agent's prompt, so the fake model session of this call (either engine's) is found (and scripted) by it. */
  marker: string;
  notificationId: string;
  created: { status: number; body: any };
  inboxName: string;
  customerId: string;
}

export interface LiveCallOptions {
  phone?: string;
  idempotencyKey?: string;
  voicemailMessage?: string;
  /** More of the agent's fields (transfer_to, retry, …). */
  agent?: Partial<AgentInput>;
  /** The events the call's webhook subscribes to (its three call events by default). */
  events?: EventName[];
}

/**
 * A notification through the API, with the model's script for its call and a webhook for its
 * events. Both fakes (Realtime and GPT-Live) get the script: the agent's `engine` picks which one
 * the call talks to; fields of the other engine's fake are ignored.
 */
export async function placeLiveCall(script: RealtimeScript & LiveScript, options: LiveCallOptions = {}): Promise<LiveCall> {
  const account = await signup();
  const marker = `live-${crypto.randomUUID()}`;
  await scriptRealtime(marker, script);
  await scriptLive(marker, script);
  const agent = await createAgent(account, {
    ...QUICKSTART_AGENT,
    system_prompt: `${QUICKSTART_AGENT.system_prompt} (${marker})`,
    ...(options.voicemailMessage ? { voicemail_message: options.voicemailMessage } : {}),
    ...options.agent,
  });
  const customer = await createCustomer(account, quickstartCustomer(options.phone ?? "+14155552671"));
  const inboxName = uniqueName("live");
  await createEndpoint(account, inboxName, options.events ?? ["call.started", "call.ended", "call.summary"]);
  const created = await api("POST", "/api/v1/notifications", {
    key: account.key,
    body: { customer_id: customer.id, agent_id: agent.id, variables: QUICKSTART_VARIABLES, ...ANY_HOUR },
    headers: options.idempotencyKey ? { "Idempotency-Key": options.idempotencyKey } : {},
  });
  return { account, marker, notificationId: created.body?.notification?.id, created, inboxName, customerId: customer.id };
}

/** The call's notification (GET must answer 200). */
export const getNotification = (call: LiveCall) => getNotificationById(call.account, call.notificationId);

/** The call's notification once it is no longer in_progress. */
export const waitUntilEnded = (call: LiveCall) => waitUntilNotificationEnded(call.account, call.notificationId, WAIT);

/** Ringing, then answered by a person: what Twilio reports before the stream connects. */
export async function answer(twilioCall: FakeTwilioCall) {
  expect((await reportCallStatus(twilioCall, "ringing")).status).toBe(204);
  expect((await reportCallStatus(twilioCall, "in-progress", { AnsweredBy: "human" })).status).toBe(204);
}

/** Webhook bodies of a call, once all `expected` events have arrived, in the order they were emitted. */
export async function webhooks(call: LiveCall, expected: string[]) {
  return vi.waitFor(async () => {
    const bodies = (await inbox(call.inboxName)).map((request) => JSON.parse(request.body));
    expect(bodies.map((body) => body.event_name).sort()).toEqual([...expected].sort());
    return expected.map((name) => bodies.find((body) => body.event_name === name));
  }, WAIT);
}

/**
 * The caller's audio, silent until `say` writes speech into it: the peer reads each 20 ms frame
 * from this buffer as it sends it, so speech written just past the frames sent is heard next.
 */
export function callerLine(): Uint8Array {
  return new Uint8Array(8000 * 60).fill(MULAW_SILENCE);
}

/** Twilio's Media Stream connected, with a silent caller line that `say` can fill. */
export async function streamUp(twilioCall: FakeTwilioCall): Promise<{ peer: MediaStreamPeer; line: Uint8Array }> {
  const line = callerLine();
  return { peer: await MediaStreamPeer.connect(twilioCall, { callerAudio: line }), line };
}

/** The stream up and the greeting played to its end (the mark after its three chunks echoed). */
export async function greeted(twilioCall: FakeTwilioCall): Promise<{ peer: MediaStreamPeer; line: Uint8Array }> {
  const stream = await streamUp(twilioCall);
  await vi.waitFor(() => expect(stream.peer.marks).toHaveLength(1), WAIT);
  return stream;
}

export function say(peer: MediaStreamPeer, line: Uint8Array, frames = 6): void {
  const next = peer.sent.filter((message) => message.event === "media").length;
  line.fill(SPEECH, next * FRAME_BYTES, (next + frames) * FRAME_BYTES);
}

export async function twilioUpdates(notificationId: string) {
  return (await twilioCallFor(notificationId)).updates.map((update) => update.params);
}

