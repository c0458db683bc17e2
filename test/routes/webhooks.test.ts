import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { webhookRoutes } from "../../src/routes/webhooks";
import { count } from "../fixtures";
import { api, inbox, signup, uniqueName, type Account } from "../helpers";
import { WAIT } from "../webhooks/support";
import { quickstartSignature, verifyStandardSignature } from "../webhooks/verify";

const receiver = (name: string) => `http://receiver.test/${name}`;
const base = (account: Account) => `/api/v1/projects/${account.projectId}/webhooks`;

async function create(account: Account, body: Record<string, unknown> = {}) {
  const res = await api("POST", base(account), { key: account.key, body: { url: receiver(uniqueName("hook")), events: ["call.summary"], ...body } });
  expect(res.status).toBe(201);
  return res.body;
}

async function storedEndpoint(id: string) {
  return env.DB.prepare("SELECT * FROM webhook_endpoints WHERE id = ?").bind(id).first<Record<string, unknown>>();
}

describe("POST /projects/{projectId}/webhooks", () => {
  it("creates an endpoint and shows the signing secret only in this response", async () => {
    const account = await signup();
    const url = receiver(uniqueName("create"));
    const res = await api("POST", base(account), { key: account.key, body: { url, events: ["call.summary", "call.ended"] } });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      project_id: account.projectId,
      url,
      signing_secret: expect.stringMatching(/^whsec_[0-9a-f]{64}$/),
      status: "active",
      events: ["call.summary", "call.ended"],
      consecutive_failures: 0,
      failing_since: null,
      disabled_reason: null,
      created_at: expect.any(String),
      updated_at: expect.any(String),
    });

    const got = await api("GET", `${base(account)}/${res.body.id}`, { key: account.key });
    expect(got.status).toBe(200);
    const { signing_secret: _secret, ...withoutSecret } = res.body;
    expect(got.body).toEqual(withoutSecret);
    const list = await api("GET", base(account), { key: account.key });
    expect(list.body).toEqual([withoutSecret]);
  });

  it.each([
    ["a malformed URL", { url: "not a url" }, "url"],
    ["a non-http URL", { url: "ftp://receiver.test/x" }, "url"],
    ["a missing URL", { url: undefined }, "url"],
    ["no events", { events: [] }, "events"],
    ["a missing events list", { events: undefined }, "events"],
    ["an unknown event", { events: ["call.summary", "call.exploded"] }, "events.1"],
    ["a repeated event", { events: ["call.ended", "call.ended"] }, "events"],
  ])("refuses %s with 400 and creates nothing", async (_label, override, path) => {
    const account = await signup();
    const res = await api("POST", base(account), { key: account.key, body: { url: receiver("x"), events: ["call.summary"], ...override } });
    expect(res.status).toBe(400);
    expect(res.body.code).toBe("validation_error");
    expect(res.body.details).toEqual(expect.arrayContaining([expect.objectContaining({ path })]));
    expect(await count("webhook_endpoints", "project_id = ?", account.projectId)).toBe(0);
  });

  it("refuses a URL the guard does not allow with 422 saying why", async () => {
    const account = await signup();
    const res = await api("POST", base(account), { key: account.key, body: { url: "http://user:secret@receiver.test/x", events: ["call.summary"] } });
    expect(res.status).toBe(422);
    expect(res.body.code).toBe("webhook_url_not_allowed");
    expect(res.body.message).toContain("must not contain a username or password");
    expect(await count("webhook_endpoints", "project_id = ?", account.projectId)).toBe(0);
  });

  it("needs credentials", async () => {
    const account = await signup();
    expect((await api("POST", base(account), { body: { url: receiver("x"), events: ["call.summary"] } })).status).toBe(401);
    expect((await api("GET", base(account))).status).toBe(401);
  });

  it("lets a user's Bearer token manage webhooks of any project of the business", async () => {
    const account = await signup();
    const project = await api("POST", "/api/v1/projects", { token: account.accessToken, body: { name: "second" } });
    expect(project.status).toBe(201);
    const res = await api("POST", `/api/v1/projects/${project.body.id}/webhooks`, { token: account.accessToken, body: { url: receiver("x"), events: ["call.ended"] } });
    expect(res.status).toBe(201);
    expect(res.body.project_id).toBe(project.body.id);
    // The default project's API key does not reach the second project.
    expect((await api("GET", `/api/v1/projects/${project.body.id}/webhooks`, { key: account.key })).status).toBe(404);
  });
});

