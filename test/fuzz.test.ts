import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { createAgent, createCustomer, QUICKSTART_AGENT, quickstartCustomer } from "./fixtures";
import { api, signup, type Account, type ApiResponse } from "./helpers";
import { createEndpoint } from "./webhooks/support";

/**
 * Property-based requests on every write route and every list route's query string, taken from the
 * app's own OpenAPI document (so a new route is fuzzed without touching this file): whatever comes
 * in, the answer is never a 5xx, a 4xx carries the error body, a 2xx is JSON. fast-check prints
 * the seed and the shrunk request on failure; replay with `fc.assert(…, { seed, path })`.
 */

const SEED = 20_261_130;
/** Few runs a route: the file walks every route and must stay quick. */
const RUNS_PER_ROUTE = 25;
const WRITE_METHODS = ["post", "patch", "put", "delete"] as const;

type OpenApiDocument = { paths: Record<string, Record<string, Operation>>; components?: { schemas?: Record<string, JsonSchema> } };
type Operation = { parameters?: Array<{ name: string; in: string }>; requestBody?: { content?: Record<string, { schema?: JsonSchema }> } };
type JsonSchema = { $ref?: string; properties?: Record<string, unknown> };

const document = (await api<OpenApiDocument>("GET", "/openapi.json")).body;
const operations = Object.entries(document.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, operation]) => ({ method, path, operation })));
const writeRoutes = operations.filter(({ method, path }) => (WRITE_METHODS as readonly string[]).includes(method) && /^\/(auth|api\/v1)\//.test(path));
const listRoutes = operations.filter(({ method, operation }) => method === "get" && operation.parameters?.some((p) => p.in === "query"));

/** The property names of an operation's JSON body, so generated bodies hit real fields as well as junk. */
function bodyFields(operation: Operation): string[] {
  let schema = operation.requestBody?.content?.["application/json"]?.schema;
  if (schema?.$ref) schema = document.components?.schemas?.[schema.$ref.split("/").at(-1)!];
  return Object.keys(schema?.properties ?? {});
}

let account: Account;
/** Real ids of the test account's objects, by path parameter name. */
const realIds: Record<string, string[]> = {};

beforeAll(async () => {
  account = await signup();
  const agent = await createAgent(account, QUICKSTART_AGENT);
  const customer = await createCustomer(account, quickstartCustomer());
  const webhook = await createEndpoint(account, "fuzz", ["call.ended"]);
  realIds.id = [agent.id, customer.id];
  realIds.projectId = [account.projectId];
  realIds.phoneId = customer.phones.map((phone) => phone.id);
  realIds.webhookId = [webhook.id];
});

/** A path parameter: one of the account's ids, a UUID of no object, or junk. */
const paramValue = (name: string) => fc.oneof(fc.constantFrom(...(realIds[name] ?? ["none"])), fc.uuid(), fc.string({ maxLength: 40 }), fc.constantFrom("..", "%00", "0", "-1", "null"));

const json = fc.jsonValue({ maxDepth: 3 });
/** A JSON body: any value, or an object of the route's fields with any values, or text that is not JSON. */
const body = (fields: string[]) =>
  fc.oneof(
    { arbitrary: fc.dictionary(fields.length > 0 ? fc.constantFrom(...fields) : fc.string(), json, { maxKeys: 8 }).map((value) => JSON.stringify(value)), weight: 3 },
    { arbitrary: json.map((value) => JSON.stringify(value)), weight: 1 },
    { arbitrary: fc.string({ maxLength: 60 }), weight: 1 },
  );

const queryValue = fc.oneof(fc.string({ maxLength: 30 }), fc.integer().map(String), fc.constantFrom("0x10", "1e3", "-0", "NaN", "Infinity", "", "200", "201"));

function fillPath(path: string, params: Record<string, string>): string {
  return path.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(params[name] ?? ""));
}

function expectWellFormed(res: ApiResponse, request: string): void {
  const what = `${request} → ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`;
  expect(res.status, what).toBeLessThan(500);
  if (res.status >= 400) {
    expect(res.body, what).toMatchObject({ statusCode: res.status, error: expect.any(String), message: expect.any(String), code: expect.any(String), request_id: res.headers.get("x-request-id") });
  } else if (res.status !== 204) {
    expect(typeof res.body, what).toBe("object");
  }
}

describe("fuzzing every write route", () => {
  it("covers the routes of the OpenAPI document", () => {
    expect(writeRoutes.length).toBeGreaterThan(15);
    expect(listRoutes.length).toBeGreaterThan(4);
  });

  it.each(writeRoutes.map(({ method, path, operation }) => [`${method.toUpperCase()} ${path}`, method, path, operation] as const))("%s: never a 5xx, always the error body", async (_name, method, path, operation) => {
    const paramNames = [...path.matchAll(/\{(\w+)\}/g)].map((match) => match[1]!);
    const params = fc.record(Object.fromEntries(paramNames.map((name) => [name, paramValue(name)])));
    const credentials = fc.constantFrom<"key" | "token" | "none">("key", "key", "token", "none");
    await fc.assert(
      fc.asyncProperty(params, body(bodyFields(operation)), credentials, async (values, rawBody, auth) => {
        const url = fillPath(path, values);
        const res = await api(method.toUpperCase(), url, {
          rawBody,
          key: auth === "key" ? account.key : undefined,
          token: auth === "token" ? account.accessToken : undefined,
        });
        expectWellFormed(res, `${method.toUpperCase()} ${url} ${rawBody.slice(0, 200)}`);
      }),
      { seed: SEED, numRuns: RUNS_PER_ROUTE },
    );
  });
});

describe("fuzzing every list route's query string", () => {
  it.each(listRoutes.map(({ path, operation }) => [path, operation] as const))("GET %s: never a 5xx, always the error body", async (path, operation) => {
    const queryNames = operation.parameters!.filter((p) => p.in === "query").map((p) => p.name);
    const query = fc.dictionary(fc.oneof(fc.constantFrom(...queryNames), fc.string({ maxLength: 10 })), queryValue, { maxKeys: 4 });
    const params = fc.record(Object.fromEntries([...path.matchAll(/\{(\w+)\}/g)].map((match) => [match[1]!, paramValue(match[1]!)])));
    await fc.assert(
      fc.asyncProperty(params, query, async (values, queryValues) => {
        const url = `${fillPath(path, values)}?${new URLSearchParams(queryValues)}`;
        expectWellFormed(await api("GET", url, { key: account.key }), `GET ${url}`);
      }),
      { seed: SEED, numRuns: RUNS_PER_ROUTE },
    );
  });
});
