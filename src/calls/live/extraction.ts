import { dereference, type Schema } from "@cfworker/json-schema";
import type { ChatCompletion, ChatCompletionCreateParamsNonStreaming, ChatCompletionMessageParam } from "openai/resources/chat/completions";
import type { OpenAIConfig } from "../../env";
import { isObject, mergeSchemas } from "../../lib/json-schema";
import type { CallResult, TranscriptTurn } from "../call";
import { transcriptText, validateCallResult } from "../call-result";
import { errorText } from "../../errors";

/**
 * `call_result` of a live call: a chat completion with Structured Outputs (`response_format`
 * json_schema, strict) reads the transcript with the agent's `output_schema`, converted to the
 * strict subset OpenAI accepts; the answer is mapped back to the agent's schema and validated with
 * the same rules as the simulator's (keys not collected are null).
 */

type Json = Record<string, unknown>;

export interface ExtractionInput {
  openai: OpenAIConfig & { apiKey: string };
  /** The rendered prompt the agent followed: what it was asked to collect. */
  instructions: string;
  transcript: TranscriptTurn[];
  outputSchema: Record<string, unknown>;
}

const SYSTEM_PROMPT = `You extract data from the transcript of a phone call that an AI agent made to a customer.
The JSON schema of your answer describes what the agent was asked to collect; the agent's instructions follow.
Fill each field only with what the customer actually said in the call. A field that was not collected,
or that the customer did not clearly give, is null: never guess or invent a value.
A field described as JSON text holds its value written as JSON.`;

/** Answers asked for: the first, and one retry told what was wrong with it. */
const MAX_ATTEMPTS = 2;

/** Never throws: every failure is a null value with a message saying why. */
export async function extractCallResult(input: ExtractionInput): Promise<CallResult> {
  // The call's end waits on this, so the whole extraction, retries and the second attempt
  // included, has one time limit.
  const { extractionTimeoutMs } = input.openai;
  const signal = AbortSignal.timeout(extractionTimeoutMs);
  try {
    const strict = new StrictOutputSchema(input.outputSchema);
    const messages: ChatCompletionMessageParam[] = [
      { role: "system", content: `${SYSTEM_PROMPT}\n\nThe agent's instructions:\n${input.instructions}` },
      { role: "user", content: transcriptText(input.transcript) },
    ];
    let errors: string[] = [];
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const completion = await createChatCompletion(input.openai, {
        model: input.openai.extractionModel,
        messages,
        response_format: { type: "json_schema", json_schema: { name: "call_result", schema: strict.schema, strict: true } },
      }, signal);
      const message = completion.choices[0]?.message;
      if (message?.refusal) return { value: null, error: `The model refused to extract call_result: ${message.refusal}` };
      const content = message?.content ?? "";
      const answer = readAnswer(content, strict, input.outputSchema);
      if (answer.errors.length === 0) return { value: answer.value, error: null };
      errors = answer.errors;
      messages.push(
        { role: "assistant", content },
        { role: "user", content: `That answer does not satisfy the schema: ${errors.join("; ")}. Answer again from the transcript, fixing these problems.` },
      );
    }
    return { value: null, error: `The extracted call_result does not satisfy the agent's output_schema (${MAX_ATTEMPTS} attempts): ${errors.join("; ")}` };
  } catch (error) {
    if (signal.aborted) return { value: null, error: `Extracting call_result took longer than ${extractionTimeoutMs} ms` };
    return { value: null, error: `Extracting call_result failed: ${errorText(error)}` };
  }
}

/**
 * One Chat Completions request with the `openai` SDK's retry policy, in plain `fetch`: the SDK
 * (its types are still used) is about 1 MB of the bundle, which every new isolate parses before
 * its first request, for this one call. As the SDK does: up to 2 retries of a failed connection
 * or of a 408, 409, 429 or 5xx answer (unless `x-should-retry` says otherwise), after the wait
 * `retry-after-ms` or `Retry-After` asks for when it is within 60 s, else 0.5 s doubling up to
 * 8 s less up to 25 % jitter; an error reads "<status> <error.message>".
 */
