import { dereference, ignoredKeyword, schemaArrayKeyword, schemaMapKeyword, Validator, type OutputUnit, type Schema, type SchemaDraft } from "@cfworker/json-schema";
import { isSafePattern } from "redos-detector";
import type { ErrorDetail } from "../errors";
import { JSON_SCHEMA_2020_12_META } from "./json-schema-2020-12";

/** The dialect agents' output schemas are checked against; validate call results with the same. */
export const OUTPUT_SCHEMA_DRAFT: SchemaDraft = "2020-12";

/**
 * What an output schema may ask for, so that sampling, converting and validating its values stays
 * small and fast (README, "Limits"). Checking a pattern for backtracking costs up to ~100 ms, hence
 * the pattern count.
 */
export const OUTPUT_SCHEMA_LIMITS = {
  bytes: 32 * 1024,
  depth: 10,
  patternLength: 256,
  patterns: 16,
  keywordMaximums: { minItems: 100, maxItems: 1000, minContains: 100, maxContains: 1000, minLength: 1000, maxLength: 10_000, minProperties: 100, maxProperties: 1000 },
} as const;
const { bytes: MAX_BYTES, depth: MAX_DEPTH } = OUTPUT_SCHEMA_LIMITS;
/** redos-detector's work is bounded in steps, not time: a Worker's clock stands still while it computes. */
const REDOS_MAX_STEPS = 1000;
const ROOT = "output_schema";

const metaValidator = new Validator(JSON_SCHEMA_2020_12_META, OUTPUT_SCHEMA_DRAFT, false);

type SchemaObject = Record<string, unknown>;

/**
 * Checks an agent's `output_schema`: a valid JSON Schema (2020-12) whose root is `type: "object"`,
 * within OUTPUT_SCHEMA_LIMITS, every `$ref` pointing inside the schema (remote ones are never
 * fetched) with no cycle among them, no `$anchor` declared twice, and no pattern a ReDoS checker
 * flags. Returns what is wrong, with paths under `output_schema`; empty when the schema is fine.
 */
export function checkOutputSchema(schema: unknown): ErrorDetail[] {
  if (!isObject(schema)) return [{ path: ROOT, message: 'must be a JSON Schema object with "type": "object"' }];
  const bytes = new TextEncoder().encode(JSON.stringify(schema)).length;
  if (bytes > MAX_BYTES) return [{ path: ROOT, message: `must be at most ${MAX_BYTES} bytes serialized (32 KB); it is ${bytes}` }];
  // Before the meta-schema check, whose recursion this bounds.
  const tooDeep = findTooDeep(schema, [], 0);
  if (tooDeep) return [{ path: toPath(tooDeep), message: `is nested more than ${MAX_DEPTH} subschemas deep` }];

  const details = metaSchemaErrors(schema);
  if (schema.type !== "object" && !details.some((d) => d.path === `${ROOT}.type`)) {
    details.unshift({ path: `${ROOT}.type`, message: `${schema.type === undefined ? "is required and " : ""}must be "object": the root describes the object extracted from the call` });
  }
  return details.length > 0 ? details : [...refErrors(schema), ...boundErrors(schema)];
}

/** A JSON object (not null, not an array). */
export function isObject(value: unknown): value is SchemaObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Two schemas as one: later keys win, except that `properties` are combined and `required` lists joined. */
export function mergeSchemas(a: SchemaObject, b: SchemaObject): SchemaObject {
  const out: SchemaObject = { ...a, ...b };
  if (isObject(a.properties) && isObject(b.properties)) out.properties = { ...a.properties, ...b.properties };
  if (Array.isArray(a.required) && Array.isArray(b.required)) out.required = [...new Set([...a.required, ...b.required])];
  return out;
}

function toPath(segments: readonly string[]): string {
  return [ROOT, ...segments].join(".");
}

/** The subschemas directly under `schema`, found the way @cfworker/json-schema's dereference walks them. */
function* subschemas(schema: SchemaObject, path: string[]): Generator<[SchemaObject, string[]]> {
  for (const [key, value] of Object.entries(schema)) {
    if (ignoredKeyword[key]) continue;
    if (Array.isArray(value)) {
      if (!schemaArrayKeyword[key]) continue;
      for (const [i, item] of value.entries()) if (isObject(item)) yield [item, [...path, key, String(i)]];
    } else if (schemaMapKeyword[key]) {
      if (isObject(value)) for (const [name, item] of Object.entries(value)) if (isObject(item)) yield [item, [...path, key, name]];
    } else if (isObject(value)) {
      yield [value, [...path, key]];
    }
  }
}

