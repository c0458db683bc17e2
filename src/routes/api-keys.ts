import { createRoute, z } from "@hono/zod-openapi";
import { and, desc, eq } from "drizzle-orm";
import { generateApiKey } from "../auth/api-keys";
import { apiKeys } from "../db/schema";
import { ApiError } from "../errors";
import { nowIso, uuidv7 } from "../lib/ids";
import { noStore } from "../lib/no-store";
import { apiKeySecurity, createRouter, errorResponses, IdParam, jsonBody, jsonContent } from "../lib/openapi";
import { afterCursor, PaginationQuery, pageWithCursorHeader } from "../lib/pagination";

const ApiKeySchema = z
  .object({
    id: z.string(),
    project_id: z.string(),
    name: z.string(),
    key_prefix: z.string().openapi({ description: "The first 16 characters, to recognise a key" }),
    status: z.enum(["active", "revoked"]),
    last_used_at: z.string().nullable(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("ApiKey");

const CreatedApiKeySchema = ApiKeySchema.extend({ key: z.string().openapi({ description: "Shown only in this response" }) }).openapi("CreatedApiKey");

type ApiKeyRow = typeof apiKeys.$inferSelect;

function apiKeyBody(row: ApiKeyRow) {
  return {
    id: row.id,
    project_id: row.projectId,
    name: row.name,
    key_prefix: row.keyPrefix,
    status: row.status,
    last_used_at: row.lastUsedAt,
    created_at: row.createdAt,
    updated_at: row.updatedAt,
  };
}

const createRouteDef = createRoute({
  method: "post",
  path: "/api-keys",
  tags: ["API keys"],
  summary: "Create an API key for the project",
  security: apiKeySecurity,
  request: { body: jsonBody(z.object({ name: z.string().trim().min(1, "is required").max(100) }).openapi("CreateApiKeyRequest")) },
  responses: { 201: jsonContent(CreatedApiKeySchema, "The key, shown once"), ...errorResponses(400, 401) },
});

const listRouteDef = createRoute({
  method: "get",
  path: "/api-keys",
  tags: ["API keys"],
  summary: "List the project's API keys (metadata only)",
  security: apiKeySecurity,
  request: { query: PaginationQuery },
  responses: { 200: jsonContent(z.array(ApiKeySchema), "Keys, newest first"), ...errorResponses(400, 401) },
});

const revokeRouteDef = createRoute({
  method: "patch",
  path: "/api-keys/{id}/revoke",
  tags: ["API keys"],
  summary: "Revoke an API key; it is refused from the next request on",
  security: apiKeySecurity,
  request: { params: IdParam("id") },
  responses: { 200: jsonContent(ApiKeySchema, "The revoked key"), ...errorResponses(401, 404) },
});

export const apiKeyRoutes = createRouter()
  .openapi(createRouteDef, async (c) => {
    const { auth, db } = c.var;
    const key = await generateApiKey();
    const now = nowIso();
    const row: ApiKeyRow = {
      id: uuidv7(),
      projectId: auth.projectId,
      name: c.req.valid("json").name,
      keyHash: key.keyHash,
      keyPrefix: key.keyPrefix,
      status: "active",
      lastUsedAt: null,
      createdAt: now,
      updatedAt: now,
    };
    await db.insert(apiKeys).values(row);
    noStore(c);
    return c.json({ ...apiKeyBody(row), key: key.key }, 201);
  })
  .openapi(listRouteDef, async (c) => {
    const { auth, db } = c.var;
    const { limit, cursor } = c.req.valid("query");
    const rows = await db
      .select()
      .from(apiKeys)
      .where(and(eq(apiKeys.projectId, auth.projectId), afterCursor(apiKeys.id, cursor)))
      .orderBy(desc(apiKeys.id))
      .limit(limit + 1);
    const items = pageWithCursorHeader(c, rows, limit);
    return c.json(items.map(apiKeyBody), 200);
  })
  .openapi(revokeRouteDef, async (c) => {
    const { auth, db } = c.var;
    const [row] = await db
      .update(apiKeys)
      .set({ status: "revoked", updatedAt: nowIso() })
      .where(and(eq(apiKeys.id, c.req.valid("param").id), eq(apiKeys.projectId, auth.projectId)))
      .returning();
    if (!row) throw new ApiError("api_key_not_found", "API key not found");
    return c.json(apiKeyBody(row), 200);
  });
