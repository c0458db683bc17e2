import type { Schema } from "@cfworker/json-schema";

/**
 * The JSON Schema draft 2020-12 meta-schema (https://json-schema.org/draft/2020-12/schema), with
 * its vocabulary meta-schemas (core, applicator, unevaluated, validation, meta-data,
 * format-annotation, content) merged into one document. `$dynamicRef: "#meta"` becomes
 * `$ref: "#"`: that is what it resolves to when nothing extends the dialect, and
 * @cfworker/json-schema does not implement `$dynamicRef`.
 */
export const JSON_SCHEMA_2020_12_META: Schema = {
  $id: "https://json-schema.org/draft/2020-12/schema",
  type: ["object", "boolean"],
  properties: {
    // core
    $id: { $ref: "#/$defs/uriReferenceString", pattern: "^[^#]*#?$" },
    $schema: { $ref: "#/$defs/uriString" },
    $ref: { $ref: "#/$defs/uriReferenceString" },
    $anchor: { $ref: "#/$defs/anchorString" },
    $dynamicRef: { $ref: "#/$defs/uriReferenceString" },
    $dynamicAnchor: { $ref: "#/$defs/anchorString" },
    $vocabulary: { type: "object", propertyNames: { $ref: "#/$defs/uriString" }, additionalProperties: { type: "boolean" } },
    $comment: { type: "string" },
    $defs: { type: "object", additionalProperties: { $ref: "#" } },
    // applicator
    prefixItems: { $ref: "#/$defs/schemaArray" },
    items: { $ref: "#" },
    contains: { $ref: "#" },
    additionalProperties: { $ref: "#" },
    properties: { type: "object", additionalProperties: { $ref: "#" } },
    patternProperties: { type: "object", additionalProperties: { $ref: "#" }, propertyNames: { format: "regex" } },
    dependentSchemas: { type: "object", additionalProperties: { $ref: "#" } },
    propertyNames: { $ref: "#" },
    if: { $ref: "#" },
    then: { $ref: "#" },
    else: { $ref: "#" },
    allOf: { $ref: "#/$defs/schemaArray" },
    anyOf: { $ref: "#/$defs/schemaArray" },
    oneOf: { $ref: "#/$defs/schemaArray" },
    not: { $ref: "#" },
    // unevaluated
    unevaluatedItems: { $ref: "#" },
    unevaluatedProperties: { $ref: "#" },
    // validation
    type: {
      anyOf: [{ $ref: "#/$defs/simpleTypes" }, { type: "array", items: { $ref: "#/$defs/simpleTypes" }, minItems: 1, uniqueItems: true }],
    },
    const: true,
    enum: { type: "array", items: true },
    multipleOf: { type: "number", exclusiveMinimum: 0 },
    maximum: { type: "number" },
    exclusiveMaximum: { type: "number" },
    minimum: { type: "number" },
    exclusiveMinimum: { type: "number" },
    maxLength: { $ref: "#/$defs/nonNegativeInteger" },
    minLength: { $ref: "#/$defs/nonNegativeInteger" },
    pattern: { type: "string", format: "regex" },
    maxItems: { $ref: "#/$defs/nonNegativeInteger" },
    minItems: { $ref: "#/$defs/nonNegativeInteger" },
    uniqueItems: { type: "boolean" },
    maxContains: { $ref: "#/$defs/nonNegativeInteger" },
    minContains: { $ref: "#/$defs/nonNegativeInteger" },
    maxProperties: { $ref: "#/$defs/nonNegativeInteger" },
    minProperties: { $ref: "#/$defs/nonNegativeInteger" },
    required: { $ref: "#/$defs/stringArray" },
    dependentRequired: { type: "object", additionalProperties: { $ref: "#/$defs/stringArray" } },
    // meta-data
    title: { type: "string" },
    description: { type: "string" },
    default: true,
    deprecated: { type: "boolean" },
    readOnly: { type: "boolean" },
    writeOnly: { type: "boolean" },
    examples: { type: "array", items: true },
    // format-annotation
    format: { type: "string" },
    // content
    contentEncoding: { type: "string" },
    contentMediaType: { type: "string" },
    contentSchema: { $ref: "#" },
    // the root meta-schema's keywords kept from earlier drafts
    definitions: { type: "object", additionalProperties: { $ref: "#" } },
    dependencies: { type: "object", additionalProperties: { anyOf: [{ $ref: "#" }, { $ref: "#/$defs/stringArray" }] } },
    $recursiveAnchor: { $ref: "#/$defs/anchorString" },
    $recursiveRef: { $ref: "#/$defs/uriReferenceString" },
  },
  $defs: {
    anchorString: { type: "string", pattern: "^[A-Za-z_][-A-Za-z0-9._]*$" },
    uriString: { type: "string", format: "uri" },
    uriReferenceString: { type: "string", format: "uri-reference" },
    schemaArray: { type: "array", minItems: 1, items: { $ref: "#" } },
    nonNegativeInteger: { type: "integer", minimum: 0 },
    simpleTypes: { enum: ["array", "boolean", "integer", "null", "number", "object", "string"] },
    stringArray: { type: "array", items: { type: "string" }, uniqueItems: true },
  },
};
