// @ts-check
// The minimal trigger's D1 work — its table made on the fly, a row inserted and read back — shared by
// the `api` suite's minimal route (`worker.mjs`) and the floor's `POST /trigger`
// (`bench calls --floor-trigger=minimal`), so that both measure the same statements.

export const NOTIFICATIONS_TABLE = "CREATE TABLE IF NOT EXISTS notifications (id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL)";
export const NOTIFICATION_INSERT = "INSERT INTO notifications (id, customer_id, status, created_at) VALUES (?, ?, 'queued', ?)";

/** @type {Promise<unknown> | null} once per isolate: the table */
let schema = null;

/** Inserts a queued notification and reads it back (a D1 insert and a select). @param {D1Database} db @param {string} id @param {string} customerId */
export async function recordNotification(db, id, customerId) {
  schema ??= db.prepare(NOTIFICATIONS_TABLE).run();
  await schema;
  await db.prepare(NOTIFICATION_INSERT).bind(id, customerId, new Date().toISOString()).run();
  return db.prepare("SELECT id, customer_id, status, created_at FROM notifications WHERE id = ?").bind(id).first();
}
