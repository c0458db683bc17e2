import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { count } from "../fixtures";
import { api, signup, signupBody } from "../helpers";

describe("POST /auth/signup", () => {
  it("creates the business, default project and an API key stored only as a hash", async () => {
    const body = signupBody();
    const res = await api("POST", "/auth/signup", { body });
    expect(res.status).toBe(201);
    expect(res.headers.get("x-request-id")).toBeTruthy();
    expect(res.body).toMatchObject({
      user: { email: body.email, first_name: "Jane", last_name: "Doe" },
      business: { name: "Acme Inc" },
      default_project: { name: "default" },
    });
    expect(res.body.default_project.api_key).toMatch(/^echo_[0-9a-f]{64}$/);
    expect(res.body.access_token.split(".")).toHaveLength(3);

    const key: string = res.body.default_project.api_key;
    const stored = await env.DB.prepare("SELECT key_hash, key_prefix FROM api_keys WHERE project_id = ?").bind(res.body.default_project.id).first<{ key_hash: string; key_prefix: string }>();
    expect(stored?.key_prefix).toBe(key.slice(0, 16));
    expect(stored?.key_hash).not.toContain(key.slice(5));
    const digest = Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(key)))).map((b) => b.toString(16).padStart(2, "0")).join("");
    expect(stored?.key_hash).toBe(digest);

    const user = await env.DB.prepare("SELECT password_hash FROM users WHERE email = ?").bind(body.email).first<{ password_hash: string }>();
    expect(user?.password_hash).toMatch(/^pbkdf2-sha256\$100000\$/);
  });

  it("is also served under /api/auth", async () => {
    const res = await api("POST", "/api/auth/signup", { body: signupBody() });
    expect(res.status).toBe(201);
  });

  it("rejects a duplicate email with 409 and creates nothing", async () => {
    const body = signupBody();
    expect((await api("POST", "/auth/signup", { body })).status).toBe(201);
    const before = await count("businesses");
    const res = await api("POST", "/auth/signup", { body: { ...body, email: body.email.toUpperCase() } });
    expect(res.status).toBe(409);
    expect(res.body).toMatchObject({ statusCode: 409, error: "Conflict", code: "email_taken" });
    expect(await count("businesses")).toBe(before);
  });

  it.each([
    ["email", { email: "not-an-email" }],
    ["password", { password: "short" }],
    ["business_name", { business_name: "" }],
    ["industry", { industry: undefined }],
    ["first_name", { first_name: 42 }],
  ])("returns 400 naming %s when it is invalid", async (path, override) => {
    const res = await api("POST", "/auth/signup", { body: { ...signupBody(), ...override } });
    expect(res.status).toBe(400);
    expect(res.body.code).toBe("validation_error");
    expect(res.body.details).toEqual(expect.arrayContaining([expect.objectContaining({ path })]));
    expect(res.body.request_id).toBe(res.headers.get("x-request-id"));
  });

  it("returns 400 invalid_json for a malformed body", async () => {
    const res = await api("POST", "/auth/signup", { rawBody: "{not json" });
    expect(res.status).toBe(400);
    expect(res.body.code).toBe("invalid_json");
  });
});

describe("POST /auth/login", () => {
  it("returns tokens for the right password and 401 otherwise", async () => {
    const account = await signup();
    const ok = await api("POST", "/auth/login", { body: { email: account.email, password: "YourPassword123!" } });
    expect(ok.status).toBe(200);
    expect(ok.body.user).toMatchObject({ id: account.userId, email: account.email });
    expect(ok.body.access_token).toBeTruthy();

    const wrong = await api("POST", "/auth/login", { body: { email: account.email, password: "nope-nope-nope" } });
    expect(wrong.status).toBe(401);
    expect(wrong.body.code).toBe("invalid_credentials");
    const unknown = await api("POST", "/auth/login", { body: { email: "nobody@example.com", password: "YourPassword123!" } });
    expect(unknown.status).toBe(401);
  });
});

describe("POST /auth/refresh", () => {
  it("rotates refresh tokens and revokes the family when a used one comes back", async () => {
    const account = await signup();
    const first = await api("POST", "/auth/refresh", { token: account.refreshToken });
    expect(first.status).toBe(201);
    expect(first.body.refresh_token).not.toBe(account.refreshToken);
    expect(first.body.user.id).toBe(account.userId);

    const second = await api("POST", "/auth/refresh", { token: first.body.refresh_token });
    expect(second.status).toBe(201);

    // The first token again: reuse. The whole family dies, including the newest token.
    const reuse = await api("POST", "/auth/refresh", { token: account.refreshToken });
    expect(reuse.status).toBe(401);
    expect(reuse.body.code).toBe("refresh_token_reused");
    const newest = await api("POST", "/auth/refresh", { token: second.body.refresh_token });
    expect(newest.status).toBe(401);
  });

  it("refuses an access token, garbage and a missing header", async () => {
    const account = await signup();
    expect((await api("POST", "/auth/refresh", { token: account.accessToken })).status).toBe(401);
    expect((await api("POST", "/auth/refresh", { token: "abc.def.ghi" })).status).toBe(401);
    expect((await api("POST", "/auth/refresh")).status).toBe(401);
  });
});

describe("API credentials", () => {
  it("accepts the API key and a Bearer access token on /api/v1", async () => {
    const account = await signup();
    const byKey = await api("GET", "/api/v1/project", { key: account.key });
    expect(byKey.status).toBe(200);
    expect(byKey.body).toMatchObject({ id: account.projectId, business_id: account.businessId, name: "default" });
    const byToken = await api("GET", "/api/v1/project", { token: account.accessToken });
    expect(byToken.status).toBe(200);
    expect(byToken.body.id).toBe(account.projectId);
  });

  it("refuses missing, malformed, unknown and refresh credentials with 401", async () => {
    const account = await signup();
    expect((await api("GET", "/api/v1/project")).status).toBe(401);
    expect((await api("GET", "/api/v1/project", { key: "echo_123" })).status).toBe(401);
    expect((await api("GET", "/api/v1/project", { key: `echo_${"0".repeat(64)}` })).status).toBe(401);
    expect((await api("GET", "/api/v1/project", { token: account.refreshToken })).status).toBe(401);
  });
});
