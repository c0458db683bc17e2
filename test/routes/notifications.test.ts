import { listDurableObjectIds } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { countRows, createAgent, createCustomer, disableAgent, QUICKSTART_AGENT, QUICKSTART_OPENING, QUICKSTART_VARIABLES, quickstartCustomer, setPhoneStatus, waitUntilEnded } from "../fixtures";
import { api, signup, type Account } from "../helpers";

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

async function quickstartSetup(phone?: string) {
  const account = await signup();
  const agent = await createAgent(account, QUICKSTART_AGENT);
  const customer = await createCustomer(account, quickstartCustomer(phone));
  return { account, agent, customer, body: { customer_id: customer.id, agent_id: agent.id, variables: QUICKSTART_VARIABLES } };
}

async function callSessionIds(): Promise<Set<string>> {
  return new Set((await listDurableObjectIds(env.CALL_SESSION)).map((id) => id.toString()));
}

/** Runs a request that must be refused, and shows it wrote no notification and started no call. */
async function expectRefused(account: Account, body: unknown, status: number, code: string) {
  const sessionsBefore = await callSessionIds();
  const res = await api("POST", "/api/v1/notifications", { key: account.key, body });
  expect(res.status).toBe(status);
  expect(res.body.code).toBe(code);
  expect(await countRows("notifications", account.projectId)).toBe(0);
  expect(await countRows("idempotency_keys", account.projectId)).toBe(0);
  const sessionsAfter = await callSessionIds();
  expect([...sessionsAfter].filter((id) => !sessionsBefore.has(id))).toEqual([]);
  return res;
}

