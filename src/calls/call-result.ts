import { schemaArrayKeyword, schemaKeyword, schemaMapKeyword, Validator, type Schema } from "@cfworker/json-schema";
import type { CallResult, TranscriptTurn } from "./call";
import { checkOutputSchema, isObject, mergeSchemas, OUTPUT_SCHEMA_DRAFT } from "../lib/json-schema";

/** `call_result` against an agent's `output_schema` (API.md: "keys not collected are null"). */

type Json = Record<string, unknown>;

/** The most a `call_result` may weigh serialized: it is stored, served and sent in webhooks. */
export const CALL_RESULT_MAX_BYTES = 64 * 1024;

const tooLarge = (what: string) => ({ value: null, error: `The call_result is over ${CALL_RESULT_MAX_BYTES / 1024} KB serialized (${what}); the agent's output_schema asks for too much` });

/**
 * How a call's end gets its `call_result` from any driver, simulated or live: a schema today's checks refuse
 * (an agent stored before they existed) is not used, since sampling, converting or validating with
 * it may never finish; a result over CALL_RESULT_MAX_BYTES is dropped. Either gives null with why.
 */
export async function boundedCallResult(schema: Json, extract: () => CallResult | Promise<CallResult>): Promise<CallResult> {
  const refused = checkOutputSchema(schema);
  if (refused.length > 0) return { value: null, error: `The agent's output_schema cannot be used: ${refused.map((d) => `${d.path} ${d.message}`).join("; ")}` };
  const result = await extract();
  if (result.value === null) return result;
  const bytes = new TextEncoder().encode(JSON.stringify(result.value)).length;
  return bytes > CALL_RESULT_MAX_BYTES ? tooLarge(`${bytes} bytes`) : result;
}

/** The transcript as the summary webhook and the extraction model read it: one "AI:" / "Customer:" line a turn. */
export function transcriptText(turns: TranscriptTurn[]): string {
  return turns.map((turn) => `${turn.role === "agent" ? "AI" : "Customer"}: ${turn.text}`).join("\n");
}

export interface CallResultValidation {
  valid: boolean;
  /** "at /path: what is wrong", innermost failures first. */
  errors: string[];
}

/** Keywords whose errors only say that something inside failed; the assertions inside say what. */
const APPLICATORS = new Set(["$ref", "properties", "patternProperties", "items", "prefixItems", "anyOf", "allOf", "oneOf"]);

export function validateCallResult(schema: Record<string, unknown>, value: unknown): CallResultValidation {
  const result = new Validator(relaxedSchema(schema) as Schema, OUTPUT_SCHEMA_DRAFT, false).validate(value);
  const leaves = result.errors.filter((e) => !APPLICATORS.has(e.keyword));
  const errors = (leaves.length > 0 ? leaves : result.errors).map((e) => `at ${e.instanceLocation.slice(1) || "/"}: ${e.error}`);
  return { valid: result.valid, errors: [...new Set(errors)] };
}

const escapeSegment = (segment: string) => segment.replace(/~/g, "~0").replace(/\//g, "~1");

/**
 * A copy of `schema` where each property an object does not require also accepts null: it becomes
 * `{anyOf: [{type: "null"}, <original>]}`. Local `$ref` pointers that ran through a wrapped
 * property are rewritten to follow it into `anyOf/1`.
 */
export function relaxedSchema(schema: Record<string, unknown>): Json {
  const wrapped = new Set<string>();
  const relaxed = relaxNode(schema, "", wrapped) as Json;
  return rewriteRefs(relaxed, wrapped) as Json;
}

function relaxNode(node: unknown, pointer: string, wrapped: Set<string>): unknown {
  if (!isObject(node)) return node;
  const required = Array.isArray(node.required) ? node.required : [];
  const out: Json = {};
  for (const [key, value] of Object.entries(node)) {
    const at = `${pointer}/${escapeSegment(key)}`;
    if (Array.isArray(value) && Object.hasOwn(schemaArrayKeyword, key)) {
      out[key] = value.map((item, i) => relaxNode(item, `${at}/${i}`, wrapped));
    } else if (isObject(value) && Object.hasOwn(schemaMapKeyword, key)) {
      out[key] = Object.fromEntries(
        Object.entries(value).map(([name, child]) => {
          const childPointer = `${at}/${escapeSegment(name)}`;
          const relaxed = relaxNode(child, childPointer, wrapped);
          if (key !== "properties" || required.includes(name)) return [name, relaxed];
          wrapped.add(childPointer);
          return [name, { anyOf: [{ type: "null" }, relaxed] }];
        }),
      );
    } else if (Object.hasOwn(schemaKeyword, key)) {
      out[key] = relaxNode(value, at, wrapped);
    } else {
      out[key] = value;
    }
  }
  return out;
}

function rewriteRefs(node: unknown, wrapped: Set<string>): unknown {
  if (Array.isArray(node)) return node.map((item) => rewriteRefs(item, wrapped));
  if (!isObject(node)) return node;
  const out: Json = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === "$ref" && typeof value === "string" && value.startsWith("#/")) out[key] = followWrapped(value, wrapped);
    else if (key === "const" || key === "enum" || key === "default" || key === "examples") out[key] = value;
    else out[key] = rewriteRefs(value, wrapped);
  }
  return out;
}

