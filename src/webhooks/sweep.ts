import { and, asc, inArray } from "drizzle-orm";
import { createDb } from "../db/client";
import { webhookDeliveries } from "../db/schema";
import type { Bindings } from "../env";
import { isActiveDelivery, isDueBy, isLeaseFree } from "./deliver";
import { enqueueDeliveries } from "./emit";

/**
 * A delivery is overdue when it has been due this long and no message has taken it: long enough
 * for its own queue message to have arrived, so the sweeper does not race a healthy queue.
 */
export const SWEEP_GRACE_SECONDS = 60;
/** At most this many deliveries are handed out per run (every minute), oldest due first. */
export const SWEEP_LIMIT = 1000;

export interface SweepResult {
  /** Deliveries found overdue and taken by this run. */
  found: number;
  /** Of those, the ones the queue accepted; the rest are found again by a later run. */
  enqueued: number;
}

/**
 * The outbox sweeper (cron trigger): re-enqueues deliveries that are due but not in flight, so a
 * failed queue send, a consumer that died mid-attempt or a lost message delays a webhook but never
 * loses it. One statement picks the overdue, unclaimed deliveries in due order and moves their
 * `next_retry_at` to now, so overlapping runs do not hand out the same delivery twice and a
 * delivery whose message is still on its way is not re-sent before another grace period. A
 * duplicate message is harmless anyway: the consumer claims a delivery before every attempt.
 */
export async function sweepOutbox(
  env: Pick<Bindings, "DB" | "WEBHOOK_QUEUE">,
  { now = Date.now(), limit = SWEEP_LIMIT }: { now?: number; limit?: number } = {},
): Promise<SweepResult> {
  const db = createDb(env.DB);
  const nowText = new Date(now).toISOString();
  const overdue = db
    .select({ id: webhookDeliveries.id })
    .from(webhookDeliveries)
    .where(
      and(
        isActiveDelivery(),
        isDueBy(new Date(now - SWEEP_GRACE_SECONDS * 1000).toISOString()),
        isLeaseFree(nowText),
      ),
    )
    .orderBy(asc(webhookDeliveries.nextRetryAt))
    .limit(limit);
  const taken = await db
    .update(webhookDeliveries)
    .set({ nextRetryAt: nowText })
    .where(inArray(webhookDeliveries.id, overdue))
    .returning({ id: webhookDeliveries.id });
  if (taken.length === 0) return { found: 0, enqueued: 0 };
  const enqueued = await enqueueDeliveries(env.WEBHOOK_QUEUE, taken.map((row) => row.id));
  console.log(`[echo] webhook sweeper re-enqueued ${enqueued} of ${taken.length} overdue deliveries`);
  return { found: taken.length, enqueued };
}
