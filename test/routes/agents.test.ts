import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { count } from "../fixtures";
import { api, signup, type Account } from "../helpers";

// The quickstart's step 2 body byte for byte, as the shell hands it to curl ('\'' becomes ').
const QUICKSTART_AGENT_JSON = String.raw`{
    "name": "Appointment Reminder",
    "system_prompt": "You are a friendly assistant calling {{recipient_first_name}} on behalf of {{business_name}}. Start the call by saying: \"Hi, is this {{recipient_first_name}}? Great — I'm calling from {{business_name}} to confirm your appointment on {{appointment_time}} with {{doctor_name}}. Does that time still work for you?\" If they need to reschedule, collect a preferred time and end the call warmly. Do not discuss anything else.",
    "output_schema": {
      "type": "object",
      "required": ["confirmed"],
      "properties": {
        "confirmed": {
          "type": "boolean",
          "description": "Whether the patient confirmed the appointment"
        },
        "reschedule_request": {
          "type": "string",
          "description": "Preferred reschedule time if they want to change it"
        }
      }
    }
  }`;

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const agentCount = (businessId: string) => count("agents", "business_id = ?", businessId);

async function createAgent(account: Account, overrides: Record<string, unknown> = {}) {
  const res = await api("POST", "/api/v1/agents", { key: account.key, body: { name: "Reminder", system_prompt: "Remind {{recipient_first_name}}.", ...overrides } });
  expect(res.status).toBe(201);
  return res.body;
}

