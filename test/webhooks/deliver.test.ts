import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { DEFAULT_DNS_RESOLVER_URL } from "../../src/env";
import { attemptDelivery, GONE_REASON, parseRetryAfter, RESPONSE_BODY_LIMIT, retryDelaySeconds, type WebhookSettings } from "../../src/webhooks/deliver";
import { api, inbox, signup, uniqueName } from "../helpers";
import { createEndpoint, db, emit, endpointWithDelivery, getDelivery, getEndpoint, runConsumer, target, waitForDelivery, waitForInbox } from "./support";
import { quickstartSignature, verifyStandardSignature } from "./verify";

const devSettings = (overrides: Partial<WebhookSettings> = {}): WebhookSettings => ({
  allowPrivateUrls: true,
  dnsResolverUrl: DEFAULT_DNS_RESOLVER_URL,
  retryScheduleSeconds: [0, 60, 300],
  timeoutMs: 5_000,
  disableAfterSeconds: 432_000,
  ...overrides,
});

describe("delivery through the real queue", () => {
  it("delivers a signed event that the quickstart's snippet and Standard Webhooks both verify", async () => {
    const account = await signup();
    const name = uniqueName("deliver-ok");
    const endpoint = await createEndpoint(account, name);
    const prepared = await emit(account);
    const [deliveryId] = prepared.deliveryIds;

    const [request] = await waitForInbox(name, 1);
    expect(request!.body).toBe(prepared.payload);
    expect(request!.headers).toMatchObject({
      "content-type": "application/json",
      "user-agent": "Echo-Webhooks/1.0",
      "x-echo-event": "call.ended",
      "x-echo-delivery": deliveryId,
      "webhook-id": prepared.eventId,
      "x-echo-signature": quickstartSignature(endpoint.signing_secret, request!.body),
    });
    const headers = request!.headers as Record<string, string>;
    expect(Math.abs(Number(headers["webhook-timestamp"]) - Date.now() / 1000)).toBeLessThan(30);
    expect(await verifyStandardSignature(endpoint.signing_secret, prepared.eventId, headers["webhook-timestamp"]!, request!.body, headers["webhook-signature"]!)).toBe(true);

    const delivery = await waitForDelivery(account, endpoint.id, deliveryId!, "success");
    expect(delivery).toMatchObject({ attempt_count: 1, next_retry_at: null, event_id: prepared.eventId, payload: JSON.parse(prepared.payload) });
    expect(delivery.attempts).toEqual([expect.objectContaining({ attempt_number: 1, triggered_by: "auto", http_status: 200, response_body: "ok", success: true, error_message: null })]);
  });

  it("retries a receiver that fails twice with the same event_id and identical bytes, then succeeds", async () => {
    const account = await signup();
    const name = uniqueName("fail-2");
    const endpoint = await createEndpoint(account, name);
    const prepared = await emit(account);
    const [deliveryId] = prepared.deliveryIds;

    const delivery = await waitForDelivery(account, endpoint.id, deliveryId!, "success");
    expect(delivery.attempts.map((a: { attempt_number: number; http_status: number; success: boolean; triggered_by: string }) => [a.attempt_number, a.http_status, a.success, a.triggered_by])).toEqual([
      [1, 500, false, "auto"],
      [2, 500, false, "auto"],
      [3, 200, true, "auto"],
    ]);
    expect(delivery.attempts[0].response_body).toBe("failure 1 of 2");
    expect(delivery).toMatchObject({ attempt_count: 3, next_retry_at: null });

    const requests = await inbox(name);
    expect(requests).toHaveLength(3);
    for (const request of requests) {
      expect(request.body).toBe(prepared.payload);
      expect(request.headers["webhook-id"]).toBe(prepared.eventId);
      expect(request.headers["x-echo-delivery"]).toBe(deliveryId);
      expect(request.headers["x-echo-signature"]).toBe(quickstartSignature(endpoint.signing_secret, request.body));
    }
    expect((await getEndpoint(account, endpoint.id)).consecutive_failures).toBe(0);
  });

  it("gives up after the schedule's attempts on a receiver that always fails, then a manual retry goes through", async () => {
    const { account, endpoint, deliveryId } = await endpointWithDelivery("fail-3");

    // WEBHOOK_RETRY_SCHEDULE="0,1,1" in tests: three attempts in all.
    const failed = await waitForDelivery(account, endpoint.id, deliveryId!, "failed");
    expect(failed).toMatchObject({ attempt_count: 3, next_retry_at: null });
    expect(failed.attempts.map((a: { http_status: number }) => a.http_status)).toEqual([500, 500, 500]);
    const afterFailure = await getEndpoint(account, endpoint.id);
    expect(afterFailure).toMatchObject({ status: "active", consecutive_failures: 3 });

    const retry = await api("POST", `/api/v1/projects/${account.projectId}/webhooks/${endpoint.id}/deliveries/${deliveryId}/retry`, { key: account.key });
    expect(retry.status).toBe(202);
    expect(retry.body).toMatchObject({ id: deliveryId, status: "pending" });

    const delivered = await waitForDelivery(account, endpoint.id, deliveryId!, "success");
    expect(delivered.attempts.at(-1)).toMatchObject({ attempt_number: 4, triggered_by: "manual", http_status: 200, success: true });
    expect((await getEndpoint(account, endpoint.id)).consecutive_failures).toBe(0);
  });

  it("disables the endpoint when it answers 410 Gone", async () => {
    const { account, endpoint, deliveryId } = await endpointWithDelivery("status-410");

    const delivery = await waitForDelivery(account, endpoint.id, deliveryId!, "failed");
    expect(delivery.attempts).toEqual([expect.objectContaining({ attempt_number: 1, http_status: 410, success: false })]);
    expect(await getEndpoint(account, endpoint.id)).toMatchObject({ status: "disabled", disabled_reason: GONE_REASON, consecutive_failures: 1 });

    // A disabled endpoint gets no new deliveries.
    expect((await emit(account, { queue: false })).deliveryIds).toEqual([]);
  });
});

