import { createRoute, z } from "@hono/zod-openapi";
import { and, desc, eq, inArray } from "drizzle-orm";
import { callTargetOf, NOTIFICATION_STATUSES, OPEN_NOTIFICATION_STATUSES } from "../calls/call";
import { batchCounts, completeBatchIfDone } from "../calls/call-end";
import type { AuthContext } from "../context";
import type { Database } from "../db/client";
import { oneOff, runBatch } from "../db/prepared";
import { agents, batches, customers, notifications } from "../db/schema";
import { ApiError } from "../errors";
import { nowIso, uuidv7 } from "../lib/ids";
import { apiKeySecurity, createRouter, errorResponses, IdParam, jsonBody, jsonContent } from "../lib/openapi";
import { afterCursor, PaginationQuery, pageWithCursorHeader } from "../lib/pagination";
import { IdempotencyHeaders, IdempotentRequest } from "../notifications/idempotency";
import { callParams, newNotification, planCall } from "../notifications/plan";
import type { CallStartMessage } from "../notifications/start";
import { checkNotificationFields, notificationFields } from "./notifications";

/**
 * Batches (API.md "Batches"): up to 1,000 notifications in one request, each item planned and
 * checked like a single trigger (a bad item is reported by its index and does not sink the rest),
 * written in the request and started from a queue, so the request never creates the call objects.
 */

const MAX_ITEMS = 1000;
/** Queue messages per send stay under the queue's 256 KB a batch (a message carries the call's rendered prompt). */
const SEND_BYTES = 200_000;
/** D1 statements per round trip when writing the notifications. */
const WRITE_CHUNK = 50;

const BatchItem = z
  .object({
    customer_id: z.string().min(1).optional(),
    external_id: z.string().min(1).optional(),
    variables: notificationFields.variables.openapi({ description: "This item's values; they override the batch's" }),
  })
  .refine((item) => (item.customer_id === undefined) !== (item.external_id === undefined), "give customer_id or external_id, not both")
  .openapi("BatchItem");

const CreateBatchRequest = z
  .object({ ...notificationFields, items: z.array(BatchItem).min(1).max(MAX_ITEMS) })
  .superRefine(checkNotificationFields)
  .openapi("CreateBatchRequest");

const CountsSchema = z.record(z.enum(NOTIFICATION_STATUSES), z.number().int()).openapi({ description: "The batch's notifications by status" });