describe("POST /api/v1/agents", () => {
  it("accepts the quickstart's request verbatim", async () => {
    const account = await signup();
    const res = await api("POST", "/api/v1/agents", { key: account.key, rawBody: QUICKSTART_AGENT_JSON });
    expect(res.status).toBe(201);
    const sent = JSON.parse(QUICKSTART_AGENT_JSON);
    expect(res.body).toEqual({
      id: expect.stringMatching(UUID_V7),
      business_id: account.businessId,
      name: "Appointment Reminder",
      system_prompt: sent.system_prompt,
      output_schema: sent.output_schema,
      status: "active",
      voice: null,
      language: null,
      first_message: null,
      voicemail_message: null,
      max_duration_seconds: 180,
      retry: null,
      transfer_to: null,
      record: false,
      recording_disclosure: null,
      engine: "openai-realtime",
      created_at: expect.any(String),
      updated_at: res.body.created_at,
    });
    expect(res.body.system_prompt).toContain("Great — I'm calling from {{business_name}}");

    const stored = await env.DB.prepare("SELECT business_id, status, output_schema FROM agents WHERE id = ?").bind(res.body.id).first<{ business_id: string; status: string; output_schema: string }>();
    expect(stored?.business_id).toBe(account.businessId);
    expect(stored?.status).toBe("active");
    expect(JSON.parse(stored?.output_schema ?? "null")).toEqual(sent.output_schema);
  });

  it("stores the optional fields, trimming the name", async () => {
    const account = await signup();
    const body = {
      name: "  Billing follow-up  ",
      system_prompt: "Ask {{recipient_name}} about the invoice.",
      voice: "alloy",
      language: "en-US",
      first_message: "Hi, this is Acme calling about your invoice.",
      voicemail_message: "Please call Acme back.",
      max_duration_seconds: 600,
      transfer_to: "+14155550142",
      record: true,
      recording_disclosure: "This call is recorded for quality.",
    };
    const res = await api("POST", "/api/v1/agents", { key: account.key, body });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ ...body, name: "Billing follow-up", output_schema: null });
  });

  it("refuses a request without credentials", async () => {
    const res = await api("POST", "/api/v1/agents", { rawBody: QUICKSTART_AGENT_JSON });
    expect(res.status).toBe(401);
    expect((await api("GET", "/api/v1/agents")).status).toBe(401);
  });

  const valid = { name: "Reminder", system_prompt: "Remind them." };
  it.each([
    ["name is missing", { name: undefined }, "name"],
    ["name is blank", { name: "   " }, "name"],
    ["name is too long", { name: "x".repeat(201) }, "name"],
    ["name is a number", { name: 42 }, "name"],
    ["system_prompt is missing", { system_prompt: undefined }, "system_prompt"],
    ["system_prompt is too long", { system_prompt: "x".repeat(20_001) }, "system_prompt"],
    ["output_schema is a string", { output_schema: "object" }, "output_schema"],
    ["output_schema is an array", { output_schema: [{ type: "object" }] }, "output_schema"],
    ["output_schema's root is not an object schema", { output_schema: { type: "array", items: { type: "string" } } }, "output_schema.type"],
    ["output_schema has a misspelt type", { output_schema: { type: "object", properties: { x: { type: "strnig" } } } }, "output_schema.properties.x.type"],
    ["output_schema refers to a remote schema", { output_schema: { type: "object", properties: { x: { $ref: "https://example.com/s.json" } } } }, "output_schema.properties.x.$ref"],
    ["output_schema has a property that refers to itself", { output_schema: { type: "object", properties: { a: { $ref: "#/properties/a" } } } }, "output_schema.properties.a.$ref"],
    ["output_schema's $defs refer to each other", { output_schema: { type: "object", $defs: { x: { $ref: "#/$defs/y" }, y: { $ref: "#/$defs/x" } } } }, "output_schema.$defs.y.$ref"],
    ["output_schema has an allOf that points at itself", { output_schema: { type: "object", allOf: [{ $ref: "#" }] } }, "output_schema.allOf.0.$ref"],
    ["output_schema declares an $anchor twice", { output_schema: { type: "object", $defs: { a: { $anchor: "x" }, b: { $anchor: "x" } } } }, "output_schema.$defs.b.$anchor"],
    ["output_schema has a catastrophic pattern", { output_schema: { type: "object", properties: { a: { type: "string", pattern: "^(.+)+X$", minLength: 28 } } } }, "output_schema.properties.a.pattern"],
    ["output_schema asks for 1000 items of 1000 items", { output_schema: { type: "object", properties: { a: { type: "array", minItems: 1000, items: { type: "array", minItems: 1000 } } } } }, "output_schema.properties.a.items.minItems"],
    ["voice is too long", { voice: "v".repeat(65) }, "voice"],
    ["language is not a language tag", { language: "english please" }, "language"],
    ["first_message is empty", { first_message: "" }, "first_message"],
    ["voicemail_message is too long", { voicemail_message: "x".repeat(2001) }, "voicemail_message"],
    ["max_duration_seconds is below 30", { max_duration_seconds: 29 }, "max_duration_seconds"],
    ["max_duration_seconds is above 600", { max_duration_seconds: 601 }, "max_duration_seconds"],
    ["max_duration_seconds is not an integer", { max_duration_seconds: 90.5 }, "max_duration_seconds"],
    ["max_duration_seconds is a string", { max_duration_seconds: "180" }, "max_duration_seconds"],
    ["transfer_to is not E.164", { transfer_to: "(415) 555-0142" }, "transfer_to"],
    ["transfer_to is not a valid number", { transfer_to: "+1415555014" }, "transfer_to"],
    ["record is a string", { record: "yes" }, "record"],
    ["engine is unknown", { engine: "openai-classic" }, "engine"],
    ["recording_disclosure is blank", { recording_disclosure: "  " }, "recording_disclosure"],
    ["recording_disclosure is too long", { recording_disclosure: "x".repeat(501) }, "recording_disclosure"],
  ])("returns 400 and creates nothing when %s", async (_case, override, path) => {
    const account = await signup();
    const res = await api("POST", "/api/v1/agents", { key: account.key, body: { ...valid, ...override } });
    expect(res.status).toBe(400);
    expect(res.body.code).toBe("validation_error");
    expect(res.body.details).toEqual(expect.arrayContaining([{ path, message: expect.any(String) }]));
    expect(await agentCount(account.businessId)).toBe(0);
  });

  it("says what is wrong with an output_schema", async () => {
    const account = await signup();
    const res = await api("POST", "/api/v1/agents", { key: account.key, body: { ...valid, output_schema: { type: "object", properties: { x: { type: "strnig" } } } } });
    expect(res.body.details).toEqual([{ path: "output_schema.properties.x.type", message: expect.stringContaining('must be one of "array", "boolean"') }]);
    expect(res.body.message).toContain("output_schema.properties.x.type");
  });
});

