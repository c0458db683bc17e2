
import { sql } from "drizzle-orm";
import { index, integer, primaryKey, real, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";
import { ANSWERED_BY, CALL_STATUSES, DEFAULT_MAX_CONCURRENT_CALLS, DEFAULT_VOICE_ENGINE, VOICE_ENGINES, ENDED_REASONS, NOTIFICATION_STATUSES, PHONE_STATUSES, QUEUED_REASONS, type CallAttempt, type Consent, type RetryPolicy, type TranscriptTurn } from "../calls/call";
import type { CallingHours } from "../calls/calling-hours";
import type { CallUsage } from "../calls/usage";

/** ISO-8601 timestamps as text; ids are UUID v7 so `ORDER BY id` is creation order. */
const timestamps = {
  createdAt: text("created_at").notNull(),
  updatedAt: text("updated_at").notNull(),
};

export const businesses = sqliteTable("businesses", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  summary: text("summary").notNull(),
  industry: text("industry").notNull(),
  defaultProjectId: text("default_project_id").notNull(),
  ...timestamps,
});

export const users = sqliteTable("users", {
  id: text("id").primaryKey(),
  businessId: text("business_id").notNull().references(() => businesses.id),
  email: text("email").notNull().unique(),
  passwordHash: text("password_hash").notNull(),
  firstName: text("first_name").notNull(),
  lastName: text("last_name").notNull(),
  ...timestamps,
});

export const refreshTokens = sqliteTable(
  "refresh_tokens",
  {
    /** The JWT's `jti`. */
    id: text("id").primaryKey(),
    userId: text("user_id").notNull().references(() => users.id),
    familyId: text("family_id").notNull(),
    status: text("status", { enum: ["active", "used", "revoked"] }).notNull(),
    expiresAt: text("expires_at").notNull(),
    ...timestamps,
  },
  (t) => [index("refresh_tokens_family_idx").on(t.familyId)],
);

export const projects = sqliteTable(
  "projects",
  {
    id: text("id").primaryKey(),
    businessId: text("business_id").notNull().references(() => businesses.id),
    name: text("name").notNull(),
    /** Null until the project sets its own: live calls then follow the default, simulated calls none. */
    callingHours: text("calling_hours", { mode: "json" }).$type<CallingHours>(),
    /** Calls of the project running at once at most; more wait `queued` (capacity). */
    maxConcurrentCalls: integer("max_concurrent_calls").notNull().default(DEFAULT_MAX_CONCURRENT_CALLS),
    /** The voice engine of the LLM path's calls (no agent). */
    defaultEngine: text("default_engine", { enum: VOICE_ENGINES }).notNull().default(DEFAULT_VOICE_ENGINE),
    ...timestamps,
  },
  (t) => [index("projects_business_idx").on(t.businessId)],
);

export const apiKeys = sqliteTable(
  "api_keys",
  {
    id: text("id").primaryKey(),
    projectId: text("project_id").notNull().references(() => projects.id),
    name: text("name").notNull(),
    /** SHA-256 hex of the whole key; the key itself is never stored. */
    keyHash: text("key_hash").notNull().unique(),
    keyPrefix: text("key_prefix").notNull(),
    status: text("status", { enum: ["active", "revoked"] }).notNull(),
    lastUsedAt: text("last_used_at"),
    ...timestamps,
  },
  (t) => [index("api_keys_project_idx").on(t.projectId)],
);

