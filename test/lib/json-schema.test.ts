import { Validator, type Schema } from "@cfworker/json-schema";
import { describe, expect, it } from "vitest";
import { checkOutputSchema, OUTPUT_SCHEMA_DRAFT } from "../../src/lib/json-schema";

const QUICKSTART_SCHEMA = {
  type: "object",
  required: ["confirmed"],
  properties: {
    confirmed: { type: "boolean", description: "Whether the patient confirmed the appointment" },
    reschedule_request: { type: "string", description: "Preferred reschedule time if they want to change it" },
  },
};

/** An object schema with `levels` nested object properties under the root. */
function nested(levels: number): Record<string, unknown> {
  let schema: Record<string, unknown> = { type: "string" };
  for (let i = 0; i < levels; i++) schema = { type: "object", properties: { n: schema } };
  return schema;
}

describe("checkOutputSchema accepts", () => {
  it.each([
    ["the quickstart's schema", QUICKSTART_SCHEMA],
    ["a bare object schema", { type: "object" }],
    [
      "local $refs to $defs, to another property and to an anchor",
      {
        $schema: "https://json-schema.org/draft/2020-12/schema",
        type: "object",
        $defs: { slot: { type: "string", format: "date-time" }, tag: { $anchor: "tag", type: "string", enum: ["a", "b"] } },
        properties: { when: { $ref: "#/$defs/slot" }, also: { $ref: "#/properties/when" }, tag: { $ref: "#tag" } },
        additionalProperties: false,
      },
    ],
    ["an absolute $ref to the schema's own $id", { $id: "https://example.com/answer", type: "object", $defs: { s: { type: "string" } }, properties: { a: { $ref: "https://example.com/answer#/$defs/s" } } }],
    [
      "the 2020-12 keywords",
      {
        type: "object",
        properties: {
          pair: { type: "array", prefixItems: [{ type: "string" }, { type: "integer", minimum: 0 }], items: false },
          choice: { anyOf: [{ type: "null" }, { type: "string", pattern: "^[a-z]+$", minLength: 1 }] },
          count: { type: ["integer", "null"], multipleOf: 1, exclusiveMaximum: 10 },
        },
        dependentRequired: { pair: ["choice"] },
        unevaluatedProperties: false,
      },
    ],
    ["subschemas nested 10 deep", nested(10)],
    ["a $ref to a boolean subschema", { type: "object", $defs: { anything: true }, properties: { a: { $ref: "#/$defs/anything" } } }],
  ])("%s", (_case, schema) => {
    expect(checkOutputSchema(schema)).toEqual([]);
  });
});

