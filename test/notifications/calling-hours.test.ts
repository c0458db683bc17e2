import { describe, expect, it } from "vitest";
import { createAgent, QUICKSTART_AGENT, QUICKSTART_VARIABLES, quickstartCustomer } from "../fixtures";
import { api, expectStatus, signup } from "../helpers";

/** Simulated calls follow calling hours only once the project has set them (the quickstart calls at any hour). */

const HOUR_MS = 3_600_000;
const hhmm = (ms: number) => new Date(ms).toISOString().slice(11, 16);

describe("calling hours, simulated calls", () => {
  it("a project that set a window closed now makes a simulated call wait for its opening; one that set none calls at once", async () => {
    const account = await signup();
    const agent = await createAgent(account, QUICKSTART_AGENT);
    const customer = await expectStatus(api("POST", "/api/v1/customers", { key: account.key, body: { ...quickstartCustomer(), timezone: "UTC" } }), 201);
    const body = { customer_id: customer.id, agent_id: agent.id, variables: QUICKSTART_VARIABLES };

    const atOnce = await api("POST", "/api/v1/notifications", { key: account.key, body });
    expect(atOnce.body.notification).toMatchObject({ status: "in_progress", queued_reason: null });

    // A window opening two hours from now (on the hour) and closing an hour later, every day.
    const opensAt = Math.ceil((Date.now() + 2 * HOUR_MS) / HOUR_MS) * HOUR_MS;
    await expectStatus(api("PATCH", `/api/v1/projects/${account.projectId}`, { key: account.key, body: { calling_hours: { start: hhmm(opensAt), end: hhmm(opensAt + HOUR_MS), days: [1, 2, 3, 4, 5, 6, 7] } } }), 200);
    const waits = await api("POST", "/api/v1/notifications", { key: account.key, body });
    expect(waits.body.notification).toMatchObject({ status: "queued", queued_reason: "calling_hours", scheduled_for: new Date(opensAt).toISOString() });
    const asked = await api("POST", "/api/v1/notifications", { key: account.key, body: { ...body, ignore_calling_hours: true } });
    expect(asked.body.notification).toMatchObject({ status: "in_progress", queued_reason: null, ignore_calling_hours: true });
  });
});
