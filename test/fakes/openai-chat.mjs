// @ts-check
/**
 * A fake of OpenAI's Chat Completions API on api.openai.com, as the API reference and the
 * Structured Outputs guide describe it:
 *   POST /v1/chat/completions  Bearer auth with `sk-fake-openai-key`, else a 401 with OpenAI's error
 *     JSON. Only Structured Outputs is served: `response_format: {type: "json_schema", json_schema:
 *     {name, schema, strict: true}}`; anything else is a 400, and so is a schema outside the strict
 *     subset, with the `invalid_json_schema` message OpenAI gives ("Invalid schema for
 *     response_format '<name>': In context=(…), …"): every node has a `type` (or is a `$ref` /
 *     `anyOf`), only the documented keywords and formats, every object `additionalProperties: false`
 *     with all its properties `required`, arrays with `items`, the root an object, `$ref` alone and
 *     resolvable. (The size and nesting limits are not checked.) The answer is a `chat.completion`
 *     whose message content is a JSON object valid against the strict schema.
 *   GET /_fake/chat/requests[?match=<text>]  every request received (whose body contains <text>), in
 *     order: {method, path, headers, body}.
 *
 * What the "model" answers comes from the transcript (the first user message):
 *   `[extract] {…}`           on a line: that text is the answer, every time;
 *   `[extract-invalid]`       every top-level key null (breaks a schema that requires one), every time;
 *   `[extract-invalid-once]`  the same, for the first request with this transcript only;
 *   `[extract-refusal]`       a refusal (`message.refusal` set, `content` null);
 *   `[extract-status <code>]` that HTTP status with OpenAI's error JSON;
 *   `[extract-hang]`          no answer for two minutes (then a 504): the client gives up first;
 *   otherwise values derived from the strict schema: a nullable node (an optional key) is null, "not
 *   collected"; a boolean is true when a line `Customer: yes…` (yes, yeah, yep, sure, correct) is
 *   there, else false; a string is its const/first enum value, a sample of its format, else the last
 *   customer line (patterns are not honoured); a number its minimum, else 1; an array `minItems`
 *   items; an object every property; anyOf its first branch.
 */

const API_KEY = "sk-fake-openai-key";

/** @typedef {Record<string, any>} Json */

/** @type {Array<{ method: string, path: string, headers: Record<string, string>, body: unknown }>} */
const requests = [];
/** Requests answered so far, by transcript. @type {Map<string, number>} */
const answered = new Map();

/** @param {Request} request */
export async function openaiChat(request) {
  const url = new URL(request.url);
  if (request.method === "GET" && url.pathname === "/_fake/chat/requests") {
    const match = url.searchParams.get("match") ?? "";
    return Response.json(requests.filter((r) => JSON.stringify(r.body).includes(match)));
  }
  const text = await request.text();
  /** @type {unknown} */
  let body = text;
  try {
    body = JSON.parse(text);
  } catch {
    // kept as text
  }
  requests.push({ method: request.method, path: url.pathname, headers: Object.fromEntries(request.headers), body });

  if (request.method !== "POST" || url.pathname !== "/v1/chat/completions") return openaiError(404, `Invalid URL (${request.method} ${url.pathname})`);
  const auth = request.headers.get("authorization");
  if (!auth?.startsWith("Bearer ")) {
    return openaiError(401, "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). You can obtain an API key from https://platform.openai.com/account/api-keys.");
  }
  const key = auth.slice("Bearer ".length);
  if (key !== API_KEY) {
    return openaiError(401, `Incorrect API key provided: ${key.slice(0, 3)}*****${key.slice(-4)}. You can find your API key at https://platform.openai.com/account/api-keys.`, { code: "invalid_api_key" });
  }
  if (!isObject(body)) return openaiError(400, "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)");
  if (typeof body.model !== "string") return openaiError(400, "you must provide a model parameter", { param: "model" });
  if (!Array.isArray(body.messages) || body.messages.length === 0) return openaiError(400, "[] is too short - 'messages'", { param: "messages" });

  const format = body.response_format;
  if (!isObject(format) || format.type !== "json_schema" || !isObject(format.json_schema)) {
    return openaiError(400, "fake-openai: this fake only serves Structured Outputs (response_format type json_schema)", { param: "response_format" });
  }
  const { name, schema, strict } = format.json_schema;
  if (typeof name !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(name)) {
    return openaiError(400, `Invalid 'response_format.json_schema.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.`, { param: "response_format.json_schema.name", code: "invalid_value" });
  }
  if (strict !== true) return openaiError(400, "fake-openai: json_schema.strict must be true (the project always uses strict Structured Outputs)", { param: "response_format" });
  const problem = strictSchemaProblem(schema);
  if (problem) return openaiError(400, `Invalid schema for response_format '${name}': ${problem}`, { param: "response_format", code: "invalid_json_schema" });

  const transcript = messageText(body.messages.find((/** @type {Json} */ m) => m?.role === "user"));
  const count = (answered.get(transcript) ?? 0) + 1;
  answered.set(transcript, count);

  // A timer, not a promise that never settles: workerd cancels a request that can never be answered.
  if (transcript.includes("[extract-hang]")) return new Promise((resolve) => setTimeout(() => resolve(openaiError(504, "fake-openai: gave up")), 120_000));
  const status = /\[extract-status (\d{3})\]/.exec(transcript);
  if (status) return openaiError(Number(status[1]), STATUS_MESSAGES[Number(status[1])] ?? "fake-openai: error on command");
  if (transcript.includes("[extract-refusal]")) return completion(body.model, null, "I'm sorry, I cannot assist with that request.");
  const exact = /\[extract\] (.*)$/m.exec(transcript);
  if (exact) return completion(body.model, (exact[1] ?? "").trim(), null);
  const answer = generate(schema, schema, transcriptFacts(transcript), 0);
  const invalid = transcript.includes("[extract-invalid]") || (transcript.includes("[extract-invalid-once]") && count === 1);
  return completion(body.model, JSON.stringify(invalid ? Object.fromEntries(Object.keys(answer).map((k) => [k, null])) : answer), null);
}

