import { eq, sql } from "drizzle-orm";
import type { BatchItem } from "drizzle-orm/batch";
import type { Database } from "../db/client";
import { notifications } from "../db/schema";
import type { Bindings } from "../env";
import { nowIso } from "../lib/ids";
import { prepareEvents, enqueueDeliveries, type EventInput } from "../webhooks/emit";
import { isOpenStatus, type CallAttempt, type CallStatus, type CallTarget, type EndedReason, type NotificationStatus, type TranscriptTurn } from "./call";
import { firstReconcileAt } from "./reconcile";
import { transcriptText } from "./call-result";

/** How a notification ends, whatever ended it: the call object, the API or the reconciler. */

export interface CallEnd {
  target: CallTarget;
  endedReason: EndedReason;
  errorMessage: string | null;
  startedAt: string | null;
  endedAt: string;
  /** Someone or something answered: the call gets a call.summary. */
  connected: boolean;
  durationSeconds: number;
  transcript: TranscriptTurn[];
  callResult: Record<string, unknown> | null;
  /** Which attempt ends (from 1), and its row for `attempts[]` when it was dialled. */
  attempt: number;
  dialled: CallAttempt | null;
}

export function neverConnected(target: CallTarget, endedReason: EndedReason, errorMessage: string | null, attempt = 1): CallEnd {
  return { target, endedReason, errorMessage, startedAt: null, endedAt: nowIso(), connected: false, durationSeconds: 0, transcript: [], callResult: null, attempt, dialled: null };
}

/** The status an attempt that ended so has in `attempts[]` (and the notification, were it the last). */
export const attemptStatus = (endedReason: EndedReason) => END_STATUS[endedReason].status;

/** Appends an attempt to the notification's `attempts[]` in the same statement. */
const appendAttempt = (attempt: CallAttempt) => sql`json_insert(${notifications.attempts}, '$[#]', json(${JSON.stringify(attempt)}))`;

/** How a notification ends for each reason: its status and its call's final `call_status`. */
const END_STATUS: Record<EndedReason, { status: Exclude<NotificationStatus, "queued" | "in_progress">; callStatus: CallStatus }> = {
  "customer-ended-call": { status: "completed", callStatus: "completed" },
  "assistant-ended-call": { status: "completed", callStatus: "completed" },
  voicemail: { status: "completed", callStatus: "completed" },
  "exceeded-max-duration": { status: "completed", callStatus: "completed" },
  "silence-timed-out": { status: "completed", callStatus: "completed" },
  "customer-busy": { status: "failed", callStatus: "busy" },
  "customer-did-not-answer": { status: "failed", callStatus: "no-answer" },
  error: { status: "failed", callStatus: "failed" },
  canceled: { status: "canceled", callStatus: "canceled" },
};

/**
 * Ends a notification exactly once: the update, call.ended and (for a call that connected)
 * call.summary in one batch, then the deliveries are queued. False when it had already ended.
 * `extra` statements join the batch.
 */
export async function persistCallEnd(db: Database, queue: Bindings["WEBHOOK_QUEUE"], end: CallEnd, extra: BatchItem<"sqlite">[] = []): Promise<boolean> {
  const { target, endedReason } = end;
  const { status, callStatus } = END_STATUS[endedReason];
  const about = { notificationId: target.notificationId, customerId: target.customerId };
  const eventInputs: Omit<EventInput, "projectId">[] = [{ ...about, eventName: "call.ended", data: { status, ended_reason: endedReason, attempt: end.attempt, simulated: target.simulated } }];
  if (end.connected) {
    eventInputs.push({
      ...about,
      eventName: "call.summary",
      data: {
        analysis: end.callResult,
        transcript: transcriptText(end.transcript),
        started_at: end.startedAt,
        ended_at: end.endedAt,
        ended_reason: endedReason,
        duration_seconds: end.durationSeconds,
        simulated: target.simulated,
      },
    });
  }
  const prepared = await prepareEvents(db, target.projectId, eventInputs);
  const update = db
    .update(notifications)
    .set({
      // See guardedCallStatus: an ended notification makes the batch fail instead of ending twice.
      status: sql`CASE WHEN status IN ('queued', 'in_progress') THEN ${status} ELSE NULL END`,
      callStatus,
      endedReason,
      errorMessage: end.errorMessage,
      endedAt: end.endedAt,
      durationSeconds: end.durationSeconds,
      transcript: end.transcript,
      callResult: end.callResult,
      ...(end.dialled ? { attempts: appendAttempt(end.dialled) } : {}),
      scheduledFor: null,
      queuedReason: null,
      updatedAt: end.endedAt,
    })
    .where(eq(notifications.id, target.notificationId));
  try {
    await db.batch([update, ...prepared.flatMap((event) => event.statements), ...extra]);
  } catch (error) {
    const [row] = await db.select({ status: notifications.status }).from(notifications).where(eq(notifications.id, target.notificationId));
    if (row && !isOpenStatus(row.status)) return false;
    throw error;
  }
  await enqueueDeliveries(queue, prepared.flatMap((event) => event.deliveryIds));
  return true;
}

export interface AttemptToRetry {
  target: CallTarget;
  /** The attempt that just ended, as `attempts[]` keeps it. */
  ended: CallAttempt;
  /** When the next attempt is due, and the call id it will have. */
  retryAt: string;
  nextCallId: string;
}

/**
 * Ends one attempt of a notification that will try again: the attempt joins `attempts[]`, its
 * `call.ended` (with `attempt` and `retry_at`) is emitted, and the notification waits `queued`
 * (`queued_reason: retry`) for the next call — in one batch. False when the notification had ended
 * meanwhile (canceled).
 */
export async function persistAttemptBeforeRetry(db: Database, queue: Bindings["WEBHOOK_QUEUE"], { target, ended, retryAt, nextCallId }: AttemptToRetry): Promise<boolean> {
  const [event] = await prepareEvents(db, target.projectId, [
    {
      notificationId: target.notificationId,
      customerId: target.customerId,
      eventName: "call.ended",
      data: { status: ended.status, ended_reason: ended.ended_reason, attempt: ended.number, retry_at: retryAt, simulated: target.simulated },
    },
  ]);
  const update = db
    .update(notifications)
    .set({
      // As in persistCallEnd: a notification that is no longer in progress fails the batch.
      status: sql`CASE WHEN status = 'in_progress' THEN 'queued' ELSE NULL END`,
      attempts: appendAttempt(ended),
      callId: nextCallId,
      callStatus: "queued",
      startedAt: null,
      answeredAt: null,
      answeredBy: null,
      queuedReason: "retry",
      scheduledFor: retryAt,
      reconcileAt: firstReconcileAt(Date.parse(retryAt)),
      updatedAt: nowIso(),
    })
    .where(eq(notifications.id, target.notificationId));
  try {
    await db.batch([update, ...event!.statements]);
  } catch (error) {
    const [row] = await db.select({ status: notifications.status }).from(notifications).where(eq(notifications.id, target.notificationId));
    if (row && row.status !== "in_progress") return false;
    throw error;
  }
  await enqueueDeliveries(queue, event!.deliveryIds);
  return true;
}
