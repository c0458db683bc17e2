import { env } from "cloudflare:workers";
import { SignJWT } from "jose";
import { describe, expect, it, vi } from "vitest";
import { api, signup } from "../helpers";

describe("API key authentication", () => {
  it("records when a key was last used", async () => {
    const account = await signup();
    const usedFrom = Date.now();
    // Each listing is itself a use of the key; the time is written after the response.
    const key = await vi.waitFor(async () => {
      const [listed] = (await api("GET", "/api/v1/api-keys", { key: account.key })).body;
      expect(listed.last_used_at).toEqual(expect.any(String));
      return listed;
    });
    expect(Date.parse(key.last_used_at)).toBeGreaterThanOrEqual(usedFrom - 1000);
  });
});

describe("Bearer authentication", () => {
  it("treats an empty x-project-id as absent: the default project", async () => {
    const account = await signup();
    for (const value of ["", "   "]) {
      const res = await api("GET", "/api/v1/project", { token: account.accessToken, headers: { "x-project-id": value } });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body.id).toBe(account.projectId);
    }
  });

  it("refuses a correctly signed access token without an expiry", async () => {
    const account = await signup();
    const neverExpires = await new SignJWT({ email: account.email, typ: "access" })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setSubject(account.userId)
      .setIssuedAt()
      .sign(new TextEncoder().encode(env.JWT_SECRET));
    const res = await api("GET", "/api/v1/project", { token: neverExpires });
    expect(res.status).toBe(401);
    expect(res.body).toMatchObject({ statusCode: 401, code: "invalid_token" });
  });
});
