import { and, eq } from "drizzle-orm";
import type { BatchItem } from "drizzle-orm/batch";
import type { Database } from "../db/client";
import { prepared, runStatement } from "../db/prepared";
import { events, webhookDeliveries, webhookEndpoints } from "../db/schema";
import { nowIso, uuidv7 } from "../lib/ids";
import type { DeliveryMessage } from "./deliver";

export const EVENT_NAMES = ["call.started", "call.ended", "call.summary", "batch.completed", "customer.opted_out"] as const;
export type EventName = (typeof EVENT_NAMES)[number];

export interface EventInput {
  projectId: string;
  notificationId: string | null;
  customerId: string | null;
  eventName: EventName;
  data: Record<string, unknown>;
}

export interface PreparedEvent {
  eventId: string;
  /** The exact bytes every subscribed endpoint receives, on every attempt. */
  payload: string;
  /** Insert the event and one delivery per subscribed active endpoint: batch them with the state change. */
  statements: BatchItem<"sqlite">[];
  deliveryIds: string[];
}

/** The body every delivery carries; `webhook.test` (not an EventName) uses it too. */
export function envelope(eventId: string, input: Pick<EventInput, "notificationId" | "customerId" | "data"> & { eventName: string }, createdAt: string): string {
  return JSON.stringify({
    event_id: eventId,
    event_name: input.eventName,
    created_at: createdAt,
    customer_id: input.customerId,
    notification_id: input.notificationId,
    data: input.data,
  });
}

/**
 * The outbox half of emitting: the caller writes `statements` in the same D1 batch as the state
 * change that caused the event, then calls `enqueueDeliveries`.
 */
export async function prepareEvent(db: Database, input: EventInput): Promise<PreparedEvent> {
  const [event] = await prepareEvents(db, input.projectId, [input]);
  return event!;
}

/** Read for every event a call emits (its start, its end), so its SQL is built once. */
const activeEndpointsRead = prepared(["projectId"], (db, p) =>
  db
    .select({ id: webhookEndpoints.id, events: webhookEndpoints.events })
    .from(webhookEndpoints)
    .where(and(eq(webhookEndpoints.projectId, p.projectId), eq(webhookEndpoints.status, "active"))),
);

/** `prepareEvent` for several events of one project, reading its endpoints once. */
export async function prepareEvents(db: Database, projectId: string, inputs: Omit<EventInput, "projectId">[]): Promise<PreparedEvent[]> {
  const endpoints = await runStatement(activeEndpointsRead.bind(db, { projectId }));
  return inputs.map((input) => eventStatements(db, { ...input, projectId }, endpoints));
}

function eventStatements(db: Database, input: EventInput, endpoints: { id: string; events: string[] }[]): PreparedEvent {
  const eventId = uuidv7();
  const createdAt = nowIso();
  const payload = envelope(eventId, input, createdAt);
  const subscribed = endpoints.filter((endpoint) => endpoint.events.includes(input.eventName));

  const statements: BatchItem<"sqlite">[] = [
    db.insert(events).values({
      id: eventId,
      projectId: input.projectId,
      notificationId: input.notificationId,
      customerId: input.customerId,
      eventName: input.eventName,
      payload,
      createdAt,
    }),
  ];
  const deliveryIds: string[] = [];
  for (const endpoint of subscribed) {
    const deliveryId = uuidv7();
    deliveryIds.push(deliveryId);
    statements.push(
      db.insert(webhookDeliveries).values({
        id: deliveryId,
        webhookEndpointId: endpoint.id,
        projectId: input.projectId,
        eventId,
        eventName: input.eventName,
        status: "pending",
        attemptCount: 0,
        nextRetryAt: createdAt,
        createdAt,
        updatedAt: createdAt,
      }),
    );
  }
  return { eventId, payload, statements, deliveryIds };
}

/**
 * Hands the stored deliveries to the queue; the message carries only the id. Never throws: the
 * deliveries are already stored, so a queue that refuses them (the platform failing) only delays
 * them — the outbox sweeper finds them once they are overdue. Returns how many the queue accepted.
 */
export async function enqueueDeliveries(queue: Queue<DeliveryMessage>, deliveryIds: string[], options: { delaySeconds?: number } = {}): Promise<number> {
  let accepted = 0;
  // sendBatch takes at most 100 messages.
  for (let i = 0; i < deliveryIds.length; i += 100) {
    const chunk = deliveryIds.slice(i, i + 100);
    try {
      await queue.sendBatch(chunk.map((deliveryId) => ({ body: { deliveryId } })), options);
      accepted += chunk.length;
    } catch (error) {
      console.error(`[echo] could not queue ${chunk.length} webhook deliveries; the sweeper will send them`, chunk, error);
    }
  }
  return accepted;
}