describe("GET /api/v1/agents", () => {
  it("lists the business's active agents newest first, a page at a time", async () => {
    const account = await signup();
    const first = await createAgent(account, { name: "first" });
    const disabled = await createAgent(account, { name: "disabled" });
    const second = await createAgent(account, { name: "second" });
    const third = await createAgent(account, { name: "third" });
    expect((await api("DELETE", `/api/v1/agents/${disabled.id}`, { key: account.key })).status).toBe(200);
    await createAgent(await signup(), { name: "someone else's" });

    const page1 = await api("GET", "/api/v1/agents?limit=2", { key: account.key });
    expect(page1.status).toBe(200);
    expect(page1.body.map((a: { id: string }) => a.id)).toEqual([third.id, second.id]);
    expect(page1.body[0]).toEqual(third);
    const cursor = page1.headers.get("x-next-cursor");
    expect(cursor).toBeTruthy();

    const page2 = await api("GET", `/api/v1/agents?limit=2&cursor=${cursor}`, { key: account.key });
    expect(page2.body.map((a: { id: string }) => a.id)).toEqual([first.id]);
    expect(page2.headers.get("x-next-cursor")).toBeNull();
  });

  it("rejects a bad limit or cursor with 400", async () => {
    const account = await signup();
    const badLimit = await api("GET", "/api/v1/agents?limit=500", { key: account.key });
    expect(badLimit.status).toBe(400);
    expect(badLimit.body.details).toEqual(expect.arrayContaining([expect.objectContaining({ path: "limit" })]));
    const badCursor = await api("GET", "/api/v1/agents?cursor=not-a-cursor", { key: account.key });
    expect(badCursor.status).toBe(400);
    expect(badCursor.body.details).toEqual([expect.objectContaining({ path: "cursor" })]);
  });
});

describe("GET /api/v1/agents/{id}", () => {
  it("returns the agent to every project of the business", async () => {
    const account = await signup();
    const agent = await createAgent(account);
    const project = await api("POST", "/api/v1/projects", { token: account.accessToken, body: { name: "second" } });
    expect(project.status).toBe(201);
    const res = await api("GET", `/api/v1/agents/${agent.id}`, { key: project.body.api_key });
    expect(res.status).toBe(200);
    expect(res.body).toEqual(agent);
  });

  it.each([
    ["an unknown id", "0193b1c2-7e4a-7c1e-9d5a-2f1e4c3b2a10"],
    ["an id that is not a UUID", "not-a-uuid"],
  ])("is 404 agent_not_found for %s", async (_case, id) => {
    const account = await signup();
    const res = await api("GET", `/api/v1/agents/${id}`, { key: account.key });
    expect(res.status).toBe(404);
    expect(res.body).toMatchObject({ statusCode: 404, error: "Not Found", code: "agent_not_found", message: "Agent not found" });
  });
});

