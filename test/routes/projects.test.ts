import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { count } from "../fixtures";
import { api, signup, type Account } from "../helpers";

const UNKNOWN_ID = "0193b1c2-7e4a-7c1e-9d5a-2f1e4c3b2a10";

async function createProject(account: Account, name = "second") {
  const res = await api("POST", "/api/v1/projects", { token: account.accessToken, body: { name } });
  expect(res.status).toBe(201);
  return res.body as { id: string; name: string; api_key: string };
}

async function createKey(key: string, name = "ci") {
  const res = await api("POST", "/api/v1/api-keys", { key, body: { name } });
  expect(res.status).toBe(201);
  return res.body;
}

describe("projects", () => {
  it("GET /project is the key's project, or the user's default one", async () => {
    const account = await signup();
    const byKey = await api("GET", "/api/v1/project", { key: account.key });
    expect(byKey.status).toBe(200);
    expect(byKey.body).toEqual({
      id: account.projectId,
      business_id: account.businessId,
      name: "default",
      calling_hours: { start: "08:00", end: "21:00", days: [1, 2, 3, 4, 5, 6, 7] },
      calling_hours_set: false,
      max_concurrent_calls: 10,
      default_engine: "openai-realtime",
      live_calls: 0,
      queued_calls: 0,
      created_at: expect.any(String),
      updated_at: expect.any(String),
    });
    expect((await api("GET", "/api/v1/project", { token: account.accessToken })).body).toEqual(byKey.body);
  });

  it("POST /projects creates a project with its own working API key", async () => {
    const account = await signup();
    const res = await api("POST", "/api/v1/projects", { token: account.accessToken, body: { name: "  Staging  " } });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      id: expect.any(String),
      business_id: account.businessId,
      name: "Staging",
      calling_hours: { start: "08:00", end: "21:00", days: [1, 2, 3, 4, 5, 6, 7] },
      calling_hours_set: false,
      max_concurrent_calls: 10,
      default_engine: "openai-realtime",
      api_key: expect.stringMatching(/^echo_[0-9a-f]{64}$/),
      created_at: expect.any(String),
      updated_at: res.body.created_at,
    });
    const viaNewKey = await api("GET", "/api/v1/project", { key: res.body.api_key });
    expect(viaNewKey.body.id).toBe(res.body.id);
  });

  it("GET /projects lists the business's projects newest first, a page at a time", async () => {
    const account = await signup();
    const second = await createProject(account, "second");
    const third = await createProject(account, "third");
    await createProject(await signup(), "someone else's");

    const page1 = await api("GET", "/api/v1/projects?limit=2", { token: account.accessToken });
    expect(page1.status).toBe(200);
    expect(page1.body.map((p: { id: string }) => p.id)).toEqual([third.id, second.id]);
    expect(page1.body[0]).not.toHaveProperty("api_key");
    const page2 = await api("GET", `/api/v1/projects?limit=2&cursor=${page1.headers.get("x-next-cursor")}`, { token: account.accessToken });
    expect(page2.body.map((p: { id: string }) => p.id)).toEqual([account.projectId]);
    expect(page2.headers.get("x-next-cursor")).toBeNull();
  });

  it("listing and creating projects need a user's Bearer token: 403 with an API key, nothing created", async () => {
    const account = await signup();
    const list = await api("GET", "/api/v1/projects", { key: account.key });
    expect(list.status).toBe(403);
    expect(list.body).toMatchObject({ statusCode: 403, error: "Forbidden", code: "user_token_required" });
    const create = await api("POST", "/api/v1/projects", { key: account.key, body: { name: "sneaky" } });
    expect(create.status).toBe(403);
    expect(create.body.code).toBe("user_token_required");
    expect(await count("projects", "business_id = ?", account.businessId)).toBe(1);
    expect((await api("GET", "/api/v1/projects")).status).toBe(401);
  });

  it("POST /projects refuses a blank name with 400 and creates nothing", async () => {
    const account = await signup();
    const res = await api("POST", "/api/v1/projects", { token: account.accessToken, body: { name: " " } });
    expect(res.status).toBe(400);
    expect(res.body.details).toEqual([{ path: "name", message: expect.any(String) }]);
    expect(await count("projects", "business_id = ?", account.businessId)).toBe(1);
  });

  it("GET /projects/{projectId}: a user reaches every project of the business, an API key only its own", async () => {
    const account = await signup();
    const second = await createProject(account);
    expect((await api("GET", `/api/v1/projects/${second.id}`, { token: account.accessToken })).body).toMatchObject({ id: second.id, name: "second" });
    expect((await api("GET", `/api/v1/projects/${account.projectId}`, { key: account.key })).status).toBe(200);
    const otherProject = await api("GET", `/api/v1/projects/${second.id}`, { key: account.key });
    expect(otherProject.status).toBe(404);
    expect(otherProject.body).toMatchObject({ code: "project_not_found", message: "Project not found" });
    for (const id of [UNKNOWN_ID, "default"]) {
      const res = await api("GET", `/api/v1/projects/${id}`, { token: account.accessToken });
      expect(res.status).toBe(404);
      expect(res.body.code).toBe("project_not_found");
    }
  });

  it("x-project-id picks another project of the business for a Bearer token", async () => {
    const account = await signup();
    const second = await createProject(account);
    const headers = { "x-project-id": second.id };
    expect((await api("GET", "/api/v1/project", { token: account.accessToken, headers })).body.id).toBe(second.id);

    // Objects created this way belong to that project.
    const customer = await api("POST", "/api/v1/customers", { token: account.accessToken, headers, body: { external_id: "x", first_name: "A", last_name: "B", phone: "+14155550100" } });
    expect(customer.body.project_id).toBe(second.id);
    expect((await api("GET", `/api/v1/customers/${customer.body.id}`, { key: second.api_key })).status).toBe(200);
    expect((await api("GET", `/api/v1/customers/${customer.body.id}`, { key: account.key })).status).toBe(404);
  });

  it.each([
    ["an unknown project", () => Promise.resolve(UNKNOWN_ID)],
    ["another business's project", async () => (await signup()).projectId],
    ["a value that is not a UUID", () => Promise.resolve("default")],
  ])("x-project-id naming %s is 404 project_not_found", async (_case, projectId) => {
    const account = await signup();
    const res = await api("GET", "/api/v1/project", { token: account.accessToken, headers: { "x-project-id": await projectId() } });
    expect(res.status).toBe(404);
    expect(res.body.code).toBe("project_not_found");
  });
});

