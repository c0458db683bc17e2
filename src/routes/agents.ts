import { createRoute, z } from "@hono/zod-openapi";
import { RetryPolicySchema } from "../notifications/plan";
import { and, desc, eq } from "drizzle-orm";
import { agents } from "../db/schema";
import { ApiError } from "../errors";
import { nowIso, uuidv7 } from "../lib/ids";
import { checkOutputSchema, OUTPUT_SCHEMA_LIMITS } from "../lib/json-schema";
import { apiKeySecurity, atLeastOneField, createRouter, E164Field, errorResponses, IdParam, jsonBody, jsonContent } from "../lib/openapi";
import { DEFAULT_RECORDING_DISCLOSURE } from "../calls/prompt";
import { DEFAULT_VOICE_ENGINE, VOICE_ENGINES } from "../calls/call";
import { afterCursor, PaginationQuery, pageWithCursorHeader } from "../lib/pagination";

const OutputSchemaField = z
  .record(z.string(), z.unknown())
  .nullable()
  .superRefine((schema, ctx) => {
    if (schema === null) return;
    // checkOutputSchema's paths start with "output_schema"; zod adds the field name itself.
    for (const detail of checkOutputSchema(schema)) ctx.addIssue({ code: "custom", message: detail.message, path: detail.path.split(".").slice(1) });
  })
  .openapi({
    description: `A JSON Schema (2020-12) with \`"type": "object"\` at the root: what to extract from the call into \`call_result\`. At most ${OUTPUT_SCHEMA_LIMITS.bytes / 1024} KB, ${OUTPUT_SCHEMA_LIMITS.depth} levels deep, local \`$ref\`s only and none recursive, at most ${OUTPUT_SCHEMA_LIMITS.patterns} patterns of ${OUTPUT_SCHEMA_LIMITS.patternLength} characters that cannot backtrack catastrophically, and ${Object.entries(OUTPUT_SCHEMA_LIMITS.keywordMaximums).map(([keyword, max]) => `${keyword} ≤ ${max}`).join(", ")}.`,
    example: { type: "object", required: ["confirmed"], properties: { confirmed: { type: "boolean" }, reschedule_request: { type: "string" } } },
  });

/** Optional text: null (or leaving it out) means none. */
const optionalText = (max: number) => z.string().trim().min(1, "must not be empty (use null for none)").max(max).nullable();

const agentFields = {
  name: z.string().trim().min(1, "is required").max(200),
  system_prompt: z.string().trim().min(1, "is required").max(20_000).openapi({ description: "May use {{variables}}, filled when a notification is sent" }),
  output_schema: OutputSchemaField,
  voice: optionalText(64),
  language: z
    .string()
    .trim()
    .max(35)
    .regex(/^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$/, "must be a BCP 47 language tag such as en or en-US")
    .nullable()
    .openapi({ example: "en-US" }),
  first_message: optionalText(2000).openapi({ description: "Spoken first when the call connects; none: the model opens as the prompt says" }),
  voicemail_message: optionalText(2000).openapi({ description: "Left after the beep when a machine answers; none: hang up" }),
  max_duration_seconds: z.number().int().min(30).max(600),
  retry: RetryPolicySchema.nullable().openapi({ description: "The default retry of this agent's notifications (a request's own wins); null: one attempt" }),
  transfer_to: E164Field.nullable().openapi({ description: "A person the agent may hand the caller over to (the transfer_call tool); null: no transfer" }),
  record: z.boolean().openapi({ description: "Record the calls (two-channel WAV), after a disclosure line spoken first" }),
  engine: z.enum(VOICE_ENGINES).openapi({ description: "The voice engine its calls run on: openai-realtime (token-billed) or openai-live (GPT-Live, billed per session minute)" }),
  recording_disclosure: optionalText(500).openapi({ description: `Spoken first on a recorded call; null: "${DEFAULT_RECORDING_DISCLOSURE}"` }),
};

