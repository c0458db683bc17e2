import { createRoute, z } from "@hono/zod-openapi";
import { and, desc, eq, gt, lte } from "drizzle-orm";
import type { AuthContext } from "../context";
import { neverConnected, persistCallEnd, type CallParams } from "../calls/call-session";
import { locationHintForPhone } from "../calls/location";
import { llmScript, promptValues, renderScript, type ScriptTemplate } from "../calls/prompt";
import { simulatedOpening } from "../calls/simulator";
import type { Database } from "../db/client";
import { agents, businesses, customerPhones, customers, idempotencyKeys, notifications } from "../db/schema";
import { ApiError } from "../errors";
import { sha256Hex } from "../lib/crypto";
import { nowIso, randomHex, uuidv7 } from "../lib/ids";
import { apiKeySecurity, createRouter, ErrorSchema, errorResponses, IdParam, jsonBody, jsonContent } from "../lib/openapi";
import { afterCursor, PaginationQuery, pageWithCursorHeader } from "../lib/pagination";

const STATUSES = ["queued", "in_progress", "completed", "failed", "canceled"] as const;
const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
const DEFAULT_MAX_DURATION_SECONDS = 180;
const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

const TranscriptTurnSchema = z
  .object({ role: z.enum(["agent", "customer"]), text: z.string(), at_ms: z.number().openapi({ description: "Milliseconds since the call was answered" }) })
  .openapi("TranscriptTurn");