function followWrapped(ref: string, wrapped: Set<string>): string {
  const rewritten: string[] = [];
  let original = "";
  for (const raw of ref.slice(2).split("/")) {
    original += `/${decodeURIComponent(raw)}`;
    rewritten.push(raw);
    if (wrapped.has(original)) rewritten.push("anyOf", "1");
  }
  return `#/${rewritten.join("/")}`;
}

/**
 * The simulator's `call_result`: what a cooperative customer would have given. Required keys get a
 * value that fits their schema, optional ones are null (not collected), booleans are true. Null
 * when the sample does not satisfy the schema (e.g. a `pattern` it cannot meet).
 */
export function sampleCallResult(schema: Record<string, unknown>): CallResult {
  let value: unknown;
  try {
    value = new Sampler(schema).sample(schema, "", 0, 0);
  } catch (error) {
    if (error instanceof SampleTooLarge) return tooLarge(`more than ${CALL_RESULT_MAX_BYTES} values`);
    throw error;
  }
  const check = validateCallResult(schema, value);
  if (check.valid && isObject(value)) return { value, error: null };
  return { value: null, error: `The simulated call_result does not satisfy the agent's output_schema: ${check.errors.join("; ")}` };
}

const MAX_DEPTH = 32;

/** Every value serializes to at least one byte: past CALL_RESULT_MAX_BYTES values, building more is wasted. */
class SampleTooLarge extends Error {}

class Sampler {
  private values = 0;

  constructor(private readonly root: Json) {}

  /** `variant` makes the items of one array differ (uniqueItems). */
  sample(schema: unknown, name: string, variant: number, depth: number): unknown {
    if (++this.values > CALL_RESULT_MAX_BYTES) throw new SampleTooLarge();
    if (!isObject(schema) || depth > MAX_DEPTH) return null;
    const s = this.flatten(schema, depth);
    if ("const" in s) return s.const;
    if (Array.isArray(s.enum) && s.enum.length > 0) return s.enum[variant % s.enum.length];
    const branches = Array.isArray(s.anyOf) ? s.anyOf : Array.isArray(s.oneOf) ? s.oneOf : undefined;
    if (branches) {
      const branch = branches.find((b) => isObject(b) && b.type !== "null") ?? branches[0];
      const { anyOf: _anyOf, oneOf: _oneOf, ...rest } = s;
      return this.sample(mergeSchemas(rest, isObject(branch) ? branch : {}), name, variant, depth + 1);
    }
    switch (typeOf(s)) {
      case "boolean":
        return true;
      case "integer":
        return sampleNumber(s, true, variant);
      case "number":
        return sampleNumber(s, false, variant);
      case "string":
        return sampleString(s, name, variant);
      case "array":
        return this.sampleArray(s, name, depth);
      case "object":
        return this.sampleObject(s, depth);
      default:
        return null;
    }
  }

  /** Resolves local `$ref`s and folds `allOf` into one schema. */
  private flatten(schema: Json, depth: number): Json {
    if (depth > MAX_DEPTH) return {};
    let s = schema;
    if (typeof s.$ref === "string") {
      const { $ref, ...rest } = s;
      const target = this.resolve($ref);
      s = mergeSchemas(isObject(target) ? this.flatten(target, depth + 1) : {}, rest);
    }
    if (Array.isArray(s.allOf)) {
      const { allOf, ...rest } = s;
      s = allOf.reduce<Json>((acc, part) => mergeSchemas(acc, isObject(part) ? this.flatten(part, depth + 1) : {}), rest);
    }
    return s;
  }

