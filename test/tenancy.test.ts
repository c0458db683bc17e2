import { beforeAll, describe, expect, it, vi } from "vitest";
import { api, expectStatus, signup, uniqueName, type Account } from "./helpers";

/**
 * Another tenant's object is always a 404, whatever the route, and stays as it was.
 *
 * Tenant A owns one of everything; tenant B, with its API key and with its user's Bearer token,
 * calls every route that takes an id with A's ids. To cover a new route, seed A's object in
 * `seed`, add a row to `routes` and, if A's object is visible elsewhere, a row to `views`.
 */

interface Ids {
  agentId: string;
  customerId: string;
  phoneId: string;
  apiKeyId: string;
  /** A's default project and a second one created with A's Bearer token. */
  defaultProjectId: string;
  projectId: string;
  notificationId: string;
  /** A batch none of whose items was accepted: complete, so it changes no more by itself. */
  batchId: string;
  blockedNumberId: string;
  webhookId: string;
  deliveryId: string;
  /** B's own customer and project, to reach A's objects through ids B may use. */
  callerCustomerId: string;
  callerProjectId: string;
}

interface RouteCase {
  name: string;
  method: "GET" | "POST" | "PATCH" | "DELETE";
  path: (ids: Ids) => string;
  /** Valid for the route, so that only ownership decides. */
  body?: unknown | ((ids: Ids) => unknown);
  code: string;
}

const routes: RouteCase[] = [
  { name: "get an agent", method: "GET", path: (ids) => `/api/v1/agents/${ids.agentId}`, code: "agent_not_found" },
  { name: "update an agent", method: "PATCH", path: (ids) => `/api/v1/agents/${ids.agentId}`, body: { name: "Hijacked", output_schema: null }, code: "agent_not_found" },
  { name: "disable an agent", method: "DELETE", path: (ids) => `/api/v1/agents/${ids.agentId}`, code: "agent_not_found" },
  { name: "get a customer", method: "GET", path: (ids) => `/api/v1/customers/${ids.customerId}`, code: "customer_not_found" },
  { name: "update a customer", method: "PATCH", path: (ids) => `/api/v1/customers/${ids.customerId}`, body: { first_name: "Hijacked", metadata: {} }, code: "customer_not_found" },
  { name: "delete a customer", method: "DELETE", path: (ids) => `/api/v1/customers/${ids.customerId}`, code: "customer_not_found" },
  { name: "add a phone to a customer", method: "POST", path: (ids) => `/api/v1/customers/${ids.customerId}/phones`, body: { value: "+14155550199", is_primary: true }, code: "customer_not_found" },
  { name: "update a customer's phone", method: "PATCH", path: (ids) => `/api/v1/customers/${ids.customerId}/phones/${ids.phoneId}`, body: { status: "opted_out" }, code: "customer_not_found" },
  { name: "update A's phone through B's own customer", method: "PATCH", path: (ids) => `/api/v1/customers/${ids.callerCustomerId}/phones/${ids.phoneId}`, body: { is_primary: true, status: "invalid" }, code: "phone_not_found" },
  { name: "revoke an API key", method: "PATCH", path: (ids) => `/api/v1/api-keys/${ids.apiKeyId}/revoke`, code: "api_key_not_found" },
  { name: "get a notification", method: "GET", path: (ids) => `/api/v1/notifications/${ids.notificationId}`, code: "notification_not_found" },
  { name: "download a notification's recording", method: "GET", path: (ids) => `/api/v1/notifications/${ids.notificationId}/recording`, code: "notification_not_found" },
  { name: "cancel a notification", method: "POST", path: (ids) => `/api/v1/notifications/${ids.notificationId}/cancel`, code: "notification_not_found" },
  { name: "call A's customer", method: "POST", path: () => "/api/v1/notifications", body: (ids: Ids) => ({ customer_id: ids.customerId, message: "Hi" }), code: "customer_not_found" },
  { name: "call with A's agent", method: "POST", path: () => "/api/v1/notifications", body: (ids: Ids) => ({ customer_id: ids.callerCustomerId, agent_id: ids.agentId }), code: "agent_not_found" },
  { name: "list webhooks of A's project", method: "GET", path: (ids) => `/api/v1/projects/${ids.defaultProjectId}/webhooks`, code: "project_not_found" },
  { name: "register a webhook on A's project", method: "POST", path: (ids) => `/api/v1/projects/${ids.defaultProjectId}/webhooks`, body: { url: "http://receiver.test/x", events: ["call.ended"] }, code: "project_not_found" },
  { name: "get a webhook", method: "GET", path: (ids) => `/api/v1/projects/${ids.callerProjectId}/webhooks/${ids.webhookId}`, code: "webhook_not_found" },
  { name: "update a webhook", method: "PATCH", path: (ids) => `/api/v1/projects/${ids.callerProjectId}/webhooks/${ids.webhookId}`, body: { url: "http://receiver.test/hijack" }, code: "webhook_not_found" },
  { name: "delete a webhook", method: "DELETE", path: (ids) => `/api/v1/projects/${ids.callerProjectId}/webhooks/${ids.webhookId}`, code: "webhook_not_found" },
  { name: "rotate a webhook's secret", method: "POST", path: (ids) => `/api/v1/projects/${ids.callerProjectId}/webhooks/${ids.webhookId}/secret/rotate`, code: "webhook_not_found" },
  { name: "send a webhook a test event", method: "POST", path: (ids) => `/api/v1/projects/${ids.callerProjectId}/webhooks/${ids.webhookId}/test`, code: "webhook_not_found" },
  { name: "list a webhook's deliveries", method: "GET", path: (ids) => `/api/v1/projects/${ids.callerProjectId}/webhooks/${ids.webhookId}/deliveries`, code: "webhook_not_found" },
  { name: "get a delivery", method: "GET", path: (ids) => `/api/v1/projects/${ids.callerProjectId}/webhooks/${ids.webhookId}/deliveries/${ids.deliveryId}`, code: "webhook_not_found" },
  { name: "retry a delivery", method: "POST", path: (ids) => `/api/v1/projects/${ids.callerProjectId}/webhooks/${ids.webhookId}/deliveries/${ids.deliveryId}/retry`, code: "webhook_not_found" },
  { name: "get a blocked number", method: "GET", path: (ids) => `/api/v1/blocked-numbers/${ids.blockedNumberId}`, code: "blocked_number_not_found" },
  { name: "unblock a number", method: "DELETE", path: (ids) => `/api/v1/blocked-numbers/${ids.blockedNumberId}`, code: "blocked_number_not_found" },
  { name: "get a batch", method: "GET", path: (ids) => `/api/v1/batches/${ids.batchId}`, code: "batch_not_found" },
  { name: "cancel a batch", method: "POST", path: (ids) => `/api/v1/batches/${ids.batchId}/cancel`, code: "batch_not_found" },
  { name: "get the default project", method: "GET", path: (ids) => `/api/v1/projects/${ids.defaultProjectId}`, code: "project_not_found" },
  { name: "get a second project", method: "GET", path: (ids) => `/api/v1/projects/${ids.projectId}`, code: "project_not_found" },
  { name: "change the default project's calling hours", method: "PATCH", path: (ids) => `/api/v1/projects/${ids.defaultProjectId}`, body: { calling_hours: { start: "00:00", end: "23:59", days: [1] } }, code: "project_not_found" },
  { name: "rename a second project", method: "PATCH", path: (ids) => `/api/v1/projects/${ids.projectId}`, body: { name: "Hijacked", calling_hours: null }, code: "project_not_found" },
];