describe("the queue consumer", () => {
  it("acks a duplicate message for a delivered event without sending it again", async () => {
    const { name, deliveryId } = await endpointWithDelivery("dup", { queue: false });

    const first = await runConsumer([{ body: { deliveryId } }]);
    expect(first.explicitAcks).toEqual(["message-0"]);
    const second = await runConsumer([{ body: { deliveryId } }]);
    expect(second.explicitAcks).toEqual(["message-0"]);
    expect(second.retryMessages).toEqual([]);
    expect(await inbox(name)).toHaveLength(1);
  });

  it("marks the delivery of a disabled endpoint failed without an attempt", async () => {
    const { account, name, endpoint, deliveryId } = await endpointWithDelivery("disabled", { queue: false });
    expect((await api("PATCH", `/api/v1/projects/${account.projectId}/webhooks/${endpoint.id}`, { key: account.key, body: { status: "disabled" } })).status).toBe(200);

    const result = await runConsumer([{ body: { deliveryId } }]);
    expect(result.explicitAcks).toEqual(["message-0"]);
    const delivery = await getDelivery(account, endpoint.id, deliveryId!);
    expect(delivery).toMatchObject({ status: "failed", attempt_count: 0, attempts: [] });
    expect(await inbox(name)).toEqual([]);
  });

  it("retries only the message that hit an unexpected error and still handles the others", async () => {
    const account = await signup();
    const okName = uniqueName("ok");
    const brokenName = uniqueName("broken");
    await createEndpoint(account, okName);
    await createEndpoint(account, brokenName, ["call.started"]);
    const [okDelivery] = (await emit(account, { queue: false })).deliveryIds;
    const [brokenDelivery] = (await emit(account, { eventName: "call.started", queue: false })).deliveryIds;
    // An attempt #1 already recorded (as by a concurrent consumer) makes this one's write fail.
    await env.DB.prepare("INSERT INTO webhook_attempts (id, delivery_id, attempt_number, triggered_by, duration_ms, success, created_at) VALUES (?, ?, 1, 'auto', 0, 0, ?)")
      .bind(crypto.randomUUID(), brokenDelivery, new Date().toISOString())
      .run();

    const logged = vi.spyOn(console, "error").mockImplementation(() => undefined);
    const result = await runConsumer([{ body: { deliveryId: brokenDelivery } }, { body: { deliveryId: okDelivery } }, { body: { nonsense: true } }]);
    expect(logged.mock.calls.map(([message]) => String(message))).toEqual(
      expect.arrayContaining([expect.stringContaining("message-0 failed unexpectedly"), expect.stringContaining("malformed webhook delivery message")]),
    );
    logged.mockRestore();
    expect(result.explicitAcks.sort()).toEqual(["message-1", "message-2"]);
    expect(result.retryMessages).toEqual([{ msgId: "message-0" }]);
    expect(result.delays).toEqual({ "message-0": 60 });
    expect((await env.DB.prepare("SELECT status FROM webhook_deliveries WHERE id = ?").bind(okDelivery).first())?.status).toBe("success");
    expect((await env.DB.prepare("SELECT status, attempt_count FROM webhook_deliveries WHERE id = ?").bind(brokenDelivery).first())).toMatchObject({ status: "pending", attempt_count: 0 });
  });

  it("retries a failed attempt with the schedule's next delay", async () => {
    const { account, endpoint, deliveryId } = await endpointWithDelivery("status-503", { queue: false });

    const result = await runConsumer([{ body: { deliveryId } }]);
    expect(result.retryMessages).toEqual([{ msgId: "message-0" }]);
    expect(result.delays).toEqual({ "message-0": 1 });
    const delivery = await getDelivery(account, endpoint.id, deliveryId!);
    expect(delivery).toMatchObject({ status: "retrying", attempt_count: 1 });
    expect(Date.parse(delivery.next_retry_at)).toBeGreaterThan(Date.now() - 5_000);
  });
});

