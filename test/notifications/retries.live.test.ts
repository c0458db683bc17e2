import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { createAgent, createCustomer, getNotification, QUICKSTART_AGENT, QUICKSTART_VARIABLES, quickstartCustomer, storedEvents } from "../fixtures";
import { reportCallStatus, twilioCallFor } from "../fakes/twilio-peer";
import { api, signup } from "../helpers";
import { ANY_HOUR, greeted, say, WAIT } from "../calls/live/support";
import { scriptRealtime } from "../fakes/realtime-client";

/** Retries of a live call: each attempt is a new Twilio call; Twilio's side is played by the test. */

describe("retry, live", () => {
  it("busy, busy, answered: three Twilio calls, completed, three call.ended and one call.summary", async () => {
    const account = await signup();
    const marker = `retry-${crypto.randomUUID()}`;
    await scriptRealtime(marker, { responses: ["Hi John, this is Acme.", "Thanks, goodbye!"], caller_turns: ["Yes, that works for me."], end_call_after_turn: 1 });
    const agent = await createAgent(account, { ...QUICKSTART_AGENT, system_prompt: `${QUICKSTART_AGENT.system_prompt} (${marker})` });
    const customer = await createCustomer(account, quickstartCustomer());
    const created = await api("POST", "/api/v1/notifications", {
      key: account.key,
      body: { customer_id: customer.id, agent_id: agent.id, variables: QUICKSTART_VARIABLES, retry: { max_attempts: 3, delay_minutes: 2 }, ...ANY_HOUR },
    });
    expect(created.status).toBe(201);
    const id = created.body.notification.id;
    const callObject = env.CALL_SESSION.get(env.CALL_SESSION.idFromName(id));

    for (const attempt of [1, 2]) {
      const twilioCall = await twilioCallFor(id, { attempt });
      expect((await reportCallStatus(twilioCall, "ringing")).status).toBe(204);
      expect((await reportCallStatus(twilioCall, "busy")).status).toBe(204);
      await vi.waitFor(async () => expect(await getNotification(account, id)).toMatchObject({ status: "queued", queued_reason: "retry", attempts: { length: attempt } }), WAIT);
      expect(await runDurableObjectAlarm(callObject)).toBe(true);
    }
    const third = await twilioCallFor(id, { attempt: 3 });
    expect((await reportCallStatus(third, "ringing")).status).toBe(204);
    expect((await reportCallStatus(third, "in-progress", { AnsweredBy: "human" })).status).toBe(204);
    const { peer, line } = await greeted(third);
    say(peer, line);
    await peer.closed;

    const n = await vi.waitFor(async () => {
      const body = await getNotification(account, id);
      expect(body.status).toBe("completed");
      return body;
    }, WAIT);
    expect(n).toMatchObject({ ended_reason: "assistant-ended-call", answered_by: "human", call_result: { confirmed: true, reschedule_request: null } });
    expect(n.attempts.map((a: { number: number; status: string; ended_reason: string }) => [a.number, a.status, a.ended_reason])).toEqual([
      [1, "failed", "customer-busy"],
      [2, "failed", "customer-busy"],
      [3, "completed", "assistant-ended-call"],
    ]);
    // Each attempt was its own Twilio call, and each Twilio call was its own attempt.
    const sids = await Promise.all([1, 2, 3].map(async (attempt) => (await twilioCallFor(id, { attempt })).sid));
    expect(new Set(sids).size).toBe(3);
    const events = (await storedEvents(id)).map((event) => ({ name: event.event_name, ...JSON.parse(event.payload).data }));
    expect(events.map((event) => [event.name, event.attempt ?? null, event.ended_reason ?? null])).toEqual([
      ["call.ended", 1, "customer-busy"],
      ["call.ended", 2, "customer-busy"],
      ["call.started", 3, null],
      ["call.ended", 3, "assistant-ended-call"],
      ["call.summary", null, "assistant-ended-call"],
    ]);
  });
});
