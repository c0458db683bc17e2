import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { extractCallResult, type ExtractionInput } from "../../../src/calls/live/extraction";
import type { TranscriptTurn } from "../../../src/calls/call";
import { getConfig } from "../../../src/env";
import { QUICKSTART_AGENT, QUICKSTART_OPENING } from "../../fixtures";

/**
 * call_result extraction against the fake Chat Completions API (test/fakes/openai-chat.mjs), with
 * the live project's OpenAI configuration. Each test's transcript opens with a unique marker: the
 * fake keeps its per-transcript state by it, and the test finds its recorded requests by it.
 */

const config = getConfig(env);
const quickstartSchema = QUICKSTART_AGENT.output_schema!;

interface RecordedRequest {
  headers: Record<string, string>;
  body: { model: string; messages: Array<{ role: string; content: string }>; response_format: { type: string; json_schema: { name: string; strict: boolean; schema: Record<string, any> } } };
}

/** An extraction of a call whose customer said `customerLines`, and the marker of its transcript. */
function call(customerLines: string[], outputSchema: Record<string, unknown> = quickstartSchema, apiKey = config.openai.apiKey!) {
  const marker = `call-${crypto.randomUUID()}`;
  const transcript: TranscriptTurn[] = [
    { role: "agent", text: `${QUICKSTART_OPENING} (${marker})`, at_ms: 0 },
    ...customerLines.map((text, i) => ({ role: "customer" as const, text, at_ms: 3000 * (i + 1) })),
  ];
  // Time for the retries however loaded the machine: the time limit has its own test.
  const input: ExtractionInput = { openai: { ...config.openai, apiKey, extractionTimeoutMs: 30_000 }, instructions: "Confirm the appointment.", transcript, outputSchema };
  return { marker, input };
}

async function requestsFor(marker: string): Promise<RecordedRequest[]> {
  const response = await fetch(`https://api.openai.com/_fake/chat/requests?match=${marker}`);
  return response.json();
}

