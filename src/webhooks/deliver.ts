import { and, eq, gte, sql } from "drizzle-orm";
import type { BatchItem } from "drizzle-orm/batch";
import { createDb, type Database } from "../db/client";
import { events, webhookAttempts, webhookDeliveries, webhookEndpoints } from "../db/schema";
import { getConfig, type Bindings, type Config } from "../env";
import { nowIso, uuidv7 } from "../lib/ids";
import { signatureHeaders } from "./sign";
import { checkWebhookUrl } from "./url-guard";

/** A queue message names a stored delivery; `manual` marks a retry asked for through the API. */
export interface DeliveryMessage {
  deliveryId: string;
  manual?: boolean;
}

export type WebhookSettings = Config["webhooks"];
type DeliveryRow = typeof webhookDeliveries.$inferSelect;
type EndpointRow = typeof webhookEndpoints.$inferSelect;
export type AttemptRow = typeof webhookAttempts.$inferSelect;

export interface DeliveryTarget {
  delivery: DeliveryRow;
  endpoint: EndpointRow;
  /** The event's stored bytes, sent as they are on every attempt. */
  payload: string;
}

export interface AttemptResult {
  attempt: AttemptRow;
  delivery: DeliveryRow;
  /** Set when the delivery is `retrying`: the delay before the next attempt. */
  retryInSeconds: number | null;
}

export const USER_AGENT = "Echo-Webhooks/1.0";
export const RESPONSE_BODY_LIMIT = 2048;
/** An endpoint is disabled when a delivery gives up while this many attempts in a row have failed. */
export const DISABLE_AFTER_CONSECUTIVE_FAILURES = 20;
export const GONE_REASON = "Endpoint answered 410 Gone";
/** Cloudflare Queues refuses a longer `delaySeconds` (12 h). */
const MAX_QUEUE_DELAY_SECONDS = 43_200;
const JITTER = 0.2;
const encoder = new TextEncoder();

/** The queue consumer: every message is acked or retried on its own, so one failure loses no other. */
export async function handleDeliveryBatch(batch: MessageBatch<DeliveryMessage>, env: Bindings): Promise<void> {
  let settings: WebhookSettings;
  try {
    settings = getConfig(env).webhooks;
  } catch (error) {
    console.error("[echo] webhook deliveries postponed: the configuration is invalid", error);
    batch.retryAll({ delaySeconds: 300 });
    return;
  }
  const db = createDb(env.DB);
  await Promise.all(
    batch.messages.map(async (message) => {
      try {
        const retryInSeconds = await processMessage(db, settings, message.body);
        if (retryInSeconds === null) message.ack();
        else message.retry({ delaySeconds: retryInSeconds });
      } catch (error) {
        console.error(`[echo] webhook delivery message ${message.id} failed unexpectedly; retrying it`, error);
        message.retry({ delaySeconds: Math.min(60 * message.attempts, 900) });
      }
    }),
  );
}

/** One message: returns the delay of the next attempt, or null when the message is done. */
async function processMessage(db: Database, settings: WebhookSettings, body: unknown): Promise<number | null> {
  if (!isDeliveryMessage(body)) {
    console.error("[echo] dropping a malformed webhook delivery message", body);
    return null;
  }
  const target = await loadDeliveryTarget(db, body.deliveryId);
  // Deleted with its endpoint, or already settled: a duplicate or stale message.
  if (!target || target.delivery.status === "success" || target.delivery.status === "failed") return null;
  if (target.endpoint.status === "disabled") {
    await db
      .update(webhookDeliveries)
      .set({ status: "failed", nextRetryAt: null, updatedAt: nowIso() })
      .where(and(eq(webhookDeliveries.id, target.delivery.id), eq(webhookDeliveries.projectId, target.delivery.projectId)));
    return null;
  }
  // The retry route sets the delivery back to `pending` before sending its manual message, so a
  // redelivery of that message (after a failed manual attempt) counts as an automatic retry.
  const triggeredBy = body.manual === true && target.delivery.status === "pending" ? "manual" : "auto";
  const result = await attemptDelivery(db, settings, target, triggeredBy);
  return result.retryInSeconds;
}