async function createChatCompletion(openai: ExtractionInput["openai"], body: ChatCompletionCreateParamsNonStreaming, signal: AbortSignal): Promise<ChatCompletion> {
  for (let retry = 0; ; retry++) {
    let response: Response;
    try {
      response = await fetch(`${openai.baseUrl}/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${openai.apiKey}`, "content-type": "application/json", accept: "application/json" },
        body: JSON.stringify(body),
        signal,
      });
    } catch (error) {
      if (signal.aborted) throw error;
      if (retry === MAX_RETRIES) throw new Error("Connection error.", { cause: error });
      await sleep(retryDelayMs(retry, undefined), signal);
      continue;
    }
    if (response.ok) return (await response.json()) as ChatCompletion;
    if (retry < MAX_RETRIES && shouldRetry(response)) {
      await response.body?.cancel();
      await sleep(retryDelayMs(retry, response.headers), signal);
      continue;
    }
    throw new Error(await apiErrorMessage(response));
  }
}

const MAX_RETRIES = 2;

function shouldRetry(response: Response): boolean {
  const header = response.headers.get("x-should-retry");
  if (header === "true" || header === "false") return header === "true";
  return [408, 409, 429].includes(response.status) || response.status >= 500;
}

function retryDelayMs(retry: number, headers: Headers | undefined): number {
  const afterMs = parseFloat(headers?.get("retry-after-ms") ?? "");
  let ms = Number.isNaN(afterMs) ? undefined : afterMs;
  const after = headers?.get("retry-after");
  if (after && ms === undefined) ms = Number.isNaN(parseFloat(after)) ? Date.parse(after) - Date.now() : parseFloat(after) * 1000;
  if (ms !== undefined && Number.isFinite(ms) && ms >= 0 && ms <= 60_000) return ms;
  return Math.min(0.5 * 2 ** retry, 8) * (1 - Math.random() * 0.25) * 1000;
}

/** Rejects with the signal's reason when it aborts first. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** The SDK's APIError message: the status and the body's `error.message`, else the body itself. */
async function apiErrorMessage(response: Response): Promise<string> {
  const text = await response.text().catch(() => "");
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const error = isObject(json) ? json.error : undefined;
  const message = isObject(error) && error.message ? (typeof error.message === "string" ? error.message : JSON.stringify(error.message)) : error ? JSON.stringify(error) : json === undefined ? text : undefined;
  return message ? `${response.status} ${message}` : `${response.status} status code (no body)`;
}

/** The answer mapped back to the agent's schema, or what is wrong with it. */
function readAnswer(content: string, strict: StrictOutputSchema, outputSchema: Json): { value: Json; errors: string[] } {
  let value: unknown;
  try {
    value = strict.toAgentValue(JSON.parse(content));
  } catch {
    return { value: {}, errors: ["the answer is not valid JSON"] };
  }
  // Valid means an object: the root of an output_schema is one.
  return { value: value as Json, errors: validateCallResult(outputSchema, value).errors };
}

/**
 * Keywords that constrain values of one JSON type only (JSON Schema 2020-12); `integer` shares
 * `number`'s.
 */
const TYPE_KEYWORDS: Record<string, readonly string[]> = {
  string: ["minLength", "maxLength", "pattern", "format", "contentEncoding", "contentMediaType", "contentSchema"],
  number: ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"],
  array: ["items", "prefixItems", "contains", "minContains", "maxContains", "minItems", "maxItems", "uniqueItems", "unevaluatedItems"],
  object: ["properties", "required", "additionalProperties", "patternProperties", "propertyNames", "minProperties", "maxProperties", "dependentRequired", "dependentSchemas", "unevaluatedProperties"],
};

