import { createRoute, z } from "@hono/zod-openapi";
import { and, desc, eq } from "drizzle-orm";
import { violatesUnique } from "../db/client";
import { blockedNumbers } from "../db/schema";
import { ApiError } from "../errors";
import { nowIso, uuidv7 } from "../lib/ids";
import { apiKeySecurity, createRouter, E164Field, errorResponses, IdParam, jsonBody, jsonContent } from "../lib/openapi";
import { afterCursor, PaginationQuery, pageWithCursorHeader } from "../lib/pagination";

/**
 * The project's blocked numbers (API.md, The person called): a notification to one is refused at
 * trigger (422 number_blocked), and a call due for one is not dialled (failed, ended_reason blocked).
 */

const tags = ["Blocked numbers"];

const BlockNumberBody = z
  .object({
    phone: E164Field,
    reason: z.string().trim().min(1, "must not be empty (leave it out for none)").max(500).optional().openapi({ description: "Why the number is blocked, for your own records" }),
  })
  .openapi("BlockNumberRequest");

const BlockedNumberSchema = z
  .object({
    id: z.string(),
    project_id: z.string(),
    phone: z.string(),
    reason: z.string().nullable(),
    created_at: z.string(),
  })
  .openapi("BlockedNumber");

type BlockedNumberRow = typeof blockedNumbers.$inferSelect;

function blockedNumberBody(row: BlockedNumberRow): z.infer<typeof BlockedNumberSchema> {
  return { id: row.id, project_id: row.projectId, phone: row.phone, reason: row.reason, created_at: row.createdAt };
}

const PHONE_INDEX = "blocked_numbers.project_id, blocked_numbers.phone";
const notFound = () => new ApiError("blocked_number_not_found", "Blocked number not found");

const blockRoute = createRoute({
  method: "post",
  path: "/blocked-numbers",
  tags,
  summary: "Block a number: the project never calls it, from the next dial on",
  security: apiKeySecurity,
  request: { body: jsonBody(BlockNumberBody) },
  responses: { 201: jsonContent(BlockedNumberSchema, "The number is blocked"), ...errorResponses(400, 401, 409) },
});

const listRoute = createRoute({
  method: "get",
  path: "/blocked-numbers",
  tags,
  summary: "List the project's blocked numbers",
  security: apiKeySecurity,
  request: { query: PaginationQuery.extend({ phone: z.string().optional().openapi({ description: "Only this number (E.164)" }) }) },
  responses: { 200: jsonContent(z.array(BlockedNumberSchema), "Blocked numbers, newest first; next page cursor in X-Next-Cursor"), ...errorResponses(400, 401) },
});

const getRoute = createRoute({
  method: "get",
  path: "/blocked-numbers/{id}",
  tags,
  summary: "Get a blocked number",
  security: apiKeySecurity,
  request: { params: IdParam("id") },
  responses: { 200: jsonContent(BlockedNumberSchema, "The blocked number"), ...errorResponses(401, 404) },
});

const unblockRoute = createRoute({
  method: "delete",
  path: "/blocked-numbers/{id}",
  tags,
  summary: "Unblock a number: notifications to it are accepted again",
  security: apiKeySecurity,
  request: { params: IdParam("id") },
  responses: { 204: { description: "Unblocked" }, ...errorResponses(401, 404) },
});

export const blockedNumberRoutes = createRouter()
  .openapi(blockRoute, async (c) => {
    const { auth, db } = c.var;
    const body = c.req.valid("json");
    const now = nowIso();
    const row: BlockedNumberRow = { id: uuidv7(), projectId: auth.projectId, phone: body.phone, reason: body.reason ?? null, createdAt: now, updatedAt: now };
    try {
      await db.insert(blockedNumbers).values(row);
    } catch (error) {
      if (violatesUnique(error, PHONE_INDEX)) throw new ApiError("blocked_number_exists", `${body.phone} is already blocked in this project`);
      throw error;
    }
    return c.json(blockedNumberBody(row), 201);
  })
  .openapi(listRoute, async (c) => {
    const { auth, db } = c.var;
    const { limit, cursor, phone } = c.req.valid("query");
    const rows = await db
      .select()
      .from(blockedNumbers)
      .where(and(eq(blockedNumbers.projectId, auth.projectId), phone !== undefined ? eq(blockedNumbers.phone, phone) : undefined, afterCursor(blockedNumbers.id, cursor)))
      .orderBy(desc(blockedNumbers.id))
      .limit(limit + 1);
    return c.json(pageWithCursorHeader(c, rows, limit).map(blockedNumberBody), 200);
  })
  .openapi(getRoute, async (c) => {
    const { auth, db } = c.var;
    const [row] = await db
      .select()
      .from(blockedNumbers)
      .where(and(eq(blockedNumbers.id, c.req.valid("param").id), eq(blockedNumbers.projectId, auth.projectId)));
    if (!row) throw notFound();
    return c.json(blockedNumberBody(row), 200);
  })
  .openapi(unblockRoute, async (c) => {
    const { auth, db } = c.var;
    const deleted = await db
      .delete(blockedNumbers)
      .where(and(eq(blockedNumbers.id, c.req.valid("param").id), eq(blockedNumbers.projectId, auth.projectId)))
      .returning({ id: blockedNumbers.id });
    if (deleted.length === 0) throw notFound();
    return c.body(null, 204);
  });
