import { describe, expect, it } from "vitest";
import { StrictOutputSchema } from "../../../src/calls/live/extraction";
import { FEEDBACK_OUTPUT_SCHEMA } from "../../../src/calls/prompt";
import { QUICKSTART_AGENT } from "../../fixtures";

/** The agent's schema in OpenAI's strict subset, and answers to it mapped back. */

const strictOf = (schema: Record<string, unknown>) => new StrictOutputSchema(schema).schema;

describe("StrictOutputSchema: the strict form", () => {
  it("requires every property, forbids others, and makes the optional ones nullable", () => {
    expect(strictOf(QUICKSTART_AGENT.output_schema!)).toEqual({
      type: "object",
      properties: {
        confirmed: { type: "boolean", description: "Whether the patient confirmed the appointment" },
        reschedule_request: { type: ["string", "null"], description: "Preferred reschedule time if they want to change it" },
      },
      required: ["confirmed", "reschedule_request"],
      additionalProperties: false,
    });
  });

  it("keeps enums and const, and gives an optional one a null branch", () => {
    expect(strictOf(FEEDBACK_OUTPUT_SCHEMA).properties).toMatchObject({
      response: { type: "string", enum: ["confirmed", "cancel_requested", "reschedule_requested", "no_clear_answer"] },
      reschedule_time: { type: ["string", "null"] },
    });
    const schema = { type: "object", required: ["kind"], properties: { kind: { const: "reminder" }, mood: { enum: ["happy", "sad"] }, level: { enum: [1, 2, "max"] } } };
    expect(strictOf(schema).properties).toEqual({
      kind: { type: "string", const: "reminder" },
      mood: { anyOf: [{ type: "string", enum: ["happy", "sad"] }, { type: "null" }] },
      level: { anyOf: [{ type: "number", enum: [1, 2] }, { type: "string", enum: ["max"] }, { type: "null" }] },
    });
  });

  it("converts nested objects and arrays, keeps the supported keywords and describes the others", () => {
    const schema = {
      type: "object",
      required: ["visit", "topics"],
      properties: {
        visit: {
          type: "object",
          required: ["day"],
          properties: { day: { type: "string", format: "date" }, note: { type: "string", minLength: 3, description: "Anything else" } },
        },
        topics: { type: "array", items: { type: "integer", minimum: 1, maximum: 5 }, minItems: 1, uniqueItems: true },
        site: { type: "string", format: "uri", pattern: "^https://" },
      },
    };
    expect(strictOf(schema)).toEqual({
      type: "object",
      properties: {
        visit: {
          type: "object",
          properties: {
            day: { type: "string", format: "date" },
            note: { type: ["string", "null"], description: 'Anything else\nMust also satisfy these JSON Schema keywords: {"minLength":3}' },
          },
          required: ["day", "note"],
          additionalProperties: false,
        },
        topics: {
          type: "array",
          items: { type: "integer", minimum: 1, maximum: 5 },
          minItems: 1,
          description: 'Must also satisfy these JSON Schema keywords: {"uniqueItems":true}',
        },
        site: { type: ["string", "null"], pattern: "^https://", description: 'Must also satisfy these JSON Schema keywords: {"format":"uri"}' },
      },
      required: ["visit", "topics", "site"],
      additionalProperties: false,
    });
  });

  it("splits type lists into anyOf and keeps the documented [type, null] form", () => {
    const schema = { type: "object", required: ["either", "maybe"], properties: { either: { type: ["string", "integer"], minimum: 0 }, maybe: { type: ["string", "null"] } } };
    expect(strictOf(schema).properties).toEqual({
      either: { anyOf: [{ type: "string" }, { type: "integer", minimum: 0 }] },
      maybe: { type: ["string", "null"] },
    });
  });

  it("merges allOf, turns oneOf into anyOf and distributes the keywords beside a union", () => {
    const schema = {
      type: "object",
      required: ["contact", "slot"],
      properties: {
        contact: {
          type: "object",
          properties: { phone: { type: "string" }, email: { type: "string" } },
          oneOf: [{ required: ["phone"] }, { required: ["email"] }],
        },
        slot: { allOf: [{ type: "object", required: ["day"], properties: { day: { type: "string" } } }, { properties: { hour: { type: "integer" } } }] },
      },
    };
    const phoneOrEmail = (required: string) => ({
      type: "object",
      properties: {
        phone: required === "phone" ? { type: "string" } : { type: ["string", "null"] },
        email: required === "email" ? { type: "string" } : { type: ["string", "null"] },
      },
      required: ["phone", "email"],
      additionalProperties: false,
    });
    expect(strictOf(schema).properties).toEqual({
      contact: { anyOf: [phoneOrEmail("phone"), phoneOrEmail("email")] },
      slot: { type: "object", properties: { day: { type: "string" }, hour: { type: ["integer", "null"] } }, required: ["day", "hour"], additionalProperties: false },
    });
  });

  it("points every $ref into $defs, inlines a $ref that has siblings, and keeps root recursion", () => {
    const schema = {
      type: "object",
      required: ["room", "backup_note"],
      properties: {
        room: { $ref: "#/$defs/room" },
        backup: { type: "object", properties: { note: { type: "string" } } },
        backup_note: { $ref: "#/properties/backup/properties/note" },
        described_room: { $ref: "#/$defs/room", description: "The other room" },
        children: { type: "array", items: { $ref: "#" } },
      },
      $defs: { room: { type: "object", required: ["number"], properties: { number: { type: "integer" } } } },
    };
    const room = { type: "object", properties: { number: { type: "integer" } }, required: ["number"], additionalProperties: false };
    const strict = strictOf(schema);
    expect(strict.properties).toEqual({
      room: { $ref: "#/$defs/room" },
      backup: { anyOf: [{ type: "object", properties: { note: { type: ["string", "null"] } }, required: ["note"], additionalProperties: false }, { type: "null" }] },
      backup_note: { $ref: "#/$defs/note" },
      described_room: { anyOf: [{ ...room, description: "The other room" }, { type: "null" }] },
      children: { anyOf: [{ type: "array", items: { $ref: "#" } }, { type: "null" }] },
    });
    expect(strict.$defs).toEqual({ room, note: { type: "string" } });
  });

  it("carries values of no strict shape as JSON text", () => {
    const schema = { type: "object", required: ["anything"], properties: { anything: {}, tags: { type: "object", additionalProperties: { type: "string" } } } };
    expect(strictOf(schema).properties).toEqual({
      anything: { type: "string", description: "The value as JSON text" },
      tags: {
        anyOf: [
          { type: "string", description: 'The value as JSON text, valid against this JSON Schema: {"type":"object","additionalProperties":{"type":"string"}}' },
          { type: "null" },
        ],
      },
    });
    expect(strictOf({ type: "object", description: "Whatever was said" })).toEqual({
      type: "object",
      properties: { value: { type: "string", description: 'Whatever was said\nThe value as JSON text, valid against this JSON Schema: {"type":"object","description":"Whatever was said"}' } },
      required: ["value"],
      additionalProperties: false,
    });
  });

  it("describes a union at the root, where strict mode allows none", () => {
    const schema = { type: "object", properties: { a: { type: "string" } }, anyOf: [{ required: ["a"] }] };
    expect(strictOf(schema)).toEqual({
      type: "object",
      properties: { a: { type: ["string", "null"] } },
      required: ["a"],
      additionalProperties: false,
      description: 'Must also satisfy these JSON Schema keywords: {"anyOf":[{"required":["a"]}]}',
    });
  });
});

