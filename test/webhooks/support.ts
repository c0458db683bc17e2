/** Shared steps of the webhook tests: endpoints, emitting events, running the consumer and the sweeper. */
import { createExecutionContext, createMessageBatch, createScheduledController, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import type { BatchItem } from "drizzle-orm/batch";
import { expect, vi } from "vitest";
import worker from "../../src/index";
import { createDb } from "../../src/db/client";
import { eq } from "drizzle-orm";
import { events, webhookDeliveries, webhookEndpoints } from "../../src/db/schema";
import { deliveryEndpoint, deliveryEvent, type DeliveryMessage, type DeliveryTarget } from "../../src/webhooks/deliver";
import { enqueueDeliveries, prepareEvent, type EventName } from "../../src/webhooks/emit";
import { api, inbox, signup, uniqueName, type Account } from "../helpers";

export const db = createDb(env.DB);
export const WAIT = { timeout: 15_000, interval: 100 };

export async function createEndpoint(account: Account, inboxName: string, events: EventName[] = ["call.ended"]) {
  const res = await api("POST", `/api/v1/projects/${account.projectId}/webhooks`, { key: account.key, body: { url: `http://receiver.test/${inboxName}`, events } });
  expect(res.status).toBe(201);
  return res.body as { id: string; signing_secret: string };
}

/**
 * What the call code does: the event and its deliveries in one batch with the state change, then
 * the queue. `queue: false` stores them without queueing; a Queue may be handed in (e.g. one whose
 * sends fail, as the platform's can).
 */
export async function emit(account: Account, options: { eventName?: EventName; queue?: Queue<DeliveryMessage> | false } = {}) {
  const prepared = await prepareEvent(db, {
    projectId: account.projectId,
    notificationId: null,
    customerId: null,
    eventName: options.eventName ?? "call.ended",
    data: { status: "completed", ended_reason: "customer-ended-call", note: "naïve ✓" },
  });
  await db.batch(prepared.statements as [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]]);
  const queue = options.queue ?? env.WEBHOOK_QUEUE;
  const queued = queue === false ? 0 : await enqueueDeliveries(queue, prepared.deliveryIds);
  return { ...prepared, queued };
}

/**
 * A fresh tenant with one endpoint (its inbox named after `prefix`, which chooses how the fake
 * receiver answers) and one event emitted to it: the delivery to that endpoint.
 */
export async function endpointWithDelivery(prefix: string, options: { events?: EventName[]; queue?: Queue<DeliveryMessage> | false } = {}) {
  const account = await signup();
  const name = uniqueName(prefix);
  const endpoint = await createEndpoint(account, name, options.events);
  const deliveryId = (await emit(account, { queue: options.queue })).deliveryIds[0]!;
  return { account, name, endpoint, deliveryId };
}

/** A Queue binding whose sends are refused, as when the queue service is down. */
export function unavailableQueue(): Queue<DeliveryMessage> & { calls: number } {
  const queue = {
    calls: 0,
    async send() {
      queue.calls += 1;
      throw new Error("Queue send failed: service unavailable");
    },
    async sendBatch() {
      queue.calls += 1;
      throw new Error("Queue send failed: service unavailable");
    },
    async metrics() {
      return { backlogCount: 0, backlogBytes: 0 };
    },
  };
  return queue as unknown as Queue<DeliveryMessage> & { calls: number };
}

/** A Queue binding that keeps what it is given instead of delivering it. */
export function recordingQueue(): Queue<DeliveryMessage> & { sent: string[] } {
  const queue = {
    sent: [] as string[],
    async send(body: DeliveryMessage) {
      queue.sent.push(body.deliveryId);
    },
    async sendBatch(messages: Iterable<{ body: DeliveryMessage }>) {
      for (const message of messages) queue.sent.push(message.body.deliveryId);
    },
    async metrics() {
      return { backlogCount: 0, backlogBytes: 0 };
    },
  };
  return queue as unknown as Queue<DeliveryMessage> & { sent: string[] };
}

