import { eq, sql } from "drizzle-orm";
import type { BatchItem } from "drizzle-orm/batch";
import type { Database } from "../db/client";
import { notifications } from "../db/schema";
import type { Bindings } from "../env";
import { nowIso } from "../lib/ids";
import { prepareEvents, enqueueDeliveries, type EventInput } from "../webhooks/emit";
import { isOpen, type CallStatus, type CallTarget, type EndedReason, type NotificationStatus, type TranscriptTurn } from "./call";
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
}

export function neverConnected(target: CallTarget, endedReason: EndedReason, errorMessage: string | null): CallEnd {
  return { target, endedReason, errorMessage, startedAt: null, endedAt: nowIso(), connected: false, durationSeconds: 0, transcript: [], callResult: null };
}

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
  const eventInputs: Omit<EventInput, "projectId">[] = [{ ...about, eventName: "call.ended", data: { status, ended_reason: endedReason, simulated: target.simulated } }];
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
      scheduledFor: null,
      queuedReason: null,
      updatedAt: end.endedAt,
    })
    .where(eq(notifications.id, target.notificationId));
  try {
    await db.batch([update, ...prepared.flatMap((event) => event.statements), ...extra]);
  } catch (error) {
    const [row] = await db.select({ status: notifications.status }).from(notifications).where(eq(notifications.id, target.notificationId));
    if (row && !isOpen(row.status)) return false;
    throw error;
  }
  await enqueueDeliveries(queue, prepared.flatMap((event) => event.deliveryIds));
  return true;
}
