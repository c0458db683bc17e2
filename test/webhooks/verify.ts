/** What a receiver does to check a delivery, written independently of src/webhooks/sign.ts. */

interface NodeCrypto {
  createHmac(algorithm: "sha256", key: string): { update(data: Uint8Array): { digest(encoding: "hex"): string } };
}
// No @types/node here: the module is typed by hand, and the cast keeps tsc from resolving it.
const { createHmac } = (await import("node:crypto" as string)) as NodeCrypto;

const encoder = new TextEncoder();

/** The quickstart's Node snippet: `sha256=` + createHmac('sha256', secret).update(rawBody).digest('hex'). */
export function quickstartSignature(secret: string, rawBody: string | Uint8Array): string {
  return `sha256=${createHmac("sha256", secret).update(typeof rawBody === "string" ? encoder.encode(rawBody) : rawBody).digest("hex")}`;
}

/**
 * The Standard Webhooks check: any `v1,<base64>` in the header equals HMAC-SHA256 of
 * `id.timestamp.body` keyed with the base64 decoding of the secret after `whsec_`.
 */
export async function verifyStandardSignature(secret: string, id: string, timestamp: string, body: string, header: string): Promise<boolean> {
  const keyBytes = Uint8Array.from(atob(secret.replace(/^whsec_/, "")), (c) => c.charCodeAt(0));
  const key = await crypto.subtle.importKey("raw", keyBytes, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(`${id}.${timestamp}.${body}`)));
  const expected = `v1,${btoa(String.fromCharCode(...mac))}`;
  return header.split(" ").includes(expected);
}