/** The API as deployed: ENVIRONMENT=production, where receivers must be public https:// hosts. */
const production = { ENVIRONMENT: "production" };

describe("the SSRF guard in production", () => {
  it.each([
    ["plain http", "http://hooks.example.com/echo", "must use https"],
    ["loopback", "https://127.0.0.1/echo", "loopback"],
    ["loopback in decimal", "https://2130706433/echo", "loopback"],
    ["IPv6 loopback", "https://[::1]/echo", "loopback"],
    ["a private address", "https://10.0.0.8/echo", "private"],
    ["a private address (192.168/16)", "https://192.168.1.20/echo", "private"],
    ["link-local / cloud metadata", "https://169.254.169.254/latest/meta-data", "link-local"],
    ["carrier-grade NAT", "https://100.64.0.1/echo", "carrier-grade NAT"],
    ["IPv4-mapped IPv6 private", "https://[::ffff:10.0.0.1]/echo", "IPv4-mapped"],
    ["localhost", "https://localhost/echo", "local or internal host name"],
    ["an .internal name", "https://metadata.google.internal/computeMetadata/v1", "local or internal host name"],
    ["credentials", "https://user:pass@hooks.example.com/echo", "username or password"],
    ["a low port", "https://hooks.example.com:22/echo", "port 22"],
    // Addresses that embed or reach IPv4 space through a transition mechanism, refused outright.
    ["IPv4-translated loopback", "https://[::ffff:0:127.0.0.1]/echo", "IPv4-translated"],
    ["6to4 of the metadata address", "https://[2002:a9fe:a9fe::]/echo", "6to4"],
    ["Teredo", "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/echo", "Teredo"],
    ["local-use NAT64 of the metadata address", "https://[64:ff9b:1::a9fe:a9fe]/echo", "NAT64"],
    // Names are resolved (fake DNS: test/fakes/dns.mjs) and every address they resolve to is judged.
    ["a name resolving to loopback", "https://127.0.0.1.nip.io/echo", "127.0.0.1.nip.io resolves to 127.0.0.1, a loopback address"],
    ["a name resolving to the metadata address", "https://169.254.169.254.nip.io/latest/meta-data", "resolves to 169.254.169.254, a link-local address"],
    ["a name with one private address among public ones", "https://mixed.example.com/echo", "resolves to 10.0.0.8, a private address"],
    ["a CNAME chain ending at a link-local address", "https://chain-private.example.com/echo", "resolves to 169.254.169.254, a link-local address"],
    ["a name that does not exist", "https://no-such-host.example.com/echo", "does not resolve"],
    ["a name whose lookup fails", "https://servfail.example.com/echo", "could not be resolved"],
  ])("refuses %s with 422 at create and at update", async (_label, url, reason) => {
    const account = await signup();
    const base = `/api/v1/projects/${account.projectId}/webhooks`;
    const created = await api("POST", base, { key: account.key, body: { url, events: ["call.summary"] }, bindings: production });
    expect(created.status).toBe(422);
    expect(created.body).toMatchObject({ code: "webhook_url_not_allowed" });
    expect(created.body.message).toContain(reason);
    expect(await count("webhook_endpoints", "project_id = ?", account.projectId)).toBe(0);

    const allowed = await api("POST", base, { key: account.key, body: { url: "https://hooks.example.com:8443/echo", events: ["call.summary"] }, bindings: production });
    expect(allowed.status).toBe(201);
    const updated = await api("PATCH", `${base}/${allowed.body.id}`, { key: account.key, body: { url }, bindings: production });
    expect(updated.status).toBe(422);
    expect(updated.body.message).toContain(reason);
    expect(await storedEndpoint(allowed.body.id)).toMatchObject({ url: "https://hooks.example.com:8443/echo" });
  });

  it.each(["https://hooks.example.com/echo", "https://chain-public.example.com/echo", "https://v4-only.example.com/echo", "https://8.8.8.8/echo"])(
    "accepts %s, a public host",
    async (url) => {
      const account = await signup();
      const created = await api("POST", `/api/v1/projects/${account.projectId}/webhooks`, { key: account.key, body: { url, events: ["call.summary"] }, bindings: production });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
    },
  );

  it("delivers a test event to a name that resolves to public addresses", async () => {
    const account = await signup();
    const name = uniqueName("production");
    const created = await api("POST", `/api/v1/projects/${account.projectId}/webhooks`, { key: account.key, body: { url: `https://receiver.test/${name}`, events: ["call.summary"] }, bindings: production });
    expect(created.status).toBe(201);
    const tested = await api("POST", `/api/v1/projects/${account.projectId}/webhooks/${created.body.id}/test`, { key: account.key, bindings: production });
    expect(tested.body.attempts).toEqual([expect.objectContaining({ http_status: 200, success: true, error_message: null })]);
    expect(await inbox(name)).toHaveLength(1);
  });
});