describe("PATCH /api/v1/agents/{id}", () => {
  it("changes only the fields sent and moves updated_at", async () => {
    const account = await signup();
    const agent = await createAgent(account, { voice: "alloy", output_schema: { type: "object", properties: { ok: { type: "boolean" } } } });
    await new Promise((resolve) => setTimeout(resolve, 5));
    const res = await api("PATCH", `/api/v1/agents/${agent.id}`, { key: account.key, body: { name: "Renamed", max_duration_seconds: 60 } });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ...agent, name: "Renamed", max_duration_seconds: 60, updated_at: expect.any(String) });
    expect(res.body.updated_at > agent.updated_at).toBe(true);
    expect((await api("GET", `/api/v1/agents/${agent.id}`, { key: account.key })).body).toEqual(res.body);
  });

  it("sets and clears transfer_to, record and recording_disclosure", async () => {
    const account = await signup();
    const agent = await createAgent(account);
    expect(agent).toMatchObject({ transfer_to: null, record: false, recording_disclosure: null });
    const set = await api("PATCH", `/api/v1/agents/${agent.id}`, { key: account.key, body: { transfer_to: "+442079460000", record: true, recording_disclosure: "We record calls." } });
    expect(set.body).toMatchObject({ transfer_to: "+442079460000", record: true, recording_disclosure: "We record calls." });
    const cleared = await api("PATCH", `/api/v1/agents/${agent.id}`, { key: account.key, body: { transfer_to: null, record: false, recording_disclosure: null } });
    expect(cleared.body).toMatchObject({ transfer_to: null, record: false, recording_disclosure: null });
    expect(await env.DB.prepare("SELECT transfer_to, record, recording_disclosure FROM agents WHERE id = ?").bind(agent.id).first()).toEqual({ transfer_to: null, record: 0, recording_disclosure: null });
  });

  it("clears output_schema and optional texts with null", async () => {
    const account = await signup();
    const agent = await createAgent(account, { voice: "alloy", output_schema: { type: "object" } });
    const res = await api("PATCH", `/api/v1/agents/${agent.id}`, { key: account.key, body: { output_schema: null, voice: null } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ output_schema: null, voice: null });
    const stored = await env.DB.prepare("SELECT output_schema, voice FROM agents WHERE id = ?").bind(agent.id).first();
    expect(stored).toEqual({ output_schema: null, voice: null });
  });

  it.each([
    ["an empty body", {}, ""],
    ["only unknown fields", { colour: "blue" }, ""],
    ["a blank name", { name: "" }, "name"],
    ["a bad output_schema", { output_schema: { type: "object", required: "confirmed" } }, "output_schema.required"],
    ["an output_schema with a $ref cycle", { output_schema: { type: "object", properties: { a: { $ref: "#/properties/a" } } } }, "output_schema.properties.a.$ref"],
    ["an output_schema with a catastrophic pattern", { output_schema: { type: "object", patternProperties: { "^(a|a)*b$": { type: "string" } } } }, "output_schema.patternProperties.^(a|a)*b$"],
    ["an output_schema with a huge maxLength", { output_schema: { type: "object", properties: { a: { type: "string", maxLength: 1_000_000 } } } }, "output_schema.properties.a.maxLength"],
    ["a null system_prompt", { system_prompt: null }, "system_prompt"],
    ["max_duration_seconds out of range", { max_duration_seconds: 1000 }, "max_duration_seconds"],
    ["a transfer_to that is not E.164", { transfer_to: "555-0142" }, "transfer_to"],
    ["a null record", { record: null }, "record"],
    ["a null engine", { engine: null }, "engine"],
  ])("returns 400 and changes nothing for %s", async (_case, body, path) => {
    const account = await signup();
    const agent = await createAgent(account);
    const res = await api("PATCH", `/api/v1/agents/${agent.id}`, { key: account.key, body });
    expect(res.status).toBe(400);
    expect(res.body.code).toBe("validation_error");
    expect(res.body.details).toEqual(expect.arrayContaining([{ path, message: expect.any(String) }]));
    if (path === "") expect(res.body.details[0].message).toBe("provide at least one field");
    expect((await api("GET", `/api/v1/agents/${agent.id}`, { key: account.key })).body).toEqual(agent);
  });

  it("is 404 for another business's agent and leaves it alone", async () => {
    const owner = await signup();
    const agent = await createAgent(owner);
    const res = await api("PATCH", `/api/v1/agents/${agent.id}`, { key: (await signup()).key, body: { name: "Mine now" } });
    expect(res.status).toBe(404);
    expect(res.body.code).toBe("agent_not_found");
    expect((await api("GET", `/api/v1/agents/${agent.id}`, { key: owner.key })).body).toEqual(agent);
  });
});

describe("DELETE /api/v1/agents/{id}", () => {
  it("disables the agent: still readable by id, no longer listed", async () => {
    const account = await signup();
    const agent = await createAgent(account);
    const res = await api("DELETE", `/api/v1/agents/${agent.id}`, { key: account.key });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ...agent, status: "disabled", updated_at: expect.any(String) });

    const byId = await api("GET", `/api/v1/agents/${agent.id}`, { key: account.key });
    expect(byId.status).toBe(200);
    expect(byId.body.status).toBe("disabled");
    expect((await api("GET", "/api/v1/agents", { key: account.key })).body).toEqual([]);
    expect(await agentCount(account.businessId)).toBe(1);
  });

  it("is 404 for an unknown agent", async () => {
    const account = await signup();
    const res = await api("DELETE", "/api/v1/agents/0193b1c2-7e4a-7c1e-9d5a-2f1e4c3b2a10", { key: account.key });
    expect(res.status).toBe(404);
    expect(res.body.code).toBe("agent_not_found");
  });
});
