import { describe, expect, it } from "vitest";
import { api, signup, signupBody, type ApiResponse } from "../helpers";

/** A response carrying a secret must not be kept by a browser or any cache on the way (RFC 9111 5.2.2.5). */
function expectNoStore(res: ApiResponse, status: number) {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.headers.get("cache-control")).toBe("no-store");
}

describe("Cache-Control: no-store on responses that carry a secret", () => {
  it("signup (tokens and the default project's API key)", async () => {
    expectNoStore(await api("POST", "/auth/signup", { body: signupBody() }), 201);
  });

  it("login and refresh (tokens)", async () => {
    const account = await signup();
    expectNoStore(await api("POST", "/auth/login", { body: { email: account.email, password: "YourPassword123!" } }), 200);
    expectNoStore(await api("POST", "/auth/refresh", { token: account.refreshToken }), 201);
  });

  it("a created API key and a created project (its API key)", async () => {
    const account = await signup();
    expectNoStore(await api("POST", "/api/v1/api-keys", { key: account.key, body: { name: "ci" } }), 201);
    expectNoStore(await api("POST", "/api/v1/projects", { token: account.accessToken, body: { name: "second" } }), 201);
  });

  it("a created webhook and a rotated secret (signing_secret)", async () => {
    const account = await signup();
    const base = `/api/v1/projects/${account.projectId}/webhooks`;
    const created = await api("POST", base, { key: account.key, body: { url: "http://receiver.test/no-store", events: ["call.summary"] } });
    expectNoStore(created, 201);
    expectNoStore(await api("POST", `${base}/${created.body.id}/secret/rotate`, { key: account.key }), 200);
  });

  it("not on responses without a secret", async () => {
    const account = await signup();
    const res = await api("GET", `/api/v1/projects/${account.projectId}/webhooks`, { key: account.key });
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBeNull();
  });
});