export const agents = sqliteTable(
  "agents",
  {
    id: text("id").primaryKey(),
    businessId: text("business_id").notNull().references(() => businesses.id),
    name: text("name").notNull(),
    systemPrompt: text("system_prompt").notNull(),
    outputSchema: text("output_schema", { mode: "json" }).$type<Record<string, unknown> | null>(),
    status: text("status", { enum: ["active", "disabled"] }).notNull(),
    voice: text("voice"),
    language: text("language"),
    firstMessage: text("first_message"),
    voicemailMessage: text("voicemail_message"),
    maxDurationSeconds: integer("max_duration_seconds").notNull(),
    /** The notifications' default retry; a request's own wins. */
    retry: text("retry", { mode: "json" }).$type<RetryPolicy | null>(),
    /** E.164 the agent may hand the caller over to (transfer_call); null: no transfer. */
    transferTo: text("transfer_to"),
    /** Calls are recorded, after the disclosure. */
    record: integer("record", { mode: "boolean" }).notNull().default(false),
    /** Spoken first on a recorded call; null: the default disclosure. */
    recordingDisclosure: text("recording_disclosure"),
    /** The voice engine its calls run on. */
    engine: text("engine", { enum: VOICE_ENGINES }).notNull().default(DEFAULT_VOICE_ENGINE),
    ...timestamps,
  },
  (t) => [index("agents_business_idx").on(t.businessId, t.status)],
);

export const customers = sqliteTable(
  "customers",
  {
    id: text("id").primaryKey(),
    projectId: text("project_id").notNull().references(() => projects.id),
    externalId: text("external_id").notNull(),
    firstName: text("first_name").notNull(),
    lastName: text("last_name").notNull(),
    metadata: text("metadata", { mode: "json" }).$type<Record<string, unknown>>().notNull(),
    /** IANA zone the customer's calling hours are read in; null: the phone number's zone(s). */
    timezone: text("timezone"),
    /** How the business obtained the customer's consent to be called; null: not recorded. */
    consent: text("consent", { mode: "json" }).$type<Consent | null>(),
    ...timestamps,
  },
  (t) => [uniqueIndex("customers_project_external_id_idx").on(t.projectId, t.externalId)],
);

export const customerPhones = sqliteTable(
  "customer_phones",
  {
    id: text("id").primaryKey(),
    customerId: text("customer_id").notNull().references(() => customers.id),
    projectId: text("project_id").notNull().references(() => projects.id),
    value: text("value").notNull(),
    isPrimary: integer("is_primary", { mode: "boolean" }).notNull(),
    status: text("status", { enum: PHONE_STATUSES }).notNull(),
    ...timestamps,
  },
  (t) => [
    index("customer_phones_customer_idx").on(t.customerId),
    uniqueIndex("customer_phones_customer_value_idx").on(t.customerId, t.value),
  ],
);

