import type { CallParams } from "../calls/call";
import { neverConnected, persistCallEnd, storedUsage } from "../calls/call-end";
import { locationHintForPhone } from "../calls/location";
import type { Database } from "../db/client";
import { getConfig, type Bindings } from "../env";
import { ApiError } from "../errors";
import { inArray } from "drizzle-orm";
import { isOpenStatus } from "../calls/call";
import { notifications } from "../db/schema";
import { createDb } from "../db/client";
import type { IdempotentRequest } from "./idempotency";

/** The queue that starts a batch's calls (wrangler.toml). */
export const CALL_START_QUEUE = "echo-call-starts";

/** A notification of a batch to start: what its call object is started with. */
export interface CallStartMessage {
  params: CallParams;
  dueAtMs: number | null;
}

/**
 * Starts the calls of a batch, a queue batch at a time: a notification that ended meanwhile (its
 * batch canceled) is skipped; one whose start fails has been failed by `startCall` and is not
 * retried (a retry could place a second call).
 */
export async function handleCallStarts(batch: MessageBatch<CallStartMessage>, env: Bindings): Promise<void> {
  const db = createDb(env.DB);
  const ids = batch.messages.map((message) => message.body.params.notificationId);
  const rows = await db.select({ id: notifications.id, status: notifications.status }).from(notifications).where(inArray(notifications.id, ids));
  const stillOpen = new Set(rows.filter((row) => isOpenStatus(row.status)).map((row) => row.id));
  await Promise.all(
    batch.messages.map(async (message) => {
      const { params, dueAtMs } = message.body;
      if (stillOpen.has(params.notificationId)) {
        await startCall(env, db, params, dueAtMs, null).catch((error: unknown) => console.error(`[echo] the call of batch notification ${params.notificationId} was not started`, error));
      }
      message.ack();
    }),
  );
}

const START_FAILED = "The call could not be started";

/**
 * Hands a new notification's call to its Durable Object, placed near the callee, to be dialled at
 * once or kept until `dueAtMs`. "waiting": it waits to be dialled (scheduled, or over the pacing's
 * limits). "ended": the call ended at once (Twilio refused it) and the notification says why. A call that cannot be started
 * fails its notification, frees its idempotency key for a retry, and is a 502.
 */
export async function startCall(env: Bindings, db: Database, params: CallParams, dueAtMs: number | null, idempotency: IdempotentRequest<unknown> | null): Promise<"queued" | "waiting" | "ended"> {
  const locationHint = locationHintForPhone(params.phoneE164);
  const stub = env.CALL_SESSION.get(env.CALL_SESSION.idFromName(params.notificationId), locationHint ? { locationHint } : undefined);
  try {
    const started = await stub.start(params, dueAtMs);
    return started.status === "ended" || started.status === "waiting" ? started.status : "queued";
  } catch (error) {
    console.error(`[echo] could not start the call of notification ${params.notificationId}`, error);
    // The object may have dialled before it failed (or before the RPC broke): it ends the call and
    // hangs up its leg. If it cannot be reached either, the notification is failed here; a leg it
    // dialled is hung up at its first status callback, and the reconciler ends what is left.
    const { notificationId, projectId, customerId, simulated, batchId } = params;
    const target = { notificationId, projectId, customerId, simulated, batchId };
    try {
      await stub.stop(target, "error", START_FAILED);
    } catch (stopError) {
      console.error(`[echo] could not stop the call of notification ${params.notificationId}`, stopError);
      try {
        const usage = await storedUsage(db, notificationId, getConfig(env).openai);
        await persistCallEnd(db, env.WEBHOOK_QUEUE, neverConnected(target, "error", START_FAILED, usage));
      } catch (endError) {
        console.error(`[echo] could not fail notification ${params.notificationId}; the reconciler will`, endError);
      }
    }
    // Whether or not the notification had already ended, the failed request's key is free for a retry.
    await idempotency?.release();
    throw new ApiError("call_start_failed", "The call could not be started; the notification was marked failed. Retry the request.", { notification_id: params.notificationId });
  }
}