describe("API keys", () => {
  it("POST /api-keys shows the key once; it works at once", async () => {
    const account = await signup();
    const res = await api("POST", "/api/v1/api-keys", { key: account.key, body: { name: "CI" } });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      id: expect.any(String),
      project_id: account.projectId,
      name: "CI",
      key: expect.stringMatching(/^echo_[0-9a-f]{64}$/),
      key_prefix: res.body.key.slice(0, 16),
      status: "active",
      last_used_at: null,
      created_at: expect.any(String),
      updated_at: res.body.created_at,
    });
    expect((await api("GET", "/api/v1/project", { key: res.body.key })).body.id).toBe(account.projectId);
    const stored = await env.DB.prepare("SELECT * FROM api_keys WHERE id = ?").bind(res.body.id).first<Record<string, unknown>>();
    expect(Object.values(stored ?? {})).not.toContain(res.body.key);
  });

  it("GET /api-keys lists the project's keys newest first, metadata only", async () => {
    const account = await signup();
    const ci = await createKey(account.key, "ci");
    const cron = await createKey(account.key, "cron");
    const other = await createProject(account);
    await createKey(other.api_key, "elsewhere");

    const res = await api("GET", "/api/v1/api-keys", { key: account.key });
    expect(res.status).toBe(200);
    expect(res.body.map((k: { name: string }) => k.name)).toEqual(["cron", "ci", "default"]);
    for (const item of res.body) {
      expect(Object.keys(item).sort()).toEqual(["created_at", "id", "key_prefix", "last_used_at", "name", "project_id", "status", "updated_at"]);
    }
    const { key: _ci, ...ciMetadata } = ci;
    expect(res.body[1]).toEqual(ciMetadata);
    expect(JSON.stringify(res.body)).not.toContain(cron.key);

    const page = await api("GET", "/api/v1/api-keys?limit=1", { key: account.key });
    expect(page.body.map((k: { id: string }) => k.id)).toEqual([cron.id]);
    expect(page.headers.get("x-next-cursor")).toBeTruthy();
  });

  it("POST /api-keys refuses a missing name with 400 and creates nothing", async () => {
    const account = await signup();
    const res = await api("POST", "/api/v1/api-keys", { key: account.key, body: {} });
    expect(res.status).toBe(400);
    expect(res.body.details).toEqual([{ path: "name", message: expect.any(String) }]);
    expect(await count("api_keys", "project_id = ?", account.projectId)).toBe(1);
  });

  it("a revoked key gets 401 from the next request on; the others keep working", async () => {
    const account = await signup();
    const ci = await createKey(account.key);
    expect((await api("GET", "/api/v1/project", { key: ci.key })).status).toBe(200);

    const res = await api("PATCH", `/api/v1/api-keys/${ci.id}/revoke`, { key: account.key });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: ci.id, status: "revoked" });
    expect(res.body).not.toHaveProperty("key");

    const refused = await api("GET", "/api/v1/project", { key: ci.key });
    expect(refused.status).toBe(401);
    expect(refused.body.code).toBe("invalid_api_key");
    expect((await api("GET", "/api/v1/project", { key: account.key })).status).toBe(200);
    expect((await api("GET", "/api/v1/api-keys", { key: account.key })).body.find((k: { id: string }) => k.id === ci.id).status).toBe("revoked");
  });

  it("a key can revoke itself", async () => {
    const account = await signup();
    const ci = await createKey(account.key);
    expect((await api("PATCH", `/api/v1/api-keys/${ci.id}/revoke`, { key: ci.key })).status).toBe(200);
    expect((await api("GET", "/api/v1/project", { key: ci.key })).status).toBe(401);
  });

  it("revoking an unknown key or another project's is 404 api_key_not_found", async () => {
    const account = await signup();
    const other = await createProject(account);
    const otherKey = await createKey(other.api_key);
    for (const id of [UNKNOWN_ID, "not-a-uuid", otherKey.id]) {
      const res = await api("PATCH", `/api/v1/api-keys/${id}/revoke`, { key: account.key });
      expect(res.status).toBe(404);
      expect(res.body).toMatchObject({ code: "api_key_not_found", message: "API key not found" });
    }
    expect((await api("GET", "/api/v1/project", { key: otherKey.key })).status).toBe(200);
  });
});

