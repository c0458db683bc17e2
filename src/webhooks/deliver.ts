import { and, eq, inArray, isNull, lte, or, sql } from "drizzle-orm";
import type { BatchItem } from "drizzle-orm/batch";
import { createDb, type Database } from "../db/client";
import { events, webhookAttempts, webhookDeliveries, webhookEndpoints } from "../db/schema";
import { getConfig, type Bindings, type Config } from "../env";
import { nowIso, uuidv7 } from "../lib/ids";
import { signatureHeaders } from "./sign";
import { checkWebhookUrl } from "./url-guard";
import { errorText } from "../errors";

/**
 * A queue message only names a stored delivery. Everything else — whether it is due, who holds it,
 * whether the next attempt was asked for by hand — is read from D1 when it arrives, so a duplicate,
 * stale or re-enqueued message can never cause a second or early attempt.
 */
export interface DeliveryMessage {
  deliveryId: string;
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
export const GONE_REASON = "Endpoint answered 410 Gone";
/**
 * A claim outlives the attempt it covers: the request's timeout plus this margin for resolving the
 * host, signing, reading the answer and recording the attempt. A consumer that dies mid-attempt frees the
 * delivery when its claim expires, and the sweeper hands it out again.
 */
export const LEASE_MARGIN_MS = 20_000;
/**
 * How early a message may arrive and still count as due: clocks of different machines differ a
 * little. Anything earlier is a stale duplicate and is dropped (the delivery's own message, or the
 * sweeper, brings it back when it is due).
 */
export const DUE_TOLERANCE_MS = 1_000;

/**
 * The outbox's rules, shared by the consumer, the sweeper and the API: a delivery is sent while
 * active, once due, and only by whoever holds no expired lease on it.
 */
export const isActiveDelivery = () => inArray(webhookDeliveries.status, ["pending", "retrying"]);
/** Due at `atIso` (a delivery without a time is due at once). */
export const isDueBy = (atIso: string) => or(isNull(webhookDeliveries.nextRetryAt), lte(webhookDeliveries.nextRetryAt, atIso));
/** No attempt holds the delivery at `atIso`: never claimed, or the claim has run out. */
export const isLeaseFree = (atIso: string) => or(isNull(webhookDeliveries.leaseUntil), lte(webhookDeliveries.leaseUntil, atIso));
/** A delivery's event (the stored bytes), in the same project. */
export const deliveryEvent = and(eq(events.id, webhookDeliveries.eventId), eq(events.projectId, webhookDeliveries.projectId));
/** A delivery's endpoint, in the same project. */
export const deliveryEndpoint = and(eq(webhookEndpoints.id, webhookDeliveries.webhookEndpointId), eq(webhookEndpoints.projectId, webhookDeliveries.projectId));
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
  // Settled, held by another consumer, not yet due, or deleted with its endpoint: a duplicate or
  // stale message. Whoever holds the delivery (or the sweeper) takes care of what comes next.
  const target = await claimDelivery(db, body.deliveryId, leaseMs(settings));
  if (!target) return null;
  if (target.endpoint.status === "disabled") {
    // Ends `failed` and stays in the log: a manual retry after re-enabling sends it.
    await db
      .update(webhookDeliveries)
      .set({ status: "failed", nextRetryAt: null, leaseUntil: null, manualRetry: false, updatedAt: nowIso() })
      .where(and(eq(webhookDeliveries.id, target.delivery.id), eq(webhookDeliveries.projectId, target.delivery.projectId)));
    return null;
  }
  const result = await attemptDelivery(db, settings, target, target.delivery.manualRetry ? "manual" : "auto");
  return result.retryInSeconds;
}

/** How long a claim holds a delivery. */
export function leaseMs(settings: WebhookSettings): number {
  return settings.timeoutMs + LEASE_MARGIN_MS;
}

/**
 * Takes a delivery for one attempt, atomically: a conditional UPDATE sets the lease only if the
 * delivery is still pending or retrying, is due, and nobody holds an unexpired lease on it. Of two
 * consumers racing for the same delivery exactly one gets it back; the other gets null. The claim
 * and the read of what to send share one round trip to D1.
 */
