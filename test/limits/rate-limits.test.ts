import { describe, expect, it } from "vitest";
import { count, countRows, createAgent, createCustomer, QUICKSTART_AGENT, QUICKSTART_VARIABLES, quickstartCustomer } from "../fixtures";
import { api, signup, signupBody, type ApiResponse } from "../helpers";

/** Each test counts against its own client IP, so no test sees another's requests. */
let ipCounter = 0;
function uniqueIp(): string {
  ipCounter += 1;
  return `198.51.${Math.floor(Math.random() * 200)}.${ipCounter}`;
}

function statuses(responses: ApiResponse[]): Record<number, number> {
  const tally: Record<number, number> = {};
  for (const res of responses) tally[res.status] = (tally[res.status] ?? 0) + 1;
  return tally;
}

/** What every 429 carries: the error body, Retry-After and the X-RateLimit-* headers with nothing left. */
function expectRateLimited(res: ApiResponse, limit: number, windowSeconds: number) {
  expect(res.status).toBe(429);
  expect(res.body).toMatchObject({ statusCode: 429, error: "Too Many Requests", code: "rate_limited", request_id: res.headers.get("x-request-id") });
  expect(res.headers.get("x-ratelimit-limit")).toBe(String(limit));
  expect(res.headers.get("x-ratelimit-remaining")).toBe("0");
  const reset = Number(res.headers.get("x-ratelimit-reset"));
  expect(reset).toBeGreaterThanOrEqual(1);
  expect(reset).toBeLessThanOrEqual(windowSeconds);
  expect(res.headers.get("retry-after")).toBe(String(reset));
}

describe("per API key", () => {
  it("answers 429 beyond the limit: 300 GETs with one key, 100 allowed", async () => {
    const account = await signup();
    const bindings = { RATE_LIMIT_API_KEY: "100/1h" };
    const responses = await Promise.all(Array.from({ length: 300 }, () => api("GET", "/api/v1/project", { key: account.key, bindings })));
    expect(statuses(responses)).toEqual({ 200: 100, 429: 200 });
    for (const res of responses.filter((r) => r.status === 429)) expectRateLimited(res, 100, 3600);
  });

  it("says how much is left on every response of a limited route", async () => {
    const account = await signup();
    const bindings = { RATE_LIMIT_API_KEY: "100/10s" };
    const first = await api("GET", "/api/v1/project", { key: account.key, bindings });
    expect(first.status).toBe(200);
    expect(first.headers.get("x-ratelimit-limit")).toBe("100");
    expect(first.headers.get("x-ratelimit-remaining")).toBe("99");
    expect(Number(first.headers.get("x-ratelimit-reset"))).toBeGreaterThanOrEqual(1);
    expect(Number(first.headers.get("x-ratelimit-reset"))).toBeLessThanOrEqual(10);
    expect(first.headers.get("retry-after")).toBeNull();
    // An error answered after the limit was taken carries the headers too.
    const missing = await api("GET", "/api/v1/agents/0193b1c2-7e4a-7c1e-9d5a-2f1e4c3b2a10", { key: account.key, bindings });
    expect(missing.status).toBe(404);
    expect(missing.headers.get("x-ratelimit-remaining")).toBe("98");
  });

  it("counts a Bearer token per user and project, apart from the project's keys", async () => {
    const account = await signup();
    const bindings = { RATE_LIMIT_API_KEY: "3/1h" };
    const asUser = () => api("GET", "/api/v1/project", { token: account.accessToken, bindings });
    expect(statuses(await Promise.all([asUser(), asUser(), asUser(), asUser()]))).toEqual({ 200: 3, 429: 1 });
    expect((await api("GET", "/api/v1/project", { key: account.key, bindings })).status).toBe(200);
    const other = await api("POST", "/api/v1/projects", { token: account.accessToken, body: { name: "second" } });
    expect(other.status).toBe(201);
    const inOther = await api("GET", "/api/v1/project", { token: account.accessToken, headers: { "x-project-id": other.body.id }, bindings });
    expect(inOther.status).toBe(200);
    expect(inOther.headers.get("x-ratelimit-remaining")).toBe("2");
  });
});

describe("per project, notification triggers", () => {
  it("places exactly the budget's calls out of 30 concurrent triggers; the rest are 429 and write nothing", async () => {
    const account = await signup();
    const agent = await createAgent(account, QUICKSTART_AGENT);
    const customer = await createCustomer(account, quickstartCustomer());
    const bindings = { RATE_LIMIT_NOTIFICATIONS: "5/1h" };
    const body = { customer_id: customer.id, agent_id: agent.id, variables: QUICKSTART_VARIABLES };
    const responses = await Promise.all(Array.from({ length: 30 }, () => api("POST", "/api/v1/notifications", { key: account.key, body, bindings })));
    expect(statuses(responses)).toEqual({ 201: 5, 429: 25 });
    for (const res of responses.filter((r) => r.status === 429)) expectRateLimited(res, 5, 3600);
    expect(await countRows("notifications", account.projectId)).toBe(5);
    // Other requests of the project are not part of the trigger budget.
    expect((await api("GET", "/api/v1/notifications", { key: account.key, bindings })).status).toBe(200);
  });
});

