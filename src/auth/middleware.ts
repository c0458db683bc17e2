import { and, eq } from "drizzle-orm";
import { createMiddleware } from "hono/factory";
import type { AppEnv, AuthContext } from "../context";
import { apiKeys, businesses, projects, users } from "../db/schema";
import { ApiError } from "../errors";
import { API_KEY_PATTERN, hashApiKey } from "./api-keys";
import { bearerToken, verifyToken } from "./tokens";

/** `/api/v1/*`: `x-api-key` (one project) or `Authorization: Bearer <access token>` (+ `x-project-id`). */
export const requireAuth = createMiddleware<AppEnv>(async (c, next) => {
  const apiKey = c.req.header("x-api-key");
  const auth = apiKey !== undefined ? await authenticateApiKey(c.var, apiKey) : await authenticateUser(c.var, c.req.header("authorization"), c.req.header("x-project-id"));
  c.set("auth", auth);
  await next();
});

async function authenticateApiKey({ db }: AppEnv["Variables"], key: string): Promise<AuthContext> {
  if (!API_KEY_PATTERN.test(key.trim())) throw new ApiError("invalid_api_key", "Invalid API key");
  const keyHash = await hashApiKey(key.trim());
  const [row] = await db
    .select({ projectId: apiKeys.projectId, businessId: projects.businessId })
    .from(apiKeys)
    .innerJoin(projects, eq(projects.id, apiKeys.projectId))
    .where(and(eq(apiKeys.keyHash, keyHash), eq(apiKeys.status, "active")))
    .limit(1);
  if (!row) throw new ApiError("invalid_api_key", "Invalid or revoked API key");
  return { kind: "api_key", projectId: row.projectId, businessId: row.businessId };
}

async function authenticateUser({ db, config }: AppEnv["Variables"], authorization: string | undefined, projectHeader: string | undefined): Promise<AuthContext> {
  const token = bearerToken(authorization);
  if (!token) throw new ApiError("missing_credentials", "Provide an x-api-key header or an Authorization: Bearer access token");
  const claims = await verifyToken(config.jwtSecret, token);
  if (!claims || claims.kind !== "access") throw new ApiError("invalid_token", "Invalid or expired access token");
  const wanted = projectHeader?.trim();
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
  return { kind: "user", projectId, businessId: user.businessId };
}
