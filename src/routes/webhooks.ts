import { createRoute, z } from "@hono/zod-openapi";
import { and, asc, desc, eq, inArray, sql } from "drizzle-orm";
import type { Config } from "../env";
import type { AuthContext } from "../context";
import type { Database } from "../db/client";
import { events, projects, webhookAttempts, webhookDeliveries, webhookEndpoints } from "../db/schema";
import { ApiError } from "../errors";
import { nowIso, uuidv7 } from "../lib/ids";
import { noStore } from "../lib/no-store";
import { apiKeySecurity, atLeastOneField, createRouter, errorResponses, IdParam, jsonBody, jsonContent } from "../lib/openapi";
import { afterCursor, PaginationQuery, paginate, pageWithCursorHeader } from "../lib/pagination";
import { attemptDelivery, deliveryEvent, isLeaseFree, leaseMs, type AttemptRow } from "../webhooks/deliver";
import { enqueueDeliveries, envelope, EVENT_NAMES } from "../webhooks/emit";
import { generateSigningSecret, PREVIOUS_SECRET_GRACE_MS } from "../webhooks/sign";
import { checkWebhookUrl, MAX_WEBHOOK_URL_LENGTH } from "../webhooks/url-guard";
import { accessibleProject, findAccessibleProject } from "./projects";

const TEST_EVENT_NAME = "webhook.test";
const DISABLED_BY_API = "Disabled through the API";

const UrlField = z
  .string()
  .trim()
  .max(MAX_WEBHOOK_URL_LENGTH, `must be at most ${MAX_WEBHOOK_URL_LENGTH} characters`)
  .refine((value) => URL.canParse(value) && /^https?:$/.test(new URL(value).protocol), "must be an absolute http or https URL")
  .openapi({
    format: "uri",
    description:
      "Where events are POSTed. In production: https, port 443 or ≥ 1024, no credentials in the URL, and a public host: a public IP address, or a name whose every A/AAAA record is one (checked on save and before each delivery attempt)",
    example: "https://your-server.com/webhooks/echo",
  });

const EventsField = z
  .array(z.enum(EVENT_NAMES))
  .min(1, "subscribe to at least one event")
  .refine((names) => new Set(names).size === names.length, "must not list an event twice")
  .openapi({ description: "The events this endpoint receives", example: ["call.summary"] });

const WebhookStatus = z.enum(["active", "disabled"]);

const CreateWebhookBody = z.object({ url: UrlField, events: EventsField }).openapi("CreateWebhookRequest");

const UpdateWebhookBody = z
  .object({
    url: UrlField.optional(),
    status: WebhookStatus.optional().openapi({ description: "`active` re-enables a disabled endpoint and resets its failure count and streak" }),
    events: EventsField.optional(),
  })
  .refine(atLeastOneField, "provide at least one field")
  .openapi("UpdateWebhookRequest");

