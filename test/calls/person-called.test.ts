import { describe, expect, it, vi } from "vitest";
import { createAgent, createCustomer, placeSimulatedCall, QUICKSTART_AGENT, QUICKSTART_OPENING, QUICKSTART_VARIABLES, quickstartCustomer, type AgentInput } from "../fixtures";
import { api, signup } from "../helpers";

/**
 * The person called on the simulator (API.md "The person called"): 5550105 a call screener answers
 * first, 5550106 the person opts out, 5550107 the person asks for a human. Each is placed through the
 * API like a user would; what is checked is the notification, D1 and the stored webhook events.
 */

/** A simulated call to `phone`, its stored events as name and data. */
async function placeCall(phone: string, agentInput: AgentInput = QUICKSTART_AGENT) {
  const call = await placeSimulatedCall(phone, agentInput);
  return { ...call, events: call.events.map((event) => ({ name: event.event_name, data: JSON.parse(event.payload).data })) };
}

const turns = (n: { transcript: Array<{ role: string; text: string }> }) => n.transcript.map((turn) => [turn.role, turn.text]);

describe("the person called, simulated", () => {
  it("5550105: a call screener asks who is calling, the agent answers with its screener reply, then the person picks up and the call goes on", async () => {
    const { notification: n, events } = await placeCall("+13125550105");
    expect(n).toMatchObject({ status: "completed", ended_reason: "customer-ended-call", answered_by: "human", opted_out: false, call_result: { confirmed: true, reschedule_request: null } });
    expect(turns(n).slice(0, 3)).toEqual([
      ["customer", expect.stringMatching(/screening service.*your name and why you're calling/)],
      ["agent", "Hi, this is Appointment Reminder, an automated assistant calling from Acme Inc for John Smith."],
      ["agent", QUICKSTART_OPENING],
    ]);
    expect(turns(n).slice(3).map(([role]) => role)).toEqual(["customer", "agent", "customer"]);
    expect(events.map((event) => event.name)).toEqual(["call.started", "call.ended", "call.summary"]);
  });

  it("5550106: the person asks not to be called again: the phone is opted out during the call, acknowledged, the agent ends it; a new trigger is refused", async () => {
    const { account, agent, customer, notification: n, events } = await placeCall("+12125550106");
    expect(n).toMatchObject({ status: "completed", call_status: "completed", ended_reason: "assistant-ended-call", answered_by: "human", opted_out: true });
    expect(turns(n)).toEqual([
      ["agent", QUICKSTART_OPENING],
      ["customer", expect.stringContaining("don't call me again")],
      ["agent", expect.stringContaining("won't be called again")],
    ]);
    // Opted out before the call ended: its event comes before call.ended.
    expect(events.map((event) => event.name)).toEqual(["call.started", "customer.opted_out", "call.ended", "call.summary"]);
    expect(events[1]!.data).toEqual({ customer_id: customer.id, phone: "+12125550106", simulated: true });
    expect(events[2]!.data).toEqual({ status: "completed", ended_reason: "assistant-ended-call", attempt: 1, simulated: true });
    expect(events[3]!.data).toMatchObject({ opted_out: true, ended_reason: "assistant-ended-call" });
    const stored = await api("GET", `/api/v1/customers/${customer.id}`, { key: account.key });
    expect(stored.body.phones).toEqual([expect.objectContaining({ value: "+12125550106", status: "opted_out" })]);

    const again = await api("POST", "/api/v1/notifications", { key: account.key, body: { customer_id: customer.id, agent_id: agent.id, variables: QUICKSTART_VARIABLES } });
    expect(again.status).toBe(422);
    expect(again.body).toMatchObject({ code: "phone_opted_out" });
  });

  it("5550107 with the agent's transfer_to: the person asks for a human and is handed over, transferred, the transcript up to the hand-over", async () => {
    const { notification: n, events } = await placeCall("+14155550107", { ...QUICKSTART_AGENT, transfer_to: "+14155550199" });
    expect(n).toMatchObject({ status: "completed", call_status: "completed", ended_reason: "transferred", answered_by: "human", opted_out: false });
    expect(turns(n)).toEqual([
      ["agent", QUICKSTART_OPENING],
      ["customer", expect.stringContaining("real person")],
      ["agent", expect.stringContaining("Please hold while I connect you")],
    ]);
    expect(events.map((event) => [event.name, event.data.ended_reason ?? null])).toEqual([
      ["call.started", null],
      ["call.ended", "transferred"],
      ["call.summary", "transferred"],
    ]);
    expect(events[1]!.data).toEqual({ status: "completed", ended_reason: "transferred", attempt: 1, simulated: true });
  });

  it("5550107 without transfer_to: no one is available, and the agent ends the call politely", async () => {
    const { notification: n } = await placeCall("+14155550107");
    expect(n).toMatchObject({ status: "completed", ended_reason: "assistant-ended-call", answered_by: "human" });
    expect(turns(n).at(-1)).toEqual(["agent", expect.stringMatching(/no one available to take your call right now.*goodbye/)]);
  });
});

describe("an opt-out reaches the calls already waiting for that phone", () => {
  it("a batch item waiting for capacity behind the call in which the person opted out is not dialled: failed, opted-out", async () => {
    const account = await signup();
    await api("PATCH", `/api/v1/projects/${account.projectId}`, { key: account.key, body: { max_concurrent_calls: 1 } });
    const agent = await createAgent(account, QUICKSTART_AGENT);
    const customer = await createCustomer(account, quickstartCustomer("+12125550106"));
    const res = await api("POST", "/api/v1/notifications/batch", {
      key: account.key,
      body: { agent_id: agent.id, variables: QUICKSTART_VARIABLES, items: [{ customer_id: customer.id }, { customer_id: customer.id }] },
    });
    expect(res.body.batch).toMatchObject({ accepted: 2, rejected: 0 });
    const batchId = res.body.batch.id;
    const ended = await vi.waitFor(
      async () => {
        const listed = await api("GET", `/api/v1/notifications?batch_id=${batchId}`, { key: account.key });
        expect(listed.body.every((n: { status: string }) => n.status !== "queued" && n.status !== "in_progress")).toBe(true);
        // The call that was dialled first, the one that never was after it.
        return listed.body.sort((a: { started_at: string | null }, b: { started_at: string | null }) => Number(a.started_at === null) - Number(b.started_at === null));
      },
      { timeout: 15_000, interval: 100 },
    );
    expect(ended.map((n: { status: string; ended_reason: string; opted_out: boolean }) => [n.status, n.ended_reason, n.opted_out])).toEqual([
      ["completed", "assistant-ended-call", true],
      ["failed", "opted-out", false],
    ]);
    expect(ended[1]).toMatchObject({ started_at: null, attempts: [], error_message: "The phone number opted out of calls before the call was placed" });
  });
});