/** How A sees its objects; each must read the same after B's attempts. */
const views: Array<{ name: string; path: (ids: Ids) => string }> = [
  { name: "agent", path: (ids) => `/api/v1/agents/${ids.agentId}` },
  { name: "customer and phones", path: (ids) => `/api/v1/customers/${ids.customerId}` },
  { name: "API keys", path: () => "/api/v1/api-keys" },
  { name: "projects", path: () => "/api/v1/projects" },
  { name: "default project", path: (ids) => `/api/v1/projects/${ids.defaultProjectId}` },
  { name: "notification", path: (ids) => `/api/v1/notifications/${ids.notificationId}` },
  { name: "recording", path: (ids) => `/api/v1/notifications/${ids.notificationId}/recording` },
  { name: "batch", path: (ids) => `/api/v1/batches/${ids.batchId}` },
  { name: "blocked numbers", path: () => "/api/v1/blocked-numbers" },
  { name: "webhook", path: (ids) => `/api/v1/projects/${ids.defaultProjectId}/webhooks/${ids.webhookId}` },
  { name: "deliveries", path: (ids) => `/api/v1/projects/${ids.defaultProjectId}/webhooks/${ids.webhookId}/deliveries` },
];

const callers: Array<[string, (b: Account) => { key?: string; token?: string }]> = [
  ["B's API key", (b) => ({ key: b.key })],
  ["B's Bearer token", (b) => ({ token: b.accessToken })],
];