const CreateAgentBody = z
  .object({
    name: agentFields.name,
    system_prompt: agentFields.system_prompt,
    output_schema: agentFields.output_schema.optional(),
    voice: agentFields.voice.optional(),
    language: agentFields.language.optional(),
    first_message: agentFields.first_message.optional(),
    voicemail_message: agentFields.voicemail_message.optional(),
    max_duration_seconds: agentFields.max_duration_seconds.default(180),
    retry: agentFields.retry.optional(),
    transfer_to: agentFields.transfer_to.optional(),
    record: agentFields.record.default(false),
    recording_disclosure: agentFields.recording_disclosure.optional(),
    engine: agentFields.engine.default(DEFAULT_VOICE_ENGINE),
  })
  .openapi("CreateAgentRequest");

const UpdateAgentBody = z
  .object({
    name: agentFields.name.optional(),
    system_prompt: agentFields.system_prompt.optional(),
    output_schema: agentFields.output_schema.optional(),
    voice: agentFields.voice.optional(),
    language: agentFields.language.optional(),
    first_message: agentFields.first_message.optional(),
    voicemail_message: agentFields.voicemail_message.optional(),
    max_duration_seconds: agentFields.max_duration_seconds.optional(),
    retry: agentFields.retry.optional(),
    transfer_to: agentFields.transfer_to.optional(),
    record: agentFields.record.optional(),
    recording_disclosure: agentFields.recording_disclosure.optional(),
    engine: agentFields.engine.optional(),
  })
  .refine(atLeastOneField, "provide at least one field")
  .openapi("UpdateAgentRequest");