describe("checkOutputSchema refuses", () => {
  it.each([
    ["a string", "object"],
    ["an array", [{ type: "object" }]],
    ["null", null],
    ["the boolean schema true", true],
  ])("%s as the whole schema", (_case, schema) => {
    expect(checkOutputSchema(schema)).toEqual([{ path: "output_schema", message: 'must be a JSON Schema object with "type": "object"' }]);
  });

  it.each([
    ["an array schema", { type: "array", items: { type: "string" } }, 'must be "object"'],
    ["a nullable object schema", { type: ["object", "null"] }, 'must be "object"'],
    ["a schema without type", { properties: { a: { type: "string" } } }, 'is required and must be "object"'],
  ])("%s at the root", (_case, schema, message) => {
    expect(checkOutputSchema(schema)).toEqual([{ path: "output_schema.type", message: expect.stringContaining(message) }]);
  });

  it.each([
    ["a misspelt type", { properties: { confirmed: { type: "strnig" } } }, "output_schema.properties.confirmed.type", 'must be one of "array", "boolean", "integer", "null", "number", "object", "string" (or an array of them)'],
    ["a misspelt type in a list", { properties: { a: { type: ["string", "nul"] } } }, "output_schema.properties.a.type.1", 'must be one of "array", "boolean", "integer", "null", "number", "object", "string"'],
    ["a repeated type", { properties: { a: { type: ["string", "string"] } } }, "output_schema.properties.a.type", "must not repeat an item"],
    ["properties as an array", { properties: [{ type: "string" }] }, "output_schema.properties", "must be of type object"],
    ["a property schema that is a string", { properties: { a: "string" } }, "output_schema.properties.a", "must be of type object or boolean"],
    ["required as a string", { required: "confirmed" }, "output_schema.required", "must be of type array"],
    ["a required entry that is not a string", { required: ["a", 1] }, "output_schema.required.1", "must be of type string"],
    ["a pattern that is not a regular expression", { properties: { a: { type: "string", pattern: "([a-z" } } }, "output_schema.properties.a.pattern", "must be a valid regular expression (ECMA-262, unicode mode)"],
    ["a patternProperties key that is not a regular expression", { patternProperties: { "[": { type: "string" } } }, "output_schema.patternProperties.[", "must be a valid regular expression (ECMA-262, unicode mode)"],
    ["a negative minLength", { properties: { a: { type: "string", minLength: -1 } } }, "output_schema.properties.a.minLength", "must not be negative"],
    ["a fractional maxItems", { properties: { a: { type: "array", maxItems: 1.5 } } }, "output_schema.properties.a.maxItems", "must be of type integer"],
    ["multipleOf 0", { properties: { a: { type: "number", multipleOf: 0 } } }, "output_schema.properties.a.multipleOf", "must be greater than 0"],
    ["an empty anyOf", { properties: { a: { anyOf: [] } } }, "output_schema.properties.a.anyOf", "must not be empty"],
    ["draft-07 tuple items (2020-12 uses prefixItems)", { properties: { a: { type: "array", items: [{ type: "string" }] } } }, "output_schema.properties.a.items", "must be of type object or boolean"],
    ["an $id with a fragment", { $id: "https://example.com/s#here" }, "output_schema.$id", "must not have a fragment (name subschemas with $anchor)"],
    ["an anchor starting with a digit", { $defs: { a: { $anchor: "1st" } } }, "output_schema.$defs.a.$anchor", "must start with a letter or _ followed by letters, digits, -, . or _"],
    ["a property name with a dot and a slash", { properties: { "a.b/c": { type: 5 } } }, "output_schema.properties.a.b/c.type", expect.stringContaining("must be one of")],
  ])("%s", (_case, schema, path, message) => {
    expect(checkOutputSchema({ type: "object", ...schema })).toEqual([{ path, message }]);
  });

  it("reports every problem at once", () => {
    const details = checkOutputSchema({ type: "array", required: "a", properties: { b: { type: "text" } } });
    expect(details.map((d) => d.path).sort()).toEqual(["output_schema.properties.b.type", "output_schema.required", "output_schema.type"]);
  });

  it.each([
    ["http", "http://example.com/schema.json"],
    ["https", "https://example.com/schema.json#/$defs/slot"],
  ])("a remote %s $ref", (_case, ref) => {
    expect(checkOutputSchema({ type: "object", properties: { when: { $ref: ref } } })).toEqual([
      { path: "output_schema.properties.when.$ref", message: "must point inside this schema (e.g. #/$defs/name): remote references are never fetched" },
    ]);
  });

  it.each([
    ["a missing definition", "#/$defs/missing"],
    ["a relative file", "slot.json"],
    ["an unknown anchor", "#nowhere"],
  ])("a $ref to %s", (_case, ref) => {
    expect(checkOutputSchema({ type: "object", $defs: { slot: { type: "string" } }, properties: { when: { items: { $ref: ref } } } })).toEqual([
      { path: "output_schema.properties.when.items.$ref", message: "does not point to a subschema of this schema" },
    ]);
  });

  it("two subschemas with the same $id", () => {
    expect(checkOutputSchema({ type: "object", $defs: { a: { $id: "https://example.com/x" }, b: { $id: "https://example.com/x" } } })).toEqual([
      { path: "output_schema", message: "declares the same $id or $anchor twice" },
    ]);
  });

  it("subschemas nested 11 deep, naming the first one too deep", () => {
    const path = ["output_schema", ...Array(11).fill("properties.n")].join(".");
    expect(checkOutputSchema(nested(11))).toEqual([{ path, message: "is nested more than 10 subschemas deep" }]);
  });

  it("counts $defs, items and anyOf levels too", () => {
    let schema: Record<string, unknown> = { type: "string" };
    for (let i = 0; i < 4; i++) schema = { anyOf: [{ items: schema }] };
    // $defs.deep (1), anyOf.0 (2), then 4 × anyOf.0.items: the string schema is 10 deep.
    expect(checkOutputSchema({ type: "object", $defs: { deep: { anyOf: [schema] } } })).toEqual([]);
    expect(checkOutputSchema({ type: "object", $defs: { deep: { not: { anyOf: [schema] } } } })).toEqual([
      { path: `output_schema.$defs.deep.not.anyOf.0${".anyOf.0.items".repeat(4)}`, message: "is nested more than 10 subschemas deep" },
    ]);
  });

  it("a schema over 32 KB serialized, even if otherwise valid", () => {
    const base = JSON.stringify({ type: "object", description: "" }).length;
    expect(checkOutputSchema({ type: "object", description: "x".repeat(32 * 1024 - base) })).toEqual([]);
    expect(checkOutputSchema({ type: "object", description: "x".repeat(32 * 1024 - base + 1) })).toEqual([
      { path: "output_schema", message: "must be at most 32768 bytes serialized (32 KB); it is 32769" },
    ]);
  });

  it("counts bytes, not characters", () => {
    const base = JSON.stringify({ type: "object", description: "" }).length;
    // "é" is two bytes in UTF-8.
    expect(checkOutputSchema({ type: "object", description: "é".repeat((32 * 1024 - base) / 2 + 1) })[0]?.path).toBe("output_schema");
  });
});