const WebhookSchema = z
  .object({
    id: z.string(),
    project_id: z.string(),
    url: z.string(),
    status: WebhookStatus,
    events: z.array(z.string()),
    consecutive_failures: z.number().int().openapi({ description: "Failed delivery attempts since the last success" }),
    failing_since: z
      .string()
      .nullable()
      .openapi({ description: "When the current run of failed attempts began (null after a success); an endpoint failing continuously for 5 days is disabled" }),
    disabled_reason: z.string().nullable().openapi({ description: "Why the endpoint is disabled, e.g. it answered 410 Gone or failed continuously for 5 days" }),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("Webhook");

const CreatedWebhookSchema = WebhookSchema.extend({
  signing_secret: z.string().openapi({ description: "Verifies X-Echo-Signature and webhook-signature; shown only here and on rotation", example: "whsec_6f43…" }),
}).openapi("CreatedWebhook");

const RotatedSecretSchema = z
  .object({ signing_secret: z.string().openapi({ description: "The new secret; the previous one keeps signing (webhook-signature) for 24 hours" }) })
  .openapi("RotatedWebhookSecret");

const DeliveryStatus = z.enum(["pending", "retrying", "success", "failed"]);

const DeliverySchema = z
  .object({
    id: z.string(),
    webhook_endpoint_id: z.string(),
    project_id: z.string(),
    event_id: z.string(),
    event_name: z.string(),
    payload: z.record(z.string(), z.unknown()).openapi({ description: "The envelope exactly as sent: event_id, event_name, created_at, customer_id, notification_id, data" }),
    status: DeliveryStatus,
    attempt_count: z.number().int(),
    next_retry_at: z.string().nullable(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("WebhookDelivery");

const AttemptSchema = z
  .object({
    id: z.string(),
    attempt_number: z.number().int(),
    triggered_by: z.enum(["auto", "manual"]),
    http_status: z.number().int().nullable(),
    response_body: z.string().nullable().openapi({ description: "The first 2048 characters of the receiver's answer" }),
    duration_ms: z.number().int(),
    success: z.boolean(),
    error_message: z.string().nullable().openapi({ description: "Why no HTTP answer came: timeout, network error, URL not allowed" }),
    created_at: z.string(),
  })
  .openapi("WebhookAttempt");

const DeliveryDetailSchema = DeliverySchema.extend({ attempts: z.array(AttemptSchema) }).openapi("WebhookDeliveryDetail");

const DeliveryPageSchema = z.object({ data: z.array(DeliverySchema), next_cursor: z.string().nullable() }).openapi("WebhookDeliveryPage");

type EndpointRow = typeof webhookEndpoints.$inferSelect;
type DeliveryRow = typeof webhookDeliveries.$inferSelect;

function webhookBody(row: EndpointRow) {
  return {
    id: row.id,
    project_id: row.projectId,
    url: row.url,
    status: row.status,
    events: row.events,
    consecutive_failures: row.consecutiveFailures,
    failing_since: row.failingSince,
    disabled_reason: row.disabledReason,
    created_at: row.createdAt,
    updated_at: row.updatedAt,
  };
}

function deliveryBody(row: DeliveryRow, payload: string) {
  return {
    id: row.id,
    webhook_endpoint_id: row.webhookEndpointId,
    project_id: row.projectId,
    event_id: row.eventId,
    event_name: row.eventName,
    payload: JSON.parse(payload) as Record<string, unknown>,
    status: row.status,
    attempt_count: row.attemptCount,
    next_retry_at: row.nextRetryAt,
    created_at: row.createdAt,
    updated_at: row.updatedAt,
  };
}

function attemptBody(row: AttemptRow) {
  return {
    id: row.id,
    attempt_number: row.attemptNumber,
    triggered_by: row.triggeredBy,
    http_status: row.httpStatus,
    response_body: row.responseBody,
    duration_ms: row.durationMs,
    success: row.success,
    error_message: row.errorMessage,
    created_at: row.createdAt,
  };
}

/** The URL as the guard sees it (in production its host resolved): refused → 422 saying why. */
async function allowedUrl(url: string, config: Config): Promise<string> {
  const check = await checkWebhookUrl(url, config.webhooks);
  if (!check.ok) throw new ApiError("webhook_url_not_allowed", `Webhook URL not allowed: ${check.reason}`);
  return url;
}

/** An endpoint of a project the caller may act on, in one query: a 404 for the project, else for the endpoint. */
async function findEndpoint(db: Database, auth: AuthContext, projectId: string, webhookId: string): Promise<EndpointRow> {
  const [row] = await db
    .select({ projectId: projects.id, endpoint: webhookEndpoints })
    .from(projects)
    .leftJoin(webhookEndpoints, and(eq(webhookEndpoints.projectId, projects.id), eq(webhookEndpoints.id, webhookId)))
    .where(accessibleProject(auth, projectId))
    .limit(1);
  if (!row) throw new ApiError("project_not_found", "Project not found");
  if (!row.endpoint) throw new ApiError("webhook_not_found", "Webhook not found");
  return row.endpoint;
}

function assertEnabled(endpoint: EndpointRow): void {
  if (endpoint.status === "disabled") {
    throw new ApiError(
      "webhook_disabled",
      `Webhook is disabled (${endpoint.disabledReason ?? "no reason recorded"}); re-enable it with PATCH {"status":"active"} first`,
    );
  }
}

function deliveryQuery(db: Database, endpoint: EndpointRow, deliveryId: string) {
  return db
    .select({ delivery: webhookDeliveries, payload: events.payload })
    .from(webhookDeliveries)
    .innerJoin(events, deliveryEvent)
    .where(and(eq(webhookDeliveries.id, deliveryId), eq(webhookDeliveries.webhookEndpointId, endpoint.id), eq(webhookDeliveries.projectId, endpoint.projectId)))
    .limit(1);
}

function foundDelivery([row]: Awaited<ReturnType<typeof deliveryQuery>>): { delivery: DeliveryRow; payload: string } {
  if (!row) throw new ApiError("webhook_delivery_not_found", "Webhook delivery not found");
  return row;
}

const ProjectParam = IdParam("projectId");
const WebhookParams = ProjectParam.extend(IdParam("webhookId").shape);
const DeliveryParams = WebhookParams.extend(IdParam("deliveryId").shape);
const tags = ["Webhooks"];

const createWebhookRoute = createRoute({
  method: "post",
  path: "/projects/{projectId}/webhooks",
  tags,
  summary: "Register a webhook endpoint",
  description: "The response's `signing_secret` is shown only here (and on rotation): keep it to verify `X-Echo-Signature`.",
  security: apiKeySecurity,
  request: { params: ProjectParam, body: jsonBody(CreateWebhookBody) },
  responses: { 201: jsonContent(CreatedWebhookSchema, "Endpoint created"), ...errorResponses(400, 401, 404, 422) },
});

const listWebhooksRoute = createRoute({
  method: "get",
  path: "/projects/{projectId}/webhooks",
  tags,
  summary: "List the project's webhook endpoints",
  security: apiKeySecurity,
  request: { params: ProjectParam, query: PaginationQuery },
  responses: { 200: jsonContent(z.array(WebhookSchema), "Endpoints, newest first; next page cursor in X-Next-Cursor"), ...errorResponses(400, 401, 404) },
});

const getWebhookRoute = createRoute({
  method: "get",
  path: "/projects/{projectId}/webhooks/{webhookId}",
  tags,
  summary: "Get a webhook endpoint",
  security: apiKeySecurity,
  request: { params: WebhookParams },
  responses: { 200: jsonContent(WebhookSchema, "The endpoint"), ...errorResponses(401, 404) },
});

const updateWebhookRoute = createRoute({
  method: "patch",
  path: "/projects/{projectId}/webhooks/{webhookId}",
  tags,
  summary: "Change an endpoint's URL, events or status",
  security: apiKeySecurity,
  request: { params: WebhookParams, body: jsonBody(UpdateWebhookBody) },
  responses: { 200: jsonContent(WebhookSchema, "The updated endpoint"), ...errorResponses(400, 401, 404, 422) },
});

const deleteWebhookRoute = createRoute({
  method: "delete",
  path: "/projects/{projectId}/webhooks/{webhookId}",
  tags,
  summary: "Delete an endpoint with its delivery log",
  security: apiKeySecurity,
  request: { params: WebhookParams },
  responses: { 204: { description: "Deleted" }, ...errorResponses(401, 404) },
});

const rotateSecretRoute = createRoute({
  method: "post",
  path: "/projects/{projectId}/webhooks/{webhookId}/secret/rotate",
  tags,
  summary: "Replace the signing secret",
  description:
    "`X-Echo-Signature` uses the new secret at once. For 24 hours `webhook-signature` also carries a signature with the previous secret, so receivers can switch without rejecting deliveries.",
  security: apiKeySecurity,
  request: { params: WebhookParams },
  responses: { 200: jsonContent(RotatedSecretSchema, "The new secret, shown once"), ...errorResponses(401, 404) },
});

const testWebhookRoute = createRoute({
  method: "post",
  path: "/projects/{projectId}/webhooks/{webhookId}/test",
  tags,
  summary: "Send a webhook.test event to this endpoint now",
  description:
    "Delivers a signed `webhook.test` event to this endpoint only, synchronously, and returns the delivery with the attempt so you see what your server answered. A failed test is retried on the usual schedule.",
  security: apiKeySecurity,
  request: { params: WebhookParams },
  responses: { 200: jsonContent(DeliveryDetailSchema, "The delivery and its attempt"), ...errorResponses(401, 404, 422) },
});

const listDeliveriesRoute = createRoute({
  method: "get",
  path: "/projects/{projectId}/webhooks/{webhookId}/deliveries",
  tags,
  summary: "The endpoint's delivery log",
  security: apiKeySecurity,
  request: {
    params: WebhookParams,
    query: PaginationQuery.extend({
      status: DeliveryStatus.optional().openapi({ description: "Only deliveries in this state" }),
      event_name: z.string().max(100).optional().openapi({ description: "Only this event, e.g. call.summary" }),
    }),
  },
  responses: { 200: jsonContent(DeliveryPageSchema, "Deliveries, newest first"), ...errorResponses(400, 401, 404) },
});

const getDeliveryRoute = createRoute({
  method: "get",
  path: "/projects/{projectId}/webhooks/{webhookId}/deliveries/{deliveryId}",
  tags,
  summary: "A delivery with every attempt",
  security: apiKeySecurity,
  request: { params: DeliveryParams },
  responses: { 200: jsonContent(DeliveryDetailSchema, "The delivery"), ...errorResponses(401, 404) },
});

const retryDeliveryRoute = createRoute({
  method: "post",
  path: "/projects/{projectId}/webhooks/{webhookId}/deliveries/{deliveryId}/retry",
  tags,
  summary: "Send a delivery again",
  description:
    "Queues a new attempt (`triggered_by: manual`) with the same event_id and body. Works on any delivery: a failed one is tried again, a successful one is replayed, so make your receiver idempotent on `event_id`. If it fails, the remaining automatic retries follow. While an attempt of the delivery is in progress the answer is 409.",
  security: apiKeySecurity,
  request: { params: DeliveryParams },
  responses: { 202: jsonContent(DeliverySchema, "The delivery, pending again"), ...errorResponses(401, 404, 409, 422) },
});

export const webhookRoutes = createRouter()
  .openapi(createWebhookRoute, async (c) => {
    const { auth, db, config } = c.var;
    const project = await findAccessibleProject(db, auth, c.req.valid("param").projectId);
    const body = c.req.valid("json");
    const now = nowIso();
    const row: EndpointRow = {
      id: uuidv7(),
      projectId: project.id,
      url: await allowedUrl(body.url, config),
      signingSecret: generateSigningSecret(),
      previousSigningSecret: null,
      previousSecretExpiresAt: null,
      status: "active",
      disabledReason: null,
      events: body.events,
      consecutiveFailures: 0,
      failingSince: null,
      createdAt: now,
      updatedAt: now,
    };
    await db.insert(webhookEndpoints).values(row);
    noStore(c);
    return c.json({ ...webhookBody(row), signing_secret: row.signingSecret }, 201);
  })
  .openapi(listWebhooksRoute, async (c) => {
    const { auth, db } = c.var;
    const project = await findAccessibleProject(db, auth, c.req.valid("param").projectId);
    const { limit, cursor } = c.req.valid("query");
    const rows = await db
      .select()
      .from(webhookEndpoints)
      .where(and(eq(webhookEndpoints.projectId, project.id), afterCursor(webhookEndpoints.id, cursor)))
      .orderBy(desc(webhookEndpoints.id))
      .limit(limit + 1);
    const items = pageWithCursorHeader(c, rows, limit);
    return c.json(items.map(webhookBody), 200);
  })
  .openapi(getWebhookRoute, async (c) => {
    const { auth, db } = c.var;
    const { projectId, webhookId } = c.req.valid("param");
    return c.json(webhookBody(await findEndpoint(db, auth, projectId, webhookId)), 200);
  })
  .openapi(updateWebhookRoute, async (c) => {
    const { auth, db, config } = c.var;
    const { projectId, webhookId } = c.req.valid("param");
    const body = c.req.valid("json");
    const endpoint = await findEndpoint(db, auth, projectId, webhookId);
    const changes: Partial<EndpointRow> = { updatedAt: nowIso() };
    if (body.url !== undefined) changes.url = await allowedUrl(body.url, config);
    if (body.events !== undefined) changes.events = body.events;
    if (body.status === "active" && endpoint.status === "disabled") Object.assign(changes, { status: "active", disabledReason: null, consecutiveFailures: 0, failingSince: null });
    if (body.status === "disabled" && endpoint.status === "active") Object.assign(changes, { status: "disabled", disabledReason: DISABLED_BY_API });
    const [row] = await db
      .update(webhookEndpoints)
      .set(changes)
      .where(and(eq(webhookEndpoints.id, endpoint.id), eq(webhookEndpoints.projectId, endpoint.projectId)))
      .returning();
    // Deleted between the lookup and the update.
    if (!row) throw new ApiError("webhook_not_found", "Webhook not found");
    return c.json(webhookBody(row), 200);
  })
  .openapi(deleteWebhookRoute, async (c) => {
    const { auth, db } = c.var;
    const { projectId, webhookId } = c.req.valid("param");
    const project = await findAccessibleProject(db, auth, projectId);
    const ownDeliveries = and(eq(webhookDeliveries.webhookEndpointId, webhookId), eq(webhookDeliveries.projectId, project.id));
    // Children first: attempts reference deliveries, deliveries the endpoint. Events stay (other endpoints share them).
    const [, , deleted] = await db.batch([
      db.delete(webhookAttempts).where(inArray(webhookAttempts.deliveryId, db.select({ id: webhookDeliveries.id }).from(webhookDeliveries).where(ownDeliveries))),
      db.delete(webhookDeliveries).where(ownDeliveries),
      db
        .delete(webhookEndpoints)
        .where(and(eq(webhookEndpoints.id, webhookId), eq(webhookEndpoints.projectId, project.id)))
        .returning({ id: webhookEndpoints.id }),
    ]);
    if (deleted.length === 0) throw new ApiError("webhook_not_found", "Webhook not found");
    return c.body(null, 204);
  })
  .openapi(rotateSecretRoute, async (c) => {
    const { auth, db } = c.var;
    const { projectId, webhookId } = c.req.valid("param");
    const project = await findAccessibleProject(db, auth, projectId);
    const signingSecret = generateSigningSecret();
    // One statement: the secret being replaced is read and kept atomically.
    const [row] = await db
      .update(webhookEndpoints)
      .set({
        signingSecret,
        previousSigningSecret: sql`${webhookEndpoints.signingSecret}`,
        previousSecretExpiresAt: new Date(Date.now() + PREVIOUS_SECRET_GRACE_MS).toISOString(),
        updatedAt: nowIso(),
      })
      .where(and(eq(webhookEndpoints.id, webhookId), eq(webhookEndpoints.projectId, project.id)))
      .returning({ id: webhookEndpoints.id });
    if (!row) throw new ApiError("webhook_not_found", "Webhook not found");
    noStore(c);
    return c.json({ signing_secret: signingSecret }, 200);
  })
  .openapi(testWebhookRoute, async (c) => {
    const { auth, db, config } = c.var;
    const { projectId, webhookId } = c.req.valid("param");
    const endpoint = await findEndpoint(db, auth, projectId, webhookId);
    assertEnabled(endpoint);
    const eventId = uuidv7();
    const now = nowIso();
    // The same envelope as every event, for this endpoint only.
    const payload = envelope(eventId, { eventName: TEST_EVENT_NAME, customerId: null, notificationId: null, data: { message: "This is a test event from Echo" } }, now);
    const delivery: DeliveryRow = {
      id: uuidv7(),
      webhookEndpointId: endpoint.id,
      projectId: endpoint.projectId,
      eventId,
      eventName: TEST_EVENT_NAME,
      status: "pending",
      attemptCount: 0,
      nextRetryAt: now,
      // Created claimed by this request: no consumer or sweeper takes it during the attempt below.
      leaseUntil: new Date(Date.parse(now) + leaseMs(config.webhooks)).toISOString(),
      manualRetry: true,
      createdAt: now,
      updatedAt: now,
    };
    await db.batch([
      db.insert(events).values({ id: eventId, projectId: endpoint.projectId, notificationId: null, customerId: null, eventName: TEST_EVENT_NAME, payload, createdAt: now }),
      db.insert(webhookDeliveries).values(delivery),
    ]);
    const result = await attemptDelivery(db, config.webhooks, { delivery, endpoint, payload }, "manual");
    // A failed send only delays the retry: the sweeper finds the delivery once it is overdue.
    if (result.retryInSeconds !== null) await enqueueDeliveries(c.env.WEBHOOK_QUEUE, [delivery.id], { delaySeconds: result.retryInSeconds });
    return c.json({ ...deliveryBody(result.delivery, payload), attempts: [attemptBody(result.attempt)] }, 200);
  })
  .openapi(listDeliveriesRoute, async (c) => {
    const { auth, db } = c.var;
    const { projectId, webhookId } = c.req.valid("param");
    const { limit, cursor, status, event_name: eventName } = c.req.valid("query");
    const endpoint = await findEndpoint(db, auth, projectId, webhookId);
    const rows = await db
      .select({ id: webhookDeliveries.id, delivery: webhookDeliveries, payload: events.payload })
      .from(webhookDeliveries)
      .innerJoin(events, deliveryEvent)
      .where(
        and(
          eq(webhookDeliveries.webhookEndpointId, endpoint.id),
          eq(webhookDeliveries.projectId, endpoint.projectId),
          status ? eq(webhookDeliveries.status, status) : undefined,
          eventName ? eq(webhookDeliveries.eventName, eventName) : undefined,
          afterCursor(webhookDeliveries.id, cursor),
        ),
      )
      .orderBy(desc(webhookDeliveries.id))
      .limit(limit + 1);
    const page = paginate(rows, limit);
    return c.json({ data: page.items.map((row) => deliveryBody(row.delivery, row.payload)), next_cursor: page.nextCursor }, 200);
  })
  .openapi(getDeliveryRoute, async (c) => {
    const { auth, db } = c.var;
    const { projectId, webhookId, deliveryId } = c.req.valid("param");
    const endpoint = await findEndpoint(db, auth, projectId, webhookId);
    // The attempts are read by the path's id, but only shown once the delivery is found to be the endpoint's.
    const [rows, attempts] = await db.batch([
      deliveryQuery(db, endpoint, deliveryId),
      db.select().from(webhookAttempts).where(eq(webhookAttempts.deliveryId, deliveryId)).orderBy(asc(webhookAttempts.attemptNumber)),
    ]);
    const { delivery, payload } = foundDelivery(rows);
    return c.json({ ...deliveryBody(delivery, payload), attempts: attempts.map(attemptBody) }, 200);
  })
  .openapi(retryDeliveryRoute, async (c) => {
    const { auth, db } = c.var;
    const { projectId, webhookId, deliveryId } = c.req.valid("param");
    const endpoint = await findEndpoint(db, auth, projectId, webhookId);
    assertEnabled(endpoint);
    const { delivery, payload } = foundDelivery(await deliveryQuery(db, endpoint, deliveryId));
    const now = nowIso();
    // Pending, due now and marked manual, unless an attempt holds it right now: the consumer claims
    // it from this state, and the sweeper sends it should the queue refuse the message.
    const [row] = await db
      .update(webhookDeliveries)
      .set({ status: "pending", nextRetryAt: now, manualRetry: true, updatedAt: now })
      .where(
        and(
          eq(webhookDeliveries.id, delivery.id),
          eq(webhookDeliveries.projectId, endpoint.projectId),
          isLeaseFree(now),
        ),
      )
      .returning();
    if (!row) throw new ApiError("webhook_delivery_in_flight", "An attempt of this delivery is in progress; retry it once that attempt is recorded");
    await enqueueDeliveries(c.env.WEBHOOK_QUEUE, [row.id]);
    return c.json(deliveryBody(row, payload), 202);
  });
