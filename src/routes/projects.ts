import { createRoute, z } from "@hono/zod-openapi";
import { and, count, desc, eq, inArray, type SQL } from "drizzle-orm";
import { DEFAULT_MAX_CONCURRENT_CALLS, DEFAULT_VOICE_ENGINE, OPEN_NOTIFICATION_STATUSES, VOICE_ENGINES } from "../calls/call";
import type { AuthContext } from "../context";
import type { Database } from "../db/client";
import { apiKeys, notifications, projects } from "../db/schema";
import { generateApiKey } from "../auth/api-keys";
import { ApiError } from "../errors";
import { nowIso, uuidv7 } from "../lib/ids";
import { noStore } from "../lib/no-store";
import { apiKeySecurity, atLeastOneField, createRouter, errorResponses, IdParam, jsonBody, jsonContent } from "../lib/openapi";
import { afterCursor, PaginationQuery, pageWithCursorHeader } from "../lib/pagination";
import { CallingHoursSchema, DEFAULT_CALLING_HOURS } from "../calls/calling-hours";

const ProjectSchema = z
  .object({
    id: z.string(),
    business_id: z.string(),
    name: z.string(),
    calling_hours: CallingHoursSchema.openapi({
      description: "The window live calls are placed in, in the callee's local time: the project's own, or the default 08:00–21:00 every day",
    }),
    calling_hours_set: z.boolean().openapi({ description: "Whether the project set calling_hours; only then do simulated calls follow them" }),
    max_concurrent_calls: z.number().int().openapi({ description: "Calls of the project running at once at most; more wait queued (queued_reason capacity)" }),
    default_engine: z.enum(VOICE_ENGINES).openapi({ description: "The voice engine of notifications without an agent (the LLM path); an agent's calls run on its own engine" }),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("Project");

/** A single project read: with its calls running and waiting now. */
const ProjectWithCallsSchema = ProjectSchema.extend({
  live_calls: z.number().int().openapi({ description: "Calls of the project under way now" }),
  queued_calls: z.number().int().openapi({ description: "Notifications waiting to be dialled (scheduled, calling hours, retry or capacity)" }),
}).openapi("ProjectWithCalls");

const CreatedProjectSchema = ProjectSchema.extend({
  api_key: z.string().openapi({ description: "The new project's first API key; shown once" }),
}).openapi("CreatedProject");

type ProjectRow = typeof projects.$inferSelect;

const projectName = z.string().trim().min(1, "is required").max(100);

function projectBody(row: ProjectRow) {
  return {
    id: row.id,
    business_id: row.businessId,
    name: row.name,
    calling_hours: row.callingHours ?? DEFAULT_CALLING_HOURS,
    calling_hours_set: row.callingHours !== null,
    max_concurrent_calls: row.maxConcurrentCalls,
    default_engine: row.defaultEngine,
    created_at: row.createdAt,
    updated_at: row.updatedAt,
  };
}

/** The project's calls under way and waiting, from its open notifications. */
async function openCalls(db: Database, projectId: string): Promise<{ live_calls: number; queued_calls: number }> {
  const rows = await db
    .select({ status: notifications.status, count: count() })
    .from(notifications)
    .where(and(eq(notifications.projectId, projectId), inArray(notifications.status, OPEN_NOTIFICATION_STATUSES)))
    .groupBy(notifications.status);
  const of = (status: string) => rows.find((row) => row.status === status)?.count ?? 0;
  return { live_calls: of("in_progress"), queued_calls: of("queued") };
}

/** The `projects` row condition of `findAccessibleProject`, for queries that join the project. */
export function accessibleProject(auth: AuthContext, projectId: string): SQL | undefined {
  if (auth.kind === "api_key" && projectId !== auth.projectId) throw new ApiError("project_not_found", "Project not found");
  return and(eq(projects.id, projectId), eq(projects.businessId, auth.businessId));
}

/**
 * A project the caller may act on: an API key reaches only its own project, a user any project of
 * the business. Anything else is a 404, never a 403, so ids of other tenants leak nothing.
 */
export async function findAccessibleProject(db: Database, auth: AuthContext, projectId: string): Promise<ProjectRow> {
  const [row] = await db.select().from(projects).where(accessibleProject(auth, projectId)).limit(1);
  if (!row) throw new ApiError("project_not_found", "Project not found");
  return row;
}

function requireUser(auth: AuthContext): void {
  if (auth.kind !== "user") throw new ApiError("user_token_required", "Listing and creating projects needs a user's Bearer token, not an API key");
}

const currentProjectRoute = createRoute({
  method: "get",
  path: "/project",
  tags: ["Projects"],
  summary: "The project of the calling API key (or x-project-id)",
  security: apiKeySecurity,
  responses: { 200: jsonContent(ProjectWithCallsSchema, "The project"), ...errorResponses(401) },
});

const getProjectRoute = createRoute({
  method: "get",
  path: "/projects/{projectId}",
  tags: ["Projects"],
  summary: "Get a project",
  security: apiKeySecurity,
  request: { params: IdParam("projectId") },
  responses: { 200: jsonContent(ProjectWithCallsSchema, "The project"), ...errorResponses(401, 404) },
});

const listProjectsRoute = createRoute({
  method: "get",
  path: "/projects",
  tags: ["Projects"],
  summary: "List the business's projects (Bearer only)",
  security: [{ Bearer: [] }],
  request: { query: PaginationQuery },
  responses: { 200: jsonContent(z.array(ProjectSchema), "Projects, newest first; next page cursor in X-Next-Cursor"), ...errorResponses(400, 401, 403) },
});

const createProjectRoute = createRoute({
  method: "post",
  path: "/projects",
  tags: ["Projects"],
  summary: "Create a project with its first API key (Bearer only)",
  security: [{ Bearer: [] }],
  request: { body: jsonBody(z.object({ name: projectName }).openapi("CreateProjectRequest")) },
  responses: { 201: jsonContent(CreatedProjectSchema, "Project created"), ...errorResponses(400, 401, 403) },
});

const UpdateProjectBody = z
  .object({
    name: projectName.optional(),
    calling_hours: CallingHoursSchema.nullable()
      .optional()
      .openapi({ description: "The window calls are placed in, in the callee's local time; null goes back to the default (and simulated calls to none)" }),
    max_concurrent_calls: z.number().int().min(1).max(1000).optional(),
    default_engine: z.enum(VOICE_ENGINES).optional(),
  })
  .refine(atLeastOneField, "provide at least one field")
  .openapi("UpdateProjectRequest");

const updateProjectRoute = createRoute({
  method: "patch",
  path: "/projects/{projectId}",
  tags: ["Projects"],
  summary: "Rename a project or change its calling hours or its concurrent calls; fields left out keep their value",
  security: apiKeySecurity,
  request: { params: IdParam("projectId"), body: jsonBody(UpdateProjectBody) },
  responses: { 200: jsonContent(ProjectSchema, "The updated project"), ...errorResponses(400, 401, 404) },
});

export const projectRoutes = createRouter()
  .openapi(currentProjectRoute, async (c) => {
    const project = await findAccessibleProject(c.var.db, c.var.auth, c.var.auth.projectId);
    return c.json({ ...projectBody(project), ...(await openCalls(c.var.db, project.id)) }, 200);
  })
  .openapi(getProjectRoute, async (c) => {
    const project = await findAccessibleProject(c.var.db, c.var.auth, c.req.valid("param").projectId);
    return c.json({ ...projectBody(project), ...(await openCalls(c.var.db, project.id)) }, 200);
  })
  .openapi(updateProjectRoute, async (c) => {
    const { auth, db } = c.var;
    const body = c.req.valid("json");
    const [row] = await db
      .update(projects)
      .set({ name: body.name, callingHours: body.calling_hours, maxConcurrentCalls: body.max_concurrent_calls, defaultEngine: body.default_engine, updatedAt: nowIso() })
      .where(accessibleProject(auth, c.req.valid("param").projectId))
      .returning();
    if (!row) throw new ApiError("project_not_found", "Project not found");
    return c.json(projectBody(row), 200);
  })
  .openapi(listProjectsRoute, async (c) => {
    const { auth, db } = c.var;
    requireUser(auth);
    const { limit, cursor } = c.req.valid("query");
    const rows = await db
      .select()
      .from(projects)
      .where(and(eq(projects.businessId, auth.businessId), afterCursor(projects.id, cursor)))
      .orderBy(desc(projects.id))
      .limit(limit + 1);
    const items = pageWithCursorHeader(c, rows, limit);
    return c.json(items.map(projectBody), 200);
  })
  .openapi(createProjectRoute, async (c) => {
    const { auth, db } = c.var;
    requireUser(auth);
    const now = nowIso();
    const project: ProjectRow = { id: uuidv7(), businessId: auth.businessId, name: c.req.valid("json").name, callingHours: null, maxConcurrentCalls: DEFAULT_MAX_CONCURRENT_CALLS, defaultEngine: DEFAULT_VOICE_ENGINE, createdAt: now, updatedAt: now };
    const key = await generateApiKey();
    await db.batch([
      db.insert(projects).values(project),
      db.insert(apiKeys).values({ id: uuidv7(), projectId: project.id, name: "default", keyHash: key.keyHash, keyPrefix: key.keyPrefix, status: "active", createdAt: now, updatedAt: now }),
    ]);
    noStore(c);
    return c.json({ ...projectBody(project), api_key: key.key }, 201);
  });