describe("POST /api/v1/notifications", () => {
  it("accepts the quickstart's step 4 verbatim and answers with the full notification and the queued call", async () => {
    const { account, agent, customer, body } = await quickstartSetup();
    const res = await api("POST", "/api/v1/notifications", { key: account.key, body });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      notification: {
        id: expect.stringMatching(UUID),
        project_id: account.projectId,
        customer_id: customer.id,
        agent_id: agent.id,
        status: "in_progress",
        batch_id: null,
        scheduled_for: null,
        queued_reason: null,
        ignore_calling_hours: false,
        target_phone_e164: "+14155552671",
        message: null,
        context: null,
        variables: QUICKSTART_VARIABLES,
        collect_feedback: false,
        max_duration_seconds: 180,
        call_id: res.body.call.callId,
        call_status: "queued",
        ended_reason: null,
        call_result: null,
        transcript: [],
        started_at: null,
        answered_at: null,
        ended_at: null,
        duration_seconds: null,
        answered_by: null,
        opted_out: false,
        recording_available: false,
        usage: null,
        retry: null,
        attempts: [],
        simulated: true,
        error_message: null,
        created_at: expect.stringMatching(ISO),
        updated_at: expect.stringMatching(ISO),
      },
      call: { callId: expect.stringMatching(/^call-[0-9a-f]{32}$/), status: "queued" },
    });
    const ended = await waitUntilEnded(account, res.body.notification.id);
    expect(ended).toMatchObject({ status: "completed", call_result: { confirmed: true, reschedule_request: null } });
    expect(ended.transcript[0]).toMatchObject({ role: "agent", text: QUICKSTART_OPENING });
  });

  it("takes max_duration_seconds from the request, else from the agent", async () => {
    const { account, customer } = await quickstartSetup();
    const agent = await createAgent(account, { ...QUICKSTART_AGENT, max_duration_seconds: 90 });
    const body = { customer_id: customer.id, agent_id: agent.id, variables: QUICKSTART_VARIABLES };
    const fromAgent = await api("POST", "/api/v1/notifications", { key: account.key, body });
    expect(fromAgent.body.notification.max_duration_seconds).toBe(90);
    const fromRequest = await api("POST", "/api/v1/notifications", { key: account.key, body: { ...body, max_duration_seconds: 45 } });
    expect(fromRequest.body.notification.max_duration_seconds).toBe(45);
  });

  it("stores what it has not got yet as NULL, not as the JSON text null", async () => {
    const account = await signup();
    const customer = await createCustomer(account, quickstartCustomer());
    const scheduledAt = new Date(Date.now() + 24 * 3600_000).toISOString();
    const res = await api("POST", "/api/v1/notifications", { key: account.key, body: { customer_id: customer.id, message: "Your appointment is on Monday.", scheduled_at: scheduledAt } });
    expect(res.status).toBe(201);
    const stored = await env.DB.prepare(
      "SELECT typeof(output_schema) AS output_schema, typeof(call_result) AS call_result, typeof(retry) AS retry, typeof(usage) AS usage, typeof(variables) AS variables, collect_feedback FROM notifications WHERE id = ?",
    )
      .bind(res.body.notification.id)
      .first();
    expect(stored).toEqual({ output_schema: "null", call_result: "null", retry: "null", usage: "null", variables: "text", collect_feedback: 0 });
  });

  describe("the LLM path", () => {
    it("calls with the message and, with collect_feedback, stores the person's answer", async () => {
      const account = await signup();
      const customer = await createCustomer(account, quickstartCustomer());
      const res = await api("POST", "/api/v1/notifications", {
        key: account.key,
        body: { customer_id: customer.id, message: "Your appointment is on Monday at 9 AM.", collect_feedback: true },
      });
      expect(res.status).toBe(201);
      expect(res.body.notification).toMatchObject({ agent_id: null, message: "Your appointment is on Monday at 9 AM.", collect_feedback: true, max_duration_seconds: 180 });
      const ended = await waitUntilEnded(account, res.body.notification.id);
      expect(ended.status).toBe("completed");
      expect(ended.call_result).toEqual({ response: "confirmed", reschedule_time: null, notes: null });
      expect(ended.transcript[0]).toMatchObject({
        role: "agent",
        text: "Hi John, this is Acme Inc calling. Your appointment is on Monday at 9 AM. Can you confirm, or would you like to cancel or reschedule?",
      });
    });

    it("has no call_result without collect_feedback", async () => {
      const account = await signup();
      const customer = await createCustomer(account, quickstartCustomer());
      const res = await api("POST", "/api/v1/notifications", { key: account.key, body: { customer_id: customer.id, message: "Your order shipped." } });
      const ended = await waitUntilEnded(account, res.body.notification.id);
      expect(ended).toMatchObject({ status: "completed", call_result: null, error_message: null });
      expect(ended.transcript[0].text).toBe("Hi John, this is Acme Inc calling. Your order shipped.");
    });

    it("requires a message without agent_id (400 naming message) and writes nothing", async () => {
      const account = await signup();
      const customer = await createCustomer(account, quickstartCustomer());
      const res = await expectRefused(account, { customer_id: customer.id }, 400, "validation_error");
      expect(res.body.details).toEqual([expect.objectContaining({ path: "message" })]);
    });
  });

  describe("refusals place no call and write nothing", () => {
    it("404 customer_not_found for an unknown customer or another project's", async () => {
      const { account, agent } = await quickstartSetup();
      const other = await quickstartSetup();
      await expectRefused(account, { customer_id: "0193b1c2-7e4a-7c1e-9d5a-2f1e4c3b2a10", agent_id: agent.id }, 404, "customer_not_found");
      await expectRefused(account, { customer_id: other.customer.id, agent_id: agent.id, variables: QUICKSTART_VARIABLES }, 404, "customer_not_found");
    });

    it("404 agent_not_found for an unknown agent or another business's", async () => {
      const { account, customer } = await quickstartSetup();
      const other = await quickstartSetup();
      await expectRefused(account, { customer_id: customer.id, agent_id: "nope" }, 404, "agent_not_found");
      await expectRefused(account, { customer_id: customer.id, agent_id: other.agent.id, variables: QUICKSTART_VARIABLES }, 404, "agent_not_found");
    });

    it("422 agent_disabled for a disabled agent", async () => {
      const { account, agent, body } = await quickstartSetup();
      await disableAgent(account, agent.id);
      await expectRefused(account, body, 422, "agent_disabled");
    });

    it("422 no_active_phone when the customer has no phone or only an invalid one", async () => {
      const { account, agent, customer, body } = await quickstartSetup();
      await setPhoneStatus(account, customer.id, customer.phones[0]!.id, "invalid");
      await expectRefused(account, body, 422, "no_active_phone");
      const phoneless = await createCustomer(account, quickstartCustomer(null));
      await expectRefused(account, { ...body, customer_id: phoneless.id, agent_id: agent.id }, 422, "no_active_phone");
    });

    it("422 phone_opted_out for an opted-out phone", async () => {
      const { account, customer, body } = await quickstartSetup();
      await setPhoneStatus(account, customer.id, customer.phones[0]!.id, "opted_out");
      await expectRefused(account, body, 422, "phone_opted_out");
    });

    it("422 missing_variables listing every unfilled name, across prompt, first message and voicemail message", async () => {
      const { account, customer } = await quickstartSetup();
      const agent = await createAgent(account, { ...QUICKSTART_AGENT, first_message: "Hello {{ salutation }}", voicemail_message: "Call {{callback_number}} ({{doctor_name}})" });
      const res = await expectRefused(account, { customer_id: customer.id, agent_id: agent.id, variables: { doctor_name: "Dr. Patel" } }, 422, "missing_variables");
      expect(res.body.missing_variables).toEqual(["appointment_time", "salutation", "callback_number"]);
      expect(res.body.message).toContain("appointment_time");
    });

    it("checks in the documented order: customer, agent, agent status, phone, variables", async () => {
      const { account, agent, customer } = await quickstartSetup();
      await disableAgent(account, agent.id);
      await setPhoneStatus(account, customer.id, customer.phones[0]!.id, "opted_out");
      await expectRefused(account, { customer_id: "missing", agent_id: "missing" }, 404, "customer_not_found");
      await expectRefused(account, { customer_id: customer.id, agent_id: "missing" }, 404, "agent_not_found");
      await expectRefused(account, { customer_id: customer.id, agent_id: agent.id }, 422, "agent_disabled");
      await expectRefused(account, { customer_id: customer.id, message: "hi {{nope}}" }, 422, "phone_opted_out");
    });

    it.each([
      ["message", { message: "" }],
      ["max_duration_seconds", { max_duration_seconds: 29 }],
      ["max_duration_seconds", { max_duration_seconds: 601 }],
      ["context", { context: "x".repeat(4001) }],
      ["variables", { variables: Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`v${i}`, "x"])) }],
      ["variables.long", { variables: { long: "x".repeat(1001) } }],
      ["collect_feedback", { agent_id: "some-agent", collect_feedback: true }],
    ])("400 naming %s", async (path, override) => {
      const account = await signup();
      const customer = await createCustomer(account, quickstartCustomer());
      const res = await expectRefused(account, { customer_id: customer.id, message: "Hello", ...override }, 400, "validation_error");
      expect(res.body.details).toEqual(expect.arrayContaining([expect.objectContaining({ path })]));
    });
  });

  describe("Idempotency-Key", () => {
    it("replays the first response for the same key and body and places no second call", async () => {
      const { account, body } = await quickstartSetup();
      const headers = { "Idempotency-Key": "order-42-reminder" };
      const first = await api("POST", "/api/v1/notifications", { key: account.key, body, headers });
      expect(first.status).toBe(201);
      expect(first.headers.get("idempotent-replayed")).toBeNull();
      await waitUntilEnded(account, first.body.notification.id);

      // The same body with its keys in another order is the same request.
      const reordered = { variables: { doctor_name: "Dr. Patel", appointment_time: "Thursday March 20th at 2:00 PM" }, agent_id: body.agent_id, customer_id: body.customer_id };
      const second = await api("POST", "/api/v1/notifications", { key: account.key, body: reordered, headers });
      expect(second.status).toBe(201);
      expect(second.headers.get("idempotent-replayed")).toBe("true");
      expect(second.body).toEqual(first.body);
      expect(await countRows("notifications", account.projectId)).toBe(1);
    });

    it("refuses the same key with another body with 409 idempotency_key_reused", async () => {
      const { account, body } = await quickstartSetup();
      const headers = { "Idempotency-Key": "k1" };
      expect((await api("POST", "/api/v1/notifications", { key: account.key, body, headers })).status).toBe(201);
      const other = await api("POST", "/api/v1/notifications", { key: account.key, body: { ...body, max_duration_seconds: 60 }, headers });
      expect(other.status).toBe(409);
      expect(other.body.code).toBe("idempotency_key_reused");
      expect(await countRows("notifications", account.projectId)).toBe(1);
    });

    it("makes one notification from two racing requests with one key", async () => {
      const { account, body } = await quickstartSetup();
      const headers = { "Idempotency-Key": "race" };
      const [a, b] = await Promise.all([api("POST", "/api/v1/notifications", { key: account.key, body, headers }), api("POST", "/api/v1/notifications", { key: account.key, body, headers })]);
      expect([a.status, b.status]).toEqual([201, 201]);
      expect(a.body.notification.id).toBe(b.body.notification.id);
      expect(await countRows("notifications", account.projectId)).toBe(1);
    });

    it("scopes keys to the project and forgets them after 24 hours", async () => {
      const { account, body } = await quickstartSetup();
      const other = await quickstartSetup();
      const headers = { "Idempotency-Key": "shared" };
      const first = await api("POST", "/api/v1/notifications", { key: account.key, body, headers });
      expect((await api("POST", "/api/v1/notifications", { key: other.account.key, body: other.body, headers })).status).toBe(201);
      expect(await countRows("notifications", other.account.projectId)).toBe(1);

      await env.DB.prepare("UPDATE idempotency_keys SET expires_at = ? WHERE project_id = ?").bind(new Date(Date.now() - 1000).toISOString(), account.projectId).run();
      const after = await api("POST", "/api/v1/notifications", { key: account.key, body, headers });
      expect(after.status).toBe(201);
      expect(after.headers.get("idempotent-replayed")).toBeNull();
      expect(after.body.notification.id).not.toBe(first.body.notification.id);
      expect(await countRows("notifications", account.projectId)).toBe(2);
      expect(await countRows("idempotency_keys", account.projectId)).toBe(1);
    });

    it("rejects a key that is too long or not printable with 400", async () => {
      const { account, body } = await quickstartSetup();
      for (const key of ["x".repeat(256), "tab\there"]) {
        const res = await api("POST", "/api/v1/notifications", { key: account.key, body, headers: { "Idempotency-Key": key } });
        expect(res.status).toBe(400);
        expect(res.body.details).toEqual([expect.objectContaining({ path: "idempotency-key" })]);
      }
      expect(await countRows("notifications", account.projectId)).toBe(0);
    });
  });
});