/** What strict mode supports of those ("Supported properties" in OpenAI's Structured Outputs guide). */
const STRICT_KEYWORDS: Record<string, readonly string[]> = {
  string: ["pattern", "format"],
  number: ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"],
  array: ["minItems", "maxItems"],
};
const STRICT_FORMATS = new Set(["date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"]);

/** Keywords the conversion rebuilds itself. */
const REBUILT = new Set(["type", "enum", "const", "title", "description", "properties", "required", "additionalProperties", "items"]);

/** Keywords that do not change which values are valid, and containers reached only through `$ref`. */
const ANNOTATIONS = new Set(["$schema", "$id", "$anchor", "$dynamicAnchor", "$comment", "$vocabulary", "$defs", "definitions", "default", "examples", "deprecated", "readOnly", "writeOnly"]);

/**
 * An agent's `output_schema` in the strict subset of Structured Outputs, and the way back from an
 * answer to it. Every object lists all its properties in `required` with `additionalProperties:
 * false`; a property the agent did not require becomes nullable (null = not collected). `allOf`
 * and `$ref`s with sibling keywords are merged in, `oneOf` becomes `anyOf`, every `$ref` points
 * into `$defs`, type lists become `anyOf` of single types. Constraints strict mode cannot express
 * are kept in the description for the model (our validation still enforces them). A value of no
 * expressible shape (no type, a map without properties) travels as JSON text.
 */
export class StrictOutputSchema {
  /** The `json_schema.schema` to send. */
  readonly schema: Json;
  private readonly root: Json;
  private readonly lookup: Record<string, unknown>;
  private readonly defs: Json = {};
  private readonly defNames = new Map<unknown, string>();
  /** String nodes that carry a free-form value as JSON text. */
  private readonly jsonText = new WeakSet<object>();
  /** A free-form root travels as JSON text in the `value` property of the object sent. */
  private readonly wrapped: boolean;

  constructor(outputSchema: Json) {
    // dereference annotates the schema it walks; work on a copy.
    this.root = structuredClone(outputSchema);
    this.lookup = dereference(this.root as Schema);
    // The root must be an object without anyOf: a union there is only described.
    let root = this.typed(this.flatten(this.root), "object");
    this.wrapped = this.jsonText.has(root);
    if (this.wrapped) root = { type: "object", properties: { value: root }, required: ["value"], additionalProperties: false };
    this.schema = Object.keys(this.defs).length > 0 ? { ...root, $defs: this.defs } : root;
  }

  /** The agent's value from an answer to `schema`: JSON text parsed back, the root unwrapped. */
  toAgentValue(answer: unknown): unknown {
    const value = this.decode(answer, this.schema);
    return this.wrapped && isObject(value) ? value.value : value;
  }

  private convert(node: unknown): Json {
    if (!isObject(node)) return this.freeForm(node);
    if (typeof node.$ref === "string" && !hasSiblings(node)) return { $ref: this.refTo(node) };
    const flat = this.flatten(node);
    const union = Array.isArray(flat.anyOf) ? flat.anyOf : Array.isArray(flat.oneOf) ? flat.oneOf : undefined;
    if (union) {
      const { anyOf: _anyOf, oneOf: _oneOf, title, description, ...rest } = flat;
      // {A, anyOf: [B, C]} is anyOf: [A∧B, A∧C].
      const constrained = Object.keys(rest).some((key) => !ANNOTATIONS.has(key));
      const branches = union.map((branch) => this.convert(constrained ? mergeSchemas(rest, this.flatten(branch, true)) : branch));
      return { anyOf: branches, ...annotations(title, description) };
    }
    const types = typesOf(flat);
    const single = types.filter((type) => type !== "null");
    if (single.length === 0) return types.includes("null") ? { type: "null" } : this.freeForm(flat);
    const converted = single.length === 1 ? this.typed(flat, single[0]!) : { anyOf: single.map((type) => this.typed(flat, type)) };
    return types.includes("null") ? this.nullable(converted) : converted;
  }

