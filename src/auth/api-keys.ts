import { randomHex } from "../lib/ids";
import { sha256Hex } from "../lib/crypto";

export const API_KEY_PATTERN = /^echo_[0-9a-f]{64}$/;
const PREFIX_LENGTH = 16;

export interface NewApiKey {
  key: string;
  keyHash: string;
  keyPrefix: string;
}

/** `echo_` + 64 hex; only the SHA-256 is stored, the key is shown once. */
export async function generateApiKey(): Promise<NewApiKey> {
  const key = `echo_${randomHex(32)}`;
  return { key, keyHash: await sha256Hex(key), keyPrefix: key.slice(0, PREFIX_LENGTH) };
}

export function hashApiKey(key: string): Promise<string> {
  return sha256Hex(key);
}