describe("calling hours", () => {
  const DEFAULT_WINDOW = { start: "08:00", end: "21:00", days: [1, 2, 3, 4, 5, 6, 7] };
  const storedCallingHours = async (projectId: string) =>
    (await env.DB.prepare("SELECT calling_hours FROM projects WHERE id = ?").bind(projectId).first<{ calling_hours: string | null }>())?.calling_hours;

  it("PATCH sets the window (days deduplicated and sorted); both GETs show it as set", async () => {
    const account = await signup();
    const res = await api("PATCH", `/api/v1/projects/${account.projectId}`, { key: account.key, body: { calling_hours: { start: "09:00", end: "17:30", days: [5, 1, 2, 1] } } });
    expect(res.status).toBe(200);
    const window = { start: "09:00", end: "17:30", days: [1, 2, 5] };
    expect(res.body).toMatchObject({ id: account.projectId, name: "default", calling_hours: window, calling_hours_set: true });
    expect(JSON.parse((await storedCallingHours(account.projectId)) ?? "null")).toEqual(window);
    // A single project's read adds its calls under way and waiting.
    const withCalls = { ...res.body, live_calls: 0, queued_calls: 0 };
    expect((await api("GET", "/api/v1/project", { key: account.key })).body).toEqual(withCalls);
    expect((await api("GET", `/api/v1/projects/${account.projectId}`, { token: account.accessToken })).body).toEqual(withCalls);
  });

  it("takes a window that ends past midnight", async () => {
    const account = await signup();
    const res = await api("PATCH", `/api/v1/projects/${account.projectId}`, { key: account.key, body: { calling_hours: { start: "20:00", end: "02:00", days: [5, 6] } } });
    expect(res.status).toBe(200);
    expect(res.body.calling_hours).toEqual({ start: "20:00", end: "02:00", days: [5, 6] });
  });

  it("PATCH null goes back to the default window, shown as not set and stored as NULL", async () => {
    const account = await signup();
    await api("PATCH", `/api/v1/projects/${account.projectId}`, { key: account.key, body: { calling_hours: { start: "10:00", end: "12:00", days: [1] } } });
    const res = await api("PATCH", `/api/v1/projects/${account.projectId}`, { key: account.key, body: { calling_hours: null } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ calling_hours: DEFAULT_WINDOW, calling_hours_set: false });
    expect(await storedCallingHours(account.projectId)).toBeNull();
  });

  it("PATCH renames without touching the window", async () => {
    const account = await signup();
    await api("PATCH", `/api/v1/projects/${account.projectId}`, { key: account.key, body: { calling_hours: { start: "10:00", end: "12:00", days: [1] } } });
    const res = await api("PATCH", `/api/v1/projects/${account.projectId}`, { token: account.accessToken, body: { name: " Production " } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ name: "Production", calling_hours: { start: "10:00", end: "12:00", days: [1] }, calling_hours_set: true });
  });

  it.each([
    ["start is not HH:MM", { start: "8:00", end: "21:00", days: [1] }, "calling_hours.start"],
    ["end is 24:00", { start: "08:00", end: "24:00", days: [1] }, "calling_hours.end"],
    ["start equals end", { start: "08:00", end: "08:00", days: [1] }, "calling_hours.end"],
    ["days is empty", { start: "08:00", end: "21:00", days: [] }, "calling_hours.days"],
    ["a day is not 1–7", { start: "08:00", end: "21:00", days: [1, 8] }, "calling_hours.days.1"],
    ["days is missing", { start: "08:00", end: "21:00" }, "calling_hours.days"],
  ])("refuses a window whose %s with 400 details, and keeps the stored one", async (_case, callingHours, path) => {
    const account = await signup();
    const res = await api("PATCH", `/api/v1/projects/${account.projectId}`, { key: account.key, body: { calling_hours: callingHours } });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ code: "validation_error", details: expect.arrayContaining([{ path, message: expect.any(String) }]) });
    expect(await storedCallingHours(account.projectId)).toBeNull();
  });

  it("PATCH sets the default engine of the LLM path's calls; an unknown engine is a 400 and changes nothing", async () => {
    const account = await signup();
    const set = await api("PATCH", `/api/v1/projects/${account.projectId}`, { key: account.key, body: { default_engine: "openai-live" } });
    expect(set.status).toBe(200);
    expect(set.body.default_engine).toBe("openai-live");
    const bad = await api("PATCH", `/api/v1/projects/${account.projectId}`, { key: account.key, body: { default_engine: "gpt-live" } });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ code: "validation_error", details: [expect.objectContaining({ path: "default_engine" })] });
    expect((await api("GET", "/api/v1/project", { key: account.key })).body.default_engine).toBe("openai-live");
  });

  it("refuses an empty PATCH with 400", async () => {
    const account = await signup();
    const res = await api("PATCH", `/api/v1/projects/${account.projectId}`, { key: account.key, body: {} });
    expect(res.status).toBe(400);
    expect(res.body.code).toBe("validation_error");
  });

  it("PATCH: a user reaches every project of the business, an API key only its own", async () => {
    const account = await signup();
    const second = await createProject(account);
    const window = { start: "09:00", end: "18:00", days: [1, 2, 3, 4, 5] };
    const byKey = await api("PATCH", `/api/v1/projects/${second.id}`, { key: account.key, body: { calling_hours: window } });
    expect(byKey.status).toBe(404);
    expect(byKey.body.code).toBe("project_not_found");
    expect(await storedCallingHours(second.id)).toBeNull();
    const byUser = await api("PATCH", `/api/v1/projects/${second.id}`, { token: account.accessToken, body: { calling_hours: window } });
    expect(byUser.status).toBe(200);
    expect((await api("GET", "/api/v1/project", { key: second.api_key })).body.calling_hours).toEqual(window);
    const unknown = await api("PATCH", `/api/v1/projects/${UNKNOWN_ID}`, { token: account.accessToken, body: { calling_hours: null } });
    expect(unknown.status).toBe(404);
  });
});

describe("max_concurrent_calls", () => {
  it("defaults to 10, takes 1–1000 on PATCH, and refuses anything else with a 400", async () => {
    const account = await signup();
    expect((await api("GET", "/api/v1/project", { key: account.key })).body.max_concurrent_calls).toBe(10);
    const res = await api("PATCH", `/api/v1/projects/${account.projectId}`, { key: account.key, body: { max_concurrent_calls: 3 } });
    expect(res.status).toBe(200);
    expect(res.body.max_concurrent_calls).toBe(3);
    for (const bad of [0, 1001, 2.5, "5"]) {
      const refused = await api("PATCH", `/api/v1/projects/${account.projectId}`, { key: account.key, body: { max_concurrent_calls: bad } });
      expect(refused.status, String(bad)).toBe(400);
      expect(refused.body).toMatchObject({ code: "validation_error", details: [expect.objectContaining({ path: "max_concurrent_calls" })] });
    }
    expect((await api("GET", "/api/v1/project", { key: account.key })).body.max_concurrent_calls).toBe(3);
  });
});