describe("extractCallResult", () => {
  it("extracts the quickstart result: confirmed, and null for what was not collected", async () => {
    const { input } = call(["Yes, that still works for me."]);
    expect(await extractCallResult(input)).toEqual({ value: { confirmed: true, reschedule_request: null }, error: null });
  });

  it("sends the transcript and the strict form of the agent's schema", async () => {
    const { marker, input } = call(["Yes, that still works for me."]);
    await extractCallResult(input);
    const [request, ...others] = await requestsFor(marker);
    expect(others).toHaveLength(0);
    expect(request!.headers.authorization).toBe("Bearer sk-fake-openai-key");
    expect(request!.body.model).toBe(config.openai.extractionModel);
    expect(request!.body.messages).toHaveLength(2);
    expect(request!.body.messages[0]).toMatchObject({ role: "system" });
    expect(request!.body.messages[0]!.content).toContain("never guess or invent");
    expect(request!.body.messages[0]!.content).toContain("Confirm the appointment.");
    expect(request!.body.messages[1]).toEqual({ role: "user", content: `AI: ${QUICKSTART_OPENING} (${marker})\nCustomer: Yes, that still works for me.` });
    expect(request!.body.response_format).toEqual({
      type: "json_schema",
      json_schema: {
        name: "call_result",
        strict: true,
        schema: {
          type: "object",
          properties: {
            confirmed: { type: "boolean", description: "Whether the patient confirmed the appointment" },
            reschedule_request: { type: ["string", "null"], description: "Preferred reschedule time if they want to change it" },
          },
          required: ["confirmed", "reschedule_request"],
          additionalProperties: false,
        },
      },
    });
  });

  describe("nested objects, arrays, enums and formats", () => {
    const schema = {
      type: "object",
      required: ["visit", "topics"],
      properties: {
        visit: { type: "object", required: ["day"], properties: { day: { type: "string", format: "date" }, slot: { enum: ["morning", "afternoon"] } } },
        topics: { type: "array", minItems: 1, items: { type: "object", required: ["name"], properties: { name: { type: "string" }, urgency: { type: "integer", minimum: 1, maximum: 5 } } } },
        email: { type: "string", format: "email" },
        answers: { type: "object", additionalProperties: { type: "string" } },
      },
    };

    it("are sent in strict form and accepted", async () => {
      const { marker, input } = call(["Tuesday works, I need help with billing."], schema);
      const result = await extractCallResult(input);
      expect(result).toEqual({ value: { visit: { day: "2026-03-20", slot: null }, topics: [{ name: "Tuesday works, I need help with billing.", urgency: null }], email: null, answers: null }, error: null });
      const [request] = await requestsFor(marker);
      expect(request!.body.response_format.json_schema.schema.properties).toEqual({
        visit: {
          type: "object",
          properties: { day: { type: "string", format: "date" }, slot: { anyOf: [{ type: "string", enum: ["morning", "afternoon"] }, { type: "null" }] } },
          required: ["day", "slot"],
          additionalProperties: false,
        },
        topics: {
          type: "array",
          minItems: 1,
          items: {
            type: "object",
            properties: { name: { type: "string" }, urgency: { type: ["integer", "null"], minimum: 1, maximum: 5 } },
            required: ["name", "urgency"],
            additionalProperties: false,
          },
        },
        email: { type: ["string", "null"], format: "email" },
        answers: {
          anyOf: [
            { type: "string", description: 'The value as JSON text, valid against this JSON Schema: {"type":"object","additionalProperties":{"type":"string"}}' },
            { type: "null" },
          ],
        },
      });
    });

    it("map the model's answer back to the agent's schema", async () => {
      const answer = { visit: { day: "2026-03-24", slot: "morning" }, topics: [{ name: "billing", urgency: 2 }], email: "jo@example.com", answers: '{"parking":"yes"}' };
      const { input } = call([`Tuesday morning. [extract] ${JSON.stringify(answer)}`], schema);
      expect(await extractCallResult(input)).toEqual({ value: { ...answer, answers: { parking: "yes" } }, error: null });
    });
  });

  it("retries once with the validation errors, then succeeds", async () => {
    const { marker, input } = call(["Yes, see you then. [extract-invalid-once]"]);
    expect(await extractCallResult(input)).toEqual({ value: { confirmed: true, reschedule_request: null }, error: null });
    const requests = await requestsFor(marker);
    expect(requests).toHaveLength(2);
    const [first, second] = requests;
    expect(second!.body.messages.slice(0, 2)).toEqual(first!.body.messages);
    expect(second!.body.messages[2]).toEqual({ role: "assistant", content: '{"confirmed":null,"reschedule_request":null}' });
    expect(second!.body.messages[3]!.role).toBe("user");
    expect(second!.body.messages[3]!.content).toContain("at /confirmed:");
  });

  it("gives up after a second invalid answer: null and what is wrong", async () => {
    const { marker, input } = call(["Yes. [extract-invalid]"]);
    const result = await extractCallResult(input);
    expect(result.value).toBeNull();
    expect(result.error).toContain("does not satisfy the agent's output_schema");
    expect(result.error).toContain("at /confirmed:");
    expect(await requestsFor(marker)).toHaveLength(2);
  });

  it("enforces the constraints strict mode cannot, through the same retry", async () => {
    const schema = { type: "object", required: ["name"], properties: { name: { type: "string", minLength: 3 } } };
    const { marker, input } = call(['It is Al. [extract] {"name":"Al"}'], schema);
    const result = await extractCallResult(input);
    expect(result.value).toBeNull();
    expect(result.error).toContain("at /name:");
    const [request] = await requestsFor(marker);
    expect(request!.body.response_format.json_schema.schema.properties.name.description).toContain('"minLength":3');
  });

  it("reports an answer that is not JSON", async () => {
    const { input } = call(["Yes. [extract] not json"]);
    expect(await extractCallResult(input)).toEqual({ value: null, error: expect.stringContaining("not valid JSON") });
  });

  it("reports a refusal without retrying", async () => {
    const { marker, input } = call(["[extract-refusal]"]);
    expect(await extractCallResult(input)).toEqual({ value: null, error: "The model refused to extract call_result: I'm sorry, I cannot assist with that request." });
    expect(await requestsFor(marker)).toHaveLength(1);
  });

  it("reports a rejected API key without retrying", async () => {
    const { marker, input } = call(["Yes."], quickstartSchema, "sk-wrong-key-0000");
    const result = await extractCallResult(input);
    expect(result.value).toBeNull();
    expect(result.error).toMatch(/^Extracting call_result failed: 401 Incorrect API key provided/);
    expect(await requestsFor(marker)).toHaveLength(1);
  });

  it("reports a server error after two retries, as the SDK did", async () => {
    const { marker, input } = call(["Yes. [extract-status 500]"]);
    const result = await extractCallResult(input);
    expect(result).toEqual({ value: null, error: "Extracting call_result failed: 500 The server had an error while processing your request. Sorry about that!" });
    expect(await requestsFor(marker)).toHaveLength(3);
  });

  it("gives up at its time limit when the model does not answer: null, saying so", async () => {
    const { marker, input } = call(["Yes. [extract-hang]"]);
    const result = await extractCallResult({ ...input, openai: { ...input.openai, extractionTimeoutMs: 300 } });
    expect(result).toEqual({ value: null, error: "Extracting call_result took longer than 300 ms" });
    expect(await requestsFor(marker)).not.toHaveLength(0);
  });

  it("would be refused had it sent the agent's schema as it is (the fake checks the strict rules)", async () => {
    const refusal = async (schema: Record<string, unknown>) => {
      const response = await fetch("https://api.openai.com/v1/chat/completions", {
        method: "POST",
        headers: { authorization: `Bearer ${config.openai.apiKey}`, "content-type": "application/json" },
        body: JSON.stringify({
          model: config.openai.extractionModel,
          messages: [{ role: "user", content: "Customer: yes" }],
          response_format: { type: "json_schema", json_schema: { name: "call_result", schema, strict: true } },
        }),
      });
      expect(response.status).toBe(400);
      return ((await response.json()) as { error: { message: string; code: string } }).error;
    };
    expect(await refusal(quickstartSchema)).toEqual(
      expect.objectContaining({ code: "invalid_json_schema", message: "Invalid schema for response_format 'call_result': In context=(), 'additionalProperties' is required to be supplied and to be false." }),
    );
    const optional = { ...quickstartSchema, additionalProperties: false };
    expect((await refusal(optional)).message).toContain("In context=(), 'required' is required to be supplied and to be an array including every key in properties. Missing 'reschedule_request'.");
    const minLength = { type: "object", properties: { a: { type: "string", minLength: 1 } }, required: ["a"], additionalProperties: false };
    expect((await refusal(minLength)).message).toContain("In context=('properties', 'a'), 'minLength' is not permitted.");
  });

  it("sends schemas the strict checker accepts, whatever the agent's schema uses", async () => {
    const schemas = [
      { type: "object", properties: { a: { type: ["string", "integer"] }, b: { oneOf: [{ type: "string" }, { type: "object", properties: { c: { type: "number" } } }] } } },
      { type: "object", properties: { room: { $ref: "#/$defs/room" }, kids: { type: "array", items: { $ref: "#" } } }, $defs: { room: { type: "object", properties: { n: { type: "integer" } } } } },
      { type: "object", properties: { free: {}, map: { type: "object" }, tuple: { type: "array", prefixItems: [{ type: "string" }] }, nope: { not: { type: "string" } } } },
      { type: "object", allOf: [{ properties: { a: { type: "string", maxLength: 5, format: "uri" } } }, { required: ["a"] }] },
      { type: "object" },
    ];
    for (const schema of schemas) {
      const { input } = call(["Yes."], schema);
      // The fake's answer may break a constraint only the description carries; the API must not fail.
      const { error } = await extractCallResult(input);
      expect(error ?? "", JSON.stringify(schema)).not.toContain("Extracting call_result failed");
    }
  });
});