describe("attemptDelivery", () => {
  it("records a timeout as an error attempt and schedules a retry", async () => {
    const { deliveryId } = await endpointWithDelivery("sleep-3000", { queue: false });
    const result = await attemptDelivery(db, devSettings({ timeoutMs: 200 }), await target(deliveryId), "auto");
    expect(result.attempt).toMatchObject({ attemptNumber: 1, httpStatus: null, success: false, errorMessage: "Timed out after 200 ms", responseBody: null });
    expect(result.attempt.durationMs).toBeGreaterThanOrEqual(150);
    expect(result.attempt.durationMs).toBeLessThan(3_000);
    expect(result.delivery.status).toBe("retrying");
    expect(result.retryInSeconds).toBeGreaterThanOrEqual(48);
    expect(result.retryInSeconds).toBeLessThanOrEqual(72);
  });

  it("honours Retry-After within [delay, 2 × delay]", async () => {
    const within = await endpointWithDelivery("retry-after-90", { queue: false });
    expect((await attemptDelivery(db, devSettings(), await target(within.deliveryId), "auto")).retryInSeconds).toBe(90);
    const above = await endpointWithDelivery("retry-after-1000", { queue: false });
    expect((await attemptDelivery(db, devSettings(), await target(above.deliveryId), "auto")).retryInSeconds).toBe(120);
    const below = await endpointWithDelivery("retry-after-5", { queue: false });
    const result = await attemptDelivery(db, devSettings(), await target(below.deliveryId), "auto");
    expect(result.retryInSeconds).toBe(60);
    expect(result.attempt).toMatchObject({ httpStatus: 503, responseBody: "busy" });
  });

  it("treats a redirect as a failure and does not follow it", async () => {
    const { name, deliveryId } = await endpointWithDelivery("redirect", { queue: false });
    const result = await attemptDelivery(db, devSettings(), await target(deliveryId), "auto");
    expect(result.attempt).toMatchObject({ httpStatus: 302, success: false });
    expect(await inbox(name)).toHaveLength(1);
    expect(await inbox(`${name}-target`)).toEqual([]);
  });

  it("keeps the first 2048 characters of the response", async () => {
    const { deliveryId } = await endpointWithDelivery("big", { queue: false });
    const result = await attemptDelivery(db, devSettings(), await target(deliveryId), "auto");
    expect(result.attempt.success).toBe(true);
    expect(result.attempt.responseBody).toBe("x".repeat(RESPONSE_BODY_LIMIT));
  });

  it("re-checks the URL with the production rules and sends nothing to a refused one", async () => {
    const { name, deliveryId } = await endpointWithDelivery("guarded", { queue: false });
    const result = await attemptDelivery(db, devSettings({ allowPrivateUrls: false }), await target(deliveryId), "auto");
    expect(result.attempt).toMatchObject({ httpStatus: null, success: false, errorMessage: "URL not allowed: the URL must use https", durationMs: 0 });
    expect(await inbox(name)).toEqual([]);
  });

  it("resolves the host again before each attempt: a name now pointing at a private address gets a failed attempt saying why, retried", async () => {
    const account = await signup();
    const host = `${uniqueName("rebind")}.example.com`;
    await pointName(host, ["93.184.215.14"]);
    const created = await api("POST", `/api/v1/projects/${account.projectId}/webhooks`, { key: account.key, body: { url: `https://${host}/echo`, events: ["call.ended"] }, bindings: { ENVIRONMENT: "production" } });
    expect(created.status).toBe(201);
    const deliveryId = (await emit(account, { queue: false })).deliveryIds[0]!;
    // Saved while public; the name now points at the cloud metadata service.
    await pointName(host, ["169.254.169.254"]);

    const result = await attemptDelivery(db, devSettings({ allowPrivateUrls: false }), await target(deliveryId), "auto");
    expect(result.attempt).toMatchObject({ httpStatus: null, success: false, errorMessage: `URL not allowed: ${host} resolves to 169.254.169.254, a link-local address` });
    expect(result).toMatchObject({ retryInSeconds: expect.any(Number), delivery: { status: "retrying", attemptCount: 1 } });
    const logged = await getDelivery(account, created.body.id, deliveryId);
    expect(logged.attempts).toEqual([expect.objectContaining({ success: false, http_status: null, error_message: expect.stringContaining("169.254.169.254, a link-local address") })]);
  });

  it("fails an attempt closed when the host's lookup fails", async () => {
    const account = await signup();
    const host = `${uniqueName("vanishing")}.example.com`;
    await pointName(host, ["93.184.215.14"]);
    const created = await api("POST", `/api/v1/projects/${account.projectId}/webhooks`, { key: account.key, body: { url: `https://${host}/echo`, events: ["call.ended"] }, bindings: { ENVIRONMENT: "production" } });
    const deliveryId = (await emit(account, { queue: false })).deliveryIds[0]!;
    const broken = devSettings({ allowPrivateUrls: false, dnsResolverUrl: "https://resolver.invalid.test/dns-query" });
    const result = await attemptDelivery(db, broken, await target(deliveryId), "auto");
    expect(result.attempt.errorMessage).toMatch(new RegExp(`^URL not allowed: ${host} could not be resolved`));
    expect(result.delivery.status).toBe("retrying");
    expect((await getDelivery(account, created.body.id, deliveryId)).attempts).toHaveLength(1);
  });

  it("keeps an endpoint active when a delivery gives up, counting its failures and when they began", async () => {
    const { account, endpoint, deliveryId } = await endpointWithDelivery("status-500", { queue: false });
    const before = Date.now();
    const result = await attemptDelivery(db, devSettings({ retryScheduleSeconds: [0] }), await target(deliveryId), "auto");
    expect(result.delivery.status).toBe("failed");
    const after = await getEndpoint(account, endpoint.id);
    expect(after).toMatchObject({ status: "active", consecutive_failures: 1, disabled_reason: null });
    expect(Date.parse(after.failing_since)).toBeGreaterThanOrEqual(before - 1);
  });
});

