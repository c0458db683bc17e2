/**
 * What a receiver's own code concludes about our requests: the official `standardwebhooks`
 * package and the quickstart's HMAC snippet, run on the bytes and headers the receiver got.
 */
import { Webhook, WebhookVerificationError } from "standardwebhooks";
import { describe, expect, it, vi } from "vitest";
import { api, signup, uniqueName } from "../helpers";
import { createEndpoint, emit, waitForInbox } from "./support";
import { quickstartSignature } from "./verify";

type Received = { body: string; headers: Record<string, string> };

function standardHeaders(request: Received) {
  return { "webhook-id": request.headers["webhook-id"]!, "webhook-timestamp": request.headers["webhook-timestamp"]!, "webhook-signature": request.headers["webhook-signature"]! };
}

describe("a receiver verifying a delivery", () => {
  it("accepts it with the official standardwebhooks package and the quickstart snippet, and rejects tampering", async () => {
    const account = await signup();
    const name = uniqueName("standard");
    const endpoint = await createEndpoint(account, name);
    const prepared = await emit(account);
    const request = (await waitForInbox(name, 1))[0]!;
    const headers = standardHeaders(request);

    expect(headers["webhook-id"]).toBe(prepared.eventId);
    const verified = new Webhook(endpoint.signing_secret).verify(request.body, headers);
    expect(verified).toEqual(JSON.parse(prepared.payload));
    expect(request.headers["x-echo-signature"]).toBe(quickstartSignature(endpoint.signing_secret, request.body));
    expect(request.headers).toMatchObject({ "x-echo-event": "call.ended", "x-echo-delivery": prepared.deliveryIds[0] });

    const webhook = new Webhook(endpoint.signing_secret);
    const tamperedBody = request.body.replace("customer-ended-call", "assistant-ended-call");
    expect(() => webhook.verify(tamperedBody, headers)).toThrow(WebhookVerificationError);
    expect(request.headers["x-echo-signature"]).not.toBe(quickstartSignature(endpoint.signing_secret, tamperedBody));
    expect(() => webhook.verify(request.body, { ...headers, "webhook-timestamp": String(Number(headers["webhook-timestamp"]) - 1) })).toThrow(WebhookVerificationError);
    expect(() => webhook.verify(request.body, { ...headers, "webhook-id": crypto.randomUUID() })).toThrow(WebhookVerificationError);
    // Another endpoint's secret does not verify it.
    const other = await createEndpoint(account, uniqueName("other"));
    expect(() => new Webhook(other.signing_secret).verify(request.body, headers)).toThrow(WebhookVerificationError);
  });

  it("rejects a replay of a genuine request once its timestamp is stale", async () => {
    const account = await signup();
    const name = uniqueName("replay");
    const endpoint = await createEndpoint(account, name);
    await emit(account);
    const request = (await waitForInbox(name, 1))[0]!;
    vi.useFakeTimers({ toFake: ["Date"] });
    try {
      vi.setSystemTime(Date.now() + 10 * 60_000);
      expect(() => new Webhook(endpoint.signing_secret).verify(request.body, standardHeaders(request))).toThrow(/too old/);
    } finally {
      vi.useRealTimers();
    }
  });

  it("after a secret rotation, carries both signatures: each verifies with its own secret", async () => {
    const account = await signup();
    const name = uniqueName("rotated");
    const endpoint = await createEndpoint(account, name);
    const rotated = await api("POST", `/api/v1/projects/${account.projectId}/webhooks/${endpoint.id}/secret/rotate`, { key: account.key });
    expect(rotated.status).toBe(200);
    const newSecret: string = rotated.body.signing_secret;

    await emit(account);
    const request = (await waitForInbox(name, 1))[0]!;
    const headers = standardHeaders(request);
    const [newSignature, oldSignature, ...more] = headers["webhook-signature"].split(" ");
    expect(more).toEqual([]);

    // A receiver still on the old secret and one already on the new one both accept it…
    expect(() => new Webhook(endpoint.signing_secret).verify(request.body, headers)).not.toThrow();
    expect(() => new Webhook(newSecret).verify(request.body, headers)).not.toThrow();
    // …each through its own signature.
    expect(() => new Webhook(newSecret).verify(request.body, { ...headers, "webhook-signature": newSignature! })).not.toThrow();
    expect(() => new Webhook(endpoint.signing_secret).verify(request.body, { ...headers, "webhook-signature": oldSignature! })).not.toThrow();
    expect(() => new Webhook(endpoint.signing_secret).verify(request.body, { ...headers, "webhook-signature": newSignature! })).toThrow(WebhookVerificationError);
    // X-Echo-Signature has room for one: the new secret's.
    expect(request.headers["x-echo-signature"]).toBe(quickstartSignature(newSecret, request.body));
    expect(request.headers["x-echo-signature"]).not.toBe(quickstartSignature(endpoint.signing_secret, request.body));
  });
});
