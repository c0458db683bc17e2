import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { claimDelivery } from "../../src/webhooks/deliver";
import { SWEEP_GRACE_SECONDS, sweepOutbox } from "../../src/webhooks/sweep";
import { api, inbox, signup, uniqueName } from "../helpers";
import {
  createEndpoint,
  db,
  emit,
  endpointWithDelivery,
  getDelivery,
  recordingQueue,
  runConsumer,
  runSweeper,
  secondsFromNow,
  setDelivery,
  storedDelivery,
  target,
  unavailableQueue,
  waitForDelivery,
  waitForInbox,
} from "./support";
import { quickstartSignature } from "./verify";

function silenceErrors() {
  return vi.spyOn(console, "error").mockImplementation(() => undefined);
}

/** The cron fires after the delivery has been overdue for a while: its stored due time moves back. */
async function makeOverdue(deliveryId: string) {
  await setDelivery(deliveryId, { next_retry_at: secondsFromNow(-(SWEEP_GRACE_SECONDS + 60)) });
}

describe("the outbox sweeper", () => {
  it("delivers an event whose queue send threw, later, with the same bytes; the caller was not failed", async () => {
    const account = await signup();
    const name = uniqueName("queue-down");
    const endpoint = await createEndpoint(account, name);
    const errors = silenceErrors();
    const queue = unavailableQueue();

    // The emitting code gets the platform's error and carries on: the event is stored.
    const prepared = await emit(account, { queue });
    expect(queue.calls).toBe(1);
    expect(prepared.queued).toBe(0);
    expect(errors.mock.calls.map(([message]) => String(message))).toEqual([expect.stringContaining("the sweeper will send them")]);
    errors.mockRestore();
    const [deliveryId] = prepared.deliveryIds;
    expect(await getDelivery(account, endpoint.id, deliveryId!)).toMatchObject({ status: "pending", attempt_count: 0, attempts: [] });

    // A sweep right away leaves it alone: its own message could still be on the way.
    const early = recordingQueue();
    await runSweeper({ WEBHOOK_QUEUE: early });
    expect(early.sent).not.toContain(deliveryId);

    // A later run finds it overdue and hands it to the (working) queue.
    await makeOverdue(deliveryId!);
    await runSweeper();
    const [request] = await waitForInbox(name, 1);
    expect(request!.body).toBe(prepared.payload);
    expect(request!.headers["webhook-id"]).toBe(prepared.eventId);
    expect(request!.headers["x-echo-signature"]).toBe(quickstartSignature(endpoint.signing_secret, request!.body));
    const delivered = await waitForDelivery(account, endpoint.id, deliveryId!, "success");
    expect(delivered.attempts).toEqual([expect.objectContaining({ attempt_number: 1, triggered_by: "auto", http_status: 200, success: true })]);

    // Nothing more: the settled delivery is not swept again.
    await runSweeper();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await inbox(name)).toHaveLength(1);
  });

  it("hands out only overdue deliveries nobody holds, oldest due first, a bounded number per run", async () => {
    const account = await signup();
    await createEndpoint(account, uniqueName("sweep-order"));
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) ids.push((await emit(account, { queue: false })).deliveryIds[0]!);
    const [oldest, second, third, held, settled, justDue, notDue, abandoned] = ids as [string, string, string, string, string, string, string, string];
    // Due long ago, so they are the oldest in the database whatever other tests left behind.
    const longAgo = (minute: number) => `2000-01-01T00:0${minute}:00.000Z`;
    await setDelivery(second, { next_retry_at: longAgo(1) });
    await setDelivery(oldest, { next_retry_at: longAgo(0) });
    await setDelivery(third, { next_retry_at: longAgo(2), status: "retrying" });
    await setDelivery(held, { next_retry_at: longAgo(0), lease_until: secondsFromNow(20) });
    await setDelivery(settled, { next_retry_at: longAgo(0), status: "success" });
    await setDelivery(justDue, { next_retry_at: secondsFromNow(-5) });
    await setDelivery(notDue, { next_retry_at: secondsFromNow(300), status: "retrying" });
    // Claimed by a consumer that died: the claim has expired.
    await setDelivery(abandoned, { next_retry_at: longAgo(3), lease_until: secondsFromNow(-1) });

    const first = recordingQueue();
    expect(await sweepOutbox({ DB: env.DB, WEBHOOK_QUEUE: first }, { limit: 2 })).toEqual({ found: 2, enqueued: 2 });
    expect(first.sent.sort()).toEqual([oldest, second].sort());
    // Taken deliveries wait another grace period before a run sends them again.
    expect(Date.parse((await storedDelivery(oldest))!.next_retry_at!)).toBeGreaterThan(Date.now() - 5_000);

    const next = recordingQueue();
    await sweepOutbox({ DB: env.DB, WEBHOOK_QUEUE: next }, { limit: 2 });
    expect(next.sent.sort()).toEqual([third, abandoned].sort());

    const rest = recordingQueue();
    await sweepOutbox({ DB: env.DB, WEBHOOK_QUEUE: rest });
    for (const id of ids) expect(rest.sent).not.toContain(id);

    // Tidy up: nothing of this test is left for later sweeps.
    for (const id of ids) await setDelivery(id, { status: "failed", next_retry_at: null, lease_until: null });
  });

  it("re-sends a delivery held by a consumer that died, once its claim has expired", async () => {
    const { account, name, endpoint, deliveryId } = await endpointWithDelivery("abandoned", { queue: false });
    await setDelivery(deliveryId!, { next_retry_at: secondsFromNow(-300), lease_until: secondsFromNow(15) });

    const whileHeld = recordingQueue();
    await runSweeper({ WEBHOOK_QUEUE: whileHeld });
    expect(whileHeld.sent).not.toContain(deliveryId);

    await setDelivery(deliveryId!, { lease_until: secondsFromNow(-1) });
    await runSweeper();
    await waitForInbox(name, 1);
    expect(await waitForDelivery(account, endpoint.id, deliveryId!, "success")).toMatchObject({ attempt_count: 1 });
  });

  it("keeps a manual retry manual when the queue refuses its message", async () => {
    const { account, name, endpoint, deliveryId } = await endpointWithDelivery("fail-1", { queue: false });
    await runConsumer([{ body: { deliveryId } }]);
    await setDelivery(deliveryId!, { status: "failed", next_retry_at: null });

    const errors = silenceErrors();
    const retry = await api("POST", `/api/v1/projects/${account.projectId}/webhooks/${endpoint.id}/deliveries/${deliveryId}/retry`, { key: account.key, bindings: { WEBHOOK_QUEUE: unavailableQueue() } });
    errors.mockRestore();
    expect(retry.status).toBe(202);
    expect(retry.body).toMatchObject({ id: deliveryId, status: "pending" });

    await makeOverdue(deliveryId!);
    await runSweeper();
    const delivered = await waitForDelivery(account, endpoint.id, deliveryId!, "success");
    expect(delivered.attempts.map((a: { triggered_by: string; http_status: number }) => [a.triggered_by, a.http_status])).toEqual([
      ["auto", 500],
      ["manual", 200],
    ]);
  });
});

