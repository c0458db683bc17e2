import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { boundedCallResult, relaxedSchema, sampleCallResult, validateCallResult } from "../../src/calls/call-result";
import { FEEDBACK_OUTPUT_SCHEMA } from "../../src/calls/prompt";
import { createAgent, createCustomer, QUICKSTART_AGENT, quickstartCustomer, storedEvents, waitUntilEnded } from "../fixtures";
import { api, signup } from "../helpers";

const quickstartSchema = QUICKSTART_AGENT.output_schema!;

describe("validateCallResult", () => {
  it("accepts null for keys that were not collected, but not for required ones", () => {
    expect(validateCallResult(quickstartSchema, { confirmed: true, reschedule_request: null })).toEqual({ valid: true, errors: [] });
    const missingRequired = validateCallResult(quickstartSchema, { confirmed: null, reschedule_request: null });
    expect(missingRequired.valid).toBe(false);
    expect(missingRequired.errors.join(" ")).toContain("/confirmed");
  });

  it("still checks the type of an optional key that has a value", () => {
    const result = validateCallResult(quickstartSchema, { confirmed: true, reschedule_request: 42 });
    expect(result.valid).toBe(false);
    expect(result.errors.join(" ")).toContain("/reschedule_request");
  });

  it("relaxes nested objects and $defs, and keeps $ref pointers into wrapped properties working", () => {
    const schema = {
      type: "object",
      required: ["visit"],
      properties: {
        visit: { type: "object", required: ["day"], properties: { day: { type: "string" }, room: { $ref: "#/$defs/room" } } },
        backup: { type: "object", properties: { note: { type: "string" } } },
        same_as_backup_note: { $ref: "#/properties/backup/properties/note" },
      },
      $defs: { room: { type: "object", required: ["number"], properties: { number: { type: "integer" }, floor: { type: "integer" } } } },
    };
    expect(validateCallResult(schema, { visit: { day: "Monday", room: null }, backup: null, same_as_backup_note: null }).valid).toBe(true);
    expect(validateCallResult(schema, { visit: { day: "Monday", room: { number: 3, floor: null } }, backup: { note: null }, same_as_backup_note: "x" }).valid).toBe(true);
    expect(validateCallResult(schema, { visit: { day: "Monday", room: { number: null } } }).valid).toBe(false);
    expect(validateCallResult(schema, { visit: { day: "Monday" }, same_as_backup_note: 5 }).valid).toBe(false);
    expect(relaxedSchema(schema).properties).toMatchObject({ same_as_backup_note: { anyOf: [{ type: "null" }, { $ref: "#/properties/backup/anyOf/1/properties/note/anyOf/1" }] } });
  });

  it("reports what is wrong", () => {
    const result = validateCallResult({ type: "object", required: ["n"], properties: { n: { type: "integer", maximum: 5 } }, additionalProperties: false }, { n: 9, extra: 1 });
    expect(result.valid).toBe(false);
    expect(result.errors.some((e) => e.startsWith("at /n:"))).toBe(true);
    expect(result.errors.some((e) => e.includes("extra"))).toBe(true);
  });
});