/** What the fake receiver's inbox `name` got, once it holds exactly `count` requests. */
export function waitForInbox(name: string, count: number) {
  return vi.waitFor(async () => {
    const requests = await inbox(name);
    expect(requests).toHaveLength(count);
    return requests;
  }, WAIT);
}

export async function getDelivery(account: Account, webhookId: string, deliveryId: string) {
  const res = await api("GET", `/api/v1/projects/${account.projectId}/webhooks/${webhookId}/deliveries/${deliveryId}`, { key: account.key });
  expect(res.status).toBe(200);
  return res.body;
}

export function waitForDelivery(account: Account, webhookId: string, deliveryId: string, status: string) {
  return vi.waitFor(async () => {
    const delivery = await getDelivery(account, webhookId, deliveryId);
    expect(delivery.status).toBe(status);
    return delivery;
  }, WAIT);
}

export async function getEndpoint(account: Account, webhookId: string) {
  return (await api("GET", `/api/v1/projects/${account.projectId}/webhooks/${webhookId}`, { key: account.key })).body;
}

/**
 * Runs the Worker's queue handler on a hand-made batch. The plugin's fake messages drop
 * `retry({ delaySeconds })`'s options, so the delays are read from a spy.
 */
export async function runConsumer(messages: Array<{ body: unknown; attempts?: number }>) {
  const batch = createMessageBatch<DeliveryMessage>(
    "echo-webhook-deliveries",
    messages.map((message, i) => ({ id: `message-${i}`, timestamp: new Date(), attempts: message.attempts ?? 1, body: message.body as DeliveryMessage })),
  );
  const retries = batch.messages.map((message) => vi.spyOn(message, "retry"));
  const ctx = createExecutionContext();
  await worker.queue(batch, env);
  const result = await getQueueResult(batch, ctx);
  const delays = Object.fromEntries(batch.messages.flatMap((message, i) => retries[i]!.mock.calls.map(([options]) => [message.id, options?.delaySeconds])));
  return { ...result, delays };
}

/** The cron trigger firing: the Worker's own `scheduled` handler, with the Worker's bindings or some replaced. */
export async function runSweeper(bindings: Partial<Cloudflare.Env> = {}) {
  await worker.scheduled(createScheduledController({ scheduledTime: Date.now(), cron: "* * * * *" }), { ...env, ...bindings });
}

/** The delivery with its endpoint and stored bytes, without claiming it. */
export async function target(deliveryId: string): Promise<DeliveryTarget> {
  const [found] = await db
    .select({ delivery: webhookDeliveries, endpoint: webhookEndpoints, payload: events.payload })
    .from(webhookDeliveries)
    .innerJoin(webhookEndpoints, deliveryEndpoint)
    .innerJoin(events, deliveryEvent)
    .where(eq(webhookDeliveries.id, deliveryId))
    .limit(1);
  if (!found) throw new Error(`delivery ${deliveryId} not found`);
  return found;
}

/** Rewrites a delivery's stored state: how tests move its clock (due time, claim) without sleeping. */
export async function setDelivery(deliveryId: string, columns: { next_retry_at?: string | null; lease_until?: string | null; status?: string }) {
  const names = Object.keys(columns);
  await env.DB.prepare(`UPDATE webhook_deliveries SET ${names.map((name) => `${name} = ?`).join(", ")} WHERE id = ?`)
    .bind(...Object.values(columns), deliveryId)
    .run();
}

export async function storedDelivery(deliveryId: string) {
  return env.DB.prepare("SELECT status, attempt_count, next_retry_at, lease_until, manual_retry FROM webhook_deliveries WHERE id = ?").bind(deliveryId).first<{
    status: string;
    attempt_count: number;
    next_retry_at: string | null;
    lease_until: string | null;
    manual_retry: number;
  }>();
}

export const secondsFromNow = (seconds: number) => new Date(Date.now() + seconds * 1000).toISOString();