export const notifications = sqliteTable(
  "notifications",
  {
    id: text("id").primaryKey(),
    projectId: text("project_id").notNull().references(() => projects.id),
    businessId: text("business_id").notNull().references(() => businesses.id),
    // No foreign key: a notification's history outlives a deleted customer.
    customerId: text("customer_id").notNull(),
    agentId: text("agent_id").references(() => agents.id),
    phoneId: text("phone_id").notNull(),
    targetPhoneE164: text("target_phone_e164").notNull(),
    message: text("message"),
    context: text("context"),
    variables: text("variables", { mode: "json" }).$type<Record<string, string>>().notNull(),
    collectFeedback: integer("collect_feedback", { mode: "boolean" }).notNull(),
    maxDurationSeconds: integer("max_duration_seconds").notNull(),
    /** The prompt, opening and schema as rendered when the notification was created. */
    renderedPrompt: text("rendered_prompt").notNull(),
    firstMessage: text("first_message"),
    voicemailMessage: text("voicemail_message"),
    outputSchema: text("output_schema", { mode: "json" }).$type<Record<string, unknown> | null>(),
    status: text("status", { enum: NOTIFICATION_STATUSES }).notNull(),
    callId: text("call_id").notNull(),
    callStatus: text("call_status", { enum: CALL_STATUSES }).notNull(),
    endedReason: text("ended_reason", { enum: ENDED_REASONS }),
    callResult: text("call_result", { mode: "json" }).$type<Record<string, unknown> | null>(),
    transcript: text("transcript", { mode: "json" }).$type<TranscriptTurn[]>().notNull(),
    startedAt: text("started_at"),
    answeredAt: text("answered_at"),
    endedAt: text("ended_at"),
    durationSeconds: real("duration_seconds"),
    answeredBy: text("answered_by", { enum: ANSWERED_BY }),
    simulated: integer("simulated", { mode: "boolean" }).notNull(),
    errorMessage: text("error_message"),
    /** Set for a notification of a batch. */
    batchId: text("batch_id"),
    /** The carrier's id of the call's leg (Twilio's CallSid), stored once dialled: the reconciler asks the carrier by it. */
    carrierCallSid: text("carrier_call_sid"),
    /** Null: one attempt only. */
    retry: text("retry", { mode: "json" }).$type<RetryPolicy | null>(),
    /** The calls made so far, oldest first; the top-level call fields describe the latest one. */
    attempts: text("attempts", { mode: "json" }).$type<CallAttempt[]>().notNull().default([]),
    /** While `queued`: when the call is due to be dialled, and why it waits. */
    scheduledFor: text("scheduled_for"),
    queuedReason: text("queued_reason", { enum: QUEUED_REASONS }),
    /** The calls are placed at any hour, whatever the calling hours (a call the person asked for). */
    ignoreCallingHours: integer("ignore_calling_hours", { mode: "boolean" }).notNull().default(false),
    /** When the reconciler next checks an open notification whose call may have been lost. */
    reconcileAt: text("reconcile_at"),
    /** The voice engine its calls run on. */
    engine: text("engine", { enum: VOICE_ENGINES }).notNull().default(DEFAULT_VOICE_ENGINE),
    /** What its calls used of the voice model and its estimated cost, summed over the attempts that ended; null until one has. */
    usage: text("usage", { mode: "json" }).$type<CallUsage>(),
    /** The person asked, during a call of this notification, not to be called again. */
    optedOut: integer("opted_out", { mode: "boolean" }).notNull().default(false),
    /** The R2 key of the call's recording while it is kept; null: none (not recorded, not stored, or deleted after the retention). */
    recordingKey: text("recording_key"),
    /** When the retention cron deletes the recording. */
    recordingExpiresAt: text("recording_expires_at"),
    ...timestamps,
  },
  (t) => [
    index("notifications_recording_expiry_idx").on(t.recordingExpiresAt).where(sql`recording_expires_at IS NOT NULL`),
    index("notifications_project_idx").on(t.projectId, t.id),
    index("notifications_reconcile_idx").on(t.status, t.reconcileAt),
    index("notifications_project_status_idx").on(t.projectId, t.status),
    index("notifications_batch_idx").on(t.batchId, t.status),
    index("notifications_customer_idx").on(t.customerId),
    uniqueIndex("notifications_call_id_idx").on(t.callId),
  ],
);

/** Numbers the project never calls (API.md, The person called): refused at trigger, and re-checked before every dial. */
export const blockedNumbers = sqliteTable(
  "blocked_numbers",
  {
    id: text("id").primaryKey(),
    projectId: text("project_id").notNull().references(() => projects.id),
    /** E.164. */
    phone: text("phone").notNull(),
    reason: text("reason"),
    ...timestamps,
  },
  (t) => [uniqueIndex("blocked_numbers_project_phone_idx").on(t.projectId, t.phone), index("blocked_numbers_project_idx").on(t.projectId, t.id)],
);

/** Notifications triggered together (`POST /api/v1/notifications/batch`); counts by status come from them. */
export const batches = sqliteTable(
  "batches",
  {
    id: text("id").primaryKey(),
    projectId: text("project_id").notNull().references(() => projects.id),
    total: integer("total").notNull(),
    accepted: integer("accepted").notNull(),
    rejected: integer("rejected").notNull(),
    /** When its last notification ended (batch.completed was emitted then). */
    completedAt: text("completed_at"),
    ...timestamps,
  },
  (t) => [index("batches_project_idx").on(t.projectId, t.id)],
);

