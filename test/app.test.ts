import { describe, expect, it } from "vitest";
import { api } from "./helpers";

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