describe("sampleCallResult", () => {
  const cases: Array<[string, Record<string, unknown>, unknown]> = [
    ["the quickstart schema", quickstartSchema, { confirmed: true, reschedule_request: null }],
    ["the LLM path's feedback schema", FEEDBACK_OUTPUT_SCHEMA, { response: "confirmed", reschedule_time: null, notes: null }],
    [
      "enums, const and type arrays",
      {
        type: "object",
        required: ["mood", "kind", "either"],
        properties: { mood: { enum: ["happy", "sad"] }, kind: { const: "reminder" }, either: { type: ["null", "integer"] }, unused: { enum: ["x"] } },
      },
      { mood: "happy", kind: "reminder", either: 1, unused: null },
    ],
    [
      "integers and numbers with bounds",
      {
        type: "object",
        required: ["rating", "party", "score", "negative", "half", "between"],
        properties: {
          rating: { type: "integer", minimum: 1, maximum: 5 },
          party: { type: "integer", exclusiveMinimum: 2 },
          score: { type: "number", multipleOf: 0.5, minimum: 2.2 },
          negative: { type: "integer", maximum: -3 },
          half: { type: "number", exclusiveMinimum: 0, exclusiveMaximum: 1 },
          between: { type: "integer", minimum: 10, multipleOf: 4 },
        },
      },
      { rating: 1, party: 3, score: 2.5, negative: -3, half: 0.5, between: 12 },
    ],
    [
      "strings with lengths",
      { type: "object", required: ["code", "short"], properties: { code: { type: "string", minLength: 30 }, short: { type: "string", maxLength: 4 } } },
      { code: expect.stringMatching(/^simulated code\.{16}$/), short: "simu" },
    ],
    [
      "nested objects and arrays with minItems",
      {
        type: "object",
        required: ["slot", "tags", "people", "notes"],
        properties: {
          slot: { type: "object", required: ["day"], properties: { day: { type: "string", enum: ["mon", "tue"] }, hour: { type: "integer" } } },
          tags: { type: "array", items: { type: "string" }, minItems: 2, uniqueItems: true },
          people: { type: "array", items: { type: "object", required: ["name"], properties: { name: { type: "string" } } }, minItems: 1 },
          notes: { type: "array", items: { type: "string" } },
        },
      },
      { slot: { day: "mon", hour: null }, tags: ["simulated tags", "simulated tags 2"], people: [{ name: "simulated name" }], notes: [] },
    ],
    [
      "anyOf / oneOf (first non-null branch), allOf and $ref",
      {
        type: "object",
        required: ["when", "choice", "merged", "ref"],
        properties: {
          when: { anyOf: [{ type: "null" }, { type: "string", format: "date" }] },
          choice: { oneOf: [{ type: "boolean" }, { type: "string" }] },
          merged: { allOf: [{ type: "object", required: ["a"], properties: { a: { type: "integer" } } }, { required: ["b"], properties: { b: { type: "boolean" } } }] },
          ref: { $ref: "#/$defs/address" },
        },
        $defs: { address: { type: "object", required: ["city"], properties: { city: { type: "string" }, zip: { type: "string" } } } },
      },
      { when: expect.stringMatching(/^\d{4}-\d{2}-\d{2}$/), choice: true, merged: { a: 1, b: true }, ref: { city: "simulated city", zip: null } },
    ],
  ];

  it.each(cases)("fits %s", (_name, schema, expected) => {
    const sample = sampleCallResult(schema);
    expect(sample.error).toBeNull();
    expect(sample.value).toEqual(expected);
    expect(validateCallResult(schema, sample.value).valid).toBe(true);
  });

  it("gives each format a valid value", () => {
    const formats = ["date-time", "date", "time", "email", "uri", "uuid"];
    const schema = { type: "object", required: formats, properties: Object.fromEntries(formats.map((f) => [f, { type: "string", format: f }])) };
    const sample = sampleCallResult(schema);
    expect(sample.error).toBeNull();
    expect(sample.value).toMatchObject({ email: "customer@example.com", uri: "https://example.com/", uuid: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    expect(Date.parse(sample.value!["date-time"] as string)).not.toBeNaN();
  });

  it("gives up with a reason when it cannot satisfy the schema", () => {
    const sample = sampleCallResult({ type: "object", required: ["code"], properties: { code: { type: "string", pattern: "^[0-9]{6}$" } } });
    expect(sample.value).toBeNull();
    expect(sample.error).toMatch(/does not satisfy the agent's output_schema.*\/code/);
  });

  it("stops at recursive references", () => {
    const schema = { type: "object", required: ["node"], properties: { node: { $ref: "#/$defs/node" } }, $defs: { node: { type: "object", required: ["child"], properties: { child: { $ref: "#/$defs/node" } } } } };
    expect(() => sampleCallResult(schema)).not.toThrow();
  });
});

describe("boundedCallResult", () => {
  const schema = { type: "object", properties: { notes: { type: "string" } } };

  it("drops an extracted value over 64 KB serialized, and keeps one at 64 KB", async () => {
    const overhead = JSON.stringify({ notes: "" }).length;
    await expect(boundedCallResult(schema, () => ({ value: { notes: "x".repeat(64 * 1024 - overhead) }, error: null }))).resolves.toMatchObject({ error: null });
    await expect(boundedCallResult(schema, async () => ({ value: { notes: "x".repeat(64 * 1024 - overhead + 1) }, error: null }))).resolves.toEqual({
      value: null,
      error: expect.stringContaining("over 64 KB serialized (65537 bytes)"),
    });
  });
});

describe("a simulated call's call_result", () => {
  /** Places a call with an agent of `schema` and waits for its end; `stored` replaces the schema in D1 afterwards, as an agent saved before today's checks. */
  async function callWith(schema: Record<string, unknown>, stored?: Record<string, unknown>) {
    const account = await signup();
    const agent = await createAgent(account, { name: "Collector", system_prompt: "Collect things.", output_schema: schema });
    if (stored) await env.DB.prepare("UPDATE agents SET output_schema = ? WHERE id = ?").bind(JSON.stringify(stored), agent.id).run();
    const customer = await createCustomer(account, quickstartCustomer());
    const created = await api("POST", "/api/v1/notifications", { key: account.key, body: { customer_id: customer.id, agent_id: agent.id } });
    expect(created.status).toBe(201);
    const notification = await waitUntilEnded(account, created.body.notification.id);
    const summary = (await storedEvents(notification.id)).find((event) => event.event_name === "call.summary");
    return { notification, analysis: JSON.parse(summary?.payload ?? "null")?.data.analysis };
  }

  it("is null, saying why, when it would be over 64 KB serialized", async () => {
    // 100 × 100 strings of 10 characters: every bound respected, about 130 KB built.
    const grid = { type: "array", minItems: 100, items: { type: "array", minItems: 100, items: { type: "string", minLength: 10 } } };
    const { notification, analysis } = await callWith({ type: "object", required: ["grid"], properties: { grid } });
    expect(notification).toMatchObject({ status: "completed", call_result: null, error_message: expect.stringContaining("64 KB") });
    expect(analysis).toBeNull();
  });

  it("is kept when it fits", async () => {
    const list = { type: "array", minItems: 100, items: { type: "string", minLength: 10 } };
    const { notification } = await callWith({ type: "object", required: ["list"], properties: { list } });
    expect(notification.call_result.list).toHaveLength(100);
    expect(notification.error_message).toBeNull();
  });

  it.each([
    ["a $ref cycle", { type: "object", required: ["a"], properties: { a: { $ref: "#/properties/a" } } }, "output_schema.properties.a.$ref"],
    ["a catastrophic pattern", { type: "object", required: ["a"], properties: { a: { type: "string", pattern: "^(.+)+X$", minLength: 28 } } }, "output_schema.properties.a.pattern"],
    ["the issue's minItems 1000 nested twice", { type: "object", required: ["a"], properties: { a: { type: "array", minItems: 1000, items: { type: "array", minItems: 1000, items: { type: "string" } } } } }, "output_schema.properties.a.minItems"],
  ])("of an agent stored with %s is null, saying why, and the call ends", async (_case, stored, path) => {
    const { notification, analysis } = await callWith({ type: "object" }, stored);
    expect(notification).toMatchObject({ status: "completed", ended_reason: "customer-ended-call", call_result: null, error_message: expect.stringContaining(path) });
    expect(analysis).toBeNull();
  });
});