describe("GET /api/v1/notifications", () => {
  it("lists newest first with filters and cursor pages", async () => {
    const { account, agent, customer, body } = await quickstartSetup();
    const second = await createCustomer(account, quickstartCustomer("+14155550101"));
    const a = await api("POST", "/api/v1/notifications", { key: account.key, body });
    const b = await api("POST", "/api/v1/notifications", { key: account.key, body: { ...body, customer_id: second.id } });
    const c = await api("POST", "/api/v1/notifications", { key: account.key, body: { customer_id: customer.id, message: "LLM path" } });
    const ids = [a, b, c].map((r) => r.body.notification.id as string);
    await Promise.all(ids.map((id) => waitUntilEnded(account, id)));

    const all = await api("GET", "/api/v1/notifications", { key: account.key });
    expect(all.status).toBe(200);
    expect(all.body.map((n: { id: string }) => n.id)).toEqual([...ids].reverse());

    const page1 = await api("GET", "/api/v1/notifications?limit=2", { key: account.key });
    expect(page1.body.map((n: { id: string }) => n.id)).toEqual([ids[2], ids[1]]);
    const cursor = page1.headers.get("x-next-cursor");
    expect(cursor).toBeTruthy();
    const page2 = await api("GET", `/api/v1/notifications?limit=2&cursor=${cursor}`, { key: account.key });
    expect(page2.body.map((n: { id: string }) => n.id)).toEqual([ids[0]]);
    expect(page2.headers.get("x-next-cursor")).toBeNull();

    const failed = await api("GET", "/api/v1/notifications?status=failed", { key: account.key });
    expect(failed.body.map((n: { id: string }) => n.id)).toEqual([ids[1]]);
    const byCustomer = await api("GET", `/api/v1/notifications?customer_id=${customer.id}`, { key: account.key });
    expect(byCustomer.body.map((n: { id: string }) => n.id)).toEqual([ids[2], ids[0]]);
    const byAgent = await api("GET", `/api/v1/notifications?agent_id=${agent.id}`, { key: account.key });
    expect(byAgent.body.map((n: { id: string }) => n.id)).toEqual([ids[1], ids[0]]);

    expect((await api("GET", "/api/v1/notifications?status=done", { key: account.key })).status).toBe(400);
    const otherTenant = await signup();
    expect((await api("GET", "/api/v1/notifications", { key: otherTenant.key })).body).toEqual([]);
  });

  it("returns 404 notification_not_found for another project's notification", async () => {
    const { account, body } = await quickstartSetup();
    const created = await api("POST", "/api/v1/notifications", { key: account.key, body });
    const other = await signup();
    const res = await api("GET", `/api/v1/notifications/${created.body.notification.id}`, { key: other.key });
    expect(res.status).toBe(404);
    expect(res.body.code).toBe("notification_not_found");
    expect((await api("POST", `/api/v1/notifications/${created.body.notification.id}/cancel`, { key: other.key })).status).toBe(404);
  });
});

