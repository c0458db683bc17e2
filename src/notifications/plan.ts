import { z } from "@hono/zod-openapi";
import { and, eq, sql } from "drizzle-orm";
import { DEFAULT_MAX_CONCURRENT_CALLS, DEFAULT_VOICE_ENGINE, RETRY_ON, type CallParams, type Consent, type PhoneStatus, type RetryPolicy, type VoiceEngineName } from "../calls/call";
import { calleeTimeZones, DEFAULT_CALLING_HOURS, nextDialTime, type CallingHours, type CallingWindow } from "../calls/calling-hours";
import { firstReconcileAt } from "../calls/reconcile";
import { llmScript, openingLine, promptValues, renderScript, screenerReply, withDisclosure, type ScriptTemplate } from "../calls/prompt";
import type { AuthContext } from "../context";
import type { Database } from "../db/client";
import { prepared, runBatch } from "../db/prepared";
import { agents, blockedNumbers, businesses, customerPhones, customers, notifications, projects } from "../db/schema";
import { ApiError } from "../errors";
import { newCallId, nowIso, randomHex, uuidv7 } from "../lib/ids";

/**
 * Planning a call: every check that refuses a notification, the prompt rendered with its variables,
 * and the notification row and call parameters made from them.
 */

const DEFAULT_MAX_DURATION_SECONDS = 180;

/** `retry` on a notification, or an agent's default (API.md, Scheduling, calling hours and retries). */
export const RetryPolicySchema = z
  .object({
    max_attempts: z.number().int().min(1).max(6).openapi({ description: "Attempts in all, the first call included" }),
    delay_minutes: z.number().int().min(1).max(1440).openapi({ description: "Minutes between the end of an attempt and the next" }),
    on: z
      .array(z.enum(RETRY_ON))
      .min(1)
      .default(["busy", "no-answer"])
      .transform((outcomes) => RETRY_ON.filter((outcome) => outcomes.includes(outcome)))
      .openapi({ description: "The attempt outcomes that are tried again; default busy and no-answer" }),
  })
  .openapi("RetryPolicy");

/** What a notification request asks for (validated by the route). */
export interface NotificationRequest {
  customer_id: string;
  agent_id?: string | undefined;
  message?: string | undefined;
  context?: string | undefined;
  variables?: Record<string, string | number | boolean> | undefined;
  collect_feedback?: boolean | undefined;
  max_duration_seconds?: number | undefined;
  /** ISO 8601 with an offset; a past time means now. */
  scheduled_at?: string | undefined;
  retry?: RetryPolicy | undefined;
  ignore_calling_hours?: boolean | undefined;
}

export type NotificationRow = typeof notifications.$inferSelect;

export interface CallPlan {
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
  /** The request's retry, else the agent's; null: one attempt. */
  retry: RetryPolicy | null;
  /** When the first attempt may be dialled, and why it waits until then (null: at once). */
  dialAtMs: number;
  waitingFor: "scheduled" | "calling_hours" | null;
  callingWindow: CallingWindow | null;
  maxConcurrentCalls: number;
  transferTo: string | null;
  record: boolean;
  screenerReply: string;
  consent: Consent | null;
  engine: VoiceEngineName;
}

/**
 * The window the calls are placed in: the project's calling hours, else the default for live calls
 * (a simulated call follows calling hours only once the project set them), on the callee's clocks —
 * the customer's timezone, else the number's zone(s). A number of no known zone is refused rather
 * than called at a guessed hour.
 */
function callingWindowOf(projectHours: CallingHours | null, simulated: boolean, customerTimeZone: string | null, phoneE164: string): CallingWindow | null {
  const hours = projectHours ?? (simulated ? null : DEFAULT_CALLING_HOURS);
  if (hours === null) return null;
  const zones = calleeTimeZones({ customerTimeZone, phoneE164 });
  if (zones.length === 0) {
    throw new ApiError("callee_time_zone_unknown", "The phone number's time zone is unknown: set the customer's timezone to place calls in the calling hours, or pass ignore_calling_hours");
  }
  return { hours, zones };
}

/**
 * The customer with its primary phone and whether that phone is blocked in the project. Column names
 * repeat across these tables (id, status…) and a batch's rows come back keyed by name, so each
 * column is selected once, under a name of its own where it would collide.
 */