function findTooDeep(schema: SchemaObject, path: string[], depth: number): string[] | undefined {
  for (const [child, childPath] of subschemas(schema, path)) {
    if (depth + 1 > MAX_DEPTH) return childPath;
    const found = findTooDeep(child, childPath, depth + 1);
    if (found) return found;
  }
  return undefined;
}

/** Wrapper keywords whose errors only say "a subschema had errors"; the assertions inside say what. */
const APPLICATORS = new Set(["$ref", "properties", "additionalProperties", "patternProperties", "propertyNames", "items", "prefixItems", "anyOf", "allOf", "oneOf"]);

function metaSchemaErrors(schema: SchemaObject): ErrorDetail[] {
  const leaves = metaValidator.validate(schema).errors.filter((e) => !APPLICATORS.has(e.keyword));
  // A failure at a location that encloses another one is only its consequence: keep the innermost.
  const innermost = leaves.filter((e) => !leaves.some((other) => other.instanceLocation.startsWith(`${e.instanceLocation}/`)));
  const byLocation = new Map<string, OutputUnit[]>();
  for (const e of innermost) byLocation.set(e.instanceLocation, [...(byLocation.get(e.instanceLocation) ?? []), e]);

  const details: ErrorDetail[] = [];
  for (const [location, units] of byLocation) {
    const segments = location
      .split("/")
      .slice(1)
      .map((s) => decodeURIComponent(s).replace(/~1/g, "/").replace(/~0/g, "~"));
    for (const message of describe(units, segments.at(-1))) details.push({ path: toPath(segments), message });
  }
  return details;
}

/** Plain-language messages for the assertions the meta-schema makes. */
function describe(units: OutputUnit[], key: string | undefined): string[] {
  // cfworker says `Instance type "string" is invalid. Expected "object", "boolean".`
  const expected = units.filter((u) => u.keyword === "type").flatMap((u) => [...(u.error.split("Expected")[1] ?? "").matchAll(/"(\w+)"/g)].map((m) => m[1] ?? ""));
  const types = [...new Set(expected)];
  const assertions = units.filter((u) => u.keyword !== "type" && u.keyword !== "enum");
  // `type` is one of the simple types (the enum) or an array of them. When the array branch got
  // past its type check, its own failures say what is wrong; otherwise the enum does.
  const enumUnit = units.find((u) => u.keyword === "enum");
  if (enumUnit && assertions.length === 0) {
    const allowed = JSON.parse(enumUnit.error.slice("Instance does not match any of ".length, -1)) as unknown[];
    return [`must be one of ${allowed.map((v) => JSON.stringify(v)).join(", ")}${types.includes("array") ? " (or an array of them)" : ""}`];
  }
  const messages = new Set<string>();
  if (types.length > 0 && !enumUnit) messages.add(`must be of type ${types.length > 1 ? `${types.slice(0, -1).join(", ")} or ${types.at(-1)}` : types[0]}`);
  for (const unit of assertions) {
    if (unit.keyword === "format") messages.add(FORMAT_MESSAGES[unit.error.match(/format "(.+)"/)?.[1] ?? ""] ?? unit.error);
    else if (unit.keyword === "pattern") messages.add(key === "$id" ? "must not have a fragment (name subschemas with $anchor)" : "must start with a letter or _ followed by letters, digits, -, . or _");
    else if (unit.keyword === "minimum") messages.add("must not be negative");
    else if (unit.keyword === "exclusiveMinimum") messages.add("must be greater than 0");
    else if (unit.keyword === "minItems") messages.add("must not be empty");
    else if (unit.keyword === "uniqueItems") messages.add("must not repeat an item");
    else messages.add(unit.error);
  }
  return [...messages];
}

const FORMAT_MESSAGES: Record<string, string> = {
  regex: "must be a valid regular expression (ECMA-262, unicode mode)",
  uri: "must be an absolute URI",
  "uri-reference": "must be a URI reference",
};

/**
 * Every `$ref` must resolve inside the schema (we never fetch, so a remote one cannot work), and no
 * chain of them may come back to where it started: sampling, the strict conversion and validation
 * all follow refs, so a recursive schema is refused outright. An `$anchor` names one subschema.
 */
