import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { reconcileCalls } from "../../src/calls/reconcile";
import { nowIso, uuidv7 } from "../../src/lib/ids";
import { createAgent, createCustomer, getNotification, QUICKSTART_AGENT, QUICKSTART_VARIABLES, quickstartCustomer, storedEvents, waitUntilEnded } from "../fixtures";
import { api, signup } from "../helpers";

/** The call reconciler (cron trigger) on simulated calls: the same rules as for live ones, with no carrier to ask. */

const reconcileIn = (minutes: number) => reconcileCalls(env, { now: Date.now() + minutes * 60_000 });

describe("the call reconciler, simulated calls", () => {
  it("ends a notification whose call object never got its call (error), once; calls that ended are not looked at", async () => {
    const account = await signup();
    const agent = await createAgent(account, QUICKSTART_AGENT);
    const customer = await createCustomer(account, quickstartCustomer());
    // A call that ran and ended: nothing for the reconciler.
    const created = await api("POST", "/api/v1/notifications", { key: account.key, body: { customer_id: customer.id, agent_id: agent.id, variables: QUICKSTART_VARIABLES } });
    await waitUntilEnded(account, created.body.notification.id);
    // A notification left in progress with no call behind it (its start and its fallback both failed).
    const lost = uuidv7();
    const now = nowIso();
    await env.DB.prepare(
      `INSERT INTO notifications (id, project_id, business_id, customer_id, agent_id, phone_id, target_phone_e164, variables, collect_feedback, max_duration_seconds,
         rendered_prompt, status, call_id, call_status, transcript, simulated, reconcile_at, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, '+14155552671', '{}', 0, 180, 'Say hi.', 'in_progress', ?, 'queued', '[]', 1, ?, ?, ?)`,
    )
      .bind(lost, account.projectId, account.businessId, customer.id, agent.id, customer.phones[0]!.id, `call-${lost}`, new Date(Date.now() + 90_000).toISOString(), now, now)
      .run();

    expect(await reconcileIn(1)).toEqual({ checked: 0, ended: 0 });
    expect(await reconcileIn(2)).toEqual({ checked: 1, ended: 1 });
    expect(await getNotification(account, lost)).toMatchObject({ status: "failed", call_status: "failed", ended_reason: "error", error_message: "The call was lost before it could run", simulated: true });
    expect((await storedEvents(lost)).map((event) => JSON.parse(event.payload).data)).toEqual([{ status: "failed", ended_reason: "error", attempt: 1, simulated: true }]);
    expect(await reconcileIn(10)).toEqual({ checked: 0, ended: 0 });
  });
});
