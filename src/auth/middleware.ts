import { and, eq, isNull, lt, or } from "drizzle-orm";
import { createMiddleware } from "hono/factory";
import type { AppEnv, AuthContext } from "../context";
import { prepared, runStatement } from "../db/prepared";
import { apiKeys, businesses, projects, users } from "../db/schema";
import { ApiError } from "../errors";
import { nowIso } from "../lib/ids";
import { API_KEY_PATTERN, hashApiKey } from "./api-keys";
import { bearerToken, verifyToken } from "./tokens";

/** `/api/v1/*`: `x-api-key` (one project) or `Authorization: Bearer <access token>` (+ `x-project-id`). */
export const requireAuth = createMiddleware<AppEnv>(async (c, next) => {
  const apiKey = c.req.header("x-api-key");
  const auth = apiKey !== undefined ? await authenticateApiKey(c.var, (work) => c.executionCtx.waitUntil(work), apiKey) : await authenticateUser(c.var, c.req.header("authorization"), c.req.header("x-project-id"));
  c.set("auth", auth);
  await next();
});

/** `last_used_at` is accurate to this much, so a busy key costs a D1 write a minute, not one a request. */
const LAST_USED_PRECISION_MS = 60_000;

const activeApiKeyRead = prepared(["keyHash"], (db, p) =>
  db
    .select({ id: apiKeys.id, lastUsedAt: apiKeys.lastUsedAt, projectId: apiKeys.projectId, businessId: projects.businessId })
    .from(apiKeys)
    .innerJoin(projects, eq(projects.id, apiKeys.projectId))
    .where(and(eq(apiKeys.keyHash, p.keyHash), eq(apiKeys.status, "active")))
    .limit(1),
);

async function authenticateApiKey({ db }: AppEnv["Variables"], waitUntil: (work: Promise<unknown>) => void, key: string): Promise<AuthContext> {
  if (!API_KEY_PATTERN.test(key.trim())) throw new ApiError("invalid_api_key", "Invalid API key");
  const [row] = await runStatement(activeApiKeyRead.bind(db, { keyHash: await hashApiKey(key.trim()) }));
  if (!row) throw new ApiError("invalid_api_key", "Invalid or revoked API key");
  const staleBefore = new Date(Date.now() - LAST_USED_PRECISION_MS).toISOString();
  if (row.lastUsedAt === null || row.lastUsedAt < staleBefore) {
    // Written after the response; concurrent requests that all found it stale change it once.
    const touch = db
      .update(apiKeys)
      .set({ lastUsedAt: nowIso() })
      .where(and(eq(apiKeys.id, row.id), or(isNull(apiKeys.lastUsedAt), lt(apiKeys.lastUsedAt, staleBefore))));
    waitUntil(touch.then(undefined, (error: unknown) => console.error(`[echo] could not record the use of API key ${row.id}`, error)));
  }
  return { kind: "api_key", callerId: row.id, projectId: row.projectId, businessId: row.businessId };
}

async function authenticateUser({ db, config }: AppEnv["Variables"], authorization: string | undefined, projectHeader: string | undefined): Promise<AuthContext> {
  const token = bearerToken(authorization);
  if (!token) throw new ApiError("missing_credentials", "Provide an x-api-key header or an Authorization: Bearer access token");
  const claims = await verifyToken(config.jwtSecret, token);
  if (!claims || claims.kind !== "access") throw new ApiError("invalid_token", "Invalid or expired access token");
  // An empty header is no header: the default project.
  const wanted = projectHeader?.trim() || undefined;
  // The user and the project asked for (if any, and only in the user's business) in one query.
  const [user] = await db
    .select({ businessId: users.businessId, defaultProjectId: businesses.defaultProjectId, wantedProjectId: projects.id })
    .from(users)
    .innerJoin(businesses, eq(businesses.id, users.businessId))
    .leftJoin(projects, and(eq(projects.id, wanted ?? ""), eq(projects.businessId, users.businessId)))
    .where(eq(users.id, claims.userId))
    .limit(1);
  if (!user) throw new ApiError("invalid_token", "Invalid or expired access token");
  let projectId = user.defaultProjectId;
  if (wanted !== undefined) {
    if (user.wantedProjectId === null) throw new ApiError("project_not_found", "Project not found");
    projectId = user.wantedProjectId;
  }
  return { kind: "user", callerId: claims.userId, projectId, businessId: user.businessId };
}