describe("listing, updating and deleting endpoints", () => {
  it("pages the list newest first with X-Next-Cursor", async () => {
    const account = await signup();
    const first = await create(account);
    const second = await create(account);
    const page1 = await api("GET", `${base(account)}?limit=1`, { key: account.key });
    expect(page1.body.map((w: { id: string }) => w.id)).toEqual([second.id]);
    const cursor = page1.headers.get("x-next-cursor");
    expect(cursor).toBeTruthy();
    const page2 = await api("GET", `${base(account)}?limit=1&cursor=${cursor}`, { key: account.key });
    expect(page2.body.map((w: { id: string }) => w.id)).toEqual([first.id]);
    expect(page2.headers.get("x-next-cursor")).toBeNull();
    expect((await api("GET", `${base(account)}?cursor=garbage!`, { key: account.key })).status).toBe(400);
  });

  it("updates the URL and events, disables and re-enables", async () => {
    const account = await signup();
    const hook = await create(account);
    const url = receiver(uniqueName("moved"));
    const updated = await api("PATCH", `${base(account)}/${hook.id}`, { key: account.key, body: { url, events: ["call.started"] } });
    expect(updated.status).toBe(200);
    expect(updated.body).toMatchObject({ url, events: ["call.started"], status: "active" });
    expect(updated.body.signing_secret).toBeUndefined();

    const disabled = await api("PATCH", `${base(account)}/${hook.id}`, { key: account.key, body: { status: "disabled" } });
    expect(disabled.body).toMatchObject({ status: "disabled", disabled_reason: "Disabled through the API" });

    await env.DB.prepare("UPDATE webhook_endpoints SET consecutive_failures = 7, failing_since = ? WHERE id = ?").bind("2026-01-01T00:00:00.000Z", hook.id).run();
    expect((await api("GET", `${base(account)}/${hook.id}`, { key: account.key })).body).toMatchObject({ consecutive_failures: 7, failing_since: "2026-01-01T00:00:00.000Z" });
    const enabled = await api("PATCH", `${base(account)}/${hook.id}`, { key: account.key, body: { status: "active" } });
    expect(enabled.body).toMatchObject({ status: "active", disabled_reason: null, consecutive_failures: 0, failing_since: null });
  });

  it.each([
    ["an empty body", {}, 400],
    ["a malformed URL", { url: "nope" }, 400],
    ["an unknown status", { status: "paused" }, 400],
    ["empty events", { events: [] }, 400],
    ["a refused URL", { url: "http://a:b@receiver.test/x" }, 422],
  ])("refuses %s and changes nothing", async (_label, body, status) => {
    const account = await signup();
    const hook = await create(account);
    const before = await storedEndpoint(hook.id);
    const res = await api("PATCH", `${base(account)}/${hook.id}`, { key: account.key, body });
    expect(res.status).toBe(status);
    expect(await storedEndpoint(hook.id)).toEqual(before);
  });

  it("deletes the endpoint with its deliveries and attempts", async () => {
    const account = await signup();
    const hook = await create(account);
    const test = await api("POST", `${base(account)}/${hook.id}/test`, { key: account.key });
    expect(test.status).toBe(200);
    expect(await count("webhook_attempts", "delivery_id = ?", test.body.id)).toBe(1);

    const res = await api("DELETE", `${base(account)}/${hook.id}`, { key: account.key });
    expect(res.status).toBe(204);
    expect(await count("webhook_endpoints", "id = ?", hook.id)).toBe(0);
    expect(await count("webhook_deliveries", "webhook_endpoint_id = ?", hook.id)).toBe(0);
    expect(await count("webhook_attempts", "delivery_id = ?", test.body.id)).toBe(0);
    expect((await api("GET", `${base(account)}/${hook.id}`, { key: account.key })).status).toBe(404);
    expect((await api("DELETE", `${base(account)}/${hook.id}`, { key: account.key })).status).toBe(404);
  });
});