describe("checkOutputSchema refuses what cannot be used safely", () => {
  const schema = (extra: Record<string, unknown>) => ({ type: "object", ...extra });

  it.each([
    ["a property that refers to itself", { properties: { a: { $ref: "#/properties/a" } } }, "output_schema.properties.a.$ref"],
    ["a property that refers to the root", { properties: { self: { $ref: "#" } } }, "output_schema.properties.self.$ref"],
    ["an allOf that points at the root", { allOf: [{ $ref: "#" }] }, "output_schema.allOf.0.$ref"],
    ["$defs x → y → x", { $defs: { x: { $ref: "#/$defs/y" }, y: { items: { $ref: "#/$defs/x" } } }, properties: { a: { $ref: "#/$defs/x" } } }, "output_schema.$defs.y.items.$ref"],
    ["a cycle through anchors", { $defs: { x: { $anchor: "ex", properties: { n: { $ref: "#why" } } }, y: { $anchor: "why", anyOf: [{ $ref: "#ex" }] } } }, "output_schema.$defs.y.anyOf.0.$ref"],
    ["a cycle in $defs that nothing uses", { $defs: { x: { $ref: "#/$defs/x" } } }, "output_schema.$defs.x.$ref"],
  ])("a $ref cycle: %s", (_case, extra, path) => {
    expect(checkOutputSchema(schema(extra))).toEqual([{ path, message: expect.stringContaining("cycle") }]);
  });

  it("a repeated $anchor, naming where it was first declared", () => {
    expect(checkOutputSchema(schema({ $defs: { a: { $anchor: "x", type: "string" }, b: { $anchor: "x", type: "integer" } } }))).toEqual([
      { path: "output_schema.$defs.b.$anchor", message: 'repeats the $anchor "x" of output_schema.$defs.a' },
    ]);
  });

  it.each([
    ["the issue's nested quantifier", "^(.+)+X$"],
    ["an ambiguous alternation", "(a|a)*b"],
    ["a star of overlapping words", "^(\\w+\\s?)*$"],
  ])("a pattern the ReDoS checker flags: %s", (_case, pattern) => {
    expect(checkOutputSchema(schema({ properties: { a: { type: "string", pattern, minLength: 28 } } }))).toEqual([
      { path: "output_schema.properties.a.pattern", message: expect.stringContaining("catastrophic backtracking") },
    ]);
    expect(checkOutputSchema(schema({ patternProperties: { [pattern]: { type: "string" } } }))).toEqual([
      { path: `output_schema.patternProperties.${pattern}`, message: expect.stringContaining("catastrophic backtracking") },
    ]);
  });

  it("a pattern longer than 256 characters", () => {
    expect(checkOutputSchema(schema({ properties: { a: { type: "string", pattern: `^${"[a-z]".repeat(51)}$` } } }))).toEqual([
      { path: "output_schema.properties.a.pattern", message: "must be at most 256 characters long; it is 257" },
    ]);
  });

  it("more than 16 patterns in one schema", () => {
    const properties = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`p${i}`, { type: "string", pattern: `^${i}$` }]));
    expect(checkOutputSchema(schema({ properties }))).toEqual([{ path: "output_schema.properties.p16.pattern", message: "is one pattern too many: a schema may have at most 16 (pattern and patternProperties keys)" }]);
  });

  it("accepts everyday patterns", () => {
    const patterns = ["^[a-z]+$", "^\\d{4}-\\d{2}-\\d{2}$", "^\\+?[0-9 ()-]{7,20}$", "^[A-Z][a-z]+( [A-Z][a-z]+)*$", "^[^@\\s]+@[^@\\s.]+(\\.[^@\\s.]+)+$", "^(yes|no|maybe)$"];
    const properties = Object.fromEntries(patterns.map((pattern, i) => [`p${i}`, { type: "string", pattern }]));
    expect(checkOutputSchema(schema({ properties, patternProperties: { "^x-[a-z]+$": { type: "string" } } }))).toEqual([]);
  });

  it.each([
    ["minItems", 100, 101],
    ["maxItems", 1000, 1001],
    ["minContains", 100, 101],
    ["maxContains", 1000, 1001],
    ["minLength", 1000, 1001],
    ["maxLength", 10000, 10001],
    ["minProperties", 100, 101],
    ["maxProperties", 1000, 1001],
  ])("%s over %i", (keyword, bound, over) => {
    expect(checkOutputSchema(schema({ properties: { a: { [keyword]: bound } } }))).toEqual([]);
    expect(checkOutputSchema(schema({ properties: { a: { [keyword]: over } } }))).toEqual([{ path: `output_schema.properties.a.${keyword}`, message: `must be at most ${bound}` }]);
  });

  it("the issue's minItems 1000 nested twice", () => {
    const big = { type: "array", minItems: 1000, items: { type: "array", minItems: 1000, items: { type: "string" } } };
    expect(checkOutputSchema(schema({ required: ["a"], properties: { a: big } })).map((d) => d.path)).toEqual(["output_schema.properties.a.minItems", "output_schema.properties.a.items.minItems"]);
  });
});

describe("a schema checkOutputSchema accepts", () => {
  it("is left untouched and validates call results with OUTPUT_SCHEMA_DRAFT", () => {
    const schema = { type: "object", $defs: { slot: { type: "string" } }, required: ["confirmed"], properties: { confirmed: { type: "boolean" }, when: { $ref: "#/$defs/slot" } } } satisfies Schema;
    const before = structuredClone(schema);
    expect(checkOutputSchema(schema)).toEqual([]);
    expect(schema).toStrictEqual(before);
    expect(Object.getOwnPropertyNames(schema.properties.when)).toEqual(["$ref"]);

    const validator = new Validator(schema, OUTPUT_SCHEMA_DRAFT);
    expect(validator.validate({ confirmed: true, when: "Thursday" }).valid).toBe(true);
    expect(validator.validate({ confirmed: "yes" }).valid).toBe(false);
    expect(validator.validate({ confirmed: true, when: 3 }).valid).toBe(false);
  });
});
