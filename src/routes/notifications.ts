import { createRoute, z } from "@hono/zod-openapi";
import { and, desc, eq } from "drizzle-orm";
import { ANSWERED_BY, CALL_STATUSES, callTargetOf, ENDED_REASONS, isOpenStatus, NOTIFICATION_STATUSES, QUEUED_REASONS, TURN_ROLES, VOICE_ENGINES } from "../calls/call";
import { TOKEN_KINDS, type TokenKind } from "../calls/usage";
import { RECORDING_CONTENT_TYPE } from "../calls/recording";
import type { AuthContext } from "../context";
import type { Database } from "../db/client";
import { preparedInsert, runBatch } from "../db/prepared";
import { notifications } from "../db/schema";
import { ApiError } from "../errors";
import { apiKeySecurity, createRouter, ErrorSchema, errorResponses, IdParam, jsonBody, jsonContent } from "../lib/openapi";
import { afterCursor, PaginationQuery, pageWithCursorHeader } from "../lib/pagination";
import { noStore } from "../lib/no-store";
import { limitNotificationTriggers } from "../limits/rate-limit";
import { IdempotencyHeaders, IdempotentRequest } from "../notifications/idempotency";
import { callParams, newNotification, planFrom, planReads, RetryPolicySchema, type NotificationRow, type PlanReadResults } from "../notifications/plan";
import { startCall } from "../notifications/start";

const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
const MAX_SCHEDULE_AHEAD_MS = 30 * 24 * 60 * 60 * 1000;

const TranscriptTurnSchema = z
  .object({ role: z.enum(TURN_ROLES), text: z.string(), at_ms: z.number().openapi({ description: "Milliseconds since the call was answered" }) })
  .openapi("TranscriptTurn");

const UsageSchema = z
  .object({
    engine: z.enum(VOICE_ENGINES),
    model: z.string().openapi({ description: "The voice model" }),
    delegation_model: z.string().nullable().openapi({ description: "openai-live: the model tool calls are delegated to, whose tokens are counted here; null: the voice model's own tokens are" }),
    model_seconds: z.number().nullable().openapi({ description: "Seconds of model session, for an engine billed by session time (openai-live); null for one billed by tokens only" }),
    input_tokens: z.number().int().openapi({ description: "Input tokens, cached ones included" }),
    output_tokens: z.number().int(),
    tokens: z
      .object(Object.fromEntries(TOKEN_KINDS.map((kind) => [kind, z.number().int()])) as Record<TokenKind, z.ZodNumber>)
      .openapi({ description: "Tokens by kind as OpenAI bills them; an input kind counts only the tokens not read from the cache" }),
    estimated_cost_usd: z.number().nullable().openapi({ description: "At the deployment's prices (MODEL_PRICES); null when a model or kind used has no price" }),
  })
  .openapi("CallUsage", {
    description: "What the notification's calls used of the voice model, from the engine's own counters, summed over its attempts; zero for a simulated call and for a call no model session ran for",
  });

