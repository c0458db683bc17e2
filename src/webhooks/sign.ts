import { base64Decode, base64Encode, hmacSha256 } from "../lib/crypto";
import { randomHex, toHex } from "../lib/ids";

const SECRET_PREFIX = "whsec_";
const encoder = new TextEncoder();

/** How long a rotated-out secret keeps signing deliveries, so receivers can switch without a gap. */
export const PREVIOUS_SECRET_GRACE_MS = 24 * 60 * 60 * 1000;

/** `whsec_` + 64 lowercase hex. The hex is also valid base64, which Standard Webhooks libraries decode. */
export function generateSigningSecret(): string {
  return `${SECRET_PREFIX}${randomHex(32)}`;
}

/** `sha256=<hex>`: the quickstart's check, HMAC-SHA256 of the raw body keyed with the whole secret string. */
export async function echoSignature(secret: string, body: Uint8Array): Promise<string> {
  return `sha256=${toHex(await hmacSha256(secret, body))}`;
}

/** `v1,<base64>`: Standard Webhooks, HMAC-SHA256 of `id.timestamp.body` keyed with the base64-decoded secret. */
export async function standardSignature(secret: string, webhookId: string, timestamp: number, body: Uint8Array): Promise<string> {
  const key = base64Decode(secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret);
  const prefix = encoder.encode(`${webhookId}.${timestamp}.`);
  const message = new Uint8Array(prefix.byteLength + body.byteLength);
  message.set(prefix);
  message.set(body, prefix.byteLength);
  return `v1,${base64Encode(await hmacSha256(key, message))}`;
}

export interface EndpointSecrets {
  signingSecret: string;
  previousSigningSecret: string | null;
  previousSecretExpiresAt: string | null;
}

/**
 * The signature headers of one attempt. While a rotated-out secret is still valid,
 * `webhook-signature` carries both signatures (newest first) so a receiver holding either verifies;
 * `X-Echo-Signature` has room for one and uses the current secret.
 */
export async function signatureHeaders(secrets: EndpointSecrets, eventId: string, body: Uint8Array, now: number): Promise<Record<string, string>> {
  const timestamp = Math.floor(now / 1000);
  const keys = [secrets.signingSecret];
  if (secrets.previousSigningSecret && secrets.previousSecretExpiresAt && Date.parse(secrets.previousSecretExpiresAt) > now) {
    keys.push(secrets.previousSigningSecret);
  }
  const signatures = await Promise.all(keys.map((key) => standardSignature(key, eventId, timestamp, body)));
  return {
    "X-Echo-Signature": await echoSignature(secrets.signingSecret, body),
    "webhook-id": eventId,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": signatures.join(" "),
  };
}
