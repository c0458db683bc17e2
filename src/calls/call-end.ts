import { count, eq, sql } from "drizzle-orm";
import type { BatchItem } from "drizzle-orm/batch";
import type { Database } from "../db/client";
import { batches, notifications } from "../db/schema";
import type { Bindings, OpenAIConfig } from "../env";
import { nowIso } from "../lib/ids";
import { prepareEvents, enqueueDeliveries, type EventInput } from "../webhooks/emit";
import { DEFAULT_VOICE_ENGINE, isOpenStatus, NOTIFICATION_STATUSES, OPEN_NOTIFICATION_STATUSES, type CallAttempt, type CallStatus, type CallTarget, type Consent, type EndedReason, type NotificationStatus, type TranscriptTurn } from "./call";
import { firstReconcileAt } from "./reconcile";
import { transcriptText } from "./call-result";
import { noUsage, type CallUsage } from "./usage";

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
  /** The person asked not to be called again during the call. */
  optedOut: boolean;
  /** The customer's consent record the call was placed on. */
  consent: Consent | null;
  /** The call's recording in R2, and when the retention deletes it; null: none. */
  recording: { key: string; expiresAt: string } | null;
  /** What the notification's calls used, summed over its attempts, this one included. */
  usage: CallUsage;
}

export function neverConnected(target: CallTarget, endedReason: EndedReason, errorMessage: string | null, usage: CallUsage, attempt = 1): CallEnd {
  return { target, endedReason, errorMessage, startedAt: null, endedAt: nowIso(), connected: false, durationSeconds: 0, transcript: [], callResult: null, attempt, dialled: null, optedOut: false, consent: null, recording: null, usage };
}

/**
 * The usage of a notification ended without its call object's record of the call (lost, or never
 * there): what its earlier attempts stored, else none — no model session of it is known.
 */
export async function storedUsage(db: Database, notificationId: string, models: OpenAIConfig): Promise<CallUsage> {
  const [row] = await db.select({ usage: notifications.usage, engine: notifications.engine }).from(notifications).where(eq(notifications.id, notificationId));
  return row?.usage ?? noUsage(row?.engine ?? DEFAULT_VOICE_ENGINE, models);
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
  transferred: { status: "completed", callStatus: "completed" },
  blocked: { status: "failed", callStatus: "canceled" },
  "opted-out": { status: "failed", callStatus: "canceled" },
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
        opted_out: end.optedOut,
        consent: end.consent,
        recording_available: end.recording !== null,
        usage: end.usage,
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
      recordingKey: end.recording?.key ?? null,
      recordingExpiresAt: end.recording?.expiresAt ?? null,
      usage: end.usage,
      scheduledFor: null,
      queuedReason: null,
      updatedAt: end.endedAt,
    })
    .where(eq(notifications.id, target.notificationId));
  if (!(await writeUnlessEnded(db, target.notificationId, [update, ...prepared.flatMap((event) => event.statements), ...extra], (status) => !isOpenStatus(status)))) return false;
  await enqueueDeliveries(queue, prepared.flatMap((event) => event.deliveryIds));
  if (target.batchId !== null) await completeBatchIfDone(db, queue, target.projectId, target.batchId);
  return true;
}

/**
 * Writes a notification's guarded change with its events in one batch. The guard makes the batch
 * fail when the notification is no longer where the change expects it; false then, when `moved`
 * says its status is why — any other failure is thrown.
 */
async function writeUnlessEnded(db: Database, notificationId: string, statements: [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]], moved: (status: NotificationStatus) => boolean): Promise<boolean> {
  try {
    await db.batch(statements);
    return true;
  } catch (error) {
    const [row] = await db.select({ status: notifications.status }).from(notifications).where(eq(notifications.id, notificationId));
    if (row && moved(row.status)) return false;
    throw error;
  }
}

/** A batch's notifications by status (every status, 0 where none). */
export async function batchCounts(db: Database, batchId: string): Promise<Record<NotificationStatus, number>> {
  const rows = await db.select({ status: notifications.status, count: count() }).from(notifications).where(eq(notifications.batchId, batchId)).groupBy(notifications.status);
  return Object.fromEntries(NOTIFICATION_STATUSES.map((status) => [status, rows.find((row) => row.status === status)?.count ?? 0])) as Record<NotificationStatus, number>;
}

/**
 * After a notification of a batch ended: if none of the batch is open any more, the batch is
 * completed and `batch.completed` emitted with its counts — once, whichever end came last (the
 * update only applies while the batch is not completed, and each end checks after its own write).
 */
export async function completeBatchIfDone(db: Database, queue: Bindings["WEBHOOK_QUEUE"], projectId: string, batchId: string): Promise<void> {
  const counts = await batchCounts(db, batchId);
  if (OPEN_NOTIFICATION_STATUSES.some((status) => counts[status] > 0)) return;
  const completedAt = nowIso();
  const [event] = await prepareEvents(db, projectId, [{ notificationId: null, customerId: null, eventName: "batch.completed", data: { batch_id: batchId, counts } }]);
  // As guardedCallStatus: a batch already completed makes the NOT NULL `total` refuse the write, so
  // the event written with it is never stored twice.
  const complete = db
    .update(batches)
    .set({ completedAt, total: sql`CASE WHEN completed_at IS NULL THEN total ELSE NULL END`, updatedAt: completedAt })
    .where(eq(batches.id, batchId));
  try {
    await db.batch([complete, ...event!.statements]);
  } catch (error) {
    const [batch] = await db.select({ completedAt: batches.completedAt }).from(batches).where(eq(batches.id, batchId));
    if (batch?.completedAt) return;
    throw error;
  }
  await enqueueDeliveries(queue, event!.deliveryIds);
}

export interface AttemptToRetry {
  target: CallTarget;
  /** The attempt that just ended, as `attempts[]` keeps it. */
  ended: CallAttempt;
  /** When the next attempt is due, and the call id it will have. */
  retryAt: string;
  nextCallId: string;
  /** What the notification's calls used so far, this attempt included. */
  usage: CallUsage;
}

/**
 * Ends one attempt of a notification that will try again: the attempt joins `attempts[]`, its
 * `call.ended` (with `attempt` and `retry_at`) is emitted, and the notification waits `queued`
 * (`queued_reason: retry`) for the next call — in one batch. False when the notification had ended
 * meanwhile (canceled).
 */
export async function persistAttemptBeforeRetry(db: Database, queue: Bindings["WEBHOOK_QUEUE"], { target, ended, retryAt, nextCallId, usage }: AttemptToRetry): Promise<boolean> {
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
      usage,
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
  if (!(await writeUnlessEnded(db, target.notificationId, [update, ...event!.statements], (status) => status !== "in_progress"))) return false;
  await enqueueDeliveries(queue, event!.deliveryIds);
  return true;
}