describe("StrictOutputSchema: answers mapped back", () => {
  it("keeps null for keys not collected", () => {
    const strict = new StrictOutputSchema(QUICKSTART_AGENT.output_schema!);
    expect(strict.toAgentValue({ confirmed: true, reschedule_request: null })).toEqual({ confirmed: true, reschedule_request: null });
  });

  it("parses JSON text back, wherever it sits", () => {
    const schema = {
      type: "object",
      required: ["items", "either"],
      properties: {
        tags: { type: "object", additionalProperties: { type: "string" } },
        items: { type: "array", items: {} },
        either: { anyOf: [{ type: "object", properties: { a: { type: "integer" } } }, { type: "object", properties: { b: {} } }] },
        word: { description: "free" },
      },
    };
    const strict = new StrictOutputSchema(schema);
    expect(strict.toAgentValue({ tags: '{"x":"1"}', items: ["1", '"two"', "[3]"], either: { b: "{}" }, word: "tomorrow" })).toEqual({
      tags: { x: "1" },
      items: [1, "two", [3]],
      either: { b: {} },
      word: "tomorrow",
    });
    expect(strict.toAgentValue({ tags: null, items: [], either: { a: 1 }, word: null })).toEqual({ tags: null, items: [], either: { a: 1 }, word: null });
  });

  it("unwraps a free-form root", () => {
    expect(new StrictOutputSchema({ type: "object" }).toAgentValue({ value: '{"anything":[1]}' })).toEqual({ anything: [1] });
  });

  it("follows $refs, recursive ones included", () => {
    const schema = { type: "object", required: ["extra"], properties: { extra: { $ref: "#/$defs/free" }, children: { type: "array", items: { $ref: "#" } } }, $defs: { free: {} } };
    const strict = new StrictOutputSchema(schema);
    expect(strict.toAgentValue({ extra: "5", children: [{ extra: '"x"', children: null }] })).toEqual({ extra: 5, children: [{ extra: "x", children: null }] });
  });
});