const AgentSchema = z
  .object({
    id: z.string(),
    business_id: z.string(),
    name: z.string(),
    system_prompt: z.string(),
    output_schema: z.record(z.string(), z.unknown()).nullable(),
    status: z.enum(["active", "disabled"]),
    voice: z.string().nullable(),
    language: z.string().nullable(),
    first_message: z.string().nullable(),
    voicemail_message: z.string().nullable(),
    max_duration_seconds: z.number().int(),
    retry: RetryPolicySchema.nullable(),
    transfer_to: z.string().nullable(),
    record: z.boolean(),
    recording_disclosure: z.string().nullable(),
    engine: z.enum(VOICE_ENGINES),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("Agent");

type AgentRow = typeof agents.$inferSelect;

function agentBody(row: AgentRow) {
  return {
    id: row.id,
    business_id: row.businessId,
    name: row.name,
    system_prompt: row.systemPrompt,
    output_schema: row.outputSchema ?? null,
    status: row.status,
    voice: row.voice,
    language: row.language,
    first_message: row.firstMessage,
    voicemail_message: row.voicemailMessage,
    max_duration_seconds: row.maxDurationSeconds,
    retry: row.retry ?? null,
    transfer_to: row.transferTo,
    record: row.record,
    recording_disclosure: row.recordingDisclosure,
    engine: row.engine,
    created_at: row.createdAt,
    updated_at: row.updatedAt,
  };
}

const createAgentRoute = createRoute({
  method: "post",
  path: "/agents",
  tags: ["Agents"],
  summary: "Create an agent (shared by the business's projects)",
  security: apiKeySecurity,
  request: { body: jsonBody(CreateAgentBody) },
  responses: { 201: jsonContent(AgentSchema, "Agent created"), ...errorResponses(400, 401) },
});

const listAgentsRoute = createRoute({
  method: "get",
  path: "/agents",
  tags: ["Agents"],
  summary: "List the business's active agents",
  security: apiKeySecurity,
  request: { query: PaginationQuery },
  responses: { 200: jsonContent(z.array(AgentSchema), "Active agents, newest first; next page cursor in X-Next-Cursor"), ...errorResponses(400, 401) },
});

const getAgentRoute = createRoute({
  method: "get",
  path: "/agents/{id}",
  tags: ["Agents"],
  summary: "Get an agent, active or disabled",
  security: apiKeySecurity,
  request: { params: IdParam("id") },
  responses: { 200: jsonContent(AgentSchema, "The agent"), ...errorResponses(401, 404) },
});

const updateAgentRoute = createRoute({
  method: "patch",
  path: "/agents/{id}",
  tags: ["Agents"],
  summary: "Update an agent; fields left out keep their value, null clears an optional one",
  security: apiKeySecurity,
  request: { params: IdParam("id"), body: jsonBody(UpdateAgentBody) },
  responses: { 200: jsonContent(AgentSchema, "The updated agent"), ...errorResponses(400, 401, 404) },
});

const deleteAgentRoute = createRoute({
  method: "delete",
  path: "/agents/{id}",
  tags: ["Agents"],
  summary: "Disable an agent: it stays readable but cannot be used for new notifications",
  security: apiKeySecurity,
  request: { params: IdParam("id") },
  responses: { 200: jsonContent(AgentSchema, "The disabled agent"), ...errorResponses(401, 404) },
});

export const agentRoutes = createRouter()
  .openapi(createAgentRoute, async (c) => {
    const { auth, db } = c.var;
    const body = c.req.valid("json");
    const now = nowIso();
    const row: AgentRow = {
      id: uuidv7(),
      businessId: auth.businessId,
      name: body.name,
      systemPrompt: body.system_prompt,
      outputSchema: body.output_schema ?? null,
      status: "active",
      voice: body.voice ?? null,
      language: body.language ?? null,
      firstMessage: body.first_message ?? null,
      voicemailMessage: body.voicemail_message ?? null,
      maxDurationSeconds: body.max_duration_seconds,
      retry: body.retry ?? null,
      transferTo: body.transfer_to ?? null,
      record: body.record,
      recordingDisclosure: body.recording_disclosure ?? null,
      engine: body.engine,
      createdAt: now,
      updatedAt: now,
    };
    await db.insert(agents).values(row);
    return c.json(agentBody(row), 201);
  })
  .openapi(listAgentsRoute, async (c) => {
    const { auth, db } = c.var;
    const { limit, cursor } = c.req.valid("query");
    const rows = await db
      .select()
      .from(agents)
      .where(and(eq(agents.businessId, auth.businessId), eq(agents.status, "active"), afterCursor(agents.id, cursor)))
      .orderBy(desc(agents.id))
      .limit(limit + 1);
    const items = pageWithCursorHeader(c, rows, limit);
    return c.json(items.map(agentBody), 200);
  })
  .openapi(getAgentRoute, async (c) => {
    const { auth, db } = c.var;
    const [row] = await db
      .select()
      .from(agents)
      .where(and(eq(agents.id, c.req.valid("param").id), eq(agents.businessId, auth.businessId)))
      .limit(1);
    if (!row) throw new ApiError("agent_not_found", "Agent not found");
    return c.json(agentBody(row), 200);
  })
  .openapi(updateAgentRoute, async (c) => {
    const { auth, db } = c.var;
    const body = c.req.valid("json");
    const [row] = await db
      .update(agents)
      .set({
        name: body.name,
        systemPrompt: body.system_prompt,
        outputSchema: body.output_schema,
        voice: body.voice,
        language: body.language,
        firstMessage: body.first_message,
        voicemailMessage: body.voicemail_message,
        maxDurationSeconds: body.max_duration_seconds,
        retry: body.retry,
        transferTo: body.transfer_to,
        record: body.record,
        recordingDisclosure: body.recording_disclosure,
        engine: body.engine,
        updatedAt: nowIso(),
      })
      .where(and(eq(agents.id, c.req.valid("param").id), eq(agents.businessId, auth.businessId)))
      .returning();
    if (!row) throw new ApiError("agent_not_found", "Agent not found");
    return c.json(agentBody(row), 200);
  })
  .openapi(deleteAgentRoute, async (c) => {
    const { auth, db } = c.var;
    const [row] = await db
      .update(agents)
      .set({ status: "disabled", updatedAt: nowIso() })
      .where(and(eq(agents.id, c.req.valid("param").id), eq(agents.businessId, auth.businessId)))
      .returning();
    if (!row) throw new ApiError("agent_not_found", "Agent not found");
    return c.json(agentBody(row), 200);
  });