/** @param {unknown} value @returns {value is Json} */
function isObject(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A message's text: a string, or the text parts of a content array. @param {unknown} message */
function messageText(message) {
  if (!isObject(message)) return "";
  if (typeof message.content === "string") return message.content;
  if (Array.isArray(message.content)) return message.content.map((part) => (isObject(part) && part.type === "text" ? part.text : "")).join("\n");
  return "";
}

/** @param {number} status @param {string} message @param {{ type?: string, param?: string | null, code?: string | null }} [extra] */
function openaiError(status, message, extra = {}) {
  const type = extra.type ?? (status >= 500 ? "server_error" : status === 429 ? "requests" : "invalid_request_error");
  return Response.json({ error: { message, type, param: extra.param ?? null, code: extra.code ?? null } }, { status, headers: { "x-request-id": requestId() } });
}

/** @type {Record<number, string>} */
const STATUS_MESSAGES = {
  429: "Rate limit reached for requests. Please try again in 20ms.",
  500: "The server had an error while processing your request. Sorry about that!",
  503: "The engine is currently overloaded, please try again later.",
};

function requestId() {
  return `req_${crypto.randomUUID().replace(/-/g, "")}`;
}

/** A documented `chat.completion` object. @param {string} model @param {string | null} content @param {string | null} refusal */
function completion(model, content, refusal) {
  const completionTokens = Math.ceil((content ?? refusal ?? "").length / 4);
  return Response.json(
    {
      id: `chatcmpl-${crypto.randomUUID().replace(/-/g, "").slice(0, 29)}`,
      object: "chat.completion",
      created: Math.floor(Date.now() / 1000),
      model,
      choices: [{ index: 0, message: { role: "assistant", content, refusal, annotations: [] }, logprobs: null, finish_reason: "stop" }],
      usage: {
        prompt_tokens: 100,
        completion_tokens: completionTokens,
        total_tokens: 100 + completionTokens,
        prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
        completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
      },
      service_tier: "default",
      system_fingerprint: "fp_fake",
    },
    { headers: { "x-request-id": requestId() } },
  );
}

const KEYWORDS = new Set([
  "type", "description", "title", "properties", "required", "additionalProperties", "items", "anyOf", "enum", "const", "$ref", "$defs", "definitions",
  "pattern", "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minItems", "maxItems",
]);
const TYPES = new Set(["string", "number", "integer", "boolean", "object", "array", "null"]);
const FORMATS = new Set(["date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"]);

/** What OpenAI would say is wrong with a strict schema, or null. @param {unknown} schema */
function strictSchemaProblem(schema) {
  if (!isObject(schema) || schema.type !== "object" || "anyOf" in schema) {
    return `schema must be a JSON Schema of 'type: "object"', got 'type: "${isObject(schema) ? (schema.type ?? "None") : typeof schema}"'.`;
  }
  return nodeProblem(schema, [], schema);
}

/** @param {unknown} node @param {string[]} context @param {Json} root @returns {string | null} */
function nodeProblem(node, context, root) {
  const at = `In context=${pythonTuple(context)}, `;
  if (!isObject(node)) return `${at}schema must be a JSON object.`;
  for (const key of Object.keys(node)) if (!KEYWORDS.has(key)) return `${at}'${key}' is not permitted.`;
  for (const defs of ["$defs", "definitions"]) {
    for (const [name, def] of Object.entries(isObject(node[defs]) ? node[defs] : {})) {
      const problem = nodeProblem(def, [...context, defs, name], root);
      if (problem) return problem;
    }
  }
  if ("$ref" in node) {
    const others = Object.keys(node).filter((key) => key !== "$ref");
    if (others.length > 0) return `${at}$ref cannot have keywords {${others.map((k) => `'${k}'`).join(", ")}}.`;
    return resolve(root, node.$ref) ? null : `${at}reference ${node.$ref} not found.`;
  }
  if ("anyOf" in node) {
    if (!Array.isArray(node.anyOf) || node.anyOf.length === 0) return `${at}anyOf must be a non-empty array.`;
    for (const [i, branch] of node.anyOf.entries()) {
      const problem = nodeProblem(branch, [...context, "anyOf", String(i)], root);
      if (problem) return problem;
    }
    return null;
  }
  if (!("type" in node)) return `${at}schema must have a 'type' key.`;
  const types = Array.isArray(node.type) ? node.type : [node.type];
  for (const type of types) if (!TYPES.has(type)) return `${at}'${type}' is not a valid type.`;
  if (typeof node.format === "string" && !FORMATS.has(node.format)) return `${at}'${node.format}' is not a valid format.`;
  if (types.includes("object")) {
    if (node.additionalProperties !== false) return `${at}'additionalProperties' is required to be supplied and to be false.`;
    const properties = isObject(node.properties) ? node.properties : {};
    const required = Array.isArray(node.required) ? node.required : [];
    const rule = `${at}'required' is required to be supplied and to be an array including every key in properties.`;
    const missing = Object.keys(properties).find((key) => !required.includes(key));
    if (missing !== undefined) return `${rule} Missing '${missing}'.`;
    const extra = required.find((key) => !Object.hasOwn(properties, key));
    if (extra !== undefined) return `${rule} Extra required key '${extra}' supplied.`;
    for (const [name, child] of Object.entries(properties)) {
      const problem = nodeProblem(child, [...context, "properties", name], root);
      if (problem) return problem;
    }
  }
  if (types.includes("array")) {
    if (!("items" in node)) return `${at}array schema missing items.`;
    return nodeProblem(node.items, [...context, "items"], root);
  }
  return null;
}

/** Python's repr of a tuple of strings, as OpenAI's messages show the context. @param {string[]} parts */
function pythonTuple(parts) {
  const items = parts.map((part) => `'${part}'`);
  return items.length === 1 ? `(${items[0]},)` : `(${items.join(", ")})`;
}

/** A local JSON pointer's target. @param {Json} root @param {unknown} ref @returns {unknown} */
function resolve(root, ref) {
  if (ref === "#") return root;
  if (typeof ref !== "string" || !ref.startsWith("#/")) return undefined;
  /** @type {unknown} */
  let node = root;
  for (const raw of ref.slice(2).split("/")) {
    const segment = decodeURIComponent(raw).replace(/~1/g, "/").replace(/~0/g, "~");
    node = isObject(node) ? node[segment] : undefined;
  }
  return node;
}

/** @typedef {{ affirmative: boolean, lastCustomerLine: string }} Facts */

/** @param {string} transcript @returns {Facts} */
function transcriptFacts(transcript) {
  const customerLines = transcript
    .split("\n")
    .filter((line) => line.startsWith("Customer: "))
    .map((line) => line.slice("Customer: ".length).trim());
  return {
    affirmative: customerLines.some((line) => /^(yes|yeah|yep|sure|correct)\b/i.test(line)),
    lastCustomerLine: customerLines.at(-1) ?? "",
  };
}

/** @type {Record<string, string>} */
const FORMAT_SAMPLES = {
  "date-time": "2026-03-20T14:00:00Z",
  time: "14:00:00Z",
  date: "2026-03-20",
  duration: "PT30M",
  email: "customer@example.com",
  hostname: "example.com",
  ipv4: "192.0.2.1",
  ipv6: "2001:db8::1",
  uuid: "00000000-0000-4000-8000-000000000000",
};

/** The fake model's answer for a strict schema node. @param {unknown} node @param {Json} root @param {Facts} facts @param {number} depth @returns {any} */
function generate(node, root, facts, depth) {
  if (!isObject(node) || depth > 20) return null;
  if ("$ref" in node) return generate(resolve(root, node.$ref), root, facts, depth + 1);
  if (Array.isArray(node.anyOf)) {
    if (node.anyOf.some((branch) => isObject(branch) && branch.type === "null")) return null;
    return generate(node.anyOf[0], root, facts, depth + 1);
  }
  const types = Array.isArray(node.type) ? node.type : [node.type];
  if (types.includes("null")) return null;
  if ("const" in node) return node.const;
  if (Array.isArray(node.enum) && node.enum.length > 0) return node.enum[0];
  switch (types[0]) {
    case "boolean":
      return facts.affirmative;
    case "string":
      return FORMAT_SAMPLES[node.format] ?? facts.lastCustomerLine;
    case "integer":
    case "number":
      return node.minimum ?? 1;
    case "array":
      return Array.from({ length: node.minItems ?? 0 }, () => generate(node.items, root, facts, depth + 1));
    case "object":
      return Object.fromEntries(Object.entries(node.properties ?? {}).map(([key, child]) => [key, generate(child, root, facts, depth + 1)]));
    default:
      return null;
  }
}
