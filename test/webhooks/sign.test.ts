import { describe, expect, it } from "vitest";
import { echoSignature, generateSigningSecret, signatureHeaders, standardSignature } from "../../src/webhooks/sign";
import { quickstartSignature, verifyStandardSignature } from "./verify";

const body = new TextEncoder().encode(JSON.stringify({ event_id: "0193b1c2-7e4a-7c1e-9d5a-2f1e4c3b2a10", event_name: "call.ended", data: { text: "héllo ✓" } }));
const bodyText = new TextDecoder().decode(body);

describe("signing secrets", () => {
  it("are whsec_ and 64 lowercase hex, different every time", () => {
    const a = generateSigningSecret();
    expect(a).toMatch(/^whsec_[0-9a-f]{64}$/);
    expect(generateSigningSecret()).not.toBe(a);
  });
});

describe("X-Echo-Signature", () => {
  it("is what the quickstart's Node snippet computes: hex HMAC-SHA256 of the raw body keyed with the whole secret", async () => {
    const secret = generateSigningSecret();
    expect(await echoSignature(secret, body)).toBe(quickstartSignature(secret, body));
  });
});

describe("Standard Webhooks signature", () => {
  it("signs id.timestamp.body with the base64-decoded secret and verifies independently", async () => {
    const secret = generateSigningSecret();
    const signature = await standardSignature(secret, "evt-1", 1_700_000_000, body);
    expect(signature).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
    expect(await verifyStandardSignature(secret, "evt-1", "1700000000", bodyText, signature)).toBe(true);
    expect(await verifyStandardSignature(secret, "evt-1", "1700000001", bodyText, signature)).toBe(false);
    expect(await verifyStandardSignature(secret, "evt-1", "1700000000", bodyText.replace("héllo", "hello"), signature)).toBe(false);
    expect(await verifyStandardSignature(generateSigningSecret(), "evt-1", "1700000000", bodyText, signature)).toBe(false);
  });
});

describe("signatureHeaders", () => {
  const now = Date.parse("2026-01-01T00:00:00.000Z");

  it("sets the Echo and Standard Webhooks headers", async () => {
    const secret = generateSigningSecret();
    const headers = await signatureHeaders({ signingSecret: secret, previousSigningSecret: null, previousSecretExpiresAt: null }, "evt-2", body, now + 999);
    expect(headers["X-Echo-Signature"]).toBe(quickstartSignature(secret, body));
    expect(headers["webhook-id"]).toBe("evt-2");
    expect(headers["webhook-timestamp"]).toBe(String(now / 1000));
    expect(headers["webhook-signature"]!.split(" ")).toHaveLength(1);
    expect(await verifyStandardSignature(secret, "evt-2", headers["webhook-timestamp"]!, bodyText, headers["webhook-signature"]!)).toBe(true);
  });

  it("adds the previous secret's signature while it is valid, newest first; X-Echo-Signature keeps the current one", async () => {
    const current = generateSigningSecret();
    const previous = generateSigningSecret();
    const secrets = { signingSecret: current, previousSigningSecret: previous, previousSecretExpiresAt: new Date(now + 60_000).toISOString() };
    const headers = await signatureHeaders(secrets, "evt-3", body, now);
    const [first, second] = headers["webhook-signature"]!.split(" ");
    expect(await verifyStandardSignature(current, "evt-3", headers["webhook-timestamp"]!, bodyText, first!)).toBe(true);
    expect(await verifyStandardSignature(previous, "evt-3", headers["webhook-timestamp"]!, bodyText, second!)).toBe(true);
    expect(headers["X-Echo-Signature"]).toBe(quickstartSignature(current, body));

    const expired = await signatureHeaders(secrets, "evt-3", body, now + 60_000);
    expect(expired["webhook-signature"]!.split(" ")).toHaveLength(1);
    expect(await verifyStandardSignature(previous, "evt-3", expired["webhook-timestamp"]!, bodyText, expired["webhook-signature"]!)).toBe(false);
  });
});
