import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createAgent, createCustomer, QUICKSTART_AGENT, QUICKSTART_VARIABLES, quickstartCustomer } from "../fixtures";
import { fakeTwilioCalls, twilioCallFor } from "../fakes/twilio-peer";
import { ANY_HOUR } from "../calls/live/support";
import { api, signup } from "../helpers";

/** A scheduled live call: Twilio is asked to dial only when it is due. */

describe("scheduled_at, live", () => {
  it("dials nothing until the call is due, then dials once", async () => {
    const account = await signup();
    const agent = await createAgent(account, QUICKSTART_AGENT);
    const customer = await createCustomer(account, quickstartCustomer());
    const created = await api("POST", "/api/v1/notifications", {
      key: account.key,
      body: { customer_id: customer.id, agent_id: agent.id, variables: QUICKSTART_VARIABLES, scheduled_at: new Date(Date.now() + 3_600_000).toISOString(), ...ANY_HOUR },
    });
    expect(created.status).toBe(201);
    const id = created.body.notification.id;
    expect(created.body.notification).toMatchObject({ status: "queued", queued_reason: "scheduled", simulated: false });
    const ours = async () => (await fakeTwilioCalls()).filter((call) => String(call.params.StatusCallback).endsWith(`/${id}`));
    expect(await ours()).toEqual([]);

    expect(await runDurableObjectAlarm(env.CALL_SESSION.get(env.CALL_SESSION.idFromName(id)))).toBe(true);
    expect((await twilioCallFor(id)).params).toMatchObject({ To: "+14155552671" });
    expect(await ours()).toHaveLength(1);
    expect((await api("GET", `/api/v1/notifications/${id}`, { key: account.key })).body).toMatchObject({ status: "in_progress", call_status: "queued", queued_reason: null });
  });
});
