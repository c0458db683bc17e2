import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { DEFAULT_DISABLE_AFTER_SECONDS, DEFAULT_DNS_RESOLVER_URL, getConfig, type Vars } from "../../src/env";
import { attemptDelivery, describeSpan, type WebhookSettings } from "../../src/webhooks/deliver";
import { api, inbox, uniqueName, type Account } from "../helpers";
import { db, emit, endpointWithDelivery, getDelivery, getEndpoint, runConsumer, secondsFromNow, setDelivery, target, waitForDelivery } from "./support";

const DAY = 24 * 60 * 60;

/** The endpoint's stored failure streak: how tests say "it has been failing for N days". */
async function setStreak(webhookId: string, consecutiveFailures: number, failingSince: string | null) {
  await env.DB.prepare("UPDATE webhook_endpoints SET consecutive_failures = ?, failing_since = ? WHERE id = ?").bind(consecutiveFailures, failingSince, webhookId).run();
}

function patch(account: Account, webhookId: string, body: Record<string, unknown>) {
  return api("PATCH", `/api/v1/projects/${account.projectId}/webhooks/${webhookId}`, { key: account.key, body });
}

describe("endpoint health", () => {
  it("starts a failure streak at the first failed attempt and ends it with a success", async () => {
    const { account, name, endpoint, deliveryId } = await endpointWithDelivery("fail-2", { queue: false });
    expect(await getEndpoint(account, endpoint.id)).toMatchObject({ consecutive_failures: 0, failing_since: null });

    const before = Date.now();
    await runConsumer([{ body: { deliveryId } }]);
    const afterFirst = await getEndpoint(account, endpoint.id);
    expect(afterFirst.consecutive_failures).toBe(1);
    expect(Date.parse(afterFirst.failing_since)).toBeGreaterThanOrEqual(before - 1);

    await setDelivery(deliveryId!, { next_retry_at: secondsFromNow(-1) });
    await runConsumer([{ body: { deliveryId } }]);
    // The streak began with the first failure; later ones only count.
    expect(await getEndpoint(account, endpoint.id)).toMatchObject({ consecutive_failures: 2, failing_since: afterFirst.failing_since, status: "active" });

    await setDelivery(deliveryId!, { next_retry_at: secondsFromNow(-1) });
    await runConsumer([{ body: { deliveryId } }]);
    expect(await getEndpoint(account, endpoint.id)).toMatchObject({ consecutive_failures: 0, failing_since: null, status: "active" });
    expect(await inbox(name)).toHaveLength(3);
  });

  it("disables an endpoint that has failed continuously for 5 days, says why, and fails its deliveries into the log", async () => {
    const { account, name, endpoint, deliveryId } = await endpointWithDelivery("status-500", { queue: false });
    // Every attempt for five days and a minute has failed.
    const failingSince = secondsFromNow(-(5 * DAY + 60));
    await setStreak(endpoint.id, 57, failingSince);

    const result = await runConsumer([{ body: { deliveryId } }]);
    expect(result.retryMessages).toEqual([{ msgId: "message-0" }]);
    expect(await getEndpoint(account, endpoint.id)).toMatchObject({
      status: "disabled",
      consecutive_failures: 58,
      failing_since: failingSince,
      disabled_reason: `Disabled after failing continuously for 5 days: 58 failed attempts in a row since ${failingSince}`,
    });

    // Its next attempt is not made: the delivery ends failed and stays in the log.
    await setDelivery(deliveryId, { next_retry_at: secondsFromNow(-1) });
    expect((await runConsumer([{ body: { deliveryId } }])).explicitAcks).toEqual(["message-0"]);
    expect(await inbox(name)).toHaveLength(1);
    const delivery = await getDelivery(account, endpoint.id, deliveryId);
    expect(delivery).toMatchObject({ status: "failed", attempt_count: 1, next_retry_at: null });
    expect(delivery.attempts).toHaveLength(1);
    const logged = await api("GET", `/api/v1/projects/${account.projectId}/webhooks/${endpoint.id}/deliveries?status=failed`, { key: account.key });
    expect(logged.body.data.map((d: { id: string }) => d.id)).toEqual([deliveryId]);
    // A disabled endpoint gets no new deliveries.
    expect((await emit(account, { queue: false })).deliveryIds).toEqual([]);
    // …and a manual retry waits for it to be re-enabled.
    const refused = await api("POST", `/api/v1/projects/${account.projectId}/webhooks/${endpoint.id}/deliveries/${deliveryId}/retry`, { key: account.key });
    expect(refused.status).toBe(422);
    expect(refused.body.code).toBe("webhook_disabled");
  });

  it("re-enabling resets the count and the streak, and a manual retry then delivers the failed event", async () => {
    const { account, endpoint, deliveryId } = await endpointWithDelivery("status-500", { queue: false });
    await setStreak(endpoint.id, 57, secondsFromNow(-(6 * DAY)));
    await runConsumer([{ body: { deliveryId } }]);
    await setDelivery(deliveryId, { next_retry_at: secondsFromNow(-1) });
    await runConsumer([{ body: { deliveryId } }]);
    expect(await getEndpoint(account, endpoint.id)).toMatchObject({ status: "disabled" });

    // The user fixes their server (a new URL) and switches the endpoint back on.
    const fixed = uniqueName("fixed");
    const enabled = await patch(account, endpoint.id, { status: "active", url: `http://receiver.test/${fixed}` });
    expect(enabled.status).toBe(200);
    expect(enabled.body).toMatchObject({ status: "active", consecutive_failures: 0, failing_since: null, disabled_reason: null });

    const retry = await api("POST", `/api/v1/projects/${account.projectId}/webhooks/${endpoint.id}/deliveries/${deliveryId}/retry`, { key: account.key });
    expect(retry.status).toBe(202);
    const delivered = await waitForDelivery(account, endpoint.id, deliveryId, "success");
    expect(delivered.attempts.map((a: { triggered_by: string; http_status: number }) => [a.triggered_by, a.http_status])).toEqual([
      ["auto", 500],
      ["manual", 200],
    ]);
    expect(await inbox(fixed)).toHaveLength(1);
    expect(await getEndpoint(account, endpoint.id)).toMatchObject({ status: "active", consecutive_failures: 0, failing_since: null });
  });

  it("keeps an endpoint active while its streak is shorter than 5 days", async () => {
    const { account, endpoint, deliveryId } = await endpointWithDelivery("status-500", { queue: false });
    const failingSince = secondsFromNow(-(5 * DAY - 3600));
    await setStreak(endpoint.id, 57, failingSince);
    await runConsumer([{ body: { deliveryId } }]);
    expect(await getEndpoint(account, endpoint.id)).toMatchObject({ status: "active", consecutive_failures: 58, failing_since: failingSince, disabled_reason: null });
  });

  it("does not disable an endpoint with a long-past streak when the attempt succeeds", async () => {
    const { account, endpoint, deliveryId } = await endpointWithDelivery("healthy-again", { queue: false });
    await setStreak(endpoint.id, 57, secondsFromNow(-(6 * DAY)));
    await runConsumer([{ body: { deliveryId } }]);
    expect(await getEndpoint(account, endpoint.id)).toMatchObject({ status: "active", consecutive_failures: 0, failing_since: null, disabled_reason: null });
  });

  it("disables after the configured span", async () => {
    const { account, endpoint, deliveryId } = await endpointWithDelivery("status-500", { queue: false });
    const failingSince = secondsFromNow(-3700);
    await setStreak(endpoint.id, 3, failingSince);
    const settings: WebhookSettings = { allowPrivateUrls: true, dnsResolverUrl: DEFAULT_DNS_RESOLVER_URL, retryScheduleSeconds: [0, 60], timeoutMs: 5_000, disableAfterSeconds: 3600 };
    await attemptDelivery(db, settings, await target(deliveryId), "auto");
    expect(await getEndpoint(account, endpoint.id)).toMatchObject({
      status: "disabled",
      disabled_reason: `Disabled after failing continuously for 1 hour: 4 failed attempts in a row since ${failingSince}`,
    });
  });

  it("410 Gone disables at once, counting the failure", async () => {
    const { account, endpoint, deliveryId } = await endpointWithDelivery("status-410", { queue: false });
    await runConsumer([{ body: { deliveryId } }]);
    const gone = await getEndpoint(account, endpoint.id);
    expect(gone).toMatchObject({ status: "disabled", disabled_reason: "Endpoint answered 410 Gone", consecutive_failures: 1 });
    expect(gone.failing_since).toEqual(expect.any(String));
    expect(await getDelivery(account, endpoint.id, deliveryId)).toMatchObject({ status: "failed", attempt_count: 1, next_retry_at: null });
  });
});

describe("WEBHOOK_DISABLE_AFTER_SECONDS", () => {
  const bindings = (vars: Vars): Vars => ({ ENVIRONMENT: "development", ...vars });

  it("defaults to 5 days and accepts whole seconds", () => {
    expect(DEFAULT_DISABLE_AFTER_SECONDS).toBe(432_000);
    expect(getConfig(bindings({})).webhooks.disableAfterSeconds).toBe(432_000);
    expect(getConfig(bindings({ WEBHOOK_DISABLE_AFTER_SECONDS: "3600" })).webhooks.disableAfterSeconds).toBe(3600);
  });

  it.each(["0", "-5", "1.5", "five days"])("refuses %s", (value) => {
    expect(() => getConfig(bindings({ WEBHOOK_DISABLE_AFTER_SECONDS: value }))).toThrow(/WEBHOOK_DISABLE_AFTER_SECONDS/);
  });

  it("reads as a span in the disabled reason", () => {
    expect(describeSpan(432_000)).toBe("5 days");
    expect(describeSpan(86_400)).toBe("1 day");
    expect(describeSpan(7_200)).toBe("2 hours");
    expect(describeSpan(60)).toBe("1 minute");
    expect(describeSpan(90)).toBe("90 seconds");
  });
});
