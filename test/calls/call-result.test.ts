import { describe, expect, it } from "vitest";
import { relaxedSchema, sampleCallResult, validateCallResult } from "../../src/calls/call-result";
import { FEEDBACK_OUTPUT_SCHEMA } from "../../src/calls/prompt";
import { QUICKSTART_AGENT } from "../fixtures";

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