const BatchSchema = z
  .object({
    id: z.string(),
    project_id: z.string(),
    total: z.number().int(),
    accepted: z.number().int(),
    rejected: z.number().int(),
    counts: CountsSchema,
    completed_at: z.string().nullable().openapi({ description: "When its last notification ended" }),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("Batch");

const CreatedBatchSchema = z
  .object({
    batch: z.object({ id: z.string(), total: z.number().int(), accepted: z.number().int(), rejected: z.number().int(), created_at: z.string() }),
    errors: z.array(z.object({ index: z.number().int(), code: z.string(), message: z.string() })),
  })
  .openapi("CreatedBatch");

type BatchRow = typeof batches.$inferSelect;
type CreatedBatch = z.infer<typeof CreatedBatchSchema>;

async function batchBody(db: Database, row: BatchRow): Promise<z.infer<typeof BatchSchema>> {
  return { id: row.id, project_id: row.projectId, total: row.total, accepted: row.accepted, rejected: row.rejected, counts: await batchCounts(db, row.id), completed_at: row.completedAt, created_at: row.createdAt, updated_at: row.updatedAt };
}

async function findBatch(db: Database, auth: AuthContext, id: string): Promise<BatchRow> {
  const [row] = await db.select().from(batches).where(and(eq(batches.id, id), eq(batches.projectId, auth.projectId))).limit(1);
  if (!row) throw new ApiError("batch_not_found", "Batch not found");
  return row;
}

/** The project's customers the items name by external_id, in rounds that stay under D1's bound parameters. */
async function customersByExternalId(db: Database, projectId: string, externalIds: string[]): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for (let i = 0; i < externalIds.length; i += 90) {
    const rows = await db
      .select({ id: customers.id, externalId: customers.externalId })
      .from(customers)
      .where(and(eq(customers.projectId, projectId), inArray(customers.externalId, externalIds.slice(i, i + 90))));
    for (const row of rows) found.set(row.externalId, row.id);
  }
  return found;
}

/** Messages in sends under the queue's size limit. */
function* bySize(messages: CallStartMessage[]): Generator<CallStartMessage[]> {
  let chunk: CallStartMessage[] = [];
  let bytes = 0;
  for (const message of messages) {
    const size = JSON.stringify(message).length;
    if (chunk.length > 0 && (bytes + size > SEND_BYTES || chunk.length === 100)) {
      yield chunk;
      chunk = [];
      bytes = 0;
    }
    chunk.push(message);
    bytes += size;
  }
  if (chunk.length > 0) yield chunk;
}

const createBatchRoute = createRoute({
  method: "post",
  path: "/notifications/batch",
  tags: ["Batches"],
  summary: "Send up to 1,000 notifications at once; bad items are reported by index",
  description: "Each item is checked like a single notification (unknown customer, no active phone, missing variables, …); accepted items become notifications with `batch_id`, started from a queue and paced like any other. `Idempotency-Key` applies to the whole batch.",
  security: apiKeySecurity,
  request: { headers: IdempotencyHeaders, body: jsonBody(CreateBatchRequest) },
  responses: { 202: jsonContent(CreatedBatchSchema, "The batch, and the items refused"), ...errorResponses(400, 401, 404, 409, 422) },
});

const listBatchesRoute = createRoute({
  method: "get",
  path: "/batches",
  tags: ["Batches"],
  summary: "List the project's batches",
  security: apiKeySecurity,
  request: { query: PaginationQuery },
  responses: { 200: jsonContent(z.array(BatchSchema), "Batches, newest first; next page cursor in X-Next-Cursor"), ...errorResponses(400, 401) },
});

const getBatchRoute = createRoute({
  method: "get",
  path: "/batches/{id}",
  tags: ["Batches"],
  summary: "Get a batch with its notifications' counts by status",
  security: apiKeySecurity,
  request: { params: IdParam("id") },
  responses: { 200: jsonContent(BatchSchema, "The batch"), ...errorResponses(401, 404) },
});

const cancelBatchRoute = createRoute({
  method: "post",
  path: "/batches/{id}/cancel",
  tags: ["Batches"],
  summary: "Cancel every notification of the batch not yet dialled",
  security: apiKeySecurity,
  request: { params: IdParam("id") },
  responses: { 200: jsonContent(BatchSchema, "The batch, its counts after the cancel"), ...errorResponses(401, 404) },
});

export const batchRoutes = createRouter()
  .openapi(createBatchRoute, async (c) => {
    const { auth, db, config } = c.var;
    const { items, ...shared } = c.req.valid("json");
    const key = c.req.valid("header")["idempotency-key"];
    const idempotency = key === undefined ? null : await IdempotentRequest.of<CreatedBatch>(db, auth.projectId, key, { items, ...shared });
    const replay = await idempotency?.replay();
    if (replay) {
      c.header("Idempotent-Replayed", "true");
      return c.json(replay, 202);
    }
    // The agent is the whole batch's: refused once, not item by item.
    if (shared.agent_id !== undefined) {
      const [agent] = await db.select({ status: agents.status }).from(agents).where(and(eq(agents.id, shared.agent_id), eq(agents.businessId, auth.businessId))).limit(1);
      if (!agent) throw new ApiError("agent_not_found", "Agent not found");
      if (agent.status === "disabled") throw new ApiError("agent_disabled", "The agent is disabled and cannot be used for new notifications");
    }
    const byExternalId = await customersByExternalId(db, auth.projectId, items.flatMap((item) => (item.external_id === undefined ? [] : [item.external_id])));
    const batchId = uuidv7();
    const simulated = !config.live;
    const rows: Array<ReturnType<typeof newNotification>> = [];
    const messages: CallStartMessage[] = [];
    const errors: CreatedBatch["errors"] = [];
    for (const [index, item] of items.entries()) {
      const customerId = item.customer_id ?? byExternalId.get(item.external_id!);
      if (customerId === undefined) {
        errors.push({ index, code: "customer_not_found", message: `Customer not found: external_id ${item.external_id}` });
        continue;
      }
      const body = { ...shared, customer_id: customerId, variables: { ...shared.variables, ...item.variables } };
      try {
        const plan = await planCall(db, auth, body, simulated);
        const row = newNotification(auth, body, plan, simulated, batchId);
        rows.push(row);
        messages.push({ params: callParams(row, plan), dueAtMs: row.scheduledFor === null ? null : Date.parse(row.scheduledFor) });
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        errors.push({ index, code: error.code, message: error.message });
      }
    }
    const now = nowIso();
    const response: CreatedBatch = { batch: { id: batchId, total: items.length, accepted: rows.length, rejected: errors.length, created_at: now }, errors };
    const batchRow = oneOff(db, db.insert(batches).values({ id: batchId, projectId: auth.projectId, total: items.length, accepted: rows.length, rejected: errors.length, completedAt: null, createdAt: now, updatedAt: now }));
    // The batch and its key first (a racing request with the same key replays), then its notifications.
    try {
      await runBatch(db, idempotency ? [batchRow, idempotency.record(batchId, response, now)] : [batchRow]);
    } catch (error) {
      const stored = await idempotency?.storedReplay();
      if (!stored) throw error;
      c.header("Idempotent-Replayed", "true");
      return c.json(stored, 202);
    }
    for (let i = 0; i < rows.length; i += WRITE_CHUNK) {
      const chunk = rows.slice(i, i + WRITE_CHUNK).map((row) => db.insert(notifications).values(row));
      if (chunk.length > 0) await db.batch(chunk as [(typeof chunk)[number], ...typeof chunk]);
    }
    for (const chunk of bySize(messages)) await c.env.CALL_START_QUEUE.sendBatch(chunk.map((body) => ({ body })));
    // A batch none of whose items was accepted is complete already.
    if (rows.length === 0) await completeBatchIfDone(db, c.env.WEBHOOK_QUEUE, auth.projectId, batchId);
    return c.json(response, 202);
  })
  .openapi(listBatchesRoute, async (c) => {
    const { auth, db } = c.var;
    const { limit, cursor } = c.req.valid("query");
    const rows = await db
      .select()
      .from(batches)
      .where(and(eq(batches.projectId, auth.projectId), afterCursor(batches.id, cursor)))
      .orderBy(desc(batches.id))
      .limit(limit + 1);
    const page = pageWithCursorHeader(c, rows, limit);
    return c.json(await Promise.all(page.map((row) => batchBody(db, row))), 200);
  })
  .openapi(getBatchRoute, async (c) => {
    const { auth, db } = c.var;
    return c.json(await batchBody(db, await findBatch(db, auth, c.req.valid("param").id)), 200);
  })
  .openapi(cancelBatchRoute, async (c) => {
    const { auth, db } = c.var;
    const batch = await findBatch(db, auth, c.req.valid("param").id);
    // Not yet dialled: waiting, or started but not yet ringing.
    const waiting = await db
      .select({ id: notifications.id, projectId: notifications.projectId, customerId: notifications.customerId, simulated: notifications.simulated, batchId: notifications.batchId })
      .from(notifications)
      .where(and(eq(notifications.batchId, batch.id), inArray(notifications.status, OPEN_NOTIFICATION_STATUSES), eq(notifications.callStatus, "queued")));
    for (let i = 0; i < waiting.length; i += 50) {
      await Promise.all(
        waiting.slice(i, i + 50).map((row) =>
          c.env.CALL_SESSION.get(c.env.CALL_SESSION.idFromName(row.id)).stop(callTargetOf(row), "canceled"),
        ),
      );
    }
    return c.json(await batchBody(db, await findBatch(db, auth, batch.id)), 200);
  });