function isDeliveryMessage(body: unknown): body is DeliveryMessage {
  return typeof body === "object" && body !== null && typeof (body as { deliveryId?: unknown }).deliveryId === "string";
}

export async function loadDeliveryTarget(db: Database, deliveryId: string): Promise<DeliveryTarget | null> {
  const [row] = await db
    .select({ delivery: webhookDeliveries, endpoint: webhookEndpoints, payload: events.payload })
    .from(webhookDeliveries)
    .innerJoin(webhookEndpoints, and(eq(webhookEndpoints.id, webhookDeliveries.webhookEndpointId), eq(webhookEndpoints.projectId, webhookDeliveries.projectId)))
    .innerJoin(events, and(eq(events.id, webhookDeliveries.eventId), eq(events.projectId, webhookDeliveries.projectId)))
    .where(eq(webhookDeliveries.id, deliveryId))
    .limit(1);
  return row ?? null;
}

interface HttpOutcome {
  httpStatus: number | null;
  responseBody: string | null;
  retryAfter: string | null;
  errorMessage: string | null;
  durationMs: number;
}

/**
 * One attempt: POSTs the stored bytes, then records the attempt, the delivery's new state and the
 * endpoint's failure count in one D1 batch. The queue consumer and the /test route both use it.
 */
export async function attemptDelivery(db: Database, settings: WebhookSettings, target: DeliveryTarget, triggeredBy: "auto" | "manual"): Promise<AttemptResult> {
  const { delivery, endpoint, payload } = target;
  const attemptNumber = delivery.attemptCount + 1;
  // Checked again here: an endpoint saved under older rules must not reach a private network.
  const check = checkWebhookUrl(endpoint.url, settings.allowPrivateUrls);
  const outcome: HttpOutcome = check.ok
    ? await post(check.url, target, settings.timeoutMs)
    : { httpStatus: null, responseBody: null, retryAfter: null, errorMessage: `URL not allowed: ${check.reason}`, durationMs: 0 };
  const success = outcome.httpStatus !== null && outcome.httpStatus >= 200 && outcome.httpStatus < 300;
  const finishedAt = Date.now();
  const now = new Date(finishedAt).toISOString();

  const attempt: AttemptRow = {
    id: uuidv7(),
    deliveryId: delivery.id,
    attemptNumber,
    triggeredBy,
    httpStatus: outcome.httpStatus,
    responseBody: outcome.responseBody,
    durationMs: outcome.durationMs,
    success,
    errorMessage: outcome.errorMessage,
    createdAt: now,
  };

  const endpointWhere = and(eq(webhookEndpoints.id, endpoint.id), eq(webhookEndpoints.projectId, endpoint.projectId));
  const oneMoreFailure = sql`${webhookEndpoints.consecutiveFailures} + 1`;
  let status: DeliveryRow["status"];
  let retryInSeconds: number | null = null;
  const endpointUpdates: BatchItem<"sqlite">[] = [];
  if (success) {
    status = "success";
    endpointUpdates.push(db.update(webhookEndpoints).set({ consecutiveFailures: 0 }).where(endpointWhere));
  } else if (outcome.httpStatus === 410) {
    status = "failed";
    endpointUpdates.push(
      db.update(webhookEndpoints).set({ consecutiveFailures: oneMoreFailure, status: "disabled", disabledReason: GONE_REASON, updatedAt: now }).where(endpointWhere),
    );
  } else {
    endpointUpdates.push(db.update(webhookEndpoints).set({ consecutiveFailures: oneMoreFailure }).where(endpointWhere));
    // The schedule lists the delay before each attempt; entry `attemptNumber` precedes the next one.
    const scheduled = settings.retryScheduleSeconds[attemptNumber];
    if (scheduled !== undefined) {
      status = "retrying";
      retryInSeconds = retryDelaySeconds(scheduled, outcome.retryAfter, finishedAt);
    } else {
      status = "failed";
      // A delivery gave up: an endpoint failing this long in a row is switched off and says why.
      endpointUpdates.push(
        db
          .update(webhookEndpoints)
          .set({
            status: "disabled",
            disabledReason: sql`'Disabled after ' || ${webhookEndpoints.consecutiveFailures} || ' consecutive failed delivery attempts'`,
            updatedAt: now,
          })
          .where(and(endpointWhere, eq(webhookEndpoints.status, "active"), gte(webhookEndpoints.consecutiveFailures, DISABLE_AFTER_CONSECUTIVE_FAILURES))),
      );
    }
  }

  const updated: DeliveryRow = {
    ...delivery,
    status,
    attemptCount: attemptNumber,
    nextRetryAt: retryInSeconds === null ? null : new Date(finishedAt + retryInSeconds * 1000).toISOString(),
    updatedAt: now,
  };
  // The unique (delivery, attempt number) index makes a concurrent duplicate of this attempt fail as a whole.
  await db.batch([
    db.insert(webhookAttempts).values(attempt),
    db
      .update(webhookDeliveries)
      .set({ status: updated.status, attemptCount: updated.attemptCount, nextRetryAt: updated.nextRetryAt, updatedAt: now })
      .where(and(eq(webhookDeliveries.id, delivery.id), eq(webhookDeliveries.projectId, delivery.projectId))),
    ...endpointUpdates,
  ]);
  return { attempt, delivery: updated, retryInSeconds };
}