const NotificationSchema = z
  .object({
    id: z.string(),
    project_id: z.string(),
    customer_id: z.string(),
    agent_id: z.string().nullable(),
    status: z.enum(STATUSES),
    target_phone_e164: z.string(),
    message: z.string().nullable(),
    context: z.string().nullable(),
    variables: z.record(z.string(), z.string()),
    collect_feedback: z.boolean(),
    max_duration_seconds: z.number().int(),
    call_id: z.string(),
    call_status: z.string().openapi({ description: "queued, ringing, in-progress, completed, busy, no-answer, failed or canceled" }),
    ended_reason: z.string().nullable().openapi({ description: "customer-ended-call, assistant-ended-call, customer-busy, customer-did-not-answer, voicemail, exceeded-max-duration, silence-timed-out, canceled or error" }),
    call_result: z.record(z.string(), z.unknown()).nullable().openapi({ description: "Extracted with the agent's output_schema; keys not collected are null" }),
    transcript: z.array(TranscriptTurnSchema),
    started_at: z.string().nullable(),
    answered_at: z.string().nullable(),
    ended_at: z.string().nullable(),
    duration_seconds: z.number().nullable().openapi({ description: "Talk time from the answer, in seconds" }),
    answered_by: z.enum(["human", "machine_end_beep"]).nullable(),
    simulated: z.boolean().openapi({ description: "Placed on the built-in call simulator: nothing was dialled" }),
    error_message: z.string().nullable(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("Notification");

const CreatedNotificationSchema = z
  .object({
    notification: NotificationSchema,
    call: z.object({
      callId: z.string(),
      status: z.enum(["queued", "failed"]).openapi({ description: "queued; failed when the telephony provider refused the call (the notification says why)" }),
    }),
  })
  .openapi("CreatedNotification");

const CreateNotificationRequest = z
  .object({
    customer_id: z.string().min(1, "is required"),
    agent_id: z.string().min(1).optional().openapi({ description: "Omit for the LLM path" }),
    message: z.string().trim().min(1, "must not be empty").max(2000).optional().openapi({ description: "Required without agent_id; fills {{message}}" }),
    context: z.string().max(4000).optional(),
    variables: z
      .record(
        z.string().regex(VARIABLE_NAME, "variable names are letters, digits, _, . or -, not starting with a digit").max(100),
        z.union([z.string().max(1000), z.number(), z.boolean()]),
      )
      .refine((variables) => Object.keys(variables).length <= 50, "at most 50 variables")
      .optional()
      .openapi({ description: "Fill {{name}} tokens; they override the built-in values" }),
    collect_feedback: z.boolean().optional().openapi({ description: "LLM path: ask the person to confirm, cancel or reschedule and store it in call_result" }),
    max_duration_seconds: z.number().int().min(30).max(600).optional().openapi({ description: "Default: the agent's, else 180" }),
  })
  .superRefine((body, ctx) => {
    if (body.agent_id === undefined && body.message === undefined) ctx.addIssue({ code: "custom", path: ["message"], message: "is required when agent_id is not set" });
    if (body.agent_id !== undefined && body.collect_feedback === true) {
      ctx.addIssue({ code: "custom", path: ["collect_feedback"], message: "applies only without agent_id (the agent's output_schema says what to collect)" });
    }
  })
  .openapi("CreateNotificationRequest");

type CreateNotificationBody = z.infer<typeof CreateNotificationRequest>;
type NotificationRow = typeof notifications.$inferSelect;
type CreatedNotification = z.infer<typeof CreatedNotificationSchema>;

const IdempotencyHeaders = z.object({
  "idempotency-key": z
    .string()
    .min(1)
    .max(255)
    .regex(/^[\x20-\x7e]+$/, "must be printable ASCII")
    .optional()
    .openapi({ description: "Retries with the same key and body within 24 h return the first response and place no second call" }),
});

function notificationBody(row: NotificationRow): z.infer<typeof NotificationSchema> {
  return {
    id: row.id,
    project_id: row.projectId,
    customer_id: row.customerId,
    agent_id: row.agentId,
    status: row.status,
    target_phone_e164: row.targetPhoneE164,
    message: row.message,
    context: row.context,
    variables: row.variables,
    collect_feedback: row.collectFeedback,
    max_duration_seconds: row.maxDurationSeconds,
    call_id: row.callId,
    call_status: row.callStatus,
    ended_reason: row.endedReason,
    call_result: row.callResult,
    transcript: row.transcript,
    started_at: row.startedAt,
    answered_at: row.answeredAt,
    ended_at: row.endedAt,
    duration_seconds: row.durationSeconds,
    answered_by: row.answeredBy as "human" | "machine_end_beep" | null,
    simulated: row.simulated,
    error_message: row.errorMessage,
    created_at: row.createdAt,
    updated_at: row.updatedAt,
  };
}

async function findNotification(db: Database, auth: AuthContext, id: string): Promise<NotificationRow> {
  const [row] = await db
    .select()
    .from(notifications)
    .where(and(eq(notifications.id, id), eq(notifications.projectId, auth.projectId)))
    .limit(1);
  if (!row) throw ApiError.notFound("Notification");
  return row;
}

/** JSON with object keys sorted at every level, so equal bodies hash equally. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

function unexpiredKeyQuery(db: Database, projectId: string, key: string) {
  return db
    .select()
    .from(idempotencyKeys)
    .where(and(eq(idempotencyKeys.projectId, projectId), eq(idempotencyKeys.key, key), gt(idempotencyKeys.expiresAt, nowIso())))
    .limit(1);
}

/** The stored response for this key, or null; the same key with another body is a 409. */
async function storedResponse(db: Database, projectId: string, key: string, requestHash: string): Promise<CreatedNotification | null> {
  const [row] = await unexpiredKeyQuery(db, projectId, key);
  return replayOf(row, requestHash);
}

function replayOf(row: typeof idempotencyKeys.$inferSelect | undefined, requestHash: string): CreatedNotification | null {
  if (!row) return null;
  if (row.requestHash !== requestHash) throw ApiError.conflict("This Idempotency-Key was already used with a different request body", "idempotency_key_reused");
  return JSON.parse(row.responseBody) as CreatedNotification;
}

interface CallPlan {
  customerId: string;
  agentId: string | null;
  phoneId: string;
  phoneE164: string;
  maxDurationSeconds: number;
  script: ReturnType<typeof renderScript>;
  opening: string;
  /** The agent's voice and language for a live call; null: the model's defaults. */
  voice: string | null;
  language: string | null;
}

/** Every check that refuses a notification, in the documented order; nothing is written here. */
async function planCall(db: Database, auth: AuthContext, body: CreateNotificationBody): Promise<CallPlan> {
  // Every read in one D1 round trip; the checks below still refuse in the documented order.
  const lookups = [
    db
      .select()
      .from(customers)
      .where(and(eq(customers.id, body.customer_id), eq(customers.projectId, auth.projectId)))
      .limit(1),
    // Only used once the customer is known to be in the project.
    db
      .select()
      .from(customerPhones)
      .where(and(eq(customerPhones.customerId, body.customer_id), eq(customerPhones.isPrimary, true)))
      .limit(1),
    db.select().from(businesses).where(eq(businesses.id, auth.businessId)).limit(1),
  ] as const;
  const [[customer], [phone], [business], [agent]] =
    body.agent_id === undefined
      ? [...(await db.batch(lookups)), []]
      : await db.batch([
          ...lookups,
          db
            .select()
            .from(agents)
            .where(and(eq(agents.id, body.agent_id), eq(agents.businessId, auth.businessId)))
            .limit(1),
        ]);
  if (!customer) throw ApiError.notFound("Customer");

  if (body.agent_id !== undefined) {
    if (!agent) throw ApiError.notFound("Agent");
    if (agent.status === "disabled") throw ApiError.unprocessable("The agent is disabled and cannot be used for new notifications", "agent_disabled");
  }

  if (!phone) throw ApiError.unprocessable("The customer has no active phone number to call", "no_active_phone");
  if (phone.status === "opted_out") throw ApiError.unprocessable("The customer's phone number has opted out of calls", "phone_opted_out");
  if (phone.status !== "active") throw ApiError.unprocessable("The customer's primary phone number is marked invalid", "no_active_phone");

  if (!business) throw ApiError.notFound("Business");
  const values = promptValues({
    business: { name: business.name, summary: business.summary, industry: business.industry },
    customer: { firstName: customer.firstName, lastName: customer.lastName },
    request: body,
  });
  const template: ScriptTemplate = agent
    ? { systemPrompt: agent.systemPrompt, firstMessage: agent.firstMessage, voicemailMessage: agent.voicemailMessage, outputSchema: agent.outputSchema ?? null }
    : llmScript({ hasContext: body.context !== undefined, collectFeedback: body.collect_feedback === true });
  const script = renderScript(template, values);
  if (script.missing.length > 0) {
    throw ApiError.unprocessable(`The prompt uses variables with no value: ${script.missing.join(", ")}. Pass them in "variables".`, "missing_variables", {
      missing_variables: script.missing,
    });
  }
  return {
    customerId: customer.id,
    agentId: agent?.id ?? null,
    phoneId: phone.id,
    phoneE164: phone.value,
    maxDurationSeconds: body.max_duration_seconds ?? agent?.maxDurationSeconds ?? DEFAULT_MAX_DURATION_SECONDS,
    script,
    voice: agent?.voice ?? null,
    language: agent?.language ?? null,
    opening: simulatedOpening({
      firstMessage: script.firstMessage,
      prompt: script.prompt,
      values,
      llm: agent ? null : { message: values.message ?? "", collectFeedback: body.collect_feedback === true },
    }),
  };
}

const createRouteDef = createRoute({
  method: "post",
  path: "/notifications",
  tags: ["Notifications"],
  summary: "Send a notification: place an AI voice call to the customer",
  description:
    "Agent path (`agent_id`) or LLM path (`message`, no agent). Refused with no call: unknown customer or agent (404), disabled agent, no active phone, opted-out phone, or prompt variables with no value (422, with `missing_variables`).\n\n" +
    "When Twilio refuses the call (an invalid or unreachable number, an unverified caller ID, …) or cannot be reached, the notification still exists and has ended: the response is a 201 whose notification is `failed` with `ended_reason: error` and Twilio's message in `error_message`, and `call.status` is `failed`; a `call.ended` webhook goes out as for any failed call. A replay with the same Idempotency-Key returns that same response: send a new request to try again. A 502 means the call could not be started for another reason.",
  security: apiKeySecurity,
  request: { headers: IdempotencyHeaders, body: jsonBody(CreateNotificationRequest) },
  responses: {
    201: jsonContent(CreatedNotificationSchema, "The notification; its call is placed at once. A replay carries Idempotent-Replayed: true"),
    ...errorResponses(400, 401, 404, 409, 422),
    502: jsonContent(ErrorSchema.extend({ notification_id: z.string() }), "The call could not be started; the notification is marked failed"),
  },
});

const listRouteDef = createRoute({
  method: "get",
  path: "/notifications",
  tags: ["Notifications"],
  summary: "List the project's notifications",
  security: apiKeySecurity,
  request: {
    query: PaginationQuery.extend({
      status: z.enum(STATUSES).optional(),
      customer_id: z.string().optional(),
      agent_id: z.string().optional(),
    }),
  },
  responses: { 200: jsonContent(z.array(NotificationSchema), "Notifications, newest first; next page cursor in X-Next-Cursor"), ...errorResponses(400, 401) },
});

const getRouteDef = createRoute({
  method: "get",
  path: "/notifications/{id}",
  tags: ["Notifications"],
  summary: "Get a notification with its call's status, transcript and result",
  security: apiKeySecurity,
  request: { params: IdParam("id") },
  responses: { 200: jsonContent(NotificationSchema, "The notification"), ...errorResponses(401, 404) },
});

const cancelRouteDef = createRoute({
  method: "post",
  path: "/notifications/{id}/cancel",
  tags: ["Notifications"],
  summary: "Cancel a notification: a queued or ringing call is never answered, a live one is hung up",
  security: apiKeySecurity,
  request: { params: IdParam("id") },
  responses: { 200: jsonContent(NotificationSchema, "The canceled notification"), ...errorResponses(401, 404, 409) },
});

export const notificationRoutes = createRouter()
  .openapi(createRouteDef, async (c) => {
    const { auth, db, config } = c.var;
    const body = c.req.valid("json");
    const key = c.req.valid("header")["idempotency-key"];
    const requestHash = await sha256Hex(canonicalJson(body));
    if (key !== undefined) {
      const [, [keyRow]] = await db.batch([
        db.delete(idempotencyKeys).where(and(eq(idempotencyKeys.projectId, auth.projectId), eq(idempotencyKeys.key, key), lte(idempotencyKeys.expiresAt, nowIso()))),
        unexpiredKeyQuery(db, auth.projectId, key),
      ]);
      const stored = replayOf(keyRow, requestHash);
      if (stored) {
        c.header("Idempotent-Replayed", "true");
        return c.json(stored, 201);
      }
    }

    const plan = await planCall(db, auth, body);
    const now = nowIso();
    const row: NotificationRow = {
      id: uuidv7(),
      projectId: auth.projectId,
      businessId: auth.businessId,
      customerId: plan.customerId,
      agentId: plan.agentId,
      phoneId: plan.phoneId,
      targetPhoneE164: plan.phoneE164,
      message: body.message ?? null,
      context: body.context ?? null,
      variables: Object.fromEntries(Object.entries(body.variables ?? {}).map(([name, value]) => [name, String(value)])),
      collectFeedback: body.collect_feedback ?? false,
      maxDurationSeconds: plan.maxDurationSeconds,
      renderedPrompt: plan.script.prompt,
      firstMessage: plan.script.firstMessage,
      voicemailMessage: plan.script.voicemailMessage,
      outputSchema: plan.script.outputSchema,
      status: "in_progress",
      callId: `call-${randomHex(16)}`,
      callStatus: "queued",
      endedReason: null,
      callResult: null,
      transcript: [],
      startedAt: null,
      answeredAt: null,
      endedAt: null,
      durationSeconds: null,
      answeredBy: null,
      simulated: !config.live,
      errorMessage: null,
      createdAt: now,
      updatedAt: now,
    };
    const response: CreatedNotification = { notification: notificationBody(row), call: { callId: row.callId, status: "queued" } };

    const insert = db.insert(notifications).values(row);
    try {
      if (key === undefined) await insert;
      else {
        const expiresAt = new Date(Date.parse(now) + IDEMPOTENCY_TTL_MS).toISOString();
        // One batch: two racing requests with one key make one notification; the loser replays.
        await db.batch([
          insert,
          db.insert(idempotencyKeys).values({ projectId: auth.projectId, key, requestHash, notificationId: row.id, responseStatus: 201, responseBody: JSON.stringify(response), createdAt: now, expiresAt }),
        ]);
      }
    } catch (error) {
      const stored = key === undefined ? null : await storedResponse(db, auth.projectId, key, requestHash);
      if (!stored) throw error;
      c.header("Idempotent-Replayed", "true");
      return c.json(stored, 201);
    }

    const target = { notificationId: row.id, projectId: row.projectId, customerId: row.customerId, simulated: row.simulated };
    const params: CallParams = {
      ...target,
      callId: row.callId,
      phoneE164: row.targetPhoneE164,
      prompt: row.renderedPrompt,
      opening: plan.opening,
      voicemailMessage: row.voicemailMessage,
      outputSchema: row.outputSchema,
      maxDurationSeconds: row.maxDurationSeconds,
      ...(config.live ? { live: { streamToken: randomHex(32), voice: plan.voice, language: plan.language } } : {}),
    };
    const locationHint = locationHintForPhone(row.targetPhoneE164);
    const stub = c.env.CALL_SESSION.get(c.env.CALL_SESSION.idFromName(row.id), locationHint ? { locationHint } : undefined);
    let started: Awaited<ReturnType<typeof stub.start>>;
    try {
      started = await stub.start(params);
    } catch (error) {
      console.error(`[echo] could not start the call of notification ${row.id}`, error);
      // Fail the notification rather than leave it in progress, and free the key for a retry.
      const releaseKey = key === undefined ? [] : [db.delete(idempotencyKeys).where(and(eq(idempotencyKeys.projectId, auth.projectId), eq(idempotencyKeys.key, key)))];
      await persistCallEnd(db, c.env.WEBHOOK_QUEUE, neverConnected(target, "error", "The call could not be started"), releaseKey);
      throw new ApiError(502, "call_start_failed", "The call could not be started; the notification was marked failed. Retry the request.", { notification_id: row.id });
    }
    if (started.status !== "ended") return c.json(response, 201);
    // Twilio refused the call: the notification ended failed, saying why; a replay says the same.
    const ended: CreatedNotification = { notification: notificationBody(await findNotification(db, auth, row.id)), call: { callId: row.callId, status: "failed" } };
    if (key !== undefined) {
      await db
        .update(idempotencyKeys)
        .set({ responseBody: JSON.stringify(ended) })
        .where(and(eq(idempotencyKeys.projectId, auth.projectId), eq(idempotencyKeys.key, key)));
    }
    return c.json(ended, 201);
  })
  .openapi(listRouteDef, async (c) => {
    const { auth, db } = c.var;
    const { limit, cursor, status, customer_id, agent_id } = c.req.valid("query");
    const rows = await db
      .select()
      .from(notifications)
      .where(
        and(
          eq(notifications.projectId, auth.projectId),
          afterCursor(notifications.id, cursor),
          status ? eq(notifications.status, status) : undefined,
          customer_id ? eq(notifications.customerId, customer_id) : undefined,
          agent_id ? eq(notifications.agentId, agent_id) : undefined,
        ),
      )
      .orderBy(desc(notifications.id))
      .limit(limit + 1);
    const items = pageWithCursorHeader(c, rows, limit);
    return c.json(items.map(notificationBody), 200);
  })
  .openapi(getRouteDef, async (c) => {
    const row = await findNotification(c.var.db, c.var.auth, c.req.valid("param").id);
    return c.json(notificationBody(row), 200);
  })
  .openapi(cancelRouteDef, async (c) => {
    const { auth, db } = c.var;
    const row = await findNotification(db, auth, c.req.valid("param").id);
    if (row.status !== "in_progress" && row.status !== "queued") throw ApiError.conflict(`The notification has already ended (${row.status})`, "notification_already_ended");
    const stub = c.env.CALL_SESSION.get(c.env.CALL_SESSION.idFromName(row.id));
    await stub.cancel({ notificationId: row.id, projectId: row.projectId, customerId: row.customerId, simulated: row.simulated });
    // The call may have ended on its own just before the cancel reached it.
    const after = await findNotification(db, auth, row.id);
    if (after.status !== "canceled") throw ApiError.conflict(`The notification has already ended (${after.status})`, "notification_already_ended");
    return c.json(notificationBody(after), 200);
  });