describe("per client IP on /auth/*", () => {
  it("creates exactly the limit's accounts out of 30 concurrent sign-ups from one IP", async () => {
    const ip = uniqueIp();
    const bindings = { RATE_LIMIT_AUTH_IP: "10/1h" };
    const bodies = Array.from({ length: 30 }, () => signupBody());
    const responses = await Promise.all(bodies.map((body, i) => api("POST", i % 2 === 0 ? "/auth/signup" : "/api/auth/signup", { body, headers: { "cf-connecting-ip": ip }, bindings })));
    expect(statuses(responses)).toEqual({ 201: 10, 429: 20 });
    for (const res of responses.filter((r) => r.status === 429)) expectRateLimited(res, 10, 3600);
    const emails = bodies.map((body) => body.email);
    expect(await count("users", `email IN (${emails.map(() => "?").join(", ")})`, ...emails)).toBe(10);
    // Another IP is counted apart.
    expect((await api("POST", "/auth/signup", { body: signupBody(), headers: { "cf-connecting-ip": uniqueIp() }, bindings })).status).toBe(201);
  });

  it("counts an IPv6 client by its /64, which one subscriber holds", async () => {
    const bindings = { RATE_LIMIT_AUTH_IP: "2/1h" };
    const prefix = `2001:db8:${ipCounter.toString(16)}:${Math.floor(Math.random() * 0xffff).toString(16)}`;
    const refresh = (ip: string) => api("POST", "/auth/refresh", { headers: { "cf-connecting-ip": ip }, bindings });
    expect((await refresh(`${prefix}::1`)).status).toBe(401);
    expect((await refresh(`${prefix}:0:0:0:2`)).status).toBe(401);
    expectRateLimited(await refresh(`${prefix}:ffff::3`), 2, 3600);
  });
});

describe("failed logins per account", () => {
  const bindings = { RATE_LIMIT_FAILED_LOGINS: "3/15m" };
  const login = (email: string, password: string) => api("POST", "/auth/login", { body: { email, password }, headers: { "cf-connecting-ip": uniqueIp() }, bindings });

  it("refuses even the right password after the limit of wrong ones", async () => {
    const account = await signup();
    for (let attempt = 0; attempt < 3; attempt += 1) expect((await login(account.email, "wrong-password")).status).toBe(401);
    expectRateLimited(await login(account.email, "YourPassword123!"), 3, 15 * 60);
    expectRateLimited(await login(account.email.toUpperCase(), "YourPassword123!"), 3, 15 * 60);
    // Other accounts are not affected.
    const other = await signup();
    expect((await login(other.email, "YourPassword123!")).status).toBe(200);
  });

  it("counts concurrent wrong passwords exactly", async () => {
    const account = await signup();
    const responses = await Promise.all(Array.from({ length: 10 }, () => login(account.email, "wrong-password")));
    expect(statuses(responses)).toEqual({ 401: 3, 429: 7 });
  });

  it("starts again after a successful login", async () => {
    const account = await signup();
    for (let attempt = 0; attempt < 2; attempt += 1) expect((await login(account.email, "wrong-password")).status).toBe(401);
    expect((await login(account.email, "YourPassword123!")).status).toBe(200);
    for (let attempt = 0; attempt < 2; attempt += 1) expect((await login(account.email, "wrong-password")).status).toBe(401);
    expect((await login(account.email, "YourPassword123!")).status).toBe(200);
  });

  it("limits an email no account has, like one that exists", async () => {
    const email = signupBody().email;
    for (let attempt = 0; attempt < 3; attempt += 1) expect((await login(email, "wrong-password")).status).toBe(401);
    expectRateLimited(await login(email, "wrong-password"), 3, 15 * 60);
  });
});

describe("the OpenAPI document", () => {
  it("lists the 429 and its headers on limited routes", async () => {
    const { body } = await api("GET", "/openapi.json");
    for (const [path, method] of [["/auth/login", "post"], ["/api/v1/notifications", "post"], ["/api/v1/customers", "get"]] as const) {
      const rateLimited = body.paths[path][method].responses["429"];
      expect(Object.keys(rateLimited.headers)).toEqual(["Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"]);
    }
    expect(body.components.schemas.Error.properties.code.enum).toContain("rate_limited");
  });
});