describe("tenant isolation", () => {
  it("answers 404 for another tenant's project and webhook, and changes nothing", async () => {
    const owner = await signup();
    const other = await signup();
    const hook = await create(owner);
    const test = await api("POST", `${base(owner)}/${hook.id}/test`, { key: owner.key });
    const before = await storedEndpoint(hook.id);

    type Route = [method: string, path: string, body: unknown];
    // The owner's webhook and its deliveries, reached under the project `projectBase`.
    const hookRoutes = (projectBase: string): Route[] => [
      ["GET", `${projectBase}/${hook.id}`, undefined],
      ["PATCH", `${projectBase}/${hook.id}`, { status: "disabled" }],
      ["DELETE", `${projectBase}/${hook.id}`, undefined],
      ["POST", `${projectBase}/${hook.id}/secret/rotate`, undefined],
      ["POST", `${projectBase}/${hook.id}/test`, undefined],
      ["GET", `${projectBase}/${hook.id}/deliveries`, undefined],
      ["GET", `${projectBase}/${hook.id}/deliveries/${test.body.id}`, undefined],
      ["POST", `${projectBase}/${hook.id}/deliveries/${test.body.id}/retry`, undefined],
    ];
    const viaOwnersProject = base(owner);
    const viaOwnProject = base(other);
    const ownersProjectRoutes: Route[] = [
      ["GET", viaOwnersProject, undefined],
      ["POST", viaOwnersProject, { url: receiver("x"), events: ["call.ended"] }],
      ...hookRoutes(viaOwnersProject),
    ];
    for (const [method, path, body] of ownersProjectRoutes) {
      const res = await api(method, path, { key: other.key, body });
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(res.body.code).toBe("project_not_found");
    }
    for (const [method, path, body] of hookRoutes(viaOwnProject)) {
      const res = await api(method, path, { key: other.key, body });
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(res.body.code).toBe("webhook_not_found");
    }
    expect(await storedEndpoint(hook.id)).toEqual(before);
    expect(await count("webhook_deliveries", "webhook_endpoint_id = ?", hook.id)).toBe(1);
  });

  it("answers 404 for a delivery of another endpoint", async () => {
    const account = await signup();
    const a = await create(account);
    const b = await create(account);
    const test = await api("POST", `${base(account)}/${a.id}/test`, { key: account.key });
    const res = await api("GET", `${base(account)}/${b.id}/deliveries/${test.body.id}`, { key: account.key });
    expect(res.status).toBe(404);
    expect(res.body.code).toBe("webhook_delivery_not_found");
  });
});

