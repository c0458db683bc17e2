import { and, asc, eq, inArray, lte } from "drizzle-orm";
import { callTargetOf, OPEN_NOTIFICATION_STATUSES } from "./call";
import { createDb } from "../db/client";
import { notifications } from "../db/schema";
import type { Bindings } from "../env";

/**
 * The call reconciler (cron trigger, every minute): a notification still open (queued or in progress) past its
 * `reconcile_at` may have lost its call — an object reset before it stored the call, a final status
 * callback that never came, an alarm that keeps failing. Its call object is asked: it learns the
 * call's real state (from Twilio for a live call, or from the leg's CallSid in D1 when the object
 * has no record) and ends the notification if the call is over or lost. A call still running is
 * looked at again after its own deadline.
 */

/**
 * First look, from the trigger: well after an unanswered call's ring timeout (30 s) and the object's
 * own check at its deadline, so with the cron every minute a call whose final callback never came
 * ends within the ring timeout + 2 minutes.
 */
const FIRST_LOOK_AFTER_MS = 90_000;
/** Past an answered call's deadline: time for its extraction and its end's write. */
const AFTER_DEADLINE_MS = 120_000;
/** At most this many notifications are reconciled per run, the most overdue first. */
export const RECONCILE_LIMIT = 100;

/** `reconcile_at` of a new notification. */
export function firstReconcileAt(createdAtMs: number): string {
  return new Date(createdAtMs + FIRST_LOOK_AFTER_MS).toISOString();
}

/** `reconcile_at` of a call whose deadline (max duration, the end's next step) is `deadlineMs`. */
export function reconcileAfter(deadlineMs: number): string {
  return new Date(deadlineMs + AFTER_DEADLINE_MS).toISOString();
}

export interface ReconcileResult {
  /** Notifications past their reconcile_at that were looked at. */
  checked: number;
  /** Of those, the ones that have ended now. */
  ended: number;
}

export async function reconcileCalls(env: Pick<Bindings, "DB" | "CALL_SESSION">, { now = Date.now(), limit = RECONCILE_LIMIT } = {}): Promise<ReconcileResult> {
  const db = createDb(env.DB);
  const due = await db
    .select({
      id: notifications.id,
      projectId: notifications.projectId,
      customerId: notifications.customerId,
      simulated: notifications.simulated,
      carrierCallSid: notifications.carrierCallSid,
      batchId: notifications.batchId,
      answeredAt: notifications.answeredAt,
      attempts: notifications.attempts,
    })
    .from(notifications)
    .where(and(inArray(notifications.status, OPEN_NOTIFICATION_STATUSES), lte(notifications.reconcileAt, new Date(now).toISOString())))
    .orderBy(asc(notifications.reconcileAt))
    .limit(limit);
  const outcomes = await Promise.allSettled(
    due.map(async (row) => {
      const stub = env.CALL_SESSION.get(env.CALL_SESSION.idFromName(row.id));
      const outcome = await stub.reconcile({
        target: callTargetOf(row),
        attempt: row.attempts.length + 1,
        carrierCallSid: row.carrierCallSid,
        answeredAt: row.answeredAt,
      });
      if (outcome.state === "ended") return true;
      await db
        .update(notifications)
        .set({ reconcileAt: reconcileAfter(outcome.deadlineMs) })
        .where(and(eq(notifications.id, row.id), inArray(notifications.status, OPEN_NOTIFICATION_STATUSES)));
      return false;
    }),
  );
  let ended = 0;
  outcomes.forEach((outcome, i) => {
    if (outcome.status === "fulfilled") ended += outcome.value ? 1 : 0;
    else console.error(`[echo] could not reconcile notification ${due[i]!.id}`, outcome.reason);
  });
  if (due.length > 0) console.log(`[echo] call reconciler: ${due.length} checked, ${ended} ended`);
  return { checked: due.length, ended };
}