export const idempotencyKeys = sqliteTable(
  "idempotency_keys",
  {
    projectId: text("project_id").notNull(),
    key: text("key").notNull(),
    /** SHA-256 of the canonical request body; the same key with another body is a 409. */
    requestHash: text("request_hash").notNull(),
    notificationId: text("notification_id").notNull(),
    responseStatus: integer("response_status").notNull(),
    responseBody: text("response_body").notNull(),
    createdAt: text("created_at").notNull(),
    expiresAt: text("expires_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.projectId, t.key] })],
);

export const webhookEndpoints = sqliteTable(
  "webhook_endpoints",
  {
    id: text("id").primaryKey(),
    projectId: text("project_id").notNull().references(() => projects.id),
    url: text("url").notNull(),
    signingSecret: text("signing_secret").notNull(),
    /** The secret before the last rotation, still signed with until it expires. */
    previousSigningSecret: text("previous_signing_secret"),
    previousSecretExpiresAt: text("previous_secret_expires_at"),
    status: text("status", { enum: ["active", "disabled"] }).notNull(),
    disabledReason: text("disabled_reason"),
    events: text("events", { mode: "json" }).$type<string[]>().notNull(),
    /** Failed attempts since the last success. */
    consecutiveFailures: integer("consecutive_failures").notNull().default(0),
    /** When the current run of failed attempts began; null after a success. */
    failingSince: text("failing_since"),
    ...timestamps,
  },
  (t) => [index("webhook_endpoints_project_idx").on(t.projectId)],
);

/** The outbox: each event with the exact bytes every endpoint receives. */
export const events = sqliteTable(
  "events",
  {
    id: text("id").primaryKey(),
    projectId: text("project_id").notNull().references(() => projects.id),
    notificationId: text("notification_id"),
    customerId: text("customer_id"),
    eventName: text("event_name").notNull(),
    payload: text("payload").notNull(),
    createdAt: text("created_at").notNull(),
  },
  (t) => [index("events_notification_idx").on(t.notificationId)],
);

export const webhookDeliveries = sqliteTable(
  "webhook_deliveries",
  {
    id: text("id").primaryKey(),
    webhookEndpointId: text("webhook_endpoint_id").notNull().references(() => webhookEndpoints.id),
    projectId: text("project_id").notNull().references(() => projects.id),
    eventId: text("event_id").notNull().references(() => events.id),
    eventName: text("event_name").notNull(),
    status: text("status", { enum: ["pending", "retrying", "success", "failed"] }).notNull(),
    attemptCount: integer("attempt_count").notNull().default(0),
    nextRetryAt: text("next_retry_at"),
    /** Set while a consumer holds the delivery for an attempt; past or null = free to claim. */
    leaseUntil: text("lease_until"),
    /** The next attempt was asked for through the API (`triggered_by: manual`). */
    manualRetry: integer("manual_retry", { mode: "boolean" }).notNull().default(false),
    ...timestamps,
  },
  (t) => [
    index("webhook_deliveries_endpoint_idx").on(t.webhookEndpointId, t.id),
    index("webhook_deliveries_due_idx").on(t.status, t.nextRetryAt),
    uniqueIndex("webhook_deliveries_endpoint_event_idx").on(t.webhookEndpointId, t.eventId),
  ],
);

export const webhookAttempts = sqliteTable(
  "webhook_attempts",
  {
    id: text("id").primaryKey(),
    deliveryId: text("delivery_id").notNull().references(() => webhookDeliveries.id),
    attemptNumber: integer("attempt_number").notNull(),
    triggeredBy: text("triggered_by", { enum: ["auto", "manual"] }).notNull(),
    httpStatus: integer("http_status"),
    responseBody: text("response_body"),
    durationMs: integer("duration_ms").notNull(),
    success: integer("success", { mode: "boolean" }).notNull(),
    errorMessage: text("error_message"),
    createdAt: text("created_at").notNull(),
  },
  (t) => [uniqueIndex("webhook_attempts_delivery_number_idx").on(t.deliveryId, t.attemptNumber)],
);