describe("POST /{webhookId}/test and signatures", () => {
  it("delivers a signed webhook.test event now and returns what the receiver answered", async () => {
    const account = await signup();
    const name = uniqueName("test-event");
    const hook = await create(account, { url: receiver(name) });
    const res = await api("POST", `${base(account)}/${hook.id}/test`, { key: account.key });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      webhook_endpoint_id: hook.id,
      project_id: account.projectId,
      event_name: "webhook.test",
      status: "success",
      attempt_count: 1,
      next_retry_at: null,
      payload: { event_name: "webhook.test", customer_id: null, notification_id: null, data: { message: "This is a test event from Echo" } },
      attempts: [{ attempt_number: 1, triggered_by: "manual", http_status: 200, response_body: "ok", success: true, error_message: null }],
    });
    expect(res.body.payload.event_id).toBe(res.body.event_id);

    const [request] = await inbox(name);
    const headers = request!.headers;
    expect(headers).toMatchObject({ "x-echo-event": "webhook.test", "x-echo-delivery": res.body.id, "webhook-id": res.body.event_id, "user-agent": "Echo-Webhooks/1.0" });
    expect(JSON.parse(request!.body)).toEqual(res.body.payload);

    // Exactly the quickstart's verification over the raw bytes received.
    expect(headers["x-echo-signature"]).toBe(quickstartSignature(hook.signing_secret, request!.body));
    expect(headers["x-echo-signature"]).not.toBe(quickstartSignature(hook.signing_secret, request!.body.replace("test event", "tost event")));
    const timestamp = headers["webhook-timestamp"]!;
    expect(await verifyStandardSignature(hook.signing_secret, res.body.event_id, timestamp, request!.body, headers["webhook-signature"]!)).toBe(true);
    expect(await verifyStandardSignature(hook.signing_secret, res.body.event_id, String(Number(timestamp) + 1), request!.body, headers["webhook-signature"]!)).toBe(false);
    expect(await verifyStandardSignature(hook.signing_secret, res.body.event_id, timestamp, `${request!.body} `, headers["webhook-signature"]!)).toBe(false);
  });

  it("returns a failed test with the receiver's answer and retries it on the schedule", async () => {
    const account = await signup();
    const hook = await create(account, { url: receiver(uniqueName("status-500")) });
    const res = await api("POST", `${base(account)}/${hook.id}/test`, { key: account.key });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: "retrying", attempt_count: 1, attempts: [{ http_status: 500, response_body: "receiver says no", success: false }] });
    expect(res.body.next_retry_at).toEqual(expect.any(String));

    const failed = await vi.waitFor(async () => {
      const delivery = await api("GET", `${base(account)}/${hook.id}/deliveries/${res.body.id}`, { key: account.key });
      expect(delivery.body.status).toBe("failed");
      return delivery.body;
    }, WAIT);
    expect(failed.attempts.map((a: { triggered_by: string }) => a.triggered_by)).toEqual(["manual", "auto", "auto"]);
  });

  it("refuses to test a disabled endpoint", async () => {
    const account = await signup();
    const hook = await create(account);
    await api("PATCH", `${base(account)}/${hook.id}`, { key: account.key, body: { status: "disabled" } });
    const res = await api("POST", `${base(account)}/${hook.id}/test`, { key: account.key });
    expect(res.status).toBe(422);
    expect(res.body.code).toBe("webhook_disabled");
    expect(await count("webhook_deliveries", "webhook_endpoint_id = ?", hook.id)).toBe(0);
  });

  it("after rotation signs with the new secret and, for 24 hours, the previous one too", async () => {
    const account = await signup();
    const name = uniqueName("rotate");
    const hook = await create(account, { url: receiver(name) });
    const rotated = await api("POST", `${base(account)}/${hook.id}/secret/rotate`, { key: account.key });
    expect(rotated.status).toBe(200);
    expect(rotated.body).toEqual({ signing_secret: expect.stringMatching(/^whsec_[0-9a-f]{64}$/) });
    const secret: string = rotated.body.signing_secret;
    expect(secret).not.toBe(hook.signing_secret);
    const stored = await storedEndpoint(hook.id);
    expect(stored).toMatchObject({ signing_secret: secret, previous_signing_secret: hook.signing_secret });
    const expiresIn = Date.parse(String(stored?.previous_secret_expires_at)) - Date.now();
    expect(expiresIn).toBeGreaterThan(23.9 * 3600_000);
    expect(expiresIn).toBeLessThanOrEqual(24 * 3600_000);

    const test = await api("POST", `${base(account)}/${hook.id}/test`, { key: account.key });
    expect(test.body.status).toBe("success");
    const [request] = await inbox(name);
    const headers = request!.headers;
    expect(headers["x-echo-signature"]).toBe(quickstartSignature(secret, request!.body));
    const signatures = headers["webhook-signature"]!.split(" ");
    expect(signatures).toHaveLength(2);
    expect(await verifyStandardSignature(secret, test.body.event_id, headers["webhook-timestamp"]!, request!.body, signatures[0]!)).toBe(true);
    expect(await verifyStandardSignature(hook.signing_secret, test.body.event_id, headers["webhook-timestamp"]!, request!.body, signatures[1]!)).toBe(true);
  });
});