  private resolve(ref: string): unknown {
    if (ref === "#") return this.root;
    if (!ref.startsWith("#/")) return undefined;
    let node: unknown = this.root;
    for (const raw of ref.slice(2).split("/")) {
      const segment = decodeURIComponent(raw).replace(/~1/g, "/").replace(/~0/g, "~");
      node = isObject(node) ? node[segment] : Array.isArray(node) ? node[Number(segment)] : undefined;
    }
    return node;
  }

  private sampleObject(s: Json, depth: number): Json {
    const properties = isObject(s.properties) ? s.properties : {};
    const required = Array.isArray(s.required) ? s.required.filter((r): r is string => typeof r === "string") : [];
    const out: Json = {};
    for (const [name, child] of Object.entries(properties)) out[name] = required.includes(name) ? this.sample(child, name, 0, depth + 1) : null;
    for (const name of required) {
      if (!(name in out)) out[name] = this.sample(isObject(s.additionalProperties) ? s.additionalProperties : {}, name, 0, depth + 1);
    }
    return out;
  }

  private sampleArray(s: Json, name: string, depth: number): unknown[] {
    const prefix = Array.isArray(s.prefixItems) ? s.prefixItems : [];
    const count = typeof s.minItems === "number" ? s.minItems : 0;
    return Array.from({ length: count }, (_, i) => this.sample(prefix[i] ?? (isObject(s.items) ? s.items : {}), name, i, depth + 1));
  }
}

function typeOf(s: Json): string | undefined {
  const types = Array.isArray(s.type) ? s.type : typeof s.type === "string" ? [s.type] : [];
  const first = types.find((t) => t !== "null") ?? types[0];
  if (typeof first === "string") return first;
  if ("properties" in s || "required" in s || "additionalProperties" in s) return "object";
  if ("items" in s || "prefixItems" in s || "minItems" in s) return "array";
  if ("format" in s || "minLength" in s || "maxLength" in s || "pattern" in s) return "string";
  if ("minimum" in s || "maximum" in s || "exclusiveMinimum" in s || "exclusiveMaximum" in s || "multipleOf" in s) return "number";
  return undefined;
}

const num = (value: unknown): number | undefined => (typeof value === "number" && Number.isFinite(value) ? value : undefined);

function sampleNumber(s: Json, integer: boolean, variant: number): number {
  const multipleOf = num(s.multipleOf);
  const step = multipleOf !== undefined && multipleOf > 0 ? multipleOf : integer ? 1 : undefined;
  const exclusiveMin = num(s.exclusiveMinimum);
  const exclusiveMax = num(s.exclusiveMaximum);
  const lowers = [num(s.minimum), exclusiveMin].filter((v) => v !== undefined);
  const uppers = [num(s.maximum), exclusiveMax].filter((v) => v !== undefined);
  const lower = lowers.length > 0 ? Math.max(...lowers) : undefined;
  const upper = uppers.length > 0 ? Math.min(...uppers) : undefined;
  // A small positive count reads naturally ("1 person"), unless the bounds say otherwise.
  let value = (lower ?? (upper !== undefined ? Math.min(1, upper) : 1)) + variant * (step ?? 1);
  if (step !== undefined) value = Math.ceil(value / step) * step;
  if (exclusiveMin !== undefined && value <= exclusiveMin) value = step !== undefined ? value + step : upper !== undefined ? (value + upper) / 2 : value + 1;
  if (exclusiveMax !== undefined && value >= exclusiveMax) value = step !== undefined ? value - step : lower !== undefined ? (value + lower) / 2 : value - 1;
  return value;
}

function sampleString(s: Json, name: string, variant: number): string {
  const today = new Date().toISOString();
  const formats: Record<string, string> = {
    "date-time": today,
    date: today.slice(0, 10),
    time: "14:00:00Z",
    email: "customer@example.com",
    uri: "https://example.com/",
    "uri-reference": "https://example.com/",
    uuid: crypto.randomUUID(),
  };
  const formatted = typeof s.format === "string" ? formats[s.format] : undefined;
  if (formatted !== undefined) return formatted;
  const base = `simulated ${name.replace(/[_-]+/g, " ").trim() || "value"}${variant > 0 ? ` ${variant + 1}` : ""}`;
  const minLength = num(s.minLength) ?? 0;
  const maxLength = num(s.maxLength);
  const chars = Array.from(base.padEnd(minLength, "."));
  return (maxLength !== undefined ? chars.slice(0, maxLength) : chars).join("");
}