describe("claiming a delivery before each attempt", () => {
  it("takes a due delivery once, with exactly what an unclaimed read returns", async () => {
    const { deliveryId } = await endpointWithDelivery("claim", { queue: false });
    const unclaimed = await target(deliveryId!);
    const now = Date.now();

    const claimed = await claimDelivery(db, deliveryId!, 30_000, now);
    expect(claimed).toEqual({ ...unclaimed, delivery: { ...unclaimed.delivery, leaseUntil: new Date(now + 30_000).toISOString() } });
    expect(await claimDelivery(db, deliveryId!, 30_000, now + 1_000)).toBeNull();
    // Once the claim has expired (its holder died), the delivery can be taken again.
    expect(await claimDelivery(db, deliveryId!, 30_000, now + 31_000)).not.toBeNull();
    await setDelivery(deliveryId!, { status: "failed", lease_until: null });
  });

  it("sends once when a duplicate message arrives while the attempt is in flight", async () => {
    const { account, name, endpoint, deliveryId } = await endpointWithDelivery("sleep-1000", { queue: false });

    const first = runConsumer([{ body: { deliveryId } }]);
    await waitForInbox(name, 1);
    // The receiver is still answering the first POST.
    expect((await storedDelivery(deliveryId!))?.lease_until).not.toBeNull();
    const duplicate = await runConsumer([{ body: { deliveryId } }]);
    expect(duplicate).toMatchObject({ explicitAcks: ["message-0"], retryMessages: [] });
    expect((await first).explicitAcks).toEqual(["message-0"]);

    expect(await inbox(name)).toHaveLength(1);
    expect(await getDelivery(account, endpoint.id, deliveryId!)).toMatchObject({ status: "success", attempt_count: 1 });
    expect((await storedDelivery(deliveryId!))?.lease_until).toBeNull();
  });

  it("sends once when the same delivery comes twice in one batch", async () => {
    const { account, name, endpoint, deliveryId } = await endpointWithDelivery("twice", { queue: false });

    const result = await runConsumer([{ body: { deliveryId } }, { body: { deliveryId } }]);
    expect(result.explicitAcks.sort()).toEqual(["message-0", "message-1"]);
    expect(await inbox(name)).toHaveLength(1);
    expect((await getDelivery(account, endpoint.id, deliveryId!)).attempts).toHaveLength(1);
  });

  it("does not bring an attempt forward for a stale duplicate, and attempts when the delivery is due", async () => {
    const { account, name, endpoint, deliveryId } = await endpointWithDelivery("status-503", { queue: false });
    await runConsumer([{ body: { deliveryId } }]);
    // The next attempt is five minutes away, as in the production schedule.
    const dueAt = secondsFromNow(300);
    await setDelivery(deliveryId!, { next_retry_at: dueAt });

    const stale = await runConsumer([{ body: { deliveryId } }]);
    expect(stale).toMatchObject({ explicitAcks: ["message-0"], retryMessages: [] });
    expect(await inbox(name)).toHaveLength(1);
    expect(await storedDelivery(deliveryId!)).toMatchObject({ status: "retrying", attempt_count: 1, next_retry_at: dueAt, lease_until: null });

    await setDelivery(deliveryId!, { next_retry_at: secondsFromNow(-1) });
    const due = await runConsumer([{ body: { deliveryId } }]);
    expect(due.retryMessages).toEqual([{ msgId: "message-0" }]);
    expect(await inbox(name)).toHaveLength(2);
    expect((await getDelivery(account, endpoint.id, deliveryId!)).attempts.map((a: { attempt_number: number }) => a.attempt_number)).toEqual([1, 2]);
  });

  it("refuses a manual retry while an attempt is in flight, changing nothing", async () => {
    const { account, endpoint, deliveryId } = await endpointWithDelivery("busy", { queue: false });
    await setDelivery(deliveryId!, { lease_until: secondsFromNow(20) });
    const before = await storedDelivery(deliveryId!);

    const res = await api("POST", `/api/v1/projects/${account.projectId}/webhooks/${endpoint.id}/deliveries/${deliveryId}/retry`, { key: account.key });
    expect(res.status).toBe(409);
    expect(res.body.code).toBe("webhook_delivery_in_flight");
    expect(await storedDelivery(deliveryId!)).toEqual(before);
    await setDelivery(deliveryId!, { status: "failed", lease_until: null });
  });
});