  /** `node` restricted to one JSON type. */
  private typed(node: Json, type: string): Json {
    const family = type === "integer" ? "number" : type;
    const out: Json = { type };
    if (family === "object") {
      const object = this.object(node);
      if (this.jsonText.has(object)) return object;
      Object.assign(out, object);
    }
    if ("const" in node) out.const = node.const;
    else if (Array.isArray(node.enum)) out.enum = node.enum.filter((value) => hasType(value, type));
    if (family === "array") out.items = "items" in node ? this.convert(node.items) : this.freeForm({});
    const unsupported: Json = {};
    for (const [key, value] of Object.entries(node)) {
      if (REBUILT.has(key) || ANNOTATIONS.has(key)) continue;
      const owner = Object.keys(TYPE_KEYWORDS).find((t) => TYPE_KEYWORDS[t]!.includes(key));
      if (owner !== undefined && owner !== family) continue; // constrains other types only
      if (STRICT_KEYWORDS[family]?.includes(key) && (key !== "format" || STRICT_FORMATS.has(value as string))) out[key] = value;
      else unsupported[key] = value;
    }
    const note = Object.keys(unsupported).length > 0 ? `Must also satisfy these JSON Schema keywords: ${JSON.stringify(unsupported)}` : undefined;
    return { ...out, ...annotations(node.title, joinText(node.description, note)) };
  }

  private object(node: Json): Json {
    const properties = isObject(node.properties) ? node.properties : {};
    const required = Array.isArray(node.required) ? node.required.filter((name): name is string => typeof name === "string") : [];
    // A map (no declared properties, any keys) has no strict form.
    if (Object.keys(properties).length === 0 && (node.additionalProperties !== false || "patternProperties" in node)) return this.freeForm(node);
    const names = [...new Set([...Object.keys(properties), ...required])];
    const entries = names.map((name) => {
      const child = this.convert(Object.hasOwn(properties, name) ? properties[name] : (node.additionalProperties ?? {}));
      return [name, required.includes(name) ? child : this.nullable(child)] as const;
    });
    return { type: "object", properties: Object.fromEntries(entries), required: names, additionalProperties: false };
  }

  private freeForm(node: unknown): Json {
    const described = isObject(node) && Object.keys(node).some((key) => key !== "title" && key !== "description");
    const hint = described ? `The value as JSON text, valid against this JSON Schema: ${JSON.stringify(node)}` : "The value as JSON text";
    const out = { type: "string", description: joinText(isObject(node) ? node.description : undefined, hint) };
    this.jsonText.add(out);
    return out;
  }

  private nullable(node: Json): Json {
    if (Array.isArray(node.anyOf)) return node.anyOf.some((branch) => isObject(branch) && branch.type === "null") ? node : { ...node, anyOf: [...node.anyOf, { type: "null" }] };
    if (node.type === "null") return node;
    // The documented form for a single primitive type; anything else gets a null branch.
    const primitive = ["string", "number", "integer", "boolean"].includes(node.type as string);
    if (primitive && !("enum" in node) && !("const" in node) && !this.jsonText.has(node)) return { ...node, type: [node.type, "null"] };
    return { anyOf: [node, { type: "null" }] };
  }

  /** `node` with `allOf` merged in, and its `$ref` when that has siblings (or always, when `inlineRef`). */
  private flatten(node: unknown, inlineRef = false, seen = new Set<unknown>()): Json {
    if (!isObject(node) || seen.has(node)) return {};
    seen.add(node);
    let out = node;
    if (typeof node.$ref === "string" && (inlineRef || hasSiblings(node))) {
      const { $ref: _ref, ...siblings } = node;
      out = mergeSchemas(this.flatten(this.target(node), true, seen), siblings);
    }
    if (Array.isArray(out.allOf)) {
      const { allOf, ...rest } = out;
      out = allOf.reduce<Json>((merged, part) => mergeSchemas(merged, this.flatten(part, true, seen)), rest);
    }
    return out;
  }

