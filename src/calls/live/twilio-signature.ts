import { base64Encode, hmacKey, hmacSign, timingSafeEqualStrings } from "../../lib/crypto";

/**
 * X-Twilio-Signature: base64 HMAC-SHA1, keyed with the account's auth token, of the full URL Twilio
 * requested followed by every POST parameter's name and value, sorted by name. (A WebSocket upgrade
 * has no parameters: the wss:// URL alone is signed.)
 */

async function twilioSignature(key: CryptoKey, url: string, params: Record<string, string>): Promise<string> {
  const data = Object.keys(params)
    .sort()
    .reduce((signed, name) => signed + name + params[name], url);
  return base64Encode(await hmacSign(key, data));
}

const DEFAULT_PORTS: Record<string, string> = { "https:": "443", "wss:": "443", "http:": "80", "ws:": "80" };

/**
 * Twilio is not consistent about the default port in the URL it signs, so, like its own libraries'
 * validateRequest, accept the URL both without it and with it spelled out.
 */
function urlVariants(url: string): string[] {
  const parsed = new URL(url);
  const withoutPort = parsed.toString();
  const port = parsed.port || DEFAULT_PORTS[parsed.protocol];
  if (!port) return [withoutPort];
  const credentials = parsed.username ? `${parsed.username}${parsed.password ? `:${parsed.password}` : ""}@` : "";
  const withPort = `${parsed.protocol}//${credentials}${parsed.hostname}:${port}${parsed.pathname}${parsed.search}${parsed.hash}`;
  return withPort === withoutPort ? [withoutPort] : [withoutPort, withPort];
}

/** True when `signature` is Twilio's for this URL and form parameters; false when missing or wrong. */
export async function validTwilioSignature(authToken: string, signature: string | null | undefined, url: string, params: Record<string, string>): Promise<boolean> {
  if (!signature) return false;
  const key = await hmacKey(authToken, "SHA-1");
  let valid = false;
  for (const candidate of urlVariants(url)) {
    // Every variant is checked, each in constant time, so the timing says nothing about which matched.
    if (timingSafeEqualStrings(await twilioSignature(key, candidate, params), signature)) valid = true;
  }
  return valid;
}