describe("POST /api/v1/notifications/{id}/cancel", () => {
  it("refuses to cancel an ended notification with 409 notification_already_ended", async () => {
    const { account, body } = await quickstartSetup();
    const created = await api("POST", "/api/v1/notifications", { key: account.key, body });
    const ended = await waitUntilEnded(account, created.body.notification.id);
    const res = await api("POST", `/api/v1/notifications/${created.body.notification.id}/cancel`, { key: account.key });
    expect(res.status).toBe(409);
    expect(res.body.code).toBe("notification_already_ended");
    expect((await api("GET", `/api/v1/notifications/${created.body.notification.id}`, { key: account.key })).body).toEqual(ended);
  });
});

describe("the OpenAPI document", () => {
  it("names the Notification schema and documents the Idempotency-Key header", async () => {
    const res = await api("GET", "/openapi.json");
    expect(res.status).toBe(200);
    expect(res.body.components.schemas.Notification.properties).toHaveProperty("call_result");
    const post = res.body.paths["/api/v1/notifications"].post;
    expect(post.parameters).toEqual(expect.arrayContaining([expect.objectContaining({ in: "header", name: "idempotency-key" })]));
    expect(Object.keys(post.responses)).toEqual(expect.arrayContaining(["201", "404", "409", "422", "502"]));
  });
});