const customerRead = prepared(["customerId", "projectId"], (db, p) =>
  db
    .select({
      id: customers.id,
      firstName: customers.firstName,
      lastName: customers.lastName,
      timezone: customers.timezone,
      consent: customers.consent,
      phoneId: sql<string | null>`${customerPhones.id}`.as("phone_id"),
      phoneValue: sql<string | null>`${customerPhones.value}`.as("phone_value"),
      phoneStatus: sql<PhoneStatus | null>`${customerPhones.status}`.as("phone_status"),
      blockedId: sql<string | null>`${blockedNumbers.id}`.as("blocked_id"),
    })
    .from(customers)
    .leftJoin(customerPhones, and(eq(customerPhones.customerId, customers.id), eq(customerPhones.isPrimary, true)))
    .leftJoin(blockedNumbers, and(eq(blockedNumbers.projectId, customers.projectId), eq(blockedNumbers.phone, customerPhones.value)))
    .where(and(eq(customers.id, p.customerId), eq(customers.projectId, p.projectId)))
    .limit(1),
);

/** The business with the project's settings. */
const settingsRead = prepared(["businessId", "projectId"], (db, p) =>
  db
    .select({
      name: businesses.name,
      summary: businesses.summary,
      industry: businesses.industry,
      callingHours: projects.callingHours,
      maxConcurrentCalls: projects.maxConcurrentCalls,
      defaultEngine: projects.defaultEngine,
    })
    .from(businesses)
    .leftJoin(projects, eq(projects.id, p.projectId))
    .where(eq(businesses.id, p.businessId))
    .limit(1),
);

/** The agent, if it is the business's. */
const agentRead = prepared(["agentId", "businessId"], (db, p) =>
  db
    .select()
    .from(agents)
    .where(and(eq(agents.id, p.agentId), eq(agents.businessId, p.businessId)))
    .limit(1),
);

/**
 * The reads a plan is made from, as statements for one `runBatch` (the caller may add its own to the
 * same round trip): the customer, the business with the project's settings, and the agent.
 */
export function planReads(db: Database, auth: AuthContext, body: NotificationRequest) {
  return [
    customerRead.bind(db, { customerId: body.customer_id, projectId: auth.projectId }),
    settingsRead.bind(db, { businessId: auth.businessId, projectId: auth.projectId }),
    // With no agent asked for, a statement that finds none keeps the shape.
    agentRead.bind(db, { agentId: body.agent_id ?? "", businessId: auth.businessId }),
  ] as const;
}

export type PlanReadResults = Awaited<ReturnType<typeof runBatch<ReturnType<typeof planReads>>>>;

/** Every check that refuses a notification, in the documented order; nothing is written here. */
export async function planCall(db: Database, auth: AuthContext, body: NotificationRequest, simulated: boolean): Promise<CallPlan> {
  return planFrom(await runBatch(db, planReads(db, auth, body)), body, simulated);
}