/** Points a name of the fake resolver (test/fakes/dns.mjs) at these IPv4 addresses. */
async function pointName(name: string, addresses: string[]) {
  const response = await fetch("https://cloudflare-dns.com/_fake/records", { method: "POST", body: JSON.stringify({ name, A: addresses }) });
  expect(response.status).toBe(204);
}

describe("retry delays", () => {
  const now = Date.parse("2026-03-01T12:00:00.000Z");

  it("jitters the scheduled delay by ±20 %", () => {
    expect(retryDelaySeconds(60, null, now, () => 0)).toBe(48);
    expect(retryDelaySeconds(60, null, now, () => 0.5)).toBe(60);
    expect(retryDelaySeconds(60, null, now, () => 0.999999)).toBe(72);
  });

  it.each([
    ["within range, seconds", "90", 90],
    ["below the delay", "10", 60],
    ["above twice the delay", "3600", 120],
    ["an HTTP date", "Sun, 01 Mar 2026 12:01:40 GMT", 100],
    ["an HTTP date in the past", "Sun, 01 Mar 2026 11:00:00 GMT", 60],
  ])("clamps Retry-After %s", (_label, header, expected) => {
    expect(retryDelaySeconds(60, header, now, () => 0)).toBe(expected);
  });

  it("ignores an unreadable Retry-After and never exceeds the queue's 12 h limit", () => {
    expect(retryDelaySeconds(60, "soon", now, () => 0.5)).toBe(60);
    expect(retryDelaySeconds(43_200, null, now, () => 0.999999)).toBe(43_200);
    expect(retryDelaySeconds(43_200, "80000", now)).toBe(43_200);
  });

  it("parses Retry-After", () => {
    expect(parseRetryAfter(null, now)).toBeNull();
    expect(parseRetryAfter(" 120 ", now)).toBe(120);
    expect(parseRetryAfter("Sun, 01 Mar 2026 12:00:30 GMT", now)).toBe(30);
    expect(parseRetryAfter("-5", now)).toBeNull();
  });
});