export async function claimDelivery(db: Database, deliveryId: string, leaseForMs: number, now: number = Date.now()): Promise<DeliveryTarget | null> {
  const nowText = new Date(now).toISOString();
  const [claimed, rows] = await db.batch([
    db
      .update(webhookDeliveries)
      .set({ leaseUntil: new Date(now + leaseForMs).toISOString() })
      .where(
        and(
          eq(webhookDeliveries.id, deliveryId),
          isActiveDelivery(),
          isDueBy(new Date(now + DUE_TOLERANCE_MS).toISOString()),
          isLeaseFree(nowText),
        ),
      )
      .returning(),
    // Only the endpoint's columns and the payload: in a D1 batch, rows come back keyed by column
    // name, so a join selecting two tables' `id`, `project_id`, … would mix them up.
    db
      .select({ endpoint: webhookEndpoints, payload: events.payload })
      .from(webhookDeliveries)
      .innerJoin(webhookEndpoints, deliveryEndpoint)
      .innerJoin(events, deliveryEvent)
      .where(eq(webhookDeliveries.id, deliveryId))
      .limit(1),
  ]);
  const delivery = claimed[0];
  const rest = rows[0];
  return delivery && rest ? { delivery, endpoint: rest.endpoint, payload: rest.payload } : null;
}

function isDeliveryMessage(body: unknown): body is DeliveryMessage {
  return typeof body === "object" && body !== null && typeof (body as { deliveryId?: unknown }).deliveryId === "string";
}

interface HttpOutcome {
  httpStatus: number | null;
  responseBody: string | null;
  retryAfter: string | null;
  errorMessage: string | null;
  durationMs: number;
}

/** How an attempt went: a 2xx, 410 Gone (the receiver wants no more), or any other failure. */
type AttemptOutcome = "success" | "gone" | "failure";

/**
 * One attempt: POSTs the stored bytes, then records the attempt, the delivery's new state (which
 * also releases the claim) and the endpoint's health in one D1 batch. The queue consumer (after
 * claiming the delivery) and the /test route (which creates it claimed) both use it.
 */
export async function attemptDelivery(db: Database, settings: WebhookSettings, target: DeliveryTarget, triggeredBy: "auto" | "manual"): Promise<AttemptResult> {
  const { delivery, endpoint } = target;
  const attemptNumber = delivery.attemptCount + 1;
  // Checked again here, host name resolved anew: an endpoint saved under older rules, or whose name
  // has since been pointed elsewhere, must not reach a private network. A refusal is a failed
  // attempt like any other, in the log and retried. The lookup's few seconds fit in the lease's margin.
  const check = await checkWebhookUrl(endpoint.url, settings);
  const outcome: HttpOutcome = check.ok
    ? await post(check.url, target, settings.timeoutMs)
    : { httpStatus: null, responseBody: null, retryAfter: null, errorMessage: `URL not allowed: ${check.reason}`, durationMs: 0 };
  const result: AttemptOutcome = outcome.httpStatus !== null && outcome.httpStatus >= 200 && outcome.httpStatus < 300 ? "success" : outcome.httpStatus === 410 ? "gone" : "failure";
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
    success: result === "success",
    errorMessage: outcome.errorMessage,
    createdAt: now,
  };

  // The schedule lists the delay before each attempt; entry `attemptNumber` precedes the next one.
  const scheduled = result === "failure" ? settings.retryScheduleSeconds[attemptNumber] : undefined;
  const retryInSeconds = scheduled === undefined ? null : retryDelaySeconds(scheduled, outcome.retryAfter, finishedAt);
  const changes = {
    status: result === "success" ? "success" : retryInSeconds === null ? "failed" : "retrying",
    attemptCount: attemptNumber,
    nextRetryAt: retryInSeconds === null ? null : new Date(finishedAt + retryInSeconds * 1000).toISOString(),
    leaseUntil: null,
    manualRetry: false,
    updatedAt: now,
  } satisfies Partial<DeliveryRow>;
  // The unique (delivery, attempt number) index makes a concurrent duplicate of this attempt fail as a whole.
  await db.batch([
    db.insert(webhookAttempts).values(attempt),
    db
      .update(webhookDeliveries)
      .set(changes)
      .where(and(eq(webhookDeliveries.id, delivery.id), eq(webhookDeliveries.projectId, delivery.projectId))),
    ...endpointHealthUpdates(db, settings, endpoint, result, finishedAt),
  ]);
  return { attempt, delivery: { ...delivery, ...changes }, retryInSeconds };
}