async function post(url: URL, { delivery, endpoint, payload }: DeliveryTarget, timeoutMs: number): Promise<HttpOutcome> {
  const started = Date.now();
  const body = encoder.encode(payload);
  const headers = {
    "content-type": "application/json",
    "user-agent": USER_AGENT,
    "X-Echo-Event": delivery.eventName,
    "X-Echo-Delivery": delivery.id,
    ...(await signatureHeaders(endpoint, delivery.eventId, body, started)),
  };
  let response: Response;
  try {
    // A redirect is answered, not followed: it is a failure like any other non-2xx.
    response = await fetch(url, { method: "POST", headers, body, redirect: "manual", signal: AbortSignal.timeout(timeoutMs) });
  } catch (error) {
    const timedOut = error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError");
    const errorMessage = timedOut ? `Timed out after ${timeoutMs} ms` : `Request failed: ${error instanceof Error ? error.message : String(error)}`;
    return { httpStatus: null, responseBody: null, retryAfter: null, errorMessage, durationMs: Date.now() - started };
  }
  const responseBody = await readPrefix(response, RESPONSE_BODY_LIMIT);
  return { httpStatus: response.status, responseBody, retryAfter: response.headers.get("retry-after"), errorMessage: null, durationMs: Date.now() - started };
}

/** The first `maxChars` characters of a response, without reading a large body to its end. */
async function readPrefix(response: Response, maxChars: number): Promise<string | null> {
  if (!response.body) return "";
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  try {
    while (text.length < maxChars) {
      const chunk = await reader.read();
      if (chunk.done) break;
      text += decoder.decode(chunk.value, { stream: true });
    }
    return text.slice(0, maxChars);
  } catch {
    // The body broke off or timed out; the status still counts.
    return null;
  } finally {
    reader.cancel().catch(() => undefined);
  }
}

/**
 * Seconds until the next attempt: the scheduled delay ±20 % jitter (so retries of many deliveries
 * spread out), or the receiver's `Retry-After` held within [delay, 2 × delay] so it can slow the
 * schedule down but never speed it up or stall it.
 */
export function retryDelaySeconds(scheduled: number, retryAfter: string | null, now: number, random: () => number = Math.random): number {
  const requested = parseRetryAfter(retryAfter, now);
  const seconds = requested === null ? scheduled * (1 + JITTER * (2 * random() - 1)) : Math.min(Math.max(requested, scheduled), 2 * scheduled);
  return Math.min(Math.round(seconds), MAX_QUEUE_DELAY_SECONDS);
}

/** `Retry-After` as seconds from `now`: delta-seconds or an HTTP date; null when absent or unreadable. */
export function parseRetryAfter(value: string | null, now: number): number | null {
  if (value === null) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  // An HTTP date starts with the day's name; Date.parse alone would take "-5" for a year.
  const date = /^[a-z]{3},/i.test(text) ? Date.parse(text) : Number.NaN;
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - now) / 1000));
}