const NotificationSchema = z
  .object({
    id: z.string(),
    project_id: z.string(),
    customer_id: z.string(),
    agent_id: z.string().nullable(),
    status: z.enum(NOTIFICATION_STATUSES),
    batch_id: z.string().nullable(),
    scheduled_for: z.string().nullable().openapi({ description: "While queued: when the call is due to be dialled" }),
    queued_reason: z.enum(QUEUED_REASONS).nullable().openapi({ description: "While queued: why the call waits" }),
    ignore_calling_hours: z.boolean(),
    target_phone_e164: z.string(),
    message: z.string().nullable(),
    context: z.string().nullable(),
    variables: z.record(z.string(), z.string()),
    collect_feedback: z.boolean(),
    max_duration_seconds: z.number().int(),
    call_id: z.string(),
    call_status: z.enum(CALL_STATUSES),
    ended_reason: z.enum(ENDED_REASONS).nullable(),
    call_result: z.record(z.string(), z.unknown()).nullable().openapi({ description: "Extracted with the agent's output_schema; keys not collected are null" }),
    transcript: z.array(TranscriptTurnSchema),
    started_at: z.string().nullable(),
    answered_at: z.string().nullable(),
    ended_at: z.string().nullable(),
    duration_seconds: z.number().nullable().openapi({ description: "Talk time from the answer, in seconds" }),
    answered_by: z.enum(ANSWERED_BY).nullable(),
    opted_out: z.boolean().openapi({ description: "The person asked during the call not to be called again (their phone is now opted_out)" }),
    recording_available: z.boolean().openapi({ description: "The call was recorded (its agent has record: true) and the recording is kept: GET /api/v1/notifications/{id}/recording" }),
    usage: UsageSchema.nullable().openapi({ description: "Null until the first of its calls has ended" }),
    retry: RetryPolicySchema.nullable(),
    attempts: z
      .array(
        z.object({
          number: z.number().int(),
          call_id: z.string(),
          status: z.enum(["completed", "failed", "canceled"]),
          ended_reason: z.enum(ENDED_REASONS),
          answered_by: z.enum(ANSWERED_BY).nullable(),
          started_at: z.string().nullable(),
          answered_at: z.string().nullable(),
          ended_at: z.string(),
        }),
      )
      .openapi({ description: "The calls made so far, oldest first; the call fields above describe the latest one" }),
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

/** What a notification request and a batch share: everything but whom to call. */
export const notificationFields = {
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
  scheduled_at: z.iso
    .datetime({ offset: true, message: "must be an ISO 8601 date and time with an offset, e.g. 2026-12-01T09:30:00-05:00" })
    .optional()
    .openapi({ description: "When to place the call, at most 30 days ahead; a past time means now. The notification waits `queued` until then" }),
  ignore_calling_hours: z.boolean().optional().openapi({ description: "Place the call at any hour, whatever the calling hours (e.g. a one-time code the person asked for)" }),
  retry: RetryPolicySchema.optional().openapi({ description: "Try again after a busy / unanswered / … attempt; default: the agent's retry, else one attempt" }),
};

/** The checks across those fields. */
export function checkNotificationFields(body: { agent_id?: string | undefined; message?: string | undefined; collect_feedback?: boolean | undefined; scheduled_at?: string | undefined }, ctx: z.RefinementCtx) {
  if (body.scheduled_at !== undefined && Date.parse(body.scheduled_at) > Date.now() + MAX_SCHEDULE_AHEAD_MS) {
    ctx.addIssue({ code: "custom", path: ["scheduled_at"], message: "must be at most 30 days ahead" });
  }
  if (body.agent_id === undefined && body.message === undefined) ctx.addIssue({ code: "custom", path: ["message"], message: "is required when agent_id is not set" });
  if (body.agent_id !== undefined && body.collect_feedback === true) {
    ctx.addIssue({ code: "custom", path: ["collect_feedback"], message: "applies only without agent_id (the agent's output_schema says what to collect)" });
  }
}

const CreateNotificationRequest = z
  .object({ customer_id: z.string().min(1, "is required"), ...notificationFields })
  .superRefine(checkNotificationFields)
  .openapi("CreateNotificationRequest");

type CreatedNotification = z.infer<typeof CreatedNotificationSchema>;


function notificationBody(row: NotificationRow): z.infer<typeof NotificationSchema> {
  return {
    id: row.id,
    project_id: row.projectId,
    customer_id: row.customerId,
    agent_id: row.agentId,
    status: row.status,
    batch_id: row.batchId,
    scheduled_for: row.scheduledFor,
    queued_reason: row.queuedReason,
    ignore_calling_hours: row.ignoreCallingHours,
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
    answered_by: row.answeredBy,
    opted_out: row.optedOut,
    recording_available: row.recordingKey !== null,
    usage: row.usage,
    retry: row.retry,
    attempts: row.attempts,
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
  if (!row) throw new ApiError("notification_not_found", "Notification not found");
  return row;
}

const createRouteDef = createRoute({
  method: "post",
  path: "/notifications",
  tags: ["Notifications"],
  summary: "Send a notification: place an AI voice call to the customer",
  description:
    "Agent path (`agent_id`) or LLM path (`message`, no agent). Refused with no call: unknown customer or agent (404), disabled agent, no active phone, opted-out phone, blocked number, or prompt variables with no value (422, with `missing_variables`).\n\n" +
    "When Twilio refuses the call (an invalid or unreachable number, an unverified caller ID, …) or cannot be reached, the notification still exists and has ended: the response is a 201 whose notification is `failed` with `ended_reason: error` and Twilio's message in `error_message`, and `call.status` is `failed`; a `call.ended` webhook goes out as for any failed call. A replay with the same Idempotency-Key returns that same response: send a new request to try again. A 502 means the call could not be started for another reason.",
  security: apiKeySecurity,
  middleware: [limitNotificationTriggers],
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
      status: z.enum(NOTIFICATION_STATUSES).optional(),
      customer_id: z.string().optional(),
      agent_id: z.string().optional(),
      batch_id: z.string().optional(),
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

const recordingRouteDef = createRoute({
  method: "get",
  path: "/notifications/{id}/recording",
  tags: ["Notifications"],
  summary: "Download the call's recording",
  description:
    "A WAV file: G.711 μ-law, 8 kHz, two channels — the person called on the left, the agent on the right, aligned in time (the agent audio the person did not hear, cut off when they spoke, is not in it). " +
    "Only for a notification of your project whose agent records its calls (`recording_available`); kept for `RECORDING_RETENTION_DAYS` after the call. A single `Range: bytes=…` is answered with 206.",
  security: apiKeySecurity,
  request: { params: IdParam("id"), headers: z.object({ range: z.string().optional().openapi({ description: "One byte range, e.g. bytes=0-1023" }) }) },
  responses: {
    200: { content: { [RECORDING_CONTENT_TYPE]: { schema: z.string().openapi({ format: "binary" }) } }, description: "The recording; Cache-Control: no-store" },
    206: { content: { [RECORDING_CONTENT_TYPE]: { schema: z.string().openapi({ format: "binary" }) } }, description: "The part of the recording the Range asked for, with Content-Range" },
    ...errorResponses(401, 404),
    416: jsonContent(ErrorSchema, "The range starts past the end of the recording (code range_not_satisfiable); Content-Range gives its size"),
  },
});

const BYTE_RANGE = /^bytes=(\d*)-(\d*)$/;

/**
 * The one byte range a Range header asks for, within `size` bytes. Null: the whole file — no Range,
 * or one this route does not serve (several ranges, another unit, malformed), which a server may
 * ignore (RFC 9110, 14.2). "unsatisfiable": it starts past the end.
 */
function byteRange(header: string | undefined, size: number): { offset: number; length: number } | "unsatisfiable" | null {
  const match = header === undefined ? null : BYTE_RANGE.exec(header.trim());
  if (!match || (match[1] === "" && match[2] === "")) return null;
  if (match[1] === "") {
    const suffix = Number(match[2]);
    if (suffix === 0) return "unsatisfiable";
    const offset = Math.max(0, size - suffix);
    return { offset, length: size - offset };
  }
  const offset = Number(match[1]);
  const last = match[2] === "" ? size - 1 : Math.min(Number(match[2]), size - 1);
  if (offset >= size) return "unsatisfiable";
  if (last < offset) return null;
  return { offset, length: last - offset + 1 };
}

const notificationInsert = preparedInsert(notifications, (db, row) => db.insert(notifications).values(row));

export const notificationRoutes = createRouter()
  .openapi(createRouteDef, async (c) => {
    const { auth, db, config } = c.var;
    const body = c.req.valid("json");
    const key = c.req.valid("header")["idempotency-key"];
    const idempotency = key === undefined ? null : await IdempotentRequest.of<CreatedNotification>(db, auth.projectId, key, body);
    // The key's first response and everything the plan reads, in one D1 round trip; a replay wins
    // over whatever the plan would refuse now.
    const reads = planReads(db, auth, body);
    let planned: PlanReadResults;
    if (idempotency) {
      const [, [stored], ...rest] = await runBatch(db, [...idempotency.replayStatements(), ...reads]);
      const replay = idempotency.replayOf(stored);
      if (replay) {
        c.header("Idempotent-Replayed", "true");
        return c.json(replay, 201);
      }
      planned = rest;
    } else planned = await runBatch(db, reads);

    const plan = planFrom(planned, body, !config.live);
    const row = newNotification(auth, body, plan, !config.live);
    const response: CreatedNotification = { notification: notificationBody(row), call: { callId: row.callId, status: "queued" } };
    const insert = notificationInsert.bind(db, row);
    try {
      await runBatch(db, idempotency ? [insert, idempotency.record(row.id, response, row.createdAt)] : [insert]);
    } catch (error) {
      // Two racing requests with one key make one notification; the loser replays the winner's response.
      const stored = await idempotency?.storedReplay();
      if (!stored) throw error;
      c.header("Idempotent-Replayed", "true");
      return c.json(stored, 201);
    }

    const started = await startCall(c.env, db, callParams(row, plan), row.scheduledFor === null ? null : Date.parse(row.scheduledFor), idempotency);
    if (started === "queued" || (started === "waiting" && row.status === "queued")) return c.json(response, 201);
    // Waiting for a slot, or refused by Twilio (the notification ended failed, saying why): the
    // response, and a replay's, is the notification as it is now.
    const current: CreatedNotification = { notification: notificationBody(await findNotification(db, auth, row.id)), call: { callId: row.callId, status: started === "waiting" ? "queued" : "failed" } };
    if (idempotency) await idempotency.replaceResponse(current);
    return c.json(current, 201);
  })
  .openapi(listRouteDef, async (c) => {
    const { auth, db } = c.var;
    const { limit, cursor, status, customer_id, agent_id, batch_id } = c.req.valid("query");
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
          batch_id ? eq(notifications.batchId, batch_id) : undefined,
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
  .openapi(recordingRouteDef, async (c) => {
    const { id } = c.req.valid("param");
    const row = await findNotification(c.var.db, c.var.auth, id);
    const notFound = () => new ApiError("recording_not_found", "The notification has no recording: its agent does not record calls, its call has not ended, or the recording was deleted after the retention");
    if (row.recordingKey === null) throw notFound();
    const bucket = c.env.RECORDINGS;
    let range: { offset: number; length: number } | null = null;
    const rangeHeader = c.req.valid("header").range;
    if (rangeHeader !== undefined) {
      const head = await bucket.head(row.recordingKey);
      if (!head) throw notFound();
      const asked = byteRange(rangeHeader, head.size);
      if (asked === "unsatisfiable") {
        c.header("Content-Range", `bytes */${head.size}`);
        throw new ApiError("range_not_satisfiable", `The recording has ${head.size} bytes`);
      }
      range = asked;
    }
    const object = await bucket.get(row.recordingKey, range ? { range } : {});
    if (!object) throw notFound();
    noStore(c);
    c.header("Content-Type", RECORDING_CONTENT_TYPE);
    c.header("Content-Disposition", `attachment; filename="${row.id}.wav"`);
    c.header("Accept-Ranges", "bytes");
    c.header("ETag", object.httpEtag);
    if (!range) {
      c.header("Content-Length", String(object.size));
      return c.body(object.body, 200);
    }
    c.header("Content-Length", String(range.length));
    c.header("Content-Range", `bytes ${range.offset}-${range.offset + range.length - 1}/${object.size}`);
    return c.body(object.body, 206);
  })
  .openapi(cancelRouteDef, async (c) => {
    const { auth, db } = c.var;
    const row = await findNotification(db, auth, c.req.valid("param").id);
    if (!isOpenStatus(row.status)) throw new ApiError("notification_already_ended", `The notification has already ended (${row.status})`);
    const stub = c.env.CALL_SESSION.get(c.env.CALL_SESSION.idFromName(row.id));
    const outcome = await stub.stop(callTargetOf(row), "canceled");
    const after = await findNotification(db, auth, row.id);
    // The call may have ended on its own just before the cancel reached it (its result may still be on its way).
    if (outcome === "already-ended") {
      const state = isOpenStatus(after.status) ? "its result is being prepared" : after.status;
      throw new ApiError("notification_already_ended", `The notification's call has already ended (${state})`);
    }
    return c.json(notificationBody(after), 200);
  });