/**
 * The endpoint's health after an attempt, computed in SQL so concurrent attempts compose:
 * a success clears the failure streak; a failure counts one more and starts the streak if none is
 * running; an endpoint whose streak has lasted `disableAfterSeconds` is disabled and says why;
 * 410 Gone disables it at once.
 */
function endpointHealthUpdates(db: Database, settings: WebhookSettings, endpoint: EndpointRow, outcome: AttemptOutcome, finishedAt: number): [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]] {
  const now = new Date(finishedAt).toISOString();
  const where = and(eq(webhookEndpoints.id, endpoint.id), eq(webhookEndpoints.projectId, endpoint.projectId));
  if (outcome === "success") {
    return [db.update(webhookEndpoints).set({ consecutiveFailures: 0, failingSince: null }).where(where)];
  }
  const failure = db
    .update(webhookEndpoints)
    .set({ consecutiveFailures: sql`${webhookEndpoints.consecutiveFailures} + 1`, failingSince: sql`coalesce(${webhookEndpoints.failingSince}, ${now})` })
    .where(where);
  if (outcome === "gone") {
    return [failure, db.update(webhookEndpoints).set({ status: "disabled", disabledReason: GONE_REASON, updatedAt: now }).where(and(where, eq(webhookEndpoints.status, "active")))];
  }
  const streakStartedBy = new Date(finishedAt - settings.disableAfterSeconds * 1000).toISOString();
  return [
    failure,
    db
      .update(webhookEndpoints)
      .set({
        status: "disabled",
        disabledReason: sql`${`Disabled after failing continuously for ${describeSpan(settings.disableAfterSeconds)}: `} || ${webhookEndpoints.consecutiveFailures} || ' failed attempts in a row since ' || ${webhookEndpoints.failingSince}`,
        updatedAt: now,
      })
      .where(and(where, eq(webhookEndpoints.status, "active"), lte(webhookEndpoints.failingSince, streakStartedBy))),
  ];
}

/** "5 days", "1 hour", "90 seconds": the configured span as people read it. */
export function describeSpan(seconds: number): string {
  const units: Array<[number, string]> = [
    [86_400, "day"],
    [3_600, "hour"],
    [60, "minute"],
  ];
  for (const [size, name] of units) {
    if (seconds % size === 0) {
      const count = seconds / size;
      return `${count} ${name}${count === 1 ? "" : "s"}`;
    }
  }
  return `${seconds} second${seconds === 1 ? "" : "s"}`;
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
  // One deadline for the whole exchange: answer and (the first 2 KB of) its body.
  const signal = AbortSignal.timeout(timeoutMs);
  let response: Response;
  try {
    // A redirect is answered, not followed: it is a failure like any other non-2xx.
    response = await fetch(url, { method: "POST", headers, body, redirect: "manual", signal });
  } catch (error) {
    const timedOut = error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError");
    const errorMessage = timedOut ? `Timed out after ${timeoutMs} ms` : `Request failed: ${errorText(error)}`;
    return { httpStatus: null, responseBody: null, retryAfter: null, errorMessage, durationMs: Date.now() - started };
  }
  const responseBody = await readPrefix(response, RESPONSE_BODY_LIMIT, signal);
  return { httpStatus: response.status, responseBody, retryAfter: response.headers.get("retry-after"), errorMessage: null, durationMs: Date.now() - started };
}

/** The first `maxChars` characters of a response, without reading a large body to its end or past the deadline. */
async function readPrefix(response: Response, maxChars: number, signal: AbortSignal): Promise<string | null> {
  if (!response.body) return "";
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  const stop = () => reader.cancel().catch(() => undefined);
  signal.addEventListener("abort", stop, { once: true });
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
    signal.removeEventListener("abort", stop);
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