  /** A pointer into the strict schema's `$defs` for the target of `node.$ref` (`#` stays the root). */
  private refTo(node: Json): string {
    const target = this.target(node);
    if (target === this.root) return "#";
    let name = this.defNames.get(target);
    if (name === undefined) {
      const base = (node.$ref as string).split(/[/#]/).at(-1)?.replace(/[^A-Za-z0-9_-]/g, "_") || "def";
      const taken = new Set(this.defNames.values());
      name = base;
      for (let n = 2; taken.has(name); n++) name = `${base}_${n}`;
      this.defNames.set(target, name);
      this.defs[name] = this.convert(target);
    }
    return `#/$defs/${name}`;
  }

  private target(node: Json): unknown {
    return this.lookup[(node as { __absolute_ref__?: string }).__absolute_ref__ ?? ""];
  }

  private decode(value: unknown, node: Json): unknown {
    const n = this.resolve(node);
    if (this.jsonText.has(n)) return typeof value === "string" ? parseJsonText(value) : value;
    if (Array.isArray(n.anyOf)) {
      const branch = n.anyOf.find((b): b is Json => isObject(b) && this.fits(value, b));
      return branch ? this.decode(value, branch) : value;
    }
    if (isObject(value) && isObject(n.properties)) {
      const properties = n.properties;
      return Object.fromEntries(Object.entries(value).map(([key, v]) => [key, isObject(properties[key]) ? this.decode(v, properties[key]) : v]));
    }
    if (Array.isArray(value) && isObject(n.items)) return value.map((item) => this.decode(item, n.items as Json));
    return value;
  }

  /** Whether `value` has the shape of an anyOf branch (strict objects have exactly their properties). */
  private fits(value: unknown, node: Json): boolean {
    const n = this.resolve(node);
    if (this.jsonText.has(n)) return typeof value === "string";
    if (Array.isArray(n.anyOf)) return n.anyOf.some((b) => isObject(b) && this.fits(value, b));
    const types = Array.isArray(n.type) ? n.type : [n.type];
    if (!types.some((type) => hasType(value, type as string))) return false;
    if (!isObject(value) || !isObject(n.properties)) return true;
    const keys = Object.keys(n.properties);
    return keys.length === Object.keys(value).length && keys.every((key) => Object.hasOwn(value, key));
  }

  private resolve(node: Json): Json {
    if (node.$ref === "#") return this.schema;
    if (typeof node.$ref === "string") return this.defs[node.$ref.slice("#/$defs/".length)] as Json;
    return node;
  }
}

function hasSiblings(node: Json): boolean {
  return Object.keys(node).some((key) => key !== "$ref" && !ANNOTATIONS.has(key));
}

/** The JSON types a schema allows: its `type`, else those of its enum/const values, else those its keywords constrain. */
function typesOf(node: Json): string[] {
  const values = "const" in node ? [node.const] : Array.isArray(node.enum) ? node.enum : undefined;
  const declared = typeof node.type === "string" ? [node.type] : Array.isArray(node.type) ? node.type.filter((t): t is string => typeof t === "string") : undefined;
  const types = declared ?? (values ? [...new Set(values.map(valueType))] : Object.keys(TYPE_KEYWORDS).filter((type) => TYPE_KEYWORDS[type]!.some((key) => key in node)));
  return values ? types.filter((type) => values.some((value) => hasType(value, type))) : types;
}

function valueType(value: unknown): string {
  if (value === null) return "null";
  return Array.isArray(value) ? "array" : typeof value;
}

function hasType(value: unknown, type: string): boolean {
  if (type === "integer") return Number.isInteger(value);
  return valueType(value) === type;
}

function annotations(title: unknown, description: unknown): Json {
  return { ...(typeof title === "string" ? { title } : {}), ...(typeof description === "string" && description !== "" ? { description } : {}) };
}

function joinText(...parts: unknown[]): string {
  return parts.filter((part): part is string => typeof part === "string" && part !== "").join("\n");
}

/** Lenient: a model that wrote a bare word instead of a JSON string meant the word. */
function parseJsonText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
