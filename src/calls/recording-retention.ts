import { asc, inArray, lte } from "drizzle-orm";
import { createDb } from "../db/client";
import { notifications } from "../db/schema";
import type { Bindings } from "../env";

/**
 * Recordings are kept RECORDING_RETENTION_DAYS (API.md, The person called): each notification's
 * `recording_expires_at` was set when its recording was stored, and the cron (every minute) deletes
 * those past it — from R2 first, then the columns: no file is ever left in R2 without a row that
 * names it, and a run that fails half-way is finished by the next one (meanwhile the route answers
 * 404 for a file already gone, as after the deletion).
 */

const DAY_MS = 24 * 60 * 60 * 1000;

/** When the recording of a call that ended at `endedAtMs` is deleted. */
export function recordingExpiresAt(endedAtMs: number, retentionDays: number): string {
  return new Date(endedAtMs + retentionDays * DAY_MS).toISOString();
}

/** Recordings deleted per batch: the ids are bound one parameter each, and D1 takes 100 a statement. */
const BATCH = 50;
/** At most this many are deleted per run, the longest expired first. */
const RECORDING_DELETE_LIMIT = 500;

export async function deleteExpiredRecordings(env: Pick<Bindings, "DB" | "RECORDINGS">, { now = Date.now(), limit = RECORDING_DELETE_LIMIT } = {}): Promise<number> {
  const db = createDb(env.DB);
  const nowText = new Date(now).toISOString();
  let deleted = 0;
  while (deleted < limit) {
    const expired = await db
      .select({ id: notifications.id, key: notifications.recordingKey })
      .from(notifications)
      .where(lte(notifications.recordingExpiresAt, nowText))
      .orderBy(asc(notifications.recordingExpiresAt))
      .limit(Math.min(BATCH, limit - deleted));
    if (expired.length === 0) break;
    await env.RECORDINGS.delete(expired.flatMap((row) => (row.key === null ? [] : [row.key])));
    await db
      .update(notifications)
      .set({ recordingKey: null, recordingExpiresAt: null, updatedAt: nowText })
      .where(inArray(notifications.id, expired.map((row) => row.id)));
    deleted += expired.length;
    if (expired.length < BATCH) break;
  }
  if (deleted > 0) console.log(`[echo] recording retention: ${deleted} deleted`);
  return deleted;
}