describe("delivery logs", () => {
  it("lists deliveries newest first with filters and a cursor", async () => {
    const account = await signup();
    const hook = await create(account, { url: receiver(uniqueName("logs")) });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await api("POST", `${base(account)}/${hook.id}/test`, { key: account.key })).body.id);

    const page1 = await api("GET", `${base(account)}/${hook.id}/deliveries?limit=2`, { key: account.key });
    expect(page1.status).toBe(200);
    expect(page1.body.data.map((d: { id: string }) => d.id)).toEqual([ids[2], ids[1]]);
    expect(page1.body.data[0]).toMatchObject({ webhook_endpoint_id: hook.id, event_name: "webhook.test", status: "success", attempt_count: 1, payload: { event_name: "webhook.test" } });
    expect(page1.body.data[0].attempts).toBeUndefined();
    const page2 = await api("GET", `${base(account)}/${hook.id}/deliveries?limit=2&cursor=${page1.body.next_cursor}`, { key: account.key });
    expect(page2.body).toEqual({ data: [expect.objectContaining({ id: ids[0] })], next_cursor: null });

    const succeeded = await api("GET", `${base(account)}/${hook.id}/deliveries?status=success&event_name=webhook.test`, { key: account.key });
    expect(succeeded.body.data).toHaveLength(3);
    expect((await api("GET", `${base(account)}/${hook.id}/deliveries?status=failed`, { key: account.key })).body.data).toEqual([]);
    expect((await api("GET", `${base(account)}/${hook.id}/deliveries?event_name=call.ended`, { key: account.key })).body.data).toEqual([]);
    expect((await api("GET", `${base(account)}/${hook.id}/deliveries?status=bogus`, { key: account.key })).status).toBe(400);
  });

  it("replays a successful delivery on manual retry", async () => {
    const account = await signup();
    const name = uniqueName("replay");
    const hook = await create(account, { url: receiver(name) });
    const test = await api("POST", `${base(account)}/${hook.id}/test`, { key: account.key });
    const retry = await api("POST", `${base(account)}/${hook.id}/deliveries/${test.body.id}/retry`, { key: account.key });
    expect(retry.status).toBe(202);
    expect(retry.body).toMatchObject({ id: test.body.id, status: "pending", attempt_count: 1 });

    const replayed = await vi.waitFor(async () => {
      const delivery = await api("GET", `${base(account)}/${hook.id}/deliveries/${test.body.id}`, { key: account.key });
      expect(delivery.body.attempts).toHaveLength(2);
      return delivery.body;
    }, WAIT);
    expect(replayed).toMatchObject({ status: "success", attempt_count: 2 });
    expect(replayed.attempts[1]).toMatchObject({ attempt_number: 2, triggered_by: "manual", success: true });
    const requests = await inbox(name);
    expect(requests).toHaveLength(2);
    expect(requests[1]!.body).toBe(requests[0]!.body);
  });

  it("refuses to retry while the endpoint is disabled", async () => {
    const account = await signup();
    const hook = await create(account);
    const test = await api("POST", `${base(account)}/${hook.id}/test`, { key: account.key });
    await api("PATCH", `${base(account)}/${hook.id}`, { key: account.key, body: { status: "disabled" } });
    const res = await api("POST", `${base(account)}/${hook.id}/deliveries/${test.body.id}/retry`, { key: account.key });
    expect(res.status).toBe(422);
    expect(res.body.code).toBe("webhook_disabled");
    expect((await api("GET", `${base(account)}/${hook.id}/deliveries/${test.body.id}`, { key: account.key })).body.status).toBe("success");
  });

  it("answers 404 for an unknown delivery", async () => {
    const account = await signup();
    const hook = await create(account);
    const res = await api("GET", `${base(account)}/${hook.id}/deliveries/0193b1c2-7e4a-7c1e-9d5a-2f1e4c3b2a10`, { key: account.key });
    expect(res.status).toBe(404);
    expect(res.body.code).toBe("webhook_delivery_not_found");
  });
});

describe("OpenAPI", () => {
  it("documents the webhook routes", () => {
    // The router's own document: the app-wide /openapi.json also depends on the other routers.
    const doc = webhookRoutes.getOpenAPI31Document({ openapi: "3.1.0", info: { title: "webhooks", version: "1" } });
    expect(Object.keys(doc.paths ?? {}).sort()).toEqual([
      "/projects/{projectId}/webhooks",
      "/projects/{projectId}/webhooks/{webhookId}",
      "/projects/{projectId}/webhooks/{webhookId}/deliveries",
      "/projects/{projectId}/webhooks/{webhookId}/deliveries/{deliveryId}",
      "/projects/{projectId}/webhooks/{webhookId}/deliveries/{deliveryId}/retry",
      "/projects/{projectId}/webhooks/{webhookId}/secret/rotate",
      "/projects/{projectId}/webhooks/{webhookId}/test",
    ]);
    expect(doc.paths?.["/projects/{projectId}/webhooks/{webhookId}/deliveries/{deliveryId}/retry"]?.post?.description).toContain("replayed");
  });
});
