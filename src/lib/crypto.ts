import { toHex } from "./ids";

const encoder = new TextEncoder();

export async function sha256Hex(input: string): Promise<string> {
  return toHex(await crypto.subtle.digest("SHA-256", encoder.encode(input)));
}

/** An HMAC signing key, imported once for as many messages as need it. */
export function hmacKey(key: Uint8Array | string, hash: "SHA-1" | "SHA-256"): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", typeof key === "string" ? encoder.encode(key) : key, { name: "HMAC", hash }, false, ["sign"]);
}

export function hmacSign(key: CryptoKey, message: Uint8Array | string): Promise<ArrayBuffer> {
  return crypto.subtle.sign("HMAC", key, typeof message === "string" ? encoder.encode(message) : message);
}

export async function hmacSha256(key: Uint8Array | string, message: Uint8Array | string): Promise<ArrayBuffer> {
  return hmacSign(await hmacKey(key, "SHA-256"), message);
}

/** Compares two strings without leaking where they differ (workerd's timingSafeEqual needs equal lengths). */
export function timingSafeEqualStrings(a: string, b: string): boolean {
  const left = encoder.encode(a);
  const right = encoder.encode(b);
  if (left.byteLength !== right.byteLength) {
    crypto.subtle.timingSafeEqual(left, left);
    return false;
  }
  return crypto.subtle.timingSafeEqual(left, right);
}

export function base64Encode(bytes: ArrayBuffer | Uint8Array): string {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let binary = "";
  for (const b of view) binary += String.fromCharCode(b);
  return btoa(binary);
}

export function base64Decode(text: string): Uint8Array {
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}
