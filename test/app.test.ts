import { describe, expect, it } from "vitest";
import { env, exports } from "cloudflare:workers";
import { api, signup, signupBody } from "./helpers";

describe("the app", () => {
  it("serves an OpenAPI 3.1 document generated from the routes", async () => {
    const res = await api("GET", "/openapi.json");
    expect(res.status).toBe(200);
    expect(res.body.openapi).toBe("3.1.0");
    const paths = Object.keys(res.body.paths);
    for (const path of [
      "/auth/signup",
      "/auth/login",
      "/auth/refresh",
      "/api/v1/project",
      "/api/v1/projects/{projectId}",
      "/api/v1/api-keys",
      "/api/v1/api-keys/{id}/revoke",
      "/api/v1/agents",
      "/api/v1/agents/{id}",
      "/api/v1/customers",
      "/api/v1/customers/{id}",
      "/api/v1/notifications",
      "/api/v1/notifications/{id}",
      "/api/v1/notifications/{id}/cancel",
      "/api/v1/projects/{projectId}/webhooks",
      "/api/v1/projects/{projectId}/webhooks/{webhookId}",
    ]) {
      expect(paths).toContain(path);
    }
    expect(res.body.components.securitySchemes).toHaveProperty("ApiKey");
  });

  it("serves a docs page that loads Swagger UI from our own assets", async () => {
    const res = await api("GET", "/docs");
    expect(res.status).toBe(200);
    expect(res.body).toContain('src="/swagger-ui/swagger-ui-bundle.js"');
    expect(res.body).toContain("/openapi.json");
    expect(res.body).not.toMatch(/cdn|unpkg|jsdelivr/);
  });

  it("answers unknown routes with the error body and a request id", async () => {
    const res = await api("GET", "/api/v2/nothing-here");
    expect(res.status).toBe(404);
    expect(res.body).toMatchObject({ statusCode: 404, error: "Not Found", code: "route_not_found" });
    expect(res.body.request_id).toBe(res.headers.get("x-request-id"));
  });

  it("echoes a well-formed X-Request-Id and replaces a malformed one", async () => {
    const kept = await api("GET", "/", { headers: { "x-request-id": "req_abc-123" } });
    expect(kept.headers.get("x-request-id")).toBe("req_abc-123");
    const replaced = await api("GET", "/", { headers: { "x-request-id": "bad id with spaces" } });
    expect(replaced.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe("request bodies", () => {
  const MB = 1024 * 1024;
  const expectErrorBody = (res: { status: number; body: any; headers: Headers }, status: number, code: string) => {
    expect(res.status, JSON.stringify(res.body).slice(0, 300)).toBe(status);
    expect(res.body).toEqual({ statusCode: status, error: expect.any(String), message: expect.any(String), code, request_id: res.headers.get("x-request-id") });
  };

  it("over 1 MB are a 413 on JSON routes, before anything is parsed or stored", async () => {
    const account = await signup();
    const padded = JSON.stringify({ name: "Reminder", system_prompt: "Hi.", padding: "x".repeat(MB) });
    expectErrorBody(await api("POST", "/api/v1/agents", { key: account.key, rawBody: padded }), 413, "payload_too_large");
    expectErrorBody(await api("POST", "/auth/signup", { rawBody: JSON.stringify({ ...signupBody(), padding: "x".repeat(MB) }) }), 413, "payload_too_large");
    // Not even valid JSON: the size is refused first.
    expectErrorBody(await api("PATCH", "/api/v1/agents/some-id", { key: account.key, rawBody: `{${"x".repeat(MB)}` }), 413, "payload_too_large");
    const { results } = await env.DB.prepare("SELECT id FROM agents WHERE business_id = ?").bind(account.businessId).all();
    expect(results).toEqual([]);
  });

  it("up to 1 MB are read as usual", async () => {
    const account = await signup();
    const body = { name: "Reminder", system_prompt: "Hi.", padding: "" };
    const rawBody = JSON.stringify({ ...body, padding: "x".repeat(MB - JSON.stringify(body).length) });
    expect(new TextEncoder().encode(rawBody).length).toBe(MB);
    expect((await api("POST", "/api/v1/agents", { key: account.key, rawBody })).status).toBe(201);
  });

  it("over 1 MB sent without a Content-Length are counted as they stream", async () => {
    const account = await signup();
    const chunk = new TextEncoder().encode(`"${"x".repeat(64 * 1024)}",`);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{"name":"Reminder","system_prompt":"Hi.","padding":['));
        for (let i = 0; i < 20; i++) controller.enqueue(chunk);
        controller.enqueue(new TextEncoder().encode('""]}'));
        controller.close();
      },
    });
    const request = new Request("http://localhost/api/v1/agents", { method: "POST", headers: { "x-api-key": account.key, "content-type": "application/json" }, body: stream, duplex: "half" } as RequestInit);
    expect(request.headers.has("content-length")).toBe(false);
    const response = await exports.default.fetch(request);
    expectErrorBody({ status: response.status, body: await response.json(), headers: response.headers }, 413, "payload_too_large");
  });

  it("over 64 KB are a 413 on Twilio's routes", async () => {
    const res = await api("POST", "/twilio/status/some-notification", { rawBody: `CallSid=CA1&CallStatus=ringing&Pad=${"x".repeat(64 * 1024)}`, headers: { "content-type": "application/x-www-form-urlencoded" } });
    expectErrorBody(res, 413, "payload_too_large");
  });

  it("with another Content-Type on a JSON route are a 415 unsupported_media_type", async () => {
    const account = await signup();
    const res = await api("POST", "/api/v1/agents", { key: account.key, rawBody: "name=Reminder", headers: { "content-type": "text/plain" } });
    expectErrorBody(res, 415, "unsupported_media_type");
    expect(res.body.error).toBe("Unsupported Media Type");
  });
});