async function seed(a: Account, b: Account): Promise<Ids> {
  const agent = await expectStatus(api("POST", "/api/v1/agents", { key: a.key, body: { name: "A's agent", system_prompt: "Hello {{recipient_first_name}}", output_schema: { type: "object" }, record: true } }), 201);
  const customer = await expectStatus(api("POST", "/api/v1/customers", { key: a.key, body: { external_id: "a-1", first_name: "Ann", last_name: "A", phone: "+14155550100" } }), 201);
  const phone = await expectStatus(api("POST", `/api/v1/customers/${customer.id}/phones`, { key: a.key, body: { value: "+14155550101" } }), 201);
  const apiKey = await expectStatus(api("POST", "/api/v1/api-keys", { key: a.key, body: { name: "A's key" } }), 201);
  const project = await expectStatus(api("POST", "/api/v1/projects", { token: a.accessToken, body: { name: "A's second project" } }), 201);
  const callerCustomer = await expectStatus(api("POST", "/api/v1/customers", { key: b.key, body: { external_id: "b-1", first_name: "Bob", last_name: "B", phone: "+14155550102" } }), 201);
  // The call is left to finish, and the webhook comes after it, so that nothing of A's changes by itself.
  const notification = await expectStatus(api("POST", "/api/v1/notifications", { key: a.key, body: { customer_id: customer.id, agent_id: agent.id } }), 201);
  const notificationId: string = notification.notification.id;
  await vi.waitFor(async () => expect((await api("GET", `/api/v1/notifications/${notificationId}`, { key: a.key })).body.status).toBe("completed"), { timeout: 10_000, interval: 50 });
  const batch = await expectStatus(api("POST", "/api/v1/notifications/batch", { key: a.key, body: { agent_id: agent.id, items: [{ external_id: "nobody" }] } }), 202);
  const blockedNumber = await expectStatus(api("POST", "/api/v1/blocked-numbers", { key: a.key, body: { phone: "+14155550103", reason: "A's list" } }), 201);
  const webhook = await expectStatus(api("POST", `/api/v1/projects/${a.projectId}/webhooks`, { key: a.key, body: { url: `http://receiver.test/${uniqueName("tenancy")}`, events: ["call.ended"] } }), 201);
  const test = await api("POST", `/api/v1/projects/${a.projectId}/webhooks/${webhook.id}/test`, { key: a.key });
  expect(test.body.status).toBe("success");
  return {
    notificationId,
    batchId: batch.batch.id,
    blockedNumberId: blockedNumber.id,
    webhookId: webhook.id,
    deliveryId: test.body.id,
    callerProjectId: b.projectId,
    agentId: agent.id,
    customerId: customer.id,
    phoneId: phone.id,
    apiKeyId: apiKey.id,
    defaultProjectId: a.projectId,
    projectId: project.id,
    callerCustomerId: callerCustomer.id,
  };
}

async function lookAt(a: Account, ids: Ids): Promise<Record<string, unknown>> {
  const seen: Record<string, unknown> = {};
  for (const view of views) {
    const res = await api("GET", view.path(ids), { token: a.accessToken });
    expect(res.status).toBe(200);
    seen[view.name] = res.body;
  }
  return seen;
}

describe("tenant isolation", () => {
  let a: Account;
  let b: Account;
  let ids: Ids;
  let before: Record<string, unknown>;

  beforeAll(async () => {
    [a, b] = await Promise.all([signup(), signup()]);
    ids = await seed(a, b);
    before = await lookAt(a, ids);
  });

  describe.each(callers)("with %s", (_caller, credentials) => {
    it.each(routes)("$name: 404 $code, and A's objects stay as they were", async (route) => {
      const res = await api(route.method, route.path(ids), { ...credentials(b), body: typeof route.body === "function" ? route.body(ids) : route.body });
      expect(res.status).toBe(404);
      expect(res.body).toMatchObject({ statusCode: 404, code: route.code });
      expect(await lookAt(a, ids)).toEqual(before);
    });

    it("lists show none of the other tenant's objects", async () => {
      for (const path of ["/api/v1/agents", "/api/v1/customers", "/api/v1/api-keys", "/api/v1/notifications", `/api/v1/projects/${b.projectId}/webhooks`]) {
        const res = await api("GET", path, credentials(b));
        expect(res.status).toBe(200);
        const listed = JSON.stringify(res.body);
        for (const id of Object.values(ids)) if (id !== ids.callerCustomerId && id !== ids.callerProjectId) expect(listed).not.toContain(id);
      }
    });
  });

  it("B's Bearer token cannot pick A's project with x-project-id", async () => {
    for (const projectId of [ids.defaultProjectId, ids.projectId]) {
      const res = await api("GET", `/api/v1/customers/${ids.customerId}`, { token: b.accessToken, headers: { "x-project-id": projectId } });
      expect(res.status).toBe(404);
      expect(res.body.code).toBe("project_not_found");
    }
  });
});
