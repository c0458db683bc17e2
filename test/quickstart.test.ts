import { describe, expect, it, vi } from "vitest";
import { api, inbox, uniqueName } from "./helpers";
import { quickstartSignature } from "./webhooks/verify";

/**
 * The public quickstart, every request verbatim (only the host differs), end to end on the call
 * simulator: signup → agent → customer → webhook → notification → three signed webhooks.
 */
describe("the quickstart", () => {
  it("works verbatim and delivers webhooks the quickstart's snippet accepts", async () => {
    // Step 1 — Create your account
    const email = `${uniqueName("you")}@yourcompany.com`;
    const signup = await api("POST", "/auth/signup", {
      body: {
        email,
        password: "YourPassword123!",
        first_name: "Jane",
        last_name: "Doe",
        business_name: "Acme Inc",
        business_summary: "A SaaS platform for project management",
        industry: "Software",
      },
    });
    expect(signup.status).toBe(201);
    expect(signup.body).toMatchObject({
      access_token: expect.stringMatching(/^eyJhbGci/),
      refresh_token: expect.stringMatching(/^eyJhbGci/),
      user: { id: expect.any(String), email },
      business: { id: expect.any(String), name: "Acme Inc" },
      default_project: { id: expect.any(String), name: "default", api_key: expect.stringMatching(/^echo_[0-9a-f]{64}$/) },
    });
    const key: string = signup.body.default_project.api_key;
    const projectId: string = signup.body.default_project.id;

    // Step 2 — Create an agent (the prompt exactly as the shell's '\'' quoting yields it)
    const agent = await api("POST", "/api/v1/agents", {
      key,
      body: {
        name: "Appointment Reminder",
        system_prompt:
          'You are a friendly assistant calling {{recipient_first_name}} on behalf of {{business_name}}. Start the call by saying: "Hi, is this {{recipient_first_name}}? Great — I\'m calling from {{business_name}} to confirm your appointment on {{appointment_time}} with {{doctor_name}}. Does that time still work for you?" If they need to reschedule, collect a preferred time and end the call warmly. Do not discuss anything else.',
        output_schema: {
          type: "object",
          required: ["confirmed"],
          properties: {
            confirmed: { type: "boolean", description: "Whether the patient confirmed the appointment" },
            reschedule_request: { type: "string", description: "Preferred reschedule time if they want to change it" },
          },
        },
      },
    });
    expect(agent.status).toBe(201);
    expect(agent.body).toMatchObject({ id: expect.stringMatching(/^[0-9a-f-]{36}$/), name: "Appointment Reminder", status: "active", created_at: expect.any(String) });

    // Step 3 — Add a customer
    const customer = await api("POST", "/api/v1/customers", {
      key,
      body: { external_id: "user_12345", first_name: "John", last_name: "Smith", phone: "+14155552671" },
    });
    expect(customer.status).toBe(201);
    expect(customer.body).toMatchObject({
      id: expect.any(String),
      project_id: projectId,
      external_id: "user_12345",
      first_name: "John",
      last_name: "Smith",
      phones: [{ value: "+14155552671", is_primary: true, status: "active" }],
    });

    // Step 5's registration, made before the call so its events have somewhere to go
    const inboxName = uniqueName("quickstart");
    const webhook = await api("POST", `/api/v1/projects/${projectId}/webhooks`, {
      key,
      body: { url: `http://receiver.test/${inboxName}`, events: ["call.summary", "call.started", "call.ended"] },
    });
    expect(webhook.status).toBe(201);
    const secret: string = webhook.body.signing_secret;
    expect(secret).toMatch(/^whsec_[0-9a-f]{64}$/);

    // Step 4 — Send a notification
    const notification = await api("POST", "/api/v1/notifications", {
      key,
      body: {
        customer_id: customer.body.id,
        agent_id: agent.body.id,
        variables: { appointment_time: "Thursday March 20th at 2:00 PM", doctor_name: "Dr. Patel" },
      },
    });
    expect(notification.status).toBe(201);
    expect(notification.body).toMatchObject({
      notification: { id: expect.any(String), status: "in_progress", target_phone_e164: "+14155552671" },
      call: { callId: expect.stringMatching(/^call-/), status: "queued" },
    });
    const notificationId: string = notification.body.notification.id;

    // Step 5 — Receive the webhooks
    const received = await vi.waitFor(
      async () => {
        const requests = await inbox(inboxName);
        expect(requests.map((r) => JSON.parse(r.body).event_name).sort()).toEqual(["call.ended", "call.started", "call.summary"]);
        return requests;
      },
      { timeout: 15_000, interval: 100 },
    );

    for (const request of received) {
      // Exactly the quickstart's Node verification, over the raw bytes received.
      expect(request.headers["x-echo-signature"]).toBe(quickstartSignature(secret, request.body));
      const event = JSON.parse(request.body);
      expect(event).toMatchObject({ event_id: expect.any(String), customer_id: customer.body.id, notification_id: notificationId });
    }
    const summary = JSON.parse(received.find((r) => JSON.parse(r.body).event_name === "call.summary")!.body);
    expect(summary.data.analysis).toEqual({ confirmed: true, reschedule_request: null });
    expect(summary.data.transcript).toMatch(/^AI: Hi, is this John\? Great — I'm calling from Acme Inc to confirm your appointment on Thursday March 20th at 2:00 PM with Dr\. Patel\./);
    expect(summary.data.transcript).toContain("\nCustomer: ");
    expect(summary.data).toMatchObject({ ended_reason: expect.any(String), started_at: expect.any(String), ended_at: expect.any(String) });
    expect(summary.data.duration_seconds).toBeGreaterThan(0);

    const stored = await api("GET", `/api/v1/notifications/${notificationId}`, { key });
    expect(stored.status).toBe(200);
    expect(stored.body).toMatchObject({ status: "completed", call_result: { confirmed: true, reschedule_request: null }, simulated: true });
  });
});