/** The plan from what `planReads` read: the checks refuse in the documented order. */
export function planFrom([[found], [settings], [agentRow]]: PlanReadResults, body: NotificationRequest, simulated: boolean): CallPlan {
  const customer = found;
  const phone = found?.phoneId && found.phoneValue && found.phoneStatus ? { id: found.phoneId, value: found.phoneValue, status: found.phoneStatus } : undefined;
  const blocked = found?.blockedId ?? null;
  const business = settings;
  const project =
    settings?.maxConcurrentCalls === null || settings?.maxConcurrentCalls === undefined
      ? undefined
      : { callingHours: settings.callingHours, maxConcurrentCalls: settings.maxConcurrentCalls, defaultEngine: settings.defaultEngine ?? DEFAULT_VOICE_ENGINE };
  const agent = body.agent_id === undefined ? undefined : agentRow;
  if (!customer) throw new ApiError("customer_not_found", "Customer not found");

  if (body.agent_id !== undefined) {
    if (!agent) throw new ApiError("agent_not_found", "Agent not found");
    if (agent.status === "disabled") throw new ApiError("agent_disabled", "The agent is disabled and cannot be used for new notifications");
  }

  if (!phone) throw new ApiError("no_active_phone", "The customer has no active phone number to call");
  if (phone.status === "opted_out") throw new ApiError("phone_opted_out", "The customer's phone number has opted out of calls");
  if (phone.status !== "active") throw new ApiError("no_active_phone", "The customer's primary phone number is marked invalid");
  if (blocked) throw new ApiError("number_blocked", "The customer's phone number is on the project's blocked list");

  if (!business) throw new ApiError("business_not_found", "Business not found");
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
    throw new ApiError("missing_variables", `The prompt uses variables with no value: ${script.missing.join(", ")}. Pass them in "variables".`, {
      missing_variables: script.missing,
    });
  }
  const callingWindow = body.ignore_calling_hours === true ? null : callingWindowOf(project?.callingHours ?? null, simulated, customer.timezone, phone.value);
  const nowMs = Date.now();
  const dueAtMs = body.scheduled_at === undefined ? nowMs : Math.max(nowMs, Date.parse(body.scheduled_at));
  const dialAtMs = nextDialTime(dueAtMs, callingWindow);
  if (dialAtMs === null) {
    throw new ApiError("calling_hours_never_open", "The calling hours are never open in all of the callee's time zones at once; set the customer's timezone, change the project's calling_hours or pass ignore_calling_hours");
  }
  return {
    dialAtMs,
    waitingFor: dialAtMs > dueAtMs ? "calling_hours" : dialAtMs > nowMs ? "scheduled" : null,
    callingWindow,
    maxConcurrentCalls: project?.maxConcurrentCalls ?? DEFAULT_MAX_CONCURRENT_CALLS,
    customerId: customer.id,
    agentId: agent?.id ?? null,
    phoneId: phone.id,
    phoneE164: phone.value,
    maxDurationSeconds: body.max_duration_seconds ?? agent?.maxDurationSeconds ?? DEFAULT_MAX_DURATION_SECONDS,
    script,
    retry: body.retry ?? agent?.retry ?? null,
    voice: agent?.voice ?? null,
    language: agent?.language ?? null,
    opening: withDisclosure(
      openingLine({
        firstMessage: script.firstMessage,
        prompt: script.prompt,
        values,
        llm: agent ? null : { message: values.message ?? "", collectFeedback: body.collect_feedback === true },
      }),
      agent?.record ? { disclosure: agent.recordingDisclosure } : null,
    ),
    transferTo: agent?.transferTo ?? null,
    record: agent?.record ?? false,
    screenerReply: screenerReply({ agentName: agent?.name ?? null, values, purpose: agent ? null : (values.message ?? null) }),
    consent: customer.consent ?? null,
    engine: agent?.engine ?? project?.defaultEngine ?? DEFAULT_VOICE_ENGINE,
  };
}

/**
 * The notification of a planned call: in progress with its call queued, or — scheduled for later —
 * `queued` until it is due.
 */
export function newNotification(auth: AuthContext, body: NotificationRequest, plan: CallPlan, simulated: boolean, batchId: string | null = null): NotificationRow {
  const now = nowIso();
  const waiting = plan.waitingFor !== null;
  return {
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
    status: waiting ? "queued" : "in_progress",
    callId: newCallId(),
    callStatus: "queued",
    endedReason: null,
    callResult: null,
    transcript: [],
    startedAt: null,
    answeredAt: null,
    endedAt: null,
    durationSeconds: null,
    answeredBy: null,
    simulated,
    errorMessage: null,
    carrierCallSid: null,
    batchId,
    retry: plan.retry,
    attempts: [],
    scheduledFor: waiting ? new Date(plan.dialAtMs).toISOString() : null,
    queuedReason: plan.waitingFor,
    ignoreCallingHours: body.ignore_calling_hours ?? false,
    reconcileAt: firstReconcileAt(plan.dialAtMs),
    optedOut: false,
    engine: plan.engine,
    usage: null,
    recordingKey: null,
    recordingExpiresAt: null,
    createdAt: now,
    updatedAt: now,
  };
}

/** What the call object is started with. */
export function callParams(row: NotificationRow, plan: CallPlan): CallParams {
  return {
    notificationId: row.id,
    projectId: row.projectId,
    customerId: row.customerId,
    simulated: row.simulated,
    batchId: row.batchId,
    callId: row.callId,
    phoneId: row.phoneId,
    phoneE164: row.targetPhoneE164,
    prompt: row.renderedPrompt,
    opening: plan.opening,
    voicemailMessage: row.voicemailMessage,
    outputSchema: row.outputSchema,
    maxDurationSeconds: row.maxDurationSeconds,
    retry: row.retry,
    attempt: 1,
    callingWindow: plan.callingWindow,
    maxConcurrentCalls: plan.maxConcurrentCalls,
    transferTo: plan.transferTo,
    record: plan.record,
    screenerReply: plan.screenerReply,
    consent: plan.consent,
    engine: row.engine,
    ...(row.simulated ? {} : { live: { streamToken: randomHex(32), voice: plan.voice, language: plan.language } }),
  };
}