function refErrors(schema: SchemaObject): ErrorDetail[] {
  // dereference annotates the schema it walks; keep the caller's object as it was.
  const copy = structuredClone(schema) as Schema;
  let lookup: Record<string, Schema | boolean>;
  try {
    lookup = dereference(copy);
  } catch {
    // dereference throws when two subschemas claim the same $id.
    return [{ path: ROOT, message: "declares the same $id or $anchor twice" }];
  }
  const details: ErrorDetail[] = [];
  const paths = new Map<SchemaObject, string[]>();
  const anchors = new Map<string, string[]>();
  const index = (node: SchemaObject, path: string[], resource: string) => {
    paths.set(node, path);
    const scope = typeof node.$id === "string" ? node.$id : resource;
    if (typeof node.$anchor === "string") {
      const first = anchors.get(`${scope}#${node.$anchor}`);
      if (first) details.push({ path: toPath([...path, "$anchor"]), message: `repeats the $anchor ${JSON.stringify(node.$anchor)} of ${toPath(first)}` });
      else anchors.set(`${scope}#${node.$anchor}`, path);
    }
    const ref = node.$ref;
    if (typeof ref === "string" && refTarget(node, lookup) === undefined) {
      const message = /^https?:/i.test(ref)
        ? "must point inside this schema (e.g. #/$defs/name): remote references are never fetched"
        : "does not point to a subschema of this schema";
      details.push({ path: toPath([...path, "$ref"]), message });
    }
    for (const [child, childPath] of subschemas(node, path)) index(child, childPath, scope);
  };
  index(copy, [], "");
  if (details.length > 0) return details;

  // Depth-first over containment and $ref edges: reaching a subschema still being walked closes a
  // cycle. Containment alone is a tree, so the cycle holds a $ref: the latest one walked is named.
  const state = new Map<SchemaObject, "walking" | "done">();
  const refsWalked: SchemaObject[] = [];
  const reported = new Set<SchemaObject>();
  const walk = (node: SchemaObject) => {
    state.set(node, "walking");
    const target = refTarget(node, lookup);
    const next = [...[...subschemas(node, [])].map(([child]) => [child, false] as const), ...(isObject(target) ? [[target, true] as const] : [])];
    for (const [child, viaRef] of next) {
      if (viaRef) refsWalked.push(node);
      const seen = state.get(child);
      if (seen === "walking") {
        const closing = refsWalked.at(-1)!;
        if (!reported.has(closing)) {
          reported.add(closing);
          details.push({ path: toPath([...paths.get(closing)!, "$ref"]), message: "makes a cycle of $refs that leads back here: recursive schemas are not supported" });
        }
      } else if (seen === undefined) {
        walk(child);
      }
      if (viaRef) refsWalked.pop();
    }
    state.set(node, "done");
  };
  walk(copy);
  return details;
}

function refTarget(node: SchemaObject, lookup: Record<string, Schema | boolean>): unknown {
  return typeof node.$ref === "string" ? lookup[node.__absolute_ref__ as string] : undefined;
}

/** Numbers and patterns that would make a value huge to build or slow to check. */
function boundErrors(schema: SchemaObject): ErrorDetail[] {
  const details: ErrorDetail[] = [];
  const maximums: Record<string, number> = OUTPUT_SCHEMA_LIMITS.keywordMaximums;
  let patterns = 0;
  const checkPattern = (pattern: string, path: string[]) => {
    patterns += 1;
    const problem =
      patterns > OUTPUT_SCHEMA_LIMITS.patterns
        ? `is one pattern too many: a schema may have at most ${OUTPUT_SCHEMA_LIMITS.patterns} (pattern and patternProperties keys)`
        : patternProblem(pattern);
    if (problem) details.push({ path: toPath(path), message: problem });
  };
  const visit = (node: SchemaObject, path: string[]) => {
    for (const [keyword, maximum] of Object.entries(maximums)) {
      const value = node[keyword];
      if (typeof value === "number" && value > maximum) details.push({ path: toPath([...path, keyword]), message: `must be at most ${maximum}` });
    }
    if (typeof node.pattern === "string") checkPattern(node.pattern, [...path, "pattern"]);
    if (isObject(node.patternProperties)) for (const key of Object.keys(node.patternProperties)) checkPattern(key, [...path, "patternProperties", key]);
    for (const [child, childPath] of subschemas(node, path)) visit(child, childPath);
  };
  visit(schema, []);
  return details;
}

/** Why a (syntactically valid) pattern is refused, or null. */
function patternProblem(pattern: string): string | null {
  if (pattern.length > OUTPUT_SCHEMA_LIMITS.patternLength) return `must be at most ${OUTPUT_SCHEMA_LIMITS.patternLength} characters long; it is ${pattern.length}`;
  const advice = "avoid repeated groups whose parts can match the same text, such as (.+)+, (a|a)* or .*.*";
  try {
    const result = isSafePattern(pattern, { unicode: true, maxSteps: REDOS_MAX_STEPS });
    if (result.safe) return null;
    if (result.error === "hitMaxSteps" || result.error === "timedOut") return `is too complex to be shown free of catastrophic backtracking: ${advice}`;
    return `can cause catastrophic backtracking (matching time that explodes with the text's length): ${advice}`;
  } catch {
    return "uses syntax the catastrophic backtracking check cannot analyse (e.g. named groups): write it without";
  }
}
